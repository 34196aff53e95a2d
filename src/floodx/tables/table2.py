"""Table 2: Clean%, Aua%, Suc%, #Query per data set x method x attack, with intervals and paired tests."""

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import comparisons
from ..config import PAPER_DATASETS
from ..errors import DataError
from ..saturation import SATURATED_WARNING
from ..names import METHODS, SUCCESSOR_REFERENCE, SUCCESSORS, dataset_label, method_label, recipe_label
from ..files import read_result
from .common import (
    ATTACK_METRICS, ATTACKS, DECIMALS, HIGHER_IS_BETTER, MAJORITY_TEST_LEVEL, METRIC_LABELS, SUMMARY_FIELDS, fmt,
    latex_escape, missing, no_better_than_majority, number_columns, order,
)


# ---------------------------------------------------------------- collecting our results
IDENTITY_KEYS = ("dataset", "method", "seed", "recipe")  # what a summary.json must say it is


def summary_identity(path, summary):
    """(dataset, method, seed, attack) as the file records it (`identity`, written by the gather job)."""
    identity = summary.get("identity")
    missing = [key for key in IDENTITY_KEYS if not isinstance(identity, dict) or identity.get(key) is None]
    if missing:
        raise DataError(f"{path}: identity field(s) {missing} missing (written by the gather job since "
                        "floodx's result files carry their identity; rerun: snakemake -R gather_attack)")
    return {"dataset": identity["dataset"], "method": identity["method"], "seed": int(identity["seed"]),
            "attack": identity["recipe"]}


def load_attack_summaries(paths):
    """One row per summary.json: dataset, method, seed, attack, clean, aua, suc, query, ..."""
    rows = []
    for path in paths:
        summary = read_result(path)
        keys = summary_identity(path, summary)
        if summary.get("split", "test") != "test":
            raise DataError(f"{path}: an attack on the '{summary['split']}' split; Table 2 reports test attacks")
        row = dict(keys)
        for metric, field in SUMMARY_FIELDS.items():
            if field not in summary:
                raise DataError(f"{path}: field '{field}' missing (docs/design.md, Attacks: summary.json)")
            value = summary[field]
            row[metric] = float("nan") if value is None else float(value)
        for field, key in (("majority", "majority_acc"), ("n_clean", "n_clean")):
            row[field] = float("nan") if summary.get(key) is None else float(summary[key])
        for field in ("n_attacked", "n_successful", "n_failed", "n_skipped", "mode"):
            row[field] = summary.get(field)
        row["host_deviations"] = tuple(summary.get("host_deviations") or ())
        row["training_precision"] = summary.get("training_precision")
        examples = Path(path).with_name("examples.csv")
        row["examples"] = comparisons.example_outcomes(path) if examples.is_file() else None
        row["path"] = str(path)
        rows.append(row)
    if not rows:
        raise DataError("no attack summary.json given")
    frame = pd.DataFrame(rows)
    dup = frame.duplicated(["dataset", "method", "seed", "attack"], keep=False)
    if dup.any():
        raise DataError(f"the same (dataset, method, seed, attack) given twice: {sorted(frame[dup].path)}")
    return frame


def load_saturation(paths):
    """{(dataset, method): [saturated share per seed]} from saturation.json files (floodx.saturation)."""
    shares = {}
    for path in paths:
        result = read_result(path)
        identity = result.get("identity") or {}
        if identity.get("dataset") is None or identity.get("method") is None or "saturated" not in result:
            raise DataError(f"{path}: identity.dataset, identity.method or saturated missing (floodx.saturation)")
        shares.setdefault((identity["dataset"], identity["method"]), []).append(float(result["saturated"]))
    return shares


def _stats(values):
    values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(values)
    mean = float(np.mean(values)) if n else float("nan")
    std = float(np.std(values, ddof=1)) if n >= 2 else float("nan")
    return mean, std, n


def table2(summaries, saturation=None):
    """Table 2 in wide form: one row per (dataset, method) in the paper's order.

    Columns: dataset, method, n_seeds, seeds, clean_mean/_std/_n, then for every attack present
    `{attack}_{aua,suc,query}_{mean,std}` and `{attack}_n`, and a boolean `{column}_best` for
    every number column (bold in the paper's style; ties are all bold). Clean% of one seed is the
    mean clean_acc of that model's attack summaries (they share the attacked test subset).
    `saturation` (`load_saturation`) adds `softmax_saturated`: the mean share of saturated test examples.
    """
    frame = summaries
    attacks = order(frame.attack, ATTACKS)
    rows = []
    notes = []
    for (dataset, method), group in frame.groupby(["dataset", "method"], sort=False):
        row = {"dataset": dataset, "method": method}
        seeds = sorted(group.seed.unique())
        row["n_seeds"] = len(seeds)
        row["seeds"] = " ".join(str(s) for s in seeds)
        clean_per_seed = []
        for seed, per_seed in group.groupby("seed"):
            values = per_seed.clean.dropna()
            if len(values) and values.max() - values.min() > 0.05:
                notes.append(f"{dataset}/{method}/seed{seed}: clean_acc differs between attacks "
                             f"({', '.join(f'{a}={c:.1f}' for a, c in zip(per_seed.attack, per_seed.clean))})")
            clean_per_seed.append(values.mean() if len(values) else float("nan"))
        row["clean_mean"], row["clean_std"], row["clean_n"] = _stats(clean_per_seed)
        row["training_precision"] = _precisions(group)
        row["majority"] = group.majority.max() if "majority" in group else float("nan")
        n_clean = group.n_clean.max() if "n_clean" in group else float("nan")
        row["degenerate"] = no_better_than_majority(row["clean_mean"], row["majority"], n_clean)
        for index, attack in enumerate(attacks):
            sub = group[group.attack == attack]
            for metric in ATTACK_METRICS:
                mean, std, n = _stats(sub[metric].tolist())
                row[f"{attack}_{metric}_mean"], row[f"{attack}_{metric}_std"] = mean, std
            row[f"{attack}_n"] = int(sub.seed.nunique())
            if sub.empty:
                continue
            intervals = comparisons.cell_intervals(sub.to_dict("records"))
            for metric in ATTACK_METRICS:
                row[f"{attack}_{metric}_low"], row[f"{attack}_{metric}_high"] = intervals[metric]
            if index == 0 or "clean_low" not in row:
                row["clean_low"], row["clean_high"] = intervals["clean"]
            n_examples = [len(e) for e in sub.examples if e is not None]
            row[f"{attack}_n_examples"] = min(n_examples) if n_examples else None
        rows.append(row)
    table = pd.DataFrame(rows)
    table["_d"] = table.dataset.map({d: i for i, d in enumerate(order(table.dataset, PAPER_DATASETS))})
    table["_m"] = table.method.map({m: i for i, m in enumerate(order(table.method, METHODS))})
    table = table.sort_values(["_d", "_m"]).drop(columns=["_d", "_m"]).reset_index(drop=True)
    tested = frame[frame.examples.notna()] if "examples" in frame else frame.iloc[:0]
    tests = comparisons.paired_tests(tested) if len(tested) else []
    successor_tests = (comparisons.paired_tests(tested, reference=SUCCESSOR_REFERENCE, methods=SUCCESSORS)
                       if len(tested) else [])
    shares = [(saturation or {}).get((d, m)) for d, m in zip(table.dataset, table.method)]
    table["softmax_saturated"] = [float(np.mean(v)) if v else float("nan") for v in shares]
    table["masked_scores"] = table.softmax_saturated >= SATURATED_WARNING   # NaN compares False
    _add_test_columns(table, tests, attacks, comparisons.REFERENCE)
    _add_test_columns(table, successor_tests, attacks, SUCCESSOR_REFERENCE)
    _add_clean_differences(table, comparisons.REFERENCE)
    for column, metric in number_columns(attacks):
        table[f"{column}_best"] = False
        if metric == "aua":   # bold: the highest Aua% among significant wins over fine-tune
            wins = table[f"{column}_vs_finetune_mark"] == "win"
            masked = table.assign(**{f"{column}_mean": table[f"{column}_mean"].where(wins)})
            table[f"{column}_best"] = _best_flags(masked, f"{column}_mean", metric)
    if "host_deviations" in frame:
        for deviation in sorted({d for found in frame.host_deviations for d in found}):
            hit = frame[frame.host_deviations.map(lambda found: deviation in found)]
            notes.append(f"attacks on this host ({len(hit)} of {len(frame)} summaries): {deviation}")
    notes.extend(precision_notes(frame))
    table.attrs["notes"] = notes
    table.attrs["attacks"] = attacks
    table.attrs["tests"] = tests
    table.attrs["successor_tests"] = successor_tests
    if "examples" in frame and frame.examples.isna().any():
        table.attrs["notes"].append("some attacks have no examples.csv: their cells carry no interval and "
                                    "no paired test")
    return table


def _precisions(frame):
    """The training precisions of the models behind `frame`'s summaries ('bf16', 'fp32', 'bf16+fp32'; '' unknown)."""
    found = frame.training_precision.dropna() if "training_precision" in frame else ()
    return "+".join(sorted({part for value in found for part in str(value).split("+")}))


def precision_notes(frame):
    """Which precision the models trained in, and a warning where they differ.

    `training.bf16: auto` resolves on each job's own machine (floodx.precision), so one folder trained on
    machines with and without native bf16 holds models whose differences mix the method with rounding."""
    if "training_precision" not in frame:
        return []
    models = frame.drop_duplicates(["dataset", "method", "seed"])
    known = models[models.training_precision.map(lambda value: isinstance(value, str) and bool(value))]
    if known.empty:
        return []
    unrecorded = (f"; {len(models) - len(known)} of {len(models)} models' summaries predate the record"
                  if len(known) < len(models) else "")
    precisions = sorted(set(known.training_precision))
    if len(precisions) == 1:
        return [f"every model trained in {precisions[0]} ({len(known)} models; training.bf16 in the config, "
                f"resolved on each training job's machine: floodx.precision){unrecorded}"]
    parts = "; ".join(f"{precision}: " + ", ".join(f"{m.dataset}/{method_label(m.method)}/seed{m.seed}"
                                                   for m in known[known.training_precision == precision]
                                                   .itertuples())
                      for precision in precisions)
    return [f"the models did not all train in one precision ({parts}){unrecorded}: training.bf16: auto "
            "resolves on each training job's machine, so a folder trained on machines with and without native "
            "bf16 mixes them, and differences between such models mix the method with rounding; pin "
            "training.bf16 or train in one place (docs/deviations.md)"]


def _add_test_columns(table, tests, attacks, reference):
    """`{attack}_aua_vs_{reference}_{mark,difference,p_value,p_holm,wins,losses,n_tests,low,high}`."""
    by_key = {(t["dataset"], t["attack"], t["method"]): t for t in tests}
    for attack in attacks:
        found = [by_key.get((d, attack, m), {}) for d, m in zip(table.dataset, table.method)]
        prefix = f"{attack}_aua_vs_{reference}"
        table[f"{prefix}_mark"] = [t.get("mark", "") for t in found]
        for key in ("difference", "p_value", "p_holm", "wins", "losses", "n_tests"):
            table[f"{prefix}_{key}"] = [t.get(key) for t in found]
        for side, key in enumerate(("low", "high")):
            table[f"{prefix}_{key}"] = [(t.get("interval") or (None, None))[side] for t in found]


def _add_clean_differences(table, reference):
    """`clean_vs_{reference}_{difference,low,high}`: the clean-accuracy cost of each method, a proportion
    like the Aua differences (`comparisons.difference_interval`; NaN where a cell has no interval)."""
    columns = {key: [] for key in ("difference", "low", "high")}
    for row in table.itertuples():
        ref = table[(table.dataset == row.dataset) & (table.method == reference)]
        cells = [getattr(row, f"clean_{k}", float("nan")) for k in ("mean", "low", "high")]
        cells += [ref.iloc[0].get(f"clean_{k}", float("nan")) if len(ref) else float("nan")
                  for k in ("mean", "low", "high")]
        if row.method == reference or any(missing(v) for v in cells):
            values = (float("nan"),) * 3
        else:
            values = [v / 100 for v in comparisons.difference_interval(*cells)]   # the cells are in %
        for key, value in zip(columns, values):
            columns[key].append(value)
    for key, values in columns.items():
        table[f"clean_vs_{reference}_{key}"] = values


DEGENERATE_NOTE = ("† Clean% not significantly above always predicting the most frequent test "
                   f"label (one-sided binomial test, p ≥ {MAJORITY_TEST_LEVEL:g}): the model learned "
                   "next to nothing, so its attack numbers say nothing about robustness; it "
                   "competes for no bold.")


TABLE2_NOTE = (
    "Each cell: the estimate (mean over the n seeds) and its 95% interval in brackets: one seed, "
    "Wilson over the examples (Clean%, Aua%, Suc%) or Student t (#Query); several seeds, a "
    "two-stage bootstrap over seeds and examples (the CSV also has the sample std over seeds). "
    "▲/▼: Aua% significantly above/below fine-tune's on the same examples (exact paired "
    "sign-flip test, i.e. McNemar for one seed; Holm-corrected over the methods of a data set "
    "and attack; p < 0.05). Bold: the highest Aua% among the ▲ methods; the other columns are "
    "not tested and not bolded (docs/statistics.md).")


MASKED_NOTE = (f"‡ The model's fp32 softmax is exactly 1.0 on at least {100 * SATURATED_WARNING:.0f}% of its test "
               "examples, so the score-based attacks cannot rank its word changes: its Aua% may be masked scores, an "
               "illusion of robustness (Raina et al., 2024); it competes for no bold (reading.md, floodx.saturation).")

# The flags after a method's name: (column, Markdown, LaTeX, note).
ROW_FLAGS = (("degenerate", " †", r"$^\dagger$", DEGENERATE_NOTE),
             ("masked_scores", " ‡", r"$^\ddagger$", MASKED_NOTE))


def _flagged(row, style):
    return "".join(md if style == "md" else tex for column, md, tex, _ in ROW_FLAGS if row.get(column))


def _flag_notes(table):
    return [note for column, _, _, note in ROW_FLAGS if column in table and table[column].astype(bool).any()]


def _best_flags(table, column, metric):
    """Best per data set, compared at the displayed precision (so displayed ties are all bold).

    Degenerate models (`no_better_than_majority`) and models with masked scores compete for nothing.
    """
    rounded = table[column].round(DECIMALS[metric])
    for flag in ("degenerate", "masked_scores"):
        if flag in table:
            rounded = rounded.where(~table[flag].astype(bool))
    best = rounded.groupby(table.dataset).transform("max" if HIGHER_IS_BETTER[metric] else "min")
    return (rounded == best) & rounded.notna()


# ---------------------------------------------------------------- rendering
MARKS = {"win": ("▲", r"$^\blacktriangle$"), "loss": ("▼", r"$^\blacktriangledown$")}


def _cell(row, column, metric, style, row_n):
    mean = row[f"{column}_mean"]
    if missing(mean):
        return "–" if style == "md" else "--"
    text = fmt(mean, DECIMALS[metric])
    if row.get(f"{column}_best", False):
        text = f"**{text}**" if style == "md" else rf"\textbf{{{text}}}"
    mark = row.get(f"{column}_vs_finetune_mark")
    if mark in MARKS:
        text += MARKS[mark][0 if style == "md" else 1]
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    if not missing(low) and not missing(high):
        lo, hi = fmt(low, DECIMALS[metric]), fmt(high, DECIMALS[metric])
        text += f" ({lo}–{hi})" if style == "md" else rf"\,{{\scriptsize({lo}--{hi})}}"
    n = row.get("clean_n" if column == "clean" else f"{column.rsplit('_', 1)[0]}_n")
    if n is not None and row_n is not None and n != row_n:
        text += f" (n={n})" if style == "md" else rf"$^{{n={n}}}$"
    return text


def table2_markdown(table, caption=None):
    attacks = table.attrs.get("attacks") or [a for a in ATTACKS if f"{a}_aua_mean" in table]
    header = ["Data set", "Method", "n", "Clean%"]
    for attack in attacks:
        header += [f"{recipe_label(attack)} {METRIC_LABELS[m]}" for m in ATTACK_METRICS]
    lines = []
    if caption:
        lines += [caption, ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    previous = None
    for _, row in table.iterrows():
        row = row.to_dict()
        cells = [dataset_label(row["dataset"]) if row["dataset"] != previous else "",
                 method_label(row["method"]) + _flagged(row, "md"), str(row["n_seeds"])]
        previous = row["dataset"]
        for column, metric in number_columns(attacks):
            cells.append(_cell(row, column, metric, "md", row["n_seeds"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", TABLE2_NOTE] + _flag_notes(table)
    for note in table.attrs.get("notes", []):
        lines.append(f"Note: {note}")
    return "\n".join(lines) + "\n"


def table2_latex(table, caption=None):
    attacks = table.attrs.get("attacks") or [a for a in ATTACKS if f"{a}_aua_mean" in table]
    ncols = 3 + 3 * len(attacks)
    lines = [r"% floodx Table 2 (needs \usepackage{booktabs,amssymb})", r"\begin{table*}[t]", r"\centering",
             r"\small", r"\begin{tabular}{ll" + "r" * (ncols - 2) + "}", r"\toprule"]
    top = ["", "", ""] + [rf"\multicolumn{{3}}{{c}}{{{recipe_label(a)}}}" for a in attacks]
    lines.append(" & ".join(top) + r" \\")
    lines.append(" ".join(rf"\cmidrule(lr){{{4 + 3 * i}-{6 + 3 * i}}}" for i in range(len(attacks))))
    sub = ["Data set", "Method", r"Clean\%"] + [latex_escape(METRIC_LABELS[m]) for _ in attacks for m in ATTACK_METRICS]
    lines += [" & ".join(sub) + r" \\", r"\midrule"]
    previous = None
    for _, row in table.iterrows():
        row = row.to_dict()
        if previous is not None and row["dataset"] != previous:
            lines.append(r"\midrule")
        cells = [latex_escape(dataset_label(row["dataset"])) if row["dataset"] != previous else "",
                 latex_escape(method_label(row["method"])) + _flagged(row, "tex")]
        previous = row["dataset"]
        for column, metric in number_columns(attacks):
            cells.append(_cell(row, column, metric, "tex", row["n_seeds"]))
        lines.append(" & ".join(cells) + r" \\")
    text = (latex_escape(caption.rstrip(". ")) + ". ") if caption else ""
    text += latex_escape(TABLE2_NOTE).replace("▲", r"$\blacktriangle$").replace("▼", r"$\blacktriangledown$")
    for column, _, tex, note in ROW_FLAGS:
        if column in table and table[column].astype(bool).any():
            text += " " + tex + latex_escape(note[1:])
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{text}}}", r"\label{tab:floodx-table2}",
              r"\end{table*}"]
    return "\n".join(lines) + "\n"
