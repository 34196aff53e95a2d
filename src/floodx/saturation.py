"""How saturated a model's softmax is on the test split: the share of examples whose top-class
probability is exactly 1.0 in fp32, the precision the attacks query in.

TextFooler, TextBugger and BERT-Attack are score-based: they rank words, and accept swaps, by how
much a change lowers the true class's probability. Where that probability is 1.0 to the last bit,
every deletion and swap scores the same and the search is blind, so a high Aua% can be masked scores
rather than robustness: the "illusion of robustness" of Raina et al. (2024, arXiv 2402.17509), the
paper TTSO comes from, who undo it with test-time temperature calibration. Table 2's reading names
every model saturated on at least SATURATED_WARNING of its test examples.

    python -m floodx.saturation --checkpoint <folder> --data results/data/<dataset> \
        --identity '<json>' --max-length 64 --out saturation.json
"""

import argparse
import json
from pathlib import Path

from .errors import DataError, run_main
from .files import write_json
from .provenance import provenance

SATURATED_WARNING = 0.5  # a model saturated on this share of its test examples gets a warning


def saturation(logits):
    """{n, saturated, near_saturated, median_margin} of an n x k tensor of logits, in fp32: the share of
    rows whose softmax maximum is exactly 1.0, the share above 1 − 1e-4, the median top-minus-bottom logit."""
    import torch

    logits = logits.float()
    if logits.ndim != 2 or not len(logits):
        raise DataError(f"saturation: expected n x k logits with n > 0, got shape {tuple(logits.shape)}")
    top = torch.softmax(logits, dim=-1).max(dim=-1).values
    margin = logits.max(dim=-1).values - logits.min(dim=-1).values
    return {"n": len(logits), "saturated": float((top == 1.0).float().mean()),
            "near_saturated": float((top > 1 - 1e-4).float().mean()), "median_margin": float(margin.median())}


def measure(checkpoint, data_dir, split="test", max_length=None, batch_size=128):
    from .attacks.examples import model_input
    from .data import load_split
    from .inference import load_checkpoint, predict_logits

    examples = load_split(data_dir, split)
    if not examples:
        raise DataError(f"{Path(data_dir) / (split + '.jsonl')}: the split is empty")
    model, tokenizer = load_checkpoint(checkpoint)
    logits = predict_logits(model, tokenizer, [model_input(e) for e in examples], batch_size=batch_size,
                            max_length=max_length)
    return saturation(logits)


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.saturation", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--identity", required=True, help="what the result is (dataset, method, run, seed)")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    identity = json.loads(args.identity)
    result = {"identity": identity, "split": "test", "precision": "fp32",
              **measure(args.checkpoint, args.data, max_length=args.max_length)}
    result["provenance"] = provenance(spec={"checkpoint": args.checkpoint, "identity": identity},
                                      seed=identity.get("seed"))
    write_json(Path(args.out), result)
    print(f"{identity.get('method')}: softmax saturated on {100 * result['saturated']:.1f}% of {result['n']} "
          "test examples")
    return result


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
