"""Table 3: seconds per training epoch and the ratio to fine-tuning, beside the paper's."""

import math

import numpy as np
import pandas as pd

from ..errors import DataError
from ..names import dataset_label, method_label
from ..files import read_result
from ..stats import median_ratio_interval
from .common import DEFAULT_PAPER_MAP, latex_escape, order, paper_dataset_for, paper_table3


# AdaFlood's epochs cost an iFlood epoch (it is timed so); its auxiliary runs come on top.
ADAFLOOD_COST = ("AdaFlood: its epochs are timed as iFlood's (the same per-example flood, with a looked-up level); "
                 "before them come K auxiliary fine-tunings (method_params.adaflood.folds, default 2), each on "
                 "(K-1)/K of the training data: about K-1 fine-tuning runs more in all (their job times: "
                 "benchmarks/adaflood_fold/).")


# ---------------------------------------------------------------- Table 3
def _intervals(rec, reference):
    """95% intervals of seconds per epoch and of the ratio to fine-tuning, from each timed step
    (`step_seconds`, one per round, paired with fine-tuning's round by round); NaN where a
    times.json predates them (fine-tuning's ratio to itself comes out exactly (1, 1))."""
    steps, reference_steps = rec.get("step_seconds"), (reference or {}).get("step_seconds")
    if not steps or not rec.get("steps_per_epoch"):
        return {"seconds_per_epoch_low": math.nan, "seconds_per_epoch_high": math.nan,
                "ratio_low": math.nan, "ratio_high": math.nan}
    low, high = median_ratio_interval(steps)
    ratio = median_ratio_interval(steps, reference_steps) if reference_steps else (math.nan, math.nan)
    return {"seconds_per_epoch_low": low * rec["steps_per_epoch"], "seconds_per_epoch_high": high * rec["steps_per_epoch"],
            "ratio_low": ratio[0], "ratio_high": ratio[1]}


def load_times(paths):
    rows = []
    for path in paths:
        times = read_result(path)
        for field in ("methods", "dataset"):
            if not times.get(field):
                raise DataError(f"{path}: field '{field}' missing (docs/design.md, Outputs)")
        reference = times["methods"].get("finetune")
        for method, rec in times["methods"].items():
            try:
                intervals = _intervals(rec, reference)
            except DataError as err:
                raise DataError(f"{path}: methods.{method}.step_seconds: {err}") from None
            rows.append({**intervals, "dataset": times["dataset"], "method": method,
                         "seconds_per_step": rec.get("seconds_per_step"), "steps": rec.get("steps"),
                         "steps_per_epoch": rec.get("steps_per_epoch"),
                         "seconds_per_epoch": rec.get("seconds_per_epoch"),
                         "ratio_to_finetune": rec.get("ratio_to_finetune"),
                         "timed_as": rec.get("timed_as", method),
                         "adv_steps": (rec.get("method_params") or {}).get("adv_steps"),
                         "batch_size": times.get("batch_size"), "device": times.get("device")})
    if not rows:
        raise DataError("no times.json given")
    return pd.DataFrame(rows)


TABLE3_METHODS = ("finetune", "flooding", "flooding_x", "tavat", "freelb", "pgd", "infobert",   # paper's order,
                  "iflood", "adaflood", "ttso", "ttso_pp", "als")                                          # then its successors


def table3(times, paper_map=None, paper=None):
    """Long Table 3: ours (seconds per step/epoch, ratio) beside the paper's for the mapped data set.
    The paper's Flooding row stands for Flooding-X as well (same training code, another level)."""
    paper_map = DEFAULT_PAPER_MAP if paper_map is None else paper_map
    paper = paper_table3() if paper is None else paper
    frame = times.copy()
    frame["paper_dataset"] = [paper_dataset_for(d, paper_map)[0] for d in frame.dataset]
    frame["stand_in"] = [paper_dataset_for(d, paper_map)[1] for d in frame.dataset]
    lookup = paper.set_index(["dataset", "method"])
    paper_seconds, paper_ratio, paper_batch = [], [], []
    for rec in frame.to_dict("records"):
        key = (rec["paper_dataset"], "flooding" if rec["method"] == "flooding_x" else rec["method"])
        if key in lookup.index:
            paper_seconds.append(float(lookup.loc[key, "seconds_per_epoch"]))
            paper_ratio.append(float(lookup.loc[key, "ratio_to_finetune"]))
            paper_batch.append(int(lookup.loc[key, "batch_size"]))
        else:
            paper_seconds.append(np.nan)
            paper_ratio.append(np.nan)
            paper_batch.append(np.nan)
    frame["paper_seconds_per_epoch"] = paper_seconds
    frame["paper_ratio_to_finetune"] = paper_ratio
    frame["paper_batch_size"] = paper_batch
    frame["_d"] = frame.dataset.map({d: i for i, d in enumerate(order(frame.dataset, ("sst2", "qnli", "imdb")))})
    frame["_m"] = frame.method.map({m: i for i, m in enumerate(order(frame.method, TABLE3_METHODS))})
    return frame.sort_values(["_d", "_m"]).drop(columns=["_d", "_m"]).reset_index(drop=True)


def _seconds(value):
    """Seconds with sensible precision: 1,193 / 27.4 / 0.0123."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _outward(value, decimals, up):
    """`value` rounded to `decimals` away from the interval's centre (down for a lower bound)."""
    scale = 10.0 ** decimals
    return (math.ceil if up else math.floor)(value * scale - (1e-9 if up else -1e-9)) / scale


def _seconds_decimals(value):
    """The decimals `_seconds` shows for `value`."""
    return 0 if value >= 100 else max(0, 2 - math.floor(math.log10(value)))   # times are > 0 (stats)


def _bound(value, up):
    """A seconds bound at `_seconds`'s precision, rounded outward."""
    decimals = _seconds_decimals(value)
    return f"{_outward(value, decimals, up):,.{decimals}f}"


def _ours_cell(rec, reference=False):
    """'16.2 (15.8–16.9) ×4.52 (4.31–4.70)': seconds per epoch and the ratio, each with its 95%
    interval rounded outward; no interval for fine-tuning's ratio to itself."""
    cell = _seconds(rec["seconds_per_epoch"])
    low, high = rec["seconds_per_epoch_low"], rec["seconds_per_epoch_high"]
    if not math.isnan(low):
        cell += f" ({_bound(low, False)}–{_bound(high, True)})"
    cell += f" ×{rec['ratio_to_finetune']:.2f}"
    if not reference and not math.isnan(rec["ratio_low"]):
        cell += f" ({_outward(rec['ratio_low'], 2, False):.2f}–{_outward(rec['ratio_high'], 2, True):.2f})"
    return cell


INTERVALS_NOTE = ("In brackets: 95% percentile-bootstrap intervals over the timed rounds (a method's and fine-tuning's "
                  "steps resampled by round, as they were timed on the same batch; bounds rounded outward; "
                  "docs/statistics.md).")


def _table3_cells(frame):
    datasets = list(dict.fromkeys(frame.dataset))
    methods = order(frame.method, TABLE3_METHODS)
    index = frame.set_index(["dataset", "method"])
    return datasets, methods, index


def _ascent_steps(rows):
    """', K = 3 ascent steps (paper: 5)' for the adversarial methods timed, '' if none."""
    if "adv_steps" not in rows:
        return ""
    ks = {method_label(m): int(k) for m, k in zip(rows.method, rows.adv_steps) if k is not None and k == k}
    if not ks:
        return ""
    if len(set(ks.values())) == 1:
        return f", K = {next(iter(ks.values()))} ascent steps (paper: 5)"
    return ", ascent steps " + ", ".join(f"{m} K = {k}" for m, k in ks.items()) + " (paper: 5)"


def table3_markdown(frame, caption=None):
    datasets, methods, index = _table3_cells(frame)
    header = ["Method"]
    for d in datasets:
        rec = frame[frame.dataset == d].iloc[0]
        paper_ds = rec["paper_dataset"]
        header.append(f"{dataset_label(d)} s/epoch, × fine-tune")
        if isinstance(paper_ds, str):
            header.append(f"Paper {dataset_label(paper_ds)}{' (stand-in)' if rec['stand_in'] else ''}")
    lines = [caption, ""] if caption else []
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for m in methods:
        cells = [method_label(m)]
        for d in datasets:
            has_paper = isinstance(frame[frame.dataset == d].iloc[0]["paper_dataset"], str)
            if (d, m) in index.index:
                rec = index.loc[(d, m)]
                cells.append(_ours_cell(rec, reference=m == "finetune"))
                if has_paper:
                    cells.append("–" if math.isnan(rec["paper_seconds_per_epoch"]) else
                                 f"{rec['paper_seconds_per_epoch']:,.0f} (×{rec['paper_ratio_to_finetune']:.2f})")
            else:
                cells += ["–"] + (["–"] if has_paper else [])
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for d in datasets:
        rec = frame[frame.dataset == d].iloc[0]
        steps = rec.get("steps_per_epoch")
        lines.append(f"{dataset_label(d)}: batch size {rec['batch_size']}, {rec['steps']} timed steps per method, "
                     f"seconds per epoch = seconds per step × {steps} steps, device {rec['device']}"
                     f"{_ascent_steps(frame[frame.dataset == d])}.")
    if frame.seconds_per_epoch_low.notna().any():
        lines.append(INTERVALS_NOTE)
    lines.append("Paper: NVIDIA RTX 2080Ti, whole training sets; its Flooding row is shown for "
                 "Flooding-X too (same code, another flood level). Compare ratios, not seconds.")
    if "adaflood" in methods:
        lines.append(ADAFLOOD_COST)
    return "\n".join(lines) + "\n"


def table3_latex(frame, caption=None):
    datasets, methods, index = _table3_cells(frame)
    cols = []
    for d in datasets:
        rec = frame[frame.dataset == d].iloc[0]
        cols.append((d, "ours"))
        if isinstance(rec["paper_dataset"], str):
            cols.append((d, "paper"))
    lines = [r"% floodx Table 3 (needs \usepackage{booktabs})", r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule"]
    head = ["Method"]
    for d, kind in cols:
        if kind == "ours":
            head.append(latex_escape(dataset_label(d)))
        else:
            rec = frame[frame.dataset == d].iloc[0]
            head.append("Paper " + latex_escape(dataset_label(rec["paper_dataset"])))
    lines += [" & ".join(head) + r" \\", r"\midrule"]
    for m in methods:
        cells = [latex_escape(method_label(m))]
        for d, kind in cols:
            if (d, m) not in index.index:
                cells.append("--")
                continue
            rec = index.loc[(d, m)]
            if kind == "ours":
                cells.append(_ours_cell(rec, reference=m == "finetune").replace("–", "--").replace("×", r"$\times$"))
            elif math.isnan(rec["paper_seconds_per_epoch"]):
                cells.append("--")
            else:
                cells.append(f"{rec['paper_seconds_per_epoch']:,.0f} ($\\times${rec['paper_ratio_to_finetune']:.2f})")
        lines.append(" & ".join(cells) + r" \\")
    text = (latex_escape(caption.rstrip(". ")) + ". ") if caption else ""
    text += (r"Training time (seconds) of one epoch, and the ratio to fine-tuning. "
             r"Ours: extrapolated from timed steps, with 95\% bootstrap intervals over the timed rounds in brackets; "
             r"paper: RTX 2080Ti, whole training sets.")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{text}}}", r"\label{tab:floodx-table3}", r"\end{table}"]
    return "\n".join(lines) + "\n"
