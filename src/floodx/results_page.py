"""A run's results page, generated from its own outputs, so that what a reader is shown cannot drift from
the numbers: `results/results.md` (and .html) with the verdict, Table 2 and its reading, the search, Table 3,
the figures, the job time per stage (Snakemake's benchmark files), and a stamp (commit, config, machine).

    python -m floodx.results_page write --results results --config-json '{...}' --title "..." --out results/results.md
    python -m floodx.results_page publish --results runs/evidence/results --to docs/results/evidence

`publish` copies a finished run's page and its figures into the documentation (the README links there).
"""

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
from pathlib import Path

from .errors import DataError, run_main
from .files import write_text
from .pages import write_markdown
from .provenance import _git_commit, _version

TABLES = (("reading", "What the run shows"), ("table2", "Table 2"),
          ("calibrated", "Table 2 on calibrated scores"), ("search", "The flood-level search"),
          ("table3", "Table 3: training cost"))
STAGES = ("train", "probe", "attack", "attack_calibrated", "grid_attack", "dev_attack", "epoch_attack", "profile",
          "landscape")


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    """One line on the machine that wrote the page (where the jobs ran, for a local run)."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{_cpu_model()}, {os.cpu_count()} cores"
    return f"{device}; Python {platform.python_version()}, torch {torch.__version__}, transformers {_version('transformers')}"


def job_seconds(benchmarks):
    """{stage: (jobs, seconds)} summed over Snakemake's benchmark files (benchmarks/<stage>/...tsv)."""
    totals = {}
    root = Path(benchmarks)
    for path in sorted(root.glob("**/*.tsv")):
        stage = path.relative_to(root).parts[0]
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows:
            jobs, seconds = totals.get(stage, (0, 0.0))
            totals[stage] = (jobs + 1, seconds + float(rows[-1]["s"]))
    return totals


def trained_in(results, config):
    """What the page says of training precision: the models' own record (Table 2's CSV), else the setting.

    `training.bf16: auto` resolves on each job's machine, so the setting alone does not say it."""
    rows = []
    table2 = Path(results) / "tables" / "table2.csv"
    if table2.is_file():
        with open(table2, newline="") as handle:
            rows = list(csv.DictReader(handle))
    found = sorted({part for row in rows for part in (row.get("training_precision") or "").split("+") if part})
    setting = config.get("training", {}).get("bf16", "auto")
    setting = json.dumps(setting) if isinstance(setting, bool) else setting     # as the YAML spells it
    if not found:
        return f"training.bf16 {setting} (the models' precision is not recorded)"
    if len(found) == 1:
        return f"models trained in {found[0]} (training.bf16 {setting})"
    return f"models trained in {' and '.join(found)}: mixed (training.bf16 {setting}; see Table 2's notes)"


def page_markdown(results, config, title, figures, benchmarks=None, commit=None, written=None):
    results = Path(results)
    lines = [f"# {title}", "",
             f"Generated from the run's own outputs by `python -m floodx.results_page` on "
             f"{written or dt.date.today().isoformat()}: commit `{(commit or _git_commit() or 'unknown')[:12]}`, "
             f"machine: {machine()}.", ""]
    seeds = config.get("seeds", [])
    datasets = ", ".join(f"{name} ({spec.get('source')}: {spec.get('name') or spec.get('path')}, "
                         f"train {spec.get('train_size') or 'whole split'}, "
                         f"{spec.get('attack_examples') or 'all'} attacked test examples)"
                         for name, spec in config.get("datasets", {}).items())
    model = config.get("model", {})
    lines += [f"Config: model {model.get('name_or_path') or model.get('source')}; data {datasets}; "
              f"methods {', '.join(config.get('methods', []))}; {config.get('training', {}).get('epochs')} epochs, "
              f"learning rate {config.get('training', {}).get('learning_rate')}; seeds {seeds}; attacks "
              f"{', '.join(config.get('attacks', {}).get('recipes', []))} ({config.get('attacks', {}).get('mode')} "
              f"mode, {config.get('attacks', {}).get('precision', 'fp32')} queries); "
              f"{trained_in(results, config)}.", ""]
    for name, heading in TABLES:
        path = results / "tables" / f"{name}.md"
        if not path.is_file() or (name == "calibrated" and not config.get("attacks", {}).get("calibrated")):
            continue    # (a calibrated table left from a run whose config no longer asks for it is not shown)
        text = path.read_text(encoding="utf-8").strip().splitlines()
        body = text[1:] if text and text[0].startswith("# ") else text   # the page gives the heading
        lines += [f"## {heading}", "", *[line.replace("\n", " ") for line in body], ""]
    if figures:
        lines += ["## Figures", ""]
        for figure in figures:
            lines += [f"![{Path(figure).stem}](figures/{Path(figure).name})", ""]
    if benchmarks and Path(benchmarks).is_dir():
        totals = job_seconds(benchmarks)
        if totals:
            lines += ["## Job time per stage", "",
                      "Summed over Snakemake's benchmark files (jobs that ran in parallel overlap, so the wall "
                      "time is less).", "", "| stage | jobs | job seconds |", "|---|---:|---:|"]
            for stage, (jobs, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
                lines.append(f"| {stage} | {jobs} | {seconds:,.0f} |")
            total = sum(s for _, s in totals.values())
            lines += [f"| **all** | {sum(j for j, _ in totals.values())} | **{total:,.0f}** |", ""]
    return "\n".join(lines) + "\n"


def publish(results, target):
    """Copy a finished run's results.md (as index.md) and its figures into `target`."""
    results, target = Path(results), Path(target)
    page = results / "results.md"
    if not page.is_file():
        raise DataError(f"{page}: missing; the run's results_page job writes it (snakemake results/results.md)")
    (target / "figures").mkdir(parents=True, exist_ok=True)
    text = page.read_text(encoding="utf-8")
    for png in sorted((results / "figures").glob("*.png")):
        if f"figures/{png.name}" in text:
            shutil.copy2(png, target / "figures" / png.name)
    write_text(target / "index.md", text)
    return target / "index.md"


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.results_page", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="results/results.md (and .html) from a run's outputs")
    w.add_argument("--results", default="results")
    w.add_argument("--benchmarks", default="benchmarks")
    w.add_argument("--config-json", required=True)
    w.add_argument("--title", required=True)
    w.add_argument("--figures", nargs="*", default=[])
    w.add_argument("--out", required=True)
    p = sub.add_parser("publish", help="copy a run's page and figures into the documentation")
    p.add_argument("--results", required=True)
    p.add_argument("--to", required=True)
    args = parser.parse_args(argv)
    if args.command == "publish":
        print(f"published -> {publish(args.results, args.to)}")
        return
    config = json.loads(args.config_json)
    for figure in args.figures:
        if not Path(figure).is_file():
            raise DataError(f"{figure}: no such figure")
    write_markdown(args.out, page_markdown(args.results, config, args.title, args.figures, args.benchmarks),
                   args.title)
    print(f"results page -> {args.out}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
