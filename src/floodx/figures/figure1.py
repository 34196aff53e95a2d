"""Figure 1: the input loss landscape, loss under Gaussian noise on the word embeddings."""

import math
from pathlib import Path

from ..errors import DataError
from ..names import dataset_label, method_label
from .common import finish_figure, method_style, new_figure, ordered_methods, read_csv

UNSURE_WITHIN = 0.03  # nats from ln k at every alpha: Figure 1 calls such a curve "unsure"


def figure1(noise_loss, out, dataset, caption=None):
    """Loss vs the noise std alpha on the input embeddings, one line per method; left the loss,
    right its increase over the clean loss (alpha = 0), where flatness is easier to compare."""
    frame = read_csv(noise_loss) if isinstance(noise_loss, (str, Path)) else noise_loss.copy()
    for column in ("method", "alpha", "loss"):
        if column not in frame:
            raise DataError(f"noise_loss: column '{column}' missing (docs/design.md, Outputs)")
    if "loss_std" not in frame:
        frame["loss_std"] = 0.0
    fig, axes = new_figure(ncols=2, width=10.5, height=4.4)
    ax_loss, ax_delta = axes[0]
    positive = sorted(a for a in frame.alpha.unique() if a > 0)
    for i, method in enumerate(ordered_methods(frame.method)):
        sub = frame[frame.method == method].sort_values("alpha")
        style = method_style(method, i)
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
    return finish_figure(fig, title, caption, out)
