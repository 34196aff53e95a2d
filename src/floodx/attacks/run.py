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

from ..config import parse_spec
from ..errors import ConfigError, ResourceError, run_main
from ..inference import load_checkpoint
from ..names import CHARSWAP, RECIPES
from .examples import shard_examples
from .resume import DEFAULT_SEED, checkpoint_digest, copy_finished, finished_by, fingerprint, run_examples

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
                            f"(looked for checkpoints/epoch-{epoch}/config.json){_removed_hint(path)}")
    if (path / "config.json").is_file():
        return path
    if (path / "metrics.json").is_file():
        with open(path / "metrics.json") as handle:
            final = json.load(handle).get("final_checkpoint")
        if final and (path / final / "config.json").is_file():
            return path / final
    raise ResourceError(f"{path}: not a checkpoint folder (no config.json) nor a training run "
                        f"with metrics.json final_checkpoint{_removed_hint(path)}")


def _removed_hint(path):
    """Why a finished run may lack its weights: keep_checkpoints: chosen removed them (floodx.retention)."""
    if not (path / "metrics.json").is_file() or (path / "checkpoints").exists():
        return ""
    return ("; the run finished (metrics.json) but its checkpoints/ folder is gone: with training.keep_checkpoints: "
            "chosen the weights of flood runs that no choice picked are removed (results/search/<data set>/"
            "seed<seed>/pruned.json). Snakemake retrains such a run by itself only when a dev attack of it must "
            "rerun; if a changed choice picked it, retrain it with your snakemake command plus "
            f"--forcerun {path / 'metrics.json'}")


def attack_shard(checkpoint, data_dir, split, subset, recipe, mode, shard_index, num_shards,
                 out_csv, resources_dir, query_budget=None, limit=None, *, epoch=None,
                 build_attack=None, batch_size=32, seed=DEFAULT_SEED, log=None,
                 after_example=None, device=None, max_length=None, precision="fp32", reuse=None, calibrate=None):
    """Attack shard `shard_index` of `num_shards` of `attack_subset[subset]` (first `limit`).

    `split` names the JSONL file the subset indexes (normally equal to `subset`).  `epoch`
    picks `checkpoint/checkpoints/epoch-{epoch}` of a training run.  `build_attack(model,
    tokenizer) -> textattack.Attack` replaces the recipe (tests).  Returns the run's counts; a
    finished `out_csv` of the same fingerprint is left alone (`{"already_done": True}`).
    `precision` (attacks.precision): fp32 or bf16 model queries.  `reuse`: another job's finished shard
    CSV; where its fingerprint equals this shard's, its rows are copied instead of attacked again (an
    attack is repeatable row for row on one machine, and the fingerprint holds everything rows depend on).
    `calibrate`: the split ("dev") on which a score temperature is fitted (floodx.calibration); the attack
    then queries softmax(logits / T), and the result's `calibration` says how T was found.
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
    if calibrate not in (None, *CALIBRATION_SPLITS):
        raise ConfigError(f"--spec: 'calibrate' is null or one of {list(CALIBRATION_SPLITS)} (the split T is fitted on)")
    if calibrate is not None and reuse is not None:
        raise ConfigError("--spec: 'reuse' copies uncalibrated rows; it cannot go with 'calibrate'")
    if calibrate is not None and build_attack is not None:
        raise ConfigError("a custom attack builder takes no calibrated scores")
    checkpoint = resolve_checkpoint(checkpoint, epoch)
    examples = shard_examples(data_dir, split, subset, shard_index, num_shards, limit)
    calibration = None
    if calibrate is not None:
        calibration = _calibration(str(Path(checkpoint).resolve()), checkpoint_digest(checkpoint), str(data_dir),
                                   calibrate, max_length, None if device is None else str(device))
        if log:
            log(f"scores calibrated: T = {calibration['temperature']:.6g} fitted on {calibrate} (mean NLL "
                f"{calibration['fit_nll_uncalibrated']:.4g} at T = 1, {calibration['fit_nll']:.4g} at T); test softmax "
                f"saturated on {100 * calibration['test_saturated']:.1f}% at T"
                + (f"; warning: T is at the search's {calibration['at_bound']} bound" if calibration["at_bound"] else ""))
    stamp = fingerprint(checkpoint, data_dir, split, subset, examples, recipe, mode,
                        resources_dir, query_budget, seed, max_length, custom_attack=build_attack,
                        precision=precision, calibration=calibration)
    found = {"calibration": calibration} if calibration else {}
    if out_csv.exists():
        # The rules declare the dev and per-epoch shards as no output, so Snakemake does not
        # delete them when a retrained checkpoint reruns the job: only a matching fingerprint
        # makes a finished shard reusable.
        if finished_by(out_csv) == stamp:
            if log:
                log(f"{out_csv}: already finished by this run; nothing to do")
            return {"already_done": True, "out": str(out_csv), **found}
        if log:
            log(f"{out_csv}: made by a different run (checkpoint, data, attack or code differ); "
                "attacking again")
        out_csv.unlink()
    if reuse is not None:
        made_by = finished_by(reuse) if Path(reuse).is_file() else None
        if made_by == stamp:
            rows = copy_finished(reuse, out_csv, examples)
            if log:
                log(f"{out_csv}: {rows} rows copied from {reuse}, finished with the same fingerprint")
            return {"n": rows, "n_resumed": 0, "n_attacked_now": 0, "reused_from": str(reuse), "out": str(out_csv)}
        if log:
            why = ("it is not a finished shard" if made_by is None else "its fingerprint differs in "
                   + ", ".join(sorted(k for k in set(made_by) | set(stamp) if made_by.get(k) != stamp.get(k))))
            log(f"{reuse}: not copied ({why}); attacking")

    model, tokenizer = _victim(str(Path(checkpoint).resolve()), stamp["checkpoint_sha256"],
                               None if device is None else str(device))
    if build_attack is None:
        from . import recipes

        wrapper = recipes.DynamicPaddingWrapper(model, tokenizer, max_length=max_length, batch_size=batch_size,
                                                precision=precision,
                                                temperature=calibration["temperature"] if calibration else None)
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
                  "num_shards": num_shards, **found})
    return stats


@functools.lru_cache(maxsize=1)
def _victim(checkpoint, checkpoint_sha256, device):
    """The checkpoint's (model, tokenizer), loaded once per process: a job that attacks several
    recipes (or a test that attacks twice) reuses it; new weights have a new digest."""
    return load_checkpoint(checkpoint, device)


@functools.lru_cache(maxsize=1)
def _calibration(checkpoint, checkpoint_sha256, data_dir, fit_split, max_length, device):
    """The checkpoint's score temperature fitted on `fit_split`, once per process (every recipe shares it)."""
    from ..calibration import calibrate

    model, tokenizer = _victim(checkpoint, checkpoint_sha256, device)
    return calibrate(model, tokenizer, data_dir, max_length, fit_split)


# The attack job's spec (floodx.config.attack_spec): required keys, and optional ones with defaults.
SPEC_REQUIRED = ("recipes", "mode", "subset", "resources")
SPEC_OPTIONAL = {"split": None, "epochs": None, "num_shards": 1, "query_budget": None, "limit": None,
                 "max_length": None, "seed": DEFAULT_SEED, "batch_size": 32, "identity": None,
                 "precision": "fp32", "reuse": None, "calibrate": None}
CALIBRATION_SPLITS = ("dev",)


def read_attack_spec(text):
    """The attack job's --spec: every key known, the required ones present (errors name the key)."""
    spec = parse_spec(text)
    unknown = sorted(set(spec) - set(SPEC_REQUIRED) - set(SPEC_OPTIONAL))
    if unknown:
        raise ConfigError(f"--spec: unknown key(s) {unknown} (floodx.config.attack_spec)")
    for key in SPEC_REQUIRED:
        if key not in spec:
            raise ConfigError(f"--spec: key '{key}' missing (floodx.config.attack_spec)")
    spec = {**SPEC_OPTIONAL, **spec}
    if isinstance(spec["recipes"], str):
        raise ConfigError("--spec: 'recipes' is a list of recipe names")
    return spec


def _parser():
    parser = argparse.ArgumentParser(prog="python -m floodx.attacks.run",
                                     description="Attack one shard of the recorded subset.")
    parser.add_argument("--spec", required=True,
                        help="JSON attack settings: recipes, mode, subset, resources, and optionally epochs, "
                             "num_shards, query_budget, limit, max_length, seed, batch_size, split, identity, "
                             "reuse ({recipe: another job's finished shard CSV, copied where its fingerprint is "
                             "this shard's}) "
                             "(floodx.config.attack_spec). Several recipes or epochs run in one process (one "
                             "import of TextAttack, one model load) and need '{recipe}' / '{epoch}' in --out "
                             "and --summary")
    parser.add_argument("--checkpoint", required=True,
                        help="save_pretrained folder, or a training run folder when the spec names epochs")
    parser.add_argument("--data", required=True, help="prepared data directory")
    parser.add_argument("--shard", type=int, default=0, help="which of the spec's num_shards")
    parser.add_argument("--out", required=True, help="shard CSV")
    parser.add_argument("--summary", default=None,
                        help="also gather the (single) shard into this summary.json, with "
                             "examples.csv beside it, in the same process")
    parser.add_argument("--clean-from", default=None,
                        help="with --summary: training metrics.json whose evaluation of the "
                             "attacked epoch gives Clean%% (default: evaluate the checkpoint)")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def _reuse_map(reuse, recipes, epochs):
    """The spec's `reuse`, {recipe: finished shard CSV of another job}, checked (errors name the key)."""
    if reuse is None:
        return {}
    if not isinstance(reuse, dict) or not all(isinstance(v, str) and v for v in reuse.values()):
        raise ConfigError("--spec: 'reuse' maps a recipe to a shard CSV path")
    unknown = sorted(set(reuse) - set(recipes))
    if unknown:
        raise ConfigError(f"--spec: 'reuse' names recipe(s) {unknown} that the spec's recipes {recipes} do not")
    if epochs != [None]:
        raise ConfigError("--spec: 'reuse' copies the shard of one checkpoint, not of the spec's epochs")
    return {recipe: Path(path) for recipe, path in reuse.items()}


def _fill(path, epoch, recipe):
    """`path` with its '{epoch}' and '{recipe}' placeholders filled."""
    return None if path is None else path.replace("{epoch}", str(epoch)).replace("{recipe}", recipe)


def _main(argv):
    args = _parser().parse_args(argv)
    spec = read_attack_spec(args.spec)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    recipes, epochs = list(spec["recipes"]), list(spec["epochs"] or [None])
    for name, values in (("epoch", epochs), ("recipe", recipes)):
        if len(values) > 1 and not all("{" + name + "}" in (p or "{" + name + "}")
                                       for p in (args.out, args.summary)):
            raise ConfigError(f"several {name}s in the spec need '{{{name}}}' in --out and --summary")
    if args.summary and spec["num_shards"] != 1:
        raise ConfigError("--summary gathers a single shard: use num_shards 1, or the "
                          "'python -m floodx.attacks.metrics gather' command for shards")
    from ..devices import select_device

    device = select_device(max(1, args.threads))  # claims a GPU slot where there are GPUs
    tag = f"[{Path(args.out).name}]"

    def log(message):
        print(f"floodx: {tag} {message}", file=sys.stderr, flush=True)

    subset = spec["subset"]
    reuse = _reuse_map(spec["reuse"], recipes, epochs)
    all_stats = []
    for recipe in recipes:
        for epoch in epochs:
            start = time.perf_counter()
            out = _fill(args.out, epoch, recipe)
            stats = attack_shard(
                args.checkpoint, args.data, spec["split"] or subset, subset, recipe, spec["mode"], args.shard,
                spec["num_shards"], out, spec["resources"], query_budget=spec["query_budget"],
                limit=spec["limit"], epoch=epoch, batch_size=spec["batch_size"], seed=spec["seed"], log=log,
                device=device, max_length=spec["max_length"], precision=spec["precision"], reuse=reuse.get(recipe),
                calibrate=spec["calibrate"])
            log(f"{recipe} done in {time.perf_counter() - start:.1f} s: {json.dumps(stats)}")
            if args.summary:
                stats["summary"] = _gather_one(args, spec, epoch, recipe, out, device, log, stats.get("calibration"))
            all_stats.append(stats)
    return all_stats[0] if len(all_stats) == 1 else all_stats


def _gather_one(args, spec, epoch, recipe, out, device, log, calibration=None):
    """`metrics.gather` of the one shard just written (the dev and per-epoch attacks)."""
    from .metrics import gather

    checkpoint = resolve_checkpoint(args.checkpoint, epoch)
    summary_path = Path(_fill(args.summary, epoch, recipe))
    identity = spec["identity"]
    summary = gather(
        [out], checkpoint, args.data, summary_path.with_name("examples.csv"), summary_path,
        recipe=recipe, mode=spec["mode"], limit=spec["limit"], query_budget=spec["query_budget"],
        identity=identity and {**identity, "recipe": recipe, "epoch": epoch},
        subset=spec["subset"], split=spec["split"] or spec["subset"], max_length=spec["max_length"],
        device=device, precision=spec["precision"], clean_from=(args.clean_from, epoch) if args.clean_from else None,
        calibration=calibration)
    log(f"{summary_path}: clean {summary['clean_acc']} aua {summary['aua']} suc {summary['suc']} "
        f"queries {summary['avg_queries']} (n={summary['n_attacked']})")
    return str(summary_path)


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
