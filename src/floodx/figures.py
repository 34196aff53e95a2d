"""The paper's Figures 1-4 from our result files (matplotlib, Agg; no display needed).

Each `figureN(...)` takes explicit data (data frames / dicts; `figureN_inputs(...)` reads them from
result files), writes one PNG and returns the matplotlib Figure (tests inspect its axes).
Every figure carries a title with the data set, axis labels with units, a legend and a
footnote-size caption line naming the configuration and its deviations from the paper.

    python -m floodx.figures figure1 --noise-loss results/landscape/rt/seed42/noise_loss.csv \
        --dataset rt --out results/figures/figure1_rt.png --caption "..."
    python -m floodx.figures figure2 --flooding-choice results/search/rt/flooding/seed42/choice.json \
        --flooding-x-choice results/search/rt/flooding_x/seed42/choice.json \
        --window results/probe/rt/seed42/window.json [--test-summary 0.10=.../summary.json ...] \
        --dataset rt --out results/figures/figure2_rt.png --caption "..."
    python -m floodx.figures figure3 --accordance results/probe/rt/seed42/accordance.csv \
        --window results/probe/rt/seed42/window.json --dataset rt --out results/figures/figure3_rt.png
    python -m floodx.figures figure4 --metrics finetune=.../metrics.json --metrics flooding_x=... \
        --aua finetune:1=.../summary.json --aua finetune:2=... --dataset rt \
        --out results/figures/figure4_rt.png --caption "..."
"""

import argparse
import textwrap
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .errors import DataError, run_main  # noqa: E402
from .provenance import read_result  # noqa: E402
from .names import METHODS, dataset_label, method_label, recipe_label  # noqa: E402
from .tables.common import no_better_than_majority  # noqa: E402

DPI = 150
# One colour per method, fixed across figures (Flooding-X stands out).
METHOD_COLORS = {
    "finetune": "#7f7f7f", "pgd": "#1f77b4", "freelb": "#2ca02c", "tavat": "#9467bd",
    "infobert": "#8c564b", "flooding": "#ff7f0e", "flooding_x": "#d62728",
}
WINDOW_COLOR = "#ffd92f"  # the paper marks the accordance window in yellow


# Marker and dash per method as well, so curves that coincide stay distinguishable.
METHOD_STYLES = {
    "finetune": ("o", "-"), "pgd": ("s", "--"), "freelb": ("^", "--"), "tavat": ("v", "-."),
    "infobert": ("D", ":"), "flooding": ("P", "-."), "flooding_x": ("*", "-"),
}


def _color(method, index=0):
    return METHOD_COLORS.get(method, f"C{index % 10}")


def _style(method, index=0):
    """Line style of a method: colour, marker, dash; earlier methods drawn wider, underneath."""
    marker, dash = METHOD_STYLES.get(method, ("o", "-"))
    return {"color": _color(method, index), "marker": marker, "ls": dash,
            "ms": 7 if marker == "*" else 5, "lw": max(1.0, 2.6 - 0.25 * index), "zorder": 2 + index * 0.1}


def _ordered(methods):
    methods = list(dict.fromkeys(methods))
    return [m for m in METHODS if m in methods] + sorted(m for m in methods if m not in METHODS)


def _read_csv(path):
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"cannot read {path}: {err}") from None


def _new_figure(ncols=1, nrows=1, width=6.4, height=4.2, sharex=False):
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=sharex, squeeze=False)
    return fig, axes


def _finish(fig, title, caption, out):
    fig.suptitle(title, fontsize="large")
    if caption:
        # Footnote-size caption line under the axes (constrained layout leaves room for it).
        width = max(60, int(fig.get_figwidth() * 17))  # characters that fit at x-small
        fig.supxlabel(textwrap.fill(caption, width), fontsize="x-small", color="#444444", ha="center")
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp.png")
        fig.savefig(tmp, dpi=DPI)
        tmp.replace(out)
    return fig


# ---------------------------------------------------------------- Figure 1
UNSURE_WITHIN = 0.03  # nats from ln k at every alpha: Figure 1 calls such a curve "unsure"


def figure1(noise_loss, out, dataset, caption=None):
    """Loss vs the noise std alpha on the input embeddings, one line per method; left the loss,
    right its increase over the clean loss (alpha = 0), where flatness is easier to compare."""
    frame = _read_csv(noise_loss) if isinstance(noise_loss, (str, Path)) else noise_loss.copy()
    for column in ("method", "alpha", "loss"):
        if column not in frame:
            raise DataError(f"noise_loss: column '{column}' missing (docs/design.md, Outputs)")
    if "loss_std" not in frame:
        frame["loss_std"] = 0.0
    fig, axes = _new_figure(ncols=2, width=10.5, height=4.4)
    ax_loss, ax_delta = axes[0]
    positive = sorted(a for a in frame.alpha.unique() if a > 0)
    for i, method in enumerate(_ordered(frame.method)):
        sub = frame[frame.method == method].sort_values("alpha")
        style = _style(method, i)
        color = style["color"]
        clean = sub.loc[sub.alpha == 0, "loss"]
        base = float(clean.iloc[0]) if len(clean) else float(sub.loss.iloc[0])
        for ax, y in ((ax_loss, sub.loss), (ax_delta, sub.loss - base)):
            ax.plot(sub.alpha, y, label=method_label(method), **style)
            if (sub.loss_std > 0).any():
                ax.fill_between(sub.alpha, y - sub.loss_std, y + sub.loss_std, color=color, alpha=0.15, lw=0)
    rms = frame["embedding_rms"].mean() if "embedding_rms" in frame else None
    for ax in (ax_loss, ax_delta):
        if positive:
            ax.set_xscale("symlog", linthresh=positive[0])
            ticks = sorted(frame.alpha.unique())
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize="small")
            ax.minorticks_off()
        ax.set_xlabel("noise std α (word-embedding units, symlog axis)")
        if rms is not None and not math.isnan(rms) and positive and rms <= max(positive) * 1.5:
            ax.axvline(rms, color="#555555", ls=":", lw=1, label=f"embedding RMS ({rms:.3g})")
        ax.grid(True, alpha=0.3)
    unsure = []
    if "num_labels" in frame and frame.num_labels.notna().any():
        # A model whose loss sits at ln k at every alpha predicts near-uniform probabilities:
        # its curve is flat because it is unsure everywhere, which is not robustness.
        uniform = math.log(int(frame.num_labels.dropna().iloc[0]))
        ax_loss.axhline(uniform, color="#999999", ls="--", lw=0.8,
                        label=f"uniform prediction (ln {int(frame.num_labels.dropna().iloc[0])})")
        unsure = [method_label(m) for m, sub in frame.groupby("method", sort=False)
                  if (sub.loss - uniform).abs().max() < UNSURE_WITHIN]
    ax_loss.set_ylabel("mean cross-entropy loss (nats)")
    ax_delta.set_ylabel("loss − clean loss at α = 0 (nats)")
    ax_delta.axhline(0, color="#999999", lw=0.8)
    ax_loss.set_title("loss under noise", fontsize="medium")
    ax_delta.set_title("increase over the clean loss", fontsize="medium")
    ax_loss.legend(fontsize="small")
    bands = "; bands: ± std over noise draws" if (frame.loss_std > 0).any() else ""
    split = f" {frame.split.iloc[0]}" if "split" in frame else ""
    n = f" ({int(frame.n_examples.iloc[0])} examples)" if "n_examples" in frame else ""
    title = f"Figure 1 – input loss landscape under Gaussian embedding noise: {dataset_label(dataset)}"
    flat = (f"{', '.join(unsure)} stay within {UNSURE_WITHIN:g} nats of the uniform-prediction "
            "loss at every α: their outputs are near-uniform throughout, so their flatness is no "
            "evidence of robustness") if unsure else None
    caption = "; ".join(filter(None, [caption, f"loss on the{split} split{n}{bands}", flat]))
    return _finish(fig, title, caption, out)


# ---------------------------------------------------------------- Figure 2
def figure2_inputs(flooding_choice, flooding_x_choice=None, window=None, test_summaries=None,
                   attack="textfooler"):
    """Read choice.json / window.json / summary.json files into figure2's arguments.

    Returns (points, window, chosen, ylabel): points has columns level, score, source with
    source 'Flooding grid (dev)', 'Flooding-X window (dev)' or 'test'.
    """
    rows = []
    chosen = {}
    criterion = None
    attack_name = recipe_label(attack)
    for method, path in (("flooding", flooding_choice), ("flooding_x", flooding_x_choice)):
        if path is None:
            continue
        choice = read_result(path) if isinstance(path, (str, Path)) else path
        criterion = criterion or choice.get("criterion")
        source = "Flooding grid" if method == "flooding" else "Flooding-X window"
        scores = choice.get("scores") or {}
        values = [float(v) for v in scores.values() if v is not None]
        scale = 100.0 if choice.get("criterion") == "dev_acc" and values and max(values) <= 1.0 else 1.0
        quantity = "dev accuracy (%)" if choice.get("criterion") == "dev_acc" else f"dev Aua% under {attack_name} (%)"
        for level, score in scores.items():
            if score is not None:
                rows.append({"level": float(level), "score": float(score) * scale, "source": f"{source} (dev)",
                             "quantity": quantity})
        if choice.get("chosen") is not None:
            chosen[method] = float(choice["chosen"])
    for level, path in (test_summaries or {}).items():
        summary = read_result(path) if isinstance(path, (str, Path)) else path
        rows.append({"level": float(level), "score": float(summary["aua"]), "source": "test",
                     "quantity": f"test Aua% under {attack_name} (%)"})
    if window is not None and not isinstance(window, dict):
        window = read_result(window)
    if not rows:
        raise DataError("figure 2: no scores (choice.json 'scores' empty and no test summaries)")
    quantities = list(dict.fromkeys(r["quantity"] for r in rows))
    ylabel = quantities[0] if len(quantities) == 1 else "percent (quantity per curve in the legend)"
    return pd.DataFrame(rows), window, chosen, ylabel


def figure2(points, out, dataset, window=None, chosen=None, ylabel="Aua% under TextFooler (%)", caption=None):
    """Score vs flood level over the wide Flooding grid, the accordance window shaded, chosen
    levels marked. `points`: level, score, source ('... (dev)' or 'test')."""
    fig, axes = _new_figure(width=7.5, height=4.6)
    ax = axes[0][0]
    if window and window.get("low") is not None and window.get("high") is not None:
        ax.axvspan(float(window["low"]), float(window["high"]), color=WINDOW_COLOR, alpha=0.45,
                   label=f"accordance window [{float(window['low']):.3f}, {float(window['high']):.3f}]")
    styles = {"Flooding grid (dev)": dict(color=_color("flooding"), marker="o", ls="-"),
              "Flooding-X window (dev)": dict(color=_color("flooding_x"), marker="s", ls="--"),
              "test": dict(color="#333333", marker="^", ls="-")}
    sources = list(dict.fromkeys(points.source))
    mixed = "quantity" in points and points.quantity.nunique() > 1
    for i, source in enumerate(sources):
        sub = points[points.source == source].sort_values("level")
        style = styles.get(source, dict(color=f"C{i}", marker="o", ls="-"))
        label = source
        if mixed:  # one axis, different quantities: the legend says which curve is which
            quantity = sub.quantity.iloc[0].replace(" (%)", "")
            label = quantity if source == "test" else f"{source.replace(' (dev)', '')}: {quantity}"
        ax.plot(sub.level, sub.score, ms=5, lw=1.3, label=label, **style)
    own_source = {"flooding": "Flooding grid (dev)", "flooding_x": "Flooding-X window (dev)"}
    for method, level in (chosen or {}).items():
        ax.axvline(level, color=_color(method), ls=":", lw=1.4)
        mine = points[(points.source == own_source.get(method)) & (np.isclose(points.level, level))]
        if len(mine):
            ax.plot([level], [mine.score.iloc[0]], marker="*", ms=16, color=_color(method), mec="black",
                    mew=0.8, ls="none", zorder=5, label=f"{method_label(method)} chose b = {level:.2f}")
        else:
            ax.plot([], [], color=_color(method), ls=":", label=f"{method_label(method)} chose b = {level:.2f}")
    ax.set_xlabel("flood level b (training-loss units, nats)")
    dev_only = all(s.endswith("(dev)") for s in sources)
    ax.set_ylabel(("dev " if dev_only and not ylabel.startswith("dev") else "") + ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    title = f"Figure 2 – robustness vs flood level: {dataset_label(dataset)}"
    note = ("scores are the flood-level search's dev-split criterion (dev attack subset), not test Aua"
            if dev_only else None)
    return _finish(fig, title, "; ".join(filter(None, [caption, note])), out)


# ---------------------------------------------------------------- Figure 3
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
    frame = _read_csv(accordance) if isinstance(accordance, (str, Path)) else accordance.copy()
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
    fig = Figure(figsize=(10, 8.0 if has_acc else 6.4), layout="constrained")
    axes = fig.subplots(3 if has_acc else 2, 1, sharex=True, squeeze=True,
                        gridspec_kw={"height_ratios": [3, 3, 1.6] if has_acc else [1, 1]})
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
    return _finish(fig, title, "; ".join(filter(None, [caption, *notes])), out)


# ---------------------------------------------------------------- Figure 4
def figure4_inputs(metrics, aua):
    """metrics: {method: [metrics.json path or dict, ...]} (several = seeds);
    aua: {(method, epoch): [summary.json path or dict, ...]}.
    Returns (loss frame: method, seed, epoch, train_loss; aua frame: method, seed, epoch, aua;
    flood levels {method: b})."""
    loss_rows, aua_rows, levels = [], [], {}
    for method, items in metrics.items():
        for i, item in enumerate(items if isinstance(items, (list, tuple)) else [items]):
            data = read_result(item) if isinstance(item, (str, Path)) else item
            seed = data.get("seed", i)
            for rec in data.get("epochs", []):
                loss_rows.append({"method": method, "seed": seed, "epoch": int(rec["epoch"]),
                                  "train_loss": float(rec["train_loss_mean"])})
            level = (data.get("method_params") or {}).get("flood_level")
            if level is not None:
                levels[method] = float(level)
    for (method, epoch), items in aua.items():
        for i, item in enumerate(items if isinstance(items, (list, tuple)) else [items]):
            data = read_result(item) if isinstance(item, (str, Path)) else item
            aua_rows.append({"method": method, "seed": (data.get("provenance") or {}).get("seed", i),
                             "epoch": int(epoch), "aua": float(data["aua"]),
                             "n": data.get("n_attacked"), "clean": data.get("clean_acc"),
                             "majority": data.get("majority_acc"), "n_clean": data.get("n_clean")})
    return (pd.DataFrame(loss_rows, columns=["method", "seed", "epoch", "train_loss"]),
            pd.DataFrame(aua_rows, columns=["method", "seed", "epoch", "aua", "n", "clean", "majority",
                                            "n_clean"]),
            levels)


def at_majority_baseline(auas):
    """Rows whose model is no better than always predicting the most frequent label (Table 2's
    rule): an attack 'fails' on such a model without any robustness, so its Aua% is hollow."""
    if not {"clean", "majority", "n_clean"} <= set(auas.columns):
        return pd.Series(False, index=auas.index)
    numbers = auas[["clean", "majority", "n_clean"]].apply(pd.to_numeric, errors="coerce")
    return pd.Series([no_better_than_majority(*row) for row in numbers.itertuples(index=False)],
                     index=auas.index, dtype=bool)


def _mean_band(ax, frame, value, method, index, shift=0.0, **kwargs):
    stats = frame.groupby("epoch")[value].agg(["mean", "std", "count"]).reset_index()
    style = {**_style(method, index), **kwargs}
    color = style["color"]
    x = stats.epoch + shift
    ax.plot(x, stats["mean"], label=method_label(method), **style)
    if (stats["count"] >= 2).any():
        std = stats["std"].fillna(0)
        ax.fill_between(x, stats["mean"] - std, stats["mean"] + std, color=color, alpha=0.15, lw=0)


def coinciding(frame, value):
    """Pairs of methods whose per-epoch curves are identical (e.g. Flooding-X before its flood
    level binds is fine-tuning): drawn on top of each other, one would hide the other."""
    curves = {m: g.groupby("epoch")[value].mean().round(6) for m, g in frame.groupby("method")}
    names = _ordered(curves)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
            if curves[a].index.equals(curves[b].index) and curves[a].equals(curves[b])]


def figure4(losses, auas, out, dataset, flood_levels=None, attack="textfooler", caption=None):
    """Training loss (left) and Aua% (right) per epoch for each method (mean over seeds, band =
    std for >= 2 seeds); Flooding(-X)'s flood level as a dashed line on the loss panel."""
    fig, axes = _new_figure(ncols=2, width=10.5, height=4.4)
    ax_loss, ax_aua = axes[0]
    methods = _ordered(list(losses.method) + list(auas.method))
    for i, method in enumerate(methods):
        shift = (i - (len(methods) - 1) / 2) * 0.05  # side by side, so equal values stay visible
        sub = losses[losses.method == method]
        if len(sub):
            _mean_band(ax_loss, sub, "train_loss", method, i, shift)
        sub = auas[auas.method == method]
        if len(sub):
            _mean_band(ax_aua, sub, "aua", method, i, shift)
            hollow = sub[at_majority_baseline(sub)].groupby("epoch").aua.mean()
            if len(hollow):
                style = _style(method, i)
                ax_aua.plot(hollow.index + shift, hollow.values, ls="none", marker=style["marker"],
                            ms=style["ms"] + 3, mfc="white", mec=style["color"], mew=1.5, zorder=5)
    for method, level in (flood_levels or {}).items():
        if method in methods:
            ax_loss.axhline(level, color=_color(method), ls="--", lw=1,
                            label=f"{method_label(method)} flood level b = {level:.2f}")
    for ax in (ax_loss, ax_aua):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        epochs = sorted(set(losses.epoch) | set(auas.epoch))
        if epochs:
            ax.set_xticks(epochs)
    ax_loss.set_ylabel("training loss, epoch mean (nats)")
    ax_loss.set_ylim(bottom=0)
    ax_aua.set_ylabel(f"Aua% under {recipe_label(attack)} (%)")
    ax_aua.set_ylim(0, min(100, max(10.0, float(auas.aua.max()) if len(auas) else 0) * 1.1 + 1))
    ax_loss.set_title("training loss", fontsize="medium")
    sizes = sorted({int(n) for n in auas.get("n", pd.Series(dtype=float)).dropna()})
    subset = (f"first {sizes[0]} test examples" if len(sizes) == 1 else
              f"{sizes[0]}–{sizes[-1]} test examples" if sizes else "test subset")
    ax_aua.set_title(f"accuracy under attack ({subset} per epoch)", fontsize="medium")
    ax_loss.legend(fontsize="small")
    ax_aua.legend(fontsize="small")
    n_seeds = max([losses.groupby("method").seed.nunique().max() if len(losses) else 0,
                   auas.groupby("method").seed.nunique().max() if len(auas) else 0])
    notes = ["bands: ± std over seeds" if n_seeds >= 2 else None,
             "methods drawn slightly apart on the epoch axis"]
    if at_majority_baseline(auas).any():
        notes.append("hollow markers: that epoch's model is not significantly better than always "
                     "predicting the most frequent label (as † in Table 2), so its Aua% is no robustness")
    same = coinciding(losses, "train_loss")
    if same:
        notes.append("identical training-loss curves: " +
                     ", ".join(f"{method_label(a)} = {method_label(b)}" for a, b in same))
    note = "; ".join(filter(None, notes))
    title = f"Figure 4 – training loss and robustness per epoch: {dataset_label(dataset)}"
    return _finish(fig, title, "; ".join(filter(None, [caption, note])), out)


# ---------------------------------------------------------------- CLI
def _pairs(items, flag, key_parser=str):
    out = {}
    for item in items or ():
        if "=" not in item:
            raise DataError(f"{flag} expects KEY=PATH, got '{item}'")
        key, path = item.split("=", 1)
        out.setdefault(key_parser(key), []).append(path)
    return out


def _method_epoch(key):
    if ":" not in key:
        raise DataError(f"--aua expects METHOD:EPOCH=PATH, got key '{key}'")
    method, epoch = key.rsplit(":", 1)
    return method, int(epoch)


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.figures", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f1 = sub.add_parser("figure1", help="loss under Gaussian noise on the input embeddings")
    f1.add_argument("--noise-loss", required=True)
    f2 = sub.add_parser("figure2", help="robustness vs flood level with the accordance window")
    f2.add_argument("--flooding-choice", required=True)
    f2.add_argument("--flooding-x-choice", default=None)
    f2.add_argument("--window", default=None)
    f2.add_argument("--test-summary", action="append", default=[], metavar="LEVEL=SUMMARY_JSON")
    f2.add_argument("--attack", default="textfooler")
    f3 = sub.add_parser("figure3", help="gradient accordance and losses per sub-epoch")
    f3.add_argument("--accordance", required=True)
    f3.add_argument("--window", default=None)
    f4 = sub.add_parser("figure4", help="training loss and Aua%% per epoch")
    f4.add_argument("--metrics", action="append", default=[], required=True, metavar="METHOD=METRICS_JSON")
    f4.add_argument("--aua", action="append", default=[], metavar="METHOD:EPOCH=SUMMARY_JSON")
    f4.add_argument("--attack", default="textfooler")
    for p in (f1, f2, f3, f4):
        p.add_argument("--dataset", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--caption", default=None)
        p.add_argument("--threads", type=int, default=None, help="accepted for uniformity; unused")
    args = parser.parse_args(argv)
    if args.command == "figure1":
        figure1(args.noise_loss, args.out, args.dataset, args.caption)
    elif args.command == "figure2":
        tests = {level: paths[-1] for level, paths in _pairs(args.test_summary, "--test-summary").items()}
        points, window, chosen, ylabel = figure2_inputs(args.flooding_choice, args.flooding_x_choice,
                                                        args.window, tests, args.attack)
        figure2(points, args.out, args.dataset, window, chosen, ylabel, args.caption)
    elif args.command == "figure3":
        figure3(args.accordance, args.out, args.dataset, args.window, args.caption)
    else:
        losses, auas, levels = figure4_inputs(_pairs(args.metrics, "--metrics"),
                                              _pairs(args.aua, "--aua", _method_epoch))
        figure4(losses, auas, args.out, args.dataset, levels, args.attack, args.caption)
    print(f"{args.command} -> {args.out}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
