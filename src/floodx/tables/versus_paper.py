"""Every cell of Table 2 beside the paper's value and the difference (`table2_vs_paper`)."""

import math

import numpy as np
import pandas as pd

from ..names import dataset_label, method_label, recipe_label
from .common import (
    ATTACKS, DECIMALS, DEFAULT_PAPER_MAP, HIGHER_IS_BETTER, METRIC_LABELS, fmt, number_columns, paper_dataset_for,
    paper_table2,
)


# ---------------------------------------------------------------- ours vs the paper
def table2_long(table):
    """Wide Table 2 -> long: dataset, method, attack ('' for clean), metric, mean, std, n, best."""
    attacks = table.attrs.get("attacks") or [a for a in ATTACKS if f"{a}_aua_mean" in table]
    rows = []
    for _, row in table.iterrows():
        for column, metric in number_columns(attacks):
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
            ours = fmt(rec["ours_mean"], dec)
            if not math.isnan(rec["ours_std"]):
                ours += f" ± {fmt(rec['ours_std'], dec)}"
            rank = ""
            if not math.isnan(rec["ours_rank"]):
                rank = f"{int(rec['ours_rank'])} / {int(rec['paper_rank'])}"
            diff = fmt(rec["diff"], dec)
            if diff and not diff.startswith("-"):
                diff = "+" + diff
            lines.append("| " + " | ".join([
                method_label(rec["method"]), recipe_label(rec["attack"]) or "–",
                METRIC_LABELS[rec["metric"]], ours, str(rec["ours_n"]), fmt(rec["paper"], dec) or "–",
                diff or "–", rank or "–"]) + " |")
        lines.append("")
    lines.append("Rank: 1 = best among the methods present in both tables (lowest Suc% is best).")
    return "\n".join(lines) + "\n"
