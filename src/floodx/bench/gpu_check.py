"""The GPU check (`make gpu-check`): BERT-base on SST-2-like batches, every method, in minutes.

    python -m floodx.bench.gpu_check              # on a GPU: BERT-base sized, bf16 where supported
    python -m floodx.bench.gpu_check --reduced    # anywhere, in a minute: a tiny BERT, a few steps

Needs only the working tree: the model is BERT-base built from its config (random weights, the
timing is the same), the sentences are drawn from a fixed word list with SST-2's lengths, nothing
is downloaded. Prints `name: value` lines:

- `train_examples_per_s` and `sst2_epoch_seconds` (67,349 examples; the paper's RTX 2080Ti: 260 s),
- `ratio_<method>`: Table 3 on this device (each method's step time over fine-tuning's, timed
  round robin by `floodx.profiling.profile_methods`, the stage Table 3 comes from),
- `probe_over_finetune_epoch_time` (`floodx.bench.probe.bench_probe`),
- `peak_memory_gb_<method>` on CUDA (peak allocated over a few steps),
- `bf16_fp32_label_agreement`: the share of predicted labels on which bf16 autocast (where the GPU
  supports it: what `attacks.precision: bf16` queries in) and fp32 queries (`floodx.inference`)
  agree; the model is untrained, its logits near ties, so this is a worst case (a training run's
  per-epoch evaluation is fp32 whatever its training precision, so Clean% never depends on it).
- `attack_model_queries_per_s`: the model side of an attack, perturbed sentences scored per second
  in fp32 through the attack's model wrapper path (`floodx.inference`, TextAttack's 32 per call).
  A whole TextAttack run is not timed here: its word embeddings and WordNet are not in the tree,
  and its search and constraints run on the CPU.
"""

import argparse
import copy
import random
import sys
import tempfile
import time

import torch

SST2_TRAIN = 67349
# SST-2's training sentences are short phrases: lengths drawn around its mean of about 9 words.
MEAN_WORDS, MAX_WORDS = 9, 52
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 max_position_embeddings=512, vocab_size=30522)
METHODS = ("finetune", "flooding", "pgd", "freelb", "tavat", "infobert")
SETTINGS = {"full": {"examples": 4096, "steps": 20, "warmup": 3, "probe_rounds": 3, "memory_steps": 3, "queries": 4096},
            "reduced": {"examples": 96, "steps": 2, "warmup": 1, "probe_rounds": 1, "memory_steps": 1, "queries": 64}}
ATTACK_BATCH = 32                    # TextAttack's goal-function batch size (floodx keeps its default)


def sentences(n, seed=0):
    """`n` synthetic sentences with SST-2-like lengths, from the tiny model's word list."""
    from ..models import _TINY_WORDS

    rng = random.Random(seed)
    out = []
    for i in range(n):
        length = min(MAX_WORDS, max(1, int(rng.expovariate(1 / MEAN_WORDS)) + 1))
        out.append({"idx": i, "text": " ".join(rng.choice(_TINY_WORDS) for _ in range(length)),
                    "text_pair": None, "label": rng.randrange(2)})
    return out


def build(reduced, folder):
    from ..models import tiny_bert

    return tiny_bert(2, folder) if reduced else tiny_bert(2, folder, **BERT_BASE)


def peak_memory(model, tokenizer, examples, training, device, steps):
    """{method: peak GPU memory in GB over `steps` training steps} (CUDA only)."""
    from ..methods import build_method
    from ..training import Optimisation, make_loader

    out = {}
    batches = make_loader(examples, tokenizer, training["batch_size"], training["max_length"], True, 0, 1)
    for name in METHODS:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        copy_ = copy.deepcopy(model).to(device).train()
        method = build_method(name)
        method.setup(copy_, tokenizer, batches)
        stepper = Optimisation(copy_, method, training, steps, device)
        for batch in batches[:steps]:
            stepper.step({k: v.to(device) for k, v in batch.items()})
        torch.cuda.synchronize(device)
        out[name] = torch.cuda.max_memory_allocated(device) / 1e9
        del copy_, method, stepper
    return out


def label_agreement(model, tokenizer, examples, training, device):
    """Share of examples whose predicted label is the same under training's bf16 autocast (where the
    device supports it) and under fp32 attack queries."""
    from ..inference import predict_logits
    from ..training import autocast_for

    model = model.to(device).eval()
    texts = [ex["text"] for ex in examples]
    fp32 = predict_logits(model, tokenizer, texts, batch_size=64, max_length=training["max_length"]).argmax(-1)
    with autocast_for(device, training.get("bf16", "auto"))():
        mixed = predict_logits(model, tokenizer, texts, batch_size=64,
                               max_length=training["max_length"]).argmax(-1)
    return float((fp32 == mixed).float().mean())


def attack_queries_per_s(model, tokenizer, examples, training, device):
    """Sentences scored per second as an attack scores them: fp32, batches of ATTACK_BATCH, logits to the CPU."""
    from ..inference import predict_logits

    model = model.to(device).eval()
    texts = [ex["text"] for ex in examples]
    predict_logits(model, tokenizer, texts[:ATTACK_BATCH], ATTACK_BATCH, training["max_length"])   # warm-up
    started = time.perf_counter()
    predict_logits(model, tokenizer, texts, ATTACK_BATCH, training["max_length"])    # returns CPU logits: synchronised
    return len(texts) / (time.perf_counter() - started)


SEED = 42  # the pipeline's default seed


def check(reduced=False, device=None, seed=SEED):
    """Every figure of the GPU check as {name: value}.

    Seeded as a pipeline job is (`floodx.seeding.set_seed`: strictly deterministic kernels and SDPA's
    math attention on a GPU), so that it times the kernels the pipeline runs, not faster ones it never uses.
    """
    from ..bench.probe import bench_probe
    from ..devices import select_device
    from ..profiling import profile_methods
    from ..seeding import set_seed
    from ..training import make_loader

    set_seed(seed)
    settings = SETTINGS["reduced" if reduced else "full"]
    device = device or select_device(1)
    training = {"batch_size": 32, "max_length": 66, "learning_rate": 2e-5, "warmup_ratio": 0.1,
                "weight_decay": 0.01, "max_grad_norm": 1.0, "bf16": "auto", "epochs": 10}
    examples = sentences(settings["examples"])
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
           "mode": "reduced" if reduced else "full", "torch": torch.__version__, "seed": seed,
           "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}
    import transformers

    out["transformers"] = transformers.__version__
    with tempfile.TemporaryDirectory(prefix="floodx-gpu-check-") as folder:
        model, tokenizer = build(reduced, folder)
        out["parameters_millions"] = sum(p.numel() for p in model.parameters()) / 1e6
        started = time.perf_counter()
        times = profile_methods(model, tokenizer, examples, list(METHODS), training, device, settings["steps"],
                                warmup_steps=settings["warmup"], num_train_examples=SST2_TRAIN, epochs=10)
        finetune = times["methods"]["finetune"]["seconds_per_step"]
        out["train_examples_per_s"] = training["batch_size"] / finetune
        out["sst2_epoch_seconds"] = SST2_TRAIN / out["train_examples_per_s"]
        for name, record in times["methods"].items():
            out[f"ratio_{name}"] = record["ratio_to_finetune"]
        batches = make_loader(examples, tokenizer, training["batch_size"], training["max_length"], True, 0, 1)[:8]
        probe = bench_probe(model, tokenizer, batches, training, rounds=settings["probe_rounds"], device=device,
                            sub_epoch_batches=4, measure_memory=device.type == "cuda")
        out["probe_over_finetune_epoch_time"] = probe["probe_over_finetune_epoch_time"]
        if device.type == "cuda":
            for name, gb in peak_memory(model, tokenizer, examples[:256], training, device,
                                        settings["memory_steps"]).items():
                out[f"peak_memory_gb_{name}"] = gb
        out["bf16_fp32_label_agreement"] = label_agreement(model, tokenizer, examples[:512], training, device)
        out["attack_model_queries_per_s"] = attack_queries_per_s(
            model, tokenizer, sentences(settings["queries"], seed=1), training, device)
        out["seconds"] = time.perf_counter() - started
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--reduced", action="store_true", help="a tiny BERT and a few steps (runs anywhere)")
    parser.add_argument("--out", help="also write the figures as JSON: a device profile for `python -m floodx.plan "
                        "--device-profile`")
    args = parser.parse_args(argv)
    figures = check(args.reduced)
    for name, value in figures.items():
        print(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}", flush=True)
    if args.out:
        from ..files import write_json

        write_json(args.out, {**figures, "date": time.strftime("%Y-%m-%d")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
