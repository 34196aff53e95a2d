"""Shared fixtures: a tiny 2-layer BERT and a few dozen labelled sentences."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from floodx.models import tiny_bert

torch.set_num_threads(1)

POSITIVE = [
    "a great film", "wonderful acting and a fine story", "i loved this movie", "brilliant and fun",
    "the best film this year", "beautiful scenes and great characters", "really enjoyed it",
    "excellent director and actors", "a funny and nice story", "i liked the plot very much",
    "great fun", "so good", "a wonderful little movie", "the acting is excellent", "loved it",
    "a beautiful film", "fun to watch", "i enjoy every scene", "well made and funny", "nice movie",
]
NEGATIVE = [
    "a terrible film", "awful acting and a dull story", "i hated this movie", "boring and bad",
    "the worst film this year", "ugly scenes and bad characters", "really hated it",
    "a waste of time", "a sad mess of a story", "i disliked the plot very much",
    "too dull", "so bad", "a poor little movie", "the acting is awful", "hated it",
    "an ugly film", "boring to watch", "i hate every scene", "badly made and dull", "bad movie",
]


@pytest.fixture
def sentences():
    """(text, label) pairs: 20 positive (1), 20 negative (0)."""
    return [(t, 1) for t in POSITIVE] + [(t, 0) for t in NEGATIVE]


@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = tiny_bert(2, tmp_path / "tiny")
    return model, tokenizer


def make_batch(tokenizer, pairs):
    texts = [text for text, _ in pairs]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    encoded["labels"] = torch.tensor([label for _, label in pairs])
    return dict(encoded)


@pytest.fixture
def batch_of(tiny_model):
    """batch_of(pairs) -> a model-ready batch dict for the tiny model."""
    _, tokenizer = tiny_model
    return lambda pairs: make_batch(tokenizer, pairs)


def write_prepared(folder, sentences):
    """A prepared data set folder in the on-disk format of docs/design.md."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"idx": i, "text": t, "text_pair": None, "label": y} for i, (t, y) in enumerate(sentences)]
    splits = {"train": rows[::2] + rows[1::4], "dev": rows[3::8], "test": rows[7::8]}
    for split, items in splits.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    meta = {"dataset": "toy", "num_labels": 2, "label_names": ["neg", "pos"],
            "sizes": {k: len(v) for k, v in splits.items()},
            "attack_subset": {"test": [r["idx"] for r in splits["test"]], "dev": [r["idx"] for r in splits["dev"]]},
            "deviations": ["toy data"]}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder
