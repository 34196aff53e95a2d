"""The verdict on the accordance criterion (floodx.flood_levels) on hand-made robustness curves."""

import json

import pytest

from floodx import flood_levels
from floodx.errors import DataError
from floodx.attacks.rows import write_rows
from floodx.stats import bootstrap_interval, holm, sign_flip_p_value, wilson_interval

N = 300


def curve(robust_counts, n=N):
    """{level: {idx: 0/1}}: level b is robust on its first k examples (so levels are nested: a level with
    fewer robust examples loses exactly the difference against a level with more)."""
    return {level: {i: int(i < k) for i in range(n)} for level, k in robust_counts.items()}


WINDOW = {"low": 0.019, "high": 0.052, "levels": ["0.02", "0.03", "0.04", "0.05"]}


def test_window_holds_the_best_level():
    outcomes = curve({"0.03": 90, "0.10": 60, "0.20": 40, "0.30": 30})
    result = flood_levels.judge(outcomes, WINDOW, {"flooding": "0.20", "flooding_x": "0.03"})
    assert result["best"] == "0.03" and result["verdict"] == "holds_best" and not result["flat"]
    assert result["chosen"]["flooding_x"]["rank"] == 1 and result["chosen"]["flooding_x"]["versus_best"] is None
    assert result["chosen"]["flooding"]["rank"] == 3 and not result["chosen"]["flooding"]["not_worse_than_best"]


def test_a_window_holding_one_robust_level_among_weak_ones_is_said_so():
    outcomes = curve({"0.02": 60, "0.03": 28, "0.04": 27, "0.30": 50, "0.40": 30})
    result = flood_levels.judge(outcomes, WINDOW, {"flooding": "0.30", "flooding_x": "0.02"})
    assert result["verdict"] == "holds_best"
    text = flood_levels.verdict_text(result)
    assert "the window's other levels (0.03, 0.04) are significantly below the best" in text
    smooth = flood_levels.judge(curve({"0.02": 60, "0.03": 59, "0.30": 20}), WINDOW, {"flooding_x": "0.02"})
    assert "other level" not in flood_levels.verdict_text(smooth)


def test_window_misses_when_each_of_its_levels_is_significantly_worse():
    outcomes = curve({"0.02": 20, "0.04": 22, "0.30": 80, "0.40": 78})
    result = flood_levels.judge(outcomes, WINDOW, {"flooding": "0.30", "flooding_x": "0.04"})
    assert result["best"] == "0.30" and result["verdict"] == "misses"
    assert result["window_levels_tested"] == ["0.02", "0.04"]
    assert result["chosen"]["flooding"]["rank"] == 1
    assert result["chosen"]["flooding_x"]["versus_best"]["significant"]
    assert "misses" in flood_levels.verdict_text(result | {"window": WINDOW})


def test_window_holds_a_level_not_significantly_worse_and_the_holm_p_is_the_brute_force_one():
    # 0.05 (in the window) loses 3 examples to the best: not significant; 0.40 loses 50: significant.
    outcomes = curve({"0.05": 57, "0.20": 60, "0.40": 10})
    result = flood_levels.judge(outcomes, WINDOW, {"flooding": "0.20", "flooding_x": "0.05"})
    assert result["verdict"] == "holds_not_worse" and not result["flat"]
    records = {r["level"]: r for r in result["levels"]}
    # Brute force: McNemar on the discordant examples, Holm over the two levels tested against 0.20.
    raw = [sign_flip_p_value([-1] * 3), sign_flip_p_value([-1] * 50)]
    assert records["0.05"]["versus_best"]["p_holm"] == pytest.approx(holm(raw)[0])
    assert records["0.40"]["versus_best"]["p_holm"] == pytest.approx(holm(raw)[1])
    assert records["0.05"]["versus_best"]["losses"] == 3 and records["0.05"]["versus_best"]["difference"] == pytest.approx(-1.0)


def test_ties_for_the_best_and_a_flat_curve_are_said():
    outcomes = curve({"0.04": 50, "0.10": 50, "0.20": 49})
    result = flood_levels.judge(outcomes, WINDOW, {"flooding": "0.10", "flooding_x": "0.04"})
    assert result["best_levels"] == ["0.04", "0.10"] and result["verdict"] == "holds_best"
    assert result["flat"]                      # nothing is significantly below the best
    text = flood_levels.verdict_text(result | {"window": WINDOW})
    assert "tied with 0.10" in text and "cannot tell" in text


def test_untested_when_no_level_lies_in_the_window():
    result = flood_levels.judge(curve({"0.20": 40, "0.30": 50}), WINDOW, {"flooding": "0.30"})
    assert result["verdict"] == "untested"


def test_levels_against_finetune():
    outcomes = curve({"0.03": 90, "0.20": 40})
    result = flood_levels.judge(outcomes, WINDOW, {}, reference_outcomes={i: int(i < 40) for i in range(N)})
    records = {r["level"]: r for r in result["levels"]}
    assert records["0.03"]["versus_finetune"]["significant"] and records["0.03"]["versus_finetune"]["wins"] == 50
    assert not records["0.20"]["versus_finetune"]["significant"]


def test_analyse_reads_identity_from_the_files(tmp_path):
    """The files' identity gives each level (not their paths); a level given twice stops."""
    paths = []
    for n, (level, k) in enumerate({"0.03": 9, "0.20": 4}.items()):
        folder = tmp_path / f"x{n}"
        folder.mkdir()
        summary = {"identity": {"dataset": "rt", "seed": 1, "recipe": "textfooler", "flood_level": float(level),
                                "run": f"flooding-b{level}"}, "clean_acc": 80.0, "n_clean": 20}
        (folder / "summary.json").write_text(json.dumps(summary))
        write_rows(folder / "examples.csv", [
            {"idx": i, "original": "a film", "perturbed": "a movie", "result": "failed" if i < k else "successful",
             "queries": 5, "ground_truth": 1, "original_output": 1, "perturbed_output": 1 if i < k else 0}
            for i in range(10)])
        paths.append(folder / "summary.json")
    (tmp_path / "window.json").write_text(json.dumps({**WINDOW, "onset": {"dev_loss_min": {"train_loss": 0.4}}}))
    (tmp_path / "choice.json").write_text(json.dumps({"identity": {"method": "flooding_x"}, "chosen": "0.03"}))
    result = flood_levels.analyse(paths, [tmp_path / "choice.json"], tmp_path / "window.json")
    assert result["best"] == "0.03" and result["levels"][0]["run"] == "flooding-b0.03"
    assert result["levels"][0]["clean_interval"][0] < 80 < result["levels"][0]["clean_interval"][1]
    assert "0.400 at the probe's dev-loss minimum" in result["text"]
    with pytest.raises(Exception, match="given twice"):
        flood_levels.analyse([paths[0], paths[0]], [tmp_path / "choice.json"], tmp_path / "window.json")


def test_a_levelled_method_is_placed_on_the_curve_and_tested_against_flooding_at_its_level(tmp_path):
    """iFlood trained at 0.20 (its metrics.json says so): its Aua% sits at 0.20 beside Flooding's run there,
    with the paired test of the two (iFlood robust on 9 more examples, losing none)."""
    paths = []
    for n, (level, k) in enumerate({"0.03": 9, "0.20": 4}.items()):
        summary = {"identity": {"dataset": "rt", "seed": 1, "recipe": "textfooler", "flood_level": float(level),
                                "run": f"flooding-b{level}", "method": "flooding"}, "clean_acc": 80.0, "n_clean": 20}
        paths.append(_attacked(tmp_path / f"x{n}", summary, k))
    iflood = _attacked(tmp_path / "iflood", {"identity": {"dataset": "rt", "seed": 1, "recipe": "textfooler",
                                                          "method": "iflood", "run": "iflood", "flood_level": None},
                                             "clean_acc": 78.0}, 13)
    (tmp_path / "iflood" / "metrics.json").write_text(json.dumps({"method_params": {"flood_level": 0.2}}))
    (tmp_path / "window.json").write_text(json.dumps(WINDOW))
    (tmp_path / "choice.json").write_text(json.dumps({"identity": {"method": "flooding"}, "chosen": "0.20"}))
    result = flood_levels.analyse(paths, [tmp_path / "choice.json"], tmp_path / "window.json",
                                  levelled_paths=[iflood, tmp_path / "iflood" / "metrics.json"])
    place = result["levelled"]["iflood"]
    assert place["level"] == "0.20" and place["aua"] == pytest.approx(100 * 13 / 20)
    against = place["versus_flooding"]
    assert (against["wins"], against["losses"]) == (9, 0) and against["p_value"] == pytest.approx(2 * 0.5 ** 9)
    assert against["significant"]
    assert ("iFlood at b = 0.20 has Aua% 65.0 (43.3–81.9), 45.0 points above Flooding at the same level "
            "(exact McNemar p = 0.00391, uncorrected, significant)") in result["text"]
    from floodx.figures.figure2 import figure2_test
    figure2_test(result, tmp_path / "f.png", "rt")
    # At a level Flooding did not search there is nothing to pair it with, and the text says so.
    (tmp_path / "iflood" / "metrics.json").write_text(json.dumps({"method_params": {"flood_level": 0.33}}))
    result = flood_levels.analyse(paths, [tmp_path / "choice.json"], tmp_path / "window.json",
                                  levelled_paths=[iflood, tmp_path / "iflood" / "metrics.json"])
    assert result["levelled"]["iflood"]["versus_flooding"] is None
    assert "iFlood at b = 0.33 has Aua% 65.0 (43.3–81.9); Flooding trained no run at this level" in result["text"]
    with pytest.raises(DataError, match="pairs"):
        flood_levels.analyse(paths, [tmp_path / "choice.json"], tmp_path / "window.json", levelled_paths=[iflood])


def _attacked(folder, summary, robust_first, n=20):
    """A summary.json with examples.csv: the first `robust_first` of n examples survive the attack."""
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    write_rows(folder / "examples.csv", [
        {"idx": i, "original": "a film", "perturbed": "a movie",
         "result": "failed" if i < robust_first else "successful",
         "queries": 5, "ground_truth": 1, "original_output": 1, "perturbed_output": 1 if i < robust_first else 0}
        for i in range(n)])
    return folder / "summary.json"


def test_the_reading_carries_the_verdict():
    from floodx.tables.reading import flood_levels_markdown

    result = flood_levels.judge(curve({"0.02": 20, "0.04": 22, "0.30": 80}), WINDOW, {"flooding_x": "0.04"})
    result |= {"window": WINDOW, "identity": {"dataset": "rt", "seed": 42, "recipe": "textfooler"}}
    text = "\n".join(flood_levels_markdown([result]))
    assert "Rotten Tomatoes, seed 42" in text and "Verdict: **misses**" in text and "ranks 2 of 3" in text
    assert flood_levels_markdown([]) == []


def test_the_test_figure_is_drawn(tmp_path):
    from floodx.figures.figure2 import figure2_test

    result = flood_levels.judge(curve({"0.03": 90, "0.20": 40}), WINDOW, {"flooding": "0.20", "flooding_x": "0.03"},
                                reference_outcomes={i: int(i < 40) for i in range(N)})
    result |= {"window": WINDOW, "finetune": {"aua": 13.3, "aua_interval": [10.0, 17.5], "clean_acc": 80.0}}
    for record in result["levels"]:
        record.update(clean_acc=80.0, clean_interval=[77.0, 83.0])
    figure2_test(result, tmp_path / "f.png", "rt")
    assert (tmp_path / "f.png").stat().st_size > 10_000


# ---------------------------------------------------------------- over several seeds
def seed_analysis(outcomes, seed, window=WINDOW, chosen=None, reference=None):
    """One seed's levels.json content as `analyse` writes it, from hand-made {level: {idx: 0/1}} outcomes."""
    result = flood_levels.judge(outcomes, window, chosen or {}, reference)
    clean_interval = [100 * v for v in wilson_interval(int(0.8 * N), N)]
    for record in result["levels"]:
        record.update(outcomes=flood_levels._stored(outcomes[record["level"]]), clean_acc=80.0, n_clean=N,
                      clean_interval=clean_interval)
    result |= {"window": window, "identity": {"dataset": "rt", "seed": seed, "recipe": "textfooler"}}
    if reference:
        k = sum(reference.values())
        result["finetune"] = {"aua": 100 * k / N, "aua_interval": [100 * v for v in wilson_interval(k, N)],
                              "n_attacked": N, "clean_acc": 80.0, "n_clean": N,
                              "outcomes": flood_levels._stored(reference)}
    return result


def shifted(counts, offset, n=N):
    """Like `curve`, but each level's robust examples start at `offset` (seeds differ example by example)."""
    return {level: {i: int((i - offset) % n < k) for i in range(n)} for level, k in counts.items()}


def test_one_seed_pooled_is_that_seed_number_for_number():
    analysis = seed_analysis(curve({"0.03": 90, "0.10": 60, "0.20": 40}), 42, chosen={"flooding_x": "0.03"},
                             reference={i: int(i < 40) for i in range(N)})
    pooled = flood_levels.pool([analysis])
    assert pooled["seeds"] == [42] and pooled["text"] is None and pooled["windows"][0]["verdict"] == "holds_best"
    for mine, theirs in zip(pooled["levels"], analysis["levels"]):
        for key in ("level", "aua", "aua_interval", "versus_best", "versus_finetune", "is_best", "clean_acc",
                    "clean_interval"):
            assert mine[key] == theirs[key], key
    for key in ("aua", "aua_interval", "n_attacked", "clean_acc"):
        assert pooled["finetune"][key] == pytest.approx(analysis["finetune"][key]), key


def test_pooled_levels_against_a_brute_force_sign_flip_over_seed_example_pairs():
    """Three seeds with different robust examples: the pooled Aua is the mean over all pairs, the test of
    each level against the pooled best is the sign-flip test of the per-example sums over seeds, Holm over
    the other levels; only the levels every seed trained are pooled."""
    per_seed = {42: ({"0.03": 70, "0.10": 62, "0.20": 40}, 0), 43: ({"0.03": 50, "0.10": 66, "0.20": 45}, 17),
                44: ({"0.03": 64, "0.10": 70, "0.20": 30, "0.06": 99}, 101)}
    raw = {seed: shifted(counts, offset) for seed, (counts, offset) in per_seed.items()}
    analyses = [seed_analysis(raw[seed], seed) for seed in per_seed]
    pooled = flood_levels.pool(analyses)
    records = {r["level"]: r for r in pooled["levels"]}
    assert list(records) == ["0.03", "0.10", "0.20"]                # 0.06: one seed only
    assert pooled["best"] == "0.10" and records["0.10"]["aua"] == pytest.approx(100 * (62 + 66 + 70) / (3 * N))
    assert records["0.10"]["n_attacked"] == 3 * N and records["0.10"]["n_seeds"] == 3
    others = ["0.03", "0.20"]
    brute = []
    for level in others:
        d = [sum(raw[s][level][i] - raw[s]["0.10"][i] for s in raw) for i in range(N)]
        brute.append(sign_flip_p_value(d))
        assert records[level]["versus_best"]["wins"] == sum(x > 0 for x in d)
        assert records[level]["versus_best"]["losses"] == sum(x < 0 for x in d)
    for level, p_holm in zip(others, holm(brute)):
        assert records[level]["versus_best"]["p_holm"] == pytest.approx(p_holm)
    assert records["0.20"]["versus_best"]["significant"] and pooled["n_tests_versus_best"] == 2
    two_stage = bootstrap_interval([list(raw[seed]["0.10"].values()) for seed in sorted(raw)])
    assert records["0.10"]["aua_interval"] == pytest.approx([100 * v for v in two_stage])
    assert records["0.10"]["clean_acc"] == pytest.approx(80.0) and records["0.10"]["n_clean"] == 3 * N
    assert pooled["left_out"] == ["0.06"] and "levels trained in only some seeds are left out (0.06)" in pooled["text"]
    assert records["0.10"]["best_in_seeds"] == 1 and "best on a seed's own curve in 1 of 3 seeds" in pooled["text"]


def test_pooled_levels_against_finetune_by_brute_force_and_a_seed_without_finetune_is_said():
    raw = {seed: shifted({"0.03": 90, "0.20": 45}, 13 * i) for i, seed in enumerate((42, 43))}
    reference = {seed: shifted({"ft": 40}, 5 * i)["ft"] for i, seed in enumerate((42, 43))}
    pooled = flood_levels.pool([seed_analysis(raw[s], s, reference=reference[s]) for s in raw])
    records = {r["level"]: r for r in pooled["levels"]}
    brute = [sign_flip_p_value([sum(raw[s][level][i] - reference[s][i] for s in raw) for i in range(N)])
             for level in ("0.03", "0.20")]
    for level, p_holm in zip(("0.03", "0.20"), holm(brute)):
        assert records[level]["versus_finetune"]["p_holm"] == pytest.approx(p_holm)
    assert pooled["finetune"]["aua"] == pytest.approx(100 * 80 / (2 * N))
    assert "against fine-tune (Aua% 13.3 over the same pairs) levels 0.03 are significantly more robust" in pooled["text"]
    alone = flood_levels.pool([seed_analysis(raw[42], 42, reference=reference[42]), seed_analysis(raw[43], 43)])
    assert alone.get("finetune") is None and alone["finetune_missing_in"] == [43]
    assert "fine-tune was not attacked in seed 43, so no level is tested against it here" in alone["text"]


def test_one_level_in_common_is_no_curve_and_the_text_says_so():
    pooled = flood_levels.pool([seed_analysis(curve({"0.03": 90, "0.20": 45}), 42),
                                seed_analysis(curve({"0.04": 80, "0.20": 50}), 43)])
    assert [r["level"] for r in pooled["levels"]] == ["0.20"]
    assert "only b = 0.20 was trained in every seed" in pooled["text"] and "no pooled curve" in pooled["text"]
    assert "0 of the other 0" not in pooled["text"]
    assert flood_levels.verdicts_over_seeds(pooled).endswith("no pooled curve (one level trained in every seed)")


def test_each_seeds_window_is_judged_on_the_pooled_curve_beside_its_own_verdict():
    """Seed 43's own curve puts the best at 0.30 (its window holds 0.03, 4 examples below it), but pooled over
    seeds 0.03 is the best: on the pooled curve that window holds the best. The reading says both."""
    far = {"low": 0.25, "high": 0.35, "levels": ["0.30"]}
    analyses = [seed_analysis(curve({"0.03": 90, "0.30": 40}), 42, chosen={"flooding": "0.30", "flooding_x": "0.03"}),
                seed_analysis(curve({"0.03": 54, "0.30": 58}), 43, chosen={"flooding": "0.30", "flooding_x": "0.03"}),
                seed_analysis(curve({"0.03": 85, "0.30": 35}), 44, window=far, chosen={"flooding_x": "0.30"})]
    assert analyses[1]["verdict"] == "holds_not_worse" and analyses[2]["verdict"] == "misses"
    pooled = flood_levels.pool(analyses)
    assert pooled["best"] == "0.03"
    verdicts = {w["seed"]: (w["own_verdict"], w["verdict"]) for w in pooled["windows"]}
    assert verdicts == {42: ("holds_best", "holds_best"), 43: ("holds_not_worse", "holds_best"),
                        44: ("misses", "misses")}
    text = pooled["text"]
    assert "over 3 seeds (42, 43, 44)" in text and "seed 43's window [0.019, 0.052] holds the pooled best" in text
    assert "seed 44's window [0.250, 0.350] misses: each of its pooled levels (0.30) is significantly below b = 0.03" in text
    assert "Flooding-X chose b = 0.30" in text and "1 of the other 1 level is significantly below it" in text
    from floodx.tables.reading import flood_levels_markdown

    reading = "\n".join(flood_levels_markdown([pooled]))
    assert reading.count("Verdict: **") == 3 and "Rotten Tomatoes, 3 seeds pooled" in reading
    assert ("Verdict over seeds: on each seed's own curve, **holds best in 1 seed, holds not worse in 1 seed, "
            "misses in 1 seed**; on the pooled curve, **holds best in 2 seeds, misses in 1 seed**.") in reading
    # A seed's file from before pooling (no outcomes) still reads, as one seed.
    old = {k: v for k, v in analyses[0].items()}
    old["levels"] = [{k: v for k, v in r.items() if k != "outcomes"} for r in old["levels"]]
    assert "Verdict: **holds best**" in "\n".join(flood_levels_markdown([old]))


def test_pooling_stops_on_files_it_cannot_pool(tmp_path):
    good = seed_analysis(curve({"0.03": 90, "0.20": 40}), 42)
    stale = seed_analysis(curve({"0.03": 90, "0.20": 40}), 43)
    for record in stale["levels"]:
        del record["outcomes"]
    stale44 = seed_analysis(curve({"0.03": 90, "0.20": 40}), 44)
    del stale44["levels"][1]["outcomes"]
    with pytest.raises(DataError, match=r"without per-example outcomes .*: b.json, c.json; delete them \(rm b.json c.json\)"):
        flood_levels.pool([good, stale, stale44], ["a.json", "b.json", "c.json"])
    fewer = seed_analysis({level: dict(list(v.items())[:-1]) for level, v in curve({"0.03": 90, "0.20": 40}).items()}, 45)
    with pytest.raises(DataError, match="b.json: 0.03 was attacked on 299 examples, not the same 300"):
        flood_levels.pool([good, fewer], ["a.json", "b.json"])
    with pytest.raises(DataError, match="seed 42 given twice"):
        flood_levels.pool([good, good], ["a.json", "b.json"])
    other = seed_analysis(curve({"0.40": 9}), 44)
    with pytest.raises(DataError, match="no flood level was trained in every seed"):
        flood_levels.pool([good, other])
    other["identity"]["dataset"] = "sst2"
    with pytest.raises(DataError, match="not the same data set and recipe"):
        flood_levels.pool([good, other], ["a.json", "c.json"])
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / "b.json").write_text(json.dumps(seed_analysis(curve({"0.03": 80, "0.20": 41}), 43)))
    result = flood_levels.main(["--pool", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                                "--out", str(tmp_path / "levels.json")])
    written = json.loads((tmp_path / "levels.json").read_text())
    assert written["seeds"] == [42, 43] and written["text"] == result["text"]
    assert all("outcomes" not in r for analysis in written["per_seed"] for r in analysis["levels"])


def test_the_test_figure_over_seeds_is_drawn(tmp_path):
    from floodx.figures.figure2 import figure2_test

    reference = {i: int(i < 40) for i in range(N)}
    analyses = [seed_analysis(shifted({"0.03": 90 - 5 * s, "0.20": 40 + s}, 7 * s), 42 + s, reference=reference,
                              chosen={"flooding": "0.20", "flooding_x": "0.03"}) for s in range(3)]
    figure2_test(flood_levels.pool(analyses), tmp_path / "f.png", "rt")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def _points_under_legend(ax):
    """Data points (lines, markers, interval caps) that the axes' legend covers, in display coordinates."""
    ax.figure.draw_without_rendering()
    box = ax.get_legend().get_window_extent()
    points = [xy for line in ax.get_lines() if line.get_transform() == ax.transData for xy in line.get_xydata()]
    return [tuple(xy) for xy in ax.transData.transform(points) if box.contains(*xy)]


def test_the_legends_of_the_test_figure_cover_no_data(tmp_path):
    """Eight legend entries over a curve that peaks at the right (where `loc="best"` still covered points):
    the y range is raised until the legend sits above every point, in both panels."""
    from floodx.figures.figure2 import figure2_test

    reference = {i: int(i < 30) for i in range(N)}
    def curve_of(s):
        return {"0.02": 55 - 10 * s, "0.03": 35, "0.05": 30 + 3 * s, "0.10": 28, "0.20": 38 + 4 * s,
                "0.30": 45 - 2 * s, "0.40": 40}

    analyses = [seed_analysis(shifted(curve_of(s), 7 * s), 42 + s, reference=reference,
                              chosen={"flooding": "0.30", "flooding_x": "0.02"}) for s in range(3)]
    for levels in (flood_levels.pool(analyses), analyses[0]):
        fig = figure2_test(levels, tmp_path / "f.png", "rt")
        top, bottom = fig.axes[:2]
        assert len(top.get_legend().get_texts()) >= 6
        assert _points_under_legend(top) == [] and _points_under_legend(bottom) == []
