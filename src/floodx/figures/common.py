"""What every figure shares: the Agg backend, DPI, one colour and line style per method, the
caption line and the atomic PNG write."""

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before any Figure is made: no display needed

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..errors import DataError  # noqa: E402
from ..names import METHODS, method_label  # noqa: E402

DPI = 150
# One colour per method, fixed across figures (Flooding-X stands out).
METHOD_COLORS = {
    "finetune": "#7f7f7f", "pgd": "#1f77b4", "freelb": "#2ca02c", "tavat": "#9467bd",
    "infobert": "#8c564b", "flooding": "#ff7f0e", "flooding_x": "#d62728",
    "iflood": "#e377c2", "adaflood": "#aec7e8", "ttso": "#17becf", "ttso_pp": "#bcbd22", "als": "#393b79",
}
WINDOW_COLOR = "#ffd92f"  # the paper marks the accordance window in yellow


# Marker and dash per method as well, so curves that coincide stay distinguishable.
METHOD_STYLES = {
    "finetune": ("o", "-"), "pgd": ("s", "--"), "freelb": ("^", "--"), "tavat": ("v", "-."),
    "infobert": ("D", ":"), "flooding": ("P", "-."), "flooding_x": ("*", "-"),
    "iflood": ("X", "-."), "adaflood": ("d", "-."), "ttso": ("<", ":"), "ttso_pp": (">", ":"), "als": ("h", "--"),
}


def method_color(method, index=0):
    return METHOD_COLORS.get(method, f"C{index % 10}")


def method_style(method, index=0):
    """Line style of a method: colour, marker, dash; earlier methods drawn wider, underneath."""
    marker, dash = METHOD_STYLES.get(method, ("o", "-"))
    return {"color": method_color(method, index), "marker": marker, "ls": dash,
            "ms": 7 if marker == "*" else 5, "lw": max(1.0, 2.6 - 0.25 * index), "zorder": 2 + index * 0.1}


def ordered_methods(methods):
    """Methods in the paper's order (names.METHODS), unknown ones after it, sorted; no repeats."""
    methods = list(dict.fromkeys(methods))
    return [m for m in METHODS if m in methods] + sorted(m for m in methods if m not in METHODS)


def read_csv(path):
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"cannot read {path}: {err}") from None


def new_figure(ncols=1, nrows=1, width=6.4, height=4.2, sharex=False, squeeze=False, **subplots):
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=sharex, squeeze=squeeze, **subplots)
    return fig, axes


def mean_band(ax, frame, value, method, index, shift=0.0, **kwargs):
    """The per-epoch mean of `value` as the method's line, ± std as a band where an epoch has
    two or more rows (seeds)."""
    stats = frame.groupby("epoch")[value].agg(["mean", "std", "count"]).reset_index()
    style = {**method_style(method, index), **kwargs}
    color = style["color"]
    x = stats.epoch + shift
    ax.plot(x, stats["mean"], label=method_label(method), **style)
    if (stats["count"] >= 2).any():
        std = stats["std"].fillna(0)
        ax.fill_between(x, stats["mean"] - std, stats["mean"] + std, color=color, alpha=0.15, lw=0)


def save_png(fig, out):
    """Write the figure to `out` atomically (a temporary file beside it, then a rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=DPI)
    tmp.replace(out)


def legends_clear_of_data(axes, rounds=12, **legend):
    """Each axes' legend at its top right, with its y range raised until no drawn data point (a line's points,
    markers, interval caps; a marker's radius counts) lies under it: a long legend would otherwise hide the
    curve's top. The axes are checked together, since raising one can move the others in a constrained
    layout; call it once the title and caption are set, for the same reason."""
    placed = []
    for ax in axes:
        lines = [line for line in ax.get_lines() if line.get_transform() == ax.transData]
        points = [xy for line in lines for xy in line.get_xydata() if all(map(np.isfinite, xy))]
        radius = max([line.get_markersize() for line in lines] + [0]) / 2 * ax.figure.dpi / 72
        placed.append((ax, ax.legend(loc="upper right", **legend), points, radius + 2))
    for _ in range(rounds):
        axes[0].figure.draw_without_rendering()
        covered = [ax for ax, box, points, pad in placed if points and any(
            box.get_window_extent().padded(pad).contains(*xy) for xy in ax.transData.transform(points))]
        if not covered:
            return True
        for ax in covered:
            low, high = ax.get_ylim()
            ax.set_ylim(low, high + 0.12 * (high - low))
    return False


def finish_figure(fig, title, caption, out):
    """Title, footnote-size caption line, and the PNG at `out` (none when `out` is None)."""
    fig.suptitle(title, fontsize="large")
    if caption:
        # Footnote-size caption line under the axes (constrained layout leaves room for it).
        width = max(60, int(fig.get_figwidth() * 17))  # characters that fit at x-small
        fig.supxlabel(textwrap.fill(caption, width), fontsize="x-small", color="#444444", ha="center")
    if out is not None:
        save_png(fig, out)
    return fig
