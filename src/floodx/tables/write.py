"""Writing every table (CSV, Markdown, its HTML page, LaTeX) and the command line `python -m floodx.tables`."""


import argparse
from pathlib import Path

from ..errors import run_main
from ..pages import write_markdown
from ..files import read_result, write_text
from .calibrated import calibrated_markdown, calibrated_table
from .common import parse_paper_map, write_csv
from .reading import reading_markdown
from .search import search_markdown, search_summary
from .table2 import load_attack_summaries, load_saturation, table2, table2_latex, table2_markdown
from .table3 import load_times, table3, table3_latex, table3_markdown
from .versus_paper import table2_vs_paper, table2_vs_paper_markdown


# ---------------------------------------------------------------- writing everything
def write_table2(summary_paths, out_dir, paper_map=None, caption=None, flood_level_paths=(), saturation_paths=()):
    """Table 2 and its reading; `flood_level_paths` (levels.json, figures.grid_test_attack) add the verdict on
    the accordance criterion to the reading, `saturation_paths` (saturation.json) its score-masking warning."""
    out_dir = Path(out_dir)
    table = table2(load_attack_summaries(summary_paths), load_saturation(saturation_paths))
    export = table.copy()
    write_csv(out_dir / "table2.csv", export)
    write_markdown(out_dir / "table2.md", table2_markdown(table, caption), "Table 2")
    write_text(out_dir / "table2.tex", table2_latex(table, caption))
    flood_levels = [read_result(path) for path in flood_level_paths]
    write_markdown(out_dir / "reading.md", reading_markdown(table, caption, flood_levels), "What Table 2 shows")
    comparison = table2_vs_paper(table, paper_map)
    write_csv(out_dir / "table2_vs_paper.csv", comparison)
    write_markdown(out_dir / "table2_vs_paper.md", table2_vs_paper_markdown(comparison, caption),
                   "Table 2 beside the paper")
    return table, comparison


def write_calibrated(plain_paths, calibrated_paths, out_dir, caption=None, saturation_paths=()):
    """Table 2 on calibrated scores (attacks.calibrated) beside the same models' plain attacks."""
    out_dir = Path(out_dir)
    table = calibrated_table(plain_paths, calibrated_paths, saturation_paths)
    write_csv(out_dir / "calibrated.csv", table)
    write_markdown(out_dir / "calibrated.md", calibrated_markdown(table, caption), "Table 2 on calibrated scores")
    return table


def write_table3(times_paths, out_dir, paper_map=None, caption=None):
    out_dir = Path(out_dir)
    frame = table3(load_times(times_paths), paper_map)
    write_csv(out_dir / "table3.csv", frame)
    write_markdown(out_dir / "table3.md", table3_markdown(frame, caption), "Table 3")
    write_text(out_dir / "table3.tex", table3_latex(frame, caption))
    return frame


def write_search(choice_paths, out_dir, window_paths=(), caption=None):
    out_dir = Path(out_dir)
    frame = search_summary(choice_paths, window_paths)
    write_csv(out_dir / "search.csv", frame)
    write_markdown(out_dir / "search.md", search_markdown(frame, caption), "Flood-level search")
    return frame


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.tables", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t2 = sub.add_parser("table2", help="Table 2 and table2_vs_paper from attack summary.json files")
    t2.add_argument("--summaries", nargs="+", required=True)
    t2.add_argument("--out-dir", required=True)
    t2.add_argument("--paper-map", default=None, metavar="JSON",
                    help='the paper data set each of ours is compared with, e.g. '
                         '\'{"rt": {"paper": "sst2", "stand_in": true}}\' (default: that one)')
    t2.add_argument("--caption", default=None)
    t2.add_argument("--flood-levels", nargs="*", default=[], metavar="LEVELS_JSON",
                    help="flood-level analyses (figures.grid_test_attack): the reading adds their verdicts")
    t2.add_argument("--saturation", nargs="*", default=[], metavar="SATURATION_JSON",
                    help="each model's softmax saturation (floodx.saturation): the reading warns of masked scores")
    ca = sub.add_parser("calibrated", help="Table 2 on calibrated scores, beside the plain attacks of the same models")
    ca.add_argument("--plain", nargs="+", required=True, help="Table 2's attack summary.json files")
    ca.add_argument("--calibrated", nargs="+", required=True, help="the calibrated attacks' summary.json files")
    ca.add_argument("--saturation", nargs="*", default=[], metavar="SATURATION_JSON",
                    help="the models' softmax saturation at T = 1 (floodx.saturation)")
    ca.add_argument("--out-dir", required=True)
    ca.add_argument("--caption", default=None)
    t3 = sub.add_parser("table3", help="Table 3 from profiling times.json files")
    t3.add_argument("--times", nargs="+", required=True)
    t3.add_argument("--out-dir", required=True)
    t3.add_argument("--paper-map", default=None, metavar="JSON")
    t3.add_argument("--caption", default=None)
    se = sub.add_parser("search", help="flood levels chosen and training runs needed")
    se.add_argument("--choices", nargs="+", required=True)
    se.add_argument("--windows", nargs="*", default=[])
    se.add_argument("--out-dir", required=True)
    se.add_argument("--caption", default=None)
    for p in (t2, ca, t3, se):
        p.add_argument("--threads", type=int, default=None, help="accepted for uniformity; unused")
    args = parser.parse_args(argv)
    if args.command == "table2":
        table, _ = write_table2(args.summaries, args.out_dir, parse_paper_map(args.paper_map), args.caption,
                                args.flood_levels, args.saturation)
        print(f"table2: {len(table)} rows -> {args.out_dir}")
    elif args.command == "calibrated":
        table = write_calibrated(args.plain, args.calibrated, args.out_dir, args.caption, args.saturation)
        print(f"calibrated: {len(table)} rows -> {args.out_dir}")
    elif args.command == "table3":
        frame = write_table3(args.times, args.out_dir, parse_paper_map(args.paper_map), args.caption)
        print(f"table3: {len(frame)} rows -> {args.out_dir}")
    else:
        frame = write_search(args.choices, args.out_dir, args.windows, args.caption)
        print(f"search: {len(frame)} rows -> {args.out_dir}")


def main(argv=None):
    return run_main(_main, argv)

