"""The one training loop every method shares.

BERT-style fine-tuning: AdamW (no decay on biases and LayerNorm), linear warm-up then linear
decay, gradient clipping, dynamic padding. A method object decides the passes of each step
(`floodx.methods`). After every epoch: a `save_pretrained` checkpoint and the epoch's metrics;
an interrupted run resumes from its last finished epoch and ends with the same model as an
uninterrupted one (data order is a function of seed and epoch; RNG and optimiser states are
checkpointed). A callback may end training early (`StepState.stop`, the accordance probe).

Retention (`keep_epochs` in the run spec, from `training.keep_checkpoints`): only the checkpoints
that are read later survive: the listed epochs and the final one, or all with `keep_epochs: null`
(with `keep_checkpoints: chosen`, floodx.retention later removes the unchosen flood runs' weights).
The optimiser state lives only in the newest checkpoint while training, and is dropped when the
run finishes (what remains of `trainer_state.pt` is the method's own small state).
"""

import math
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from . import data as data_module
from .config import job_arguments, parse_spec
from .devices import select_device
from .errors import run_main
from .methods import build_method
from .models import build_model
from .files import read_json, write_json
from .provenance import provenance
from .precision import autocast_for, precision_name
from .seeding import set_seed

STATE_FILE = "trainer_state.pt"


# ---------------------------------------------------------------- batches
class Collator:
    """Tokenises a list of examples and pads to the longest one in the batch."""

    def __init__(self, tokenizer, max_length, with_ids=False):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.with_ids = with_ids    # each example's idx as batch["idx"] (a method that looks examples up)

    def __call__(self, examples):
        texts = [ex["text"] for ex in examples]
        pairs = [ex.get("text_pair") for ex in examples]
        encoded = self.tokenizer(
            texts, pairs if any(p is not None for p in pairs) else None,
            padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt",
        )
        batch = dict(encoded)
        batch["labels"] = torch.tensor([int(ex["label"]) for ex in examples])
        if self.with_ids:
            batch["idx"] = torch.tensor([int(ex["idx"]) for ex in examples])
        return batch


def batch_order(num_examples, batch_size, seed, epoch, shuffle=True, lengths=None, group=50):
    """Indices of each batch for one epoch: a pure function of (seed, epoch).

    With `lengths`, examples are sorted by length inside pools of `group` batches, so a batch
    holds texts of similar length (less padding on GPUs) while the pool order stays random.
    """
    if shuffle:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(num_examples, generator=generator).tolist()
    else:
        order = list(range(num_examples))
    if lengths is not None:
        pool = batch_size * group
        order = [i for start in range(0, len(order), pool)
                 for i in sorted(order[start:start + pool], key=lambda j: lengths[j])]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle and lengths is not None:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch + 1)
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def make_loader(examples, tokenizer, batch_size, max_length, shuffle=False, seed=0, epoch=0,
                group_by_length=False, with_ids=False):
    """A list of tokenised batches (CPU tensors) for one pass over `examples`."""
    collate = Collator(tokenizer, max_length, with_ids)
    lengths = [len(ex["text"]) + len(ex.get("text_pair") or "") for ex in examples] if group_by_length else None
    return [collate([examples[i] for i in idx])
            for idx in batch_order(len(examples), batch_size, seed, epoch, shuffle, lengths)]


def to_device(batch, device):
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


# ---------------------------------------------------------------- optimiser
def make_optimizer(model, training, total_steps, extra_parameters=()):
    """AdamW + linear warm-up/decay as in BERT fine-tuning.

    The fused AdamW kernel (CPU and CUDA) updates in one pass: on one CPU thread its step over
    MiniLM's 23M parameters (half of them the word embeddings) takes 15 ms against 128 ms for the
    per-tensor loop, about a seventh of a fine-tuning step; the updates agree within 1e-6 (tests)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": training.get("weight_decay", 0.01)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    extra = [p for p in extra_parameters if p.requires_grad]
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0})
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32
                for group in groups for p in group["params"])
    optimizer = torch.optim.AdamW(groups, lr=training["learning_rate"], fused=fused or None)
    warmup = int(round(training.get("warmup_ratio", 0.1) * total_steps))

    def factor(step):
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer, scheduler


@torch.no_grad()
def evaluate(model, batches, device, autocast=nullcontext, predictions=False):
    """Mean loss and accuracy; sums stay on the device (one host sync at the end). With
    `predictions`, also the predicted labels in batch order (a device tensor)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count, predicted = 0, []
    for batch in batches:
        batch = to_device(batch, device)
        labels = batch.pop("labels")
        with autocast():
            logits = model(**batch).logits.float()
        loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
        correct += (logits.argmax(-1) == labels).sum()
        count += len(labels)
        if predictions:
            predicted.append(logits.argmax(-1))
    model.train(was_training)
    out = {"loss": (loss_sum / max(count, 1)).item(), "acc": (correct.float() / max(count, 1)).item()}
    if predictions:
        out["predictions"] = torch.cat(predicted) if predicted else torch.zeros(0, dtype=torch.long)
    return out


# ---------------------------------------------------------------- the loop
class Optimisation:
    """One optimisation step of any method: the only place that steps an optimiser.

    Shared by training, time profiling and benchmarks, so that what is timed is what trains.
    """

    def __init__(self, model, method, training, total_steps, device):
        self.model, self.method = model, method
        self.optimizer, self.scheduler = make_optimizer(model, training, total_steps, method.extra_parameters())
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.max_grad_norm = training.get("max_grad_norm")
        self.autocast = autocast_for(device, training.get("bf16", "auto"))

    def step(self, batch):
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.method.step(self.model, batch)
        if self.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        return loss


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress lines of a long job (its log is all a user sees while it runs): a line within an
    epoch every `every` seconds and one per epoch, each with loss, examples/s and an ETA."""

    def __init__(self, name, total_steps, done_steps=0, every=30.0):
        self.name, self.total, self.done, self.every = name, total_steps, done_steps, every
        self.started = self.last = time.perf_counter()
        self.done_at_start, self.examples = done_steps, 0

    def _rate(self):
        elapsed = time.perf_counter() - self.started
        steps = self.done - self.done_at_start
        eta = (self.total - self.done) * elapsed / steps if steps else float("nan")
        return self.examples / elapsed if elapsed else 0.0, eta

    def step(self, epoch, epochs, step, steps, loss, examples):
        self.done += 1
        self.examples += examples
        if time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            rate, eta = self._rate()
            print(f"{self.name}: epoch {epoch}/{epochs}, step {step}/{steps}: loss {float(loss):.4f}, "
                  f"{rate:.1f} examples/s, ETA {_clock(eta)}", flush=True)

    def summary(self):
        """', N examples/s, ETA h:mm:ss' for the epoch line."""
        self.last = time.perf_counter()
        rate, eta = self._rate()
        return f"{rate:.1f} examples/s, ETA {_clock(eta) if eta == eta else '?'}"


class StepState:
    """What a callback sees after each optimisation step."""

    def __init__(self, trainer):
        self._trainer = trainer
        self.model = trainer.model
        self.method = trainer.method
        self.global_step = 0
        self.epoch = 0
        self.loss = None
        self.batch = None
        self.stop = False        # a callback sets it to end training after this step

    def evaluate(self, split):
        return self._trainer.evaluate_split(split)


class Trainer:
    def __init__(self, spec, data_dir, out_dir, device=None):
        self.spec = spec
        self.data_dir = Path(data_dir)
        self.out_dir = Path(out_dir)
        self.training = spec["training"]
        self.seed = int(spec["seed"])
        self.device = device or select_device()
        self.autocast = autocast_for(self.device, self.training.get("bf16", "auto"))
        self.meta = data_module.load_meta(self.data_dir)
        self.splits = {s: data_module.load_split(self.data_dir, s) for s in ("train", "dev", "test")}
        self._eval_cache = {}

    def evaluate_split(self, split, autocast=None, predictions=False):
        if split not in self._eval_cache:
            # Sorted by length, so evaluation batches carry little padding.
            self._eval_cache[split] = make_loader(
                self.splits[split], self.tokenizer, self.training.get("eval_batch_size", 32),
                self.training["max_length"], group_by_length=True)
        return evaluate(self.model, self._eval_cache[split], self.device, autocast or self.autocast, predictions)

    def evaluate_epoch(self, attacked):
        """Dev (and, for a checkpoint the attacks read, test) loss and accuracy of this epoch's model.

        Always in fp32, whatever the training precision: the attacks query in fp32 and take Clean%
        from here, so one evaluation serves both (under bf16 training a second, bf16 evaluation of
        the same checkpoint once cost as much as the epoch's steps). The test split is evaluated only
        where something reads it (`attacked`: kept or final epochs); every epoch gets dev figures."""
        record = {}
        for split in ("dev", "test") if attacked else ("dev",):
            result = self.evaluate_split(split, autocast=nullcontext)
            record.update({f"{split}_loss": result["loss"], f"{split}_acc": result["acc"]})
        return record

    def checkpoint_dir(self, epoch):
        return self.out_dir / "checkpoints" / f"epoch-{epoch}"

    def finished(self, records):
        """True when progress.json says the run is complete (all epochs, or stopped early)."""
        return bool(records) and (records[-1]["epoch"] >= int(self.training["epochs"])
                                  or records[-1].get("stopped_early", False))

    def last_finished_epoch(self):
        progress = self.out_dir / "progress.json"
        if not progress.exists():
            return 0, []
        saved = read_json(progress)
        if saved.get("spec", self.spec) != self.spec:    # another setting: train afresh
            shutil.rmtree(self.out_dir / "checkpoints", ignore_errors=True)
            return 0, []
        records = saved["epochs"]
        epoch = records[-1]["epoch"] if records else 0
        if epoch and not (self.checkpoint_dir(epoch) / STATE_FILE).exists():
            return 0, []
        return epoch, records

    def run(self, callbacks=()):
        set_seed(self.seed)
        spec, training = self.spec, self.training
        num_labels = self.meta["num_labels"]
        start_epoch, records = self.last_finished_epoch()
        self.method = build_method(spec["method"], **spec.get("method_params", {}))
        if self.finished(records):       # nothing left to train (e.g. metrics.json was deleted)
            return self._finish(records)
        self.model, self.tokenizer = build_model(
            spec["model"], num_labels, spec.get("resources", "resources"), self.out_dir)
        if start_epoch:
            print(f"{spec.get('run') or spec['method']}: resuming after epoch {start_epoch} "
                  f"(checkpoints/epoch-{start_epoch})", flush=True)
            saved = records[-1].get("training_precision")
            if saved not in (None, precision_name(self.autocast)):
                print(f"{spec.get('run') or spec['method']}: warning: epochs up to {start_epoch} trained in {saved}, "
                      f"the rest train in {precision_name(self.autocast)} (training.bf16: "
                      f"{training.get('bf16', 'auto')} on {self.device.type}); metrics.json records "
                      f"training_precision bf16+fp32", flush=True)
            # The weights of the last finished epoch; the tokenizer stays the starting model's, so
            # that checkpoints saved after a resume are byte for byte those of an unbroken run.
            self.model, _ = build_model(
                {"source": "huggingface", "name_or_path": str(self.checkpoint_dir(start_epoch))},
                num_labels, spec.get("resources", "resources"), self.out_dir)
        self.model.to(self.device).train()

        train = self.splits["train"]
        batch_size = training["batch_size"]
        steps_per_epoch = math.ceil(len(train) / batch_size)
        epochs = int(training["epochs"])
        with_ids = getattr(self.method, "needs_example_ids", False)
        first_loader = make_loader(train, self.tokenizer, batch_size, training["max_length"], True, self.seed, 1,
                                   training.get("group_by_length", True), with_ids)
        self.method.setup(self.model, self.tokenizer, first_loader)
        optimisation = Optimisation(self.model, self.method, training, steps_per_epoch * epochs, self.device)
        optimizer, scheduler = optimisation.optimizer, optimisation.scheduler
        if start_epoch:
            self._restore(start_epoch, optimizer, scheduler)

        state = StepState(self)
        state.global_step = start_epoch * steps_per_epoch
        progress = Progress(spec.get("run") or spec["method"], steps_per_epoch * epochs, state.global_step)
        for epoch in range(start_epoch + 1, epochs + 1):
            loader = first_loader if epoch == 1 else make_loader(
                train, self.tokenizer, batch_size, training["max_length"], True, self.seed, epoch,
                training.get("group_by_length", True), with_ids)
            started = time.perf_counter()
            losses = []
            state.epoch = epoch
            for batch in loader:
                batch = to_device(batch, self.device)
                loss = optimisation.step(batch)
                losses.append(loss)
                progress.step(epoch, epochs, len(losses), steps_per_epoch, loss, len(batch["labels"]))
                state.global_step += 1
                state.loss, state.batch = loss, batch
                for callback in callbacks:
                    callback.on_step_end(state)
                if state.stop:
                    break
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            per_batch = torch.stack(losses).float().cpu().tolist()
            evaluated = self.evaluate_epoch(attacked=self.keeps(epoch) or epoch == epochs or state.stop)
            records.append({
                "epoch": epoch, "train_loss_mean": sum(per_batch) / len(per_batch),
                "train_loss_per_batch": per_batch, **evaluated, "seconds": seconds,
                "steps": len(losses), "training_precision": precision_name(self.autocast),
                **self.method.epoch_log(),
            })
            if state.stop:
                records[-1]["stopped_early"] = True
            self._save(epoch, optimizer, scheduler, records)
            print(f"{spec.get('run')}: epoch {epoch}/{epochs}: train loss {records[-1]['train_loss_mean']:.4f}, "
                  f"dev loss {evaluated['dev_loss']:.4f}, dev acc {evaluated['dev_acc']:.4f} "
                  f"({seconds:.0f} s; {progress.summary()})",
                  flush=True)
            if state.stop:
                break
        return self._finish(records)

    def _save(self, epoch, optimizer, scheduler, records):
        target = self.checkpoint_dir(epoch)
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        torch.save({
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "method": self.method.state_dict(),
            "extra_parameters": [p.detach().cpu() for p in self.method.extra_parameters()],
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }, tmp / STATE_FILE)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        write_json(self.out_dir / "progress.json", {"epochs": records, "spec": self.spec})
        # Optimiser state is only needed to resume from the newest epoch.
        previous = self.checkpoint_dir(epoch - 1)
        if (previous / STATE_FILE).exists():
            (previous / STATE_FILE).unlink()
        if not self.keeps(epoch - 1) and previous.exists():
            shutil.rmtree(previous)

    def keeps(self, epoch):
        """Whether the checkpoint of a finished, non-final `epoch` is kept (run spec `keep_epochs`)."""
        keep = self.spec.get("keep_epochs", [])
        return keep is None or epoch in keep

    def _release_state(self, epoch):
        """Drop optimiser, scheduler and RNG states of a finished run; keep the method's own state."""
        path = self.checkpoint_dir(epoch) / STATE_FILE
        if not path.exists():
            return
        state = torch.load(path, map_location="cpu", weights_only=False)
        if "optimizer" not in state:
            return
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"method": state.get("method", {}), "finished": True}, tmp)
        tmp.replace(path)

    def _restore(self, epoch, optimizer, scheduler):
        # On the CPU whatever device saved it: a run trained on a GPU resumes or finishes on a CPU-only host
        # (the optimiser's load_state_dict moves its state to the parameters' device).
        state = torch.load(self.checkpoint_dir(epoch) / STATE_FILE, map_location="cpu", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        with torch.no_grad():
            for param, saved in zip(self.method.extra_parameters(), state["extra_parameters"]):
                param.copy_(saved)
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])

    def _finish(self, records):
        epochs = records[-1]["epoch"]
        self._release_state(epochs)
        result = {
            "dataset": self.spec.get("dataset"), "run": self.spec.get("run"),
            "method": self.spec["method"], "method_params": self.method.describe()["params"],
            "passes_per_step": self.method.passes_per_step, "seed": self.seed,
            "epochs": records, "final_checkpoint": f"checkpoints/epoch-{epochs}",
            "epochs_planned": int(self.training["epochs"]),
            "stopped_early": bool(records[-1].get("stopped_early", False)),
            "checkpoints_kept": sorted(int(p.name.split("-")[1]) for p in (self.out_dir / "checkpoints").glob("epoch-*")
                                       if p.name.split("-")[1].isdigit()),
            "num_train_examples": len(self.splits["train"]),
            # What the recorded accuracies were computed in: fp32 (evaluate_epoch), except records written
            # before 2026-12-01 under bf16 (they carry `{split}_acc_fp32` beside their bf16 `{split}_acc`).
            "evaluation_precision": "bf16" if any("test_acc_fp32" in r for r in records) else "fp32",
            "training_precision": training_precision(records, precision_name(self.autocast)),
            "deviations": self.meta.get("deviations", []),
            "provenance": provenance(spec=self.spec, seed=self.seed),
        }
        write_json(self.out_dir / "metrics.json", result)
        return result


def training_precision(records, current):
    """The precision a run's epochs trained in: 'bf16', 'fp32', or 'bf16+fp32' for a run resumed on a
    machine that resolves `training.bf16: auto` otherwise; epochs recorded before 2026-12-02 name none
    ('unrecorded'); a run with no epoch record trained in `current`."""
    return "+".join(sorted({r.get("training_precision", "unrecorded") for r in records} or {current}))


def train(spec, data_dir, out_dir, callbacks=(), device=None):
    """Train one run described by `spec` (see floodx.config.run_spec); returns metrics.json's content."""
    return Trainer(spec, data_dir, out_dir, device).run(callbacks)


def _main(argv=None):
    args = job_arguments("python -m floodx.training", __doc__.splitlines()[0],
                         "run folder (checkpoints/, metrics.json)").parse_args(argv)
    spec = parse_spec(args.spec)
    device = select_device(args.threads)
    result = train(spec, args.data, args.out, device=device)
    last = result["epochs"][-1]
    print(f"{spec.get('run')}: dev acc {last['dev_acc']:.4f}, test acc {last['test_acc']:.4f}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
