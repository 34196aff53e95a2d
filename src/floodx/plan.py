"""What a config will cost before it runs: jobs, training epochs, attacked examples, GPU-hours, disk.

    python -m floodx.plan --configfile config/paper.yaml        (or: make plan CONFIG=config/paper.yaml)

Prints `name: value` lines (jobs, gpu_hours, attack_hours, disk_peak_gb, disk_end_gb, ...), then a
table per data set and stage. Every time says where it comes from:

- **measured**: `results/profile/<dataset>/times.json` (Table 3's stage, on the device that ran it)
  and, for attacks, the seconds recorded in `results/attack/**/summary.json`;
- **device profile** (`--device-profile`, written by `make gpu-check`): the paper's Table 3 per data
  set, rescaled by the device's measured SST-2 epoch and its method ratios;
- **assumed**: the paper's Table 3 (RTX 2080Ti seconds per epoch, scaled by training-set size
  where the paper has no row) and a fixed seconds-per-attacked-example, when nothing was measured.

Job counts follow the workflow's rules; the jobs Snakemake can list before its checkpoints are
tested against `snakemake -n`, the ones after them (Flooding-X's window runs, Figure 4's per-epoch
attacks) depend on the probe and are counted with `search.max_levels` levels (assumed
`ASSUMED_WINDOW_LEVELS` when it is null).
"""

import argparse
import math
from pathlib import Path

import yaml

from .config import adaflood_folds, attacked_epoch, flooding_grid, kept_epochs, reuses_grid_attack, run_config
from .errors import ConfigError, run_main
from .files import read_json
from .names import BASE_METHODS, flood_run, parse_run

ROOT = Path(__file__).resolve().parents[2]
ASSUMED_WINDOW_LEVELS = 5            # a window's levels when search.max_levels is null (paper config)
ASSUMED_ATTACK_SECONDS = 1.0         # per attacked example and recipe, when nothing was measured
PROBE_EPOCH_RATIO = 1.1              # the probe's epoch against fine-tuning's (make bench: 1.0-1.2)
PAPER_TABLE3 = Path(__file__).resolve().parent / "paper_results" / "paper_table3.csv"

# Published split sizes of the built-in Hugging Face data sets: (train, the split floodx tests on).
HF_SIZES = {"sst2": (67349, 872), "mrpc": (3668, 408), "qnli": (104743, 5463), "imdb": (25000, 25000),
            "ag_news": (120000, 7600)}
EMBEDDED_SIZE = 4000                 # Rotten Tomatoes sentences
# Checkpoint size (save_pretrained folder) by model; others are assumed BERT-base sized.
CHECKPOINT_GB = {"pypi-minilm": 0.091, "tiny": 0.002, "bert-base-uncased": 0.438}
OPTIMIZER_FACTOR = 2                 # Adam's two moments beside the newest checkpoint while training


def load(configfiles):
    """config/config.yaml overlaid by `configfiles` as Snakemake merges them, validated."""
    return run_config(configfiles)


# ---------------------------------------------------------------- sizes and times
def split_sizes(dataset, ds, seed):
    """(train, test, attacked) examples of one data set: a local file is read and split as `prepare`
    splits it; the others from their published sizes and the configured slices."""
    if ds["source"] == "local":
        from .data import build_splits
        from .data_sources import load_local, normalise_spec

        spec = normalise_spec(dataset, ds)
        splits, _ = build_splits(load_local(spec, dataset), spec, dataset, seed)
        train, test = len(splits["train"]), len(splits["test"])
        return train, test, min(ds["attack_examples"] or test, test)
    if ds["source"] == "huggingface":
        train, test = HF_SIZES[ds["name"]]
        train = int(train * (1 - ds["dev_fraction"]))
    else:                                   # embedded
        pool = EMBEDDED_SIZE
        test = int(pool * ds["test_fraction"])
        train = int((pool - test) * (1 - ds["dev_fraction"]))
    train = ds["train_size"] or train
    test = ds["test_size"] or test
    return train, test, min(ds["attack_examples"] or test, test)


def _job_epoch_seconds(tsv, metrics):
    """(seconds per epoch, training examples) of a finished training job, or None. Snakemake's benchmark file
    times a resumed job's last segment only, so the epochs' own recorded seconds bound it from below."""
    import csv

    if not metrics.is_file():
        return None
    with open(tsv, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    record = read_json(metrics)
    epochs = record.get("epochs") or []
    if not (rows and epochs and record.get("num_train_examples")):
        return None
    seconds = max(float(rows[-1]["s"]), sum(e.get("seconds") or 0.0 for e in epochs))
    return seconds / len(epochs), int(record["num_train_examples"])


def _method_of(run):
    try:
        return parse_run(run)[0]
    except (ValueError, ConfigError):
        return None


def training_job(dataset, results):
    """(seconds per epoch, training examples, what was measured, method) from this data set's finished training
    jobs beside `results` (Snakemake's benchmark files: evaluation and checkpoints included): a fine-tune job,
    else the median of its finished Flooding runs (the evidence run trains the flood grid first); or None."""
    root = Path(results).resolve().parent / "benchmarks" / "train" / dataset
    for tsv in sorted((root / "finetune").glob("seed*.tsv")):
        job = _job_epoch_seconds(tsv, Path(results) / "train" / dataset / "finetune" / tsv.stem / "metrics.json")
        if job:
            return (*job, str(tsv), "finetune")
    runs = sorted(tsv for tsv in root.glob("*/seed*.tsv") if _method_of(tsv.parent.name) == "flooding")
    flood = [(job, tsv) for tsv in runs
             if (job := _job_epoch_seconds(tsv, Path(results) / "train" / dataset / tsv.parent.name / tsv.stem
                                           / "metrics.json"))]
    if not flood:
        return None
    middle = sorted((job for job, _ in flood), key=lambda job: job[0] / job[1])[len(flood) // 2]
    return (*middle, f"the median of {len(flood)} Flooding training jobs under {root}", "flooding")


def epoch_seconds(dataset, ds, train, results, device_profile=None):
    """{method: seconds per epoch} and where they come from (`method_epoch_seconds`); where a training job of
    this data set finished in `results` (`training_job`), its own time sets the level and the other methods keep
    their ratios to that job's method."""
    out, source = method_epoch_seconds(dataset, ds, train, results, device_profile)
    job = training_job(dataset, results)
    if job and out.get(job[3]):
        factor = job[0] * train / job[1] / out[job[3]]
        out = {m: v * factor for m, v in out.items()}
        name = "fine-tune's training job " if job[3] == "finetune" else ""
        source = (f"measured ({name}{job[2]}: {job[0]:.4g} s per epoch of {job[1]} examples, "
                  f"scaled to {train}); method ratios {source}")
    return out, source


def method_epoch_seconds(dataset, ds, train, results, device_profile=None):
    """{method: seconds per epoch}: this data set's profiling stage, else the paper's Table 3, rescaled to a
    device the GPU check measured when a device profile is given."""
    times = Path(results) / "profile" / dataset / "times.json"
    if times.is_file():
        measured = read_json(times)
        scale = train / max(1, measured.get("num_train_examples") or train)
        out = {m: rec["seconds_per_epoch"] * scale for m, rec in measured["methods"].items()}
        return out, f"measured ({times}, {measured.get('device')})"
    paper_name = ds.get("paper_dataset") or (ds["name"] if ds["source"] == "huggingface" else "sst2")
    rows = [line.split(",") for line in PAPER_TABLE3.read_text().splitlines()[1:]]
    table = {(d, m): float(s) for d, m, s, *_ in rows}
    if (paper_name, "finetune") in table:
        base = paper_name
        scale = train / (HF_SIZES[base][0] * (1 - ds["dev_fraction"])) if ds["source"] != "huggingface" else 1.0
    else:
        base, scale = "sst2", train / (HF_SIZES["sst2"][0] * (1 - ds["dev_fraction"]))
    out = {m: table[(base, m)] * scale for (d, m) in table if d == base}
    if device_profile:
        # The device's fine-tuning speed on SST-2 against the 2080Ti's, and its own method ratios.
        speed = device_profile["sst2_epoch_seconds"] / table[("sst2", "finetune")]
        finetune = out["finetune"] * speed
        out = {m: finetune * device_profile.get(f"ratio_{m}", out[m] / out["finetune"]) for m in out}
        return out, (f"device profile ({device_profile['device']}, GPU check of {device_profile.get('date', '?')}: "
                     f"SST-2 epoch {device_profile['sst2_epoch_seconds']:.4g} s, its method ratios) on the shape of "
                     f"paper Table 3, {base} scaled x{scale:.3g}")
    return out, f"assumed (paper Table 3, RTX 2080Ti, {base} scaled x{scale:.3g})"


def read_device_profile(path):
    """The figures `python -m floodx.bench.gpu_check --out PATH` wrote, checked for what the planner uses."""
    if path is None:
        return None
    try:
        profile = read_json(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the device profile ({err})") from None
    if profile.get("mode") != "full" or not isinstance(profile.get("sst2_epoch_seconds"), (int, float)):
        raise ConfigError(f"{path}: not a full GPU check's profile (mode 'full' with sst2_epoch_seconds); "
                          "write one with `make gpu-check` on the device")
    return profile


def attack_seconds(dataset, results, recipe=None):
    """Seconds per attacked example: of `recipe` (all recipes pooled when None or unmeasured), measured
    on the test attacks of this results folder (Table 2's, and the flood-level grid's), or assumed."""
    measured, seen = {}, set()
    summaries = [*(Path(results) / "grid_attack" / dataset).glob("*/seed*/summary.json"),
                 *(Path(results) / "attack" / dataset).glob("*/seed*/*/summary.json")]
    for summary in summaries:
        data = read_json(summary)
        identity = data.get("identity") or {}
        attacked = (identity.get("run"), identity.get("seed"), data.get("recipe"))
        if attacked in seen and identity.get("run"):
            continue                  # Table 2's copy of a chosen run's grid attack: the same rows and seconds
        seen.add(attacked)
        if data.get("seconds") and data.get("n_attacked"):
            seconds, count = measured.get(data.get("recipe"), (0.0, 0))
            measured[data.get("recipe")] = (seconds + data["seconds"], count + data["n_attacked"])
    if recipe in measured:
        total, count = measured[recipe]
        return total / count, f"measured ({count} {recipe} test examples under {results})"
    if measured:
        total, count = (sum(v[i] for v in measured.values()) for i in (0, 1))
        return total / count, f"measured ({count} attacked test examples under {results})"
    return ASSUMED_ATTACK_SECONDS, f"assumed ({ASSUMED_ATTACK_SECONDS} s per example and recipe)"


def checkpoint_gb(config):
    model = config["model"]
    key = model["source"] if model["source"] != "huggingface" else Path(str(model["name_or_path"])).name
    return CHECKPOINT_GB.get(key, CHECKPOINT_GB["bert-base-uncased"])


# ---------------------------------------------------------------- the plan
def window_levels(config):
    return config["search"]["max_levels"] or ASSUMED_WINDOW_LEVELS


def plan(config, results="results", device_profile=None):
    """Per data set and stage: jobs (before/after the checkpoints), epochs, examples, hours, disk."""
    seeds, methods = config["seeds"], config["methods"]
    grid = flooding_grid(config)
    epochs = config["training"]["epochs"]
    recipes = config["attacks"]["recipes"]
    shards = config["attacks"]["shards"]
    by_dev_attack = config["search"]["criterion"] == "dev_attack"
    size = checkpoint_gb(config)
    window = window_levels(config)
    rows, sources = [], {}
    end_checkpoints = before_choice = 0.0
    prune = config["training"]["keep_checkpoints"] == "chosen"
    for dataset, ds in config["datasets"].items():
        train, test, attacked = split_sizes(dataset, ds, seeds[0])
        per_epoch, time_source = epoch_seconds(dataset, ds, train, results, device_profile)
        attack_source = attack_seconds(dataset, results)[1]
        search_seconds = attack_seconds(dataset, results, config["search"]["attack"])[0]   # the dev and grid attacks
        sources[dataset] = {"training": time_source, "attacks": attack_source}
        base = [m for m in methods if m in BASE_METHODS]
        S = len(seeds)
        ft = per_epoch.get("finetune", 0.0)

        def add(stage, jobs, after=0, epochs_=0, hours=0.0, examples=0, attack_hours=0.0):
            rows.append({"dataset": dataset, "stage": stage, "jobs": jobs, "jobs_after_checkpoints": after,
                         "epochs": epochs_, "gpu_hours": hours, "examples": examples,
                         "attack_hours": attack_hours})

        add("prepare", 1)
        add("probe + window", 2 * S, epochs_=S * config["probe"]["max_epochs"],
            hours=S * config["probe"]["max_epochs"] * ft * PROBE_EPOCH_RATIO / 3600)
        if "adaflood" in base:    # K auxiliary fine-tunings on (K-1)/K of the data, then their join
            folds = adaflood_folds(config)
            add("AdaFlood auxiliary folds", S * (folds + 1), epochs_=S * folds * epochs,
                hours=S * folds * epochs * ft * (folds - 1) / folds / 3600)
        for method in base:
            add(f"train {method}", S, epochs_=S * epochs, hours=S * epochs * per_epoch.get(method, ft) / 3600)
        flood = per_epoch.get("flooding", ft)
        add("train Flooding grid", S * len(grid), epochs_=S * len(grid) * epochs,
            hours=S * len(grid) * epochs * flood / 3600)
        # The window's levels: on the wide grid when both use the same step (the paper's 0.01), so the
        # grid's runs serve Flooding-X too; otherwise runs of their own.
        on_grid = math.isclose(config["search"]["step"], config["flooding"]["grid"]["step"])
        narrow = [] if on_grid else list(range(window))
        add("train Flooding-X window", 0, after=S * len(narrow), epochs_=S * len(narrow) * epochs,
            hours=S * len(narrow) * epochs * flood / 3600)
        dev_examples = ds["dev_attack_examples"]
        if by_dev_attack:
            add("dev attacks (grid)", S * len(grid), examples=S * len(grid) * dev_examples,
                attack_hours=S * len(grid) * dev_examples * search_seconds / 3600)
            add("dev attacks (window)", 0, after=S * len(narrow), examples=S * len(narrow) * dev_examples,
                attack_hours=S * len(narrow) * dev_examples * search_seconds / 3600)
        add("flood-level choice", 2 * S)
        if prune:
            add("prune unchosen flood runs", S)
        # Each recipe at its own rate; the chosen flood runs' search-recipe attacks copy their grid attack's rows
        # (assumed: a grid shard finished by other attack code is attacked again, see floodx.progress).
        search = config["search"]["attack"]
        attacks = {recipe: S * attacked * sum(not (recipe == search and reuses_grid_attack(config, m)) for m in methods)
                   for recipe in recipes}
        add("test attacks", S * len(methods) * (shards + len(recipes) + 1),   # + each model's softmax saturation
            examples=sum(attacks.values()),
            attack_hours=sum(n * attack_seconds(dataset, results, recipe)[0] for recipe, n in attacks.items()) / 3600)
        calibrated = config["attacks"].get("calibrated", [])
        if calibrated:    # every recipe again on calibrated scores, at the recipe's own rate, and their table
            add("test attacks on calibrated scores", S * len(calibrated),
                examples=S * len(calibrated) * attacked * len(recipes),
                attack_hours=S * len(calibrated) * attacked
                * sum(attack_seconds(dataset, results, recipe)[0] for recipe in recipes) / 3600)
        if config["figures"]["grid_test_attack"]:
            # Every searched level on the test subset (jobs listed after the window's checkpoint), then its analysis
            # per seed, the one over seeds and Figure 2 (test), listed before; window levels on the grid counted
            # twice (an upper bound).
            searched = len(grid) + (0 if on_grid else window)
            add("test attacks (every searched level)", S + 2, after=S * searched, examples=S * searched * attacked,
                attack_hours=S * searched * attacked * search_seconds / 3600)
        per_epoch_methods = config["figures"]["per_epoch_methods"]
        fig4 = config["figures"]["per_epoch_attack_examples"]
        add("Figure 4 per-epoch attacks", 0, after=len(per_epoch_methods), examples=len(per_epoch_methods) * epochs * fig4,
            attack_hours=len(per_epoch_methods) * epochs * fig4 * attack_seconds(dataset, results, recipes[0])[0] / 3600)
        add("profiling, landscape, figures", 2 + 4)
        # Disk: what the retention rule keeps (floodx.config.kept_epochs), per seed; with
        # keep_checkpoints: chosen only the two chosen flood runs outlive the choice (floodx.retention).
        for seed in seeds:
            def checkpoints(run, window=()):
                kept = kept_epochs(config, run, window_levels=window, seed=seed)
                return epochs if kept is None else len(set(kept) | {epochs})   # the final one is always kept

            in_window = checkpoints(flood_run(9.99), window=["9.99"])           # a level inside the window
            outside = [flood_run(lv) for lv in grid][:len(grid) - (window if on_grid else 0)]
            kept_always = sum(checkpoints(m) for m in base) + 1                 # + the probe's final one
            flood = sum(checkpoints(run) for run in outside) + window * in_window
            before_choice += kept_always + flood
            # After the choice: at most two flood runs, each kept as a window run would be (an upper bound).
            end_checkpoints += kept_always + (min(flood, 2 * in_window) if prune else flood)
    hub_data = {ds["name"] for ds in config["datasets"].values() if ds["source"] == "huggingface"}
    fetches = 3 + (1 if config["model"]["source"] == "huggingface" else 0) + len(hub_data)
    fixed = fetches + 3 + 1 + bool(config["attacks"].get("calibrated"))   # tables 2, 3, search (, calibrated); page
    disk_end = end_checkpoints * size
    # The peak: every training finished before the first choice (a cluster that runs them all at once),
    # and one running job's newest checkpoint with its optimiser state.
    disk_peak = before_choice * size + size * (1 + OPTIMIZER_FACTOR)
    return {"rows": rows, "fixed_jobs": fixed, "sources": sources, "disk_end_gb": disk_end,
            "disk_peak_gb": disk_peak, "checkpoint_gb": size, "window_levels": window,
            "window_assumed": not config["search"]["max_levels"],
            "attacked_epoch": attacked_epoch(config), "grid_levels": len(grid)}


def local_wall_hours(rows, cores):
    """Wall-clock hours on one machine running `cores` one-thread jobs at a time (the rules' threads: 1):
    the job hours spread over the cores, assuming they can be kept busy (the probe's checkpoint delays the
    window runs, so a small run may take longer)."""
    return sum(r["gpu_hours"] + r["attack_hours"] for r in rows) / max(1, int(cores))


def summary(result, cores=None):
    rows = result["rows"]
    gpu = sum(r["gpu_hours"] for r in rows)
    grid = sum(r["gpu_hours"] for r in rows if r["stage"] == "train Flooding grid")
    grid += sum(r["attack_hours"] for r in rows if r["stage"] == "dev attacks (grid)")
    flooding_x = sum(r["gpu_hours"] + r["attack_hours"] for r in rows
                     if r["stage"] in ("probe + window", "train Flooding-X window", "dev attacks (window)"))
    return {
        "jobs": result["fixed_jobs"] + sum(r["jobs"] + r["jobs_after_checkpoints"] for r in rows),
        "jobs_before_checkpoints": result["fixed_jobs"] + sum(r["jobs"] for r in rows),
        "training_epochs": sum(r["epochs"] for r in rows),
        "attacked_examples": sum(r["examples"] for r in rows),
        "gpu_hours": gpu,
        "attack_hours": sum(r["attack_hours"] for r in rows),
        "disk_peak_gb": result["disk_peak_gb"],
        "disk_end_gb": result["disk_end_gb"],
        "flooding_grid_hours": grid,
        "flooding_x_search_hours": flooding_x,
        **({"local_wall_hours": local_wall_hours(rows, cores), "local_cores": int(cores)} if cores else {}),
    }


def report(result, cores=None):
    lines = [f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}"
             for name, value in summary(result, cores).items()]
    lines.append("")
    lines.append(f"{'data set':<10} {'stage':<32} {'jobs':>6} {'+after':>6} {'epochs':>7} {'GPU h':>9} "
                 f"{'examples':>9} {'attack h':>9}")
    for r in result["rows"]:
        lines.append(f"{r['dataset']:<10} {r['stage']:<32} {r['jobs']:>6} {r['jobs_after_checkpoints']:>6} "
                     f"{r['epochs']:>7} {r['gpu_hours']:>9.3g} {r['examples']:>9} {r['attack_hours']:>9.3g}")
    lines.append("")
    for dataset, src in result["sources"].items():
        lines.append(f"{dataset}: training times {src['training']}; attack times {src['attacks']}")
    lines.append(f"window: {result['window_levels']} levels per probe ("
                 + ("assumed" if result["window_assumed"] else "search.max_levels") + "); "
                 f"checkpoint {result['checkpoint_gb']} GB; '+after': jobs Snakemake lists only after its checkpoints")
    return "\n".join(lines)


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="*", default=[], help="config overlays, as given to Snakemake")
    parser.add_argument("--results", default="results", help="where measured times are looked for")
    parser.add_argument("--device-profile", help="a GPU check's JSON (make gpu-check): training times for that "
                        "device where this results folder has none")
    parser.add_argument("--cores", type=int, default=None,
                        help="also print local_wall_hours: the run on one machine with this many one-thread jobs at once")
    args = parser.parse_args(argv)
    for path in args.configfile:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such config file")
    print(report(plan(load(args.configfile), args.results, read_device_profile(args.device_profile)), args.cores))


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
