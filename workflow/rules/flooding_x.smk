# Flooding-X: gradient-accordance probe -> flood-level window -> narrow search; and vanilla
# Flooding's wide grid, chosen by the same dev-only criterion.


rule probe:
    input:
        data="results/data/{dataset}/meta.json",
        model=model_inputs(),
    output:
        "results/probe/{dataset}/seed{seed}/accordance.csv",
    params:
        spec=lambda w: as_json(probe_spec(config, w.dataset, w.seed, RESOURCES)),
    threads: 1
    resources:
        gpu=1,
        runtime=600,
        mem_mb=16000,
    log:
        "logs/probe/{dataset}/seed{seed}.log",
    benchmark:
        "benchmarks/probe/{dataset}/seed{seed}.tsv"
    conda:
        ENV
    shell:
        "{OFFLINE} python -m floodx.accordance --spec {params.spec} --data results/data/{wildcards.dataset} "
        "--out results/probe/{wildcards.dataset}/seed{wildcards.seed} --resources {RESOURCES} "
        "--threads {threads} > {log} 2>&1"


checkpoint flood_window:
    input:
        "results/probe/{dataset}/seed{seed}/accordance.csv",
    output:
        "results/probe/{dataset}/seed{seed}/window.json",
    params:
        spec=as_json(config["search"]),
    log:
        "logs/window/{dataset}/seed{seed}.log",
    conda:
        ENV
    shell:
        "python -m floodx.window --probe {input} --out {output} --spec {params.spec} > {log} 2>&1"


rule dev_attack:
    """Robust accuracy of a grid run on the dev attack subset: the flood-level criterion."""
    input:
        metrics="results/train/{dataset}/{run}/seed{seed}/metrics.json",
        resources=rules.fetch_attack_resources.output,
    output:
        "results/dev_attack/{dataset}/{run}/seed{seed}/summary.json",
    params:
        checkpoint=lambda w: f"{run_dir(w.dataset, w.run, w.seed)}/checkpoints/epoch-{attack_epoch(w)}",
        recipe=config["search"]["attack"],
        mode=config["attacks"]["mode"],
        folder="results/dev_attack/{dataset}/{run}/seed{seed}",
    threads: 1
    resources:
        gpu=1,
        runtime=120,
        mem_mb=8000,
    log:
        "logs/dev_attack/{dataset}/{run}/seed{seed}.log",
    conda:
        ENV
    shell:
        "({OFFLINE} python -m floodx.attacks.run --checkpoint {params.checkpoint} "
        "--data results/data/{wildcards.dataset} --subset dev --recipe {params.recipe} --mode {params.mode} "
        "--shard 0 --num-shards 1 --out {params.folder}/shard-0.csv --resources {RESOURCES} --threads {threads} "
        "&& {OFFLINE} python -m floodx.attacks.metrics gather --shards {params.folder}/shard-0.csv "
        "--checkpoint {params.checkpoint} --data results/data/{wildcards.dataset} --split dev "
        "--out-examples {params.folder}/examples.csv --out-summary {output}) > {log} 2>&1"


def search_levels(wildcards):
    if wildcards.search_method == "flooding":
        return flooding_grid(config)
    window = checkpoints.flood_window.get(dataset=wildcards.dataset, seed=wildcards.seed).output[0]
    with open(window) as handle:
        return json.load(handle)["levels"]


def search_candidates(wildcards):
    """level -> (metrics.json, dev attack summary or None) for every level searched."""
    by_dev_attack = config["search"]["criterion"] == "dev_attack"
    candidates = {}
    for level in search_levels(wildcards):
        folder = run_dir(wildcards.dataset, flood_run(level), wildcards.seed)
        dev = f"results/dev_attack/{wildcards.dataset}/{flood_run(level)}/seed{wildcards.seed}/summary.json"
        candidates[level] = (f"{folder}/metrics.json", dev if by_dev_attack else None)
    return candidates


def search_inputs(wildcards):
    inputs = [p for pair in search_candidates(wildcards).values() for p in pair if p]
    if wildcards.search_method == "flooding_x":
        inputs.append(f"results/probe/{wildcards.dataset}/seed{wildcards.seed}/window.json")
    return inputs


def candidate_args(wildcards):
    return " ".join(
        "--candidate " + " ".join(p for p in (level, *pair) if p)
        for level, pair in search_candidates(wildcards).items()
    )


checkpoint select_flood_level:
    input:
        search_inputs,
    output:
        "results/search/{dataset}/{search_method}/seed{seed}/choice.json",
    params:
        candidates=candidate_args,
        criterion=config["search"]["criterion"],
        probe_runs=lambda w: 1 if w.search_method == "flooding_x" else 0,
    log:
        "logs/search/{dataset}/{search_method}/seed{seed}.log",
    conda:
        ENV
    shell:
        "python -m floodx.search {params.candidates} --criterion {params.criterion} "
        "--method {wildcards.search_method} --extra-runs {params.probe_runs} --out {output} > {log} 2>&1"
