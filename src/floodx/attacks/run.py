"""Attack one shard of a recorded attack subset with TextAttack, resumably.

`attack_shard` resolves the checkpoint, builds the attack (`floodx.attacks.recipes.build_attack`)
and attacks the shard's examples (`floodx.attacks.examples`) into a resumable shard CSV
(`floodx.attacks.resume`).  The CLI runs several recipes or epochs in one process (one TextAttack
import, one model load) and can gather a single shard at once (`--summary`, the dev and per-epoch
attacks).
"""

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

from ..errors import ConfigError, ResourceError, run_main
from ..inference import load_checkpoint
from ..names import CHARSWAP, RECIPES
from .examples import shard_examples
from .resume import DEFAULT_SEED, finished_by, fingerprint, run_examples

def resolve_checkpoint(path, epoch=None):
    """A checkpoint folder: `path` itself, `path/checkpoints/epoch-{epoch}` of a training run,
    or a run's `final_checkpoint` (metrics.json)."""
    path = Path(path)
    if epoch is not None:
        for candidate in (path / "checkpoints" / f"epoch-{epoch}", path / f"epoch-{epoch}"):
            if (candidate / "config.json").is_file():
                return candidate
        if path.name == f"epoch-{epoch}" and (path / "config.json").is_file():
            return path
        raise ResourceError(f"{path}: no checkpoint for epoch {epoch} "
                            f"(looked for checkpoints/epoch-{epoch}/config.json)")
    if (path / "config.json").is_file():
        return path
    if (path / "metrics.json").is_file():
        with open(path / "metrics.json") as handle:
            final = json.load(handle).get("final_checkpoint")
        if final and (path / final / "config.json").is_file():
            return path / final
    raise ResourceError(f"{path}: not a checkpoint folder (no config.json) nor a training run "
                        "with metrics.json final_checkpoint")


def attack_shard(checkpoint, data_dir, split, subset, recipe, mode, shard_index, num_shards,
                 out_csv, resources_dir, query_budget=None, limit=None, *, epoch=None,
                 build_attack=None, batch_size=32, seed=DEFAULT_SEED, log=None,
                 after_example=None, device=None, max_length=None):
    """Attack shard `shard_index` of `num_shards` of `attack_subset[subset]` (first `limit`).

    `split` names the JSONL file the subset indexes (normally equal to `subset`).  `epoch`
    picks `checkpoint/checkpoints/epoch-{epoch}` of a training run.  `build_attack(model,
    tokenizer) -> textattack.Attack` replaces the recipe (tests).  Returns the run's counts; a
    finished `out_csv` of the same fingerprint is left alone (`{"already_done": True}`).
    """
    out_csv = Path(out_csv)
    if subset not in ("test", "dev"):
        raise ConfigError(f"attack subset '{subset}' must be test or dev")
    if mode not in ("offline", "paper"):
        raise ConfigError(f"attacks.mode '{mode}' must be offline or paper")
    if query_budget is not None and int(query_budget) < 1:
        raise ConfigError(f"attacks.query_budget {query_budget} must be >= 1 or null")
    if build_attack is None and recipe != CHARSWAP and recipe not in RECIPES:
        raise ConfigError(f"unknown attack recipe '{recipe}' (attacks.recipes: "
                          f"{' | '.join(RECIPES)})")
    checkpoint = resolve_checkpoint(checkpoint, epoch)
    examples = shard_examples(data_dir, split, subset, shard_index, num_shards, limit)
    stamp = fingerprint(checkpoint, data_dir, split, subset, examples, recipe, mode,
                        resources_dir, query_budget, seed, max_length, custom_attack=build_attack)
    if out_csv.exists():
        # The rules declare the dev and per-epoch shards as no output, so Snakemake does not
        # delete them when a retrained checkpoint reruns the job: only a matching fingerprint
        # makes a finished shard reusable.
        if finished_by(out_csv) == stamp:
            if log:
                log(f"{out_csv}: already finished by this run; nothing to do")
            return {"already_done": True, "out": str(out_csv)}
        if log:
            log(f"{out_csv}: made by a different run (checkpoint, data, attack or code differ); "
                "attacking again")
        out_csv.unlink()

    model, tokenizer = _victim(str(Path(checkpoint).resolve()), stamp["checkpoint_sha256"],
                               None if device is None else str(device))
    if build_attack is None:
        from . import recipes

        wrapper = recipes.DynamicPaddingWrapper(model, tokenizer, max_length=max_length,
                                                batch_size=batch_size)
        attack = recipes.build_attack(recipe, wrapper, mode, resources_dir)
    else:
        attack = build_attack(model, tokenizer)
    if device is not None and str(device).startswith("cuda"):
        attack.cuda_()  # as textattack.Attacker does when CUDA is available
    if query_budget is not None:
        # As textattack.Attacker does for AttackArgs.query_budget (attacker.py, attack_dataset).
        attack.goal_function.query_budget = int(query_budget)
    stats = run_examples(attack, examples, out_csv, stamp, seed=seed, log=log,
                         after_example=after_example)
    stats.update({"out": str(out_csv), "checkpoint": str(checkpoint), "shard": shard_index,
                  "num_shards": num_shards})
    return stats


@functools.lru_cache(maxsize=1)
def _victim(checkpoint, checkpoint_sha256, device):
    """The checkpoint's (model, tokenizer), loaded once per process: a job that attacks several
    recipes (or a test that attacks twice) reuses it; new weights have a new digest."""
    return load_checkpoint(checkpoint, device)


def _parser():
    parser = argparse.ArgumentParser(prog="python -m floodx.attacks.run",
                                     description="Attack one shard of the recorded subset.")
    parser.add_argument("--checkpoint", required=True,
                        help="save_pretrained folder, or a training run folder with --epoch")
    parser.add_argument("--epoch", type=int, nargs="+", default=None,
                        help="attack checkpoints/epoch-N of the --checkpoint run folder; several "
                             "epochs run in one process (one import of TextAttack) and need "
                             "'{epoch}' in --out and --summary")
    parser.add_argument("--data", required=True, help="prepared data directory")
    parser.add_argument("--subset", default="test", choices=["test", "dev"])
    parser.add_argument("--split", default=None, help="JSONL split (default: the subset)")
    parser.add_argument("--recipe", nargs="+", default=["textfooler"],
                        help=f"{' | '.join(RECIPES)} (or {CHARSWAP}: resource-free smoke attack); "
                             "several run in one process (one import of TextAttack, one model "
                             "load) and need '{recipe}' in --out and --summary")
    parser.add_argument("--mode", default="offline", choices=["offline", "paper"])
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--out", required=True, help="shard CSV")
    parser.add_argument("--resources", default="resources")
    parser.add_argument("--query-budget", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N of the subset only")
    parser.add_argument("--batch-size", type=int, default=32, help="model batch size")
    parser.add_argument("--max-length", type=int, default=None,
                        help="truncate queries as training did (the data set's max_length)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="TextAttack's per-example seed base")
    parser.add_argument("--summary", default=None,
                        help="also gather the (single) shard into this summary.json, with "
                             "examples.csv beside it, in the same process")
    parser.add_argument("--identity", default=None,
                        help="with --summary: JSON {dataset, method, run, flood_level, seed} written into "
                             "each summary.json, with its recipe and epoch (floodx.names.result_identity)")
    parser.add_argument("--clean-from", default=None,
                        help="with --summary: training metrics.json whose evaluation of the "
                             "attacked epoch gives Clean%% (default: evaluate the checkpoint)")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def _fill(path, epoch, recipe):
    """`path` with its '{epoch}' and '{recipe}' placeholders filled."""
    return None if path is None else path.replace("{epoch}", str(epoch)).replace("{recipe}", recipe)


def _main(argv):
    args = _parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ..devices import select_device

    device = select_device(max(1, args.threads))  # claims a GPU slot where there are GPUs
    subset = args.subset
    tag = f"[{Path(args.out).name}]"

    def log(message):
        print(f"floodx: {tag} {message}", file=sys.stderr, flush=True)

    epochs = list(args.epoch or [None])
    recipes = list(args.recipe)
    for name, values in (("epoch", epochs), ("recipe", recipes)):
        if len(values) > 1 and not all("{" + name + "}" in (p or "{" + name + "}")
                                       for p in (args.out, args.summary)):
            raise ConfigError(f"--{name} with several values needs '{{{name}}}' in --out and --summary")
    if args.summary and args.num_shards != 1:
        raise ConfigError("--summary gathers a single shard: use --num-shards 1, or the "
                          "'python -m floodx.attacks.metrics gather' command for shards")
    all_stats = []
    for recipe in recipes:
        for epoch in epochs:
            start = time.perf_counter()
            out = _fill(args.out, epoch, recipe)
            stats = attack_shard(
                args.checkpoint, args.data, args.split or subset,
                subset, recipe, args.mode, args.shard,
                args.num_shards, out, args.resources, query_budget=args.query_budget,
                limit=args.limit, epoch=epoch, batch_size=args.batch_size,
                seed=args.seed, log=log, device=device, max_length=args.max_length)
            log(f"{recipe} done in {time.perf_counter() - start:.1f} s: {json.dumps(stats)}")
            if args.summary:
                stats["summary"] = _gather_one(args, subset, epoch, recipe, out, device, log)
            all_stats.append(stats)
    return all_stats[0] if len(all_stats) == 1 else all_stats


def _gather_one(args, subset, epoch, recipe, out, device, log):
    """`metrics.gather` of the one shard just written (the dev and per-epoch attacks)."""
    from .metrics import gather

    checkpoint = resolve_checkpoint(args.checkpoint, epoch)
    summary_path = Path(_fill(args.summary, epoch, recipe))
    identity = json.loads(args.identity) if args.identity else None
    summary = gather(
        [out], checkpoint, args.data, summary_path.with_name("examples.csv"), summary_path,
        recipe=recipe, mode=args.mode, limit=args.limit, query_budget=args.query_budget,
        identity=identity and {**identity, "recipe": recipe, "epoch": epoch},
        subset=subset, split=args.split or subset, max_length=args.max_length, device=device,
        clean_from=(args.clean_from, epoch) if args.clean_from else None)
    log(f"{summary_path}: clean {summary['clean_acc']} aua {summary['aua']} suc {summary['suc']} "
        f"queries {summary['avg_queries']} (n={summary['n_attacked']})")
    return str(summary_path)


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
