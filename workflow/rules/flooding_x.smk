# Flooding-X: gradient-accordance probe -> flood-level window -> narrow search; and vanilla
# Flooding's wide grid, chosen by the same dev-only criterion.


rule probe:
    input:
        data="results/data/{dataset}/meta.json",
        model=starting_weights(),
    output:
        "results/probe/{dataset}/seed{seed}/accordance.csv",
    params:
        offline=OFFLINE,
        spec=lambda w: as_json(probe_spec(config, w.dataset, w.seed, RESOURCES)),
    priority: 50  # the narrow search waits on it: start it first
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
        "{params.offline} python -m floodx.accordance --spec {params.spec} --data results/data/{wildcards.dataset} "
        "--out results/probe/{wildcards.dataset}/seed{wildcards.seed} --threads {threads} > {log} 2>&1"


checkpoint flood_window:
    input:
        "results/probe/{dataset}/seed{seed}/accordance.csv",
    output:
        "results/probe/{dataset}/seed{seed}/window.json",
    params:
        spec=lambda w: as_json(window_job_spec(config, w.dataset, w.seed)),
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
        offline=OFFLINE,
        resources=lambda w: RESOURCES,
        run=lambda w: run_dir(w.dataset, w.run, w.seed),
        epoch=attack_epoch,
        recipe=config["search"]["attack"],
        mode=config["attacks"]["mode"],
        folder="results/dev_attack/{dataset}/{run}/seed{seed}",
        identity=lambda w: as_json(result_identity(w.dataset, parse_run(w.run)[0], w.run, w.seed)),
        max_length=lambda w: config["datasets"][w.dataset]["max_length"],
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
        "{params.offline} python -m floodx.attacks.run --checkpoint {params.run} --epoch {params.epoch} "
        "--data results/data/{wildcards.dataset} --subset dev --recipe {params.recipe} --mode {params.mode} "
        "--shard 0 --num-shards 1 --out {params.folder}/shard-0.csv --resources {params.resources} --threads {threads} "
        "--max-length {params.max_length} --summary {output} --identity {params.identity} "
        "--clean-from {input.metrics} > {log} 2>&1"


checkpoint select_flood_level:
    input:
        search_inputs,
    output:
        "results/search/{dataset}/{flood_method}/seed{seed}/choice.json",
    params:
        candidates=candidate_args,
        spec=lambda w: as_json(search_spec(config, w.dataset, w.flood_method, w.seed)),
    log:
        "logs/search/{dataset}/{flood_method}/seed{seed}.log",
    conda:
        ENV
    shell:
        "python -m floodx.search {params.candidates} --spec {params.spec} --out {output} > {log} 2>&1"
