"""The command line, one sub-command per figure (each PNG written atomically)::

    python -m floodx.figures figure1 --noise-loss results/landscape/rt/seed42/noise_loss.csv \
        --dataset rt --out results/figures/figure1_rt.png --caption "..."
    python -m floodx.figures figure2 --flooding-choice results/search/rt/flooding/seed42/choice.json \
        --flooding-x-choice results/search/rt/flooding_x/seed42/choice.json \
        --window results/probe/rt/seed42/window.json [--test-summary 0.10=.../summary.json ...] \
        --dataset rt --out results/figures/figure2_rt.png --caption "..."
    python -m floodx.figures figure2-test --levels results/grid_attack/rt/seed42/levels.json \
        --dataset rt --out results/figures/figure2_test_rt.png
    python -m floodx.figures figure3 --accordance results/probe/rt/seed42/accordance.csv \
        --window results/probe/rt/seed42/window.json --dataset rt --out results/figures/figure3_rt.png
    python -m floodx.figures figure4 --metrics finetune=.../metrics.json --metrics flooding_x=... \
        --aua .../epoch-1/summary.json .../epoch-2/summary.json ... --dataset rt \
        --out results/figures/figure4_rt.png --caption "..."
"""

import argparse
import sys

from ..errors import DataError, run_main
from ..files import read_result
from .figure1 import figure1
from .figure2 import figure2, figure2_inputs, figure2_test
from .figure3 import figure3
from .figure4 import figure4, figure4_inputs

DESCRIPTION = sys.modules[__package__].__doc__.splitlines()[0]  # the package docstring's first line


def _pairs(items, flag, key_parser=str):
    out = {}
    for item in items or ():
        if "=" not in item:
            raise DataError(f"{flag} expects KEY=PATH, got '{item}'")
        key, path = item.split("=", 1)
        out.setdefault(key_parser(key), []).append(path)
    return out


def _by_method_epoch(paths):
    """{(method, epoch): [summary.json, ...]} from each file's own identity (never from its path)."""
    out = {}
    for path in paths or ():
        identity = read_result(path).get("identity") or {}
        if identity.get("method") is None or identity.get("epoch") is None:
            raise DataError(f"{path}: identity.method / identity.epoch missing (written by the epoch_attack "
                            "job; rerun it: snakemake -R epoch_attack)")
        out.setdefault((identity["method"], int(identity["epoch"])), []).append(path)
    return out


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.figures", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    f1 = sub.add_parser("figure1", help="loss under Gaussian noise on the input embeddings")
    f1.add_argument("--noise-loss", required=True)
    f2 = sub.add_parser("figure2", help="robustness vs flood level with the accordance window")
    f2.add_argument("--flooding-choice", required=True)
    f2.add_argument("--flooding-x-choice", default=None)
    f2.add_argument("--window", default=None)
    f2.add_argument("--test-summary", action="append", default=[], metavar="LEVEL=SUMMARY_JSON")
    f2.add_argument("--attack", default="textfooler")
    f2t = sub.add_parser("figure2-test", help="test Aua%% of every searched flood level (figures.grid_test_attack)")
    f2t.add_argument("--levels", required=True, help="the flood-level analysis (levels.json)")
    f3 = sub.add_parser("figure3", help="gradient accordance and losses per sub-epoch")
    f3.add_argument("--accordance", required=True)
    f3.add_argument("--window", default=None)
    f4 = sub.add_parser("figure4", help="training loss and Aua%% per epoch")
    f4.add_argument("--metrics", action="append", default=[], required=True, metavar="METHOD=METRICS_JSON")
    f4.add_argument("--aua", nargs="*", default=[], metavar="SUMMARY_JSON",
                    help="per-epoch attack summaries (each names its method and epoch in 'identity')")
    f4.add_argument("--attack", default="textfooler")
    for p in (f1, f2, f2t, f3, f4):
        p.add_argument("--dataset", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--caption", default=None)
        p.add_argument("--threads", type=int, default=None, help="accepted for uniformity; unused")
    args = parser.parse_args(argv)
    if args.command == "figure1":
        figure1(args.noise_loss, args.out, args.dataset, args.caption)
    elif args.command == "figure2":
        tests = {level: paths[-1] for level, paths in _pairs(args.test_summary, "--test-summary").items()}
        points, window, chosen, ylabel = figure2_inputs(args.flooding_choice, args.flooding_x_choice,
                                                        args.window, tests, args.attack)
        figure2(points, args.out, args.dataset, window, chosen, ylabel, args.caption)
    elif args.command == "figure2-test":
        figure2_test(args.levels, args.out, args.dataset, args.caption)
    elif args.command == "figure3":
        figure3(args.accordance, args.out, args.dataset, args.window, args.caption)
    else:
        losses, auas, levels = figure4_inputs(_pairs(args.metrics, "--metrics"),
                                              _by_method_epoch(args.aua))
        figure4(losses, auas, args.out, args.dataset, levels, args.attack, args.caption)
    print(f"{args.command} -> {args.out}")


def main(argv=None):
    return run_main(_main, argv)

