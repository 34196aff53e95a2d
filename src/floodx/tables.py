"""The paper's tables regenerated from our result files, with the paper's numbers beside them.

- Table 2: Clean%, Aua%, Suc%, #Query per data set x method x attack: the estimate (mean over
  seeds; the sample std too in the CSV) with its 95% interval, and Aua% tested against
  fine-tuning example by example (`floodx.comparisons`): ▲/▼ mark significant wins and losses,
  and bold is the highest Aua% among the significant wins only. From the attack `summary.json`
  files and the `examples.csv` beside each. `reading.md` says in words what the table shows.
- `table2_vs_paper`: every cell we ran beside the paper's value and the difference; data sets the
  paper did not use are compared through a configurable stand-in mapping (e.g. rt -> sst2).
- Search summary: flood levels chosen by Flooding (wide grid) and Flooding-X (accordance window)
  and how many training runs each search needed. From `choice.json`.
- Table 3: seconds per training epoch and the ratio to fine-tuning, from `times.json`.

The paper's Tables 2 and 3 are package data (`floodx/paper_results/paper_table{2,3}.csv`).

Every Markdown table is also written as an HTML page beside it (`floodx.pages`): the report shows
those.

CLI (one sub-command per table, every output written atomically)::

    python -m floodx.tables table2 --summaries results/attack/*/*/seed*/*/summary.json \
        --out-dir results/tables [--paper-map '{"rt": {"paper": "sst2", "stand_in": true}}']
    python -m floodx.tables table3 --times results/profile/*/times.json --out-dir results/tables
    python -m floodx.tables search --choices results/search/*/*/seed*/choice.json \
        [--windows results/probe/*/seed*/window.json] --out-dir results/tables
"""

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import comparisons
from .config import PAPER_DATASETS
from .errors import DataError, run_main
from .names import METHODS, RECIPES, dataset_label, method_label, recipe_label
from .pages import write_markdown
from .provenance import read_result, write_text

DATA_DIR = Path(__file__).resolve().parent / "paper_results"

ATTACKS = RECIPES  # the paper's column order; rows: METHODS
METRICS = ("clean", "aua", "suc", "query")
ATTACK_METRICS = ("aua", "suc", "query")
HIGHER_IS_BETTER = {"clean": True, "aua": True, "suc": False, "query": True}
DECIMALS = {"clean": 1, "aua": 1, "suc": 1, "query": 2}
SUMMARY_FIELDS = {"clean": "clean_acc", "aua": "aua", "suc": "suc", "query": "avg_queries"}

METRIC_LABELS = {"clean": "Clean%", "aua": "Aua%", "suc": "Suc%", "query": "#Query"}
# What the paper compares with when no --paper-map is given: the embedded default's id.
DEFAULT_PAPER_MAP = {"rt": {"paper": "sst2", "stand_in": True}}
# A model whose Clean% is not significantly above always predicting the most frequent test label
# (one-sided binomial test at this level) learned next to nothing; its attack numbers (high Aua%,
# low Suc%) measure no robustness.
MAJORITY_TEST_LEVEL = 0.05


def above_majority_p_value(clean_pct, majority_pct, n):
    """P(at least the observed number of correct answers | a model right with the majority
    share's probability on each of n examples): one-sided exact binomial test."""
    k = int(round(clean_pct * n / 100.0))
    p = majority_pct / 100.0
    if k <= 0 or p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def no_better_than_majority(clean_pct, majority_pct, n):
    """True when Clean% is not significantly above the majority-label baseline; False when any
    of the three numbers is unknown (older summaries)."""
    values = (clean_pct, majority_pct, n)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values) or not n:
        return False
    return above_majority_p_value(float(clean_pct), float(majority_pct), int(n)) >= MAJORITY_TEST_LEVEL


def _order(values, preferred):
    values = list(dict.fromkeys(values))
    known = [v for v in preferred if v in values]
    return known + sorted(v for v in values if v not in preferred)


# ---------------------------------------------------------------- writing
def write_csv(path, frame):
    write_text(path, frame.to_csv(index=False, float_format="%.6g"))


# ---------------------------------------------------------------- paper numbers
def paper_table2():
    """The paper's Table 2 in long form: dataset, method, attack ('' for clean), metric, value."""
    wide = pd.read_csv(DATA_DIR / "paper_table2.csv")
    rows = []
    for rec in wide.to_dict("records"):
        rows.append({"dataset": rec["dataset"], "method": rec["method"], "attack": "",
                     "metric": "clean", "value": float(rec["clean"])})
        for attack in ATTACKS:
            for metric in ATTACK_METRICS:
                rows.append({"dataset": rec["dataset"], "method": rec["method"], "attack": attack,
                             "metric": metric, "value": float(rec[f"{attack}_{metric}"])})
    return pd.DataFrame(rows)


def paper_table3():
    """The paper's Table 3: dataset, method, seconds_per_epoch, batch_size, device, ratio_to_finetune."""
    frame = pd.read_csv(DATA_DIR / "paper_table3.csv")
    base = frame[frame.method == "finetune"].set_index("dataset")["seconds_per_epoch"]
    frame["ratio_to_finetune"] = frame.seconds_per_epoch / frame.dataset.map(base)
    return frame


def parse_paper_map(text, default=DEFAULT_PAPER_MAP):
    """--paper-map JSON, {"rt": {"paper": "sst2", "stand_in": true}, ...} (the rules write it from
    `floodx.config.paper_map`); without one, the embedded default's stand-in."""
    if not text:
        return dict(default)
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"--paper-map is not valid JSON ({err})") from None
    for ours, pair in (mapping.items() if isinstance(mapping, dict) else [(None, None)]):
        if not isinstance(pair, dict) or pair.get("paper") not in PAPER_DATASETS:
            raise DataError(f"--paper-map: {ours!r} must map to {{'paper': one of {PAPER_DATASETS}, "
                            f"'stand_in': true|false}}, got {pair!r}")
    return mapping


def paper_dataset_for(dataset, paper_map):
    """(paper data set, is_stand_in) for one of ours; (None, False) if the map gives it none."""
    pair = paper_map.get(dataset)
    return (pair["paper"], bool(pair.get("stand_in", True))) if pair else (None, False)


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


def _stats(values):
    values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(values)
    mean = float(np.mean(values)) if n else float("nan")
    std = float(np.std(values, ddof=1)) if n >= 2 else float("nan")
    return mean, std, n


def table2(summaries):
    """Table 2 in wide form: one row per (dataset, method) in the paper's order.

    Columns: dataset, method, n_seeds, seeds, clean_mean/_std/_n, then for every attack present
    `{attack}_{aua,suc,query}_{mean,std}` and `{attack}_n`, and a boolean `{column}_best` for
    every number column (bold in the paper's style; ties are all bold). Clean% of one seed is the
    mean clean_acc of that model's attack summaries (they share the attacked test subset).
    """
    frame = summaries
    attacks = _order(frame.attack, ATTACKS)
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
    table["_d"] = table.dataset.map({d: i for i, d in enumerate(_order(table.dataset, PAPER_DATASETS))})
    table["_m"] = table.method.map({m: i for i, m in enumerate(_order(table.method, METHODS))})
    table = table.sort_values(["_d", "_m"]).drop(columns=["_d", "_m"]).reset_index(drop=True)
    tests = comparisons.paired_tests(frame[frame.examples.notna()]) if "examples" in frame else []
    by_key = {(t["dataset"], t["attack"], t["method"]): t for t in tests}
    for attack in attacks:
        found = [by_key.get((d, attack, m), {}) for d, m in zip(table.dataset, table.method)]
        table[f"{attack}_aua_vs_finetune_mark"] = [t.get("mark", "") for t in found]
        for key in ("difference", "p_value", "p_holm", "wins", "losses", "n_tests"):
            table[f"{attack}_aua_vs_finetune_{key}"] = [t.get(key) for t in found]
        for side, key in enumerate(("low", "high")):
            table[f"{attack}_aua_vs_finetune_{key}"] = [(t.get("interval") or (None, None))[side] for t in found]
    for column, metric in _number_columns(attacks):
        table[f"{column}_best"] = False
        if metric == "aua":   # bold: the highest Aua% among significant wins over fine-tune
            wins = table[f"{column}_vs_finetune_mark"] == "win"
            masked = table.assign(**{f"{column}_mean": table[f"{column}_mean"].where(wins)})
            table[f"{column}_best"] = _best_flags(masked, f"{column}_mean", metric)
    table.attrs["notes"] = notes
    table.attrs["attacks"] = attacks
    table.attrs["tests"] = tests
    if "examples" in frame and frame.examples.isna().any():
        table.attrs["notes"].append("some attacks have no examples.csv: their cells carry no interval and "
                                    "no paired test")
    return table


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


def _number_columns(attacks):
    """(column stem, metric) for Clean% and each attack's three metrics, in display order."""
    return [("clean", "clean")] + [(f"{a}_{m}", m) for a in attacks for m in ATTACK_METRICS]


def _best_flags(table, column, metric):
    """Best per data set, compared at the displayed precision (so displayed ties are all bold).

    Degenerate models (`no_better_than_majority`) compete for nothing.
    """
    rounded = table[column].round(DECIMALS[metric])
    if "degenerate" in table:
        rounded = rounded.where(~table["degenerate"].astype(bool))
    best = rounded.groupby(table.dataset).transform("max" if HIGHER_IS_BETTER[metric] else "min")
    return (rounded == best) & rounded.notna()


# ---------------------------------------------------------------- rendering
def _fmt(value, decimals):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{decimals}f}"


MARKS = {"win": ("▲", r"$^\blacktriangle$"), "loss": ("▼", r"$^\blacktriangledown$")}


def _missing(value):
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _cell(row, column, metric, style, row_n):
    mean = row[f"{column}_mean"]
    if _missing(mean):
        return "–" if style == "md" else "--"
    text = _fmt(mean, DECIMALS[metric])
    if row.get(f"{column}_best", False):
        text = f"**{text}**" if style == "md" else rf"\textbf{{{text}}}"
    mark = row.get(f"{column}_vs_finetune_mark")
    if mark in MARKS:
        text += MARKS[mark][0 if style == "md" else 1]
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    if not _missing(low) and not _missing(high):
        lo, hi = _fmt(low, DECIMALS[metric]), _fmt(high, DECIMALS[metric])
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
                 method_label(row["method"]) + (" †" if row.get("degenerate") else ""), str(row["n_seeds"])]
        previous = row["dataset"]
        for column, metric in _number_columns(attacks):
            cells.append(_cell(row, column, metric, "md", row["n_seeds"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", TABLE2_NOTE]
    if "degenerate" in table and table["degenerate"].any():
        lines.append(DEGENERATE_NOTE)
    for note in table.attrs.get("notes", []):
        lines.append(f"Note: {note}")
    return "\n".join(lines) + "\n"


def latex_escape(text):
    text = str(text)
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                       ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(char, repl)
    return text


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
                 latex_escape(method_label(row["method"])) + (r"$^\dagger$" if row.get("degenerate") else "")]
        previous = row["dataset"]
        for column, metric in _number_columns(attacks):
            cells.append(_cell(row, column, metric, "tex", row["n_seeds"]))
        lines.append(" & ".join(cells) + r" \\")
    text = (latex_escape(caption.rstrip(". ")) + ". ") if caption else ""
    text += latex_escape(TABLE2_NOTE).replace("▲", r"$\blacktriangle$").replace("▼", r"$\blacktriangledown$")
    if "degenerate" in table and table["degenerate"].any():
        text += r" $^\dagger$" + latex_escape(DEGENERATE_NOTE.removeprefix("†"))
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{text}}}", r"\label{tab:floodx-table2}",
              r"\end{table*}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the reading, generated
def _points(value):
    return f"{value:+.1f}".replace("-", "−")


def _comparison_text(test):
    low, high = test["interval"]
    won = f"{test['wins']} example{'' if test['wins'] == 1 else 's'} won"
    return (f"{method_label(test['method'])} {_points(100 * test['difference'])} points (95% interval "
            f"{_points(100 * low)} to {_points(100 * high)}; {won}, {test['losses']} lost; "
            f"Holm p = {test['p_holm']:.3g})")


def reading_markdown(table, caption=None):
    """What Table 2 lets a reader conclude, per data set and attack, written from its tests."""
    lines = ["# What Table 2 shows (generated)", ""] + ([caption, ""] if caption else [])
    tests = table.attrs.get("tests") or []
    if not tests:
        return "\n".join(lines + ["No per-example attack outcomes (examples.csv) or no fine-tune row: "
                                   "nothing was tested."]) + "\n"
    groups = {}
    for test in tests:
        groups.setdefault((test["dataset"], test["attack"]), []).append(test)
    order = [(d, a) for d in dict.fromkeys(table.dataset) for a in table.attrs.get("attacks", ATTACKS)]
    for dataset, attack in [key for key in order if key in groups]:
        group = groups[(dataset, attack)]
        reference = table[(table.dataset == dataset) & (table.method == comparisons.REFERENCE)].iloc[0]
        n = reference.get(f"{attack}_n_examples")
        seeds = int(reference["n_seeds"])
        ref_aua = reference[f"{attack}_aua_mean"]
        head = (f"- **{dataset_label(dataset)}, {recipe_label(attack)}** ({n} attacked test "
                f"examples, {seeds} seed{'s' if seeds != 1 else ''}; fine-tune Aua% {ref_aua:.1f}): ")
        wins = [t for t in group if t["mark"] == "win"]
        losses = [t for t in group if t["mark"] == "loss"]
        parts = []
        parts.append("significantly more robust than fine-tune: " + "; ".join(map(_comparison_text, wins))
                     if wins else "no method's Aua% is significantly above fine-tune's")
        if losses:
            parts.append("significantly less robust: " + "; ".join(map(_comparison_text, losses)))
        # The effects behind a "no": the paper's method and the largest observed gain, with intervals.
        unmarked = [t for t in group if not t["mark"]]
        shown = [t for t in unmarked if t["method"] == "flooding_x"]
        if unmarked:
            largest = max(unmarked, key=lambda t: t["difference"])
            shown += [largest] if largest not in shown else []
        if shown:
            parts.append("observed, not significant: " + "; ".join(map(_comparison_text, shown)))
        # Over several seeds the smallest significant difference is 8 examples each won in one
        # seed (the sign-flip test of per-example sums), i.e. k of all (seed, example) pairs.
        pairs = int(group[0].get("n_pairs") or 0) or (int(n) if n else 0)
        unit = "examples" if seeds == 1 else "(seed, example) pairs"
        points = comparisons.detectable_points(pairs, len(group)) if pairs else None
        if points is None:
            parts.append("with so few examples no difference could have been significant")
        else:
            k = round(points * pairs / 100)
            parts.append(f"the smallest difference this run could have called significant is {points:.1f} points "
                         f"({k} of {pairs} {unit}, all won and none lost; Holm over {len(group)} methods)")
        lines.append(head + "; ".join(parts) + ".")
    lines += ["", "Tests: exact paired sign-flip test of Aua% against fine-tune on the same examples "
              "(McNemar for one seed), Holm-corrected per data set and attack; intervals of differences: "
              "bootstrap over examples (docs/statistics.md)."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- ours vs the paper
def table2_long(table):
    """Wide Table 2 -> long: dataset, method, attack ('' for clean), metric, mean, std, n, best."""
    attacks = table.attrs.get("attacks") or [a for a in ATTACKS if f"{a}_aua_mean" in table]
    rows = []
    for _, row in table.iterrows():
        for column, metric in _number_columns(attacks):
            attack = "" if column == "clean" else column.rsplit("_", 1)[0]
            n = row["clean_n"] if column == "clean" else row[f"{attack}_n"]
            if math.isnan(row[f"{column}_mean"]):
                continue
            rows.append({"dataset": row["dataset"], "method": row["method"], "attack": attack,
                         "metric": metric, "mean": row[f"{column}_mean"], "std": row[f"{column}_std"],
                         "n": int(n), "best": bool(row[f"{column}_best"])})
    return pd.DataFrame(rows)


def table2_vs_paper(table, paper_map=None, paper=None):
    """Every cell we ran beside the paper's: ours mean/std/n, paper value, ours - paper, and the
    rank of the method (1 = best) among the methods we ran, in ours and in the paper."""
    paper_map = DEFAULT_PAPER_MAP if paper_map is None else paper_map
    paper = paper_table2() if paper is None else paper
    ours = table2_long(table)
    pairs = [paper_dataset_for(d, paper_map) for d in ours.dataset]
    ours["paper_dataset"] = [p for p, _ in pairs]
    ours["stand_in"] = [s for _, s in pairs]
    merged = ours.merge(
        paper.rename(columns={"dataset": "paper_dataset", "value": "paper"}),
        on=["paper_dataset", "method", "attack", "metric"], how="left")
    merged["diff"] = merged["mean"] - merged["paper"]
    # Ranks among the methods present in both ours and the paper for this cell.
    merged["ours_rank"] = np.nan
    merged["paper_rank"] = np.nan
    for _, idx in merged.groupby(["dataset", "attack", "metric"]).groups.items():
        cell = merged.loc[idx]
        both = cell[cell.paper.notna()]
        if len(both) < 2:
            continue
        metric = both.metric.iloc[0]
        asc = not HIGHER_IS_BETTER[metric]
        merged.loc[both.index, "ours_rank"] = both["mean"].round(DECIMALS[metric]).rank(method="min", ascending=asc)
        merged.loc[both.index, "paper_rank"] = both["paper"].rank(method="min", ascending=asc)

    def note(rec):
        if rec["paper_dataset"] is None or (isinstance(rec["paper_dataset"], float)):
            return "no counterpart in the paper"
        if math.isnan(rec["paper"]):
            return f"the paper has no {method_label(rec['method'])} on {dataset_label(rec['paper_dataset'])}"
        if rec["stand_in"]:
            return (f"stand-in: {dataset_label(rec['dataset'])} compared with the paper's "
                    f"{dataset_label(rec['paper_dataset'])}")
        return ""

    merged["note"] = merged.apply(note, axis=1) if len(merged) else []
    merged["stand_in"] = merged["stand_in"].astype(bool)
    columns = ["dataset", "paper_dataset", "stand_in", "method", "attack", "metric", "mean", "std", "n",
               "paper", "diff", "ours_rank", "paper_rank", "note"]
    return merged[columns].rename(columns={"mean": "ours_mean", "std": "ours_std", "n": "ours_n"})


def table2_vs_paper_markdown(comparison, caption=None):
    lines = [caption, ""] if caption else []
    for dataset, group in comparison.groupby("dataset", sort=False):
        paper_ds = group.paper_dataset.iloc[0]
        title = f"### {dataset_label(dataset)}"
        if paper_ds is None or (isinstance(paper_ds, float)):
            lines += [title, "", "The paper has no counterpart for this data set; our numbers only.", ""]
        elif group.stand_in.iloc[0]:
            lines += [title + f" vs the paper's {dataset_label(paper_ds)} (stand-in)", "",
                      f"**Stand-in comparison:** {dataset_label(dataset)} is not one of the paper's data "
                      f"sets; it is compared with the paper's {dataset_label(paper_ds)}. Different data, "
                      "and in the default config a different model, scale and attacks: compare the "
                      "ordering of methods, not absolute numbers.", ""]
        else:
            lines += [title, ""]
        lines += ["| Method | Attack | Metric | Ours | n | Paper | Ours − paper | Rank ours / paper |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        for rec in group.to_dict("records"):
            dec = DECIMALS[rec["metric"]]
            ours = _fmt(rec["ours_mean"], dec)
            if not math.isnan(rec["ours_std"]):
                ours += f" ± {_fmt(rec['ours_std'], dec)}"
            rank = ""
            if not math.isnan(rec["ours_rank"]):
                rank = f"{int(rec['ours_rank'])} / {int(rec['paper_rank'])}"
            diff = _fmt(rec["diff"], dec)
            if diff and not diff.startswith("-"):
                diff = "+" + diff
            lines.append("| " + " | ".join([
                method_label(rec["method"]), recipe_label(rec["attack"]) or "–",
                METRIC_LABELS[rec["metric"]], ours, str(rec["ours_n"]), _fmt(rec["paper"], dec) or "–",
                diff or "–", rank or "–"]) + " |")
        lines.append("")
    lines.append("Rank: 1 = best among the methods present in both tables (lowest Suc% is best).")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- flood-level search summary
_CHOICE_PATH = re.compile(r"(?P<dataset>[^/]+)/(?P<method>flooding|flooding_x)/seed(?P<seed>\d+)/choice\.json$")
_WINDOW_PATH = re.compile(r"(?P<dataset>[^/]+)/seed(?P<seed>\d+)/window\.json$")


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
        match = _CHOICE_PATH.search(Path(path).as_posix())
        if not match:
            raise DataError(f"{path}: expected .../{{dataset}}/{{flooding|flooding_x}}/seed{{seed}}/choice.json")
        choice = read_result(path)
        key = (match["dataset"], int(match["seed"]))
        row = rows.setdefault(key, {"dataset": key[0], "seed": key[1]})
        prefix = match["method"]
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
        match = _WINDOW_PATH.search(Path(path).as_posix())
        if not match:
            raise DataError(f"{path}: expected .../{{dataset}}/seed{{seed}}/window.json")
        key = (match["dataset"], int(match["seed"]))
        if key not in rows:
            continue
        window = read_result(path)
        row = rows[key]
        if window.get("low") is not None and window.get("high") is not None:
            row["window"] = f"[{float(window['low']):.3f}, {float(window['high']):.3f}]"
        row["window_direction"] = window.get("direction")
        row["window_fallback"] = window.get("fallback")
        row.update(_onset_columns(window.get("onset")))
    frame = pd.DataFrame(list(rows.values()))
    if frame.empty:
        raise DataError("no choice.json given")
    for column in ("crossing_sub_epoch", "dev_min_sub_epoch", "lag_sub_epochs"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    frame["_d"] = frame.dataset.map({d: i for i, d in enumerate(_order(frame.dataset, PAPER_DATASETS))})
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


def _signed(text):
    return text.replace("-", "−")


def _onset_cells(rec):
    """The Markdown cells Crossing, Dev-loss min and Lag: '9 (− → +, loss 0.050)', '6 (loss 0.210)',
    '3 (1.5 ep)'; '–' where unknown."""
    arrows = {"pos_to_neg": "+ → −", "neg_to_pos": "− → +"}
    crossing = "–"
    if not _missing(rec.get("crossing_sub_epoch")):
        inside = [arrows.get(rec.get("crossing_direction"), rec.get("crossing_direction"))]
        if not _missing(rec.get("crossing_train_loss")):
            inside.append(f"loss {float(rec['crossing_train_loss']):.3f}")
        inside = [part for part in inside if not _missing(part)]
        crossing = str(int(rec["crossing_sub_epoch"])) + (f" ({', '.join(inside)})" if inside else "")
    dev_min = "–"
    if not _missing(rec.get("dev_min_sub_epoch")):
        dev_min = str(int(rec["dev_min_sub_epoch"]))
        if not _missing(rec.get("dev_min_train_loss")):
            dev_min += f" (loss {float(rec['dev_min_train_loss']):.3f})"
    lag = "–"
    if not _missing(rec.get("lag_sub_epochs")):
        lag = _signed(str(int(rec["lag_sub_epochs"])))
        if not _missing(rec.get("lag_epochs")):
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
              "the confirmed accordance sign change that opened the window (direction, mean train loss); "
              "Dev-loss min: the probe's sub-epoch with the lowest dev loss (mean train loss); – where "
              "window.json does not record it. Lag = crossing sub-epoch − dev-loss-minimum sub-epoch "
              "(in epochs in brackets): positive means the dev loss bottomed out before the accordance "
              "changed sign, negative after it."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Table 3
def load_times(paths):
    rows = []
    for path in paths:
        times = read_result(path)
        for field in ("methods", "dataset"):
            if not times.get(field):
                raise DataError(f"{path}: field '{field}' missing (docs/design.md, Outputs)")
        for method, rec in times["methods"].items():
            rows.append({"dataset": times["dataset"], "method": method,
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


TABLE3_METHODS = ("finetune", "flooding", "flooding_x", "tavat", "freelb", "pgd", "infobert")  # paper's order


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
    frame["_d"] = frame.dataset.map({d: i for i, d in enumerate(_order(frame.dataset, ("sst2", "qnli", "imdb")))})
    frame["_m"] = frame.method.map({m: i for i, m in enumerate(_order(frame.method, TABLE3_METHODS))})
    return frame.sort_values(["_d", "_m"]).drop(columns=["_d", "_m"]).reset_index(drop=True)


def _seconds(value):
    """Seconds with sensible precision: 1,193 / 27.4 / 0.0123."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _table3_cells(frame):
    datasets = list(dict.fromkeys(frame.dataset))
    methods = _order(frame.method, TABLE3_METHODS)
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
        header.append(f"{dataset_label(d)} s/epoch (× fine-tune)")
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
                cells.append(f"{_seconds(rec['seconds_per_epoch'])} (×{rec['ratio_to_finetune']:.2f})")
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
    lines.append("Paper: NVIDIA RTX 2080Ti, whole training sets; its Flooding row is shown for "
                 "Flooding-X too (same code, another flood level). Compare ratios, not seconds.")
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
                cells.append(f"{_seconds(rec['seconds_per_epoch'])} ($\\times${rec['ratio_to_finetune']:.2f})")
            elif math.isnan(rec["paper_seconds_per_epoch"]):
                cells.append("--")
            else:
                cells.append(f"{rec['paper_seconds_per_epoch']:,.0f} ($\\times${rec['paper_ratio_to_finetune']:.2f})")
        lines.append(" & ".join(cells) + r" \\")
    text = (latex_escape(caption.rstrip(". ")) + ". ") if caption else ""
    text += (r"Training time (seconds) of one epoch, and the ratio to fine-tuning. "
             r"Ours: extrapolated from timed steps; paper: RTX 2080Ti, whole training sets.")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{text}}}", r"\label{tab:floodx-table3}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- writing everything
def write_table2(summary_paths, out_dir, paper_map=None, caption=None):
    out_dir = Path(out_dir)
    table = table2(load_attack_summaries(summary_paths))
    export = table.copy()
    write_csv(out_dir / "table2.csv", export)
    write_markdown(out_dir / "table2.md", table2_markdown(table, caption), "Table 2")
    write_text(out_dir / "table2.tex", table2_latex(table, caption))
    write_markdown(out_dir / "reading.md", reading_markdown(table, caption), "What Table 2 shows")
    comparison = table2_vs_paper(table, paper_map)
    write_csv(out_dir / "table2_vs_paper.csv", comparison)
    write_markdown(out_dir / "table2_vs_paper.md", table2_vs_paper_markdown(comparison, caption),
                   "Table 2 beside the paper")
    return table, comparison


def write_table3(times_paths, out_dir, paper_map=None, caption=None):
    out_dir = Path(out_dir)
    frame = table3(load_times(times_paths), paper_map)
    write_csv(out_dir / "table3.csv", frame)
    write_markdown(out_dir / "table3.md", table3_markdown(frame, caption), "Table 3")
    write_text(out_dir / "table3.tex", table3_latex(frame, caption))
    return frame


def write_search(choice_paths, out_dir, window_paths=(), caption=None):
    out_dir = Path(out_dir)
    frame = search_summary(choice_paths, window_paths)
    write_csv(out_dir / "search.csv", frame)
    write_markdown(out_dir / "search.md", search_markdown(frame, caption), "Flood-level search")
    return frame


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.tables", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t2 = sub.add_parser("table2", help="Table 2 and table2_vs_paper from attack summary.json files")
    t2.add_argument("--summaries", nargs="+", required=True)
    t2.add_argument("--out-dir", required=True)
    t2.add_argument("--paper-map", default=None, metavar="JSON",
                    help='the paper data set each of ours is compared with, e.g. '
                         '\'{"rt": {"paper": "sst2", "stand_in": true}}\' (default: that one)')
    t2.add_argument("--caption", default=None)
    t3 = sub.add_parser("table3", help="Table 3 from profiling times.json files")
    t3.add_argument("--times", nargs="+", required=True)
    t3.add_argument("--out-dir", required=True)
    t3.add_argument("--paper-map", default=None, metavar="JSON")
    t3.add_argument("--caption", default=None)
    se = sub.add_parser("search", help="flood levels chosen and training runs needed")
    se.add_argument("--choices", nargs="+", required=True)
    se.add_argument("--windows", nargs="*", default=[])
    se.add_argument("--out-dir", required=True)
    se.add_argument("--caption", default=None)
    for p in (t2, t3, se):
        p.add_argument("--threads", type=int, default=None, help="accepted for uniformity; unused")
    args = parser.parse_args(argv)
    if args.command == "table2":
        table, _ = write_table2(args.summaries, args.out_dir, parse_paper_map(args.paper_map), args.caption)
        print(f"table2: {len(table)} rows -> {args.out_dir}")
    elif args.command == "table3":
        frame = write_table3(args.times, args.out_dir, parse_paper_map(args.paper_map), args.caption)
        print(f"table3: {len(frame)} rows -> {args.out_dir}")
    else:
        frame = write_search(args.choices, args.out_dir, args.windows, args.caption)
        print(f"search: {len(frame)} rows -> {args.out_dir}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
