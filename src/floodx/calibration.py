"""Test-time temperature calibration of a model's scores, for attacks that saturation would blind.

Where a model's fp32 softmax is exactly 1.0, score-based attacks cannot rank word changes (floodx.saturation);
Raina et al. (2024, arXiv 2402.17509) undo this by attacking softmax(logits / T). floodx fits T on the dev
split by the minimum mean negative log-likelihood (Guo et al., 2017), so the choice never sees the test set.
The NLL is convex in the inverse temperature 1/T (a log-sum-exp of functions linear in it, less a linear
term), hence unimodal in log(1/T), so a golden-section search over log(1/T) finds its minimum. For two classes, dividing the logits by any
T > 0 keeps the order of the true class's probability over candidate texts and every prediction, so the
attack changes only where fp32 rounding had tied scores at 1.0.
"""

import math

from .errors import DataError

INVERSE_BOUNDS = (1e-4, 100.0)   # T from 0.01 to 10,000
DIGITS = 6                       # T as used and fingerprinted: rounding noise of the fit does not restart a shard
_GOLDEN = (math.sqrt(5) - 1) / 2


def mean_nll(logits, labels, inverse_temperature):
    """Mean negative log-likelihood of `labels` under softmax(logits * inverse_temperature), in float64."""
    import torch

    scaled = logits.double() * float(inverse_temperature)
    return float(torch.nn.functional.cross_entropy(scaled, labels.long(), reduction="mean"))


def fit_temperature(logits, labels, tolerance=1e-7):
    """The temperature T minimising the mean dev NLL of softmax(logits / T); returns (T, nll at T, nll at 1)."""
    import torch

    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels)
    if logits.ndim != 2 or len(logits) == 0 or len(labels) != len(logits):
        raise DataError(f"temperature calibration: expected n x k logits and n labels, got "
                        f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    low, high = (math.log(b) for b in INVERSE_BOUNDS)     # the search runs over log(1/T)
    a, b = high - _GOLDEN * (high - low), low + _GOLDEN * (high - low)
    fa, fb = (mean_nll(logits, labels, math.exp(x)) for x in (a, b))
    while high - low > tolerance:
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - _GOLDEN * (high - low)
            fa = mean_nll(logits, labels, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + _GOLDEN * (high - low)
            fb = mean_nll(logits, labels, math.exp(b))
    inverse = math.exp((low + high) / 2)
    return 1.0 / inverse, mean_nll(logits, labels, inverse), mean_nll(logits, labels, 1.0)


def calibrate(model, tokenizer, data_dir, max_length=None, fit_split="dev", test_split="test", batch_size=128):
    """T fitted on `fit_split`, with the NLL before and after and the test split's saturation at T = 1 and at T.

    What a calibrated attack records beside its rows (summary.json `calibration`)."""
    import torch

    from .attacks.examples import model_input
    from .data import load_split
    from .inference import predict_logits
    from .saturation import saturation

    def logits_of(split):
        examples = load_split(data_dir, split)
        if not examples:
            raise DataError(f"{data_dir}/{split}.jsonl: the split is empty; temperature calibration needs it")
        inputs = [model_input(e) for e in examples]
        return predict_logits(model, tokenizer, inputs, batch_size, max_length), torch.tensor(
            [int(e["label"]) for e in examples])

    fit_logits, fit_labels = logits_of(fit_split)
    temperature, nll, nll_uncalibrated = fit_temperature(fit_logits, fit_labels)
    temperature = float(f"{temperature:.{DIGITS}g}")
    test_logits, _ = logits_of(test_split)
    return {"temperature": temperature, "fit_on": fit_split, "n_fit": len(fit_labels),
            "fit_nll": nll, "fit_nll_uncalibrated": nll_uncalibrated,
            "at_bound": at_bound(fit_logits, fit_labels, temperature),
            "test_saturated": saturation(test_logits / temperature)["saturated"],
            "definitions": {"temperature": f"T minimising the mean NLL of softmax(logits / T) on the {fit_split} "
                                           "split; the attack queries softmax(logits / T)",
                            "at_bound": "'low' or 'high' where T sits at a bound of the search (0.01, 10,000): "
                                        "the dev NLL kept falling, e.g. a dev split the model classifies without "
                                        "error, and T sharpens rather than calibrates",
                            "test_saturated": "share of test examples whose fp32 softmax maximum is exactly 1.0 "
                                              "at T (at T = 1: the model's saturation.json)"}}


def at_bound(logits, labels, temperature, tolerance=1e-12):
    """'low' / 'high' where the search's bound (T = 0.01 / 10,000) fits the dev split no worse than `temperature`
    (so the NLL fell, or stayed flat, all the way there and T is no interior minimum), else None."""
    nll = mean_nll(logits, labels, 1 / temperature)
    for name, inverse in (("low", INVERSE_BOUNDS[1]), ("high", INVERSE_BOUNDS[0])):
        if mean_nll(logits, labels, inverse) <= nll + tolerance:
            return name
    return None
