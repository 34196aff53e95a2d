"""Batched inference of a saved classifier: the clean-accuracy evaluation and the attack's model
wrapper query the model through `predict_logits`, so both see the same logits for the same batch.

Training's `evaluate` does not: it scores the training Collator's cached batches on the device
(loss and accuracy summed there; the probe's under the training precision's autocast), which this
CPU-logits helper would change.
Imports torch and transformers only when called.
"""

from pathlib import Path

from .errors import ResourceError


def load_checkpoint(checkpoint, device=None):
    """(model, tokenizer) of a save_pretrained folder, in eval mode (on `device` if given)."""
    from transformers import AutoConfig

    from .models import load_classifier

    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").is_file():
        raise ResourceError(f"{checkpoint}: not a checkpoint folder (no config.json)")
    num_labels = AutoConfig.from_pretrained(str(checkpoint)).num_labels
    model, tokenizer = load_classifier(str(checkpoint), num_labels)
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def default_max_length(model, tokenizer):
    """Longest input the model takes: tokenizer limit capped by the position embeddings."""
    limits = [getattr(tokenizer, "model_max_length", None),
              getattr(getattr(model, "config", None), "max_position_embeddings", None)]
    limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 100_000]
    return min(limits) if limits else 512


def predict_logits(model, tokenizer, inputs, batch_size=64, max_length=None, precision="fp32"):
    """Logits (CPU float tensor, n x k) for a list of str or (text, text_pair) tuples.

    Consecutive batches of `batch_size`, each padded to its longest member and truncated at
    `max_length` (default: `default_max_length`); callers sort by length for speed. `precision`
    bf16 runs the forward passes under bf16 autocast (`attacks.precision`, floodx.precision).
    """
    import torch

    from .precision import attack_autocast

    if max_length is None:
        max_length = default_max_length(model, tokenizer)
    device = next(model.parameters()).device
    autocast = attack_autocast(device, precision)
    out = []
    with torch.no_grad(), autocast():
        for start in range(0, len(inputs), batch_size):
            batch = list(inputs[start:start + batch_size])
            if isinstance(batch[0], (tuple, list)):
                columns = list(zip(*batch))
                args = [list(columns[0])] + ([list(columns[1])] if len(columns) > 1 else [])
            else:
                args = [batch]
            encoded = tokenizer(*args, padding=True, truncation=True, max_length=max_length,
                                return_tensors="pt")
            encoded = {k: v.to(device) for k, v in encoded.items()}
            out.append(model(**encoded).logits.float().cpu())
    if not out:
        return torch.zeros((0, getattr(model.config, "num_labels", 2)))
    return torch.cat(out)
