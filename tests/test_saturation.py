"""The softmax-saturation diagnostic and Table 2's warning of masked scores."""

import json

import numpy as np
import pytest
import torch

from floodx import saturation
from floodx.errors import DataError
from floodx.tables import reading, table2

from test_tables import outcomes, write_examples, write_summary


def test_saturation_counts_rows_whose_fp32_softmax_is_exactly_one():
    logits = torch.tensor([[40.0, 0.0], [1.0, 0.0], [0.0, 30.0], [0.0, 9.3]])
    # Brute force in numpy float32: p_max = 1 / (1 + exp(-margin)).
    margins = np.array([40.0, 1.0, 30.0, 9.3], dtype=np.float32)
    top = (np.float32(1) / (np.float32(1) + np.exp(-margins))).astype(np.float32)
    result = saturation.saturation(logits)
    assert result["n"] == 4
    assert result["saturated"] == pytest.approx(float(np.mean(top == 1.0))) == pytest.approx(0.5)
    assert result["near_saturated"] == pytest.approx(0.75)    # 9.3 nats: 1 - p = 9.1e-5, within 1e-4
    assert result["median_margin"] == pytest.approx(9.3)      # torch's median: the lower middle value
    with pytest.raises(DataError, match="n x k"):
        saturation.saturation(torch.zeros(0, 2))


def test_the_reading_warns_of_masked_scores_where_the_softmax_is_saturated(tmp_path):
    root = tmp_path / "attack"
    paths, shares = [], []
    for method, robust, share in (("finetune", 10, 0.0), ("flooding_x", 12, 0.0), ("ttso", 30, 0.96)):
        path = write_summary(root, "rt", method, 1, "textfooler", 80.0, 100 * robust / 40, 50.0, 11.0,
                             majority=50.0, n_clean=400)
        write_examples(path, outcomes(robust, 8))
        paths.append(path)
        share_path = path.parent.parent / "saturation.json"
        share_path.write_text(json.dumps({"identity": {"dataset": "rt", "method": method, "seed": 1},
                                          "saturated": share}))
        shares.append(share_path)
    table = table2.table2(table2.load_attack_summaries(paths), table2.load_saturation(shares))
    assert table.set_index("method").softmax_saturated.to_dict() == {"finetune": 0.0, "flooding_x": 0.0, "ttso": 0.96}
    # Masked scores compete for no bold: TTSO's 75.0 is the highest ▲ but Flooding-X's is not ▲, so none.
    rows = table.set_index("method")
    assert rows.loc["ttso", "textfooler_aua_vs_finetune_mark"] == "win" and not rows.textfooler_aua_best.any()
    md = table2.table2_markdown(table)
    assert "| TTSO ‡ |" in md and "‡ The model's fp32 softmax is exactly 1.0" in md and "**" not in md
    assert r"TTSO$^\ddagger$" in table2.table2_latex(table)
    text = reading.reading_markdown(table)
    assert "## Warning: masked scores" in text and "TTSO on Rotten Tomatoes (96.0% of test examples)" in text
    assert "Masked scores: its softmax is saturated on 96.0% of test examples" in text
    assert "Fine-tune on" not in text
    quiet = reading.reading_markdown(table2.table2(table2.load_attack_summaries(paths)))
    assert "masked scores" not in quiet.lower()
    (tmp_path / "bad.json").write_text(json.dumps({"saturated": 0.5}))
    with pytest.raises(DataError, match="bad.json"):
        table2.load_saturation([tmp_path / "bad.json"])
