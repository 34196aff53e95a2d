"""What a run folder's tables already cover beyond the config about to run in it.

Snakemake reruns a job whose parameters or inputs changed. Table 2, Table 3's profiling and Figure 1's
noise landscape span every method (Table 2 every seed, recipe and data set too) of the config, and the
flood levels pooled over seeds every seed, so resuming a fuller run with fewer config overlays (say
`config/seeds.yaml` without the `config/successors.yaml` it ran with) would rewrite them for fewer
methods: the profile is measured again, and the fuller tables are gone until a run with every overlay
restores them. `check_resume` stops such a run before any job, naming what would be dropped and the
repository's overlays that would restore it (a folder does not record the overlays it was run with); moving the
named files away (or naming the same overlays as before) lets it go on. A config that names more than
the folder holds extends the run and passes.
"""

import csv
import json
from pathlib import Path

import yaml

from .errors import ConfigError

TABLE2 = Path("tables") / "table2.csv"


def _rows(path):
    """The rows of a CSV the workflow wrote, or None when it cannot be read (it is rewritten anyway)."""
    try:
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    except (OSError, ValueError, csv.Error):
        return None


def _table2(path):
    rows = _rows(path)
    if not rows or not {"dataset", "method", "seeds"} <= set(rows[0]):
        return None
    return {"dataset": {r["dataset"] for r in rows}, "method": {r["method"] for r in rows},
            "seed": {s for r in rows for s in str(r.get("seeds") or "").split()},
            "recipe": {column[:-len("_aua_mean")] for column in rows[0] if column.endswith("_aua_mean")}}


def _json_field(path, key):
    """One field of a JSON object the workflow wrote, or None when it cannot be read."""
    try:
        return json.loads(Path(path).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _profile(path):
    methods = _json_field(path, "methods")
    return {"method": set(methods)} if isinstance(methods, dict) else None


def _landscape(path):
    rows = _rows(path)
    return {"method": {r["method"] for r in rows}} if rows and "method" in rows[0] else None


def _pooled_levels(path):
    seeds = _json_field(path, "seeds")
    return {"seed": {str(s) for s in seeds}} if isinstance(seeds, list) else None


def held(results="results", datasets=(), seeds=()):
    """{file: {"dataset"/"method"/"seed"/"recipe": names}} that the folder's outputs across methods or seeds
    cover: Table 2, Table 3's profile, Figure 1's noise landscape and the flood levels pooled over seeds
    (files that cannot be read count for nothing)."""
    results = Path(results)
    candidates = [(results / TABLE2, _table2)]
    candidates += [(results / "profile" / dataset / "times.json", _profile) for dataset in datasets]
    candidates += [(results / "landscape" / dataset / f"seed{seed}" / "noise_loss.csv", _landscape)
                   for dataset in datasets for seed in seeds]
    candidates += [(results / "grid_attack" / dataset / "levels.json", _pooled_levels) for dataset in datasets]
    found = {}
    for path, read in candidates:
        covered = read(path) if path.is_file() else None
        if covered:
            found[str(path.resolve())] = covered
    return found


def dropped(config, results="results"):
    """{file (absolute): {kind: names}} of what `config` would drop from the folder's tables (empty: nothing)."""
    wanted = {"dataset": set(config["datasets"]), "method": set(config["methods"]),
              "seed": {str(s) for s in config["seeds"]}, "recipe": set(config["attacks"]["recipes"])}
    lost = {}
    for path, covered in held(results, config["datasets"], config["seeds"]).items():
        missing = {kind: sorted(names - wanted[kind]) for kind, names in covered.items() if names - wanted[kind]}
        if missing:
            lost[path] = missing
    return lost


# Where an overlay names each kind of thing a folder's tables cover.
_KEYS = {"dataset": ("datasets",), "method": ("methods",), "seed": ("seeds",), "recipe": ("attacks", "recipes")}
# The keys an overlay that only extends a run may set (config/successors.yaml, config/seeds.yaml): one that
# sets others (a model, a training setting) would change the run it is meant to resume.
_EXTENDING = {"datasets", "methods", "seeds", "attacks", "method_params"}


def _named(overlay, kind):
    """The names an overlay gives for one kind (data sets are a mapping's keys), as strings."""
    value = overlay
    for key in _KEYS[kind]:
        if not isinstance(value, dict) or key not in value:
            return set()
        value = value[key]
    return {str(v) for v in value} if isinstance(value, (list, dict)) else set()


def _missing(lost):
    missing = {}
    for kinds in lost.values():
        for kind, names in kinds.items():
            missing.setdefault(kind, set()).update(names)
    return missing


def _extending_overlay(path):
    """The overlay at `path` if it only extends a run (a mapping with keys in `_EXTENDING`, not the base
    config.yaml that every run reads), else None (also where it cannot be read)."""
    if path.name == "config.yaml":
        return None
    try:
        overlay = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return overlay if isinstance(overlay, dict) and set(overlay) <= _EXTENDING else None


def restoring_overlays(lost, overlays_dir):
    """{kind: [overlay paths]}: the overlays in `overlays_dir` that only extend a run (`_extending_overlay`)
    and name every dropped name of that kind."""
    missing, found = _missing(lost), {}
    for path in sorted(Path(overlays_dir).glob("*.yaml")):
        overlay = _extending_overlay(path)
        if overlay is None:
            continue
        for kind, names in missing.items():
            if names <= _named(overlay, kind):
                found.setdefault(kind, []).append(path)
    return found


def restoring_command(lost, results, overlays_dir, given=()):
    """The overlays to resume with (those given, then the repository's extending ones that name what would be
    dropped), checked: merged as Snakemake merges them, they drop nothing; or None."""
    from .config import run_config

    found = restoring_overlays(lost, overlays_dir)
    if set(found) != set(_missing(lost)):
        return None                                   # some kind no extending overlay names
    files = [Path(p) for p in given]
    for paths in found.values():
        if not {p.resolve() for p in paths} & {f.resolve() for f in files}:   # no overlay of this kind given yet
            files.append(paths[0])
    try:
        merged = run_config(files)
    except (ConfigError, OSError, ValueError, yaml.YAMLError):   # an overlay the schema refuses: no advice
        return None
    return None if dropped(merged, results) else files


def _advice(lost, results, overlays_dir, given):
    files = restoring_command(lost, results, overlays_dir, given) if overlays_dir else None
    if files is None:
        return "Resume with the config overlays the run was made with"
    added = [f for f in files if f.resolve() not in {Path(g).resolve() for g in given}]
    keys = sorted({key for f in added for key in _extending_overlay(f)})   # found, so extending
    return (f"Adding {', '.join(f.name for f in added)} (from {Path(overlays_dir).resolve()}; setting only "
            f"{', '.join(keys)}) restores what would be dropped: resume with --configfile "
            f"{' '.join(str(f.resolve()) for f in files)}")


def check_resume(config, results="results", overlays_dir=None, given=()):
    """Stop (ConfigError) before any job when the config would rewrite the folder's tables with less.

    `overlays_dir` (the repository's config/) and `given` (the overlays this run was given) make the
    message name the overlays that would restore what is dropped."""
    lost = dropped(config, results)
    if not lost:
        return
    lines = []
    for path, kinds in lost.items():
        named = "; ".join(f"{kind}s " + ", ".join(names) for kind, names in kinds.items())
        lines.append(f"  {path}: {named}")
    raise ConfigError(
        "this run folder's tables cover more than the config names (keys datasets, methods, seeds, attacks.recipes):\n"
        + "\n".join(lines)
        + "\nRunning would rewrite them without those. " + _advice(lost, results, overlays_dir, given)
        + ", or move the files named above away to keep this smaller run on purpose."
    )
