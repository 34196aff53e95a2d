"""Choosing the flood level: the candidate run with the best dev-split criterion.

Used by vanilla Flooding (its wide grid) and by Flooding-X (the levels inside the accordance
window). Criteria, read from the dev split only:
- `dev_attack`: robust accuracy (`aua`, percent) on the dev attack subset, from the dev attack
  summary.json of each candidate (floodx.attacks.metrics);
- `dev_acc`: clean dev accuracy of the last epoch, from the candidate's metrics.json.
Ties: higher last-epoch dev accuracy, then the lower flood level. Test metrics are never read
(metrics.json holds them, but only `epochs[-1].dev_acc` is looked at).

    python -m floodx.search --candidate 0.12 results/train/D/flooding-b0.12/seed42/metrics.json \
        results/dev_attack/D/flooding-b0.12/seed42/summary.json --candidate 0.13 ... \
        --spec '{"identity": {"dataset": "D", "method": "flooding_x", "seed": 42}, "criterion": "dev_attack",
        "extra_runs": 1}' --out choice.json
"""

import argparse
import math
from pathlib import Path

from .config import parse_spec
from .errors import ConfigError, DataError, run_main
from .names import flood_run, level_string
from .files import read_json, write_json
from .provenance import provenance

CRITERIA = ("dev_attack", "dev_acc")


def _read(path, what):
    try:
        return read_json(path)
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {what} {path}: {err}") from None


def _finite(value, path, key):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: '{key}' is missing or not a number ({value!r})") from None
    if math.isnan(value):
        raise DataError(f"{path}: '{key}' is NaN")
    return value


def last_dev_accuracy(metrics_path):
    metrics = _read(metrics_path, "metrics file")
    epochs = metrics.get("epochs") or []
    if not epochs:
        raise DataError(f"{metrics_path}: no epochs recorded")
    return _finite(epochs[-1].get("dev_acc"), metrics_path, "epochs[-1].dev_acc")


def dev_attack_accuracy(summary_path):
    summary = _read(summary_path, "dev attack summary")
    return _finite(summary.get("aua"), summary_path, "aua")


def select_level(candidates, criterion="dev_attack", extra_runs=0):
    """candidates: {level: (metrics.json, dev attack summary.json or None)} -> choice dict."""
    if criterion not in CRITERIA:
        raise ConfigError(f"search.criterion must be one of {CRITERIA}, got {criterion!r}")
    if not candidates:
        raise ConfigError("no candidate flood levels to choose from")
    normalised = {}
    for level, paths in candidates.items():
        key = level_string(level)
        if key in normalised:
            raise ConfigError(f"flood level {key} given twice")
        metrics, dev_attack = (tuple(paths) + (None,))[:2]
        normalised[key] = (metrics, dev_attack)
    scores, dev_acc = {}, {}
    for level, (metrics, dev_attack) in normalised.items():
        dev_acc[level] = last_dev_accuracy(metrics)
        if criterion == "dev_attack":
            if not dev_attack:
                raise ConfigError(f"criterion dev_attack needs a dev attack summary for level {level}")
            scores[level] = dev_attack_accuracy(dev_attack)
        else:
            scores[level] = dev_acc[level]
    levels = sorted(normalised, key=float)
    chosen = max(levels, key=lambda b: (scores[b], dev_acc[b], -float(b)))
    return {
        "levels": levels,
        "scores": {b: scores[b] for b in levels},
        "criterion": criterion,
        "score_units": "aua, percent (dev attack subset)" if criterion == "dev_attack" else "accuracy, fraction (dev)",
        "dev_acc": {b: dev_acc[b] for b in levels},
        "tie_break": "higher last-epoch dev accuracy, then lower flood level",
        "chosen": chosen,
        "run": flood_run(chosen),
        "n_training_runs": len(levels) + int(extra_runs),
        "extra_runs": int(extra_runs),
        "inputs": {b: {"metrics": str(normalised[b][0]),
                       "dev_attack": str(normalised[b][1]) if normalised[b][1] else None} for b in levels},
    }


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.search",
                                     description="Choose the flood level by a dev-split criterion.")
    parser.add_argument("--candidate", action="append", nargs="+", default=[], metavar="LEVEL METRICS [DEVATTACK]",
                        help="a flood level, its metrics.json and (for dev_attack) its dev attack summary.json")
    parser.add_argument("--spec", required=True,
                        help="JSON: identity (dataset, method, seed), criterion, extra_runs (floodx.config.search_spec)")
    parser.add_argument("--out", required=True, help="choice.json to write")
    args = parser.parse_args(argv)
    spec = parse_spec(args.spec)
    for key in ("identity", "criterion", "extra_runs"):
        if key not in spec:
            raise ConfigError(f"--spec: key '{key}' missing (floodx.config.search_spec)")
    method = spec["identity"]["method"]
    candidates = {}
    for item in args.candidate:
        if len(item) not in (2, 3):
            raise ConfigError(f"--candidate takes LEVEL METRICS [DEVATTACK], got {item}")
        try:
            float(item[0])
        except ValueError:
            raise ConfigError(f"--candidate: '{item[0]}' is not a flood level") from None
        if level_string(item[0]) in candidates:
            raise ConfigError(f"flood level {level_string(item[0])} given twice")
        candidates[level_string(item[0])] = (item[1], item[2] if len(item) == 3 else None)
    choice = select_level(candidates, spec["criterion"], spec["extra_runs"])
    choice["method"] = method
    choice["identity"] = spec["identity"]
    choice["provenance"] = provenance(spec=spec, seed=spec["identity"].get("seed"))
    write_json(Path(args.out), choice)
    print(f"{method}: chose flood level {choice['chosen']} ({spec['criterion']} {choice['scores'][choice['chosen']]:.4g}) "
          f"out of {len(choice['levels'])}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
