"""Figure 2: robustness vs flood level, the accordance window shaded, the chosen levels marked."""

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..names import dataset_label, method_label, recipe_label
from ..files import read_result
from .common import WINDOW_COLOR, finish_figure, legends_clear_of_data, method_color, method_style, new_figure, save_png


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
    fig, axes = new_figure(width=7.5, height=4.6)
    ax = axes[0][0]
    if window and window.get("low") is not None and window.get("high") is not None:
        ax.axvspan(float(window["low"]), float(window["high"]), color=WINDOW_COLOR, alpha=0.45,
                   label=f"accordance window [{float(window['low']):.3f}, {float(window['high']):.3f}]")
    styles = {"Flooding grid (dev)": dict(color=method_color("flooding"), marker="o", ls="-"),
              "Flooding-X window (dev)": dict(color=method_color("flooding_x"), marker="s", ls="--"),
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
        ax.axvline(level, color=method_color(method), ls=":", lw=1.4)
        mine = points[(points.source == own_source.get(method)) & (np.isclose(points.level, level))]
        if len(mine):
            ax.plot([level], [mine.score.iloc[0]], marker="*", ms=16, color=method_color(method), mec="black",
                    mew=0.8, ls="none", zorder=5, label=f"{method_label(method)} chose b = {level:.2f}")
        else:
            ax.plot([], [], color=method_color(method), ls=":", label=f"{method_label(method)} chose b = {level:.2f}")
    ax.set_xlabel("flood level b (training-loss units, nats)")
    dev_only = all(s.endswith("(dev)") for s in sources)
    ax.set_ylabel(("dev " if dev_only and not ylabel.startswith("dev") else "") + ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    title = f"Figure 2 – robustness vs flood level: {dataset_label(dataset)}"
    note = ("scores are the flood-level search's dev-split criterion (dev attack subset), not test Aua"
            if dev_only else None)
    return finish_figure(fig, title, "; ".join(filter(None, [caption, note])), out)


def figure2_test(levels, out, dataset, caption=None):
    """Figure 2 as the paper draws it: test Aua% of every searched flood level (95% intervals) with the
    accordance window shaded, both dev-chosen levels and fine-tune's Aua% marked, and Clean% below.

    `levels`: the flood-level analysis (floodx.flood_levels): pooled over seeds (levels.json beside the
    seed folders) or one seed's. Over several seeds the curve is the pooled one (levels trained in every
    seed), each seed's own curve is drawn thin, each seed's window shaded (darker where they overlap) and
    each seed's dev choices starred on its own curve. Hollow markers: levels significantly less robust
    than the best (paired test, Holm)."""
    from ..flood_levels import VERDICT_SUMMARY, as_pooled, verdicts_over_seeds

    levels = read_result(levels) if isinstance(levels, (str, Path)) else levels
    levels = as_pooled(levels)
    records = sorted(levels["levels"], key=lambda r: float(r["level"]))
    if not records:
        raise DataError("figure 2 (test): levels.json has no levels")
    seeds, per_seed, windows = levels["seeds"], levels["per_seed"], levels["windows"]
    several = len(seeds) > 1
    x = np.array([float(r["level"]) for r in records])
    fig, axes = new_figure(nrows=2, width=7.5, height=6.4, sharex=True, height_ratios=[2, 1])
    top, bottom = axes[0][0], axes[1][0]
    for ax in (top, bottom):
        for i, window in enumerate(windows):
            if window.get("low") is None or window.get("high") is None:
                continue
            label = None
            if ax is top and i == 0:
                label = (f"accordance windows of the {len(seeds)} seeds (darker where they overlap)" if several else
                         f"accordance window [{float(window['low']):.3f}, {float(window['high']):.3f}]")
            ax.axvspan(float(window["low"]), float(window["high"]), color=WINDOW_COLOR,
                       alpha=0.3 if several else 0.45, label=label)
        ax.grid(True, alpha=0.3)
    reference = levels.get("finetune")
    if reference:
        low, high = reference["aua_interval"]
        top.axhspan(low, high, color=method_color("finetune"), alpha=0.15, lw=0)
        top.axhline(reference["aua"], color=method_color("finetune"), ls="--", lw=1.2,
                    label=f"fine-tune {reference['aua']:.1f} (95% interval {low:.1f}–{high:.1f})")
    if several:
        for i, analysis in enumerate(per_seed):
            own = sorted(analysis["levels"], key=lambda r: float(r["level"]))
            top.plot([float(r["level"]) for r in own], [r["aua"] for r in own], color="#999999", lw=0.8,
                     alpha=0.8, zorder=2, label="each seed's own curve" if i == 0 else None)
    aua = np.array([r["aua"] for r in records])
    errors = np.array([[r["aua"] - r["aua_interval"][0], r["aua_interval"][1] - r["aua"]] for r in records]).T
    top.errorbar(x, aua, yerr=errors, color="#333333", lw=1.3, capsize=3, zorder=3,
                 label=f"test Aua% over {len(seeds)} seeds (95% interval)" if several else "test Aua% (95% interval)")
    worse = np.array([bool(r.get("versus_best") and r["versus_best"]["significant"]) for r in records])
    top.plot(x[~worse], aua[~worse], "o", color="#333333", ms=6, zorder=4, label="not significantly below the best")
    if worse.any():
        top.plot(x[worse], aua[worse], "o", mfc="white", mec="#333333", ms=6, zorder=4,
                 label="significantly below the best (Holm)")
    choices = {}
    for analysis in per_seed:
        for method, place in (analysis.get("chosen") or {}).items():
            choices.setdefault(method, []).append(place)
    for method, places in choices.items():
        tested = [p for p in places if p.get("aua") is not None]
        if several:
            label = f"{method_label(method)}'s dev choices (one per seed: b = {', '.join(p['level'] for p in places)})"
        else:
            label = f"{method_label(method)}'s dev choice b = {float(places[0]['level']):.2f}"
            for ax in (top, bottom):
                ax.axvline(float(places[0]["level"]), color=method_color(method), ls=":", lw=1.4)
        if tested:
            top.plot([float(p["level"]) for p in tested], [p["aua"] for p in tested], marker="*", ms=16 if not several
                     else 12, color=method_color(method), mec="black", mew=0.8, ls="none", zorder=5, label=label)
    drawn = set()
    for analysis in per_seed:
        for place in (analysis.get("levelled") or {}).values():   # iFlood at its own level: a per-example flood
            level, method = float(place["level"]), place["method"]
            low, high = place["aua_interval"]
            top.errorbar([level], [place["aua"]], yerr=[[place["aua"] - low], [high - place["aua"]]],
                         marker=method_style(method)["marker"], ms=8, color=method_color(method), mec="black",
                         capsize=3, ls="none", zorder=6,
                         label=None if method in drawn else
                         (f"{method_label(method)} at its own level, each seed (test, 95% interval)" if several else
                          f"{method_label(method)} at b = {level:.2f} (test, 95% interval)"))
            drawn.add(method)
    clean = [(float(r["level"]), r["clean_acc"], r.get("clean_interval")) for r in records
             if r.get("clean_acc") is not None]
    if clean:
        cx = np.array([c[0] for c in clean])
        cy = np.array([c[1] for c in clean])
        cerr = np.array([[c[1] - c[2][0], c[2][1] - c[1]] if c[2] else [0, 0] for c in clean]).T
        bottom.errorbar(cx, cy, yerr=cerr, color="#1f77b4", marker="s", ms=4, lw=1.2, capsize=3,
                        label="flood levels")
    if reference and reference.get("clean_acc") is not None:
        bottom.axhline(reference["clean_acc"], color=method_color("finetune"), ls="--", lw=1.2,
                       label=f"fine-tune {reference['clean_acc']:.1f}")
    attack = recipe_label((levels.get("identity") or {}).get("recipe") or "textfooler")
    n = records[0]["n_attacked"]
    top.set_ylabel(f"test Aua% under {attack} (%)")
    bottom.set_ylabel("Clean% (test)")
    bottom.set_xlabel("flood level b (training-loss units, nats)")
    if several:
        verdict = verdicts_over_seeds(levels)
        counted = f"{n} (seed, example) pairs per level, the same test examples in every seed"
    else:
        verdict = VERDICT_SUMMARY[windows[0]["verdict"]]
        counted = f"{n} test examples per level, the same for every level"
    note = (f"{counted}; {verdict}"
            + ("; no level is significantly below the best (flat at this resolution)"
               if levels.get("flat") and not several else "")
            + "; levels were chosen on dev data, this is analysis after the fact")
    title = f"Figure 2 (test) – robustness vs flood level: {dataset_label(dataset)}"
    finish_figure(fig, title, "; ".join(filter(None, [caption, note])), None)
    legends_clear_of_data([top, bottom] if clean else [top], fontsize="x-small")   # 6-8 entries above the curve
    if out is not None:
        save_png(fig, out)
    return fig
