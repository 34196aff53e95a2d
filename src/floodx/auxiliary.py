"""AdaFlood's auxiliary losses: for every training example, the loss of a model that never trained on it.

The training split is cut into K folds by position: example i of the prepared (seeded, shuffled)
training file is in fold i mod K, as random a cut as BorealisAI/adaflood's contiguous chunks and
balanced in size to one example. For each fold k, one fine-tuning run of the one training loop (`floodx.training`,
the run's own protocol) trains on the other K - 1 folds and scores fold k in fp32. `gather` joins
the folds into results/aux/<dataset>/seed<s>/losses.json, which the AdaFlood run reads
(`floodx.methods.adaflood`), after checking that every training example has exactly one loss.

    python -m floodx.auxiliary fold --spec <json> --data results/data/rt --out results/aux/rt/seed42/fold0
    python -m floodx.auxiliary gather --folds <fold0/losses.json ...> --data results/data/rt --out <losses.json>
"""

import argparse
import sys
from pathlib import Path

import torch

from .config import job_arguments, parse_spec
from .errors import DataError, run_main
from .files import read_json, write_json
from .provenance import provenance


def fold_of(position, folds):
    return position % folds


def split_folds(examples, fold, folds):
    """(trained on, held out) for one fold."""
    held = [ex for i, ex in enumerate(examples) if fold_of(i, folds) == fold]
    kept = [ex for i, ex in enumerate(examples) if fold_of(i, folds) != fold]
    return kept, held


@torch.no_grad()
def example_losses(model, tokenizer, examples, max_length, batch_size, device):
    """{idx: cross-entropy} of each example under the model, in fp32 and eval mode."""
    from .methods.base import per_example_losses
    from .training import make_loader, to_device

    model.eval()
    out = {}
    for batch in make_loader(examples, tokenizer, batch_size, max_length, group_by_length=True, with_ids=True):
        batch = to_device(batch, device)
        losses, _ = per_example_losses(model, batch)
        out.update(zip(batch["idx"].tolist(), losses.float().tolist()))
    return out


def run_fold(spec, data_dir, out_dir, device):
    """Train on the other folds, score this one; writes <out_dir>/losses.json and returns its content."""
    from .inference import load_checkpoint
    from .training import Trainer

    fold, folds = int(spec["fold"]), int(spec["folds"])
    trainer = Trainer(spec, data_dir, out_dir, device)
    kept, held = split_folds(trainer.splits["train"], fold, folds)
    if not held or not kept:
        raise DataError(f"{data_dir}: {len(trainer.splits['train'])} training examples cannot make {folds} folds")
    trainer.splits["train"] = kept
    metrics = trainer.run()
    model, tokenizer = getattr(trainer, "model", None), getattr(trainer, "tokenizer", None)
    if model is None:     # the run had finished before (a resumed job): its final checkpoint
        model, tokenizer = load_checkpoint(Path(out_dir) / metrics["final_checkpoint"], device)
    losses = example_losses(model, tokenizer, held, spec["training"]["max_length"],
                            spec["training"].get("eval_batch_size", 32), device)
    record = {"identity": {"dataset": spec["dataset"], "seed": int(spec["seed"]), "fold": fold, "folds": folds},
              "n_trained": len(kept), "n_held_out": len(held),
              "final_epoch": metrics["epochs"][-1]["epoch"], "dev_acc": metrics["epochs"][-1]["dev_acc"],
              "losses": {str(idx): loss for idx, loss in sorted(losses.items())},
              "provenance": provenance(spec, seed=int(spec["seed"]))}
    write_json(Path(out_dir) / "losses.json", record)
    return record


def gather(paths, data_dir, out):
    """Join the folds' losses; every training example must have exactly one."""
    from .data import load_split

    train = {int(ex["idx"]) for ex in load_split(data_dir, "train")}
    records = [read_json(path) for path in paths]
    folds = {r["identity"]["folds"] for r in records}
    if len(folds) != 1 or sorted(r["identity"]["fold"] for r in records) != list(range(next(iter(folds)))):
        raise DataError(f"the fold files {list(map(str, paths))} are not folds 0..K-1 of one split")
    losses = {}
    for path, record in zip(paths, records):
        for idx in record["losses"]:
            if int(idx) in losses:
                raise DataError(f"{path}: training example idx {idx} is held out twice")
            losses[int(idx)] = record["losses"][idx]
    if set(losses) != train:
        missing, extra = sorted(train - set(losses)), sorted(set(losses) - train)
        raise DataError(f"auxiliary losses do not cover the training split of {data_dir}: "
                        f"missing idx {missing[:5]}, unknown idx {extra[:5]}")
    identity = {k: v for k, v in records[0]["identity"].items() if k != "fold"}
    result = {"identity": identity, "losses": {str(i): losses[i] for i in sorted(losses)},
              "aux_dev_acc": [r["dev_acc"] for r in records], "folds": [str(p) for p in paths],
              "provenance": provenance(seed=identity["seed"])}
    write_json(out, result)
    return result


def _main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fold"]:
        args = job_arguments("python -m floodx.auxiliary fold", "train on the other folds, score this one",
                             "fold folder (checkpoints/, metrics.json, losses.json)").parse_args(argv[1:])
        from .devices import select_device

        record = run_fold(parse_spec(args.spec), args.data, args.out, select_device(args.threads))
        print(f"fold {record['identity']['fold']}: {record['n_held_out']} held-out losses")
        return 0
    parser = argparse.ArgumentParser(prog="python -m floodx.auxiliary gather", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["gather"])
    parser.add_argument("--folds", nargs="+", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    gather(args.folds, args.data, args.out)
    return 0


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
