"""Robustness metrics: gather attack shards into `examples.csv` + `summary.json`.

Definitions follow TextAttack 0.3.11 exactly (`textattack/metrics/attack_metrics/`):

* `attack_success_rate.py` (`AttackSuccessRate`): a result is *skipped* when the model was already
  wrong on the original text, *failed* when the attack found no label flip, otherwise successful.
  - original accuracy (`original_accuracy_perc`) = (total - skipped) / total * 100
  - accuracy under attack, Aua% (`attack_accuracy_perc`) = failed / total * 100
  - attack success rate, Suc% (`attack_success_rate_perc`) = successful / (successful + failed)
    * 100, and 0 when nothing was attacked
* `attack_queries.py` (`AttackQueries`): #Query (`avg_num_queries`) = mean of `num_queries` over
  the non-skipped results.
All are rounded to 2 decimals as TextAttack does (`floodx.attacks.rows.aggregate`).  Clean% is not
a TextAttack metric: it is the accuracy of the checkpoint on the whole split (the paper's Sec. 4.3:
"tested on the whole test dataset"), computed here by a batched evaluation or read from the
training job's own.

This module does not import TextAttack (importing it costs ~10 s).
"""

import argparse
import sys
import time
from pathlib import Path

from ..config import parse_spec
from ..corpora import wordnet_deviations
from ..errors import ConfigError, DataError, run_main
from ..inference import load_checkpoint, predict_logits
from .examples import model_input, subset_indices
from .rows import COLUMNS, aggregate, read_rows, write_rows
from .substitutions import SUBSTITUTIONS


def clean_accuracy(checkpoint, data_dir, split="test", batch_size=64, max_length=None,
                   model=None, tokenizer=None, device=None):
    """Accuracy (0-100, unrounded) of the checkpoint on the WHOLE split.

    Returns `{"clean_acc", "n_clean", "predictions": {idx: label}, "seconds"}`.
    """
    from ..data import load_split

    start = time.perf_counter()
    if model is None:
        model, tokenizer = load_checkpoint(checkpoint, device)
    examples = load_split(data_dir, split)
    if not examples:
        raise DataError(f"{Path(data_dir) / (split + '.jsonl')}: the split is empty")
    order = sorted(range(len(examples)),
                   key=lambda i: len(examples[i]["text"]) + len(examples[i].get("text_pair") or ""))
    logits = predict_logits(model, tokenizer, [model_input(examples[i]) for i in order],
                            batch_size=batch_size, max_length=max_length)
    predicted = logits.argmax(dim=-1).tolist()
    predictions = {int(examples[i]["idx"]): int(p) for i, p in zip(order, predicted)}
    correct = sum(predictions[int(ex["idx"])] == int(ex["label"]) for ex in examples)
    return {"clean_acc": correct * 100.0 / len(examples), "n_clean": len(examples),
            "predictions": predictions, "seconds": time.perf_counter() - start}


def majority_accuracy(data_dir, split):
    """Accuracy (0-100) of always predicting the split's most frequent label; None if unknown.

    Table 2 uses it to flag a model that learned nothing: its Aua% would look robust.
    """
    from ..data import load_split

    try:
        labels = [int(ex["label"]) for ex in load_split(data_dir, split)]
    except (DataError, KeyError, TypeError, ValueError):
        return None
    if not labels:
        return None
    return round(max(labels.count(label) for label in set(labels)) * 100.0 / len(labels), 2)


def recorded_clean_accuracy(metrics_json, split, epoch=None):
    """Clean% of a training run's epoch as its training job measured it, without a model.

    The training loop evaluates every kept or final epoch's model on the whole dev and test splits
    (in fp32), so the attack stages reuse that number instead of loading the checkpoint again
    (~6 s a job on a CPU).  `epoch` None means the run's final checkpoint.
    """
    from ..files import read_result

    metrics_json = Path(metrics_json)
    metrics = read_result(metrics_json)
    records = metrics.get("epochs") or []
    if epoch is None and records:      # the final checkpoint is the last epoch's
        epoch = records[-1]["epoch"]
    record = next((r for r in records if r.get("epoch") == int(epoch or -1)), None)
    if record is None or f"{split}_acc" not in record:
        raise DataError(f"{metrics_json}: no {split}_acc recorded for epoch {epoch} "
                        "(field epochs[].{split}_acc)")
    if f"{split}_acc_fp32" in record:
        # Training evaluated under bf16 autocast, and this checkpoint in fp32 too: the attack queries in fp32.
        disagreements = int(record[f"{split}_bf16_fp32_disagreements"])
        return {"clean_acc": float(record[f"{split}_acc_fp32"]) * 100.0, "epoch": int(epoch),
                "bf16_fp32_disagreements": disagreements,
                "source": f"{metrics_json} epoch {epoch} (the training job's fp32 evaluation on the whole {split} "
                          f"split; its bf16 evaluation predicted another label for {disagreements} example(s))"}
    precision = metrics.get("evaluation_precision", "fp32")
    return {"clean_acc": float(record[f"{split}_acc"]) * 100.0, "epoch": int(epoch),
            "bf16_fp32_disagreements": None,
            "source": f"{metrics_json} epoch {epoch} (the training job's {precision} evaluation on the whole "
                      f"{split} split)"}


def trained_precision(checkpoint, clean_from=None):
    """The precision the attacked model trained in, from its run's metrics.json (None where unrecorded).

    Recorded in each summary so that Table 2 can say whether its models trained alike: `training.bf16:
    auto` resolves on each training job's machine (floodx.precision)."""
    from ..files import read_result

    if clean_from is not None:
        metrics_json = Path(clean_from[0] if isinstance(clean_from, (tuple, list)) else clean_from)
    else:
        metrics_json = Path(checkpoint).parent.parent / "metrics.json"   # <run>/checkpoints/epoch-N
    if not metrics_json.is_file():
        return None
    return read_result(metrics_json).get("training_precision")


def _substitutions(recipe, mode):
    """What offline mode put in place of the recipe's resources ({} in paper mode)."""
    if mode != "offline" or recipe is None:
        return {}
    return SUBSTITUTIONS.get(recipe)


def gather(shards, checkpoint, data_dir, out_examples, out_summary, *, recipe, mode, subset=None,
           split=None, limit=None, query_budget=None, identity=None, clean=True, batch_size=64,
           max_length=None, device=None, clean_from=None, precision="fp32", calibration=None):
    """Concatenate shard CSVs into examples.csv (subset order) and write summary.json.

    Checks that no idx appears twice and, when the data's meta.json records the subset, that the
    shards together cover exactly the (first `limit` of the) subset.  `clean_from` (a training
    run's metrics.json, or a (metrics.json, epoch) pair) takes Clean% from the training job's
    own evaluation of that checkpoint instead of evaluating it again. `precision`: the attack's
    model queries (recorded as `attack_precision`); Clean% is always the fp32 accuracy. `calibration`: how
    the attack's score temperature was fitted (floodx.calibration), for an attack on calibrated scores.
    """
    from ..data import load_split
    from ..files import write_json
    from ..provenance import provenance

    subset = subset or (split if split in ("test", "dev") else "test")
    split = split or subset
    settings = {"recipe": recipe, "mode": mode, "subset": subset, "split": split, "limit": limit,
                "query_budget": query_budget, "identity": identity}

    rows, shard_seconds = [], []
    seen = {}
    for shard in shards:
        shard_rows = read_rows(shard)
        for row in shard_rows:
            if row["idx"] in seen:
                raise DataError(f"{shard}: idx {row['idx']} is also in {seen[row['idx']]}")
            seen[row["idx"]] = shard
        rows.extend(shard_rows)
        shard_seconds.append(sum(r.get("seconds") or 0.0 for r in shard_rows))

    try:
        full = subset_indices(data_dir, subset, split)
    except DataError:
        full = None
    n_subset = None
    if full is not None:
        n_subset = len(full)
        # With `limit`: exactly its first `limit`.  Without: a prefix of the subset (the whole
        # subset, or the first n of a run with --limit); a lost interleaved shard is no prefix.
        expected = full[:limit] if limit is not None else full[:len(rows)]
        missing = [i for i in expected if i not in seen]
        extra = sorted(set(seen) - set(expected))
        if missing or extra:
            raise DataError(
                f"shards {', '.join(map(str, shards))} do not cover attack_subset.{subset}"
                f"{f' (first {limit})' if limit is not None else ' (or a first part of it)'} "
                f"of {Path(data_dir) / 'meta.json'}: {len(missing)} idx missing "
                f"(e.g. {missing[:5]}), {len(extra)} not in it (e.g. {extra[:5]}); is a shard "
                "missing?")
        position = {idx: n for n, idx in enumerate(expected)}
        rows.sort(key=lambda r: position[r["idx"]])
    else:
        rows.sort(key=lambda r: r["idx"])

    summary = {"clean_acc": None, "majority_acc": majority_accuracy(data_dir, split)}
    metrics = aggregate(rows)
    summary.update({k: metrics[k] for k in ("aua", "suc", "avg_queries", "n_attacked",
                                            "n_successful", "n_failed", "n_skipped")})
    summary["attacked_acc"] = metrics["attacked_acc"]
    clean_info = None
    if clean and clean_from is not None:
        metrics_json, epoch = clean_from if isinstance(clean_from, (tuple, list)) else (clean_from, None)
        recorded = recorded_clean_accuracy(metrics_json, split, epoch)
        summary["clean_acc"] = round(recorded["clean_acc"], 2)
        summary["n_clean"] = len(load_split(data_dir, split))
        summary["clean_source"] = recorded["source"]
        summary["bf16_fp32_disagreements"] = recorded["bf16_fp32_disagreements"]
    elif clean:
        clean_info = clean_accuracy(checkpoint, data_dir, split, batch_size=batch_size,
                                    max_length=max_length, device=device)
        summary["clean_acc"] = round(clean_info["clean_acc"], 2)
        summary["n_clean"] = clean_info["n_clean"]
        summary["clean_seconds"] = round(clean_info["seconds"], 3)
        # Sanity check: the attack's prediction on each original text should be the clean one.
        summary["original_output_mismatches"] = sum(
            clean_info["predictions"].get(r["idx"]) != r["original_output"] for r in rows)
    summary.update({
        "seconds": round(sum(shard_seconds), 3),
        "seconds_wall": round(max(shard_seconds), 3) if shard_seconds else 0.0,
        "shard_seconds": [round(s, 3) for s in shard_seconds],
        "n_shards": len(shards),
        "recipe": recipe,
        "subset": subset,
        "split": split,
        "limit": limit,
        "n_subset": n_subset,
        "query_budget": query_budget,
        "mode": mode,
        "attack_precision": precision,
        "training_precision": trained_precision(checkpoint, clean_from),
        "calibration": calibration,
        "substitutions": _substitutions(recipe, mode),
        "host_deviations": wordnet_deviations(),   # e.g. a WordNet without exception lists on this host
        "checkpoint": str(checkpoint),
        "definitions": {
            "clean_acc": f"accuracy on the whole {split} split (0-100)",
            "majority_acc": f"share of the {split} split's most frequent label (0-100): the "
                            "accuracy of a model that always predicts it",
            "attacked_acc": "(total - skipped) / total * 100 (TextAttack original_accuracy)",
            "aua": "failed / total * 100 (TextAttack attack_accuracy_perc)",
            "suc": "successful / (successful + failed) * 100 (TextAttack "
                   "attack_success_rate_perc)",
            "avg_queries": "mean num_queries over non-skipped results (TextAttack "
                           "AttackQueries)",
            "seconds": "sum of per-example attack seconds over shards; seconds_wall: the "
                       "slowest shard's sum (wall time when shards run in parallel)",
        },
        "provenance": provenance(spec=settings, seed=(identity or {}).get("seed")),
    })
    if identity:
        summary["identity"] = identity
    write_rows(out_examples, rows, COLUMNS)
    write_json(out_summary, summary)
    return summary


def _parser():
    parser = argparse.ArgumentParser(prog="python -m floodx.attacks.metrics",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gather", help="shard CSVs -> examples.csv + summary.json")
    g.add_argument("--shards", nargs="+", required=True)
    g.add_argument("--checkpoint", required=True, help="the attacked checkpoint (for Clean%%)")
    g.add_argument("--data", required=True, help="prepared data directory")
    g.add_argument("--out-examples", required=True)
    g.add_argument("--out-summary", required=True)
    g.add_argument("--spec", required=True,
                   help='JSON {"identity": {dataset, method, run, flood_level, seed, recipe, epoch}, '
                        '"attacks": {mode, query_budget, ...}} (the gather_attack rule builds it)')
    g.add_argument("--subset", default=None, choices=["test", "dev"])
    g.add_argument("--split", default=None, help="split for Clean%% (default: the subset)")
    g.add_argument("--no-clean", action="store_true", help="skip Clean%% (clean_acc: null)")
    g.add_argument("--clean-from", default=None,
                   help="training metrics.json: take Clean%% from its evaluation of the checkpoint")
    g.add_argument("--clean-epoch", type=int, default=None,
                   help="epoch of --clean-from (default: the run's final checkpoint)")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--max-length", type=int, default=None)
    g.add_argument("--threads", type=int, default=1)
    return parser


def _main(argv):
    args = _parser().parse_args(argv)
    spec = parse_spec(args.spec)
    device = None
    if not (args.no_clean or args.clean_from):  # only a Clean% evaluation needs torch
        from ..devices import select_device

        device = select_device(max(1, args.threads))
    for key, inner in (("identity", "recipe"), ("attacks", "mode")):
        if not isinstance(spec.get(key), dict) or inner not in spec[key]:
            raise ConfigError(f"--spec: '{key}.{inner}' missing (the gather_attack rule's spec)")
    summary = gather(args.shards, args.checkpoint, args.data, args.out_examples, args.out_summary,
                     recipe=spec["identity"]["recipe"], mode=spec["attacks"]["mode"],
                     query_budget=spec["attacks"].get("query_budget"), identity=spec["identity"],
                     subset=args.subset, split=args.split, clean=not args.no_clean,
                     batch_size=args.batch_size, max_length=args.max_length, device=device,
                     clean_from=(args.clean_from, args.clean_epoch) if args.clean_from else None,
                     precision=spec["attacks"].get("precision", "fp32"))
    print(f"floodx: {args.out_summary}: clean {summary['clean_acc']} aua {summary['aua']} "
          f"suc {summary['suc']} queries {summary['avg_queries']} "
          f"(n={summary['n_attacked']})", file=sys.stderr)
    return summary


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
