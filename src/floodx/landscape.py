"""Figure 1's data: the loss of each final model when Gaussian noise is added to its input embeddings.

For every noise scale alpha (the standard deviation of the noise, in the units of the word
embeddings) and every draw d, the word embeddings of a fixed evaluation slice get
`alpha * z_d` added, with `z_d ~ N(0, I)` on the real tokens (not on padding). The same z_d is used
for every model and every alpha (common random numbers, seeded), so the curves differ only by the
models. Reported per (method, alpha): the mean cross-entropy over the slice, averaged over the
draws, and the standard deviation over draws.

    python -m floodx.landscape --model finetune=results/train/rt/finetune/seed42/checkpoints/epoch-4 \
        --model flooding_x=... --data results/data/rt --alphas 0 0.01 0.05 0.1 --seed 42 \
        --out results/landscape/rt/seed42/noise_loss.csv --threads 1 \
        [--draws 5] [--split test] [--max-examples 200] [--max-length 128] [--batch-size 64]

Output CSV columns: method, alpha, loss, loss_std, draws, n_examples, split, embedding_rms, num_labels,
checkpoint. `embedding_rms` (root mean square of the slice's word-embedding entries) puts alpha
on a scale: noise with alpha = embedding_rms is as large as the embeddings themselves.
"""

import argparse
import json
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from .errors import ConfigError, DataError, run_main
from .methods.base import embed, model_inputs

DEFAULTS = {"draws": 5, "split": "test", "max_examples": 200, "max_length": 128, "batch_size": 64}


def _load_split(data_dir, split):
    from .data import load_split

    return load_split(data_dir, split)


def _batches(examples, tokenizer, batch_size, max_length):
    from .training import make_loader

    return make_loader(examples, tokenizer, batch_size, max_length, False, 0, group_by_length=True)


def _noise(shape, seed, draw, batch_index):
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + draw * 10_007 + batch_index)
    return torch.randn(shape, generator=generator)


@torch.no_grad()
def noise_losses(model, batches, alphas, draws, seed, device):
    """{alpha: [mean loss of draw 0, draw 1, ...]} and the RMS of the real-token embeddings."""
    model = model.to(device).eval()
    totals = {alpha: [0.0] * draws for alpha in alphas}
    count = 0
    sq_sum, n_entries = 0.0, 0
    for b, batch in enumerate(batches):
        batch = {k: v.to(device) for k, v in batch.items()}
        clean = embed(model, batch).float()
        mask = batch["attention_mask"].unsqueeze(-1).to(clean.dtype)
        sq_sum += float((clean.pow(2) * mask).sum())
        n_entries += int(mask.sum()) * clean.shape[-1]
        inputs = model_inputs(batch)
        inputs.pop("input_ids")
        for d in range(draws):
            z = _noise(clean.shape, seed, d, b).to(device) * mask
            for alpha in alphas:
                if alpha == 0.0 and d > 0:
                    continue  # the clean loss does not depend on the draw
                logits = model(**inputs, inputs_embeds=clean + float(alpha) * z).logits.float()
                totals[alpha][d] += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
        count += len(batch["labels"])
    losses = {alpha: [t / count for t in totals[alpha]] for alpha in alphas}
    return losses, (sq_sum / max(n_entries, 1)) ** 0.5


def landscape(models, data_dir, alphas, seed, draws=5, split="test", max_examples=200, max_length=128,
              batch_size=64, device=None, num_labels=None):
    """One row per (method, alpha). `models` maps method name -> checkpoint folder (or a
    (model, tokenizer) pair, for tests)."""
    from .models import load_classifier
    from .seeding import set_seed

    if not models:
        raise ConfigError("landscape needs at least one --model METHOD=CHECKPOINT")
    if draws < 1:
        raise ConfigError(f"--draws must be >= 1, got {draws}")
    alphas = [float(a) for a in alphas]
    if not alphas or any(a < 0 for a in alphas):
        raise ConfigError(f"figures.noise_alphas must be non-negative numbers, got {alphas}")
    device = device or torch.device("cpu")
    set_seed(seed)
    examples = _load_split(data_dir, split)
    if max_examples:
        examples = examples[:max_examples]
    if not examples:
        raise DataError(f"{data_dir}: split '{split}' is empty")
    if num_labels is None:
        num_labels = 1 + max(int(ex["label"]) for ex in examples)
        meta_path = Path(data_dir) / "meta.json"
        if meta_path.exists():
            num_labels = int(json.loads(meta_path.read_text()).get("num_labels", num_labels))
    rows = []
    for method, source in models.items():
        if isinstance(source, (str, Path)):
            if not Path(source).exists():
                raise DataError(f"checkpoint of '{method}' not found: {source}")
            model, tokenizer = load_classifier(str(source), num_labels)
            checkpoint = str(source)
        else:
            model, tokenizer = source
            checkpoint = ""
        batches = _batches(examples, tokenizer, batch_size, max_length)
        losses, rms = noise_losses(model, batches, alphas, draws, seed, device)
        for alpha in alphas:
            values = torch.tensor(losses[alpha], dtype=torch.float64)
            n = len(values) if alpha > 0 else 1  # alpha = 0: every draw is the clean loss
            rows.append({
                "method": method, "alpha": alpha, "loss": float(values[:n].mean()),
                "loss_std": float(values[:n].std(unbiased=True)) if n >= 2 else 0.0,
                "draws": n, "n_examples": len(examples), "split": split, "embedding_rms": rms,
                "num_labels": num_labels, "checkpoint": checkpoint,
            })
        del model
    return pd.DataFrame(rows)


def _parse_models(items):
    models = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--model expects METHOD=CHECKPOINT, got '{item}'")
        method, path = item.split("=", 1)
        if method in models:
            raise ConfigError(f"--model names '{method}' twice")
        models[method] = path
    return models


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.landscape", description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], metavar="METHOD=CHECKPOINT", required=True)
    parser.add_argument("--data", required=True, help="prepared data set folder")
    parser.add_argument("--out", required=True, help="noise_loss.csv to write")
    parser.add_argument("--spec", default=None,
                        help='optional JSON {"alphas", "seed", "draws", "split", "max_examples", '
                             '"max_length", "batch_size"}; flags below override it')
    parser.add_argument("--alphas", nargs="+", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--draws", type=int, default=None)
    parser.add_argument("--split", choices=["dev", "test"], default=None)
    parser.add_argument("--max-examples", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    spec = dict(DEFAULTS)
    if args.spec:
        try:
            spec.update(json.loads(args.spec))
        except json.JSONDecodeError as err:
            raise ConfigError(f"--spec is not valid JSON: {err}") from None
    for key in ("alphas", "seed", "draws", "split", "max_examples", "max_length", "batch_size"):
        value = getattr(args, key)
        if value is not None:
            spec[key] = value
    if "alphas" not in spec:
        raise ConfigError("no noise scales: give --alphas (config key figures.noise_alphas)")
    from .devices import select_device

    device = select_device(args.threads)
    frame = landscape(_parse_models(args.model), args.data, spec["alphas"], int(spec.get("seed", 0)),
                      int(spec["draws"]), spec["split"], spec["max_examples"], int(spec["max_length"]),
                      int(spec["batch_size"]), device)
    from .tables.common import write_csv

    write_csv(args.out, frame)
    print(frame[["method", "alpha", "loss", "loss_std"]].to_string(index=False))


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
