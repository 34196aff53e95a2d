"""The flood-level window of Flooding-X: where gradient accordance changes sign.

Input: the probe's accordance.csv, one row per sub-epoch (floodx.accordance). Output: window.json
(docs/design.md) with the window [low, high], every sign change of the accordance curve, the one
used, any fallback, and the grid of flood levels to train inside the window.

Direction. The paper disagrees with itself: Section 3 says a *negative* accordance means the
model has started to overfit (so the window is the crossing from positive to negative), while
Section 5.1 and the caption of Figure 3 describe the turning point "from negative to positive"
and call positive accordance overfitted. We record every crossing with its direction and use the
first one in the configured direction (`direction`: `pos_to_neg`, `neg_to_pos`, or `first`,
the default: whichever comes first); if the configured direction never occurs we use the first
crossing of the other direction and say so in `fallback`.

Window. The paper: "the optimal flood level lies in the range of the training loss of a model
when it is about to overfit", read off Figure 3 as the iterations between two sub-epochs. We
take the two sub-epochs that bracket the sign change (the last one before it and the first one
after it, plus any rows in between whose accordance is undefined or exactly zero) and use the
range of their *mean* training losses (column `train_loss_mean`): low = the smaller, high = the
larger. Per-batch minima and maxima are much noisier (one easy batch gives a near-zero loss), so
they are only recorded (`batch_loss_range`).

Fallbacks, never silent (recorded in `fallback` and raised as a `warnings.warn`):
- no sign change: the sub-epoch whose accordance is nearest zero, widened by +-step;
- a window of zero width: widened by +-step around its value;
- a window that holds no grid point: the grid points just below and above it.

Levels are multiples of `step` (default 0.01) inside [low, high], positive, written as fixed
strings f"{b:.2f}" (they become run names such as flooding-b0.13). With `max_levels` and more
levels than that, the grid is thinned evenly (ends kept) and `thinned` records it.

    python -m floodx.window --probe accordance.csv --out window.json --spec '{"step": 0.01}'
"""

import argparse
import csv
import json
import math
import sys
import warnings
from pathlib import Path

from .errors import ConfigError, DataError, run_main
from .provenance import provenance, write_json

DIRECTIONS = ("first", "pos_to_neg", "neg_to_pos")
REQUIRED_COLUMNS = ("sub_epoch", "first_step", "last_step", "accordance", "train_loss_mean")


class WindowWarning(UserWarning):
    """A window that needed a fallback."""


# ---------------------------------------------------------------- reading the probe
def _number(value, path, line, column, allow_empty=False):
    if value is None or str(value).strip() == "":
        if allow_empty:
            return float("nan")
        raise DataError(f"{path}, line {line}: column '{column}' is empty")
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{path}, line {line}: column '{column}' is not a number: {value!r}") from None


def read_probe(path):
    """Rows of accordance.csv with numbers parsed (accordance may be empty: NaN)."""
    path = Path(path)
    try:
        handle = open(path, newline="")
    except OSError as err:
        raise DataError(f"cannot read probe file {path}: {err}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (expected the columns of docs/design.md)")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row = dict(raw)
            row["sub_epoch"] = int(_number(raw["sub_epoch"], path, line, "sub_epoch"))
            row["first_step"] = int(_number(raw["first_step"], path, line, "first_step"))
            row["last_step"] = int(_number(raw["last_step"], path, line, "last_step"))
            row["accordance"] = _number(raw["accordance"], path, line, "accordance", allow_empty=True)
            row["train_loss_mean"] = _number(raw["train_loss_mean"], path, line, "train_loss_mean")
            for column in ("train_loss_min", "train_loss_max"):
                if column in raw:
                    row[column] = _number(raw[column], path, line, column, allow_empty=True)
            row["line"] = line
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no sub-epochs (the probe wrote no rows)")
    return rows


# ---------------------------------------------------------------- crossings
def _sign(value):
    if value is None or math.isnan(value) or value == 0:
        return 0
    return 1 if value > 0 else -1


def find_crossings(rows):
    """Every sign change of the accordance, in training order.

    A crossing brackets the last sub-epoch of one sign and the first of the other; rows between
    them with an undefined (NaN) or exactly zero accordance belong to the bracket.
    """
    crossings = []
    previous = None                  # index of the last row with a defined, non-zero sign
    for index, row in enumerate(rows):
        sign = _sign(row["accordance"])
        if sign == 0:
            continue
        if previous is not None and sign != _sign(rows[previous]["accordance"]):
            bracket = rows[previous:index + 1]
            crossings.append({
                "direction": "pos_to_neg" if sign < 0 else "neg_to_pos",
                "from_sub_epoch": rows[previous]["sub_epoch"], "to_sub_epoch": row["sub_epoch"],
                "first_step": rows[previous]["first_step"], "last_step": row["last_step"],
                "accordance": [rows[previous]["accordance"], row["accordance"]],
                "train_loss_mean": [r["train_loss_mean"] for r in bracket],
                "rows": [previous, index],
            })
        previous = index
    return crossings


# ---------------------------------------------------------------- levels
def _check_step(step):
    step = float(step)
    if not step > 0:
        raise ConfigError(f"search.step must be positive, got {step}")
    hundredths = step * 100
    if abs(hundredths - round(hundredths)) > 1e-9:
        raise ConfigError(f"search.step = {step}: flood levels are two-decimal strings, so the step "
                          "must be a multiple of 0.01")
    return round(hundredths)


def grid_in(low, high, step):
    """Multiples of `step` in [low, high] that are positive, as f"{b:.2f}" strings."""
    units = _check_step(step)            # step in hundredths
    first = math.ceil(round(low * 100 / units, 9))
    last = math.floor(round(high * 100 / units, 9))
    return [f"{i * units / 100:.2f}" for i in range(max(first, 1), last + 1)]


def thin(levels, max_levels):
    """At most `max_levels` of `levels`, evenly spread, both ends kept."""
    if max_levels is None or len(levels) <= max_levels:
        return list(levels)
    if max_levels == 1:
        return [levels[(len(levels) - 1) // 2]]
    n = len(levels) - 1
    picks = sorted({round(i * n / (max_levels - 1)) for i in range(max_levels)})
    return [levels[i] for i in picks]


# ---------------------------------------------------------------- the window
def flood_window(rows, step=0.01, max_levels=None, direction="first"):
    """window.json's content (without provenance) for the probe's rows."""
    if direction in (None, ""):
        direction = "first"
    if direction not in DIRECTIONS:
        raise ConfigError(f"window direction must be one of {DIRECTIONS}, got {direction!r}")
    if max_levels is not None and int(max_levels) < 1:
        raise ConfigError(f"search.max_levels must be at least 1, got {max_levels}")
    _check_step(step)
    step = float(step)
    crossings = find_crossings(rows)
    fallbacks = []
    chosen = None
    if direction == "first":
        chosen = crossings[0] if crossings else None
    else:
        wanted = [c for c in crossings if c["direction"] == direction]
        if wanted:
            chosen = wanted[0]
        elif crossings:
            chosen = crossings[0]
            fallbacks.append(f"no {direction} crossing; used the first {chosen['direction']} crossing "
                             f"(sub-epochs {chosen['from_sub_epoch']}-{chosen['to_sub_epoch']})")

    if chosen is not None:
        bracket = rows[chosen["rows"][0]:chosen["rows"][1] + 1]
        low = min(r["train_loss_mean"] for r in bracket)
        high = max(r["train_loss_mean"] for r in bracket)
        if high - low <= 0:
            fallbacks.append(f"window of zero width at training loss {low:.4f}; widened by +-{step}")
            low, high = low - step, high + step
    else:
        defined = [r for r in rows if not math.isnan(r["accordance"])]
        if not defined:
            raise DataError("the probe has no sub-epoch with a defined accordance (each needs >= 2 batches): "
                            "raise probe.sub_epoch_batches or train longer")
        nearest = min(defined, key=lambda r: abs(r["accordance"]))
        bracket = [nearest]
        centre = nearest["train_loss_mean"]
        signs = {_sign(r["accordance"]) for r in defined} - {0}
        what = "positive" if signs == {1} else "negative" if signs == {-1} else "zero"
        fallbacks.append(f"accordance never changes sign (always {what}); used sub-epoch {nearest['sub_epoch']}, "
                         f"accordance nearest zero ({nearest['accordance']:.4g}), training loss {centre:.4f} +-{step}")
        low, high = centre - step, centre + step

    all_levels = grid_in(low, high, step)
    if not all_levels:
        units = _check_step(step)
        below = max(math.floor(round(low * 100 / units, 9)), 1)
        above = max(math.ceil(round(high * 100 / units, 9)), below)
        all_levels = sorted({f"{i * units / 100:.2f}" for i in (below, above)}, key=float)
        fallbacks.append(f"no multiple of {step} inside [{low:.4f}, {high:.4f}]; used the grid points "
                         f"around it: {all_levels}")
    levels = thin(all_levels, None if max_levels is None else int(max_levels))
    thinned = None
    if len(levels) < len(all_levels):
        thinned = {"from": len(all_levels), "to": len(levels), "max_levels": int(max_levels)}

    batch_lows = [r.get("train_loss_min") for r in bracket if r.get("train_loss_min") is not None]
    batch_highs = [r.get("train_loss_max") for r in bracket if r.get("train_loss_max") is not None]
    batch_lows = [v for v in batch_lows if not math.isnan(v)]
    batch_highs = [v for v in batch_highs if not math.isnan(v)]
    fallback = "; ".join(fallbacks) if fallbacks else None
    if fallback:
        warnings.warn(f"flood-level window: {fallback}", WindowWarning, stacklevel=2)
    public = [{k: v for k, v in c.items() if k != "rows"} for c in crossings]
    return {
        "low": low, "high": high,
        "direction": chosen["direction"] if chosen else None,
        "crossings": public,
        "chosen_crossing": public[crossings.index(chosen)] if chosen else None,
        "direction_setting": direction,
        "fallback": fallback,
        "levels": levels,
        "all_levels": all_levels,
        "thinned": thinned,
        "step": step,
        "loss_statistic": "train_loss_mean of the bracketing sub-epochs",
        "sub_epochs": [r["sub_epoch"] for r in bracket],
        "iterations": [bracket[0]["first_step"], bracket[-1]["last_step"]],
        "batch_loss_range": [min(batch_lows), max(batch_highs)] if batch_lows and batch_highs else None,
    }


# ---------------------------------------------------------------- command line
def _settings(spec):
    """The `search:` config slice (or a config holding one)."""
    if "search" in spec and isinstance(spec["search"], dict):
        spec = spec["search"]
    return spec.get("step", 0.01), spec.get("max_levels"), spec.get("direction", "first")


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.window",
                                     description="Flood-level window from the gradient-accordance probe.")
    parser.add_argument("--probe", required=True, help="accordance.csv of the probe run")
    parser.add_argument("--out", required=True, help="window.json to write")
    parser.add_argument("--spec", default="{}", help="JSON: the search config slice (step, max_levels, direction)")
    parser.add_argument("--direction", choices=DIRECTIONS, default=None, help="overrides the spec's direction")
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--spec is not valid JSON: {err}") from None
    step, max_levels, direction = _settings(spec)
    if args.direction:
        direction = args.direction
    rows = read_probe(args.probe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WindowWarning)
        window = flood_window(rows, step=step, max_levels=max_levels, direction=direction)
    for warning in caught:       # the log of the rule shows it, whatever the warning filters
        print(f"floodx: warning: {warning.message}", file=sys.stderr)
    window["probe"] = str(args.probe)
    window["provenance"] = provenance(spec=spec)
    write_json(args.out, window)
    print(f"window [{window['low']:.4f}, {window['high']:.4f}] direction {window['direction']}, "
          f"levels {window['levels']}" + (f" (fallback: {window['fallback']})" if window["fallback"] else ""))


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
