"""Config validation: every shipped config is valid; bad ones name the offending key."""

import copy
from pathlib import Path

import pytest
import yaml

from floodx import names
from floodx.config import grid_levels, load_config, probe_spec, run_spec, validate_config
from floodx.errors import ConfigError
from floodx.names import flood_run, parse_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def default_config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_the_successors_overlay_validates_over_the_evidence_config():
    from floodx.config import run_config

    config = run_config([ROOT / "config" / "evidence.yaml", ROOT / "config" / "successors.yaml"])
    assert {"iflood", "adaflood", "ttso", "ttso_pp", "als"} <= set(config["methods"])
    assert config["datasets"]["rt"]["attack_examples"] == 300          # the evidence run's own data and budget


def test_the_evidence_runs_training_spec_is_the_one_its_seed_42_jobs_recorded():
    """runs/evidence's jobs recorded this training spec (progress.json, 2026-12-01). A default that
    changes it would make Snakemake retrain all of them, and a later seed differ from seed 42."""
    from floodx.config import run_config

    recorded = {"batch_size": 32, "bf16": "auto", "epochs": 10, "eval_batch_size": 128, "group_by_length": True,
                "keep_checkpoints": "attacked", "learning_rate": 0.0002, "max_grad_norm": 1.0, "max_length": 64,
                "warmup_ratio": 0.1, "weight_decay": 0.01}
    for overlays in (["evidence.yaml"], ["evidence.yaml", "successors.yaml"], ["evidence.yaml", "seeds.yaml"]):
        config = run_config([ROOT / "config" / name for name in overlays])
        assert run_spec(config, "rt", "finetune", 43)["training"] == recorded, overlays


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(ROOT / "config" / name)
    assert config["methods"]
    assert config["search"]["step"] == 0.01


def test_defaults_are_filled(default_config):
    """The schema's defaults fill the keys config.yaml leaves out (test_each_default_lives_in_one_layer)."""
    del default_config["search"]
    config = validate_config(default_config)
    assert config["search"] == {"direction": "first"}
    assert config["attacks"]["precision"] == "fp32" and config["training"]["bf16"] == "auto"
    assert config["datasets"]["rt"]["text_column"] == "text"


def test_an_overlay_is_read_over_the_default_as_a_run_reads_it(tmp_path):
    overlay = tmp_path / "mine.yaml"
    overlay.write_text(yaml.safe_dump({"training": {"epochs": 3}, "datasets": {"mine": {
        "source": "local", "path": str(tmp_path / "mine.csv")}}}))
    config = load_config(overlay)
    assert config["training"]["epochs"] == 3 and config["training"]["learning_rate"] == 2.0e-4   # the rest: config.yaml
    assert list(config["datasets"]) == ["mine"]                                                  # replaced whole


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.update(bogus=1), r"unknown config key\(s\) \['bogus'\] under \(top level\)"),
    (lambda c: c["training"].update(lr=1), r"unknown config key\(s\) \['lr'\] under training"),
    (lambda c: c["datasets"]["rt"].update(colour="red"), r"\['colour'\] under datasets.rt"),
    (lambda c: c.update(methods=["finetune", "sam"]), r"config key methods.1: 'sam' is not one of"),
    (lambda c: c["datasets"]["rt"].update(source="s3"), r"config key datasets.rt.source"),
    (lambda c: c["training"].update(epochs=0), r"config key training.epochs: 0 is less than the minimum"),
    (lambda c: c["flooding"]["grid"].update(low=0.5, high=0.1), r"flooding.grid.low \(0.5\) is above"),
    (lambda c: c["datasets"].update(mine={"source": "local"}), r"datasets.mine.path is required"),
    (lambda c: c["figures"].update(per_epoch_methods=["pgd"]) or c.update(methods=["finetune"]),
     r"figures.per_epoch_methods names 'pgd'"),
    (lambda c: c["attacks"].update(calibrated=["finetune", "ttso"]), r"attacks.calibrated names 'ttso'"),
    (lambda c: c["attacks"].update(calibrated=["pgd"]), r"attacks.calibrated lists \['pgd'\] without finetune"),
    (lambda c: c.update(model={"source": "huggingface", "name_or_path": "./no/such/model"}),
     r"model.name_or_path './no/such/model' is no local folder"),
])
def test_bad_config_names_the_key(default_config, mutate, message):
    config = copy.deepcopy(default_config)
    mutate(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_unreadable_config_file_is_named(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("seeds: [1\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(bad)


def test_grid_levels_are_fixed_strings():
    assert grid_levels(0.05, 0.2, 0.05) == ["0.05", "0.10", "0.15", "0.20"]
    assert grid_levels(0.01, 0.05, 0.01) == ["0.01", "0.02", "0.03", "0.04", "0.05"]
    assert flood_run(0.1) == "flooding-b0.10"


def test_run_names_round_trip(default_config):
    config = validate_config(default_config)
    assert parse_run("flooding-b0.13") == ("flooding", {"flood_level": 0.13})
    assert parse_run("pgd") == ("pgd", {})
    with pytest.raises(ConfigError, match="unknown run 'sam'"):
        parse_run("sam")
    spec = run_spec(config, "rt", "flooding-b0.13", 42)
    assert spec["method_params"] == {"flood_level": 0.13}
    assert spec["training"]["max_length"] == config["datasets"]["rt"]["max_length"]
    assert probe_spec(config, "rt", 42)["method"] == "accordance_probe"


def test_runs_keep_only_the_checkpoints_that_are_read(default_config):
    from floodx.config import kept_epochs, per_epoch_window

    config = validate_config(default_config)
    config["figures"]["per_epoch_methods"] = ["finetune", "flooding_x"]
    config["training"]["epochs"] = 10
    assert kept_epochs(config, "finetune") is None                     # Figure 4 reads every epoch
    assert kept_epochs(config, "pgd") == [10]
    assert per_epoch_window(config)
    assert kept_epochs(config, "flooding-b0.13", ["0.12", "0.13"]) is None   # inside the window
    assert kept_epochs(config, "flooding-b0.30", ["0.12", "0.13"]) == [10]  # the wide grid only
    config["seeds"] = [42, 43]
    assert kept_epochs(config, "finetune", seed=42) is None                 # Figure 4's seed
    assert kept_epochs(config, "finetune", seed=43) == [10]                 # the other seeds: attacked only
    assert run_spec(config, "rt", "finetune", 43)["keep_epochs"] == [10]
    config["attacks"]["epoch"] = 4
    assert kept_epochs(config, "pgd") == [4]
    config["figures"]["per_epoch_methods"] = ["flooding"]
    assert kept_epochs(config, "flooding-b0.30") is None and not per_epoch_window(config)
    config["training"]["keep_checkpoints"] = "all"
    assert kept_epochs(config, "pgd") is None and not per_epoch_window(config)
    assert probe_spec(config, "rt", 42)["keep_epochs"] == []


def test_probe_spec_carries_its_own_length_and_stop_rule(default_config):
    config = validate_config(default_config)
    config["training"]["epochs"] = 3
    spec = probe_spec(config, "rt", 42)
    assert spec["training"]["epochs"] == config["probe"]["max_epochs"] == 10
    assert spec["stop"] == {"step": 0.01, "max_levels": 3, "direction": "first", "confirm_sub_epochs": 3,
                            "max_epochs": 10, "stop_after_sub_epochs": 2}


def test_the_paper_comparison_follows_the_source_not_the_id():
    from floodx.config import paper_counterpart

    assert paper_counterpart({"source": "local", "path": "sst2.csv"}) is None       # an id 'sst2' decides nothing
    assert paper_counterpart({"source": "huggingface", "name": "sst2"}) == {"paper": "sst2", "stand_in": False}
    assert paper_counterpart({"source": "embedded", "name": "rotten-tomatoes"}) == {"paper": "sst2", "stand_in": True}
    assert paper_counterpart({"source": "local", "path": "x.csv", "paper_dataset": "imdb"}) == {"paper": "imdb",
                                                                                                "stand_in": True}
    assert paper_counterpart({"source": "huggingface", "name": "sst2", "paper_dataset": None}) is None


def test_the_schema_enums_use_the_one_vocabulary():
    """Method and recipe names are defined once (floodx.names); the schema's enums must agree."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    assert set(schema["methods"]["items"]["enum"]) == set(names.METHODS)
    assert set(schema["figures"]["properties"]["per_epoch_methods"]["items"]["enum"]) == set(names.METHODS)
    assert set(schema["attacks"]["properties"]["recipes"]["items"]["enum"]) == set(names.RECIPES)
    assert set(schema["search"]["properties"]["attack"]["enum"]) == set(names.RECIPES)
    assert set(names.BASE_METHODS) | set(names.FLOOD_METHODS) == set(names.METHODS)
    assert set(names.METHOD_LABELS) == set(names.METHODS) and set(names.RECIPE_LABELS) == set(names.RECIPES)


def test_figure4_methods_follow_the_methods_unless_given():
    """An overlay that sets `methods:` needs no figures.per_epoch_methods; an explicit list is checked."""
    import copy

    from floodx.config import load_config, validate_config
    from floodx.errors import ConfigError

    base = load_config("config/config.yaml")
    assert base["figures"]["per_epoch_methods"] == ["finetune", "freelb", "flooding_x"]
    config = copy.deepcopy(base)
    config["methods"], config["figures"]["per_epoch_methods"] = ["finetune", "flooding", "flooding_x"], None
    assert validate_config(config)["figures"]["per_epoch_methods"] == ["finetune", "flooding_x"]
    config["figures"]["per_epoch_methods"] = ["freelb"]
    with pytest.raises(ConfigError, match="per_epoch_methods names 'freelb'"):
        validate_config(config)


def test_the_config_reference_is_generated_from_the_schema_and_in_sync():
    from floodx.config_reference import reference

    text = reference()
    assert (Path(__file__).resolve().parents[1] / "config" / "README.md").read_text(encoding="utf-8") == text, \
        "config/README.md is stale: python -m floodx.config_reference --out config/README.md"
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) > 60 and all(not line.endswith("|  |") for line in rows), "a key without a meaning"


def test_each_default_lives_in_one_layer():
    """config.yaml is read by every run, so a schema default for a key it sets would never apply (and would
    mislead whoever reads the schema): a key has its default in config.yaml or in the schema, not both."""
    import yaml

    from floodx.config import SCHEMA

    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load(SCHEMA.read_text())
    base = yaml.safe_load((root / "config" / "config.yaml").read_text())
    both = []

    def walk(node, values, path):
        for name, child in (node.get("properties") or {}).items():
            if isinstance(values, dict) and name in values and child.get("default", {}) != {}:
                both.append(path + name)
            if "properties" in child:
                walk(child, values.get(name) if isinstance(values, dict) else None, f"{path}{name}.")
    walk(schema, base, "")
    assert not both, f"defaults in both config/config.yaml and the schema: {both}"


def test_the_paper_config_is_paper_sized_where_the_default_is_cpu_sized():
    """paper.yaml inherits config.yaml's CPU-sized values unless it sets them: the figures' sample sizes."""
    from floodx.config import load_config

    paper = load_config("config/paper.yaml")
    assert paper["figures"]["noise_draws"] >= 5 and paper["figures"]["noise_examples"] >= 200
    assert paper["figures"]["per_epoch_attack_examples"] >= 100 and paper["profiling"]["steps"] >= 50


def test_a_typo_in_method_params_stops_at_validation():
    import copy

    from floodx.config import load_config, validate_config
    from floodx.errors import ConfigError

    config = copy.deepcopy(load_config("config/config.yaml"))
    config["method_params"] = {"pgd": {"adv_step": 5}}
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['adv_step'\] for method 'pgd'"):
        validate_config(config)
    config["method_params"] = {"pgd": {"adv_steps": 0}}
    with pytest.raises(ConfigError, match="adv_steps"):
        validate_config(config)
    config["method_params"] = {"pgd": {"adv_steps": 2}}
    assert validate_config(config)["method_params"]["pgd"] == {"adv_steps": 2}
