"""Which examples are attacked: the recorded attack subset of a prepared data set, its shards,
and an example as the model and as TextAttack take it."""

from collections import OrderedDict
from pathlib import Path

from ..errors import ConfigError, DataError

PAIR_COLUMNS = ("text", "text_pair")


def subset_indices(data_dir, subset, split=None, limit=None):
    """The recorded attack subset (`meta.json` `attack_subset[subset]`), first `limit` of it.

    A subset recorded as null means the whole split, in file order.
    """
    from ..data import load_meta, load_split

    meta = load_meta(data_dir)
    subsets = meta.get("attack_subset")
    if not isinstance(subsets, dict) or subset not in subsets:
        raise DataError(f"{Path(data_dir) / 'meta.json'}: field attack_subset.{subset} is missing")
    indices = subsets[subset]
    if indices is None:
        indices = [ex["idx"] for ex in load_split(data_dir, split or subset)]
    indices = [int(i) for i in indices]
    if len(set(indices)) != len(indices):
        raise DataError(f"{Path(data_dir) / 'meta.json'}: attack_subset.{subset} repeats an idx")
    if limit is not None:
        indices = indices[: int(limit)]
    return indices


def shard_of(indices, shard_index, num_shards):
    """Interleaved shard `shard_index` of `num_shards` (deterministic, balanced)."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ConfigError(f"shard {shard_index} of {num_shards}: need 0 <= shard < num_shards")
    return list(indices)[shard_index::num_shards]


def shard_examples(data_dir, split, subset, shard_index, num_shards, limit=None):
    """Data rows of one shard, in subset order."""
    from ..data import load_split

    indices = shard_of(subset_indices(data_dir, subset, split, limit), shard_index, num_shards)
    by_idx = {int(ex["idx"]): ex for ex in load_split(data_dir, split)}
    missing = [i for i in indices if i not in by_idx]
    if missing:
        raise DataError(f"{Path(data_dir) / 'meta.json'}: attack_subset.{subset} names idx "
                        f"{missing[:5]} that {split}.jsonl lacks")
    return [by_idx[i] for i in indices]


def model_input(example):
    """What the model sees for a data row: the text, or (text, text_pair)."""
    if example.get("text_pair") is None:
        return example["text"]
    return (example["text"], example["text_pair"])


def attack_input(example):
    """What TextAttack attacks: the text, or an OrderedDict of the two columns for text pairs
    (`AttackedText` takes a str or an OrderedDict, not the tuple the model gets)."""
    if example.get("text_pair") is None:
        return example["text"]
    return OrderedDict(zip(PAIR_COLUMNS, model_input(example)))
