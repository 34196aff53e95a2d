"""Temperature calibration (floodx.calibration) against brute force, and the attack on calibrated scores."""

import json
import math

import pytest
import torch

from floodx import calibration
from floodx.errors import DataError
from test_attack_run import textattack_ready  # noqa: F401  (module-wide: NLTK's stopwords, flair)


def brute_force_temperature(logits, labels):
    """The NLL-minimising T over a fine grid of log T, refined once around the best point."""
    grid = torch.linspace(math.log(0.01), math.log(1e4), 20001, dtype=torch.float64)
    best = min(grid.tolist(), key=lambda x: calibration.mean_nll(logits, labels, math.exp(-x)))
    fine = torch.linspace(best - 1e-3, best + 1e-3, 2001, dtype=torch.float64)
    return math.exp(min(fine.tolist(), key=lambda x: calibration.mean_nll(logits, labels, math.exp(-x))))


@pytest.mark.parametrize("scale, classes", [(1.0, 2), (40.0, 2), (0.2, 4), (25.0, 4)])
def test_fit_temperature_finds_the_brute_force_minimum(scale, classes):
    generator = torch.Generator().manual_seed(classes * 100 + int(scale))
    labels = torch.randint(0, classes, (300,), generator=generator)
    logits = torch.randn(300, classes, generator=generator)
    logits[torch.arange(300), labels] += 1.0              # informative, but with errors
    logits = logits * scale                               # over- (scale > 1) or under-confident
    temperature, nll, nll_at_one = calibration.fit_temperature(logits, labels)
    expected = brute_force_temperature(logits, labels)
    assert temperature == pytest.approx(expected, rel=1e-3)
    assert nll <= nll_at_one + 1e-12
    assert nll == pytest.approx(calibration.mean_nll(logits, labels, 1 / expected), abs=1e-9)
    if scale != 1.0:                                      # an overconfident model is cooled, an unsure one heated
        assert (temperature > 1) == (scale > 1)


def test_a_saturated_binary_model_keeps_its_order_and_predictions_and_loses_its_ties():
    """For two classes, softmax(z / T) keeps every prediction and the order of the true class's probability
    across texts; what changes is that fp32 no longer rounds large margins to exactly 1.0."""
    margins = torch.tensor([18.0, 20.0, 25.0, 30.0, -3.0, 40.0])
    logits = torch.stack([torch.zeros_like(margins), margins], dim=1)
    plain = torch.softmax(logits, dim=-1)[:, 1]
    assert (plain[[0, 1, 2, 3, 5]] == 1.0).all()           # tied: a score-based attack is blind here
    labels = torch.tensor([1, 1, 1, 1, 0, 0])              # one confident mistake: T > 1
    temperature, _, _ = calibration.fit_temperature(logits, labels)
    scaled = torch.softmax(logits / temperature, dim=-1)[:, 1]
    assert temperature > 1
    assert (scaled.argsort() == margins.argsort()).all() and len(set(scaled.tolist())) == len(margins)
    assert ((logits / temperature).argmax(-1) == logits.argmax(-1)).all()


def test_fit_temperature_refuses_what_is_not_logits_and_labels():
    with pytest.raises(DataError, match="n x k logits and n labels"):
        calibration.fit_temperature(torch.zeros(3), torch.zeros(3))
    with pytest.raises(DataError, match="n x k logits and n labels"):
        calibration.fit_temperature(torch.zeros(3, 2), torch.zeros(4))


def test_the_attack_on_calibrated_scores_fits_t_on_dev_and_says_so(tmp_path, tiny_model, sentences):
    from floodx.attacks import run
    from floodx.attacks.recipes import DynamicPaddingWrapper
    from floodx.attacks.resume import finished_by
    from floodx.config import attack_spec, load_config
    from floodx.errors import ConfigError
    from test_attack_run import save_trained, write_data

    config = load_config("config/tiny.yaml")
    assert "calibrate" not in attack_spec(config, "tiny", ["textfooler"])           # Table 2's spec as before
    assert attack_spec(config, "tiny", ["textfooler"], calibrate="dev")["calibrate"] == "dev"

    model, tokenizer = tiny_model
    checkpoint = save_trained(model, tokenizer, sentences, tmp_path / "ckpt")
    data = write_data(tmp_path / "data", sentences)
    texts = ["a great film", "boring and bad"]
    plain_logits = DynamicPaddingWrapper(model, tokenizer, max_length=32)(texts)
    assert torch.allclose(DynamicPaddingWrapper(model, tokenizer, max_length=32, temperature=4.0)(texts),
                          plain_logits / 4.0, rtol=0, atol=0)

    def attack(name, **more):
        out = tmp_path / name / "shard-0.csv"
        spec = {"recipes": ["charswap"], "mode": "offline", "subset": "test", "resources": "resources", "limit": 4,
                **more}
        result = run.main(["--spec", json.dumps(spec), "--checkpoint", str(checkpoint), "--data", str(data),
                           "--out", str(out), "--summary", str(out.with_name("summary.json"))])
        return out, json.loads(out.with_name("summary.json").read_text()), result

    plain_out, plain, _ = attack("plain")
    assert plain["calibration"] is None and "temperature" not in finished_by(plain_out)
    out, calibrated, _ = attack("calibrated", calibrate="dev")
    found = calibrated["calibration"]
    assert found["fit_on"] == "dev" and found["n_fit"] == len(sentences)
    expected = calibration.calibrate(*run._victim(str(checkpoint.resolve()), finished_by(out)["checkpoint_sha256"],
                                                  None), data, None, "dev")
    assert found["temperature"] == expected["temperature"] == float(f"{found['temperature']:.6g}")   # rounded
    assert found["fit_nll"] <= found["fit_nll_uncalibrated"]
    assert found["at_bound"] == "low"        # this toy model errs on no dev text: the NLL falls without end
    assert finished_by(out)["temperature"] == found["temperature"] and finished_by(out)["calibrated_on"] == "dev"
    _, again, result = attack("calibrated", calibrate="dev")                     # finished: not attacked again
    assert result["already_done"] and again["calibration"] == found
    with pytest.raises(SystemExit):
        attack("other", calibrate="test")
    with pytest.raises(ConfigError, match="'reuse' copies uncalibrated rows"):
        run.attack_shard(checkpoint, data, "test", "test", "charswap", "offline", 0, 1, tmp_path / "x.csv",
                         "resources", calibrate="dev", reuse=plain_out)


def test_a_temperature_at_the_search_bound_is_flagged():
    """A dev split classified without error lets the NLL fall towards 0 without end: no interior minimum."""
    logits, labels = torch.tensor([[0.0, 3.0], [2.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 0, 1])
    temperature, _, _ = calibration.fit_temperature(logits, labels)
    assert calibration.at_bound(logits, labels, temperature) == "low"
    errs = torch.tensor([1, 1, 1])                        # one confident mistake: an interior minimum
    assert calibration.at_bound(logits, errs, calibration.fit_temperature(logits, errs)[0]) is None
    assert calibration.at_bound(torch.zeros(3, 2), labels, 1.0) == "low"   # uninformative: every T fits alike
