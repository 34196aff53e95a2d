"""Paper-mode attack resources: where they live under `resources/` and how to fetch them.

The stock TextAttack 0.3.11 recipes download their resources at run time (TextAttack's S3
bucket, TF-Hub, the Hugging Face hub, nltk.download). Compute nodes here have no internet, so
paper mode reads everything from `resources/`, and this module fetches it there once, on a
machine that has internet (a login node):

    python -m floodx.attacks.fetch --resources resources

Layout (the caches TextAttack, TF-Hub, Hugging Face and NLTK use themselves, so that a plain
TextAttack run with TA_CACHE_DIR=resources/textattack, HF_HOME=resources/hf and
NLTK_DATA=resources/nltk_data finds the same files):

- `textattack/word_embeddings/paragramcf/`: counter-fitted Paragram-SL999 embeddings
  (TextFooler, TextBugger), from TextAttack's S3 bucket.
- `textattack/<sha1 of the TF-Hub URL>/`: Universal Sentence Encoder v3 (all three recipes),
  the TF-Hub cache layout. Running it needs `pip install tensorflow tensorflow_hub`
  (TextAttack's `tensorflow` extra); fetching it does not.
- `hf/hub/models--bert-base-uncased/`: the masked LM of BERT-Attack.
- `nltk_data/taggers/averaged_perceptron_tagger_eng/`, `nltk_data/taggers/universal_tagset/`:
  TextFooler's part-of-speech constraint. `nltk_data/corpora/{stopwords,wordnet}`, which
  `import textattack` needs in both modes, come from `floodx.corpora.ensure_nltk` (offline).
"""

import argparse
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ResourceError, run_main

RECIPES = ("textfooler", "textbugger", "bertattack")
FETCH_COMMAND = "python -m floodx.attacks.fetch --resources {resources}"

PARAGRAMCF_URL = "https://textattack.s3.amazonaws.com/word_embeddings/paragramcf"
USE_URL = "https://tfhub.dev/google/universal-sentence-encoder/3"
USE_LARGE_URL = "https://tfhub.dev/google/universal-sentence-encoder-large/5"
BERT_MLM = "bert-base-uncased"
# WordNet and the stop words come from floodx.resources (offline, both modes), not from here.
NLTK_PACKAGES = ("averaged_perceptron_tagger_eng", "universal_tagset")


def tfhub_cache_name(url):
    """Folder name TF-Hub's cache gives a module URL (sha1 of the URL)."""
    return hashlib.sha1(url.encode("utf8")).hexdigest()


@dataclass(frozen=True)
class PaperResource:
    name: str          # what it is, as an error message names it
    relpath: str       # file or folder under resources/ whose presence means "fetched"
    recipes: tuple     # recipes that need it

    def path(self, resources_dir):
        return Path(resources_dir) / self.relpath


PAPER_RESOURCES = (
    PaperResource("counter-fitted Paragram-SL999 embeddings 'paragramcf' (TextAttack S3)",
                  "textattack/word_embeddings/paragramcf/nn.npy", ("textfooler", "textbugger")),
    PaperResource("Universal Sentence Encoder v3 (TF-Hub)",
                  f"textattack/{tfhub_cache_name(USE_URL)}/saved_model.pb", RECIPES),
    PaperResource("bert-base-uncased masked LM (Hugging Face hub)",
                  "hf/hub/models--bert-base-uncased/refs/main", ("bertattack",)),
    PaperResource("NLTK averaged perceptron tagger",
                  "nltk_data/taggers/averaged_perceptron_tagger_eng/"
                  "averaged_perceptron_tagger_eng.weights.json", ("textfooler",)),
    PaperResource("NLTK universal tagset map", "nltk_data/taggers/universal_tagset/en-ptb.map",
                  ("textfooler",)),
)


def missing_paper_resources(recipe, resources_dir):
    """The paper-mode resources `recipe` needs that are not under `resources_dir`."""
    return [r for r in PAPER_RESOURCES
            if recipe in r.recipes and not r.path(resources_dir).exists()]


def check_paper_resources(recipe, resources_dir):
    """Raise ResourceError naming every missing resource, where it was expected and the fix."""
    missing = missing_paper_resources(recipe, resources_dir)
    if missing:
        lines = "; ".join(f"{r.name} (expected at {r.path(resources_dir)})" for r in missing)
        raise ResourceError(
            f"attacks.mode 'paper' for recipe '{recipe}' needs resources that are not there: "
            f"{lines}. Fetch them on a machine with internet with "
            f"`{FETCH_COMMAND.format(resources=resources_dir)}` (running the Universal Sentence "
            "Encoder also needs `pip install tensorflow tensorflow_hub`), or use attacks.mode: "
            "offline (registry stand-ins, see docs/attacks.md)."
        )


def bert_cache_dir(resources_dir):
    return Path(resources_dir) / "hf" / "hub"


def use_model_dir(resources_dir, large=False):
    url = USE_LARGE_URL if large else USE_URL
    return Path(resources_dir) / "textattack" / tfhub_cache_name(url)


# ---------------------------------------------------------------- fetching (needs internet)

def _download(url, dest):
    with urllib.request.urlopen(url, timeout=120) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def _fetch_paragramcf(resources_dir):
    target = Path(resources_dir) / "textattack" / "word_embeddings" / "paragramcf"
    if (target / "nn.npy").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "paragramcf.zip"
        _download(PARAGRAMCF_URL, archive)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(Path(tmp) / "x")
        found = next((p.parent for p in (Path(tmp) / "x").rglob("nn.npy")), None)
        if found is None:
            raise ResourceError(f"{PARAGRAMCF_URL}: the archive has no nn.npy")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(found, target)
    return target


def _fetch_use(resources_dir):
    target = use_model_dir(resources_dir)
    if (target / "saved_model.pb").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "use.tar.gz"
        _download(USE_URL + "?tf-hub-format=compressed", archive)
        with tarfile.open(archive) as tf:
            tf.extractall(Path(tmp) / "x", filter="data")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(Path(tmp) / "x", target)
    (target.parent / f"{target.name}.descriptor.txt").write_text(f"Module: {USE_URL}\n")
    return target


def _fetch_bert(resources_dir):
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(
        BERT_MLM, cache_dir=bert_cache_dir(resources_dir),
        allow_patterns=["*.json", "*.txt", "*.safetensors"],
    ))


def _fetch_nltk(resources_dir):
    import nltk

    target = Path(resources_dir) / "nltk_data"
    for package in NLTK_PACKAGES:
        if not nltk.download(package, download_dir=str(target), quiet=True, raise_on_error=True):
            raise ResourceError(f"nltk.download('{package}') failed")
    return target


def fetch_paper_resources(resources_dir, recipes=RECIPES):
    """Fetch what paper mode needs for `recipes` into `resources_dir` (needs internet)."""
    needed = {r.relpath for r in PAPER_RESOURCES if set(r.recipes) & set(recipes)}
    steps = [
        (_fetch_paragramcf, "paragramcf"),
        (_fetch_use, tfhub_cache_name(USE_URL)),
        (_fetch_bert, "bert-base-uncased"),
        (_fetch_nltk, "nltk_data/"),
    ]
    done = []
    for fetch, marker in steps:
        if any(marker in relpath for relpath in needed):
            try:
                done.append(fetch(resources_dir))
            except OSError as err:
                raise ResourceError(
                    f"fetching {marker} into {resources_dir} failed ({err}); this needs internet "
                    "access to TextAttack's S3 bucket, TF-Hub, the Hugging Face hub and NLTK's "
                    "data server"
                ) from None
    for recipe in recipes:
        check_paper_resources(recipe, resources_dir)
    return done


def main(argv=None):
    def run(argv):
        parser = argparse.ArgumentParser(prog="python -m floodx.attacks.fetch",
                                         description=__doc__.splitlines()[0])
        parser.add_argument("--resources", default="resources", help="resources folder")
        parser.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
        parser.add_argument("--record", default=None, help="write what was fetched (JSON) here")
        args = parser.parse_args(argv)
        paths = [str(path) for path in fetch_paper_resources(args.resources, args.recipes)]
        print("\n".join(paths))
        if args.record:
            from ..files import write_json
            from ..provenance import provenance

            write_json(args.record, {"mode": "paper", "recipes": args.recipes, "paths": paths,
                                     "provenance": provenance()})

    return run_main(run, argv)


if __name__ == "__main__":
    main()
