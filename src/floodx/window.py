"""The flood-level window of Flooding-X: where gradient accordance changes sign.

Input: the probe's accordance.csv, one row per sub-epoch (floodx.accordance). Output: window.json
(docs/design.md) with the window [low, high], every sign change of the accordance curve, the one
used, any fallback, and the grid of flood levels to train inside the window.

Direction. The paper disagrees with itself: Section 3 says a *negative* accordance means the
model has started to overfit (so the window is the crossing from positive to negative), while
Section 5.1 and the caption of Figure 3 describe the turning point "from negative to positive"
and call positive accordance overfitted. We record every crossing with its direction and use the
first *confirmed* one in the configured direction (`direction`: `pos_to_neg`, `neg_to_pos`, or
`first`, the default: whichever comes first); if the configured direction never occurs we use the
first confirmed crossing of the other direction and say so in `fallback`. A sign change is
confirmed when the new sign holds for `confirm_sub_epochs` consecutive sub-epochs
(`find_crossings`): one-sub-epoch blips near zero are recorded but never pick the window. The
probe uses the same rule to stop training a few sub-epochs after the confirmation.

Overfitting onset (`onset`): the crossing beside the sub-epoch of minimal dev loss, and the lag
between them, so that a reader can see whether accordance's sign change and the usual
early-stopping signal agree.

Window. The paper: "the optimal flood level lies in the range of the training loss of a model
when it is about to overfit", read off Figure 3 as the iterations between two sub-epochs. We
take the two sub-epochs that bracket the sign change (the last one before it and the first one
after it, plus any rows in between whose accordance is undefined or exactly zero) and use the
range of their *mean* training losses (column `train_loss_mean`): low = the smaller, high = the
larger. Per-batch minima and maxima are much noisier (one easy batch gives a near-zero loss), so
they are only recorded (`batch_loss_range`).

Fallbacks, never silent (recorded in `fallback` and raised as a `warnings.warn`):
- no confirmed sign change: the sub-epoch whose accordance is nearest zero, widened by +-step;
- a window of zero width: widened by +-step around its value;
- a window that holds no grid point: the grid points just below and above it.

Levels are multiples of `step` (default 0.01) inside [low, high], positive, written as fixed
strings f"{b:.2f}" (they become run names such as flooding-b0.13). With `max_levels` and more
levels than that, the grid is thinned evenly (ends kept) and `thinned` records it.

    python -m floodx.window --probe accordance.csv --out window.json --spec '{"step": 0.01, "confirm_sub_epochs": 3}'
"""

import argparse
import csv
import json
import math
import sys
import warnings
from pathlib import Path

from .errors import ConfigError, DataError, run_main
from .files import write_json
from .provenance import provenance

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
            for column in ("train_loss_min", "train_loss_max", "dev_loss", "dev_acc", "epoch_fraction"):
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


def _runs(rows):
    """Maximal runs of one sign among the rows with a defined, non-zero accordance: [(sign, [index])]."""
    runs = []
    for index, row in enumerate(rows):
        sign = _sign(row["accordance"])
        if sign == 0:
            continue
        if runs and runs[-1][0] == sign:
            runs[-1][1].append(index)
        else:
            runs.append((sign, [index]))
    return runs


def find_crossings(rows, confirm=1):
    """Every sign change of the accordance, in training order, each marked `confirmed` or not.

    A crossing brackets the last sub-epoch of one sign and the first of the other; rows between
    them with an undefined (NaN) or exactly zero accordance belong to the bracket.

    Confirmation (why: near zero, a sub-epoch of a few batches is noisy, and a one-sub-epoch blip
    must not pick the window). The curve's sign is *established* by its first run of at least
    `confirm` consecutive sub-epochs of one sign. A sign change is confirmed when the new sign then
    holds for `confirm` consecutive sub-epochs; it becomes the established sign. Shorter runs of
    the other sign are blips: their sign changes are recorded, unconfirmed. `confirm=1` confirms
    every change. Each crossing also carries `confirmed_at`: the row index at which it was
    confirmed (None when unconfirmed), so a running probe knows when the evidence arrived.
    """
    confirm = max(1, int(confirm))
    crossings, established = [], None
    runs = _runs(rows)
    for number, (sign, indices) in enumerate(runs):
        long_enough = len(indices) >= confirm
        if number:
            previous = runs[number - 1][1][-1]
            index = indices[0]
            confirmed = established is not None and sign != established and long_enough
            crossings.append({
                "direction": "pos_to_neg" if sign < 0 else "neg_to_pos",
                "from_sub_epoch": rows[previous]["sub_epoch"], "to_sub_epoch": rows[index]["sub_epoch"],
                "first_step": rows[previous]["first_step"], "last_step": rows[index]["last_step"],
                "accordance": [rows[previous]["accordance"], rows[index]["accordance"]],
                "train_loss_mean": [r["train_loss_mean"] for r in rows[previous:index + 1]],
                "confirmed": confirmed,
                "confirmed_at": indices[confirm - 1] if confirmed else None,
                "rows": [previous, index],
            })
        if long_enough:
            established = sign
    return crossings


def choose_crossing(crossings, direction="first"):
    """(the confirmed crossing that opens the window or None, fallback note or None).

    The first confirmed crossing in the configured direction; if that direction never occurs,
    the first confirmed crossing of the other one, said in the note.
    """
    confirmed = [c for c in crossings if c["confirmed"]]
    if direction == "first":
        return (confirmed[0] if confirmed else None), None
    wanted = [c for c in confirmed if c["direction"] == direction]
    if wanted:
        return wanted[0], None
    if confirmed:
        chosen = confirmed[0]
        return chosen, (f"no confirmed {direction} crossing; used the first confirmed {chosen['direction']} "
                        f"crossing (sub-epochs {chosen['from_sub_epoch']}-{chosen['to_sub_epoch']})")
    return None, None


def crossing_confirmed_at(rows, confirm=1, direction="first"):
    """Row index at which a crossing in `direction` was confirmed, or None (the probe's early stop).

    With a specific direction only that direction counts: a run that never shows it trains on.
    """
    confirmed = [c for c in find_crossings(rows, confirm) if c["confirmed"]]
    if direction not in (None, "", "first"):
        confirmed = [c for c in confirmed if c["direction"] == direction]
    return confirmed[0]["confirmed_at"] if confirmed else None


# ---------------------------------------------------------------- overfitting onset
def _optional(row, key):
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def overfitting_onset(rows, chosen, max_epochs=None):
    """The crossing beside the dev-loss minimum: which came first, and by how much.

    The paper reads the accordance sign change as the moment the model "is about to overfit";
    the dev-loss minimum is the usual reading of that moment. Lag = crossing sub-epoch minus
    dev-minimum sub-epoch (positive: dev loss bottomed out before accordance changed sign).
    """
    crossing = None
    if chosen is not None:
        row = rows[chosen["rows"][1]]
        crossing = {"sub_epoch": row["sub_epoch"], "epoch": _optional(row, "epoch_fraction"),
                    "direction": chosen["direction"], "train_loss": row["train_loss_mean"]}
    with_dev = [r for r in rows if _optional(r, "dev_loss") is not None]
    dev_min = None
    if with_dev:
        row = min(with_dev, key=lambda r: r["dev_loss"])
        dev_min = {"sub_epoch": row["sub_epoch"], "epoch": _optional(row, "epoch_fraction"),
                   "train_loss": row["train_loss_mean"], "dev_loss": row["dev_loss"],
                   "dev_acc": _optional(row, "dev_acc")}
    lag_sub_epochs = lag_epochs = None
    if crossing and dev_min:
        lag_sub_epochs = crossing["sub_epoch"] - dev_min["sub_epoch"]
        if crossing["epoch"] is not None and dev_min["epoch"] is not None:
            lag_epochs = crossing["epoch"] - dev_min["epoch"]
    probed = _optional(rows[-1], "epoch_fraction") if rows else None
    return {
        "crossing": crossing, "dev_loss_min": dev_min,
        "lag_sub_epochs": lag_sub_epochs, "lag_epochs": lag_epochs,
        "sub_epochs_probed": len(rows), "epochs_probed": probed,
        "stopped_early": bool(max_epochs and probed is not None and probed < float(max_epochs) - 1e-9),
    }


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
def flood_window(rows, step=0.01, max_levels=None, direction="first", confirm=1, max_epochs=None):
    """window.json's content (without provenance) for the probe's rows."""
    if direction in (None, ""):
        direction = "first"
    if direction not in DIRECTIONS:
        raise ConfigError(f"window direction must be one of {DIRECTIONS}, got {direction!r}")
    if max_levels is not None and int(max_levels) < 1:
        raise ConfigError(f"search.max_levels must be at least 1, got {max_levels}")
    if int(confirm) < 1:
        raise ConfigError(f"probe.confirm_sub_epochs must be at least 1, got {confirm}")
    _check_step(step)
    step = float(step)
    crossings = find_crossings(rows, confirm)
    chosen, note = choose_crossing(crossings, direction)
    fallbacks = [note] if note else []

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
        unconfirmed = [f"{c['from_sub_epoch']}-{c['to_sub_epoch']}" for c in crossings]
        never = (f"no sign change holds {int(confirm)} sub-epochs (unconfirmed: sub-epochs {', '.join(unconfirmed)})"
                 if unconfirmed else f"accordance never changes sign (always {what})")
        fallbacks.append(f"{never}; used sub-epoch {nearest['sub_epoch']}, "
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
    public = [{k: v for k, v in c.items() if k not in ("rows", "confirmed_at")} for c in crossings]
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
        "confirm_sub_epochs": int(confirm),
        "onset": overfitting_onset(rows, chosen, max_epochs),
    }


# ---------------------------------------------------------------- command line
def _settings(spec):
    """The window spec (floodx.config.window_spec): step, max_levels, direction, confirm, max_epochs."""
    return (spec.get("step", 0.01), spec.get("max_levels"), spec.get("direction", "first"),
            spec.get("confirm_sub_epochs", 1), spec.get("max_epochs"))


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.window",
                                     description="Flood-level window from the gradient-accordance probe.")
    parser.add_argument("--probe", required=True, help="accordance.csv of the probe run")
    parser.add_argument("--out", required=True, help="window.json to write")
    parser.add_argument("--spec", default="{}",
                        help="JSON window settings and identity (floodx.config.window_job_spec)")
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--spec is not valid JSON: {err}") from None
    step, max_levels, direction, confirm, max_epochs = _settings(spec)
    rows = read_probe(args.probe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WindowWarning)
        window = flood_window(rows, step=step, max_levels=max_levels, direction=direction, confirm=confirm,
                              max_epochs=max_epochs)
    for warning in caught:       # the log of the rule shows it, whatever the warning filters
        print(f"floodx: warning: {warning.message}", file=sys.stderr)
    window["probe"] = str(args.probe)
    if spec.get("identity"):
        window["identity"] = spec["identity"]
    window["provenance"] = provenance(spec=spec)
    write_json(args.out, window)
    print(f"window [{window['low']:.4f}, {window['high']:.4f}] direction {window['direction']}, "
          f"levels {window['levels']}" + (f" (fallback: {window['fallback']})" if window["fallback"] else ""))


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
