"""How much of a run is left: the jobs Snakemake still lists for a run folder, costed like `floodx.plan`.

    python -m floodx.progress --dir runs/evidence --configfile config/evidence.yaml config/seeds.yaml --cores 2
    (or: make progress RUN=runs/evidence CONFIG="config/evidence.yaml config/seeds.yaml")

A long run (the evidence run spans several sessions on 2 cores) prints "N of M steps done", which
counts a one-second table like a one-hour training. This asks Snakemake for a dry run of the folder
with the run's own overlays (the same resume guard applies), then costs each listed job from what the
folder measured (`plan.epoch_seconds`, `plan.attack_seconds`), less the work a stopped job left for
its resume: finished epochs (`progress.json`) and attacked rows (`*.csv.partial`). Other rules cost
the median of their own finished jobs' benchmark files. Jobs that Snakemake lists only once its
checkpoints have run (Flooding-X's window runs, Figure 4's per-epoch attacks) are not listed yet,
so the figure is a lower bound while a probe or a choice is pending.
"""

import argparse
import csv
import re
import statistics
import subprocess
import sys
from pathlib import Path

from .config import adaflood_folds, reuses_grid_attack
from .errors import DataError, run_main
from .files import read_json
from .names import parse_run
from .plan import PROBE_EPOCH_RATIO, ROOT, attack_seconds, epoch_seconds, load, split_sizes

_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")


def listed_jobs(dry_run_output):
    """[(rule, {wildcard: value})] from `snakemake -n` output, one per job block (the aggregate rule `all`
    aside)."""
    jobs, current = [], None
    for line in dry_run_output.splitlines():
        match = _JOB.match(line.strip())
        if match:
            current = [match.group(1), {}]
            jobs.append(current)
        elif current is not None and line.strip().startswith("wildcards:"):
            for pair in line.split(":", 1)[1].split(","):
                key, _, value = pair.strip().partition("=")
                current[1][key] = value
    return [(rule, wildcards) for rule, wildcards in jobs if rule != "all"]


def _rows_done(path):
    """Attacked rows a stopped attack left in `<out>.partial` (its resume starts after them)."""
    partial = Path(f"{path}.partial")
    if not partial.is_file():
        return 0
    with open(partial, newline="") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


def _epochs_done(folder):
    progress = Path(folder) / "progress.json"
    try:
        return len(read_json(progress).get("epochs") or []) if progress.is_file() else 0
    except (OSError, ValueError):
        return 0


def _benchmark_median(run_dir, rule):
    """Median seconds of the rule's finished jobs in this folder (Snakemake's benchmark files), or None.

    A resumed job's file times only its last segment, so the median can be low for rules often stopped."""
    seconds = []
    for tsv in (Path(run_dir) / "benchmarks" / rule).rglob("*.tsv"):
        with open(tsv, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows and rows[-1].get("s"):
            seconds.append(float(rows[-1]["s"]))
    return statistics.median(seconds) if seconds else None


class JobCosts:
    """Seconds left of one listed job, from the folder's measurements (see the module docstring)."""

    def __init__(self, config, run_dir):
        self.config, self.run_dir = config, Path(run_dir)
        self.results = self.run_dir / "results"
        self._sizes, self._epoch, self._attack, self._bench = {}, {}, {}, {}
        self.sources = {}   # {(dataset, "training" | recipe): where the rates come from (plan's words)}

    def sizes(self, dataset):
        if dataset not in self._sizes:
            self._sizes[dataset] = split_sizes(dataset, self.config["datasets"][dataset], self.config["seeds"][0])
        return self._sizes[dataset]

    def per_epoch(self, dataset, method):
        if dataset not in self._epoch:
            train = self.sizes(dataset)[0]
            self._epoch[dataset], self.sources[(dataset, "training")] = epoch_seconds(
                dataset, self.config["datasets"][dataset], train, self.results)
        seconds = self._epoch[dataset]
        return seconds.get(method, seconds.get("finetune", 0.0))

    def per_example(self, dataset, recipe):
        if (dataset, recipe) not in self._attack:
            self._attack[(dataset, recipe)], self.sources[(dataset, recipe)] = attack_seconds(
                dataset, self.results, recipe)
        return self._attack[(dataset, recipe)]

    def _copies_grid_attack(self, w):
        """Whether Table 2's attack of this chosen flood run will copy its grid attack's rows: where the config
        says so and the grid shard is still to be made or was made by this attack code (a shard finished by
        other code has another fingerprint, and the recipe is attacked again)."""
        if not reuses_grid_attack(self.config, w["method"]):
            return False
        choice = self.results / "search" / w["dataset"] / w["method"] / f"seed{w['seed']}" / "choice.json"
        try:
            run = read_json(choice)["run"]
        except (OSError, KeyError, TypeError, ValueError):
            return True                                                   # not chosen yet: the rule will wait for it
        stamp = self.results / "grid_attack" / w["dataset"] / run / f"seed{w['seed']}" / "shard-0.csv.json"
        rows = stamp.with_name("shard-0.csv")
        if not stamp.is_file() and not rows.is_file():
            return True                                                   # the grid attack is still to run
        if not (stamp.is_file() and rows.is_file()):
            return False                                                  # not a finished shard: attacked anew
        from .attacks.resume import code_digest

        try:
            return read_json(stamp).get("code") == code_digest()
        except (OSError, ValueError, AttributeError):
            return False

    def _attack_left(self, dataset, recipe, examples, out):
        return max(0, examples - _rows_done(out)) * self.per_example(dataset, recipe)

    def seconds(self, rule, w):
        """(seconds left, basis): 'model' (epochs or examples times the folder's rates, or plan's assumed rates
        where it has measured none), 'benchmarks' (the rule's median job) or 'unmeasured' (0: none finished)."""
        cfg, results = self.config, self.results
        epochs = cfg["training"]["epochs"]
        if rule == "train":
            method = parse_run(w["run"])[0]
            left = epochs - _epochs_done(results / "train" / w["dataset"] / w["run"] / f"seed{w['seed']}")
            return max(0, left) * self.per_epoch(w["dataset"], method), "model"
        if rule == "probe":
            left = cfg["probe"]["max_epochs"] - _epochs_done(results / "probe" / w["dataset"] / f"seed{w['seed']}")
            return max(0, left) * self.per_epoch(w["dataset"], "finetune") * PROBE_EPOCH_RATIO, "model"
        if rule == "adaflood_fold":
            folds = adaflood_folds(cfg)
            return epochs * self.per_epoch(w["dataset"], "finetune") * (folds - 1) / folds, "model"
        ds = cfg["datasets"].get(w.get("dataset"), {})
        if rule == "attack_shard":
            attacked, shards = self.sizes(w["dataset"])[2], cfg["attacks"]["shards"]
            examples = len(range(int(w["shard"]), attacked, shards))
            folder = results / "attack" / w["dataset"] / w["method"] / f"seed{w['seed']}"
            copied = cfg["search"]["attack"] if self._copies_grid_attack(w) else None   # no attack
            return sum(self._attack_left(w["dataset"], recipe, examples, folder / recipe / f"shard-{w['shard']}.csv")
                       for recipe in cfg["attacks"]["recipes"] if recipe != copied), "model"
        if rule in ("grid_attack", "dev_attack"):
            examples = self.sizes(w["dataset"])[2] if rule == "grid_attack" else ds["dev_attack_examples"]
            out = results / rule / w["dataset"] / w["run"] / f"seed{w['seed']}" / "shard-0.csv"
            return self._attack_left(w["dataset"], cfg["search"]["attack"], examples, out), "model"
        if rule == "calibrated_attack":
            folder = results / "attack_calibrated" / w["dataset"] / w["method"] / f"seed{w['seed']}"
            return sum(self._attack_left(w["dataset"], recipe, self.sizes(w["dataset"])[2], folder / recipe / "shard-0.csv")
                       for recipe in cfg["attacks"]["recipes"]), "model"
        if rule == "epoch_attack":
            folder = results / "epoch_attack" / w["dataset"] / w["method"] / f"seed{w['seed']}"
            examples = cfg["figures"]["per_epoch_attack_examples"]
            return sum(self._attack_left(w["dataset"], cfg["search"]["attack"], examples,
                                         folder / f"epoch-{e}" / "shard-0.csv") for e in range(1, epochs + 1)), "model"
        if rule not in self._bench:
            self._bench[rule] = _benchmark_median(self.run_dir, rule)
        measured = self._bench[rule]
        return (measured, "benchmarks") if measured is not None else (0.0, "unmeasured")


def estimate(config, run_dir, jobs, sources=None):
    """{rule: {"jobs", "hours", "basis"}} and the total hours of the listed jobs; `sources` (a dict), if
    given, receives where each rate came from (JobCosts.sources)."""
    costs, by_rule = JobCosts(config, run_dir), {}
    for rule, wildcards in jobs:
        seconds, basis = costs.seconds(rule, wildcards)
        entry = by_rule.setdefault(rule, {"jobs": 0, "hours": 0.0, "basis": basis})
        entry["jobs"] += 1
        entry["hours"] += seconds / 3600
    if sources is not None:
        sources.update(costs.sources)
    return by_rule, sum(e["hours"] for e in by_rule.values())


def dry_run(run_dir, configfiles):
    """The dry run's output for the folder, with the run's overlays (the workflow's own checks apply)."""
    command = [str(Path(sys.executable).parent / "snakemake"), "-n", "-s", str(ROOT / "workflow" / "Snakefile"),
               "-d", str(run_dir)]
    if configfiles:
        command += ["--configfile", *[str(Path(f).resolve()) for f in configfiles]]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise DataError(f"snakemake -n in {run_dir} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout + done.stderr


def report(by_rule, total, cores, unmeasured, sources=None):
    lines = [f"jobs_listed: {sum(e['jobs'] for e in by_rule.values())}", f"job_hours_left: {total:.2f}",
             f"wall_hours_left: {total / max(1, cores):.2f}", f"cores: {cores}"]
    for (dataset, what), source in sorted((sources or {}).items()):
        rate = "training" if what == "training" else f"{what} attacks"
        warning = ("; the paper's GPU times: far below a CPU's until a fine-tune or Flooding job or the profile has "
                   "finished here"
                   if what == "training" and source.startswith("assumed") else "")
        lines.append(f"rates_{dataset}: {rate} {source}{warning}")
    if unmeasured:
        lines.append(f"unmeasured_rules: {', '.join(unmeasured)} (no benchmark file of theirs in this folder: "
                     "small jobs, counted as 0)")
    lines.append("not_listed: jobs behind a checkpoint still to run (window runs, per-epoch attacks): "
                 "a lower bound until the probes and choices are done")
    lines += ["", f"{'rule':22} {'jobs':>5} {'hours':>7}  basis"]
    for rule, entry in sorted(by_rule.items(), key=lambda kv: -kv[1]["hours"]):
        lines.append(f"{rule:22} {entry['jobs']:>5} {entry['hours']:>7.2f}  {entry['basis']}")
    return "\n".join(lines)


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=".", help="the run folder (Snakemake's -d)")
    parser.add_argument("--configfile", nargs="*", default=[], help="the run's config overlays, as given to Snakemake")
    parser.add_argument("--cores", type=int, default=2, help="one-thread jobs at once, for the wall-clock hours")
    args = parser.parse_args(argv)
    config = load(args.configfile)
    jobs = listed_jobs(dry_run(args.dir, args.configfile))
    sources = {}
    by_rule, total = estimate(config, args.dir, jobs, sources)
    unmeasured = sorted(rule for rule, entry in by_rule.items() if entry["basis"] == "unmeasured")
    print(report(by_rule, total, args.cores, unmeasured, sources))
    return by_rule


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
