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
        weights=weights_ready,
        resources=rules.fetch_attack_resources.output,
    output:
        "results/dev_attack/{dataset}/{run}/seed{seed}/summary.json",
    params:
        offline=OFFLINE,
        spec=lambda w: as_json(attack_spec(
            config, w.dataset, [config["search"]["attack"]], "dev", epochs=[attacked_epoch(config)],
            identity=result_identity(w.dataset, parse_run(w.run)[0], w.run, w.seed), resources=RESOURCES)),
        run=lambda w: run_dir(w.dataset, w.run, w.seed),
        folder="results/dev_attack/{dataset}/{run}/seed{seed}",
    threads: 1
    resources:
        gpu=1,
        runtime=120,
        mem_mb=8000,
    log:
        "logs/dev_attack/{dataset}/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/dev_attack/{dataset}/{run}/seed{seed}.tsv"
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.attacks.run --spec {params.spec} --checkpoint {params.run} "
        "--data results/data/{wildcards.dataset} --out {params.folder}/shard-0.csv --summary {output} "
        "--clean-from {input.metrics} --threads {threads} > {log} 2>&1"


rule grid_attack:
    """figures.grid_test_attack: a searched flood run's final model attacked on the test subset (analysis after
    the fact, for the flood-level figure and the verdict; the choice reads dev data only)."""
    input:
        metrics="results/train/{dataset}/{run}/seed{seed}/metrics.json",
        weights=weights_ready,
        resources=rules.fetch_attack_resources.output,
    output:
        "results/grid_attack/{dataset}/{run}/seed{seed}/summary.json",
    params:
        offline=OFFLINE,
        spec=lambda w: as_json(attack_spec(
            config, w.dataset, [config["search"]["attack"]], "test", epochs=[attacked_epoch(config)],
            identity=result_identity(w.dataset, parse_run(w.run)[0], w.run, w.seed), resources=RESOURCES)),
        run=lambda w: run_dir(w.dataset, w.run, w.seed),
        folder="results/grid_attack/{dataset}/{run}/seed{seed}",
    threads: 1
    resources:
        gpu=1,
        runtime=360,
        mem_mb=8000,
    log:
        "logs/grid_attack/{dataset}/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/grid_attack/{dataset}/{run}/seed{seed}.tsv"
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.attacks.run --spec {params.spec} --checkpoint {params.run} "
        "--data results/data/{wildcards.dataset} --out {params.folder}/shard-0.csv --summary {output} "
        "--clean-from {input.metrics} --threads {threads} > {log} 2>&1"


rule flood_levels:
    """The flood-level analysis: test Aua of every searched level beside the window and both choices, and the
    verdict on the accordance criterion (floodx.flood_levels)."""
    input:
        unpack(grid_attack_inputs),
        window="results/probe/{dataset}/seed{seed}/window.json",
    output:
        "results/grid_attack/{dataset}/seed{seed}/levels.json",
    params:
        # (.get: until the flood window exists, Snakemake asks with the checkpoint's file only)
        attacks=lambda w, input: " ".join(input.get("attacks", [])),
        choices=lambda w, input: " ".join(input.get("choices", [])),
        reference=lambda w, input: f"--reference {input.reference}" if "reference" in input.keys() else "",
        levelled=lambda w, input: " ".join(input.get("levelled", [])),
        # The file's format: 2 keeps per-example outcomes (for pool_flood_levels); a change reruns older files.
        levels_format=2,
    log:
        "logs/grid_attack/{dataset}/seed{seed}/levels.log",
    conda:
        ENV
    shell:
        "python -m floodx.flood_levels --attacks {params.attacks} --choices {params.choices} --window {input.window} "
        "{params.reference} --levelled {params.levelled} --out {output} > {log} 2>&1"


rule pool_flood_levels:
    """The flood-level curve over seeds: levels trained in every seed compared over (seed, example) pairs, each
    seed's window judged on it (floodx.flood_levels --pool; one seed: that seed's curve)."""
    input:
        expand("results/grid_attack/{{dataset}}/seed{seed}/levels.json", seed=SEEDS),
    output:
        "results/grid_attack/{dataset}/levels.json",
    log:
        "logs/grid_attack/{dataset}/levels.log",
    conda:
        ENV
    shell:
        "python -m floodx.flood_levels --pool {input} --out {output} > {log} 2>&1"


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


rule prune_flood_runs:
    """training.keep_checkpoints: chosen: once both flood levels are chosen, remove the other runs' weights."""
    input:
        unpack(prune_inputs),
    output:
        "results/search/{dataset}/seed{seed}/pruned.json",
    params:
        # (.get: until the flood window exists, Snakemake asks with the checkpoint's file only)
        candidates=lambda w, input: " ".join(f"--candidate {os.path.dirname(m)}" for m in input.get("metrics", [])),
        choices=lambda w, input: " ".join(f"--choice {c}" for c in input.get("choices", [])),
    log:
        "logs/prune/{dataset}/seed{seed}.log",
    conda:
        ENV
    shell:
        "python -m floodx.retention {params.candidates} {params.choices} --out {output} > {log} 2>&1"
