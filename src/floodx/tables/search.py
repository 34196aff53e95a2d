"""The flood-level search: levels tried and chosen by Flooding (wide grid) and Flooding-X (window)."""

import math

import pandas as pd

from ..config import PAPER_DATASETS
from ..errors import DataError
from ..names import dataset_label
from ..files import read_result
from .common import missing, order


# ---------------------------------------------------------------- flood-level search summary
def _identity(path, record, keys):
    """What a choice.json or window.json is, as the file records it (never from its path)."""
    identity = record.get("identity")
    missing = [key for key in keys if not isinstance(identity, dict) or identity.get(key) is None]
    if missing:
        raise DataError(f"{path}: identity field(s) {missing} missing (written by the search and window jobs; "
                        "rerun them: snakemake -R select_flood_level flood_window)")
    return identity


def _levels_text(levels):
    values = sorted(float(v) for v in levels)
    if not values:
        return ""
    return f"{values[0]:.2f}–{values[-1]:.2f} ({len(values)} levels)"


def search_summary(choice_paths, window_paths=()):
    """Per data set and seed: levels tried, level chosen, its score and the number of training runs,
    for Flooding (wide grid) and Flooding-X (accordance window)."""
    rows = {}
    for path in choice_paths:
        choice = read_result(path)
        identity = _identity(path, choice, ("dataset", "method", "seed"))
        key = (identity["dataset"], int(identity["seed"]))
        row = rows.setdefault(key, {"dataset": key[0], "seed": key[1]})
        prefix = identity["method"]
        levels = choice.get("levels") or list((choice.get("scores") or {}).keys())
        scores = {f"{float(k):.2f}": v for k, v in (choice.get("scores") or {}).items()}
        chosen = choice.get("chosen")
        row[f"{prefix}_levels"] = _levels_text(levels)
        row[f"{prefix}_n_levels"] = len(levels)
        row[f"{prefix}_chosen"] = None if chosen is None else f"{float(chosen):.2f}"
        row[f"{prefix}_score"] = None if chosen is None else scores.get(f"{float(chosen):.2f}")
        row[f"{prefix}_n_training_runs"] = choice.get("n_training_runs")
        row.setdefault("criterion", choice.get("criterion"))
    for path in window_paths or ():
        window = read_result(path)
        identity = _identity(path, window, ("dataset", "seed"))
        key = (identity["dataset"], int(identity["seed"]))
        if key not in rows:
            continue
        row = rows[key]
        if window.get("low") is not None and window.get("high") is not None:
            row["window"] = f"[{float(window['low']):.3f}, {float(window['high']):.3f}]"
        row["window_direction"] = window.get("direction")
        row["window_fallback"] = window.get("fallback")
        row.update(_onset_columns(window.get("onset")))
        row["rejected_sign_changes"] = _rejected_sign_changes(window)
    frame = pd.DataFrame(list(rows.values()))
    if frame.empty:
        raise DataError("no choice.json given")
    for column in ("crossing_sub_epoch", "dev_min_sub_epoch", "lag_sub_epochs", "rejected_sign_changes"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    frame["_d"] = frame.dataset.map({d: i for i, d in enumerate(order(frame.dataset, PAPER_DATASETS))})
    return frame.sort_values(["_d", "seed"]).drop(columns="_d").reset_index(drop=True)


ONSET_COLUMNS = ("crossing_sub_epoch", "crossing_direction", "crossing_train_loss", "dev_min_sub_epoch",
                 "dev_min_train_loss", "lag_sub_epochs", "lag_epochs")


def _onset_columns(onset):
    """window.json's `onset` as search.csv columns (all None for an older window.json without it)."""
    onset = onset or {}
    crossing, dev_min = onset.get("crossing") or {}, onset.get("dev_loss_min") or {}
    return dict(zip(ONSET_COLUMNS, (
        crossing.get("sub_epoch"), crossing.get("direction"), crossing.get("train_loss"),
        dev_min.get("sub_epoch"), dev_min.get("train_loss"), onset.get("lag_sub_epochs"), onset.get("lag_epochs"))))


def _rejected_sign_changes(window):
    """How many sign changes of the accordance before the one that opened the window did not hold for
    `confirm_sub_epochs`: many mean the accordance sat at zero within its noise, so where the window
    opens (and the level read off there) is a draw of that noise. None without a chosen crossing."""
    chosen, crossings = window.get("chosen_crossing"), window.get("crossings")
    if not chosen or crossings is None:
        return None
    return sum(1 for crossing in crossings
               if not crossing.get("confirmed") and crossing["to_sub_epoch"] < chosen["to_sub_epoch"])


def _signed(text):
    return text.replace("-", "−")


def _onset_cells(rec):
    """The Markdown cells Crossing, Dev-loss min and Lag: '9 (− → +, loss 0.050)', '6 (loss 0.210)',
    '3 (1.5 ep)'; '–' where unknown."""
    arrows = {"pos_to_neg": "+ → −", "neg_to_pos": "− → +"}
    crossing = "–"
    if not missing(rec.get("crossing_sub_epoch")):
        inside = [arrows.get(rec.get("crossing_direction"), rec.get("crossing_direction"))]
        if not missing(rec.get("crossing_train_loss")):
            inside.append(f"loss {float(rec['crossing_train_loss']):.3f}")
        if not missing(rec.get("rejected_sign_changes")) and int(rec["rejected_sign_changes"]):
            count = int(rec["rejected_sign_changes"])
            inside.append(f"after {count} sign change{'s' if count > 1 else ''} that did not hold")
        inside = [part for part in inside if not missing(part)]
        crossing = str(int(rec["crossing_sub_epoch"])) + (f" ({', '.join(inside)})" if inside else "")
    dev_min = "–"
    if not missing(rec.get("dev_min_sub_epoch")):
        dev_min = str(int(rec["dev_min_sub_epoch"]))
        if not missing(rec.get("dev_min_train_loss")):
            dev_min += f" (loss {float(rec['dev_min_train_loss']):.3f})"
    lag = "–"
    if not missing(rec.get("lag_sub_epochs")):
        lag = _signed(str(int(rec["lag_sub_epochs"])))
        if not missing(rec.get("lag_epochs")):
            epochs = f"{float(rec['lag_epochs']):.2f}".rstrip("0")
            lag += _signed(f" ({epochs}0 ep)" if epochs.endswith(".") else f" ({epochs} ep)")
    return [crossing, dev_min, lag]


def search_markdown(frame, caption=None):
    lines = [caption, ""] if caption else []
    lines += ["| Data set | Seed | Flooding grid | Flooding chosen | Flooding runs | Accordance window | "
              "Flooding-X levels | Flooding-X chosen | Flooding-X runs | Criterion | Crossing | Dev-loss min | Lag |",
              "|---|---:|---|---:|---:|---|---|---:|---:|---|---|---|---:|"]

    def get(rec, key, fmt=str):
        value = rec.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return fmt(value)

    def chosen(rec, prefix):
        text = get(rec, f"{prefix}_chosen")
        score = rec.get(f"{prefix}_score")
        if text != "–" and score is not None and not (isinstance(score, float) and math.isnan(score)):
            text += f" ({float(score):.1f})"
        return text

    for rec in frame.to_dict("records"):
        window = get(rec, "window")
        if rec.get("window_fallback") not in (None, "") and not (isinstance(rec.get("window_fallback"), float)):
            window += f" (fallback: {rec['window_fallback']})"
        lines.append("| " + " | ".join([
            dataset_label(rec["dataset"]), str(rec["seed"]), get(rec, "flooding_levels"),
            chosen(rec, "flooding"), get(rec, "flooding_n_training_runs", lambda v: str(int(v))),
            window, get(rec, "flooding_x_levels"), chosen(rec, "flooding_x"),
            get(rec, "flooding_x_n_training_runs", lambda v: str(int(v))), get(rec, "criterion"),
            *_onset_cells(rec)]) + " |")
    lines += ["", "Chosen level with its selection score in brackets (the search criterion, on the dev "
              "split). Runs: training runs the search needed. Crossing: first sub-epoch of the new sign of "
              "the confirmed accordance sign change that opened the window (direction, mean train loss; how many "
              "earlier sign changes the confirmation rule rejected: many mean the accordance sat near zero and "
              "the crossing's place is noise); "
              "Dev-loss min: the probe's sub-epoch with the lowest dev loss (mean train loss); – where "
              "window.json does not record it. Lag = crossing sub-epoch − dev-loss-minimum sub-epoch "
              "(in epochs in brackets): positive means the dev loss bottomed out before the accordance "
              "changed sign, negative after it."]
    return "\n".join(lines) + "\n"
