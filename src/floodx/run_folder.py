"""What a run folder's tables already cover beyond the config about to run in it.

Snakemake reruns a job whose parameters changed. Table 2 and Table 3's profiling span every method,
seed and data set of the config, so resuming a fuller run with fewer config overlays (say
`config/seeds.yaml` without the `config/successors.yaml` it ran with) would rewrite them for fewer
methods: the profile is measured again, and the fuller tables are gone until a run with every overlay
restores them. `check_resume` stops such a run before any job, naming what would be dropped; moving
the named files away (or naming the same overlays as before) lets it go on. A config that names more
than the folder holds extends the run and passes.
"""

import csv
import json
from pathlib import Path

from .errors import ConfigError

TABLE2 = Path("tables") / "table2.csv"


def _profile(results, dataset):
    return Path(results) / "profile" / dataset / "times.json"


def held(results="results", datasets=()):
    """{file: {"dataset"/"method"/"seed": names}} that the folder's cross-method outputs cover."""
    found = {}
    table = Path(results) / TABLE2
    if table.is_file():
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle))
        recipes = {column[:-len("_aua_mean")] for column in (rows[0] if rows else {}) if column.endswith("_aua_mean")}
        found[str(table)] = {"dataset": {r["dataset"] for r in rows}, "method": {r["method"] for r in rows},
                             "seed": {s for r in rows for s in str(r.get("seeds") or "").split()},
                             "recipe": recipes}
    for dataset in datasets:
        path = _profile(results, dataset)
        if path.is_file():
            try:
                methods = set(json.loads(path.read_text()).get("methods") or {})
            except (OSError, ValueError):
                continue    # an unreadable profile is rewritten anyway; nothing worth keeping
            found[str(path)] = {"method": methods}
    return found


def dropped(config, results="results"):
    """{file: {kind: names}} of what `config` would drop from the folder's tables (empty: nothing)."""
    wanted = {"dataset": set(config["datasets"]), "method": set(config["methods"]),
              "seed": {str(s) for s in config["seeds"]}, "recipe": set(config["attacks"]["recipes"])}
    lost = {}
    for path, covered in held(results, config["datasets"]).items():
        missing = {kind: sorted(names - wanted[kind]) for kind, names in covered.items() if names - wanted[kind]}
        if missing:
            lost[path] = missing
    return lost


def check_resume(config, results="results"):
    """Stop (ConfigError) before any job when the config would rewrite the folder's tables with less."""
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
        + "\nRunning would rewrite them without those. Resume with the config overlays the run was made with "
          "(e.g. CONFIG=\"config/successors.yaml config/seeds.yaml\"), or move the files named above away "
          "to keep this smaller run on purpose."
    )
