"""Table 3 measured fairly: every method trained for the same number of steps, back to back.

One job per data set. Every method starts from a fresh copy of the same starting weights, sees the
same batches (same order, same padding), uses the training loop's optimiser, schedule, clipping
and autocast (`floodx.training`), on the same device with the same batch size. The first
`warmup_steps` steps of each method are run but not timed (allocator, kernel selection, lazy
initialisation). Reported per method: seconds per step, seconds per epoch extrapolated to the
whole training set (ceil(num_train / batch_size) steps), and the ratio to fine-tuning.

    python -m floodx.profiling --spec JSON --data results/data/rt --out results/profile/rt/times.json \
        --resources resources --threads 1

Spec (built by the rule `profile_time`): ``{"dataset", "methods": [...], "steps", "seed",
"flood_level", "method_params": {...}, "base": <floodx.config.run_spec of fine-tune>}``; optional
``"warmup_steps"`` (default 2) and ``"num_train_examples"`` (extrapolate to another training-set
size, e.g. the full data set a slice was cut from). Instead of "base", "model" and "training" may
be given at the top level.
"""

import argparse
import copy
import math
import statistics
import tempfile
import time

import torch

from .config import parse_spec
from .errors import ConfigError, DataError, run_main
from .methods import build_method
from .provenance import provenance, write_json

# Methods that train with the Flooding code path (Flooding-X is Flooding at another level).
FLOODING_ALIASES = {"flooding_x": "flooding"}
DEFAULT_WARMUP_STEPS = 2


def _load_data(data_dir):
    from .data import load_meta, load_split

    return load_meta(data_dir), load_split(data_dir, "train")


def _training_api():
    """The training loop's own helpers, so that timing uses exactly its set-up."""
    from . import training

    return training


def timing_plan(methods):
    """[(reported name, registry name)] with fine-tune first (the reference of every ratio).

    Flooding-X is timed as Flooding (same code; the flood level does not change the cost): when
    both are asked for, Flooding is timed once and Flooding-X reports the same measurement.
    """
    plan = [("finetune", "finetune")]
    for name in methods:
        registry = FLOODING_ALIASES.get(name, name)
        if name == "finetune" or any(n == name for n, _ in plan):
            continue
        plan.append((name, registry))
    return plan


def _cycle_batches(make_epoch, count):
    """The first `count` batches of consecutive epochs (a small training set is cycled)."""
    batches, epoch = [], 1
    while len(batches) < count:
        epoch_batches = make_epoch(epoch)
        if not epoch_batches:
            raise DataError("the training split is empty")
        batches.extend(epoch_batches)
        epoch += 1
    return batches[:count]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_method(base_model, tokenizer, method_name, params, batches, training, total_steps, device,
                warmup_steps, seed, setup_batches=None):
    """Train a fresh copy of `base_model` with one method over `batches`; returns timings.

    Each step is `floodx.training.Optimisation.step`, the training loop's own step.
    """
    api = _training_api()
    torch.manual_seed(seed)  # same dropout / perturbation-initialisation stream for every method
    model = copy.deepcopy(base_model).to(device).train()
    method = build_method(method_name, **params)
    started = time.perf_counter()
    method.setup(model, tokenizer, setup_batches if setup_batches is not None else batches)
    setup_seconds = time.perf_counter() - started
    optimisation = api.Optimisation(model, method, training, total_steps, device)
    per_step = []
    losses = []
    timed_start = None
    for i, batch in enumerate(batches):
        if i == warmup_steps:
            _sync(device)
            timed_start = time.perf_counter()
        step_start = time.perf_counter()
        losses.append(optimisation.step(api.to_device(batch, device)))
        if device.type != "cuda" and i >= warmup_steps:
            per_step.append(time.perf_counter() - step_start)
    _sync(device)
    timed_steps = len(batches) - warmup_steps
    total = time.perf_counter() - timed_start
    final_loss = torch.stack(losses).float().cpu().tolist()
    del model, optimisation
    if device.type == "cuda":
        torch.cuda.empty_cache()
    out = {
        "seconds_per_step": total / timed_steps,
        "steps": timed_steps,
        "warmup_steps": warmup_steps,
        "timed_seconds": total,
        "setup_seconds": setup_seconds,
        "passes_per_step": method.passes_per_step,
        "method_params": method.describe()["params"],
        "train_losses": final_loss,
    }
    if per_step:  # CPU: every step timed on its own (robust to other jobs' interference)
        out["seconds_per_step_median"] = statistics.median(per_step)
    return out


def profile_methods(base_model, tokenizer, examples, methods, training, device, steps,
                    warmup_steps=DEFAULT_WARMUP_STEPS, seed=0, method_params=None, flood_level=0.1,
                    num_train_examples=None, epochs=None):
    """Time every method in `methods` (fine-tune is always timed: it is the reference).

    Returns {"methods": {name: {...}}, "batch_size", "steps_per_epoch", "num_train_examples"}.
    """
    if steps < 1:
        raise ConfigError(f"profiling.steps must be >= 1, got {steps}")
    warmup_steps = max(0, int(warmup_steps))
    api = _training_api()
    method_params = method_params or {}
    batch_size = int(training["batch_size"])
    max_length = int(training["max_length"])
    group = training.get("group_by_length", True)  # as in training
    def epoch_batches(epoch):
        return api.make_loader(examples, tokenizer, batch_size, max_length, True, seed, epoch, group)

    batches = _cycle_batches(epoch_batches, warmup_steps + steps)
    setup_batches = epoch_batches(1)  # what Trainer.run hands to method.setup: the first epoch
    num_train = int(num_train_examples or len(examples))
    steps_per_epoch = math.ceil(num_train / batch_size)
    total_steps = steps_per_epoch * int(epochs or training.get("epochs", 1))
    # One untimed fine-tune warm-up for the whole process (lazy imports, allocator, kernel
    # selection), so that the first method timed is not penalised for being first.
    time_method(base_model, tokenizer, "finetune", dict(method_params.get("finetune", {})),
                batches[:max(1, warmup_steps)], training, total_steps, device, 0, seed, setup_batches)
    results = {}
    for name, registry in timing_plan(methods):
        if registry == "flooding" and "flooding" in results:
            results[name] = {**results["flooding"], "timed_as": "flooding"}
            continue
        params = dict(method_params.get(registry, {}))
        if registry == "flooding":
            params.setdefault("flood_level", flood_level)
        record = time_method(base_model, tokenizer, registry, params, batches, training, total_steps,
                             device, warmup_steps, seed, setup_batches)
        record["timed_as"] = registry
        results[name] = record
    reference = results["finetune"]["seconds_per_step"]
    for name, record in results.items():
        record["steps_per_epoch"] = steps_per_epoch
        record["seconds_per_epoch"] = record["seconds_per_step"] * steps_per_epoch
        record["ratio_to_finetune"] = record["seconds_per_step"] / reference
    ordered = {name: results[name] for name in ["finetune"] + [m for m in methods if m != "finetune"]}
    return {"methods": ordered, "batch_size": batch_size, "max_length": max_length,
            "steps_per_epoch": steps_per_epoch, "num_train_examples": num_train}


def _spec_parts(spec):
    base = spec.get("base", {})
    model_spec = spec.get("model", base.get("model"))
    training = spec.get("training", base.get("training"))
    if model_spec is None or training is None:
        raise ConfigError("profiling spec needs 'base' (a run spec) or 'model' and 'training'")
    if "max_length" not in training:
        raise ConfigError("profiling spec: training.max_length missing (floodx.config.dataset_training sets it)")
    return model_spec, training, spec.get("resources", base.get("resources", "resources"))


def profile(spec, data_dir, device=None, resources=None):
    """Run the whole profiling job of one data set; returns the content of times.json."""
    from .devices import select_device
    from .models import build_model
    from .seeding import set_seed

    device = device or select_device()
    model_spec, training, spec_resources = _spec_parts(spec)
    resources = resources or spec_resources
    seed = int(spec.get("seed", 0))
    methods = list(spec.get("methods") or ["finetune"])
    meta, train = _load_data(data_dir)
    set_seed(seed)
    with tempfile.TemporaryDirectory(prefix="floodx-profile-") as work_dir:
        base_model, tokenizer = build_model(model_spec, int(meta["num_labels"]), resources, work_dir)
    result = profile_methods(
        base_model, tokenizer, train, methods, training, device, int(spec.get("steps", 50)),
        spec.get("warmup_steps", DEFAULT_WARMUP_STEPS), seed, spec.get("method_params", {}),
        float(spec.get("flood_level", 0.1)), spec.get("num_train_examples"), training.get("epochs"))
    from .provenance import device_description

    result.update({"dataset": spec.get("dataset", meta.get("dataset")), "device": device_description(),
                   "torch_device": str(device), "timed_with": "floodx.training.make_optimizer/make_loader",
                   "provenance": provenance(spec=spec, seed=seed, resources=str(resources))})
    return result


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.profiling", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON profiling spec (built by the Snakefile)")
    parser.add_argument("--data", required=True, help="prepared data set folder")
    parser.add_argument("--out", required=True, help="times.json to write")
    parser.add_argument("--resources", default=None, help="resources folder (starting weights)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    spec = parse_spec(args.spec)
    from .devices import select_device

    device = select_device(args.threads)
    result = profile(spec, args.data, device, args.resources)
    write_json(args.out, result)
    for name, rec in result["methods"].items():
        print(f"{name:12s} {rec['seconds_per_step']:.4f} s/step  x{rec['ratio_to_finetune']:.2f}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
