"""After the flood-level choice: remove the weights of flood runs that neither Flooding nor Flooding-X chose.

With `training.keep_checkpoints: chosen`, the wide grid's runs (50 levels × data sets × seeds in the
paper) hold most of a run's disk although only two runs per data set and seed are read after the
choice. Once both choices are made, this removes the `checkpoints/` folder of every other candidate;
its `metrics.json` and log stay, and so do the choice, the dev attacks and every table.

Nothing later reads a removed run: the test attacks, Figure 1 and Figure 4 read the chosen runs only.
Should a dev attack of a removed run have to run again (its settings changed), Snakemake reruns the
run's training first: in this mode training also writes a temporary `weights.ready` file that the dev
attack needs, and Snakemake remakes a missing temporary file only for a job that must run.

    python -m floodx.retention --candidate results/train/D/flooding-b0.12/seed42 ... \
        --choice results/search/D/flooding/seed42/choice.json ... --out results/search/D/seed42/pruned.json
"""

import argparse
import shutil
from pathlib import Path

from .errors import DataError, run_main
from .files import read_json, write_json
from .provenance import provenance

READY_FILE = "weights.ready"


def folder_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def chosen_runs(choice_paths):
    """The run names the choices picked, and the (data set, seed) they all belong to."""
    runs, owners = set(), set()
    for path in choice_paths:
        try:
            choice = read_json(path)
            identity = choice["identity"]
            runs.add(choice["run"])
            owners.add((identity["dataset"], int(identity["seed"])))
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"cannot read the flood-level choice {path}: {err!r}") from None
    if len(owners) != 1:
        raise DataError(f"the choices {', '.join(map(str, choice_paths))} belong to different data sets or seeds: "
                        f"{sorted(owners)}")
    return runs, owners.pop()


def prune(candidates, choice_paths, out):
    """Remove `checkpoints/` of every candidate run folder whose run no choice picked; record what went."""
    chosen, (dataset, seed) = chosen_runs(choice_paths)
    runs = {}                                # every candidate is checked before anything is removed
    for folder in map(Path, candidates):
        try:
            metrics = read_json(folder / "metrics.json")
            identity = (metrics["dataset"], int(metrics["seed"]), metrics["run"])
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{folder}: no finished run's metrics.json with its dataset, seed and run ({err!r}); "
                            "a candidate run must have finished before its weights may be removed") from None
        if identity[:2] != (dataset, seed):
            raise DataError(f"{folder / 'metrics.json'}: a run of data set {identity[0]}, seed {identity[1]}, "
                            f"not of {dataset}, seed {seed}, which the choices belong to")
        runs[folder] = identity[2]
    kept = [str(f) for f, run in runs.items() if run in chosen]
    removed = []
    for folder, run in runs.items():
        if run in chosen:
            continue
        weights = folder / "checkpoints"
        size = 0
        if weights.exists():
            size = folder_bytes(weights)
            shutil.rmtree(weights)                  # a failed delete stops the job: pruned.json never lies
        removed.append({"run": run, "folder": str(folder), "bytes": size})
    record = {
        "identity": {"dataset": dataset, "seed": seed},
        "chosen": sorted(chosen), "kept": kept, "removed": removed,
        "bytes_freed": sum(r["bytes"] for r in removed),
        "provenance": provenance(spec={"candidates": list(map(str, candidates)),
                                       "choices": list(map(str, choice_paths))}, seed=seed),
    }
    write_json(Path(out), record)
    return record


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.retention", description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", action="append", default=[], help="a flood run's folder (repeat)")
    parser.add_argument("--choice", action="append", required=True, help="a choice.json of the same data set and seed")
    parser.add_argument("--out", required=True, help="pruned.json: what was removed")
    args = parser.parse_args(argv)
    record = prune(args.candidate, args.choice, args.out)
    owner, removed = record["identity"], record["removed"]
    print(f"{owner['dataset']} seed {owner['seed']}: kept {', '.join(record['chosen'])}; removed the weights "
          f"of {len(removed)} run(s), {record['bytes_freed'] / 1e9:.3g} GB")
    return record


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
