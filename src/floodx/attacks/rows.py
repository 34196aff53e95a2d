"""The row format of attack results (shard CSVs and examples.csv) and the metrics of a set of rows.

Metric definitions follow TextAttack 0.3.11 (see `floodx.attacks.metrics`).  Cheap: TextAttack is
imported only by `result_row`.
"""

import csv
import os
from pathlib import Path

from ..errors import DataError

# Columns of examples.csv (docs/design.md, Attacks).  Shard CSVs add `seconds` (attack time of
# the example) after them.
COLUMNS = ["idx", "original", "perturbed", "result", "queries", "ground_truth",
           "original_output", "perturbed_output"]
SHARD_COLUMNS = COLUMNS + ["seconds"]
RESULTS = ("successful", "failed", "skipped")
_INT_FIELDS = ("idx", "queries", "ground_truth", "original_output", "perturbed_output")


def result_row(idx, result, seconds=None):
    """CSV row of a TextAttack AttackResult."""
    from .flair_standin import ensure_flair

    ensure_flair()
    from textattack.attack_results import (
        FailedAttackResult,
        MaximizedAttackResult,
        SkippedAttackResult,
        SuccessfulAttackResult,
    )

    if isinstance(result, SkippedAttackResult):
        kind = "skipped"
    elif isinstance(result, FailedAttackResult):
        kind = "failed"
    elif isinstance(result, (SuccessfulAttackResult, MaximizedAttackResult)):
        kind = "successful"  # TextAttack's AttackSuccessRate counts every other result so
    else:
        raise TypeError(f"unexpected attack result {type(result).__name__}")
    original, perturbed = result.original_result, result.perturbed_result
    row = {
        "idx": int(idx),
        "original": original.attacked_text.printable_text(key_color_method=None),
        "perturbed": perturbed.attacked_text.printable_text(key_color_method=None),
        "result": kind,
        "queries": int(result.num_queries),
        "ground_truth": int(original.ground_truth_output),
        "original_output": int(original.output),
        "perturbed_output": int(perturbed.output),
    }
    if seconds is not None:
        row["seconds"] = round(float(seconds), 4)
    return row


def parse_row(raw, where):
    """Typed copy of one CSV row (ints for ids/labels/queries, float seconds); DataError if bad."""
    row = dict(raw)
    if None in row or any(row.get(name) is None for name in COLUMNS):
        raise DataError(f"{where}: expected the columns {', '.join(COLUMNS)}, got a row with "
                        f"{len([v for v in raw.values() if v is not None])} fields")
    try:
        for name in _INT_FIELDS:
            row[name] = int(row[name])
        if row.get("seconds") not in (None, ""):
            row["seconds"] = float(row["seconds"])
    except ValueError as err:
        raise DataError(f"{where}: {err}") from None
    if row["result"] not in RESULTS:
        raise DataError(f"{where}: result '{row['result']}' is not one of {', '.join(RESULTS)}")
    return row


def read_rows(path):
    """Rows of a shard CSV or examples.csv, typed (see `parse_row`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such attack result file")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} "
                            f"(header: {reader.fieldnames})")
        return [parse_row(raw, f"{path} line {reader.line_num}") for raw in reader]


def write_rows(path, rows, columns=COLUMNS):
    """Atomically write rows (temp file + rename) with exactly `columns`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore",
                                    lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _pct(numerator, denominator):
    return round(numerator * 100.0 / denominator, 2)


def aggregate(rows):
    """Aua%, Suc%, #Query and counts of a list of result rows (dicts with `result`, `queries`).

    Pure: no I/O.  Agrees with TextAttack's `AttackSuccessRate` and `AttackQueries` on the same
    results; where TextAttack would divide by zero (no rows; only skipped rows for #Query) the
    value is None.
    """
    counts = {name: 0 for name in RESULTS}
    queries = []
    for number, row in enumerate(rows):
        result = row["result"]
        if result not in counts:
            raise DataError(f"row {number} (idx {row.get('idx')}): result '{result}' is not one "
                            f"of {', '.join(RESULTS)}")
        counts[result] += 1
        if result != "skipped":
            queries.append(int(row["queries"]))
    total = sum(counts.values())
    attacked = counts["successful"] + counts["failed"]
    return {
        "n_attacked": total,
        "n_successful": counts["successful"],
        "n_failed": counts["failed"],
        "n_skipped": counts["skipped"],
        "attacked_acc": _pct(total - counts["skipped"], total) if total else None,
        "aua": _pct(counts["failed"], total) if total else None,
        "suc": _pct(counts["successful"], attacked) if attacked else (0 if total else None),
        "avg_queries": round(sum(queries) / len(queries), 2) if queries else None,
    }
