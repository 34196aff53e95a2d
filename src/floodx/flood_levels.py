"""The flood-level analysis: how robust each searched flood level is on the test set, and the verdict on
the accordance criterion (the paper's claim 2: gradient accordance finds the right flood level without a
wide search).

Levels are chosen on dev data only (floodx.search); this stage looks afterwards. With
`figures.grid_test_attack`, every run either search trained (Flooding's grid, Flooding-X's window) is
attacked with `search.attack` on the same test examples as Table 2. Per (data set, seed) it finds the
level with the highest test Aua%, tests every other level against it example by example (exact
McNemar / sign-flip test, Holm-corrected over the other levels, floodx.stats) and asks where the window
and both dev-chosen levels land:

- `holds_best`: the window contains a level with the highest test Aua%;
- `holds_not_worse`: it contains a level not significantly worse than the best;
- `misses`: every level it contains is significantly worse than the best;
- `untested`: no tested level lies in the window.

`flat` says that no level at all is significantly worse than the best: then the test cannot tell levels
apart and "holds" says little. Each level is also tested against fine-tune (post hoc, Holm over the
levels), which bears on claim 1. A method with one flood level of its own (`names.LEVELLED_METHODS`:
iFlood) is placed on the same curve and tested against Flooding's run at its level.

Over several seeds, `pool` compares the levels trained in every seed over (seed, example) pairs and judges
each seed's window on that pooled curve, beside the verdict it reached on its own.

    python -m floodx.flood_levels --attacks <grid summary.json ...> --choices <choice.json ...>
        --window window.json [--reference finetune summary.json]
        [--levelled <summary.json metrics.json> ...] --out seed<s>/levels.json
    python -m floodx.flood_levels --pool seed<s>/levels.json ... --out levels.json
"""

import argparse
import math
from pathlib import Path

import numpy as np

from . import stats
from .comparisons import ALPHA, example_outcomes, proportion_interval, robust, signed_points
from .errors import DataError, run_main
from .files import read_json, read_result, write_json
from .names import level_string, method_label
from .provenance import provenance

VERDICTS = ("holds_best", "holds_not_worse", "misses", "untested")


def in_window(level, window):
    """Whether a two-decimal `level` lies in the window: one of its levels, or between its bounds."""
    if level in set(window.get("levels") or []):
        return True
    low, high = window.get("low"), window.get("high")
    if low is None or high is None:
        return False
    return float(low) - 1e-9 <= float(level) <= float(high) + 1e-9


def _rate(outcomes):
    values = list(outcomes.values())
    return float(np.mean(values)) if values else math.nan


def _pooled_rate(by_seed):
    values = [v for outcomes in by_seed.values() for v in outcomes.values()]
    return float(np.mean(values)) if values else math.nan


def _by_seed_vectors(by_seed):
    """Each seed's 0/1 outcomes, seeds in one fixed order (the bootstrap's draws follow it)."""
    return [list(by_seed[seed].values()) for seed in sorted(by_seed, key=repr)]


def compare_levels(outcomes, reference_outcomes=None, alpha=ALPHA):
    """Per level: test Aua, its Wilson interval, and its paired test against the best level (and against
    `reference_outcomes`, fine-tune's, when given). `outcomes`: {level: {example id: 0/1 robust}}."""
    return compare_levels_over_seeds({level: {0: values} for level, values in outcomes.items()},
                                     {0: reference_outcomes} if reference_outcomes else None, alpha)


def compare_levels_over_seeds(outcomes, reference_outcomes=None, alpha=ALPHA):
    """`compare_levels` on {level: {seed: {example id: 0/1}}}: Aua over all (seed, example) pairs, its
    interval (one seed: Wilson; several: the two-stage bootstrap of Table 2) and the sign-flip test over
    (seed, example) pairs (one seed: exact McNemar), Holm over the levels tested."""
    if not outcomes:
        raise DataError("no flood level has test attack outcomes")
    levels = sorted(outcomes, key=float)
    aua = {level: _pooled_rate(outcomes[level]) for level in levels}
    top = max(aua.values())
    best_levels = [level for level in levels if aua[level] == top]
    best = best_levels[0]
    records = {}
    for level in levels:
        low, high = proportion_interval(_by_seed_vectors(outcomes[level]))
        records[level] = {"level": level, "aua": 100 * aua[level], "aua_interval": [100 * low, 100 * high],
                          "n_attacked": sum(len(v) for v in outcomes[level].values()),
                          "n_seeds": len(outcomes[level]), "is_best": level in best_levels}
    others = [level for level in levels if level != best]
    tests = [stats.paired_comparison(outcomes[level], outcomes[best]) for level in others]
    for level, test, p_holm in zip(others, tests, stats.holm([t["p_value"] for t in tests])):
        records[level]["versus_best"] = _test_record(test, p_holm, alpha)
    records[best]["versus_best"] = None
    if reference_outcomes:
        tests = [stats.paired_comparison(outcomes[level], reference_outcomes) for level in levels]
        for level, test, p_holm in zip(levels, tests, stats.holm([t["p_value"] for t in tests])):
            records[level]["versus_finetune"] = _test_record(test, p_holm, alpha)
    return {"levels": [records[level] for level in levels], "best": best, "best_levels": best_levels,
            "n_tests_versus_best": len(others)}


def _test_record(test, p_holm, alpha):
    significant = p_holm is not None and not math.isnan(p_holm) and p_holm < alpha
    return {"difference": 100 * test["difference"], "interval": [100 * v for v in test["interval"]],
            "wins": test["wins"], "losses": test["losses"], "p_value": test["p_value"], "p_holm": p_holm,
            "significant": bool(significant)}


def not_worse(record):
    """A level with the best test Aua%, or not significantly below it."""
    return record["is_best"] or not record["versus_best"]["significant"]


def judge(outcomes, window, chosen, reference_outcomes=None, alpha=ALPHA):
    """The verdict on the accordance criterion for one (data set, seed); see the module docstring.

    `window`: window.json's content (levels, low, high); `chosen`: {flood method: chosen level}."""
    compared = compare_levels(outcomes, reference_outcomes, alpha)
    records = {r["level"]: r for r in compared["levels"]}
    for record in records.values():
        record["in_window"] = in_window(record["level"], window)
    verdict, inside = window_verdict(records.values(), window)
    flat = all(not_worse(r) for r in records.values())
    placed = {}
    for method, level in chosen.items():
        level = level_string(level)
        record = records.get(level)
        rank = 1 + sum(r["aua"] > record["aua"] for r in records.values()) if record else None
        placed[method] = {"level": level, "tested": record is not None, "rank": rank,
                          "of": len(records), "not_worse_than_best": bool(record and not_worse(record)),
                          "aua": record["aua"] if record else None,
                          "versus_best": record["versus_best"] if record else None}
    return {**compared, "levels": list(records.values()), "verdict": verdict, "flat": flat,
            "window_levels_tested": inside, "chosen": placed, "alpha": alpha}


def window_verdict(records, window):
    """(verdict, levels tested inside the window) of a window on a compared curve (`VERDICTS`)."""
    inside = [r for r in records if in_window(r["level"], window)]
    if not inside:
        verdict = "untested"
    elif any(r["is_best"] for r in inside):
        verdict = "holds_best"
    elif any(not_worse(r) for r in inside):
        verdict = "holds_not_worse"
    else:
        verdict = "misses"
    return verdict, [r["level"] for r in inside]


_points = signed_points


def _against_finetune(reference, records, pairs=""):
    """'against fine-tune (Aua% 13.3) levels 0.03, 0.10 are significantly more robust (post hoc, ...)'."""
    records = list(records)
    above = [r["level"] for r in records if r.get("versus_finetune") and r["versus_finetune"]["significant"]
             and r["versus_finetune"]["difference"] > 0]
    return (f"against fine-tune (Aua% {reference['aua']:.1f}{pairs}) "
            + (f"levels {', '.join(above)} are significantly more robust" if above else
               "no level is significantly more robust")
            + f" (post hoc, Holm over {len(records)} levels)")


def verdict_text(result, label="", attack_label="TextFooler"):
    """One paragraph that says what the run shows, whichever way it falls."""
    records = {r["level"]: r for r in result["levels"]}
    best = records[result["best"]]
    window = result.get("window") or {}
    n = best["n_attacked"]
    head = f"**{label}**: " if label else ""
    parts = [f"{head}of {len(records)} flood levels attacked with {attack_label} on the same {n} test examples, "
             f"b = {result['best']} has the highest Aua% ({best['aua']:.1f}, 95% interval "
             f"{best['aua_interval'][0]:.1f}–{best['aua_interval'][1]:.1f})"
             + _tied(result)]
    parts.append(_below_best(result, "paired test"))
    bounds = _bounds(window)
    inside = result["window_levels_tested"]
    says = {
        "holds_best": f"the accordance window {bounds} holds the best level",
        "holds_not_worse": (f"the accordance window {bounds} does not hold the best level, but holds "
                            f"{', '.join(level for level in inside if not_worse(records[level]))}, not "
                            "significantly worse"),
        "misses": (f"the accordance window {bounds} misses: each of its levels ({', '.join(inside)}) is "
                   "significantly less robust than the best"),
        "untested": f"no tested level lies in the accordance window {bounds}",
    }[result["verdict"]]
    parts.append(says)
    below = [level for level in inside if not not_worse(records[level])]
    if result["verdict"] == "holds_best" and below:
        parts.append(f"but the window's other level{'s' if len(below) > 1 else ''} ({', '.join(below)}) "
                     f"{'are' if len(below) > 1 else 'is'} significantly below the best: the window holds one "
                     "robust level, not a robust range, and with one training run per level a robust level "
                     "cannot be told from a lucky run without more seeds")
    if result["flat"]:
        parts.append("but no level is significantly below the best, so at this resolution the test cannot tell "
                     "flood levels apart and the window's 'holding' the best says little")
    for method, name in (("flooding", "Flooding"), ("flooding_x", "Flooding-X")):
        place = result["chosen"].get(method)
        if not place:
            continue
        if not place["tested"]:
            parts.append(f"{name}'s dev choice b = {place['level']} was not attacked on the test set")
            continue
        against = place["versus_best"]
        where = ("the best" if against is None else
                 f"{_points(against['difference'])} points from the best (Holm p = {against['p_holm']:.3g})")
        parts.append(f"{name}'s dev choice b = {place['level']} ranks {place['rank']} of {place['of']} "
                     f"(Aua% {place['aua']:.1f}, {where})")
    if result.get("finetune") is not None:
        parts.append(_against_finetune(result["finetune"], records.values()))
    for place in (result.get("levelled") or {}).values():
        against = place["versus_flooding"]
        if against is None:
            beside = "; Flooding trained no run at this level"
        else:
            side = "above" if against["difference"] > 0 else "below"
            beside = (f", {abs(against['difference']):.1f} points {side} Flooding at the same level "
                      f"(exact McNemar p = {against['p_value']:.3g}, uncorrected"
                      f"{', significant' if against['significant'] else ', not significant'})"
                      if against["difference"] else ", equal to Flooding at the same level")
        parts.append(f"{method_label(place['method'])} at b = {place['level']} has Aua% {place['aua']:.1f} "
                     f"({place['aua_interval'][0]:.1f}–{place['aua_interval'][1]:.1f}){beside}")
    onset = result.get("onset") or {}
    if onset.get("dev_min_train_loss") is not None:
        parts.append(f"the training loss was {onset['dev_min_train_loss']:.3f} at the probe's dev-loss minimum"
                     + (f" and {onset['crossing_train_loss']:.3f} at the accordance crossing"
                        if onset.get("crossing_train_loss") is not None else "")
                     + f", beside the window {bounds}")
    return "; ".join(parts) + "."


# ---------------------------------------------------------------- files
def _onset(window):
    onset = window.get("onset") or {}
    crossing, dev_min = onset.get("crossing") or {}, onset.get("dev_loss_min") or {}
    return {"crossing_train_loss": crossing.get("train_loss"), "crossing_epoch": crossing.get("epoch"),
            "dev_min_train_loss": dev_min.get("train_loss"), "dev_min_epoch": dev_min.get("epoch"),
            "lag_epochs": onset.get("lag_epochs")}


def load_outcomes(summary_paths):
    """{level: {idx: 0/1}} and each level's summary, from grid attack summaries (their identity, not paths)."""
    outcomes, summaries, identity = {}, {}, None
    for path in summary_paths:
        summary = read_result(path)
        ident = summary.get("identity") or {}
        if ident.get("flood_level") is None:
            raise DataError(f"{path}: identity.flood_level missing (a grid attack summary names its flood level)")
        level = level_string(ident["flood_level"])
        if level in outcomes:
            raise DataError(f"{path}: flood level {level} given twice")
        key = {k: ident.get(k) for k in ("dataset", "seed", "recipe")}
        if identity is not None and key != identity:
            raise DataError(f"{path}: {key} differs from the other summaries' {identity}")
        identity = key
        outcomes[level] = {idx: robust(row) for idx, row in example_outcomes(path).items()}
        summaries[level] = summary
    return outcomes, summaries, identity or {}


def analyse(attack_paths, choice_paths, window_path, reference_path=None, levelled_paths=()):
    outcomes, summaries, identity = load_outcomes(attack_paths)
    window = read_json(window_path)
    chosen = {}
    for path in choice_paths:
        choice = read_json(path)
        method = (choice.get("identity") or {}).get("method")
        if method is None:
            raise DataError(f"{path}: identity.method missing")
        chosen[method] = choice["chosen"]
    reference = reference_summary = None
    if reference_path:
        reference = {idx: robust(row) for idx, row in example_outcomes(reference_path).items()}
        reference_summary = read_result(reference_path)
    result = judge(outcomes, window, chosen, reference)
    for record in result["levels"]:
        summary = summaries[record["level"]]
        record.update(_clean_fields(summary))
        record["run"] = (summary.get("identity") or {}).get("run")
        record["outcomes"] = _stored(outcomes[record["level"]])
    result["window"] = {k: window.get(k) for k in ("low", "high", "levels", "fallback")}
    result["onset"] = _onset(window)
    if reference is not None:
        k, n = int(sum(reference.values())), len(reference)
        result["finetune"] = {"aua": 100 * _rate(reference), "n_attacked": n,
                              "aua_interval": [100 * v for v in stats.wilson_interval(k, n)],
                              "clean_acc": reference_summary.get("clean_acc"),
                              "n_clean": reference_summary.get("n_clean"), "outcomes": _stored(reference)}
    result["identity"] = identity
    result["levelled"] = {method: placed_method(summary, metrics, outcomes, identity)
                          for method, (summary, metrics) in _levelled_pairs(levelled_paths).items()}
    result["text"] = verdict_text(result)
    return result


def _stored(outcomes):
    """{example id: 0/1} as levels.json keeps it (JSON keys are strings), so seeds can be pooled later."""
    return {str(idx): int(value) for idx, value in outcomes.items()}


def _clean_counts(record):
    """(correct, n_clean) of one model in one seed, from its Clean% and n_clean; None where either is missing."""
    if record.get("clean_acc") is None or not record.get("n_clean"):
        return None
    n = int(record["n_clean"])
    return int(round(record["clean_acc"] / 100 * n)), n


def _clean_fields(summary):
    """Clean% and n_clean of one model as its summary records them, with their Wilson interval where both exist."""
    fields = {"clean_acc": summary.get("clean_acc"), "n_clean": summary.get("n_clean")}
    counts = _clean_counts(fields)
    if counts is not None:
        fields["clean_interval"] = [100 * v for v in stats.wilson_interval(*counts)]
    return fields


def _clean_vector(record):
    """Clean% of one model in one seed as 0/1 outcomes (for the bootstrap over seeds), or None."""
    counts = _clean_counts(record)
    return None if counts is None else [1] * counts[0] + [0] * (counts[1] - counts[0])


def _pooled_clean(records):
    vectors = [v for v in map(_clean_vector, records) if v is not None]
    if len(vectors) != len(records):
        return {}
    pooled = [x for v in vectors for x in v]
    return {"clean_acc": 100 * float(np.mean(pooled)), "n_clean": len(pooled),
            "clean_interval": [100 * v for v in proportion_interval(vectors)]}


def _without_outcomes(analysis):
    """Whether a seed's analysis lacks per-example outcomes (a file written before seeds were pooled)."""
    records = list(analysis.get("levels") or []) + ([analysis["finetune"]] if analysis.get("finetune") else [])
    return any("outcomes" not in record for record in records)


def _check_same_examples(outcomes, reference, paths_by_seed):
    """Every level of every seed (and fine-tune) attacked on the same test examples, as the pairing assumes."""
    expected = None
    for level, by_seed in list(outcomes.items()) + [("fine-tune", reference or {})]:
        for seed, values in by_seed.items():
            ids = set(values)
            if expected is None:
                expected = ids
            elif ids != expected:
                raise DataError(f"{paths_by_seed[seed]}: {level} was attacked on {len(ids)} examples, not the same "
                                f"{len(expected)} as the other levels and seeds (the pooled test pairs examples)")


def _window_record(seed, analysis, verdict, inside):
    window = analysis.get("window") or {}
    return {"seed": seed, **{k: window.get(k) for k in ("low", "high", "levels")}, "verdict": verdict,
            "window_levels_tested": inside, "own_verdict": analysis["verdict"],
            "chosen": {m: place["level"] for m, place in (analysis.get("chosen") or {}).items()}}


def pool(analyses, paths=None, alpha=ALPHA):
    """The flood-level curve over seeds, from each seed's analysis (levels.json, written by `analyse`).

    The levels trained in every seed (Flooding's grid; a window level only where every window has it) are
    compared over (seed, example) pairs, as Table 2 compares methods. Each seed's own window is then judged on
    this pooled curve (`window_verdict`), beside the verdict the seed reached on its own curve. The pooled test
    is conditional on these seeds' models (it resamples examples); the interval also resamples seeds. With one
    seed the pooled curve is that seed's, number for number."""
    if not analyses:
        raise DataError("no per-seed flood-level analysis to pool")
    paths = list(paths) if paths is not None else [f"seed file #{i}" for i in range(len(analyses))]
    stale = [str(path) for analysis, path in zip(analyses, paths) if _without_outcomes(analysis)]
    if stale:
        raise DataError("per-seed flood-level analyses without per-example outcomes (written before floodx kept "
                        f"them for pooling seeds): {', '.join(stale)}; delete them (rm {' '.join(stale)}) and "
                        "rerun: Snakemake writes them again from the attack results")
    ordered = sorted(zip(analyses, paths), key=lambda pair: repr((pair[0].get("identity") or {}).get("seed")))
    analyses, paths = [a for a, _ in ordered], [p for _, p in ordered]
    identities = [a.get("identity") or {} for a in analyses]
    key = {k: identities[0].get(k) for k in ("dataset", "recipe")}
    seeds = []
    for ident, path in zip(identities, paths):
        if {k: ident.get(k) for k in ("dataset", "recipe")} != key:
            raise DataError(f"{path}: {ident} is not the same data set and recipe as {paths[0]}'s {key}")
        if ident.get("seed") in seeds:
            raise DataError(f"{path}: seed {ident.get('seed')} given twice")
        seeds.append(ident.get("seed"))
    by_level = [{r["level"]: r for r in a["levels"]} for a in analyses]
    trained = set().union(*map(set, by_level))
    common = sorted(set.intersection(*map(set, by_level)), key=float)
    if not common:
        raise DataError(f"no flood level was trained in every seed ({', '.join(map(str, seeds))})")
    outcomes = {level: {seed: levels[level]["outcomes"] for seed, levels in zip(seeds, by_level)} for level in common}
    missing_reference = [seed for seed, a in zip(seeds, analyses) if not a.get("finetune")]
    reference = None if missing_reference else {seed: a["finetune"]["outcomes"] for seed, a in zip(seeds, analyses)}
    _check_same_examples(outcomes, reference, dict(zip(seeds, paths)))
    result = compare_levels_over_seeds(outcomes, reference, alpha)
    for record in result["levels"]:
        record.update(_pooled_clean([levels[record["level"]] for levels in by_level]))
        record["best_in_seeds"] = sum(record["level"] in a["best_levels"] for a in analyses)
    result["flat"] = all(not_worse(r) for r in result["levels"])
    result["left_out"] = sorted(trained - set(common), key=float)
    result["windows"] = [_window_record(seed, a, *window_verdict(result["levels"], a.get("window") or {}))
                         for seed, a in zip(seeds, analyses)]
    if reference is not None:
        k, n = sum(sum(v.values()) for v in reference.values()), sum(len(v) for v in reference.values())
        result["finetune"] = {"aua": 100 * _pooled_rate(reference), "n_attacked": n, "robust": k,
                              "aua_interval": [100 * v for v in proportion_interval(
                                  _by_seed_vectors(reference))],
                              **_pooled_clean([a["finetune"] for a in analyses])}
    result["finetune_missing_in"] = missing_reference
    result["per_seed"] = [_without(a, "provenance") for a in analyses]
    for analysis in result["per_seed"]:
        analysis["levels"] = [_without(r, "outcomes") for r in analysis["levels"]]
        if analysis.get("finetune"):
            analysis["finetune"] = _without(analysis["finetune"], "outcomes")
    result["seeds"] = seeds
    result["identity"] = {**key, "seeds": seeds}
    result["alpha"] = alpha
    result["text"] = pooled_text(result) if len(seeds) > 1 else None
    return result


def _without(record, key):
    return {k: v for k, v in record.items() if k != key}


def as_pooled(analysis):
    """A pooled analysis as it is, or one seed's analysis in the pooled shape (readers take either; a seed's
    file written before seeds were pooled has no outcomes, and this needs none)."""
    if "per_seed" in analysis:
        return analysis
    seed = (analysis.get("identity") or {}).get("seed")
    window = _window_record(seed, analysis, analysis["verdict"], analysis.get("window_levels_tested", []))
    return {**analysis, "seeds": [seed], "per_seed": [analysis], "windows": [window], "left_out": [],
            "finetune_missing_in": []}


# What each verdict says of a window, in a few words (the figure's note).
VERDICT_SUMMARY = {"holds_best": "the window holds the most robust level",
                   "holds_not_worse": "the window holds a level not significantly below the most robust",
                   "misses": "every window level is significantly below the most robust",
                   "untested": "no tested level lies in the window"}


def verdict_tally(verdicts):
    """'holds best in 2 seeds, misses in 1 seed' (in `VERDICTS` order)."""
    verdicts = list(verdicts)
    counts = {v: verdicts.count(v) for v in VERDICTS}
    return ", ".join(f"{v.replace('_', ' ')} in {n} seed{'s' if n != 1 else ''}" for v, n in counts.items() if n)


def verdicts_over_seeds(pooled, mark=""):
    """'on each seed's own curve, holds best in 2 seeds, misses in 1 seed; on the pooled curve, ...' (`mark`
    around each tally: '**' in Markdown)."""
    windows = pooled["windows"]
    own = f"on each seed's own curve, {mark}{verdict_tally(w['own_verdict'] for w in windows)}{mark}"
    if len(pooled["levels"]) < 2:
        return own + "; no pooled curve (one level trained in every seed)"
    return (own + f"; on the pooled curve, {mark}{verdict_tally(w['verdict'] for w in windows)}{mark}"
            + (" (flat)" if pooled.get("flat") else ""))


def _tied(result):
    others = [level for level in result["best_levels"] if level != result["best"]]
    return f", tied with {', '.join(others)}" if others else ""


def _below_best(result, test):
    """'1 of the other 2 levels is significantly below it (<test>, Holm over 2)'."""
    worse = sum(bool(r["versus_best"] and r["versus_best"]["significant"]) for r in result["levels"])
    others = len(result["levels"]) - 1
    return (f"{worse} of the other {others} level{'s' if others != 1 else ''} {'is' if worse == 1 else 'are'} "
            f"significantly below it ({test}, Holm over {result['n_tests_versus_best']})")


def _bounds(window):
    return f"[{window['low']:.3f}, {window['high']:.3f}]" if window.get("low") is not None else "(none)"


def _pooled_window_text(window, best, common):
    if window.get("low") is None and not window.get("levels"):
        return f"seed {window['seed']} had no accordance window"
    inside = window["window_levels_tested"]
    says = {"holds_best": "holds the pooled best",
            "holds_not_worse": f"holds {', '.join(inside)}, not significantly below b = {best}",
            "misses": f"misses: each of its pooled levels ({', '.join(inside)}) is significantly below b = {best}",
            "untested": ("holds none of the pooled levels"
                         + (f" (its levels {', '.join(window['levels'])} were not all trained in every seed)"
                            if window.get("levels") else ""))}[window["verdict"]]
    chosen = "; ".join(f"{name} chose b = {window['chosen'][m]}"
                       + ("" if window["chosen"][m] in common else ", not trained in every seed")
                       for m, name in (("flooding", "Flooding"), ("flooding_x", "Flooding-X")) if m in window["chosen"])
    return (f"seed {window['seed']}'s window {_bounds(window)} {says} (on its own curve: "
            f"{window['own_verdict'].replace('_', ' ')}" + (f"; {chosen}" if chosen else "") + ")")


def pooled_text(result, label="", attack_label="TextFooler"):
    """One paragraph on the curve over seeds and where each seed's window falls on it."""
    records = {r["level"]: r for r in result["levels"]}
    best = records[result["best"]]
    seeds = result["seeds"]
    head = f"**{label}**: " if label else ""
    left_out = (f"; levels trained in only some seeds are left out ({', '.join(result['left_out'])})"
                if result.get("left_out") else "")
    interval = (f"{best['aua']:.1f}, 95% interval {best['aua_interval'][0]:.1f}–{best['aua_interval'][1]:.1f}, "
                "bootstrap over seeds and examples")
    if len(records) == 1:
        parts = [f"{head}over {len(seeds)} seeds ({', '.join(map(str, seeds))}) only b = {result['best']} was "
                 f"trained in every seed (Aua% {interval}){left_out}, so there is no pooled curve to judge the "
                 "windows on; each seed's verdict above stands alone"]
    else:
        parts = [f"{head}over {len(seeds)} seeds ({', '.join(map(str, seeds))}), of the {len(records)} flood levels "
                 f"trained in every seed and attacked with {attack_label} on the same test examples "
                 f"({best['n_attacked']} (seed, example) pairs per level){left_out}, b = {result['best']} has the "
                 f"highest Aua% ({interval}; best on a seed's own curve in {best['best_in_seeds']} of "
                 f"{len(seeds)} seeds)"
                 + _tied(result)]
        parts.append(_below_best(result, "sign-flip test over (seed, example) pairs given these seeds' models"))
        if result["flat"]:
            parts.append("so even pooled the test cannot tell these levels apart")
        parts += [_pooled_window_text(window, result["best"], records) for window in result["windows"]]
    if result.get("finetune") is not None:
        parts.append(_against_finetune(result["finetune"], records.values(), " over the same pairs"))
    elif result.get("finetune_missing_in"):
        parts.append(f"fine-tune was not attacked in seed {', '.join(map(str, result['finetune_missing_in']))}, "
                     "so no level is tested against it here")
    return "; ".join(parts) + "."


def _levelled_pairs(paths):
    """[summary, metrics, summary, metrics, ...] -> {method: (summary path, metrics path)}."""
    paths = list(paths or ())
    if len(paths) % 2:
        raise DataError(f"--levelled takes pairs of summary.json and metrics.json, got {len(paths)} paths: {paths}")
    pairs = {}
    for summary, metrics in zip(paths[::2], paths[1::2]):
        method = (read_result(summary).get("identity") or {}).get("method")
        if method is None:
            raise DataError(f"{summary}: identity.method missing")
        if method in pairs:
            raise DataError(f"{summary}: method {method} given twice (also {pairs[method][0]})")
        pairs[method] = (summary, metrics)
    return pairs


def placed_method(summary_path, metrics_path, outcomes, identity):
    """A method with one flood level of its own (iFlood) on the flood-level curve: its test Aua at the level
    it trained with (its metrics.json), and its paired test against Flooding's run at that level, where that
    level was searched (one test, no correction: it asks whether flooding per example differs from flooding
    per batch at the same level)."""
    summary, metrics = read_result(summary_path), read_result(metrics_path)
    ident = summary.get("identity") or {}
    key = {k: ident.get(k) for k in ("dataset", "seed", "recipe")}
    if identity and key != identity:
        raise DataError(f"{summary_path}: {key} differs from the flood levels' {identity}")
    level = (metrics.get("method_params") or {}).get("flood_level")
    if level is None:
        raise DataError(f"{metrics_path}: method_params.flood_level missing (a levelled method records its level)")
    level = level_string(level)
    mine = {idx: robust(row) for idx, row in example_outcomes(summary_path).items()}
    k, n = int(sum(mine.values())), len(mine)
    record = {"method": ident.get("method"), "level": level, "aua": 100 * _rate(mine), "n_attacked": n,
              "aua_interval": [100 * v for v in stats.wilson_interval(k, n)], "clean_acc": summary.get("clean_acc"),
              "versus_flooding": None}
    if level in outcomes:
        test = stats.paired_comparison({0: mine}, {0: outcomes[level]})
        record["versus_flooding"] = _test_record(test, test["p_value"], ALPHA)
    return record


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.flood_levels", description=__doc__.splitlines()[0])
    parser.add_argument("--pool", nargs="+", metavar="LEVELS_JSON",
                        help="pool these per-seed analyses (levels.json of one data set, one per seed) instead")
    parser.add_argument("--attacks", nargs="+", help="grid attack summary.json of each searched level")
    parser.add_argument("--choices", nargs="+", help="choice.json of Flooding and Flooding-X")
    parser.add_argument("--window", help="the probe's window.json")
    parser.add_argument("--reference", default=None, help="fine-tune's test attack summary.json (same recipe)")
    parser.add_argument("--levelled", nargs="*", default=[],
                        help="summary.json and metrics.json, in pairs, of each method with a flood level of its own")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.pool:
        result = pool([read_result(path) for path in args.pool], args.pool)
        result["provenance"] = provenance(spec={"pool": args.pool})
        write_json(Path(args.out), result)
        print(result["text"] or f"one seed ({result['seeds'][0]}): the pooled curve is that seed's")
        return result
    missing = [flag for flag, value in (("--attacks", args.attacks), ("--choices", args.choices),
                                        ("--window", args.window)) if not value]
    if missing:
        parser.error(f"{', '.join(missing)} required (or --pool)")
    result = analyse(args.attacks, args.choices, args.window, args.reference, args.levelled)
    result["provenance"] = provenance(spec={"attacks": args.attacks, "choices": args.choices, "window": args.window,
                                            "levelled": args.levelled},
                                      seed=result["identity"].get("seed"))
    write_json(Path(args.out), result)
    print(result["text"])
    return result


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
