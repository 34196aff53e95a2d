"""Figure 4: training loss and accuracy under attack per epoch, one curve per method."""

from pathlib import Path

import pandas as pd

from ..names import dataset_label, method_label, recipe_label
from ..stats import wilson_interval
from ..files import read_result
from ..tables.common import no_better_than_majority
from .common import finish_figure, mean_band, method_color, method_style, new_figure, ordered_methods


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
            aua_rows.append({"method": method, "seed": (data.get("identity") or {}).get("seed", i),
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


def coinciding(frame, value):
    """Pairs of methods whose per-epoch curves are identical (e.g. Flooding-X before its flood
    level binds is fine-tuning): drawn on top of each other, one would hide the other."""
    curves = {m: g.groupby("epoch")[value].mean().round(6) for m, g in frame.groupby("method")}
    names = ordered_methods(curves)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
            if curves[a].index.equals(curves[b].index) and curves[a].equals(curves[b])]


def interval_bars(ax, auas, method, index, shift):
    """95% Wilson interval of each epoch's Aua% where the epoch has one seed (a few examples a point)."""
    if "n" not in auas:
        return
    single = auas.groupby("epoch").filter(lambda group: len(group) == 1).dropna(subset=["aua", "n"])
    if single.empty:
        return
    bounds = [wilson_interval(round(aua * n / 100), int(n)) for aua, n in zip(single.aua, single.n)]
    low = [aua - 100 * b[0] for aua, b in zip(single.aua, bounds)]
    high = [100 * b[1] - aua for aua, b in zip(single.aua, bounds)]
    ax.errorbar(single.epoch + shift, single.aua, yerr=[low, high], fmt="none",
                ecolor=method_color(method, index), alpha=0.45, capsize=2, lw=1)


def figure4(losses, auas, out, dataset, flood_levels=None, attack="textfooler", caption=None):
    """Training loss (left) and Aua% (right) per epoch for each method (mean over seeds, band =
    std for >= 2 seeds); Flooding(-X)'s flood level as a dashed line on the loss panel."""
    fig, axes = new_figure(ncols=2, width=10.5, height=4.4)
    ax_loss, ax_aua = axes[0]
    methods = ordered_methods(list(losses.method) + list(auas.method))
    for i, method in enumerate(methods):
        shift = (i - (len(methods) - 1) / 2) * 0.05  # side by side, so equal values stay visible
        sub = losses[losses.method == method]
        if len(sub):
            mean_band(ax_loss, sub, "train_loss", method, i, shift)
        sub = auas[auas.method == method]
        if len(sub):
            mean_band(ax_aua, sub, "aua", method, i, shift)
            interval_bars(ax_aua, sub, method, i, shift)
            hollow = sub[at_majority_baseline(sub)].groupby("epoch").aua.mean()
            if len(hollow):
                style = method_style(method, i)
                ax_aua.plot(hollow.index + shift, hollow.values, ls="none", marker=style["marker"],
                            ms=style["ms"] + 3, mfc="white", mec=style["color"], mew=1.5, zorder=5)
    for method, level in (flood_levels or {}).items():
        if method in methods:
            ax_loss.axhline(level, color=method_color(method), ls="--", lw=1,
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
    top = max(float(auas.aua.max()) if len(auas) else 0.0, ax_aua.get_ylim()[1] / 1.1)   # the bars' tops too
    ax_aua.set_ylim(0, min(100, max(10.0, top) * 1.1 + 1))
    ax_loss.set_title("training loss", fontsize="medium")
    sizes = sorted({int(n) for n in auas.get("n", pd.Series(dtype=float)).dropna()})
    subset = (f"first {sizes[0]} test examples" if len(sizes) == 1 else
              f"{sizes[0]}–{sizes[-1]} test examples" if sizes else "test subset")
    ax_aua.set_title(f"accuracy under attack ({subset} per epoch)", fontsize="medium")
    ax_loss.legend(fontsize="small")
    ax_aua.legend(fontsize="small")
    n_seeds = max([losses.groupby("method").seed.nunique().max() if len(losses) else 0,
                   auas.groupby("method").seed.nunique().max() if len(auas) else 0])
    notes = ["bands: ± std over seeds" if n_seeds >= 2 else "bars: 95% Wilson interval over the examples",
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
    return finish_figure(fig, title, "; ".join(filter(None, [caption, note])), out)
