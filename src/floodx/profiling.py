"""Table 3 measured fairly: every method trained for the same steps, interleaved step by step.

One job per data set. Every method starts from a fresh copy of the same starting weights (same
seed, own RNG stream), sees the same batches and uses the training loop's own step
(`floodx.training.Optimisation`). All copies are built first and live at once (one model +
optimiser state per timed method: 6 MiniLM copies on CPU for the 7 methods, Flooding-X being
timed as Flooding). Each round then runs one step of every method, in an order that reverses
every round and turns every two (`round_order`), so that load from other jobs hits all methods
alike. The first `warmup_steps` rounds are not timed; each later step is timed on its own (CUDA
synchronised around it). Reported per method: the median seconds per step (also the mean and
every step's time), seconds per epoch (times ceil(num_train / batch_size)), and the ratio of
medians to fine-tuning's.

    python -m floodx.profiling --spec JSON --data results/data/rt --out results/profile/rt/times.json --threads 2

Spec (`floodx.config.profile_spec`): ``{"dataset", "methods": [...], "steps", "seed",
"flood_level", "method_params": {...}, "base": <floodx.config.run_spec of fine-tune>}``; optional
``"warmup_steps"`` (default 2) and ``"num_train_examples"`` (extrapolate to another training-set
size, e.g. the full data set a slice was cut from).
"""

import copy
import math
import statistics
import tempfile
import time

import torch

from .config import job_arguments, parse_spec
from .errors import ConfigError, DataError, run_main
from .methods import build_method
from .files import write_json
from .provenance import provenance

# Methods timed through another one's code path: Flooding-X is Flooding at another level; AdaFlood's step is
# iFlood's (a per-example flood) with a looked-up level per example (its auxiliary trainings are costed apart).
FLOODING_ALIASES = {"flooding_x": "flooding", "adaflood": "iflood"}
DEFAULT_WARMUP_STEPS = 2
_clock = time.perf_counter  # replaced by a fake clock in tests


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


def round_order(names, round_index):
    """The order of the methods' steps in round `round_index` of the round-robin schedule.

    Every other round runs backwards, and the order turns by one place every two rounds, so that
    each method runs first (and last) equally often and follows different methods.
    """
    shift = (round_index // 2) % len(names)
    order = list(names[shift:]) + list(names[:shift])
    return order[::-1] if round_index % 2 else order


class _Runner:
    """One method's own copy of the starting model, its `Optimisation` and its RNG stream."""

    def __init__(self, api, base_model, tokenizer, registry, params, setup_batches, training,
                 total_steps, device, seed):
        torch.manual_seed(seed)  # same dropout / perturbation-initialisation stream for every method
        self.model = copy.deepcopy(base_model).to(device).train()
        self.method = build_method(registry, **params)
        started = _clock()
        self.method.setup(self.model, tokenizer, setup_batches)
        self.setup_seconds = _clock() - started
        self.optimisation = api.Optimisation(self.model, self.method, training, total_steps, device)
        self.device = device
        self.rng = self._rng_state()  # resumed at each of its steps: steps of other methods in between
        self.losses, self.step_seconds = [], []

    def _rng_state(self):
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def step(self, api, batch, timed):
        cpu, cuda = self.rng
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, self.device)
        _sync(self.device)
        started = _clock()
        loss = self.optimisation.step(api.to_device(batch, self.device))
        _sync(self.device)
        seconds = _clock() - started
        self.rng = self._rng_state()
        self.losses.append(loss.detach())
        if timed:
            self.step_seconds.append(seconds)


def profile_methods(base_model, tokenizer, examples, methods, training, device, steps,
                    warmup_steps=DEFAULT_WARMUP_STEPS, seed=0, method_params=None, flood_level=0.1,
                    num_train_examples=None, epochs=None):
    """Time every method in `methods` (fine-tune is always timed: it is the reference).

    All methods' copies are built first and live at once; then `warmup_steps` untimed and `steps`
    timed rounds each run one step of every method in `round_order`. Each step is
    `floodx.training.Optimisation.step`, the training loop's own step, timed on its own.

    Returns {"methods": {name: {...}}, "schedule", "batch_size", "steps_per_epoch", ...}.
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
    runners, timed_as = {}, {}  # runners by registry name; reported name -> registry name
    for name, registry in timing_plan(methods):
        timed_as[name] = registry
        if registry in runners:
            continue
        params = dict(method_params.get(registry, {}))
        if registry in ("flooding", "iflood") and not isinstance(params.get("flood_level"), (int, float)):
            params["flood_level"] = flood_level     # (the level does not change the cost; iFlood may follow Flooding)
        runners[registry] = _Runner(api, base_model, tokenizer, registry, params, setup_batches, training,
                                    total_steps, device, seed)
    order = list(runners)
    for round_index, batch in enumerate(batches):
        for registry in round_order(order, round_index):
            runners[registry].step(api, batch, timed=round_index >= warmup_steps)
    records = {}
    for registry, runner in runners.items():
        median = statistics.median(runner.step_seconds)
        records[registry] = {
            "seconds_per_step": median,
            "seconds_per_step_mean": statistics.fmean(runner.step_seconds),
            "step_seconds": runner.step_seconds,
            "steps": steps,
            "warmup_steps": warmup_steps,
            "timed_seconds": sum(runner.step_seconds),
            "setup_seconds": runner.setup_seconds,
            "passes_per_step": runner.method.passes_per_step,
            "method_params": runner.method.describe()["params"],
            "train_losses": torch.stack(runner.losses).float().cpu().tolist(),
            "steps_per_epoch": steps_per_epoch,
            "seconds_per_epoch": median * steps_per_epoch,
        }
    del runners
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reference = records["finetune"]["seconds_per_step"]
    ordered = {}
    for name in ["finetune"] + [m for m in methods if m != "finetune"]:
        record = records[timed_as[name]]
        ordered[name] = {**record, "timed_as": timed_as[name],
                         "ratio_to_finetune": record["seconds_per_step"] / reference}
    return {"methods": ordered, "schedule": "round_robin", "batch_size": batch_size,
            "max_length": max_length, "steps_per_epoch": steps_per_epoch, "num_train_examples": num_train}


def _spec_parts(spec):
    """(model, training, resources) of the fine-tuning run every method is timed on (`base`)."""
    base = spec.get("base")
    missing = [key for key in ("model", "training", "resources") if not isinstance(base, dict) or key not in base]
    if missing:
        raise ConfigError(f"profiling spec: base.{missing[0]} missing (floodx.config.profile_spec builds it)")
    if "max_length" not in base["training"]:
        raise ConfigError("profiling spec: base.training.max_length missing (floodx.config.dataset_training sets it)")
    return base["model"], base["training"], base["resources"]


def profile(spec, data_dir, device=None):
    """Run the whole profiling job of one data set; returns the content of times.json."""
    from .devices import select_device
    from .models import build_model
    from .seeding import set_seed

    device = device or select_device()
    model_spec, training, resources = _spec_parts(spec)
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
    args = job_arguments("python -m floodx.profiling", __doc__.splitlines()[0], "times.json to write").parse_args(argv)
    spec = parse_spec(args.spec)
    from .devices import select_device

    device = select_device(args.threads)
    result = profile(spec, args.data, device)
    write_json(args.out, result)
    for name, rec in result["methods"].items():
        print(f"{name:12s} {rec['seconds_per_step']:.4f} s/step  x{rec['ratio_to_finetune']:.2f}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
