"""The Hugging Face path, end to end, against a stand-in hub on 127.0.0.1 (tests/hub_standin.py).

The fetch rules download a GLUE-shaped data set repo (sst2, and mrpc with its text pair) and a tiny
BERT model repo through floodx's real loading code; then the hub goes away and prepare_data and
training run with the offline variables set, reading only the cache -- as on a cluster whose
compute nodes have no internet.
"""

import json
import os
import sys

import pytest
import yaml

from hub_standin import StandInHub, write_glue_repo, write_model_repo
from workflow_copy import copy_workflow, snakemake

MODEL = "floodx-standin/tiny-bert"
GLUE_SPEC = {"source": "huggingface", "dev_fraction": 0.25, "max_length": 32}
HUB_CONFIG = {
    "seeds": [5],
    "model": {"source": "huggingface", "name_or_path": MODEL},
    "datasets": {"sst2": {**GLUE_SPEC, "name": "sst2"}, "mrpc": {**GLUE_SPEC, "name": "mrpc"}},
    "training": {"epochs": 1, "batch_size": 8, "eval_batch_size": 32, "learning_rate": 1.0e-3},
    "methods": ["finetune"],
    "profiling": {"steps": 1},
}
FETCHED = ["resources/hf/datasets/sst2.json", "resources/hf/datasets/mrpc.json",
           "resources/hf/models/floodx-standin__tiny-bert.json"]
TRAINED = [f"results/train/{ds}/finetune/seed5/metrics.json" for ds in ("sst2", "mrpc")]


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")  # conftest sets them


def environment(endpoint):
    """A login node's environment: the hub reachable and no offline variable set (the rules set them)."""
    bin_dir = os.path.dirname(sys.executable)
    env = {key: value for key, value in os.environ.items() if key not in OFFLINE_VARIABLES}
    return {**env, "PYTHONUNBUFFERED": "1", "HF_ENDPOINT": endpoint, "HF_HOME": "resources/hf",
            "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}


@pytest.mark.slow
def test_fetch_from_the_hub_then_prepare_and_train_offline(tmp_path):
    copy_workflow(tmp_path, share_resources=False)
    write_glue_repo(tmp_path / "hub")
    write_model_repo(tmp_path / "hub", MODEL)
    (tmp_path / "hub.yaml").write_text(yaml.safe_dump(HUB_CONFIG))
    command = ("--cores", "2", "--configfile", "hub.yaml")

    with StandInHub(tmp_path / "hub") as hub:
        fetch = snakemake(tmp_path, *FETCHED, *command, env=environment(hub.endpoint))
        endpoint = hub.endpoint
    assert fetch.returncode == 0, fetch.stdout[-4000:] + fetch.stderr[-4000:]
    fetched = {path for method, path in hub.requests if method == "GET"}
    assert {"/datasets/nyu-mll/glue/resolve/main/README.md", f"/{MODEL}/resolve/main/model.safetensors"} <= fetched
    for config in ("sst2", "mrpc"):
        assert any(p.endswith(f"/{config}/train-00000-of-00001.parquet") for p in fetched)
    marker = json.loads((tmp_path / "resources/hf/datasets/mrpc.json").read_text())
    assert marker["hub"] == "nyu-mll/glue (mrpc)" and marker["rows"]["train"] == 40

    # The hub is gone (its port closed): whatever still needs it fails instead of passing unnoticed.
    offline = snakemake(tmp_path, *TRAINED, *command, env=environment(endpoint))
    assert offline.returncode == 0, offline.stdout[-4000:] + offline.stderr[-4000:]
    assert "fetch_hf" not in offline.stdout + offline.stderr          # nothing fetched a second time
    meta = json.loads((tmp_path / "results/data/mrpc/meta.json").read_text())
    assert meta["label_names"] == ["not_equivalent", "equivalent"]    # from the hub's features
    first = json.loads((tmp_path / "results/data/mrpc/train.jsonl").read_text().splitlines()[0])
    assert first["text_pair"]
    sizes = {split: meta["sizes"][split] for split in ("train", "dev", "test")}
    assert sizes == {"train": 30, "dev": 10, "test": 20}              # GLUE validation is the test split
    metrics = json.loads((tmp_path / TRAINED[1]).read_text())
    assert metrics["dataset"] == "mrpc" and len(metrics["epochs"]) == 1


def test_the_stand_in_refuses_what_the_hub_would(tmp_path):
    """The stand-in answers a missing file and an unknown repo as the hub does, so the clients' error paths
    run as they would against huggingface.co."""
    import requests

    write_model_repo(tmp_path, MODEL)
    with StandInHub(tmp_path) as hub:
        missing = requests.head(f"{hub.endpoint}/{MODEL}/resolve/main/adapter_config.json", timeout=10)
        unknown = requests.get(f"{hub.endpoint}/api/models/nobody/nothing", timeout=10)
        found = requests.head(f"{hub.endpoint}/{MODEL}/resolve/main/config.json", timeout=10)
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    assert unknown.status_code == 401 and unknown.headers["X-Error-Code"] == "RepositoryNotFound"
    assert found.status_code == 200 and len(found.headers["X-Repo-Commit"]) == 40
