"""The flood-level window on hand-made accordance curves."""

import json
import math
import warnings

import pytest

from floodx.accordance import write_accordance_csv
from floodx.errors import ConfigError, DataError
from floodx.window import WindowWarning, find_crossings, flood_window, grid_in, main, read_probe, thin


def curve(accordance, losses, batches=4):
    """Rows as the probe writes them: sub-epoch i covers iterations (i-1)*batches+1 .. i*batches."""
    rows = []
    for i, (a, loss) in enumerate(zip(accordance, losses), start=1):
        rows.append({
            "sub_epoch": i, "epoch": 1, "first_step": (i - 1) * batches + 1, "last_step": i * batches,
            "accordance": a, "train_loss_mean": loss, "train_loss_min": loss - 0.05,
            "train_loss_max": loss + 0.05, "train_losses": [loss] * batches, "dev_loss": 0.5,
            "test_loss": 0.6, "dropped_terms": 0,
        })
    return rows


LOSSES = [0.69, 0.55, 0.40, 0.31, 0.24, 0.18, 0.12, 0.08]


def no_warning(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", WindowWarning)
        return func(*args, **kwargs)


def test_crossing_down_positive_to_negative():
    rows = curve([0.3, 0.2, 0.1, 0.05, -0.02, -0.1, -0.2, -0.2], LOSSES)
    window = no_warning(flood_window, rows, step=0.01)
    assert window["direction"] == "pos_to_neg" and window["fallback"] is None
    assert (window["low"], window["high"]) == (0.24, 0.31)          # sub-epochs 4 and 5
    assert window["levels"] == [f"{x / 100:.2f}" for x in range(24, 32)]
    assert window["iterations"] == [13, 20] and window["sub_epochs"] == [4, 5]
    assert window["batch_loss_range"] == pytest.approx([0.19, 0.36])
    assert len(window["crossings"]) == 1


def test_crossing_up_negative_to_positive():
    rows = curve([-0.2, -0.1, -0.05, -0.01, 0.02, 0.1, 0.2, 0.3], LOSSES)
    window = no_warning(flood_window, rows, step=0.01)
    assert window["direction"] == "neg_to_pos"
    assert (window["low"], window["high"]) == (0.24, 0.31)


def test_several_crossings_pick_by_direction_and_record_all():
    #            +     -     -      +     +      -     -     -
    acc = [0.10, -0.05, -0.02, 0.03, 0.01, -0.04, -0.1, -0.1]
    rows = curve(acc, LOSSES)
    crossings = find_crossings(rows)
    assert [(c["direction"], c["from_sub_epoch"], c["to_sub_epoch"]) for c in crossings] == [
        ("pos_to_neg", 1, 2), ("neg_to_pos", 3, 4), ("pos_to_neg", 5, 6)]
    first = no_warning(flood_window, rows)
    assert first["direction"] == "pos_to_neg" and (first["low"], first["high"]) == (0.55, 0.69)
    up = no_warning(flood_window, rows, direction="neg_to_pos")
    assert up["direction"] == "neg_to_pos" and (up["low"], up["high"]) == (0.31, 0.40)
    assert len(up["crossings"]) == 3 and up["chosen_crossing"]["from_sub_epoch"] == 3


def test_configured_direction_missing_falls_back_loudly():
    rows = curve([0.3, 0.2, -0.1, -0.2], LOSSES[:4])
    with pytest.warns(WindowWarning, match="no confirmed neg_to_pos crossing"):
        window = flood_window(rows, direction="neg_to_pos")
    assert window["direction"] == "pos_to_neg" and "no confirmed neg_to_pos crossing" in window["fallback"]


def test_no_crossing_uses_the_sub_epoch_nearest_zero():
    rows = curve([0.3, 0.2, 0.1, 0.04, 0.02, 0.05, 0.09, 0.2], LOSSES)
    with pytest.warns(WindowWarning, match="never changes sign"):
        window = flood_window(rows, step=0.01)
    assert window["direction"] is None and window["crossings"] == []
    assert "always positive" in window["fallback"] and "sub-epoch 5" in window["fallback"]
    assert window["low"] == pytest.approx(0.23) and window["high"] == pytest.approx(0.25)
    assert window["levels"] == ["0.23", "0.24", "0.25"]


def test_zero_width_window_is_widened():
    rows = curve([0.2, 0.1, -0.1, -0.2], [0.5, 0.3, 0.3, 0.2])
    with pytest.warns(WindowWarning, match="zero width"):
        window = flood_window(rows, step=0.01)
    assert window["levels"] == ["0.29", "0.30", "0.31"]


def test_window_between_grid_points_uses_the_neighbours():
    rows = curve([0.2, 0.1, -0.1, -0.2], [0.5, 0.304, 0.301, 0.2])
    with pytest.warns(WindowWarning, match="no multiple"):
        window = flood_window(rows, step=0.01)
    assert window["levels"] == ["0.30", "0.31"]


def test_undefined_and_zero_rows_sit_inside_the_bracket():
    rows = curve([0.2, 0.1, float("nan"), 0.0, -0.1], [0.6, 0.5, 0.45, 0.42, 0.40])
    window = no_warning(flood_window, rows)
    assert window["sub_epochs"] == [2, 3, 4, 5]
    assert (window["low"], window["high"]) == (0.40, 0.5)


def test_max_levels_thins_evenly_and_records_it():
    rows = curve([0.3, -0.3], [0.40, 0.20])
    window = no_warning(flood_window, rows, step=0.01, max_levels=5)
    assert window["all_levels"][0] == "0.20" and window["all_levels"][-1] == "0.40"
    assert window["levels"] == ["0.20", "0.25", "0.30", "0.35", "0.40"]
    assert window["thinned"] == {"from": 21, "to": 5, "max_levels": 5}
    assert no_warning(flood_window, rows, max_levels=None)["thinned"] is None
    assert thin(["a", "b", "c"], 1) == ["b"]


def test_grid_is_fixed_strings_and_positive():
    assert grid_in(0.07, 0.1, 0.01) == ["0.07", "0.08", "0.09", "0.10"]
    assert grid_in(-0.02, 0.02, 0.01) == ["0.01", "0.02"]
    assert grid_in(0.1, 0.3, 0.05) == ["0.10", "0.15", "0.20", "0.25", "0.30"]
    with pytest.raises(ConfigError, match="multiple of 0.01"):
        grid_in(0.1, 0.2, 0.005)


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(ConfigError, match="direction"):
        flood_window(curve([0.1, -0.1], [0.3, 0.2]), direction="up")
    with pytest.raises(DataError, match="no sub-epoch with a defined accordance"):
        flood_window(curve([float("nan")], [0.3]))
    bad = tmp_path / "bad.csv"
    bad.write_text("sub_epoch,first_step,last_step,accordance,train_loss_mean\n1,1,4,0.1,oops\n")
    with pytest.raises(DataError, match=r"bad.csv, line 2: column 'train_loss_mean'"):
        read_probe(bad)


def test_cli_reads_the_probe_csv_and_writes_window_json(tmp_path, capsys):
    probe = tmp_path / "accordance.csv"
    write_accordance_csv(probe, curve([0.3, 0.1, float("nan"), -0.1], [0.5, 0.35, 0.33, 0.3]))
    rows = read_probe(probe)
    assert math.isnan(rows[2]["accordance"]) and rows[1]["train_loss_mean"] == 0.35
    out = tmp_path / "window.json"
    main(["--probe", str(probe), "--out", str(out), "--spec",
          json.dumps({"step": 0.01, "max_levels": 3, "identity": {"dataset": "rt", "seed": 42}})])
    window = json.loads(out.read_text())
    for key in ("low", "high", "direction", "crossings", "fallback", "levels", "step", "provenance"):
        assert key in window
    assert window["levels"] == ["0.30", "0.32", "0.35"] and window["thinned"]["from"] == 6
    assert window["direction"] == "pos_to_neg" and window["identity"] == {"dataset": "rt", "seed": 42}
    main(["--probe", str(probe), "--out", str(out), "--spec", json.dumps({"direction": "neg_to_pos"})])
    assert "no confirmed neg_to_pos crossing" in json.loads(out.read_text())["fallback"]
    assert "floodx: warning: flood-level window: no confirmed neg_to_pos" in capsys.readouterr().err


# ---------------------------------------------------------------- confirmed crossings
# A noisy curve like the 1,000-sentence probe's: two one-sub-epoch blips above zero before the
# real negative -> positive change at sub-epochs 9 -> 10.
NOISY = [-0.30, -0.20, -0.10, 0.0096, -0.05, -0.03, 0.061, -0.02, 0.03, 0.05, 0.08, 0.10]
NOISY_LOSSES = [0.69, 0.60, 0.50, 0.42, 0.35, 0.29, 0.24, 0.20, 0.16, 0.13, 0.10, 0.08]


def test_blips_are_recorded_but_never_pick_the_window():
    rows = curve(NOISY, NOISY_LOSSES)
    window = no_warning(flood_window, rows, step=0.01, confirm=3)
    raw = [(c["from_sub_epoch"], c["to_sub_epoch"], c["confirmed"]) for c in window["crossings"]]
    assert raw == [(3, 4, False), (4, 5, False), (6, 7, False), (7, 8, False), (8, 9, True)]
    assert window["chosen_crossing"]["to_sub_epoch"] == 9 and window["direction"] == "neg_to_pos"
    assert (window["low"], window["high"]) == (0.16, 0.20) and window["sub_epochs"] == [8, 9]
    assert window["confirm_sub_epochs"] == 3


def test_confirm_one_takes_the_first_blip_as_before():
    window = no_warning(flood_window, curve(NOISY, NOISY_LOSSES), step=0.01, confirm=1)
    assert window["chosen_crossing"]["to_sub_epoch"] == 4 and window["sub_epochs"] == [3, 4]


def test_a_blip_before_the_sign_is_established_is_not_a_crossing():
    rows = curve([0.01, -0.2, -0.2, -0.2, 0.1, 0.1, 0.1, 0.1], LOSSES)
    crossings = find_crossings(rows, confirm=3)
    assert [(c["to_sub_epoch"], c["confirmed"]) for c in crossings] == [(2, False), (5, True)]


def test_a_change_that_does_not_hold_long_enough_falls_back_and_says_so():
    rows = curve([-0.3, -0.2, -0.1, -0.05, -0.02, -0.01, 0.02, 0.03], LOSSES)   # + for 2 only
    with pytest.warns(WindowWarning, match="no sign change holds 3 sub-epochs"):
        window = flood_window(rows, step=0.01, confirm=3)
    assert window["chosen_crossing"] is None and "unconfirmed: sub-epochs 6-7" in window["fallback"]
    assert no_warning(flood_window, rows, step=0.01, confirm=2)["chosen_crossing"]["to_sub_epoch"] == 7


def test_confirmed_at_is_the_row_that_completes_the_evidence():
    from floodx.window import crossing_confirmed_at

    rows = curve(NOISY, NOISY_LOSSES)
    assert crossing_confirmed_at(rows, confirm=3) == 10           # sub-epochs 9, 10, 11 (indices 8-10)
    assert crossing_confirmed_at(rows[:10], confirm=3) is None    # only two positive so far
    assert crossing_confirmed_at(rows, confirm=3, direction="pos_to_neg") is None
    assert crossing_confirmed_at(rows, confirm=3, direction="neg_to_pos") == 10


def test_onset_puts_the_dev_loss_minimum_beside_the_crossing():
    rows = curve(NOISY, NOISY_LOSSES)
    dev = [0.68, 0.60, 0.52, 0.47, 0.45, 0.44, 0.46, 0.50, 0.55, 0.60, 0.66, 0.70]   # minimum at 6
    for i, row in enumerate(rows):
        row.update(dev_loss=dev[i], dev_acc=0.5 + i / 100, epoch_fraction=(i + 1) / 2)
    onset = no_warning(flood_window, rows, step=0.01, confirm=3, max_epochs=10)["onset"]
    assert onset["crossing"] == {"sub_epoch": 9, "epoch": 4.5, "direction": "neg_to_pos", "train_loss": 0.16}
    assert onset["dev_loss_min"] == {"sub_epoch": 6, "epoch": 3.0, "train_loss": 0.29, "dev_loss": 0.44,
                                     "dev_acc": 0.55}
    assert onset["lag_sub_epochs"] == 3 and onset["lag_epochs"] == 1.5
    assert onset["sub_epochs_probed"] == 12 and onset["epochs_probed"] == 6.0 and onset["stopped_early"]


def test_onset_without_a_crossing_or_dev_losses():
    rows = curve([-0.3, -0.2, -0.1], LOSSES[:3])
    for row in rows:
        row["dev_loss"] = None
    with pytest.warns(WindowWarning):
        onset = flood_window(rows, step=0.01, confirm=2)["onset"]
    assert onset["crossing"] is None and onset["dev_loss_min"] is None and onset["lag_sub_epochs"] is None
    assert onset["stopped_early"] is False
