"""floodx's vocabulary, defined once: methods, recipes, runs, flood levels and their labels.

The workflow's wildcards, the config schema's enums (a test checks that they agree), the jobs, the
tables and the figures all take their names from here.
"""

import re

from .errors import ConfigError

# Table 2's rows: the paper's seven, then the loss-restriction family since 2022 (docs/baselines.md).
PAPER_METHODS = ("finetune", "pgd", "freelb", "tavat", "infobert", "flooding", "flooding_x")
SUCCESSORS = ("iflood", "adaflood", "ttso", "ttso_pp", "als")  # each also compared with Flooding-X
METHODS = PAPER_METHODS + SUCCESSORS
REFERENCE = "finetune"  # every method is tested against it
SUCCESSOR_REFERENCE = "flooding_x"  # the paper's method, which each successor is also tested against
LEVELLED_METHODS = ("iflood",)  # one flood level of their own: drawn on the flood-level curve (Figure 2 (test))
BASE_METHODS = ("finetune", "pgd", "freelb", "tavat", "infobert", "iflood", "adaflood", "ttso", "ttso_pp",
                "als")  # one training run each (AdaFlood's auxiliary fold runs come before its own)
FLOOD_METHODS = ("flooding", "flooding_x")  # one run per flood level searched, then a choice
RECIPES = ("textfooler", "bertattack", "textbugger")  # TextAttack recipes, Table 2's column order
# A resource-free attack composed from TextAttack parts: smoke runs and tests only, never a paper number.
CHARSWAP = "charswap"
PROBE_METHOD = "accordance_probe"  # the training method of the accordance probe run

METHOD_LABELS = {
    "finetune": "Fine-tune", "pgd": "PGD", "freelb": "FreeLB", "tavat": "TAVAT",
    "infobert": "InfoBERT", "flooding": "Flooding", "flooding_x": "Flooding-X",
    "iflood": "iFlood", "adaflood": "AdaFlood", "ttso": "TTSO", "ttso_pp": "TTSO++", "als": "ALS",
}
RECIPE_LABELS = {"textfooler": "TextFooler", "bertattack": "BERT-Attack", "textbugger": "TextBugger"}
DATASET_LABELS = {
    "sst2": "SST-2", "mrpc": "MRPC", "qnli": "QNLI", "imdb": "IMDB", "ag_news": "AG News",
    "rt": "Rotten Tomatoes",
}

# A flood run is named by its level, a fixed two-decimal string: 'flooding-b0.13'.
FLOOD_RUN = re.compile(r"^flooding-b(\d+\.\d{2})$")
RUN_PATTERN = "|".join(BASE_METHODS) + r"|flooding-b\d+\.\d{2}"  # the `run` wildcard


def method_label(name):
    return METHOD_LABELS.get(name, name)


def recipe_label(name):
    return RECIPE_LABELS.get(name, name)


def dataset_label(name):
    return DATASET_LABELS.get(name, name)


def level_string(value):
    """Flood levels are fixed two-decimal strings everywhere (file names, wildcards, JSON keys)."""
    return f"{float(value):.2f}"


def flood_run(level):
    return f"flooding-b{level_string(level)}"


def parse_run(run):
    """Run name -> (method, method params): 'pgd' -> ('pgd', {}), 'flooding-b0.13' -> flooding at 0.13."""
    match = FLOOD_RUN.match(run)
    if match:
        return "flooding", {"flood_level": float(match.group(1))}
    if run in BASE_METHODS:
        return run, {}
    raise ConfigError(f"unknown run '{run}': expected one of {BASE_METHODS} or flooding-b<level>")


def result_identity(dataset, method, run, seed, **more):
    """What a result file is (written into it; tables and figures read it, never the file's path)."""
    _, params = parse_run(run)
    return {"dataset": dataset, "method": method, "run": run, "flood_level": params.get("flood_level"),
            "seed": int(seed), **more}
