"""The probe's cost beside fine-tuning (`make bench`, section `probe`): epoch time and peak memory.

Probe and fine-tuning steps are interleaved over the same synthetic batches of a model shaped like
all-MiniLM-L6-v2; peak memory is measured in a child process per method.
"""

import time

import torch

from ..training import Optimisation, to_device


def _minilm_shaped(num_labels=2):
    """A randomly initialised BERT with all-MiniLM-L6-v2's shape (22.7M parameters)."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512, num_labels=num_labels)
    return BertForSequenceClassification(config)


def _synthetic_batches(n_batches, batch_size, length, num_labels, vocab_size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_batches):
        lengths = torch.randint(length // 2, length + 1, (batch_size,), generator=generator)
        ids = torch.randint(1000, vocab_size, (batch_size, length), generator=generator)
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        batches.append({
            "input_ids": ids * mask, "attention_mask": mask,
            "token_type_ids": torch.zeros_like(ids),
            "labels": torch.randint(0, num_labels, (batch_size,), generator=generator),
        })
    return batches


def _status_bytes(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def _peak_rss_child(conn, model, batches, name, params, training, threads):
    """In a fresh process: growth of peak resident memory (bytes) over setup + training steps.

    The peak (VmHWM) is reset after the model has arrived (Linux `clear_refs` 5), so the
    unpickling of the model does not set it.
    """
    import gc

    torch.set_num_threads(threads)
    from ..methods import build_method

    value = None
    try:
        method = build_method(name, **params)
        gc.collect()
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        start = _status_bytes("VmRSS")
        method.setup(model, None, batches)
        stepper = Optimisation(model, method, training, len(batches), torch.device("cpu"))
        for batch in batches:
            stepper.step(batch)
        value = _status_bytes("VmHWM") - start
    except OSError:
        value = None
    conn.send(value)
    conn.close()


def _peak_rss(model, batches, name, params, training):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_peak_rss_child,
                            args=(send, model, batches, name, params, training, torch.get_num_threads()))
    child.start()
    send.close()
    try:
        value = receive.recv()
    except EOFError:
        value = None
    child.join()
    return value


def bench_probe(model=None, tokenizer=None, batches=None, training=None, rounds=3, device=None,
                sub_epoch_batches=4, measure_memory=True):
    """Probe vs fine-tuning, side by side in one process over the same batches and model.

    Each method trains its own copy of `model` through the loop's optimisation step. The two
    are interleaved step by step (fine-tune, probe on batch 1; probe, fine-tune on batch 2; ...)
    so that the drift of a shared, noisy machine hits both alike; an epoch's time is the sum of
    its steps, and the median epoch times are compared. The probe closes a sub-epoch every
    `sub_epoch_batches` steps (inside its timed steps). Dev/test evaluation at sub-epoch ends
    (probe run only) is not part of the epoch time.
    Without arguments: a MiniLM-shaped random BERT (P = 22.7M) and 8 synthetic batches of
    32 x 64 tokens, 2 classes. Returns
      probe_over_finetune_epoch_time   (target <= 1.15)
      probe_extra_memory_in_P          floats the probe allocates beyond fine-tuning's gradient,
                                       counted, / P (target <= k+2)
      probe_extra_memory_measured_in_P the same measured (with `measure_memory`): on CUDA the
                                       peak allocated memory of a probe step minus that of a
                                       fine-tuning step; on CPUs the peak resident memory of a
                                       fresh process running setup + 2 probe steps minus that of
                                       one running 2 fine-tuning steps (the probe's smaller
                                       sub-batch activations make this a little lower)
      probe_num_labels, probe_parameters_P, probe_epoch_seconds, finetune_epoch_seconds
    """
    import copy
    import statistics

    from ..methods import build_method

    device = device or torch.device("cpu")
    training = dict(training or {"learning_rate": 5e-5, "warmup_ratio": 0.1, "weight_decay": 0.01,
                                 "max_grad_norm": 1.0, "bf16": "auto"})
    if model is None:
        torch.manual_seed(0)
        model = _minilm_shaped()
    num_labels = int(model.config.num_labels)
    if batches is None:
        batches = _synthetic_batches(8, 32, 64, num_labels, model.config.vocab_size)
    batches = [to_device(b, device) for b in batches]
    total_steps = len(batches) * (rounds + 1)
    runners, methods = {}, {}
    kinds = {"finetune": ("finetune", {}),
             "probe": ("accordance_probe", {"sub_epoch_batches": sub_epoch_batches})}
    resident = {}
    if measure_memory and device.type == "cpu":
        cpu_batches = [to_device(b, torch.device("cpu")) for b in batches[:2]]
        for label, (name, params) in kinds.items():
            resident[label] = _peak_rss(copy.deepcopy(model).cpu().train(), cpu_batches, name, params, training)
    for label, (name, params) in kinds.items():
        torch.manual_seed(0)
        copy_ = copy.deepcopy(model).to(device).train()
        method = build_method(name, **params)
        method.setup(copy_, tokenizer, batches)
        methods[label] = method
        runners[label] = Optimisation(copy_, method, training, total_steps, device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed_step(label, batch):
        sync()
        started = time.perf_counter()
        runners[label].step(batch)
        method = methods[label]
        if getattr(method, "sub_epoch_complete", False):
            method.pop_sub_epoch()
        sync()
        return time.perf_counter() - started

    peaks = {}
    for label in runners:           # warm-up step, not timed (and the CUDA peak of one step)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        timed_step(label, batches[0])
        if device.type == "cuda":
            peaks[label] = torch.cuda.max_memory_allocated(device) - base
    times = {label: [] for label in runners}
    order = list(runners)
    for _ in range(rounds):
        epoch = {label: 0.0 for label in runners}
        for index, batch in enumerate(batches):
            for label in (order if index % 2 == 0 else order[::-1]):
                epoch[label] += timed_step(label, batch)
        for label in runners:
            times[label].append(epoch[label])
    probe = methods["probe"]
    params = probe.parameter_count()
    medians = {label: statistics.median(values) for label, values in times.items()}
    out = {
        "probe_over_finetune_epoch_time": medians["probe"] / medians["finetune"],
        "probe_extra_memory_in_P": probe.extra_floats() / params,
    }
    if measure_memory and device.type == "cuda":
        out["probe_extra_memory_measured_in_P"] = (peaks["probe"] - peaks["finetune"]) / (4 * params)
    elif resident.get("probe") is not None and resident.get("finetune") is not None:
        out["probe_extra_memory_measured_in_P"] = (resident["probe"] - resident["finetune"]) / (4 * params)
    out.update({"probe_num_labels": num_labels, "probe_parameters_P": params,
                "probe_epoch_seconds": medians["probe"], "finetune_epoch_seconds": medians["finetune"]})
    return out
