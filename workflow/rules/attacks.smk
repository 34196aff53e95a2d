# TextAttack evaluation of every method's final model: sharded jobs (every recipe in one process),
# then one gather per attack.


rule attack_shard:
    """One process attacks a model with every recipe (one import of TextAttack, one model load)."""
    input:
        unpack(reused_grid_attack),
        metrics=final_metrics,
        resources=rules.fetch_attack_resources.output,
    output:
        expand("results/attack/{{dataset}}/{{method}}/seed{{seed}}/{attack}/shard-{{shard}}.csv", attack=ATTACKS),
    params:
        offline=OFFLINE,
        spec=lambda w: as_json(attack_spec(config, w.dataset, ATTACKS, "test", num_shards=len(SHARDS),
                                           resources=RESOURCES) | reused_shard(w)),
        checkpoint=final_checkpoint,
        out=lambda w: f"results/attack/{w.dataset}/{w.method}/seed{w.seed}/{{recipe}}/shard-{w.shard}.csv",  # run.py fills it
    threads: 1
    resources:
        gpu=1,
        runtime=720,
        mem_mb=8000,
    log:
        "logs/attack/{dataset}/{method}/seed{seed}/shard-{shard}.log",
    benchmark:
        "benchmarks/attack/{dataset}/{method}/seed{seed}/shard-{shard}.tsv"
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.attacks.run --spec {params.spec} --checkpoint {params.checkpoint} "
        "--data results/data/{wildcards.dataset} --shard {wildcards.shard} --out {params.out} --threads {threads} > {log} 2>&1"


rule gather_attack:
    input:
        shards=expand("results/attack/{{dataset}}/{{method}}/seed{{seed}}/{{attack}}/shard-{shard}.csv", shard=SHARDS),
        metrics=final_metrics,
    output:
        summary="results/attack/{dataset}/{method}/seed{seed}/{attack}/summary.json",
        examples="results/attack/{dataset}/{method}/seed{seed}/{attack}/examples.csv",
    params:
        offline=OFFLINE,
        checkpoint=final_checkpoint,
        epoch=attack_epoch,
        max_length=lambda w: config["datasets"][w.dataset]["max_length"],
        spec=lambda w: as_json(gather_spec(config, attack_identity(w))),
    threads: 1
    log:
        "logs/attack/{dataset}/{method}/seed{seed}/{attack}/gather.log",
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.attacks.metrics gather --shards {input.shards} --checkpoint {params.checkpoint} "
        "--data results/data/{wildcards.dataset} --split test --spec {params.spec} --max-length {params.max_length} "
        "--clean-from {input.metrics} --clean-epoch {params.epoch} "
        "--out-examples {output.examples} --out-summary {output.summary} > {log} 2>&1"


rule calibrated_attack:
    """Table 2's attack of a final model again on calibrated scores (attacks.calibrated): softmax(logits / T), T
    fitted on the dev split (floodx.calibration); every recipe in one process, each gathered at once."""
    input:
        metrics=final_metrics,
        resources=rules.fetch_attack_resources.output,
    output:
        expand("results/attack_calibrated/{{dataset}}/{{method}}/seed{{seed}}/{attack}/summary.json", attack=ATTACKS),
    params:
        offline=OFFLINE,
        spec=lambda w: as_json(attack_spec(
            config, w.dataset, ATTACKS, "test", epochs=[attack_epoch(w)], calibrate="dev", resources=RESOURCES,
            identity=result_identity(w.dataset, w.method, final_run_name(w.dataset, w.method, w.seed), w.seed,
                                     scores="calibrated"))),
        run=lambda w: final_run(w.dataset, w.method, w.seed),
        folder=lambda w: f"results/attack_calibrated/{w.dataset}/{w.method}/seed{w.seed}/{{recipe}}",  # run.py fills it
    threads: 1
    resources:
        gpu=1,
        runtime=720 * len(SHARDS),   # every example in one process: the time of all of Table 2's shards
        mem_mb=8000,
    log:
        "logs/attack_calibrated/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/attack_calibrated/{dataset}/{method}/seed{seed}.tsv"
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.attacks.run --spec {params.spec} --checkpoint {params.run} "
        "--data results/data/{wildcards.dataset} --out {params.folder}/shard-0.csv --summary {params.folder}/summary.json "
        "--clean-from {input.metrics} --threads {threads} > {log} 2>&1"


rule softmax_saturation:
    """How often the attacked model's fp32 softmax is exactly 1.0 on the test split (floodx.saturation): where it
    is, score-based attacks are blind, and Table 2's reading warns that Aua% may be masked scores."""
    input:
        metrics=final_metrics,
    output:
        "results/attack/{dataset}/{method}/seed{seed}/saturation.json",
    params:
        offline=OFFLINE,
        checkpoint=final_checkpoint,
        max_length=lambda w: config["datasets"][w.dataset]["max_length"],
        identity=lambda w: as_json(result_identity(w.dataset, w.method, final_run_name(w.dataset, w.method, w.seed),
                                                   w.seed, epoch=attack_epoch(w))),
    threads: 1
    log:
        "logs/attack/{dataset}/{method}/seed{seed}/saturation.log",
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.saturation --checkpoint {params.checkpoint} --data results/data/{wildcards.dataset} "
        "--identity {params.identity} --max-length {params.max_length} --threads {threads} --out {output} > {log} 2>&1"


rule epoch_attack:
    """Figure 4: accuracy under attack of every epoch's checkpoint, on a few test examples.

    One job per run attacks all its epochs, so TextAttack is imported once, not once an epoch.
    """
    input:
        metrics=final_metrics,
        resources=rules.fetch_attack_resources.output,
    output:
        expand("results/epoch_attack/{{dataset}}/{{method}}/seed{{seed}}/epoch-{epoch}/summary.json", epoch=EPOCHS),
    params:
        offline=OFFLINE,
        spec=lambda w: as_json(attack_spec(
            config, w.dataset, ATTACKS[:1], "test", epochs=EPOCHS, limit=config["figures"]["per_epoch_attack_examples"],
            identity=result_identity(w.dataset, w.method, final_run_name(w.dataset, w.method, w.seed), w.seed),
            resources=RESOURCES)),
        run=lambda w: final_run(w.dataset, w.method, w.seed),
        folder=lambda w: f"results/epoch_attack/{w.dataset}/{w.method}/seed{w.seed}/epoch-{{epoch}}",  # run.py fills it
    threads: 1
    resources:
        gpu=1,
        runtime=480,
        mem_mb=8000,
    log:
        "logs/epoch_attack/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/epoch_attack/{dataset}/{method}/seed{seed}.tsv"
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.attacks.run --spec {params.spec} --checkpoint {params.run} "
        "--data results/data/{wildcards.dataset} --out {params.folder}/shard-0.csv --summary {params.folder}/summary.json "
        "--clean-from {input.metrics} --threads {threads} > {log} 2>&1"
