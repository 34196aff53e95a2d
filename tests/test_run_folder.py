"""A resumed run must not rewrite a folder's tables with fewer methods, seeds, recipes or data sets."""

import copy
import json

import pytest

from floodx import run_folder
from floodx.errors import ConfigError
from workflow_copy import copy_workflow, snakemake

CONFIG = {"datasets": {"rt": {}}, "methods": ["finetune", "flooding", "flooding_x"], "seeds": [42, 43],
          "attacks": {"recipes": ["textfooler", "bertattack"]}}


def write_table2(results, rows, recipes=("textfooler", "bertattack")):
    (results / "tables").mkdir(parents=True, exist_ok=True)
    header = ["dataset", "method", "n_seeds", "seeds"] + [f"{r}_aua_mean" for r in recipes]
    lines = [",".join(header)] + [",".join([d, m, str(len(s.split())), s] + ["1.0"] * len(recipes))
                                  for d, m, s in rows]
    (results / "tables" / "table2.csv").write_text("\n".join(lines) + "\n")


def write_profile(results, dataset, methods):
    (results / "profile" / dataset).mkdir(parents=True, exist_ok=True)
    (results / "profile" / dataset / "times.json").write_text(json.dumps({"methods": {m: {} for m in methods}}))


def test_the_same_config_or_a_larger_one_passes(tmp_path):
    results = tmp_path / "results"
    run_folder.check_resume(CONFIG, results)                 # an empty folder
    write_table2(results, [("rt", "finetune", "42 43"), ("rt", "flooding_x", "42 43")])
    write_profile(results, "rt", ["finetune", "flooding"])
    run_folder.check_resume(CONFIG, results)
    larger = copy.deepcopy(CONFIG) | {"methods": CONFIG["methods"] + ["ttso"], "seeds": [42, 43, 44]}
    run_folder.check_resume(larger, results)


def test_fewer_methods_seeds_recipes_or_data_sets_stop_naming_the_file_and_what_would_go(tmp_path):
    results = tmp_path / "results"
    write_table2(results, [("rt", "finetune", "42 43 44"), ("rt", "ttso", "42 43 44"), ("sst2", "finetune", "42")],
                 recipes=("textfooler", "bertattack", "textbugger"))
    write_profile(results, "rt", ["finetune", "flooding", "ttso", "als"])
    (results / "landscape/rt/seed42").mkdir(parents=True)
    (results / "landscape/rt/seed42/noise_loss.csv").write_text("method,alpha,loss\nfinetune,0,1\npgd,0,1\n")
    (results / "grid_attack/rt").mkdir(parents=True)
    (results / "grid_attack/rt/levels.json").write_text(json.dumps({"seeds": [42, 43, 44], "levels": []}))
    lost = run_folder.dropped(CONFIG, results)
    assert lost == {str(results.resolve() / "grid_attack/rt/levels.json"): {"seed": ["44"]}, str(results.resolve() / "tables/table2.csv"): {"dataset": ["sst2"], "method": ["ttso"],
                                                                   "seed": ["44"], "recipe": ["textbugger"]},
                    str(results.resolve() / "profile/rt/times.json"): {"method": ["als", "ttso"]},
                    str(results.resolve() / "landscape/rt/seed42/noise_loss.csv"): {"method": ["pgd"]}}
    with pytest.raises(ConfigError) as err:
        run_folder.check_resume(CONFIG, results)
    message = str(err.value)
    assert "table2.csv: datasets sst2; methods ttso; seeds 44; recipes textbugger" in message
    assert "times.json: methods als, ttso" in message and "move the files named above away" in message


def test_the_message_names_the_overlays_that_would_restore_what_is_dropped(tmp_path):
    """Of the repository's overlays that only extend a run (not the base config.yaml), those naming every dropped
    name of a kind are added to the overlays given, and the command is printed only once merging them (as
    Snakemake merges) drops nothing and changes nothing else."""
    from floodx.config import run_config

    results = tmp_path / "results"
    write_table2(results, [("rt", "finetune", "42 43 44"), ("rt", "ttso", "42 43 44")], recipes=("textfooler",))
    overlays = tmp_path / "config"
    overlays.mkdir()
    (overlays / "config.yaml").write_text("methods: [finetune, ttso]\nseeds: [42, 43, 44]\n")   # the base: never
    (overlays / "some.yaml").write_text("methods: [finetune, ttso, als]\n")
    (overlays / "three.yaml").write_text("seeds: [42, 43, 44]\n")
    (overlays / "two.yaml").write_text("seeds: [42, 44]\n")                         # not seed 43: not named
    (overlays / "longer.yaml").write_text("seeds: [42, 43, 44]\ntraining: {epochs: 3}\n")   # changes the run
    (overlays / "broken.yaml").write_text("methods: [ttso\n")                         # unreadable: passed over
    (overlays / "bytes.yaml").write_bytes(b"\xff\xfe methods")
    (overlays / "list.yaml").write_text("- ttso\n")                                  # not a mapping
    mine = tmp_path / "mine.yaml"
    mine.write_text("methods: [finetune]\nseeds: [42]\nattacks: {recipes: [textfooler]}\n")
    narrow = run_config([mine])
    lost = run_folder.dropped(narrow, results)
    assert run_folder.restoring_overlays(lost, overlays) == {"method": [overlays / "some.yaml"],
                                                             "seed": [overlays / "three.yaml"]}
    assert run_folder.restoring_command(lost, results, overlays, [mine]) == [
        mine, overlays / "some.yaml", overlays / "three.yaml"]
    with pytest.raises(ConfigError) as err:
        run_folder.check_resume(narrow, results, overlays_dir=overlays, given=[mine])
    message = str(err.value)
    assert "Adding some.yaml, three.yaml (from " in message and "setting only methods, seeds)" in message
    assert f"--configfile {mine} {overlays / 'some.yaml'} {overlays / 'three.yaml'}, or move" in message
    given = [mine, overlays / "some.yaml"]                                 # an overlay already given: not again
    assert run_folder.restoring_command(run_folder.dropped(run_config(given), results),
                                        results, overlays, given) == given + [overlays / "three.yaml"]
    (overlays / "some.yaml").write_text("methods: [ttso]\n")                # names ttso but drops fine-tune
    assert run_folder.restoring_command(lost, results, overlays, [mine]) is None
    with pytest.raises(ConfigError) as err:                                     # unchecked: the plain advice
        run_folder.check_resume(narrow, results, overlays_dir=overlays, given=[mine])
    assert "Resume with the config overlays the run was made with, or move" in str(err.value)
    (overlays / "some.yaml").write_text("methods: [finetune, ttso, als]\n")
    write_table2(results, [("rt", "finetune", "42 43 44"), ("rt", "ttso", "42 43 44"), ("sst2", "finetune", "42")],
                 recipes=("textfooler",))                                   # a data set no overlay names
    assert run_folder.restoring_command(run_folder.dropped(narrow, results), results, overlays, [mine]) is None


def test_files_it_cannot_read_count_for_nothing(tmp_path):
    """A damaged table or profile is rewritten by the run anyway: it neither blocks the run nor crashes the check."""
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    for content in (b"method,seeds\nttso,42\n", b"\xff\xfe\x00garbage", b""):
        (results / "tables/table2.csv").write_bytes(content)
        run_folder.check_resume(CONFIG, results)
    (results / "profile/rt").mkdir(parents=True)
    for content in ("[1, 2]", "{not json", '{"methods": ["ttso"]}'):
        (results / "profile/rt/times.json").write_text(content)
        run_folder.check_resume(CONFIG, results)


def test_a_narrower_resume_stops_before_any_job_and_keeps_the_tables(tmp_path):
    """A real run (not a dry run) stops at parse time and writes nothing; the overlay that names the method
    lets it go on (dry run)."""
    copy_workflow(tmp_path)
    results = tmp_path / "results"
    write_table2(results, [("rt", "finetune", "42"), ("rt", "ttso", "42")], recipes=("textfooler",))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "resources" not in p.parts)
    table = (results / "tables/table2.csv").read_text()
    stopped = snakemake(tmp_path, "--cores", "1")
    assert stopped.returncode != 0
    assert "results/tables/table2.csv: methods ttso" in stopped.stdout + stopped.stderr
    assert "Adding successors.yaml (from " in stopped.stdout + stopped.stderr         # the repository's overlay
    assert (results / "tables/table2.csv").read_text() == table
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                   if "resources" not in p.parts and ".snakemake" not in p.parts)
    assert after == [p for p in before if ".snakemake" not in p.parts]     # no job ran, nothing written
    unlocked = snakemake(tmp_path, "--unlock")                             # reruns nothing: not stopped
    assert unlocked.returncode == 0, unlocked.stderr[-3000:]
    (tmp_path / "more.yaml").write_text("methods: [finetune, flooding, flooding_x, pgd, freelb, tavat, infobert, ttso]\n")
    passed = snakemake(tmp_path, "-n", "--configfile", "more.yaml")
    assert passed.returncode == 0, passed.stderr[-3000:]
