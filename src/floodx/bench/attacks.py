"""Attack speed, measured side by side in one run (`make bench`, section `attacks`).

Two ways of attacking the same model on the same examples, each a fresh process as a Snakemake
job is:

- **stock**: one process per recipe, TextAttack's stock recipe (with floodx's offline stand-ins)
  attacking example by example, NLTK's own WordNet loader: the attack jobs as they were up to
  e6172b8;
- **floodx**: one process attacking with every recipe (`python -m floodx.attacks.run` with
  `"recipes": [textfooler, textbugger, bertattack]` in its spec, the `attack_shard` rule): one interpreter start, one
  `import textattack`, one model load, one load of each shared resource
  (`standins.english_wordnet`).

Rounds run in A B C C B A order so that a drifting load hits every variant alike; medians are
compared.  Every variant's rows (outcome, perturbed text, queries) must be identical, or the
speed-up means nothing: `attack_outcomes_identical` says whether they were.
"""

import csv
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ..errors import ResourceError
from ..names import RECIPES

# The stock path: the same job with NLTK's WordNet loader in place of floodx's.
STOCK_PRELUDE = ("import nltk.corpus\n"
                 "from floodx.attacks import standins\n"
                 "standins.english_wordnet = lambda: nltk.corpus.wordnet\n"
                 "from floodx.attacks.run import main\n"
                 "main(sys.argv[1:])\n")


def run_processes(commands, env, log_dir):
    """Run `commands` in parallel; (wall seconds, [CPU seconds (user+sys) of each process])."""
    start = time.perf_counter()
    procs, logs = [], []
    for number, cmd in enumerate(commands):
        log = open(Path(log_dir) / f"attack-bench-{number}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    cpu, failures = [], []
    for number, proc in enumerate(procs):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu.append(usage.ru_utime + usage.ru_stime)
        logs[number].close()
        if proc.returncode != 0:
            failures.append((proc.returncode, logs[number].name))
    wall = time.perf_counter() - start
    for code, name in failures:
        tail = Path(name).read_text()[-2000:]
        raise RuntimeError(f"bench subprocess failed ({code}), log {name}: {tail}")
    return wall, cpu


def bench_setup(work_dir, resources_dir="resources", n_examples=100, seed=0, fit_examples=400):
    """A victim and test split when `make run` has not made one: MiniLM
    (resources/models/all-MiniLM-L6-v2) whose pooler and classifier are fitted, encoder frozen,
    to `fit_examples` Rotten Tomatoes sentences, attacked on `n_examples` other sentences."""
    import torch

    from ..models import load_classifier

    work_dir = Path(work_dir)
    checkpoint = work_dir / f"attack-bench-minilm-{seed}"
    data_dir = work_dir / f"attack-bench-data-{n_examples}-{seed}"
    corpus = Path(resources_dir) / "corpora" / "rotten-tomatoes" / "rt-polarity-sentences.csv"
    minilm = Path(resources_dir) / "models" / "all-MiniLM-L6-v2"
    for needed in (corpus, minilm):
        if not needed.exists():
            raise ResourceError(f"{needed}: missing (python -m floodx.resources fetches it)")
    with open(corpus, newline="", encoding="utf-8-sig") as handle:
        pool = [(text.strip(), 1 if label.strip() == "1" else 0) for label, text in csv.reader(handle)]
    chosen = random.Random(seed).sample(pool, n_examples + fit_examples)
    attacked, fit = chosen[:n_examples], chosen[n_examples:]
    if not (data_dir / "meta.json").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        rows = [{"idx": i, "text": t, "text_pair": None, "label": y} for i, (t, y) in enumerate(attacked)]
        (data_dir / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (data_dir / "meta.json").write_text(json.dumps(
            {"dataset": "rt-bench", "num_labels": 2,
             "attack_subset": {"test": [r["idx"] for r in rows], "dev": []}}))
    if not (checkpoint / "config.json").exists():
        torch.manual_seed(seed)
        model, tokenizer = load_classifier(str(minilm), 2)
        texts, labels = [t for t, _ in fit], torch.tensor([y for _, y in fit])
        with torch.no_grad():
            hidden = model.bert(**tokenizer(texts, padding=True, truncation=True, max_length=64,
                                            return_tensors="pt")).last_hidden_state
        head = [*model.bert.pooler.parameters(), *model.classifier.parameters()]
        optimizer = torch.optim.Adam(head, lr=1e-3)
        for _ in range(200):
            optimizer.zero_grad()
            logits = model.classifier(model.bert.pooler(hidden))
            torch.nn.functional.cross_entropy(logits, labels).backward()
            optimizer.step()
        model.save_pretrained(checkpoint)
        tokenizer.save_pretrained(checkpoint)
    return checkpoint, data_dir


def _rows(path):
    from ..attacks.rows import read_rows

    return [(r["idx"], r["result"], r["perturbed"], r["queries"]) for r in read_rows(path)]


def _attack_seconds(path):
    from ..attacks.rows import read_rows

    return sum(r["seconds"] or 0.0 for r in read_rows(path))


def compare(checkpoint, data_dir, work_dir, resources_dir="resources", limit=100, rounds=2,
            max_length=64, recipes=RECIPES):
    """Stock (a process per recipe) against floodx (one process, every recipe) and floodx in
    two shard processes, `rounds` rounds in A B C C B A order, on the first `limit` examples.

    Returns `name: value` figures:
    `attack_speedup_vs_stock` (stock wall seconds of all recipes / floodx's one process),
    per recipe `attack_speedup_vs_stock_<recipe>` (the recipe's stock process / its share of
    floodx's process: its attack seconds plus an equal share of start-up) and
    `attack_examples_per_min_<recipe>` (floodx, on that share), `attack_two_shard_speedup`
    (floodx's one process / two shard processes in parallel) and its CPU projection (what it
    would be with a free core per process), and `attack_outcomes_identical`.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               NLTK_DATA=str((Path(resources_dir) / "nltk_data").resolve()))
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")

    def args(recipes_, out, shard=0, shards=1):
        spec = {"recipes": list(recipes_), "mode": "offline", "subset": "test", "num_shards": shards,
                "resources": str(resources_dir), "limit": limit, "max_length": max_length}
        return ["--spec", json.dumps(spec), "--checkpoint", str(checkpoint), "--data", str(data_dir),
                "--shard", str(shard), "--out", str(out), "--threads", "1"]

    def out_of(variant):
        return work_dir / "attack-bench" / variant / "{recipe}.csv"

    def clear(variant):
        folder = work_dir / "attack-bench" / variant
        if folder.exists():
            for path in folder.iterdir():
                path.unlink()

    def stock():
        clear("stock")
        walls = {}
        for recipe in recipes:
            cmd = [sys.executable, "-c", "import sys\n" + STOCK_PRELUDE,
                   *args([recipe], str(out_of("stock")).replace("{recipe}", recipe))]
            walls[recipe] = run_processes([cmd], env, work_dir)[0]
        return walls

    def floodx():
        clear("floodx")
        cmd = [sys.executable, "-m", "floodx.attacks.run", *args(recipes, out_of("floodx"))]
        wall, _ = run_processes([cmd], env, work_dir)
        return wall, {r: _attack_seconds(str(out_of("floodx")).replace("{recipe}", r)) for r in recipes}

    def two_shards():
        clear("shards")
        cmds = [[sys.executable, "-m", "floodx.attacks.run",
                 *args(recipes, str(out_of("shards")).replace(".csv", f"-{shard}.csv"), shard, 2)]
                for shard in (0, 1)]
        wall, cpu = run_processes(cmds, env, work_dir)
        return wall, max(cpu)

    variants = {"stock": stock, "floodx": floodx, "shards": two_shards}
    measured = {name: [] for name in variants}
    order = list(variants)
    load_before = os.getloadavg()[0]
    for round_ in range(rounds):
        for name in (order if round_ % 2 == 0 else order[::-1]):
            measured[name].append(variants[name]())

    stock_wall = {r: statistics.median(m[r] for m in measured["stock"]) for r in recipes}
    floodx_wall = statistics.median(wall for wall, _ in measured["floodx"])
    floodx_attack = {r: statistics.median(m[1][r] for m in measured["floodx"]) for r in recipes}
    start_up = max(floodx_wall - sum(floodx_attack.values()), 0.0) / len(recipes)
    shard_wall = statistics.median(wall for wall, _ in measured["shards"])
    shard_cpu = statistics.median(cpu for _, cpu in measured["shards"])

    def rows(variant, recipe, shards=False):
        if not shards:
            return _rows(str(out_of(variant)).replace("{recipe}", recipe))
        return sorted(_rows(str(out_of(variant)).replace("{recipe}", f"{recipe}-0"))
                      + _rows(str(out_of(variant)).replace("{recipe}", f"{recipe}-1")))
    identical = all(sorted(rows("stock", r)) == sorted(rows("floodx", r)) == rows("shards", r, True)
                    for r in recipes)
    figures = {"attack_bench_examples": limit,
               "attack_speedup_vs_stock": sum(stock_wall.values()) / floodx_wall}
    for recipe in recipes:
        share = floodx_attack[recipe] + start_up
        figures[f"attack_examples_per_min_{recipe}"] = 60 * limit / share
        figures[f"attack_speedup_vs_stock_{recipe}"] = stock_wall[recipe] / share
    figures.update({
        "attack_two_shard_speedup": floodx_wall / shard_wall,
        "attack_two_shard_speedup_cpu_projection": floodx_wall / shard_cpu,
        "attack_stock_seconds": sum(stock_wall.values()),
        "attack_floodx_seconds": floodx_wall,
        "attack_floodx_start_up_seconds": start_up * len(recipes),
        "attack_outcomes_identical": identical,
        "attack_bench_rounds": rounds,
        "attack_bench_loadavg_before": round(load_before, 2),
    })
    return figures
