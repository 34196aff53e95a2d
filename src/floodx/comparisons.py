"""What Table 2 can claim: 95% intervals on every cell and paired tests of each method against
fine-tuning, from the per-example attack outcomes (`examples.csv` beside each `summary.json`).

Every method is attacked on the same test examples, so methods are compared example by example:
an example is *robust* when the model classified it correctly and the attack failed. Per data
set and recipe each method is tested against fine-tune with the exact sign-flip test on the
per-example differences summed over seeds (one seed: the exact McNemar test; `floodx.stats`),
Holm-corrected over the methods; Flooding's successors (`names.SUCCESSORS`) are tested against
Flooding-X too, as a second family with its own Holm correction. Intervals: one seed, Wilson for
Clean%, Aua% and Suc% and Student-t for #Query; several seeds, a two-stage bootstrap (seeds, then
examples within a seed).
`docs/statistics.md` gives the reasons.
"""

import math
from pathlib import Path

import numpy as np

from . import stats
from .errors import DataError
from .names import REFERENCE

ALPHA = 0.05


def example_outcomes(summary_path):
    """{idx: row} of the examples.csv written beside a summary.json by the gather step."""
    from .attacks.rows import read_rows

    path = Path(summary_path).with_name("examples.csv")
    if not path.is_file():
        raise DataError(f"{path}: missing (the attack gather writes it beside {Path(summary_path).name}); "
                        "Table 2's intervals and paired tests need the per-example outcomes")
    return {row["idx"]: row for row in read_rows(path)}


def robust(row):
    return 1 if row["result"] == "failed" else 0


def _mean(values):
    return float(np.mean(values)) if len(values) else float("nan")


def _interval(per_seed, single):
    """(low, high) of the mean of 0/1 or numeric outcomes: `single(values)` for one seed, the
    two-stage bootstrap for several."""
    per_seed = [list(v) for v in per_seed if len(v)]
    if not per_seed:
        return float("nan"), float("nan")
    if len(per_seed) == 1:
        return single(per_seed[0])
    return stats.bootstrap_interval(per_seed)


def _wilson(values):
    return stats.wilson_interval(int(sum(values)), len(values))


def proportion_interval(per_seed):
    """(low, high) of a proportion of 0/1 outcomes given per seed: Wilson for one seed, the two-stage
    bootstrap for several (Table 2's cells, the flood-level curve)."""
    return _interval(per_seed, _wilson)


def _percent(pair):
    return tuple(100 * v for v in pair)


def cell_intervals(group):
    """Intervals (in %; #Query in queries) for one (data set, method, attack) over its seeds.

    `group`: rows of `floodx.tables.table2.load_attack_summaries` (with `examples`, `clean`, `n_clean`).
    """
    clean, aua, suc, query = [], [], [], []
    for row in group:
        n_clean = row.get("n_clean")
        if n_clean and not math.isnan(n_clean) and not math.isnan(row["clean"]):
            k = int(round(row["clean"] / 100 * n_clean))
            clean.append([1] * k + [0] * (int(n_clean) - k))
        if row.get("examples") is None:
            continue
        rows = list(row["examples"].values())
        aua.append([robust(r) for r in rows])
        suc.append([1 if r["result"] == "successful" else 0 for r in rows if r["result"] != "skipped"])
        query.append([float(r["queries"]) for r in rows if r["result"] != "skipped"])
    return {
        "clean": _percent(proportion_interval(clean)),
        "aua": _percent(proportion_interval(aua)),
        "suc": _percent(proportion_interval(suc)),
        "query": _interval(query, stats.mean_interval),
    }


def paired_tests(frame, reference=REFERENCE, methods=None):
    """One record per (dataset, attack, method != reference): the paired comparison of robust
    outcomes with the reference's, Holm-corrected over the compared methods of that data set and
    attack. `methods`: which to compare (default every other method in `frame`)."""
    records = []
    for (dataset, attack), group in frame.groupby(["dataset", "attack"], sort=False):
        base = group[group.method == reference]
        if base.empty:
            continue
        ref = {row.seed: {i: robust(r) for i, r in row.examples.items()} for row in base.itertuples()}
        compared = group[group.method != reference]
        if methods is not None:
            compared = compared[compared.method.isin(methods)]
        batch = []
        for method, rows in compared.groupby("method", sort=False):
            ours = {row.seed: {i: robust(r) for i, r in row.examples.items()} for row in rows.itertuples()}
            result = stats.paired_comparison(ours, ref)
            batch.append({"dataset": dataset, "attack": attack, "method": method, "reference": reference,
                          **result})
        adjusted = stats.holm([b["p_value"] for b in batch])
        n_tests = len(batch)
        for record, p_holm in zip(batch, adjusted):
            record["p_holm"] = p_holm
            record["n_tests"] = n_tests
            significant = p_holm is not None and not math.isnan(p_holm) and p_holm < ALPHA
            record["mark"] = ("win" if record["difference"] > 0 else "loss") if significant else ""
        records += batch
    return records


def difference_interval(estimate, low, high, ref_estimate, ref_low, ref_high):
    """(difference, low, high): estimate - ref_estimate and its 95% interval from the two cells' own
    intervals (Zou & Donner's MOVER; Newcombe's for two Wilson intervals). It treats the cells as independent, which is
    conservative for two models scored on the same test examples (their errors correlate), and
    needs no per-example predictions: Clean% covers the whole test split, whose per-example
    predictions no result file keeps."""
    difference = estimate - ref_estimate
    return (difference,
            difference - math.hypot(estimate - low, ref_high - ref_estimate),
            difference + math.hypot(high - estimate, ref_estimate - ref_low))


def signed_points(value):
    """'+7.0', '−2.3', '0.0' (a difference in points, rounded; no sign where it rounds to zero)."""
    text = f"{value:+.1f}"
    return "0.0" if float(text) == 0 else text.replace("-", "\u2212")


def detectable_points(n_examples, n_tests):
    """The smallest Aua% difference (points) this run could call significant: that many examples,
    all won, none lost (the most favourable split of the discordant pairs; Holm's first step)."""
    k = stats.min_detectable_examples(n_examples, n_tests, ALPHA)
    return None if k is None else 100 * k / n_examples
