"""What Table 2 shows, in words, generated from its paired tests (`reading.md`)."""

from .. import comparisons
from ..saturation import SATURATED_WARNING
from ..names import SUCCESSOR_REFERENCE, SUCCESSORS, dataset_label, method_label, recipe_label
from .common import ATTACKS, missing


# ---------------------------------------------------------------- the reading, generated
_points = comparisons.signed_points


def _comparison_text(test):
    low, high = test["interval"]
    won = f"{test['wins']} example{'' if test['wins'] == 1 else 's'} won"
    return (f"{method_label(test['method'])} {_points(100 * test['difference'])} points (95% interval "
            f"{_points(100 * low)} to {_points(100 * high)}; {won}, {test['losses']} lost; "
            f"Holm p = {test['p_holm']:.3g})")


def flood_levels_markdown(analyses):
    """The verdict on the accordance criterion: one paragraph per (data set, seed), then, over several seeds,
    one on the pooled curve (floodx.flood_levels). `analyses`: pooled or per-seed levels.json contents."""
    from ..flood_levels import as_pooled, pooled_text, verdict_text, verdicts_over_seeds

    if not analyses:
        return []
    lines = ["", "## The accordance criterion on the test set (analysis after the fact)", "",
             "Every flood level either search trained, attacked on the same test examples; the levels were "
             "chosen on dev data only (Figure 2 (test)).", ""]
    for pooled in map(as_pooled, analyses):
        for analysis in pooled["per_seed"]:
            identity = analysis.get("identity") or {}
            label = f"{dataset_label(identity.get('dataset'))}, seed {identity.get('seed')}"
            verdict = analysis["verdict"].replace("_", " ")
            lines.append(f"- {verdict_text(analysis, label, recipe_label(identity.get('recipe') or 'textfooler'))} "
                         f"Verdict: **{verdict}**{' (flat)' if analysis.get('flat') else ''}.")
        if len(pooled["seeds"]) > 1:
            identity = pooled.get("identity") or {}
            label = f"{dataset_label(identity.get('dataset'))}, {len(pooled['seeds'])} seeds pooled"
            lines.append(f"- {pooled_text(pooled, label, recipe_label(identity.get('recipe') or 'textfooler'))} "
                         f"Verdict over seeds: {verdicts_over_seeds(pooled, '**')}.")
    return lines


def _signed(test):
    """'+7.0 ▲' / '−2.3' / 'not tested': a paired difference in points, marked where Holm says significant."""
    if not test:
        return "not tested"
    return _points(100 * test["difference"]) + {"win": " ▲", "loss": " ▼"}.get(test["mark"], "")


def _clean_cost(row, reference):
    difference = row.get(f"clean_vs_{reference}_difference")
    if missing(difference):
        return "Clean% difference not available"
    low, high = (100 * row[f"clean_vs_{reference}_{side}"] for side in ("low", "high"))
    return f"Clean% {_points(100 * difference)} points ({_points(low)} to {_points(high)})"


def _marked(by_key, dataset, method, reference, attacks, mark):
    """The recipes under which `method` is significantly above ('win') or below ('loss') `reference`."""
    return [recipe_label(a) for a in attacks if (by_key.get((dataset, a, method, reference)) or {}).get("mark") == mark]


def masking_markdown(table):
    """The score-masking warning: models whose fp32 softmax is saturated on many test examples, where the
    score-based attacks are blind and Aua% may be an illusion of robustness (floodx.saturation)."""
    if "masked_scores" not in table:
        return []
    flagged = table[table.masked_scores]
    if flagged.empty:
        return []
    named = "; ".join(f"{method_label(row.method)} on {dataset_label(row.dataset)} ({100 * row.softmax_saturated:.1f}% "
                      "of test examples)" for row in flagged.itertuples())
    return ["", "## Warning: masked scores", "",
            f"The fp32 softmax of these models is exactly 1.0 on at least {100 * SATURATED_WARNING:.0f}% of their test "
            f"examples: {named}. TextFooler, TextBugger and BERT-Attack rank and accept word changes by how much they "
            "lower the true class's probability; where it is 1.0 to the last bit, no change scores and the search is "
            "blind. Their Aua% (and any ▲) may be an illusion of robustness (Raina et al., 2024, arXiv 2402.17509): "
            "not counted as robustness until an attack with test-time temperature calibration confirms it "
            "(`attacks.calibrated`: Table 2 on calibrated scores, docs/attacks.md). Scores just below 1.0 can "
            "tie in fp32 too, so a model not named here may also be masked: the calibrated attack is the check "
            "(docs/results/calibrated-demo.md)."]


def successors_markdown(table):
    """Which of Flooding's successors beat fine-tune and Flooding-X significantly, per data set and
    attack, and at what clean-accuracy cost (issue #24's question, from the table's tests)."""
    by_key = {(t["dataset"], t["attack"], t["method"], t["reference"]): t
              for t in list(table.attrs.get("tests") or []) + list(table.attrs.get("successor_tests") or [])}
    attacks = table.attrs.get("attacks", ATTACKS)
    references = {comparisons.REFERENCE: "fine-tune", SUCCESSOR_REFERENCE: method_label(SUCCESSOR_REFERENCE)}
    lines = []
    for dataset in dict.fromkeys(table.dataset):
        rows = table[table.dataset == dataset].set_index("method")
        methods = [m for m in SUCCESSORS if m in rows.index]
        if not methods:
            continue
        verdicts = []
        for reference, label in references.items():
            if reference not in rows.index:
                verdicts.append(f"against {label}: not tested (no {label} row)")
                continue
            for mark, side in (("win", "above"), ("loss", "below")):
                marked = [(m, _marked(by_key, dataset, m, reference, attacks, mark)) for m in methods]
                named = [f"{method_label(m)} ({', '.join(recipes)})" for m, recipes in marked if recipes]
                if named or mark == "win":
                    verdicts.append(f"significantly {side} {label}: {'; '.join(named) or 'none'}")
        lines.append(f"- **{dataset_label(dataset)}**: " + "; ".join(verdicts) + ".")
        for method in methods:
            per_attack = [", ".join(f"{_signed(by_key.get((dataset, a, method, reference)))} vs {label}"
                                    for reference, label in references.items()) for a in attacks]
            masked = (f" Masked scores: its softmax is saturated on {100 * rows.loc[method].softmax_saturated:.1f}% "
                      "of test examples (see the warning above)." if rows.loc[method].get("masked_scores", False) else "")
            lines.append(f"  - {method_label(method)}: {_clean_cost(rows.loc[method], comparisons.REFERENCE)}; "
                         + "; ".join(f"{recipe_label(a)} {text}" for a, text in zip(attacks, per_attack)) + "." + masked)
    if not lines:
        return []
    flood_x = references[SUCCESSOR_REFERENCE]
    return ["", f"## Flooding's successors against fine-tune and {flood_x}", "",
            f"Each successor's Aua% minus fine-tune's and minus {flood_x}'s on the same attacked examples, in points "
            f"(▲/▼: significant; Holm over all methods against fine-tune, over the successors against {flood_x}); "
            "its clean cost is its Clean% minus fine-tune's on the whole test split, with a 95% interval that treats "
            "the two models as independent (conservative).", ""] + lines


def reading_markdown(table, caption=None, flood_levels=()):
    """What Table 2 lets a reader conclude, per data set and attack, written from its tests; with
    `flood_levels` (levels.json contents), the verdict on the accordance criterion after it."""
    lines = ["# What Table 2 shows (generated)", ""] + ([caption, ""] if caption else [])
    tests = table.attrs.get("tests") or []
    if not tests and not table.attrs.get("successor_tests"):
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
    lines += masking_markdown(table)
    lines += successors_markdown(table)
    lines += flood_levels_markdown(list(flood_levels))
    return "\n".join(lines) + "\n"
