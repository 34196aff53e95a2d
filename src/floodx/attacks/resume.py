"""Resumable shard files: a crash loses at most the example being attacked.

Each finished row is appended and flushed to `<out>.partial`, which becomes `<out>` at the end.
`<out>.partial.json` holds the run's fingerprint (checkpoint weights, data, attack, examples,
code): a rerun resumes only a partial file of the same fingerprint, and the fingerprint moves to
`<out>.json` with the finished shard so that a retrained checkpoint is attacked again.

Per example, caches are cleared and RNGs are seeded from (seed, idx), so a row depends only on its
example: sharded, resumed and unsharded runs give the same rows.
"""

import csv
import hashlib
import io
import json
import os
import time
from pathlib import Path

from ..errors import DataError
from .examples import attack_input
from .rows import SHARD_COLUMNS, parse_row, result_row

DEFAULT_SEED = 765  # TextAttack's AttackArgs.random_seed
_HERE = Path(__file__).resolve().parent
# The code that decides an attack's outcome besides its inputs (with TextAttack's version).
_CODE = [_HERE / name for name in ("run.py", "recipes.py", "resume.py", "examples.py", "rows.py")] \
    + [_HERE.parent / "inference.py"]


def _file_digest(path, chunk=1 << 22):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_digest(checkpoint):
    """sha256 over the checkpoint's config and weight files (what decides its predictions)."""
    checkpoint = Path(checkpoint)
    digest = hashlib.sha256()
    names = sorted(p.name for p in checkpoint.iterdir()
                   if p.is_file() and (p.suffix in (".safetensors", ".bin")
                                       or p.name in ("config.json", "tokenizer.json",
                                                     "vocab.txt", "tokenizer_config.json")))
    for name in names:
        digest.update(name.encode())
        digest.update(_file_digest(checkpoint / name).encode())
    return digest.hexdigest()


def code_digest():
    """sha256 over the attack code (`_CODE`) and TextAttack's version."""
    from importlib import metadata

    digest = hashlib.sha256()
    for path in _CODE:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    try:
        digest.update(metadata.version("textattack").encode())
    except metadata.PackageNotFoundError:
        pass
    return digest.hexdigest()


def fingerprint(checkpoint, data_dir, split, subset, examples, recipe, mode, resources_dir,
                query_budget, seed, max_length, custom_attack=None, precision="fp32", calibration=None):
    """What a shard's rows depend on; `custom_attack` names a test's attack builder. The query
    precision appears only when it is not fp32, and the score temperature only where the scores are
    calibrated (`calibration`: floodx.calibration.calibrate's result), so that other shards keep their
    fingerprint."""
    data = Path(data_dir) / f"{split}.jsonl"
    calibrated = ({"temperature": calibration["temperature"], "calibrated_on": calibration["fit_on"]}
                  if calibration else {})
    return ({"precision": precision} if precision != "fp32" else {}) | calibrated | {
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha256": checkpoint_digest(checkpoint),
        "data_sha256": _file_digest(data) if data.is_file() else None,
        "split": split, "subset": subset, "examples": [int(ex["idx"]) for ex in examples],
        "recipe": recipe, "mode": mode, "resources": str(resources_dir),
        "query_budget": query_budget, "seed": seed, "max_length": max_length,
        "custom_attack": None if custom_attack is None else getattr(
            custom_attack, "__qualname__", repr(custom_attack)),
        "code": code_digest(),
    }


def read_partial(partial, shard_indices):
    """Finished rows of a partial shard file, keeping only complete rows of this shard.

    A row cut off by a crash (file not ending in a newline, wrong field count) is dropped.
    """
    text = Path(partial).read_text(encoding="utf-8")
    rows = []
    if not text:
        return rows
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    wanted = set(shard_indices)
    reader = csv.DictReader(io.StringIO(complete, newline=""))
    try:
        if reader.fieldnames != SHARD_COLUMNS:
            return []
        for raw in reader:
            try:
                row = parse_row(raw, str(partial))
            except DataError:
                break  # a torn row: everything from here on is redone
            if row["idx"] in wanted and all(r["idx"] != row["idx"] for r in rows):
                rows.append(row)
    except csv.Error:
        pass  # a torn quoted field at the end
    # Keep the shard's order: rows were appended in shard order, so a prefix of it.
    order = {idx: n for n, idx in enumerate(shard_indices)}
    rows.sort(key=lambda r: order[r["idx"]])
    return rows


def _open_partial(partial, rows):
    """Rewrite the partial file with `rows` (drops torn tails) and open it for appending."""
    partial = Path(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial.with_name(partial.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SHARD_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, partial)
    handle = open(partial, "a", newline="", encoding="utf-8")
    return handle, csv.DictWriter(handle, fieldnames=SHARD_COLUMNS, lineterminator="\n")


def _seed_example(seed, idx):
    import random

    import numpy as np
    import torch

    value = (int(seed) * 1_000_003 + int(idx)) % (2**31 - 1)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def _finished_stamp(out_csv):
    return out_csv.with_name(out_csv.name + ".json")


def finished_by(out_csv):
    """The fingerprint a finished shard was made with (None: unknown, e.g. an older floodx)."""
    try:
        return json.loads(_finished_stamp(Path(out_csv)).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def copy_finished(source, out_csv, examples):
    """Copy a finished shard of `examples` (rows, then its fingerprint, which marks it finished) to `out_csv`;
    the number of rows. Each file lands whole (written beside it, then renamed), so a stop leaves no torn copy."""
    import shutil

    source, out_csv = Path(source), Path(out_csv)
    with open(source, newline="", encoding="utf-8") as handle:
        indices = [int(row["idx"]) for row in csv.DictReader(handle)]
    if sorted(indices) != sorted(int(ex["idx"]) for ex in examples):
        raise DataError(f"{source}: its rows are not the examples its fingerprint names; delete it and its "
                        f"{_finished_stamp(source).name} to attack again")
    for src, dst in ((source, out_csv), (_finished_stamp(source), _finished_stamp(out_csv))):
        scratch = dst.with_name(dst.name + ".copying")
        shutil.copyfile(src, scratch)
        with open(scratch, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(scratch, dst)
    for stale in (out_csv.with_name(out_csv.name + ".partial"), out_csv.with_name(out_csv.name + ".partial.json")):
        stale.unlink(missing_ok=True)           # an earlier try's rows: the copy is the finished shard
    return len(indices)


def run_examples(attack, examples, out_csv, fingerprint, seed=DEFAULT_SEED, log=None,
                 after_example=None):
    """Attack `examples` (data rows, shard order) into `out_csv`, resuming `<out>.partial`.

    Returns `{"n", "n_resumed", "n_attacked_now", "seconds"}`.  `after_example(k)` is called
    after the k-th newly finished row is flushed (tests use it to simulate a crash).
    """
    out_csv = Path(out_csv)
    partial = out_csv.with_name(out_csv.name + ".partial")
    stamp = out_csv.with_name(out_csv.name + ".partial.json")
    indices = [int(ex["idx"]) for ex in examples]

    done = []
    if partial.exists() and stamp.exists():
        try:
            previous = json.loads(stamp.read_text())
        except json.JSONDecodeError:
            previous = None
        if previous == fingerprint:
            done = read_partial(partial, indices)
        elif log:
            log(f"{partial}: made by a different run (fingerprint differs); starting afresh")
    from ..files import write_json

    write_json(stamp, fingerprint)
    handle, writer = _open_partial(partial, done)
    finished = {r["idx"] for r in done}
    if log and done:
        log(f"{partial}: resuming after {len(done)} finished example(s)")
    new = 0
    try:
        for number, example in enumerate(examples, 1):
            idx = int(example["idx"])
            if idx in finished:
                continue
            attack.clear_cache()
            _seed_example(seed, idx)
            start = time.perf_counter()
            result = attack.attack(attack_input(example), int(example["label"]))
            seconds = time.perf_counter() - start
            row = result_row(idx, result, seconds)
            writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())
            done.append(row)
            new += 1
            if log:
                log(f"{number}/{len(examples)} idx {idx}: {row['result']}, "
                    f"{row['queries']} queries, {seconds:.1f} s")
            if after_example is not None:
                after_example(new)
    finally:
        handle.close()
    if sorted(r["idx"] for r in done) != sorted(indices):
        raise DataError(f"{partial}: rows do not match the shard's examples")
    os.replace(partial, out_csv)
    os.replace(stamp, _finished_stamp(out_csv))  # the finished shard keeps its fingerprint
    return {"n": len(done), "n_resumed": len(done) - new, "n_attacked_now": new,
            "seconds": sum(r.get("seconds") or 0.0 for r in done)}
