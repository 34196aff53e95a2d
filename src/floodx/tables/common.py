"""What every table shares: column and metric names, the paper's numbers, the majority test."""

import json
import math
from pathlib import Path

import pandas as pd

from ..config import PAPER_DATASETS
from ..errors import DataError
from ..names import RECIPES
from ..files import write_text


DATA_DIR = Path(__file__).resolve().parents[1] / "paper_results"

ATTACKS = RECIPES  # the paper's column order; rows: METHODS
METRICS = ("clean", "aua", "suc", "query")
ATTACK_METRICS = ("aua", "suc", "query")
HIGHER_IS_BETTER = {"clean": True, "aua": True, "suc": False, "query": True}
DECIMALS = {"clean": 1, "aua": 1, "suc": 1, "query": 2}
SUMMARY_FIELDS = {"clean": "clean_acc", "aua": "aua", "suc": "suc", "query": "avg_queries"}

METRIC_LABELS = {"clean": "Clean%", "aua": "Aua%", "suc": "Suc%", "query": "#Query"}
# What the paper compares with when no --paper-map is given: the embedded default's id.
DEFAULT_PAPER_MAP = {"rt": {"paper": "sst2", "stand_in": True}}
# A model whose Clean% is not significantly above always predicting the most frequent test label
# (one-sided binomial test at this level) learned next to nothing; its attack numbers (high Aua%,
# low Suc%) measure no robustness.
MAJORITY_TEST_LEVEL = 0.05


def above_majority_p_value(clean_pct, majority_pct, n):
    """P(at least the observed number of correct answers | a model right with the majority
    share's probability on each of n examples): one-sided exact binomial test."""
    k = int(round(clean_pct * n / 100.0))
    p = majority_pct / 100.0
    if k <= 0 or p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def no_better_than_majority(clean_pct, majority_pct, n):
    """True when Clean% is not significantly above the majority-label baseline; False when any
    of the three numbers is unknown (older summaries)."""
    values = (clean_pct, majority_pct, n)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values) or not n:
        return False
    return above_majority_p_value(float(clean_pct), float(majority_pct), int(n)) >= MAJORITY_TEST_LEVEL


def order(values, preferred):
    values = list(dict.fromkeys(values))
    known = [v for v in preferred if v in values]
    return known + sorted(v for v in values if v not in preferred)


def write_csv(path, frame):
    write_text(path, frame.to_csv(index=False, float_format="%.6g"))


# ---------------------------------------------------------------- paper numbers
def paper_table2():
    """The paper's Table 2 in long form: dataset, method, attack ('' for clean), metric, value."""
    wide = pd.read_csv(DATA_DIR / "paper_table2.csv")
    rows = []
    for rec in wide.to_dict("records"):
        rows.append({"dataset": rec["dataset"], "method": rec["method"], "attack": "",
                     "metric": "clean", "value": float(rec["clean"])})
        for attack in ATTACKS:
            for metric in ATTACK_METRICS:
                rows.append({"dataset": rec["dataset"], "method": rec["method"], "attack": attack,
                             "metric": metric, "value": float(rec[f"{attack}_{metric}"])})
    return pd.DataFrame(rows)


def paper_table3():
    """The paper's Table 3: dataset, method, seconds_per_epoch, batch_size, device, ratio_to_finetune."""
    frame = pd.read_csv(DATA_DIR / "paper_table3.csv")
    base = frame[frame.method == "finetune"].set_index("dataset")["seconds_per_epoch"]
    frame["ratio_to_finetune"] = frame.seconds_per_epoch / frame.dataset.map(base)
    return frame


def parse_paper_map(text, default=DEFAULT_PAPER_MAP):
    """--paper-map JSON, {"rt": {"paper": "sst2", "stand_in": true}, ...} (the rules write it from
    `floodx.config.paper_map`); without one, the embedded default's stand-in."""
    if not text:
        return dict(default)
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"--paper-map is not valid JSON ({err})") from None
    for ours, pair in (mapping.items() if isinstance(mapping, dict) else [(None, None)]):
        if not isinstance(pair, dict) or pair.get("paper") not in PAPER_DATASETS:
            raise DataError(f"--paper-map: {ours!r} must map to {{'paper': one of {PAPER_DATASETS}, "
                            f"'stand_in': true|false}}, got {pair!r}")
    return mapping


def paper_dataset_for(dataset, paper_map):
    """(paper data set, is_stand_in) for one of ours; (None, False) if the map gives it none."""
    pair = paper_map.get(dataset)
    return (pair["paper"], bool(pair.get("stand_in", True))) if pair else (None, False)


# ---------------------------------------------------------------- rendering
def fmt(value, decimals):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{decimals}f}"


def missing(value):
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def latex_escape(text):
    text = str(text)
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                       ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(char, repl)
    return text


def number_columns(attacks):
    """(column stem, metric) for Clean% and each attack's three metrics, in display order."""
    return [("clean", "clean")] + [(f"{a}_{m}", m) for a in attacks for m in ATTACK_METRICS]
