"""Tables 2-3 and the search summary, built from hand-made result files."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from floodx.tables import common, reading, search, table2, versus_paper, write
from floodx.errors import DataError


def write_summary(root, dataset, method, seed, attack, clean, aua, suc, queries, majority=None, n_clean=None):
    path = Path(root) / dataset / method / f"seed{seed}" / attack / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "clean_acc": clean, "aua": aua, "suc": suc, "avg_queries": queries, "n_attacked": 40,
        "n_successful": 0, "n_failed": 0, "n_skipped": 0, "seconds": 1.0, "mode": "offline",
        "substitutions": {}, "checkpoint": "x", "provenance": {}, "majority_acc": majority, "n_clean": n_clean,
        "identity": {"dataset": dataset, "method": method, "run": method, "flood_level": None, "seed": seed,
                     "recipe": attack, "epoch": 10},
    }))
    return path


# (method, seed) -> (clean, aua, suc, queries) for textfooler; the other attacks get fixed values.
TEXTFOOLER = {
    ("finetune", 1): (80.0, 10.0, 87.5, 100.0),
    ("finetune", 2): (82.0, 12.0, 85.0, 110.0),
    ("finetune", 3): (84.0, 14.0, 82.5, 120.0),
    ("flooding_x", 1): (85.0, 30.0, 60.0, 150.0),
    ("flooding_x", 2): (87.0, 34.0, 62.0, 170.0),
    # PGD: lower Aua than Flooding-X but the LOWEST Suc -- bold must follow "lowest Suc", not Aua.
    ("pgd", 1): (70.0, 20.0, 40.0, 90.0),
}


@pytest.fixture
def summaries(tmp_path):
    root = tmp_path / "results" / "attack"
    paths = []
    for (method, seed), (clean, aua, suc, q) in TEXTFOOLER.items():
        paths.append(write_summary(root, "rt", method, seed, "textfooler", clean, aua, suc, q))
        # Same clean accuracy under every attack (one attacked subset per model).
        paths.append(write_summary(root, "rt", method, seed, "textbugger", clean, 50.0, 30.0, 60.0))
    # A second data set of the paper's own, with a method the paper lacks there (TAVAT on MRPC).
    paths.append(write_summary(root, "mrpc", "finetune", 1, "textfooler", 80.0, 5.0, 93.75, 100.0))
    paths.append(write_summary(root, "mrpc", "tavat", 1, "textfooler", 81.0, 6.0, 92.6, 101.0))
    return paths


def test_paper_table2_transcription():
    paper = pd.read_csv(common.DATA_DIR / "paper_table2.csv")
    assert len(paper) == 33
    counts = paper.groupby("dataset").size().to_dict()
    assert counts == {"imdb": 7, "ag_news": 7, "sst2": 7, "qnli": 6, "mrpc": 6}
    assert "tavat" not in set(paper[paper.dataset.isin(["qnli", "mrpc"])].method)
    row = paper[(paper.dataset == "ag_news") & (paper.method == "flooding_x")].iloc[0]
    assert (row.clean, row.textfooler_aua, row.bertattack_query, row.textbugger_suc) == (94.9, 42.4, 690.27, 34.0)
    row = paper[(paper.dataset == "qnli") & (paper.method == "flooding_x")].iloc[0]
    assert row.textfooler_suc == 69.27
    row = paper[(paper.dataset == "imdb") & (paper.method == "finetune")].iloc[0]
    assert row.textfooler_query == 1533.15


def test_bolding_rule_reproduces_the_papers_textfooler_claims():
    """Section 4.4: Flooding-X has the best TextFooler Aua on IMDB, AG News, SST-2 and MRPC;
    on QNLI PGD wins by 0.2 points. Our bolding applied to the transcribed table agrees."""
    wide = pd.read_csv(common.DATA_DIR / "paper_table2.csv").rename(
        columns={"textfooler_aua": "textfooler_aua_mean"})
    best = table2._best_flags(wide, "textfooler_aua_mean", "aua")
    winners = dict(zip(wide[best].dataset, wide[best].method))
    assert winners == {"imdb": "flooding_x", "ag_news": "flooding_x", "sst2": "flooding_x",
                       "mrpc": "flooding_x", "qnli": "pgd"}


def test_paper_table3():
    paper = common.paper_table3()
    assert len(paper) == 18
    assert (paper[paper.method == "finetune"].ratio_to_finetune == 1.0).all()
    imdb = paper[(paper.dataset == "imdb") & (paper.method == "infobert")].iloc[0]
    assert imdb.seconds_per_epoch == 19279 and imdb.batch_size == 4
    assert imdb.ratio_to_finetune == pytest.approx(19279 / 1059)


def test_table2_means_and_sample_stds(summaries):
    table = table2.table2(table2.load_attack_summaries(summaries))
    rt = table[table.dataset == "rt"].set_index("method")
    assert list(rt.index) == ["finetune", "pgd", "flooding_x"]  # the paper's row order
    ft = rt.loc["finetune"]
    assert ft.n_seeds == 3 and ft.seeds == "1 2 3"
    assert ft.textfooler_aua_mean == pytest.approx(12.0)
    assert ft.textfooler_aua_std == pytest.approx(2.0)  # ddof=1: sqrt((4+0+4)/2)
    assert ft.clean_mean == pytest.approx(82.0) and ft.clean_std == pytest.approx(2.0)
    assert ft.textfooler_query_mean == pytest.approx(110.0) and ft.textfooler_query_std == pytest.approx(10.0)
    fx = rt.loc["flooding_x"]
    assert fx.textfooler_aua_mean == pytest.approx(32.0)
    assert fx.textfooler_aua_std == pytest.approx(math.sqrt(8.0))
    pgd = rt.loc["pgd"]
    assert pgd.n_seeds == 1 and math.isnan(pgd.textfooler_aua_std) and math.isnan(pgd.clean_std)
    assert "bertattack_aua_mean" not in table  # only the attacks that were run


def test_table2_without_examples_has_no_marks_and_no_bold(summaries):
    """Hand-made summaries without examples.csv: nothing is tested, so nothing is bold."""
    table = table2.table2(table2.load_attack_summaries(summaries))
    best = [c for c in table.columns if c.endswith("_best")]
    assert not table[best].to_numpy().any()
    md = table2.table2_markdown(table)
    rows = "\n".join(line for line in md.splitlines() if line.startswith("| "))
    assert "**" not in rows and "▲" not in rows and "no examples.csv" in md
    ft_line = next(line for line in md.splitlines() if "| Fine-tune |" in line and "Rotten" in line)
    assert "| 12.0 |" in ft_line                     # the mean over 3 seeds, no interval to show
    tex = table2.table2_latex(table)
    assert r"Flooding-X" in tex and r"flooding_x" not in tex  # underscores never reach LaTeX unescaped


def write_examples(summary_path, results, queries=10):
    """examples.csv beside a summary: one row per example idx 0.. with the given TextAttack result."""
    lines = ["idx,original,perturbed,result,queries,ground_truth,original_output,perturbed_output"]
    for idx, result in enumerate(results):
        wrong = result == "skipped"
        lines.append(f"{idx},a text,a text,{result},{0 if wrong else queries + idx % 3},1,{0 if wrong else 1},"
                     f"{0 if result == 'successful' else 1}")
    Path(summary_path).with_name("examples.csv").write_text("\n".join(lines) + "\n")


def outcomes(robust, skipped=0, n=40):
    """`robust` examples the attack failed on (the first ones), `skipped` misclassified, rest successful."""
    return ["failed"] * robust + ["skipped"] * skipped + ["successful"] * (n - robust - skipped)


@pytest.fixture
def tested(tmp_path):
    """One seed, 40 attacked examples: Flooding-X wins 12 examples outright, PGD 2, InfoBERT loses 10,
    TAVAT's outcomes equal fine-tune's."""
    root = tmp_path / "attack"
    plan = {"finetune": outcomes(12, 8), "flooding_x": outcomes(24, 4), "pgd": outcomes(14, 8),
            "infobert": outcomes(2, 8), "tavat": outcomes(12, 8)}
    paths = []
    for method, results in plan.items():
        robust = results.count("failed")
        path = write_summary(root, "rt", method, 1, "textfooler", 75.0, 100 * robust / 40, 50.0, 11.0,
                             majority=50.0, n_clean=200)
        write_examples(path, results)
        paths.append(path)
    return paths


def test_table2_marks_and_bolds_only_significant_aua_wins(tested):
    table = table2.table2(table2.load_attack_summaries(tested)).set_index("method")
    marks = table.textfooler_aua_vs_finetune_mark.to_dict()
    assert marks == {"finetune": "", "pgd": "", "tavat": "", "infobert": "loss", "flooding_x": "win"}
    assert table.loc["tavat", "textfooler_aua_vs_finetune_p_value"] == 1.0       # identical: never marked
    assert (table.loc["flooding_x", "textfooler_aua_vs_finetune_wins"],
            table.loc["flooding_x", "textfooler_aua_vs_finetune_losses"]) == (12, 0)
    assert list(table.index[table.textfooler_aua_best]) == ["flooding_x"]
    assert not table[["clean_best", "textfooler_suc_best", "textfooler_query_best"]].to_numpy().any()
    # Wilson interval of 24/40 in %, and of Clean% 150/200.
    low, high = table.loc["flooding_x", ["textfooler_aua_low", "textfooler_aua_high"]]
    assert (round(low, 1), round(high, 1)) == (44.6, 73.7)
    assert table.loc["finetune", "clean_low"] < 75.0 < table.loc["finetune", "clean_high"]
    md = table2.table2_markdown(table.reset_index())
    fx = next(line for line in md.splitlines() if "| Flooding-X |" in line)
    assert "**60.0**▲ (44.6–73.7)" in fx
    assert "▼" in next(line for line in md.splitlines() if "| InfoBERT |" in line)
    assert r"$^\blacktriangle$" in table2.table2_latex(table.reset_index())


def test_reading_says_what_the_tests_found(tested):
    table = table2.table2(table2.load_attack_summaries(tested))
    text = reading.reading_markdown(table)
    assert "Rotten Tomatoes, TextFooler" in text and "40 attacked test examples, 1 seed" in text
    assert "significantly more robust than fine-tune: Flooding-X +30.0 points" in text
    assert "12 examples won, 0 lost" in text
    assert "significantly less robust: InfoBERT −25.0 points" in text
    # Behind the "no" for the rest: the largest observed gain, with its interval.
    assert "observed, not significant: PGD +5.0 points (95% interval" in text
    assert "2 examples won, 0 lost" in text
    assert "TAVAT" not in text
    # Holm over 4 methods: 2 * 0.5**k <= 0.0125 needs k = 8 examples of 40 = 20 points.
    assert "smallest difference this run could have called significant is 20.0 points (8 of 40" in text


def test_several_seeds_get_a_bootstrap_interval_and_a_pooled_test(tmp_path):
    root = tmp_path / "attack"
    paths = []
    for seed, (ft, fx) in enumerate([(10, 16), (12, 15), (11, 18)], start=1):
        for method, robust in (("finetune", ft), ("flooding_x", fx)):
            path = write_summary(root, "rt", method, seed, "textfooler", 75.0, 100 * robust / 40, 50.0, 11.0)
            write_examples(path, outcomes(robust))
            paths.append(path)
    table = table2.table2(table2.load_attack_summaries(paths)).set_index("method")
    fx = table.loc["flooding_x"]
    assert fx.textfooler_aua_low < fx.textfooler_aua_mean < fx.textfooler_aua_high
    assert (fx.textfooler_aua_vs_finetune_wins, fx.textfooler_aua_vs_finetune_losses) == (8, 0)
    assert fx.textfooler_aua_vs_finetune_mark == "win"
    # Over 3 seeds the smallest significant difference is 6 examples each won in one seed: 6 of 120 pairs.
    text = reading.reading_markdown(table2.table2(table2.load_attack_summaries(paths)))
    assert "could have called significant is 5.0 points (6 of 120 (seed, example) pairs" in text


def test_table2_vs_paper_side_by_side(summaries):
    table = table2.table2(table2.load_attack_summaries(summaries))
    comparison = versus_paper.table2_vs_paper(table, {"rt": {"paper": "sst2", "stand_in": True},
                                                "mrpc": {"paper": "mrpc", "stand_in": False}})
    cell = comparison[(comparison.dataset == "rt") & (comparison.method == "finetune")
                      & (comparison.attack == "textfooler") & (comparison.metric == "aua")].iloc[0]
    assert cell.paper_dataset == "sst2" and bool(cell.stand_in)
    assert cell.paper == pytest.approx(10.8)  # the paper's SST-2 BERT TextFooler Aua%
    assert cell.ours_mean == pytest.approx(12.0) and cell.ours_n == 3
    assert cell["diff"] == pytest.approx(12.0 - 10.8)
    assert "stand-in" in cell.note
    clean = comparison[(comparison.dataset == "rt") & (comparison.method == "flooding_x")
                       & (comparison.metric == "clean")].iloc[0]
    assert clean.paper == pytest.approx(93.1) and clean["diff"] == pytest.approx(86.0 - 93.1)
    # Every cell we ran is there (rt: 3 methods x (clean + 2 attacks x 3 metrics); mrpc: 2 x 4).
    assert len(comparison) == 3 * 7 + 2 * 4
    tavat = comparison[(comparison.dataset == "mrpc") & (comparison.method == "tavat")]
    assert tavat.paper.isna().all() and tavat.note.str.contains("no TAVAT").all()
    mrpc = comparison[(comparison.dataset == "mrpc") & (comparison.method == "finetune")]
    assert not mrpc.stand_in.any() and (mrpc[mrpc.metric == "clean"].paper == 83.8).all()
    md = versus_paper.table2_vs_paper_markdown(comparison)
    assert "Stand-in comparison" in md and "SST-2" in md


def test_unmapped_dataset_has_no_paper_values(summaries):
    table = table2.table2(table2.load_attack_summaries(summaries))
    comparison = versus_paper.table2_vs_paper(table, paper_map={})
    rt = comparison[comparison.dataset == "rt"]
    assert rt.paper.isna().all() and (rt.note == "no counterpart in the paper").all()


def test_table2_cli_writes_csv_md_tex(summaries, tmp_path):
    out = tmp_path / "tables"
    write.main(["table2", "--summaries", *map(str, summaries), "--out-dir", str(out), "--paper-map",
                 '{"rt": {"paper": "sst2", "stand_in": true}}'])
    for name in ("table2.csv", "table2.md", "table2.tex", "table2_vs_paper.csv", "table2_vs_paper.md"):
        assert (out / name).stat().st_size > 0
    csv = pd.read_csv(out / "table2.csv")
    assert {"clean_mean", "clean_std", "textfooler_aua_mean", "textfooler_suc_std", "n_seeds"} <= set(csv.columns)
    assert csv[(csv.dataset == "rt") & (csv.method == "finetune")].textfooler_aua_std.iloc[0] == pytest.approx(2.0)


def _record_precision(paths, precision_of):
    for path in paths:
        summary = json.loads(path.read_text())
        identity = summary["identity"]
        precision = precision_of(identity["method"], identity["seed"])
        if precision is not None:
            summary["training_precision"] = precision
        path.write_text(json.dumps(summary))


def test_table2_says_which_precision_its_models_trained_in_and_warns_when_they_differ(summaries, tmp_path):
    """`training.bf16: auto` resolves per machine: a folder trained on two kinds of machine is named as mixed."""
    from floodx import results_page

    assert not [n for n in table2.table2(table2.load_attack_summaries(summaries)).attrs["notes"] if "precision" in n]
    _record_precision(summaries, lambda method, seed: "fp32")
    table = table2.table2(table2.load_attack_summaries(summaries))
    assert [n for n in table.attrs["notes"] if "precision" in n] == [
        "every model trained in fp32 (8 models; training.bf16 in the config, resolved on each training job's "
        "machine: floodx.precision)"]

    _record_precision(summaries, lambda method, seed: {("finetune", 2): "bf16", ("pgd", 1): "bf16+fp32",
                                                       ("flooding_x", 2): None}.get((method, seed), "fp32"))
    for path in summaries:      # one model whose summaries predate the record
        summary = json.loads(path.read_text())
        if summary["identity"]["method"] == "flooding_x" and summary["identity"]["seed"] == 2:
            summary.pop("training_precision")
            path.write_text(json.dumps(summary))
    table = table2.table2(table2.load_attack_summaries(summaries))
    rt = table[table.dataset == "rt"].set_index("method")
    assert rt.loc["finetune"].training_precision == "bf16+fp32" and rt.loc["flooding_x"].training_precision == "fp32"
    note, = [n for n in table.attrs["notes"] if "precision" in n]
    assert note.startswith("the models did not all train in one precision (bf16: rt/Fine-tune/seed2; "
                           "bf16+fp32: rt/PGD/seed1; fp32: ")
    assert "1 of 8 models' summaries predate the record" in note and "rt/Flooding-X/seed2" not in note

    write.main(["table2", "--summaries", *map(str, summaries), "--out-dir", str(tmp_path / "results" / "tables")])
    assert "Note: the models did not all train in one precision" in (tmp_path / "results/tables/table2.md").read_text()
    assert results_page.trained_in(tmp_path / "results", {"training": {"bf16": "auto"}}) == (
        "models trained in bf16 and fp32: mixed (training.bf16 auto; see Table 2's notes)")
    _record_precision(summaries, lambda method, seed: "bf16")
    write.main(["table2", "--summaries", *map(str, summaries), "--out-dir", str(tmp_path / "results" / "tables")])
    assert results_page.trained_in(tmp_path / "results", {}) == "models trained in bf16 (training.bf16 auto)"
    assert results_page.trained_in(tmp_path / "nothing", {"training": {"bf16": False}}) == (
        "training.bf16 false (the models' precision is not recorded)")


def test_the_resume_check_reads_the_table_the_writer_writes(summaries, tmp_path):
    """floodx.run_folder reads Table 2's own CSV columns: a renamed column would make it see nothing."""
    from floodx import run_folder

    write.main(["table2", "--summaries", *map(str, summaries), "--out-dir", str(tmp_path / "results" / "tables")])
    covered = run_folder.held(tmp_path / "results")[str((tmp_path / "results/tables/table2.csv").resolve())]
    assert covered == {"dataset": {"rt", "mrpc"}, "method": {"finetune", "flooding_x", "pgd", "tavat"},
                       "seed": {"1", "2", "3"}, "recipe": {"textfooler", "textbugger"}}


def test_every_markdown_table_has_an_html_page_showing_the_same_cells(summaries, tmp_path):
    """The report shows HTML inline (Markdown it only downloads): each .md has a .html with its cells."""
    import html.parser

    class Cells(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.cells, self.inside = [], False

        def handle_starttag(self, tag, attrs):
            self.inside = tag in ("td", "th")
            if self.inside:
                self.cells.append("")

        def handle_data(self, data):
            if self.inside:
                self.cells[-1] += data

    out = tmp_path / "tables"
    write.main(["table2", "--summaries", *map(str, summaries), "--out-dir", str(out)])
    for name in ("table2", "table2_vs_paper", "reading"):
        markdown_text = (out / f"{name}.md").read_text()
        parser = Cells()
        parser.feed((out / f"{name}.html").read_text())
        md_cells = [c.strip().replace("**", "") for line in markdown_text.splitlines() if line.startswith("|")
                    and not set(line) <= set("|-: ") for c in line.strip("|").split("|")]
        assert [c.strip() for c in parser.cells] == md_cells, name
    assert len(parser.cells) == 0  # the reading is prose
    assert "<table>" in (out / "table2.html").read_text() and "<h1>Table 2</h1>" in (out / "table2.html").read_text()


def test_bad_inputs_are_user_errors(tmp_path, capsys):
    bad = tmp_path / "summary.json"
    bad.write_text("{}")
    with pytest.raises(DataError, match=r"summary.json: identity field\(s\) \[.dataset., .method., .seed., .recipe.\] missing"):
        table2.load_attack_summaries([bad])
    path = write_summary(tmp_path, "rt", "finetune", 1, "textfooler", 80, 10, 87.5, 100)
    data = json.loads(path.read_text())
    del data["aua"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="aua"):
        table2.load_attack_summaries([path])
    with pytest.raises(SystemExit) as exit_info:
        write.main(["table2", "--summaries", str(path), "--out-dir", str(tmp_path / "t"), "--paper-map",
                     '{"rt": {"paper": "sst"}}'])
    assert exit_info.value.code == 2 and "floodx: error:" in capsys.readouterr().err


def write_choice(root, dataset, method, seed, scores, chosen, runs):
    path = Path(root) / dataset / method / f"seed{seed}" / "choice.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"levels": list(scores), "scores": scores, "criterion": "dev_attack",
                                "chosen": chosen, "run": f"flooding-b{chosen}", "n_training_runs": runs,
                                "identity": {"dataset": dataset, "method": method, "seed": seed}}))
    return path


def test_search_summary(tmp_path):
    root = tmp_path / "search"
    paths = [
        write_choice(root, "rt", "flooding", 42, {"0.05": 20.0, "0.10": 35.0, "0.15": 30.0}, "0.10", 3),
        write_choice(root, "rt", "flooding_x", 42, {"0.11": 33.0, "0.12": 37.5}, "0.12", 2),
    ]
    window = write_window(tmp_path / "probe", "rt", 42)
    frame = write.write_search(paths, tmp_path / "tables", [window])
    row = frame.iloc[0]
    assert (row.flooding_chosen, row.flooding_n_training_runs, row.flooding_score) == ("0.10", 3, 35.0)
    assert (row.flooding_x_chosen, row.flooding_x_n_training_runs, row.flooding_x_score) == ("0.12", 2, 37.5)
    assert row.window == "[0.112, 0.127]" and row.flooding_levels.startswith("0.05–0.15")
    md = (tmp_path / "tables" / "search.md").read_text()
    assert "0.12 (37.5)" in md and "| 3 |" in md


def write_window(root, dataset, seed, **extra):
    path = Path(root) / dataset / f"seed{seed}" / "window.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"low": 0.112, "high": 0.127, "direction": "pos_to_neg", "crossings": [],
                                "fallback": None, "levels": ["0.11", "0.12"], "step": 0.01,
                                "identity": {"dataset": dataset, "seed": seed}, **extra}))
    return path


def test_search_summary_onset_and_lag(tmp_path):
    root = tmp_path / "search"
    paths = [write_choice(root, "rt", "flooding_x", seed, {"0.11": 33.0, "0.12": 37.5}, "0.12", 2)
             for seed in (1, 2, 3)]
    onset = {"crossing": {"sub_epoch": 9, "epoch": 4.5, "direction": "neg_to_pos", "train_loss": 0.05},
             "dev_loss_min": {"sub_epoch": 6, "epoch": 3.0, "train_loss": 0.21, "dev_loss": 0.3, "dev_acc": 0.8},
             "lag_sub_epochs": 3, "lag_epochs": 1.5, "sub_epochs_probed": 12, "stopped_early": False}
    after = dict(onset, dev_loss_min=dict(onset["dev_loss_min"], sub_epoch=11, epoch=5.5),
                 lag_sub_epochs=-2, lag_epochs=-1.0)
    windows = [write_window(tmp_path / "probe", "rt", 1, onset=onset, confirm_sub_epochs=2),
               write_window(tmp_path / "probe", "rt", 2, onset=after, confirm_sub_epochs=2,
                            fallback="no pos_to_neg crossing; used the first neg_to_pos crossing"),
               write_window(tmp_path / "probe", "rt", 3)]  # older window.json: no onset
    # seed 1: two sign changes that did not hold, then the confirmed one (and one after it, not counted)
    flips = [{"direction": d, "from_sub_epoch": s - 1, "to_sub_epoch": s, "confirmed": c}
             for d, s, c in (("neg_to_pos", 5, False), ("pos_to_neg", 6, False), ("neg_to_pos", 9, True),
                             ("pos_to_neg", 14, False))]
    seed1 = json.loads(windows[0].read_text())
    windows[0].write_text(json.dumps(dict(seed1, crossings=flips, chosen_crossing=flips[2])))
    frame = write.write_search(paths, tmp_path / "tables", windows)
    one, two, old = (frame.iloc[i] for i in range(3))
    assert (one.crossing_sub_epoch, one.crossing_direction, one.crossing_train_loss) == (9, "neg_to_pos", 0.05)
    assert (one.dev_min_sub_epoch, one.dev_min_train_loss) == (6, 0.21)
    assert (one.lag_sub_epochs, one.lag_epochs) == (3, 1.5) and (two.lag_sub_epochs, two.lag_epochs) == (-2, -1.0)
    assert pd.isna(old.crossing_sub_epoch) and pd.isna(old.lag_sub_epochs) and pd.isna(old.dev_min_train_loss)
    csv = pd.read_csv(tmp_path / "tables" / "search.csv")
    assert set(search.ONSET_COLUMNS) <= set(csv.columns)
    assert list(csv.crossing_sub_epoch.astype("Int64")[:2]) == [9, 9]
    md = (tmp_path / "tables" / "search.md").read_text()
    assert "| Crossing | Dev-loss min | Lag |" in md
    lines = [line for line in md.splitlines() if line.startswith("| Rotten Tomatoes")]
    assert lines[0].endswith("| 9 (− → +, loss 0.050, after 2 sign changes that did not hold) | 6 (loss 0.210) "
                             "| 3 (1.5 ep) |")
    assert csv.rejected_sign_changes[0] == 2 and csv.rejected_sign_changes[1:].isna().all()
    assert lines[1].endswith("| 9 (− → +, loss 0.050) | 11 (loss 0.210) | −2 (−1.0 ep) |")
    assert "(fallback: no pos_to_neg crossing" in lines[1]
    assert lines[2].endswith("| – | – | – |")
    assert "positive means the dev loss bottomed out before the accordance changed sign" in md


def write_times(path, seconds, batch_size=32, steps_per_epoch=20, adv_steps=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    methods = {m: {"seconds_per_step": s, "steps": 8, "seconds_per_epoch": s * steps_per_epoch,
                   "steps_per_epoch": steps_per_epoch, "ratio_to_finetune": s / seconds["finetune"],
                   "method_params": {"adv_steps": adv_steps} if adv_steps and m in ("pgd", "freelb") else {}}
               for m, s in seconds.items()}
    path.write_text(json.dumps({"methods": methods, "dataset": path.parent.name, "device": "cpu:test",
                                "batch_size": batch_size, "provenance": {}}))
    return path


def test_table3_beside_the_paper(tmp_path):
    times = write_times(tmp_path / "profile" / "rt" / "times.json",
                        {"finetune": 0.5, "flooding": 0.5, "flooding_x": 0.5, "pgd": 2.5})
    frame = write.write_table3([times], tmp_path / "tables")
    rows = frame.set_index("method")
    assert rows.loc["pgd", "ratio_to_finetune"] == pytest.approx(5.0)
    assert rows.loc["pgd", "seconds_per_epoch"] == pytest.approx(50.0)
    assert rows.loc["pgd", "paper_seconds_per_epoch"] == 1305
    assert rows.loc["pgd", "paper_ratio_to_finetune"] == pytest.approx(1305 / 260)
    assert rows.loc["flooding_x", "paper_seconds_per_epoch"] == 272  # the paper's Flooding row
    assert list(frame.method) == ["finetune", "flooding", "flooding_x", "pgd"]  # the paper's order
    md = (tmp_path / "tables" / "table3.md").read_text()
    assert "50 ×5.00" in md and "1,305 (×5.02)" in md and "stand-in" in md
    assert "bootstrap" not in md          # no timed steps in this times.json: no intervals claimed
    assert r"\times" in (tmp_path / "tables" / "table3.tex").read_text()
    assert "ascent steps" not in md  # K unknown: nothing claimed


def test_table3_gives_each_ratio_its_interval_over_the_timed_rounds(tmp_path):
    from floodx.stats import median_ratio_interval

    path = write_times(tmp_path / "profile" / "rt" / "times.json", {"finetune": 0.5, "pgd": 2.5})
    times = json.loads(path.read_text())
    rounds = {"finetune": [0.50, 0.52, 0.48, 0.55, 0.50, 0.49], "pgd": [2.5, 2.7, 2.4, 2.9, 2.5, 2.45]}
    for method, steps in rounds.items():
        times["methods"][method]["step_seconds"] = steps
    path.write_text(json.dumps(times))
    frame = write.write_table3([path], tmp_path / "tables").set_index("method")
    low, high = median_ratio_interval(rounds["pgd"], rounds["finetune"])
    assert (frame.loc["pgd", "ratio_low"], frame.loc["pgd", "ratio_high"]) == (low, high) and low <= 5.0 <= high and low < high
    assert frame.loc["finetune", "ratio_low"] == frame.loc["finetune", "ratio_high"] == 1.0
    md = (tmp_path / "tables" / "table3.md").read_text()
    outward = f"×5.00 ({math.floor(low * 100) / 100:.2f}–{math.ceil(high * 100) / 100:.2f})"   # bounds rounded outward
    assert outward in md and "percentile-bootstrap intervals over the timed rounds" in md
    assert "| Fine-tune | 10 (" in md and "×1.00 |" in md       # its seconds have an interval, its ratio to itself none
    times["methods"]["pgd"]["step_seconds"] = rounds["pgd"][:-1]
    path.write_text(json.dumps(times))
    with pytest.raises(DataError, match=r"methods.pgd.step_seconds: paired rounds differ in number: 5 and 6"):
        write.write_table3([path], tmp_path / "tables")


def test_table3_names_the_ascent_steps_timed(tmp_path):
    times = write_times(tmp_path / "profile" / "rt" / "times.json",
                        {"finetune": 0.5, "pgd": 2.0, "freelb": 1.5}, adv_steps=3)
    write.write_table3([times], tmp_path / "tables")
    assert "K = 3 ascent steps (paper: 5)" in (tmp_path / "tables" / "table3.md").read_text()


def test_above_majority_p_value_is_the_exact_binomial_tail():
    from fractions import Fraction
    from math import comb

    for n, k, share in ((200, 110, 50.0), (200, 116, 50.0), (30, 12, 25.0), (7, 7, 50.0), (1000, 520, 50.0)):
        p = Fraction(int(share), 100)
        brute = sum(comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))
        assert common.above_majority_p_value(100.0 * k / n, share, n) == pytest.approx(float(brute), rel=1e-9)
    assert common.above_majority_p_value(0.0, 50.0, 10) == 1.0


def test_a_model_no_better_than_the_majority_label_is_flagged_and_never_bold(tmp_path):
    root = tmp_path / "attack"

    def summary(method, clean, aua, suc, queries, **kw):
        return write_summary(root, "rt", method, 1, "textfooler", clean, aua, suc, queries, **kw)

    paths = [summary("finetune", 71.5, 3.3, 95.2, 66.0, majority=50.0, n_clean=200),
             summary("pgd", 73.0, 10.0, 85.7, 94.7, majority=50.0, n_clean=200),
             # 110 of 200 right: one-sided binomial p = 0.09 against always predicting one label.
             summary("tavat", 55.0, 36.7, 21.4, 148.4, majority=50.0, n_clean=200)]
    table = table2.table2(table2.load_attack_summaries(paths)).set_index("method")
    assert table.loc["tavat", "degenerate"] and not table.loc["pgd", "degenerate"]
    assert not table.loc["tavat", ["clean_best", "textfooler_aua_best", "textfooler_suc_best"]].any()
    markdown = table2.table2_markdown(table.reset_index())
    assert "| TAVAT † |" in markdown and "most frequent test label" in markdown
    assert "**36.7**" not in markdown
    assert r"TAVAT$^\dagger$" in table2.table2_latex(table.reset_index())
    # 116 of 200 (p = 0.013) is above the baseline; a summary without n_clean claims nothing.
    paths[2] = summary("tavat", 58.0, 36.7, 21.4, 148.4, majority=50.0, n_clean=200)
    assert not table2.table2(table2.load_attack_summaries(paths)).degenerate.any()
    paths[2] = summary("tavat", 50.0, 36.7, 21.4, 148.4, majority=50.0)
    assert not table2.table2(table2.load_attack_summaries(paths)).degenerate.any()


def test_a_host_dependent_wordnet_is_named_in_table2s_notes(summaries, tmp_path):
    """An attack summary records how this host's WordNet departs from 3.0 (from the WordNet folder's
    SOURCE.json, via NLTK_DATA); Table 2's notes name it, with how many summaries it touches."""
    from floodx.corpora import wordnet_deviations

    wordnet = tmp_path / "nltk_data" / "corpora" / "wordnet"
    wordnet.mkdir(parents=True)
    deviation = "WordNet *.exc (irregular forms) unavailable: empty exception lists written"
    (wordnet / "SOURCE.json").write_text(json.dumps({"deviations": [deviation]}))
    assert wordnet_deviations(tmp_path / "nltk_data") == [deviation] and wordnet_deviations(tmp_path / "none") == []
    for path in summaries[:3]:
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "host_deviations": wordnet_deviations(tmp_path / "nltk_data")}))
    table = table2.table2(table2.load_attack_summaries(summaries))
    assert f"attacks on this host (3 of {len(summaries)} summaries): {deviation}" in table.attrs["notes"]
    clean = table2.table2(table2.load_attack_summaries(summaries[3:]))
    assert not any("on this host" in note for note in clean.attrs["notes"])


def test_successors_are_tested_against_flooding_x_and_carry_their_clean_cost(tmp_path):
    """TTSO wins 12 examples over fine-tune and 10 over Flooding-X; iFlood equals Flooding-X; ALS
    trails it. Against Flooding-X, Holm runs over the three successors only."""
    root = tmp_path / "attack"
    plan = {"finetune": (outcomes(10, 8), 80.0), "flooding_x": (outcomes(12, 8), 81.0),
            "ttso": (outcomes(22, 8), 70.0), "iflood": (outcomes(12, 8), 80.0), "als": (outcomes(10, 8), 80.0)}
    paths = []
    for method, (results, clean) in plan.items():
        path = write_summary(root, "rt", method, 1, "textfooler", clean, 100 * results.count("failed") / 40, 50.0,
                             11.0, majority=50.0, n_clean=400)
        write_examples(path, results)
        paths.append(path)
    table = table2.table2(table2.load_attack_summaries(paths))
    rows = table.set_index("method")
    assert rows.textfooler_aua_vs_flooding_x_mark.to_dict() == {
        "finetune": "", "flooding_x": "", "iflood": "", "ttso": "win", "als": ""}
    assert rows.loc["ttso", "textfooler_aua_vs_flooding_x_n_tests"] == 3        # successors only
    assert rows.loc["ttso", "textfooler_aua_vs_flooding_x_wins"] == 10
    assert pd.isna(rows.loc["finetune", "textfooler_aua_vs_flooding_x_p_value"])    # not a successor: untested
    # Clean cost: 70% vs 80% of 400 examples (a proportion, like the Aua differences), its interval
    # below zero: Wilson 280/400 and 320/400 combined by MOVER (checked against Newcombe's table below).
    ttso = rows.loc["ttso"]
    assert ttso.clean_vs_finetune_difference == pytest.approx(-0.10)
    assert -0.17 < ttso.clean_vs_finetune_low < -0.11 and -0.09 < ttso.clean_vs_finetune_high < -0.03
    assert math.isnan(rows.loc["finetune", "clean_vs_finetune_difference"])
    text = reading.reading_markdown(table)
    assert "## Flooding's successors against fine-tune and Flooding-X" in text
    assert ("**Rotten Tomatoes**: significantly above fine-tune: TTSO (TextFooler); "
            "significantly above Flooding-X: TTSO (TextFooler).") in text
    assert "  - TTSO: Clean% −10.0 points (" in text
    assert "TextFooler +30.0 ▲ vs fine-tune, +25.0 ▲ vs Flooding-X" in text
    assert "  - iFlood: Clean% 0.0 points" in text and "+5.0 vs fine-tune, 0.0 vs Flooding-X" in text


def test_clean_cost_interval_is_newcombes():
    """Newcombe (1998, Stat Med 17:873, Table II, method 10): 56/70 − 48/80 = 0.2 has the 95% interval
    0.0524 to 0.3339 from two Wilson score intervals."""
    from floodx import comparisons, stats

    cells = [56 / 70, *stats.wilson_interval(56, 70), 48 / 80, *stats.wilson_interval(48, 80)]
    difference, low, high = comparisons.difference_interval(*cells)
    assert difference == pytest.approx(0.2) and (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_successors_without_flooding_x_or_fine_tune_are_said_untested(tmp_path):
    root = tmp_path / "attack"
    paths = []
    for method, robust in (("finetune", 10), ("ttso", 22)):
        path = write_summary(root, "rt", method, 1, "textfooler", 80.0, 100 * robust / 40, 50.0, 11.0,
                             majority=50.0, n_clean=400)
        write_examples(path, outcomes(robust, 8))
        paths.append(path)
    text = reading.reading_markdown(table2.table2(table2.load_attack_summaries(paths)))
    assert ("significantly above fine-tune: TTSO (TextFooler); against Flooding-X: not tested (no Flooding-X row)"
            in text)
    assert "TextFooler +30.0 ▲ vs fine-tune, not tested vs Flooding-X" in text
    path = write_summary(root, "rt", "flooding_x", 1, "textfooler", 80.0, 25.0, 50.0, 11.0, majority=50.0, n_clean=400)
    write_examples(path, outcomes(10, 8))
    without_fine_tune = reading.reading_markdown(table2.table2(table2.load_attack_summaries([path, paths[1]])))
    assert ("against fine-tune: not tested (no fine-tune row); significantly above Flooding-X: TTSO (TextFooler)"
            in without_fine_tune)


def test_no_successor_no_successor_section(tested):
    assert "successors" not in reading.reading_markdown(table2.table2(table2.load_attack_summaries(tested)))


def test_the_calibrated_table_tests_each_model_against_its_plain_attack_and_fine_tune(tmp_path):
    """TTSO's plain Aua% 30/40 falls to 2/40 on calibrated scores (masked), below fine-tune's 12, which stays 12."""
    plain_plan = {"finetune": outcomes(12, 8), "ttso": outcomes(30, 2)}
    calibrated_plan = {"finetune": outcomes(12, 8), "ttso": outcomes(2, 2)}
    paths = {}
    for kind, plan in (("plain", plain_plan), ("calibrated", calibrated_plan)):
        for method, results in plan.items():
            path = write_summary(tmp_path / kind, "rt", method, 1, "textfooler", 75.0,
                                 100 * results.count("failed") / 40, 50.0, 11.0, majority=50.0, n_clean=200)
            write_examples(path, results)
            if kind == "calibrated":
                summary = json.loads(path.read_text())
                summary["identity"]["scores"] = "calibrated"
                summary["calibration"] = {"temperature": 7.5 if method == "ttso" else 0.01, "fit_on": "dev",
                                          "test_saturated": 0.0, "at_bound": None if method == "ttso" else "low"}
                path.write_text(json.dumps(summary))
            else:     # the plain model's saturation.json, as floodx.saturation writes it
                saturation = path.parent.parent / "saturation.json"
                saturation.write_text(json.dumps({"identity": {"dataset": "rt", "method": method, "seed": 1},
                                                  "saturated": 0.9 if method == "ttso" else 0.1}))
                paths.setdefault("saturation", []).append(saturation)
            paths.setdefault(kind, []).append(path)
    write.main(["calibrated", "--plain", *map(str, paths["plain"]), "--calibrated", *map(str, paths["calibrated"]),
                "--saturation", *map(str, paths["saturation"]), "--out-dir", str(tmp_path / "tables"),
                "--caption", "toy"])
    text = (tmp_path / "tables" / "calibrated.md").read_text()
    assert ("- Rotten Tomatoes, TTSO, TextFooler: Aua% 75.0 on plain scores, 5.0 on calibrated (−70.0 points"
            in text) and "28 examples lost, 0 won" in text and "part of its plain Aua% was masked scores" in text
    assert ("Fine-tune, TextFooler: Aua% 30.0 on plain scores, 30.0 on calibrated (0.0 points" in text
            and "no significant change" in text)
    assert "| Rotten Tomatoes | TTSO | 7.5 | 90.0% → 0.0% |" in text and "| Fine-tune | 0.01 | 10.0% → 0.0% |" in text
    assert "Note: rt/Fine-tune/seed1: T sits at the search's low bound" in text
    table = pd.read_csv(tmp_path / "tables" / "calibrated.csv").set_index("method")
    assert table.loc["ttso", "textfooler_aua_mean"] == pytest.approx(5.0)
    assert table.loc["ttso", "textfooler_aua_vs_finetune_mark"] == "loss"      # 10 examples lost, none won

    summary = json.loads(paths["calibrated"][1].read_text())
    summary.pop("calibration")
    paths["calibrated"][1].write_text(json.dumps(summary))
    with pytest.raises(DataError, match="no 'calibration'"):
        from floodx.tables.calibrated import calibrated_table
        calibrated_table(paths["plain"], paths["calibrated"])
