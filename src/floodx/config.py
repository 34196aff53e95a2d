"""The workflow config: validation against workflow/schemas and the per-job specs built from it.

The Snakefile validates before any job runs; each rule then passes a job exactly the slice of the
config it needs (`run_spec`, ...), so a changed parameter reruns only the jobs it affects.
"""

import copy
import re
from pathlib import Path

import yaml

from .errors import ConfigError
from .names import BASE_METHODS, FLOOD_METHODS, PROBE_METHOD, REFERENCE, level_string, parse_run

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
BASE_CONFIG = SCHEMA.parents[2] / "config" / "config.yaml"   # every run reads it first (workflow/Snakefile)



def dataset_entry_schema():
    """The schema's properties of one `datasets:` entry: every key a data set may have, with defaults."""
    return yaml.safe_load(SCHEMA.read_text())["properties"]["datasets"]["additionalProperties"]["properties"]


def _fill_defaults(validator_class):
    """A jsonschema validator that also writes `default:` values into the instance."""
    from jsonschema import validators

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error):
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


# Figure 4's methods in the paper (fine-tune, FreeLB, Flooding-X): figures.per_epoch_methods when not given.
FIGURE4_METHODS = ("finetune", "freelb", "flooding_x")

# The paper's data sets (Tables 2-3), in its order.
PAPER_DATASETS = ("imdb", "ag_news", "sst2", "qnli", "mrpc")


def paper_counterpart(spec):
    """{"paper": data set, "stand_in": bool} that a data set spec is compared with, or None.

    `paper_dataset` in the spec decides when given (null: no comparison); otherwise a Hugging Face
    source named like one of the paper's data sets is that data set, the embedded Rotten Tomatoes
    sentences stand in for SST-2, and a local file is compared with nothing: the data set's id
    never decides."""
    same = spec.get("source") == "huggingface"
    if "paper_dataset" in spec:
        paper = spec["paper_dataset"]
        return None if paper is None else {"paper": paper, "stand_in": not (same and spec.get("name") == paper)}
    if same and spec.get("name") in PAPER_DATASETS:
        return {"paper": spec["name"], "stand_in": False}
    if spec.get("source") == "embedded":
        return {"paper": "sst2", "stand_in": True}
    return None


def paper_map(config):
    """{our data set: paper_counterpart} for the data sets that have one (the tables' --paper-map)."""
    pairs = {name: paper_counterpart(spec) for name, spec in config["datasets"].items()}
    return {name: pair for name, pair in pairs.items() if pair}


# A Hugging Face hub id: a name or org/name of letters, digits, '-', '_' and '.' (no '--', no '..').
HUB_ID = re.compile(r"(?!.*(--|\.\.))[\w.-]+(/[\w.-]+)?")


def validate_config(config, source="config"):
    """Validate (and fill defaults into) a config dict; ConfigError names the offending key."""
    from jsonschema import Draft202012Validator

    schema = yaml.safe_load(SCHEMA.read_text())
    validator = _fill_defaults(Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            if err.validator == "additionalProperties":
                extra = re.findall(r"'([^']+)'", err.message)
                where = _key_path(err)
                lines.append(f"unknown config key(s) {extra} under {where}")
            else:
                lines.append(f"config key {_key_path(err)}: {err.message}")
        raise ConfigError(f"{source} is invalid:\n  " + "\n  ".join(lines))
    _check_consistency(config, source)
    return config


def _check_consistency(config, source):
    for name, ds in config["datasets"].items():
        if ds["source"] == "local" and not ds.get("path"):
            raise ConfigError(f"{source}: datasets.{name}.path is required for source: local")
        if ds["source"] in ("embedded", "huggingface") and not ds.get("name"):
            raise ConfigError(f"{source}: datasets.{name}.name is required for source: {ds['source']}")
    model = config["model"]
    name = model.get("name_or_path")
    if model["source"] == "huggingface" and name and not Path(name).is_dir() \
            and not HUB_ID.fullmatch(name):
        raise ConfigError(f"{source}: model.name_or_path '{name}' is no local folder (none exists "
                          "there) and no Hugging Face id (name or org/name)")
    grid = config["flooding"]["grid"]
    if grid["low"] > grid["high"]:
        raise ConfigError(f"{source}: flooding.grid.low ({grid['low']}) is above flooding.grid.high ({grid['high']})")
    # Each method's parameters are checked by the method itself, now, not when its first job builds it.
    from .methods import build_method

    method_params = config.get("method_params") or {}
    one_run_methods = [m for m in config["methods"] if m in BASE_METHODS]   # (flood levels come from searches)
    for method in dict.fromkeys(one_run_methods + list(method_params)):
        try:
            build_method(method, **(method_params.get(method) or {}))
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
    if iflood_follows_flooding(config) and "flooding" not in config["methods"]:
        raise ConfigError(f"{source}: method_params.iflood.flood_level is 'flooding' (Flooding's dev choice), "
                          "but flooding is not in methods")
    figures = config["figures"]
    if figures.get("per_epoch_methods") is None:   # the paper's Figure 4 methods among those that run
        figures["per_epoch_methods"] = [m for m in FIGURE4_METHODS if m in config["methods"]] or config["methods"][:1]
    for name in figures["per_epoch_methods"]:
        if name not in config["methods"]:
            raise ConfigError(f"{source}: figures.per_epoch_methods names '{name}', which is not in methods")
    calibrated = config["attacks"].get("calibrated", [])
    for name in calibrated:
        if name not in config["methods"]:
            raise ConfigError(f"{source}: attacks.calibrated names '{name}', which is not in methods")
    if calibrated and REFERENCE not in calibrated:
        raise ConfigError(f"{source}: attacks.calibrated lists {calibrated} without {REFERENCE}, the "
                          "reference of its paired tests: add it")


def parse_spec(text):
    """A job's --spec argument (JSON built by the Snakefile)."""
    if not text:
        return {}
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--spec is not valid JSON: {err}") from None


def _read_yaml(path):
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None


def merge_overlay(base, overlay):
    """Snakemake's merge of a --configfile: key by key, except `datasets`, which an overlay replaces whole."""
    def merge(into, values):
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = copy.deepcopy(value)
    if "datasets" in overlay:
        base["datasets"] = copy.deepcopy(overlay["datasets"])
    merge(base, {k: v for k, v in overlay.items() if k != "datasets"})
    return base


def run_config(overlays=()):
    """The config a run with these --configfile overlays sees: config/config.yaml, then each overlay, validated."""
    config = _read_yaml(BASE_CONFIG)
    for path in overlays:
        merge_overlay(config, _read_yaml(path))
    return validate_config(config, source=" + ".join(map(str, overlays)) or str(BASE_CONFIG))


def load_config(path):
    """One config file as a run reads it: config/config.yaml itself, or an overlay of it."""
    if Path(path).resolve() == BASE_CONFIG.resolve():
        return run_config()
    return run_config([path])


# ---------------------------------------------------------------- grids and runs
def grid_levels(low, high, step):
    count = int(round((high - low) / step))
    return [level_string(low + i * step) for i in range(count + 1) if low + i * step <= high + 1e-9]


def flooding_grid(config):
    grid = config["flooding"]["grid"]
    return grid_levels(grid["low"], grid["high"], grid["step"])


def dataset_training(config, dataset):
    """Training settings with the data set's own batch size and max length."""
    training = dict(config["training"])
    ds = config["datasets"][dataset]
    training["max_length"] = ds.get("max_length", 128)
    if ds.get("batch_size"):
        training["batch_size"] = ds["batch_size"]
    return training


def reuses_grid_attack(config, method):
    """Whether Table 2's attack of `method` with the search recipe copies its chosen run's grid attack
    (figures.grid_test_attack): a flood method's chosen run is one of the searched runs, attacked there on the
    same checkpoint, examples (one shard) and recipe, so the rows would be the same."""
    attacks = config["attacks"]
    return bool(config["figures"]["grid_test_attack"] and method in FLOOD_METHODS and attacks["shards"] == 1
                and config["search"]["attack"] in attacks["recipes"])


def attacked_epoch(config):
    """The checkpoint the attacks read: `attacks.epoch`, or the last one (the paper)."""
    return config["attacks"]["epoch"] or config["training"]["epochs"]


def per_epoch_window(config):
    """True when Flooding-X (but not Flooding) is attacked per epoch: then a flood run must know
    the accordance window to tell whether Figure 4 may read its every epoch."""
    wanted = config["figures"]["per_epoch_methods"]
    return config["training"]["keep_checkpoints"] != "all" and "flooding_x" in wanted and "flooding" not in wanted


def figure4_seed(config):
    """The seed whose runs Figure 4 attacks epoch by epoch (the first)."""
    return int(config["seeds"][0])


def kept_epochs(config, run, window_levels=(), seed=None):
    """Checkpoints a training run keeps besides its final one (None = every epoch).

    Figure 4 attacks every epoch of `figures.per_epoch_methods`, for its seed only. A flood run
    keeps them all when Flooding is among them, or when Flooding-X is and its level lies in the
    accordance window (`window_levels`); the wide grid's other runs, and every run of the other
    seeds, keep only what the attacks read. (`chosen` keeps the same; floodx.retention removes the unchosen
    flood runs' weights after the choice.)
    """
    if config["training"]["keep_checkpoints"] == "all":
        return None
    if seed is not None and int(seed) != figure4_seed(config):
        return [attacked_epoch(config)]
    wanted = set(config["figures"]["per_epoch_methods"])
    method, params = parse_run(run)
    if method == "flooding":
        every = "flooding" in wanted or (
            "flooding_x" in wanted and level_string(params["flood_level"]) in set(window_levels))
    else:
        every = method in wanted
    return None if every else [attacked_epoch(config)]


def adaflood_losses_path(dataset, seed):
    return f"results/aux/{dataset}/seed{seed}/losses.json"


def adaflood_folds(config):
    from .methods import build_method

    return build_method("adaflood", **(config.get("method_params", {}).get("adaflood") or {})).folds


def iflood_follows_flooding(config):
    """iFlood trains at the level Flooding's dev search chose (method_params.iflood.flood_level: flooding)."""
    from .methods.iflood import FLOODING_CHOICE

    return "iflood" in config["methods"] and \
        (config.get("method_params", {}).get("iflood") or {}).get("flood_level") == FLOODING_CHOICE


def run_spec(config, dataset, run, seed, resources="resources", window_levels=(), flooding_choice=None):
    method, params = parse_run(run)
    if method in config.get("method_params", {}):
        params = {**config["method_params"][method], **params}
    if method == "adaflood":
        params = {**params, "aux_losses": adaflood_losses_path(dataset, seed)}
    if method == "iflood" and iflood_follows_flooding(config):
        if flooding_choice is None:
            raise ConfigError(f"iflood on {dataset} seed {seed}: Flooding's dev choice is needed for its flood level")
        params = {**params, "flood_level": float(flooding_choice)}
    return {
        "dataset": dataset, "run": run, "method": method, "method_params": params,
        "seed": int(seed), "model": config["model"], "training": dataset_training(config, dataset),
        "resources": resources, "keep_epochs": kept_epochs(config, run, window_levels, seed),
    }


def aux_fold_spec(config, dataset, seed, fold, resources="resources"):
    """One AdaFlood auxiliary run (floodx.auxiliary): fine-tuning on the other folds, the final epoch kept."""
    spec = run_spec(config, dataset, "finetune", seed, resources)
    return {**spec, "run": f"adaflood-aux-fold{fold}", "fold": int(fold), "folds": adaflood_folds(config),
            "keep_epochs": []}   # only the final checkpoint (a resumed job scores with it)


def window_spec(config):
    """What decides the window: the crossing rule (probe) and the level grid (search)."""
    probe, search = config["probe"], config["search"]
    return {"step": search["step"], "max_levels": search["max_levels"], "direction": search["direction"],
            "confirm_sub_epochs": probe["confirm_sub_epochs"], "max_epochs": probe["max_epochs"]}


def window_job_spec(config, dataset, seed):
    """The window job: the window settings and what the window belongs to."""
    return window_spec(config) | {"identity": {"dataset": dataset, "seed": int(seed)}}


def search_spec(config, dataset, flood_method, seed):
    """The flood-level choice: its dev criterion, the runs it cost besides the candidates (Flooding-X's probe)."""
    return {"identity": {"dataset": dataset, "method": flood_method, "seed": int(seed)},
            "criterion": config["search"]["criterion"], "extra_runs": 1 if flood_method == "flooding_x" else 0}


def probe_spec(config, dataset, seed, resources="resources"):
    """Fine-tuning's run spec, trained for `probe.max_epochs` and stopped by the crossing rule."""
    spec = run_spec(config, dataset, "finetune", seed, resources)
    spec["keep_epochs"] = []          # only the final checkpoint (it holds the probe's rows)
    probe = config["probe"]
    spec["training"]["epochs"] = probe["max_epochs"]
    spec.update(run=PROBE_METHOD, method=PROBE_METHOD, method_params={},
                sub_epoch_batches=probe["sub_epoch_batches"],
                stop=window_spec(config) | {"stop_after_sub_epochs": probe["stop_after_sub_epochs"]})
    return spec


def profile_spec(config, dataset, seed, resources="resources"):
    """Table 3: every method but Flooding-X (Flooding's step at one level), timed on fine-tuning's run."""
    return {"dataset": dataset, "methods": [m for m in config["methods"] if m != "flooding_x"],
            "steps": config["profiling"]["steps"], "seed": int(seed), "flood_level": 0.1,
            "base": run_spec(config, dataset, "finetune", seed, resources),
            "method_params": config["method_params"]}


def attack_spec(config, dataset, recipes, subset="test", *, epochs=None, limit=None, num_shards=1, identity=None,
                resources="resources", calibrate=None):
    """An attack job (floodx.attacks.run): which recipes on which subset, and how (mode, budget, length);
    `calibrate`: the split a score temperature is fitted on (the calibrated attacks), else no key."""
    return {"recipes": list(recipes), "mode": config["attacks"]["mode"], "subset": subset,
            "epochs": list(epochs) if epochs else None, "num_shards": num_shards,
            "query_budget": config["attacks"]["query_budget"], "limit": limit,
            "max_length": config["datasets"][dataset]["max_length"], "resources": resources, "identity": identity,
            "precision": config["attacks"]["precision"]} | ({"calibrate": calibrate} if calibrate else {})


def gather_spec(config, identity):
    """Gathering an attack's shards: what the result is (written into summary.json) and how it was attacked."""
    return {"identity": identity, "attacks": {k: v for k, v in config["attacks"].items() if k != "calibrated"}}


def job_arguments(prog, description, out_help):
    """The command line every training-like job shares: its spec, its data, where it writes, threads."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--spec", required=True, help="JSON job spec (built by floodx.config for the rule)")
    parser.add_argument("--data", required=True, help="prepared data set folder")
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--threads", type=int, default=None)
    return parser
