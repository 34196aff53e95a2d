# Training: one job per (data set, run, seed); a run is a method or flooding-b<level>.


rule train:
    input:
        data="results/data/{dataset}/meta.json",
        model=starting_weights(),
        window=train_window,
        aux=adaflood_inputs,
        flooding_choice=iflood_level_input,
    output:
        metrics="results/train/{dataset}/{run}/seed{seed}/metrics.json",
        # keep_checkpoints: chosen: what a dev attack waits for (common.smk weights_ready)
        **({"ready": temp(f"results/train/{{dataset}}/{{run}}/seed{{seed}}/{READY_FILE}")} if PRUNE else {}),
    params:
        offline=OFFLINE,
        spec=lambda w, input: as_json(
            run_spec(config, w.dataset, w.run, w.seed, RESOURCES, window_levels_of(input.window),
                     chosen_level_of(input.flooding_choice))),
    priority: train_priority
    threads: 1
    resources:
        gpu=1,
        runtime=600,
        mem_mb=16000,
    log:
        "logs/train/{dataset}/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{run}/seed{seed}.tsv"
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.training --spec {params.spec} --data results/data/{wildcards.dataset} "
        "--out results/train/{wildcards.dataset}/{wildcards.run}/seed{wildcards.seed} --threads {threads} > {log} 2>&1"
        # (only with keep_checkpoints: chosen, so that other modes keep the command Snakemake recorded)
        + (" && touch {output.ready}" if PRUNE else "")


rule adaflood_fold:
    """AdaFlood's auxiliary run k: fine-tuning on the other folds of the training split, then the
    held-out fold's per-example losses (floodx.auxiliary)."""
    input:
        data="results/data/{dataset}/meta.json",
        model=starting_weights(),
    output:
        "results/aux/{dataset}/seed{seed}/fold{fold}/losses.json",
    params:
        offline=OFFLINE,
        spec=lambda w: as_json(aux_fold_spec(config, w.dataset, w.seed, int(w.fold), RESOURCES)),
    threads: 1
    resources:
        gpu=1,
        runtime=600,
        mem_mb=16000,
    log:
        "logs/adaflood_fold/{dataset}/seed{seed}/fold{fold}.log",
    benchmark:
        "benchmarks/adaflood_fold/{dataset}/seed{seed}/fold{fold}.tsv"
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.auxiliary fold --spec {params.spec} --data results/data/{wildcards.dataset} "
        "--out results/aux/{wildcards.dataset}/seed{wildcards.seed}/fold{wildcards.fold} --threads {threads} > {log} 2>&1"


rule adaflood_losses:
    """Every training example's held-out loss, joined from the folds (each example exactly once)."""
    input:
        adaflood_fold_losses,
    output:
        "results/aux/{dataset}/seed{seed}/losses.json",
    log:
        "logs/adaflood_losses/{dataset}/seed{seed}.log",
    conda:
        ENV
    shell:
        "python -m floodx.auxiliary gather --folds {input} --data results/data/{wildcards.dataset} --out {output} "
        "> {log} 2>&1"
