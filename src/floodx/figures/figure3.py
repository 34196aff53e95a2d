"""Figure 3: gradient accordance and the losses per sub-epoch, with the sign changes from
window.json and the note on how far the dev-loss minimum lies from the one that opened the window."""

import math
from pathlib import Path

from ..errors import DataError
from ..names import dataset_label
from ..files import read_result
from .common import WINDOW_COLOR, finish_figure, new_figure, read_csv

ARROWS = {"pos_to_neg": "+ → −", "neg_to_pos": "− → +"}
OTHER_CROSSING_COLOR = "#d4b9da"  # a confirmed sign change that did not open the window
DEV_COLOR = "#ff7f0e"


def _finite(value):
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _epochs_text(value):
    """1.5 -> '1.5', 3 -> '3.0', 0.25 -> '0.25' (at most two decimals, at least one)."""
    text = f"{float(value):.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _plural(n, word):
    return f"{n} {word}{'' if abs(n) == 1 else 's'}"


def onset_sentence(onset):
    """One sentence on when the dev loss bottomed out relative to the accordance sign change,
    from window.json's `onset`; None when neither is known (an older window.json).

    "dev loss bottomed out at sub-epoch 6 (epoch 3.0, train loss 0.210), 3 sub-epochs (1.5 epochs)
    before accordance turned − → + at sub-epoch 9 (train loss 0.050)"; "after" when the lag is
    negative, "at the same sub-epoch as ..." when it is zero."""
    onset = onset or {}
    crossing, dev_min = onset.get("crossing"), onset.get("dev_loss_min")
    turned = None
    if crossing:
        turned = f"accordance turned {ARROWS.get(crossing.get('direction'), crossing.get('direction'))}"
    if dev_min:
        epoch = f"epoch {_epochs_text(dev_min['epoch'])}, " if _finite(dev_min.get("epoch")) else ""
        text = (f"dev loss bottomed out at sub-epoch {int(dev_min['sub_epoch'])} "
                f"({epoch}train loss {float(dev_min['train_loss']):.3f})")
        if not crossing:
            return text + "; accordance made no confirmed sign change"
        lag = onset.get("lag_sub_epochs")
        if lag is None:
            lag = int(crossing["sub_epoch"]) - int(dev_min["sub_epoch"])
        lag = int(lag)
        at, loss = f"sub-epoch {int(crossing['sub_epoch'])}", f"train loss {float(crossing['train_loss']):.3f}"
        if lag == 0:
            return f"{text}, at the same sub-epoch as {turned} ({at}, {loss})"
        where = f"{at} ({loss})"
        lag_epochs = onset.get("lag_epochs")
        span = _plural(abs(lag), "sub-epoch")
        if _finite(lag_epochs):
            span += f" ({_epochs_text(abs(float(lag_epochs)))} epochs)"
        return f"{text}, {span} {'before' if lag > 0 else 'after'} {turned} at {where}"
    if crossing:
        epoch = f"epoch {_epochs_text(crossing['epoch'])}, " if _finite(crossing.get("epoch")) else ""
        return (f"{turned} at sub-epoch {int(crossing['sub_epoch'])} ({epoch}train loss "
                f"{float(crossing['train_loss']):.3f}); no dev loss recorded")
    return None


def _same_crossing(a, b):
    return bool(a and b) and (a.get("from_sub_epoch"), a.get("to_sub_epoch")) == (b.get("from_sub_epoch"),
                                                                                  b.get("to_sub_epoch"))


def crossing_spans(window):
    """window.json's sign changes as [(first_step, last_step, kind, crossing)], kind one of
    'chosen' (the confirmed crossing that opened the window), 'confirmed' (another one) and
    'unconfirmed' (a blip that did not hold for `confirm_sub_epochs`). Older window.json files
    without `confirmed` flags count every crossing as confirmed."""
    window = window or {}
    chosen = window.get("chosen_crossing")
    crossings = window.get("crossings") or []
    if chosen is None and "chosen_crossing" not in window and window.get("direction"):
        chosen = next((c for c in crossings if c.get("direction") == window["direction"]), None)
    spans = []
    for crossing in crossings:
        if _same_crossing(crossing, chosen):
            kind = "chosen"
        elif crossing.get("confirmed") is False:
            kind = "unconfirmed"
        else:
            kind = "confirmed"
        spans.append((float(crossing["first_step"]), float(crossing["last_step"]), kind, crossing))
    return spans


def figure3(accordance, out, dataset, window=None, caption=None):
    """Gradient accordance (top), train/dev/test loss (middle) and, where recorded, dev accuracy
    (bottom) per sub-epoch. The sign changes come from window.json: the confirmed crossing that
    opened the window shaded yellow, unconfirmed blips hatched, the window's loss range as a band,
    the dev-loss minimum as a dashed vertical line; the note says how far apart the two are."""
    frame = read_csv(accordance) if isinstance(accordance, (str, Path)) else accordance.copy()
    for column in ("sub_epoch", "last_step", "accordance", "train_loss_mean"):
        if column not in frame:
            raise DataError(f"accordance.csv: column '{column}' missing (docs/design.md, Gradient accordance)")
    if "first_step" not in frame:
        frame["first_step"] = frame.last_step
    frame = frame.sort_values("sub_epoch").reset_index(drop=True)
    if window is not None and not isinstance(window, dict):
        window = read_result(window)
    window = window or {}
    x = frame.last_step
    has_acc = "dev_acc" in frame and frame["dev_acc"].notna().any()
    fig, axes = new_figure(nrows=3 if has_acc else 2, width=10, height=8.0 if has_acc else 6.4, sharex=True,
                           squeeze=True, gridspec_kw={"height_ratios": [3, 3, 1.6] if has_acc else [1, 1]})
    ax_acc, ax_loss = axes[0], axes[1]
    ax_dev_acc = axes[2] if has_acc else None
    panels = list(axes)

    confirm = window.get("confirm_sub_epochs")
    spans = crossing_spans(window)
    labelled = set()
    for start, stop, kind, crossing in spans:
        arrow = ARROWS.get(crossing.get("direction"), "?")
        if kind == "chosen":
            style = dict(color=WINDOW_COLOR, alpha=0.45)
            label = f"window iterations (accordance {arrow})"
        elif kind == "confirmed":
            style = dict(color=OTHER_CROSSING_COLOR, alpha=0.45)
            label = f"other {'confirmed ' if confirm else ''}sign change ({arrow})"
        else:
            style = dict(facecolor="none", edgecolor="#999999", hatch="///", lw=0)
            label = (f"unconfirmed sign change (< {int(confirm)} sub-epochs)" if confirm
                     else "unconfirmed sign change")
        for ax in panels:
            shown = (ax, label) not in labelled
            labelled.add((ax, label))
            ax.axvspan(start, stop, label=label if shown else "_nolegend_", **style)
    ax_acc.axhline(0, color="#888888", ls="--", lw=1, label="zero accordance")
    ax_acc.plot(x, frame.accordance, marker="o", ms=3.5, color="#1f77b4", label="gradient accordance")
    ax_acc.set_ylabel("gradient accordance (mean cosine)")
    if {"train_loss_min", "train_loss_max"} <= set(frame.columns):
        ax_loss.fill_between(x, frame.train_loss_min, frame.train_loss_max, color="#2ca02c", alpha=0.15, lw=0,
                             label="train loss min–max over the sub-epoch's batches")
    ax_loss.plot(x, frame.train_loss_mean, color="#2ca02c", marker=".", label="train loss (sub-epoch mean)")
    for column, color, label in (("dev_loss", DEV_COLOR, "dev loss"), ("test_loss", "#d62728", "test loss")):
        if column in frame and frame[column].notna().any():
            ax_loss.plot(x, frame[column], color=color, marker=".", label=label)
    if window.get("low") is not None and window.get("high") is not None:
        ax_loss.axhspan(float(window["low"]), float(window["high"]), color="#bbbbbb", alpha=0.35,
                        label=f"flood-level window [{float(window['low']):.3f}, {float(window['high']):.3f}]")
    ax_loss.set_ylabel("cross-entropy loss (nats)")
    if has_acc:
        values = frame["dev_acc"].astype(float)
        scale = 100.0 if values.max() <= 1.0 else 1.0
        ax_dev_acc.plot(x, values * scale, color="#8c564b", marker=".", label="dev accuracy")
        ax_dev_acc.set_ylabel("dev acc. (%)")

    onset = window.get("onset") or {}
    dev_min = onset.get("dev_loss_min")
    if dev_min:
        at = frame[frame.sub_epoch == int(dev_min["sub_epoch"])]
        if not at.empty:
            step = float(at.last_step.iloc[0])
            for ax in panels:
                ax.axvline(step, color=DEV_COLOR, ls="--", lw=1.2, zorder=1.5,
                           label=f"dev-loss minimum (sub-epoch {int(dev_min['sub_epoch'])})" if ax is ax_loss else None)
            dev_value = dev_min.get("dev_loss")
            if not _finite(dev_value) and "dev_loss" in frame:
                dev_value = at.dev_loss.iloc[0]
            if _finite(dev_value):
                ax_loss.plot([step], [float(dev_value)], ls="none", marker="v", ms=9, color=DEV_COLOR,
                             markeredgecolor="black", zorder=5, label="_dev-loss minimum marker")

    panels[-1].set_xlabel("training step (end of sub-epoch)")
    epochs = frame["epoch"] if "epoch" in frame else None
    if epochs is not None and epochs.nunique() > 1:
        ends = [group.last_step.max() for _, group in frame.groupby("epoch")][:-1]
        for ax in panels:
            for k, end in enumerate(ends):
                ax.axvline(end, color="#777777", ls="-.", lw=0.8, zorder=1, label="end of epoch" if k == 0 else None)
    for ax in panels:  # legends beside the axes: they never hide a curve
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    title = f"Figure 3 – gradient accordance and losses per sub-epoch: {dataset_label(dataset)}"
    notes = []
    if window.get("fallback"):
        notes.append(f"window fallback: {window['fallback']}")
    if not window:
        notes.append("no window.json given: sign changes not marked")
    elif "crossings" in window and not window["crossings"]:
        notes.append("accordance never changes sign in this run")
    sentence = onset_sentence(onset)
    if sentence:
        notes.append(sentence)
    if onset.get("stopped_early"):
        probed = onset.get("sub_epochs_probed")
        after = _plural(int(probed), "sub-epoch") if probed else ""
        if probed and _finite(onset.get("epochs_probed")):
            after += f" ({_epochs_text(onset['epochs_probed'])} epochs)"
        notes.append("the probe stopped early" + (f", after {after}" if after else ""))
    return finish_figure(fig, title, "; ".join(filter(None, [caption, *notes])), out)
