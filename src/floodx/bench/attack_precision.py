"""Does bf16 change what an attack finds? The same models attacked in fp32 and in bf16 on the same
examples, outcome by outcome (the evidence `attacks.precision: bf16` needs before it is adopted).

    python -m floodx.bench.attack_precision --run runs/evidence/results/train/rt/finetune/seed42 \
        --run .../flooding-b0.20/seed42 --data runs/evidence/results/data/rt \
        --resources runs/evidence/resources --recipe textfooler --limit 100 --out precision.json

Per model and in all: Aua% at each precision, how many examples changed outcome (robust or not) and
how many changed result (successful / failed / skipped), the exact McNemar test of the robust
outcomes (bf16 against fp32 on the same examples), and the attack seconds of each. Prints
`name: value` lines; `--out` keeps the whole record.
"""

import argparse
import json
import time
from pathlib import Path

from .. import stats
from ..comparisons import robust
from ..errors import run_main
from ..files import read_json, write_json
from ..provenance import provenance


def attack_both(run, data_dir, resources, recipe, limit, work_dir, mode="offline", max_length=None):
    """{precision: (rows by idx, seconds)} of one training run's final checkpoint."""
    from ..attacks.rows import read_rows
    from ..attacks.run import attack_shard

    final = read_json(Path(run) / "metrics.json")["final_checkpoint"]
    out = {}
    for precision in ("fp32", "bf16"):
        csv = Path(work_dir) / Path(run).parent.name / precision / "shard-0.csv"
        started = time.perf_counter()
        attack_shard(Path(run) / final, data_dir, "test", "test", recipe, mode, 0, 1, csv, resources,
                     limit=limit, max_length=max_length, precision=precision)
        out[precision] = ({row["idx"]: row for row in read_rows(csv)}, time.perf_counter() - started)
    return out


def compare_outcomes(fp32_rows, bf16_rows):
    """Example-by-example comparison of two attacks of one model (rows by idx)."""
    ids = sorted(set(fp32_rows) & set(bf16_rows))
    a = {i: robust(fp32_rows[i]) for i in ids}
    b = {i: robust(bf16_rows[i]) for i in ids}
    test = stats.paired_comparison({0: b}, {0: a})
    return {
        "n": len(ids),
        "aua_fp32": 100 * sum(a.values()) / len(ids), "aua_bf16": 100 * sum(b.values()) / len(ids),
        "robust_outcome_flips": sum(a[i] != b[i] for i in ids),
        "result_changes": sum(fp32_rows[i]["result"] != bf16_rows[i]["result"] for i in ids),
        "perturbed_text_changes": sum(fp32_rows[i]["perturbed"] != bf16_rows[i]["perturbed"] for i in ids),
        "bf16_minus_fp32_points": 100 * test["difference"], "p_value": test["p_value"],
    }


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.bench.attack_precision", description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="a training run folder (metrics.json)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--resources", default="resources")
    parser.add_argument("--recipe", default="textfooler")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--work-dir", default="results/bench/attack_precision")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    from ..devices import select_device

    select_device(args.threads)
    models, pooled_fp32, pooled_bf16, seconds = {}, {}, {}, {"fp32": 0.0, "bf16": 0.0}
    for run in args.run:
        both = attack_both(run, args.data, args.resources, args.recipe, args.limit, args.work_dir,
                           max_length=args.max_length)
        name = read_json(Path(run) / "metrics.json").get("run") or Path(run).parent.name
        models[name] = compare_outcomes(both["fp32"][0], both["bf16"][0])
        models[name].update(seconds_fp32=both["fp32"][1], seconds_bf16=both["bf16"][1])
        for precision in seconds:
            seconds[precision] += both[precision][1]
        pooled_fp32.update({(name, i): r for i, r in both["fp32"][0].items()})
        pooled_bf16.update({(name, i): r for i, r in both["bf16"][0].items()})
    total = compare_outcomes(pooled_fp32, pooled_bf16)
    figures = {"models": len(models), "examples": total["n"], "aua_fp32": total["aua_fp32"],
               "aua_bf16": total["aua_bf16"], "robust_outcome_flips": total["robust_outcome_flips"],
               "result_changes": total["result_changes"], "perturbed_text_changes": total["perturbed_text_changes"],
               "bf16_minus_fp32_points": total["bf16_minus_fp32_points"], "mcnemar_p": total["p_value"],
               "bf16_attack_speedup": seconds["fp32"] / seconds["bf16"] if seconds["bf16"] else float("nan")}
    for key, value in figures.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    if args.out:
        write_json(Path(args.out), {"figures": figures, "models": models, "recipe": args.recipe,
                                    "limit": args.limit, "provenance": provenance(spec=vars(args))})
    return figures


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
