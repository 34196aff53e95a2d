"""Table 2 on calibrated scores (`attacks.calibrated`): the same recipes on the same test examples, querying
softmax(logits / T) with T fitted on the dev split (floodx.calibration), beside each model's plain attack.

A model whose fp32 softmax is saturated blinds score-based attacks; Table 2 marks it ‡ and counts none of its
Aua% as robustness. Here the attack sees through the saturation: where a model's Aua% falls significantly from
its plain attack, that much of it was masked scores; where it holds, the calibrated attack confirms it. The
methods are compared with fine-tune attacked the same way (Table 2's paired tests).
"""

import math

from .. import comparisons, stats
from ..errors import DataError
from ..files import read_result
from ..names import dataset_label, method_label, recipe_label
from .table2 import load_attack_summaries, load_saturation, table2, table2_markdown

ALPHA = 0.05


def load_calibrated(paths):
    """Table 2's rows of calibrated attacks, with each summary's `calibration` (floodx.calibration) beside them."""
    calibrations = []
    for path in paths:
        calibration = read_result(path).get("calibration")
        if not isinstance(calibration, dict) or "temperature" not in calibration:
            raise DataError(f"{path}: no 'calibration' (an attack on calibrated scores records how T was fitted; "
                            "rule calibrated_attack)")
        calibrations.append(calibration)
    frame = load_attack_summaries(paths)
    by_path = dict(zip(map(str, paths), calibrations))
    frame["calibration"] = [by_path[str(p)] for p in frame.path]
    return frame


def _per_model(frame, key):
    """{(dataset, method): [the calibration's `key`, one per seed]}."""
    found = {}
    for row in frame.drop_duplicates(["dataset", "method", "seed"]).itertuples():
        found.setdefault((row.dataset, row.method), []).append(float(row.calibration[key]))
    return found


def _outcomes(frame):
    """{(dataset, method, attack): {seed: {example: robust 0/1}}} of the rows that have examples.csv."""
    found = {}
    for row in frame.itertuples():
        if row.examples is not None:
            found.setdefault((row.dataset, row.method, row.attack), {})[row.seed] = {
                i: comparisons.robust(x) for i, x in row.examples.items()}
    return found


def shifts(plain, calibrated):
    """Per (dataset, attack, method): calibrated minus plain Aua on the same (seed, example) pairs, Holm-corrected
    over the methods of a data set and attack."""
    ours, theirs = _outcomes(calibrated), _outcomes(plain)
    records = []
    for key in sorted(set(ours) & set(theirs)):
        dataset, method, attack = key
        result = stats.paired_comparison(ours[key], theirs[key])
        records.append({"dataset": dataset, "method": method, "attack": attack, **result})
    missing = sorted(set(ours) - set(theirs))
    if missing:
        raise DataError(f"calibrated attacks without the plain attack of the same model: {missing} "
                        "(Table 2's summaries are given with --plain)")
    for family in {(r["dataset"], r["attack"]) for r in records}:
        batch = [r for r in records if (r["dataset"], r["attack"]) == family]
        for record, p_holm in zip(batch, stats.holm([r["p_value"] for r in batch])):
            record["p_holm"] = p_holm
            record["significant"] = p_holm is not None and not math.isnan(p_holm) and p_holm < ALPHA
    return records


def calibrated_table(plain_paths, calibrated_paths, saturation_paths=()):
    """Table 2 of the calibrated attacks, with attrs `shifts` (against plain scores), `plain_aua`
    {(dataset, method, attack): mean over seeds} and `plain_saturated` {(dataset, method): [share per seed]}
    from the models' saturation.json (`saturation_paths`, the files Table 2's ‡ reads)."""
    frame = load_calibrated(calibrated_paths)
    plain = load_attack_summaries(plain_paths)
    table = table2(frame.drop(columns=["calibration"]), _per_model(frame, "test_saturated"))
    temperatures = _per_model(frame, "temperature")
    table["temperatures"] = [" ".join(f"{t:.3g}" for t in temperatures[(d, m)])
                             for d, m in zip(table.dataset, table.method)]
    bounds = {(r.dataset, r.method, r.seed): r.calibration.get("at_bound") for r in frame.itertuples()}
    table.attrs["notes"] += [f"{d}/{method_label(m)}/seed{s}: T sits at the search's {bound} bound (the dev NLL kept "
                             "falling), so these scores are sharpened, not calibrated"
                             for (d, m, s), bound in sorted(bounds.items()) if bound]
    table.attrs["shifts"] = shifts(plain, frame)
    table.attrs["plain_aua"] = plain.groupby(["dataset", "method", "attack"]).aua.mean().to_dict()
    table.attrs["plain_saturated"] = load_saturation(saturation_paths)
    return table


def _points(value):
    return comparisons.signed_points(100 * value)


def shift_sentence(record, plain_aua, calibrated_aua):
    low, high = record["interval"]
    head = (f"{method_label(record['method'])}, {recipe_label(record['attack'])}: Aua% {plain_aua:.1f} on plain "
            f"scores, {calibrated_aua:.1f} on calibrated ({_points(record['difference'])} points, 95% interval "
            f"{_points(low)} to {_points(high)}; {record['losses']} examples lost, {record['wins']} won; "
            f"Holm p = {record['p_holm']:.3g})")
    if record["significant"] and record["difference"] < 0:
        return head + ": part of its plain Aua% was masked scores"
    if record["significant"]:
        return head + ": calibrated scores made it harder to attack"
    return head + ": no significant change, so its plain Aua% is not masked scores to a degree this run detects"


def calibrated_markdown(table, caption=None):
    lines = ([caption, ""] if caption else []) + [
        "Every model listed in `attacks.calibrated`, attacked again on the same test examples with softmax(logits / T), "
        "T fitted on the dev split by the minimum NLL (floodx.calibration). ▲/▼ compare with fine-tune attacked the "
        "same way, Holm-corrected over the methods listed here (fewer than Table 2's, so a mark is easier to reach "
        "than there); the saturation mark (‡) uses the fp32 softmax at T.", "",
        table2_markdown(table).rstrip(), "",
        "| Data set | Method | T (per seed) | test softmax saturated at T = 1 → at T |", "|---|---|---|---:|"]
    for row in table.itertuples():
        before = table.attrs["plain_saturated"].get((row.dataset, row.method))
        shown = f"{100 * sum(before) / len(before):.1f}%" if before else "–"
        lines.append(f"| {dataset_label(row.dataset)} | {method_label(row.method)} | {row.temperatures} | "
                     f"{shown} → {100 * row.softmax_saturated:.1f}% |")
    lines += ["", "Calibrated against plain scores, per model (exact paired test on the same examples, Holm over the "
              "models of a data set and attack):", ""]
    for record in table.attrs["shifts"]:
        key = (record["dataset"], record["method"], record["attack"])
        calibrated_aua = float(table.loc[(table.dataset == key[0]) & (table.method == key[1]),
                                         f"{key[2]}_aua_mean"].iloc[0])
        lines.append(f"- {dataset_label(key[0])}, {shift_sentence(record, table.attrs['plain_aua'][key], calibrated_aua)}.")
    return "\n".join(lines) + "\n"
