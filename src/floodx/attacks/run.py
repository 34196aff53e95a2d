"""Attack one shard of a recorded attack subset with TextAttack, resumably.

`attack_shard` loads a checkpoint, builds the attack (`floodx.attacks.recipes.build_attack`),
takes the shard's examples (interleaved split of `meta.json` `attack_subset[subset]`, after
`limit`) and runs `Attack.attack(example, ground_truth)` on each one.  One CSV row per example
(`floodx.attacks.metrics.SHARD_COLUMNS`) is appended and flushed to `<out>.partial` as soon as the
example is finished; the partial file is renamed to `<out>` at the end.  A rerun after a crash
keeps the finished rows and attacks only the rest.  A `<out>.partial.json` fingerprint
(checkpoint weights, data, recipe, mode, shard, limit, budget, code) guards against resuming
somebody else's partial file; it becomes `<out>.json` when the shard finishes, and a finished
`<out>` is reused only by a run with the same fingerprint (a retrained checkpoint attacks again).

Per example, caches are cleared and RNGs are seeded from (seed, idx), so a row depends only on
its example: sharded, resumed and unsharded runs give the same rows.
"""

import argparse
import csv
import functools
import hashlib
import io
import json
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

from ..config import parse_spec
from ..names import RECIPES
from ..errors import ConfigError, DataError, ResourceError, run_main
from .metrics import (
    SHARD_COLUMNS,
    load_checkpoint,
    load_split,
    parse_row,
    subset_indices,
)

# A resource-free attack composed from TextAttack parts (character swaps/deletions, greedy WIR):
# for smoke runs, tests and the sharding benchmark; never a paper number.
CHARSWAP = "charswap"
DEFAULT_SEED = 765  # TextAttack's AttackArgs.random_seed
PAIR_COLUMNS = ("text", "text_pair")


# --------------------------------------------------------------------------------------------
# Examples and shards
# --------------------------------------------------------------------------------------------

def shard_of(indices, shard_index, num_shards):
    """Interleaved shard `shard_index` of `num_shards` (deterministic, balanced)."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ConfigError(f"shard {shard_index} of {num_shards}: need 0 <= shard < num_shards")
    return list(indices)[shard_index::num_shards]


def shard_examples(data_dir, split, subset, shard_index, num_shards, limit=None):
    """Data rows of one shard, in subset order."""
    indices = shard_of(subset_indices(data_dir, subset, split, limit), shard_index, num_shards)
    by_idx = {int(ex["idx"]): ex for ex in load_split(data_dir, split)}
    missing = [i for i in indices if i not in by_idx]
    if missing:
        raise DataError(f"{Path(data_dir) / 'meta.json'}: attack_subset.{subset} names idx "
                        f"{missing[:5]} that {split}.jsonl lacks")
    return [by_idx[i] for i in indices]


def attack_input(example):
    """TextAttack input: the text, or an OrderedDict of two columns for text pairs."""
    if example.get("text_pair") is None:
        return example["text"]
    return OrderedDict(zip(PAIR_COLUMNS, (example["text"], example["text_pair"])))


def result_row(idx, result, seconds=None):
    """CSV row of a TextAttack AttackResult."""
    from textattack.attack_results import (
        FailedAttackResult,
        MaximizedAttackResult,
        SkippedAttackResult,
        SuccessfulAttackResult,
    )

    if isinstance(result, SkippedAttackResult):
        kind = "skipped"
    elif isinstance(result, FailedAttackResult):
        kind = "failed"
    elif isinstance(result, (SuccessfulAttackResult, MaximizedAttackResult)):
        kind = "successful"  # TextAttack's AttackSuccessRate counts every other result so
    else:
        raise TypeError(f"unexpected attack result {type(result).__name__}")
    original, perturbed = result.original_result, result.perturbed_result
    row = {
        "idx": int(idx),
        "original": original.attacked_text.printable_text(key_color_method=None),
        "perturbed": perturbed.attacked_text.printable_text(key_color_method=None),
        "result": kind,
        "queries": int(result.num_queries),
        "ground_truth": int(original.ground_truth_output),
        "original_output": int(original.output),
        "perturbed_output": int(perturbed.output),
    }
    if seconds is not None:
        row["seconds"] = round(float(seconds), 4)
    return row


# --------------------------------------------------------------------------------------------
# Model wrapper and attacks
# --------------------------------------------------------------------------------------------

def model_wrapper(model, tokenizer, batch_size=32, max_length=None):
    """The victim as TextAttack sees it: padded per batch, truncated like training (max_length)."""
    from .recipes import DynamicPaddingWrapper

    return DynamicPaddingWrapper(model, tokenizer, max_length=max_length, batch_size=batch_size)


def build_charswap_attack(wrapper):
    """Resource-free attack: greedy word-importance search over character deletions and QWERTY
    neighbour swaps (inner characters), no repeated words, no stopwords."""
    from textattack import Attack
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import (
        CompositeTransformation,
        WordSwapQWERTY,
        WordSwapRandomCharacterDeletion,
    )

    transformation = CompositeTransformation([
        WordSwapRandomCharacterDeletion(random_one=False, skip_first_char=True,
                                        skip_last_char=True),
        WordSwapQWERTY(random_one=False, skip_first_char=True, skip_last_char=True),
    ])
    constraints = [RepeatModification(), StopwordModification()]
    return Attack(UntargetedClassification(wrapper), constraints, transformation,
                  GreedyWordSwapWIR(wir_method="delete"))


def build(recipe, wrapper, mode, resources_dir):
    """The attack for `recipe` (recipes.build_attack, or the resource-free `charswap`)."""
    if recipe == CHARSWAP:
        return build_charswap_attack(wrapper)
    if recipe not in RECIPES:
        raise ConfigError(f"unknown attack recipe '{recipe}' (attacks.recipes: "
                          f"{' | '.join(RECIPES)})")
    from .recipes import build_attack

    return build_attack(recipe, wrapper, mode, resources_dir)


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


# --------------------------------------------------------------------------------------------
# Resume bookkeeping
# --------------------------------------------------------------------------------------------

def _file_digest(path, chunk=1 << 22):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_digest(checkpoint):
    """sha256 over the checkpoint's config and weight files (what decides its predictions)."""
    checkpoint = Path(checkpoint)
    digest = hashlib.sha256()
    names = sorted(p.name for p in checkpoint.iterdir()
                   if p.is_file() and (p.suffix in (".safetensors", ".bin")
                                       or p.name in ("config.json", "tokenizer.json",
                                                     "vocab.txt", "tokenizer_config.json")))
    for name in names:
        digest.update(name.encode())
        digest.update(_file_digest(checkpoint / name).encode())
    return digest.hexdigest()


def _code_digest():
    """What decides an attack's outcome besides its inputs: the attack code and TextAttack."""
    from importlib import metadata

    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("run.py", "recipes.py"):
        if (here / name).is_file():
            digest.update(name.encode())
            digest.update((here / name).read_bytes())
    try:
        digest.update(metadata.version("textattack").encode())
    except metadata.PackageNotFoundError:
        pass
    return digest.hexdigest()


def read_partial(partial, shard_indices):
    """Finished rows of a partial shard file, keeping only complete rows of this shard.

    A row cut off by a crash (file not ending in a newline, wrong field count) is dropped.
    """
    text = Path(partial).read_text(encoding="utf-8")
    rows = []
    if not text:
        return rows
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    wanted = set(shard_indices)
    reader = csv.DictReader(io.StringIO(complete, newline=""))
    try:
        if reader.fieldnames != SHARD_COLUMNS:
            return []
        for raw in reader:
            try:
                row = parse_row(raw, str(partial))
            except DataError:
                break  # a torn row: everything from here on is redone
            if row["idx"] in wanted and all(r["idx"] != row["idx"] for r in rows):
                rows.append(row)
    except csv.Error:
        pass  # a torn quoted field at the end
    # Keep the shard's order: rows were appended in shard order, so a prefix of it.
    order = {idx: n for n, idx in enumerate(shard_indices)}
    rows.sort(key=lambda r: order[r["idx"]])
    return rows


def _open_partial(partial, rows):
    """Rewrite the partial file with `rows` (drops torn tails) and open it for appending."""
    partial = Path(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial.with_name(partial.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SHARD_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, partial)
    handle = open(partial, "a", newline="", encoding="utf-8")
    return handle, csv.DictWriter(handle, fieldnames=SHARD_COLUMNS, lineterminator="\n")


def _seed_example(seed, idx):
    import random

    import numpy as np
    import torch

    value = (int(seed) * 1_000_003 + int(idx)) % (2**31 - 1)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def _finished_stamp(out_csv):
    return out_csv.with_name(out_csv.name + ".json")


def _finished_by(out_csv):
    """The fingerprint a finished shard was made with (None: unknown, e.g. an older floodx)."""
    try:
        return json.loads(_finished_stamp(out_csv).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_examples(attack, examples, out_csv, fingerprint, seed=DEFAULT_SEED, log=None,
                 after_example=None):
    """Attack `examples` (data rows, shard order) into `out_csv`, resuming `<out>.partial`.

    Returns `{"n", "n_resumed", "n_attacked_now", "seconds"}`.  `after_example(k)` is called
    after the k-th newly finished row is flushed (tests use it to simulate a crash).
    """
    out_csv = Path(out_csv)
    partial = out_csv.with_name(out_csv.name + ".partial")
    stamp = out_csv.with_name(out_csv.name + ".partial.json")
    indices = [int(ex["idx"]) for ex in examples]

    done = []
    if partial.exists() and stamp.exists():
        try:
            previous = json.loads(stamp.read_text())
        except json.JSONDecodeError:
            previous = None
        if previous == fingerprint:
            done = read_partial(partial, indices)
        elif log:
            log(f"{partial}: made by a different run (fingerprint differs); starting afresh")
    from ..provenance import write_json

    write_json(stamp, fingerprint)
    handle, writer = _open_partial(partial, done)
    finished = {r["idx"] for r in done}
    if log and done:
        log(f"{partial}: resuming after {len(done)} finished example(s)")
    new = 0
    try:
        for number, example in enumerate(examples, 1):
            idx = int(example["idx"])
            if idx in finished:
                continue
            attack.clear_cache()
            _seed_example(seed, idx)
            start = time.perf_counter()
            result = attack.attack(attack_input(example), int(example["label"]))
            seconds = time.perf_counter() - start
            row = result_row(idx, result, seconds)
            writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())
            done.append(row)
            new += 1
            if log:
                log(f"{number}/{len(examples)} idx {idx}: {row['result']}, "
                    f"{row['queries']} queries, {seconds:.1f} s")
            if after_example is not None:
                after_example(new)
    finally:
        handle.close()
    if sorted(r["idx"] for r in done) != sorted(indices):
        raise DataError(f"{partial}: rows do not match the shard's examples")
    os.replace(partial, out_csv)
    os.replace(stamp, _finished_stamp(out_csv))  # the finished shard keeps its fingerprint
    return {"n": len(done), "n_resumed": len(done) - new, "n_attacked_now": new,
            "seconds": sum(r.get("seconds") or 0.0 for r in done)}


# --------------------------------------------------------------------------------------------
# One shard
# --------------------------------------------------------------------------------------------

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
    fingerprint = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha256": checkpoint_digest(checkpoint),
        "data_sha256": _file_digest(Path(data_dir) / f"{split}.jsonl")
        if (Path(data_dir) / f"{split}.jsonl").is_file() else None,
        "split": split, "subset": subset, "examples": [int(ex["idx"]) for ex in examples],
        "recipe": recipe, "mode": mode, "resources": str(resources_dir),
        "query_budget": query_budget, "seed": seed, "max_length": max_length,
        "custom_attack": None if build_attack is None else getattr(
            build_attack, "__qualname__", repr(build_attack)),
        "code": _code_digest(),
    }
    if out_csv.exists():
        # The rules declare the dev and per-epoch shards as no output, so Snakemake does not
        # delete them when a retrained checkpoint reruns the job: only a matching fingerprint
        # makes a finished shard reusable.
        if _finished_by(out_csv) == fingerprint:
            if log:
                log(f"{out_csv}: already finished by this run; nothing to do")
            return {"already_done": True, "out": str(out_csv)}
        if log:
            log(f"{out_csv}: made by a different run (checkpoint, data, attack or code differ); "
                "attacking again")
        out_csv.unlink()

    model, tokenizer = _victim(str(Path(checkpoint).resolve()), fingerprint["checkpoint_sha256"],
                               None if device is None else str(device))
    if build_attack is None:
        attack = build(recipe, model_wrapper(model, tokenizer, batch_size, max_length), mode, resources_dir)
    else:
        attack = build_attack(model, tokenizer)
    if device is not None and str(device).startswith("cuda"):
        attack.cuda_()  # as textattack.Attacker does when CUDA is available
    if query_budget is not None:
        # As textattack.Attacker does for AttackArgs.query_budget (attacker.py, attack_dataset).
        attack.goal_function.query_budget = int(query_budget)
    stats = run_examples(attack, examples, out_csv, fingerprint, seed=seed, log=log,
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
    parser.add_argument("--subset", default=None, choices=["test", "dev"])
    parser.add_argument("--split", default=None, help="JSONL split (default: the subset)")
    parser.add_argument("--recipe", nargs="+", default=None,
                        help=f"{' | '.join(RECIPES)} (or {CHARSWAP}: resource-free smoke attack); "
                             "several run in one process (one import of TextAttack, one model "
                             "load) and need '{recipe}' in --out and --summary")
    parser.add_argument("--mode", default=None, choices=["offline", "paper"])
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--out", required=True, help="shard CSV")
    parser.add_argument("--resources", default="resources")
    parser.add_argument("--query-budget", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N of the subset only")
    parser.add_argument("--batch-size", type=int, default=32, help="model batch size")
    parser.add_argument("--max-length", type=int, default=None,
                        help="truncate queries as training did (the data set's max_length)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--spec", default=None,
                        help="JSON config slice; keys recipe, mode, subset, split, limit, "
                             "query_budget, seed, epoch (command-line flags win)")
    parser.add_argument("--summary", default=None,
                        help="also gather the (single) shard into this summary.json, with "
                             "examples.csv beside it, in the same process")
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
    spec = parse_spec(args.spec)

    def pick(name, default=None):
        value = getattr(args, name)
        return value if value is not None else spec.get(name, default)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ..devices import select_device

    device = select_device(max(1, args.threads))  # claims a GPU slot where there are GPUs
    subset = pick("subset", "test")
    tag = f"[{Path(args.out).name}]"

    def log(message):
        print(f"floodx: {tag} {message}", file=sys.stderr, flush=True)

    epochs = pick("epoch")
    epochs = [epochs] if isinstance(epochs, int) else list(epochs or [None])
    recipes = pick("recipe", "textfooler")
    recipes = [recipes] if isinstance(recipes, str) else list(recipes)
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
                args.checkpoint, args.data, pick("split") or subset,
                subset, recipe, pick("mode", "offline"), args.shard,
                args.num_shards, out, args.resources, query_budget=pick("query_budget"),
                limit=pick("limit"), epoch=epoch, batch_size=args.batch_size,
                seed=pick("seed", DEFAULT_SEED), log=log, device=device, max_length=args.max_length)
            log(f"{recipe} done in {time.perf_counter() - start:.1f} s: {json.dumps(stats)}")
            if args.summary:
                stats["summary"] = _gather_one(args, spec, pick, subset, epoch, recipe, out, device, log)
            all_stats.append(stats)
    return all_stats[0] if len(all_stats) == 1 else all_stats


def _gather_one(args, spec, pick, subset, epoch, recipe, out, device, log):
    """`metrics.gather` of the one shard just written (the dev and per-epoch attacks)."""
    from .metrics import gather

    checkpoint = resolve_checkpoint(args.checkpoint, epoch)
    summary_path = Path(_fill(args.summary, epoch, recipe))
    summary = gather(
        [out], checkpoint, args.data, summary_path.with_name("examples.csv"), summary_path,
        {**spec, "recipe": recipe, "mode": pick("mode", "offline"),
         "limit": pick("limit"), "query_budget": pick("query_budget")},
        subset=subset, split=pick("split") or subset, max_length=args.max_length, device=device,
        clean_from=(args.clean_from, epoch) if args.clean_from else None)
    log(f"{summary_path}: clean {summary['clean_acc']} aua {summary['aua']} suc {summary['suc']} "
        f"queries {summary['avg_queries']} (n={summary['n_attacked']})")
    return str(summary_path)


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
