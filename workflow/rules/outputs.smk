# The paper's outputs: time profiling (Table 3), noise landscape (Figure 1), Tables 2-3, Figures 1-4.


rule profile_time:
    """Table 3 measured fairly: every method, same device, same batches, back to back in one job."""
    input:
        data="results/data/{dataset}/meta.json",
        model=model_inputs(),
    output:
        "results/profile/{dataset}/times.json",
    params:
        offline=OFFLINE,
        resources=lambda w: RESOURCES,
        spec=lambda w: as_json({
            "dataset": w.dataset, "methods": [m for m in METHODS if m != "flooding_x"],
            "steps": config["profiling"]["steps"], "seed": int(SEEDS[0]),
            "flood_level": 0.1, "base": run_spec(config, w.dataset, "finetune", SEEDS[0], RESOURCES),
            "method_params": config["method_params"],
        }),
    threads: 1
    resources:
        gpu=1,
        runtime=600,
        mem_mb=16000,
    log:
        "logs/profile/{dataset}.log",
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.profiling --spec {params.spec} --data results/data/{wildcards.dataset} "
        "--out {output} --resources {params.resources} --threads {threads} > {log} 2>&1"


rule landscape:
    """Figure 1: loss under Gaussian noise on the input embeddings, for each final model."""
    input:
        unpack(landscape_models),
    output:
        "results/landscape/{dataset}/seed{seed}/noise_loss.csv",
    params:
        offline=OFFLINE,
        models=lambda w, input: " ".join(
            f"--model {m}={final_run(w.dataset, m, w.seed)}/checkpoints/epoch-{attack_epoch(w)}" for m in METHODS),
        alphas=" ".join(str(a) for a in config["figures"]["noise_alphas"]),
        seed=lambda w: w.seed,
    threads: 1
    resources:
        gpu=1,
        runtime=120,
        mem_mb=8000,
    log:
        "logs/landscape/{dataset}/seed{seed}.log",
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.landscape {params.models} --data results/data/{wildcards.dataset} "
        "--alphas {params.alphas} --seed {params.seed} --out {output} --threads {threads} > {log} 2>&1"
