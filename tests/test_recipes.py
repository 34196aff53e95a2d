"""floodx.attacks.recipes: the paper's three recipes run offline against a MiniLM whose head is
trained on conftest's sentences (every success must flip the model's own prediction), their
composition is the stock recipe's, and paper mode without resources fails fast.

The offline stand-ins are built into the repository's git-ignored resources/ (or
$FLOODX_TEST_RESOURCES) by `ensure_offline_attack_resources` on first use: PyPI is needed once.
"""

import os
from pathlib import Path

import pytest
import torch

from conftest import NEGATIVE, POSITIVE
from floodx import names
from floodx.errors import ConfigError, ResourceError

REPO = Path(__file__).resolve().parents[1]
RESOURCES = Path(os.environ.get("FLOODX_TEST_RESOURCES", REPO / "resources"))
ATTACKED = [("a wonderful little movie", 1), ("the acting is excellent", 1),
            ("i hated this movie", 0), ("a sad mess of a story", 0)]


@pytest.fixture(scope="module")
def recipes():
    from floodx.attacks import standins

    standins.ensure_offline_attack_resources(RESOURCES)
    standins.use_nltk_data(RESOURCES)           # `import textattack` needs the stop words
    from floodx.attacks import recipes

    return recipes


@pytest.fixture(scope="module")
def victim(recipes):
    """all-MiniLM-L6-v2 with a pooler + classifier head fitted to the 40 conftest sentences."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from floodx.resources import ensure_minilm

    folder = ensure_minilm(RESOURCES)
    torch.manual_seed(0)
    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).eval()
    texts = POSITIVE + NEGATIVE
    labels = torch.tensor([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    with torch.no_grad():
        hidden = model.bert(**tokenizer(texts, padding=True, return_tensors="pt")).last_hidden_state
    head = [*model.bert.pooler.parameters(), *model.classifier.parameters()]
    optimizer = torch.optim.Adam(head, lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.classifier(model.bert.pooler(hidden)), labels)
        loss.backward()
        optimizer.step()
    assert predict(model, tokenizer, texts) == labels.tolist()
    return model, tokenizer


def predict(model, tokenizer, texts):
    """The model's own label for each text, one text at a time (no padding, no wrapper)."""
    with torch.no_grad():
        return [int(model(**tokenizer(t, return_tensors="pt")).logits.argmax()) for t in texts]


@pytest.mark.parametrize("recipe", ["textfooler", "textbugger", "bertattack"])
def test_offline_attack_flips_every_success(recipe, recipes, victim):
    from textattack.attack_results import SuccessfulAttackResult

    model, tokenizer = victim
    attack = recipes.build_attack(recipe, recipes.DynamicPaddingWrapper(model, tokenizer),
                                  "offline", RESOURCES)
    results = [attack.attack(text, label) for text, label in ATTACKED]
    successes = [r for r in results if isinstance(r, SuccessfulAttackResult)]
    assert successes, [type(r).__name__ for r in results]
    perturbed = [r.perturbed_result.attacked_text.text for r in successes]
    originals = [r.original_result.attacked_text.text for r in successes]
    assert all(p != o for p, o in zip(perturbed, originals))
    truth = [r.original_result.ground_truth_output for r in successes]
    assert all(p != t for p, t in zip(predict(model, tokenizer, perturbed), truth)), perturbed


def test_offline_composition_is_the_recipes(recipes, victim):
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.goal_functions import UntargetedClassification
    from textattack.transformations import WordSwapEmbedding

    wrapper = recipes.DynamicPaddingWrapper(*victim)
    built = {r: recipes.build_attack(r, wrapper, "offline", RESOURCES) for r in recipes.RECIPE_CLASSES}
    for attack in built.values():
        assert isinstance(attack.goal_function, UntargetedClassification)

    def parts(attack, cls):
        found = [c for c in recipes._components(attack) if isinstance(c, cls)]
        assert len(found) == 1, (cls, recipes._components(attack))
        return found[0]

    tf = built["textfooler"]
    use = parts(tf, recipes.MultilingualUSE)
    assert (use.threshold, use.metric, use.window_size, use.compare_against_original,
            use.skip_text_shorter_than_window) == (0.840845057, "angular", 15, False, True)
    assert parts(tf, WordEmbeddingDistance).min_cos_sim == 0.5
    assert parts(tf, WordSwapEmbedding).max_candidates == 50
    assert parts(tf, recipes.PerceptronPartOfSpeech).allow_verb_noun_swap
    assert tf.search_method.wir_method == "delete"

    tb = built["textbugger"]
    assert len(tb.transformation.transformations) == 5
    parts(tb, recipes.TolerantHomoglyphSwap)
    assert parts(tb, WordSwapEmbedding).max_candidates == 5
    assert (parts(tb, recipes.MultilingualUSE).threshold, tb.search_method.wir_method) == (0.8,
                                                                                          "delete")

    ba = built["bertattack"]
    assert parts(ba, recipes.EncoderWordSwap).max_candidates == 48   # the paper's, not 0.3.11's 8
    assert parts(ba, MaxWordsPerturbed).max_percent == 0.4
    use = parts(ba, recipes.MultilingualUSE)
    assert (use.threshold, use.metric, ba.search_method.wir_method) == (0.2, "cosine", "unk")
    assert set(recipes.SUBSTITUTIONS) == set(recipes.RECIPE_CLASSES) == set(names.RECIPES)

    budget = recipes.build_attack("textbugger", wrapper, "offline", RESOURCES, query_budget=7,
                                  max_candidates=3)
    assert budget.goal_function.query_budget == 7
    assert parts(budget, WordSwapEmbedding).max_candidates == 3


def test_dynamic_padding_matches_the_stock_wrapper(recipes, victim):
    from textattack.models.wrappers import HuggingFaceModelWrapper

    model, tokenizer = victim
    texts = ["a great film", "i hated every single scene of this long and dull movie", "so bad"]
    fast = recipes.DynamicPaddingWrapper(model, tokenizer, batch_size=2)(texts)
    stock = HuggingFaceModelWrapper(model, tokenizer)(texts)           # pads to 512 tokens
    assert torch.allclose(fast, stock, atol=1e-4)
    pairs = [("a great film", "i loved it"), ("so bad", "a waste of time")]
    encoded = tokenizer(*map(list, zip(*pairs)), padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**encoded).logits
    assert torch.allclose(recipes.DynamicPaddingWrapper(model, tokenizer)(pairs), expected,
                          atol=1e-5)


def test_standins_are_sane(recipes):
    from floodx.attacks import standins

    tagger = standins.load_tagger(RESOURCES)
    assert standins.universal_tags(tagger, "the actors loved this very good movie".split()) == [
        "DET", "NOUN", "VERB", "DET", "ADV", "ADJ", "NOUN"]
    emb = standins.SynonymEmbedding(RESOURCES)
    index = {w: i for i, w in enumerate(emb.words)}

    def near(word, k=10):
        return {emb.words[j] for j in emb.nn[index[word]][1:k + 1]}

    assert "movie" in near("film") and "awful" in near("terrible")
    for word, antonym in [("good", "bad"), ("love", "hate"), ("best", "worst")]:
        assert antonym not in near(word, 50) and word not in near(antonym, 50)


@pytest.mark.parametrize("recipe, needs", [
    ("textfooler", ["paragramcf", "Universal Sentence Encoder", "perceptron tagger"]),
    ("textbugger", ["paragramcf", "Universal Sentence Encoder"]),
    ("bertattack", ["bert-base-uncased", "Universal Sentence Encoder"]),
])
def test_paper_mode_without_resources_fails_fast(recipe, needs, recipes, victim, tmp_path):
    wrapper = recipes.DynamicPaddingWrapper(*victim)
    with pytest.raises(ResourceError) as err:
        recipes.build_attack(recipe, wrapper, "paper", tmp_path / "resources")
    message = str(err.value)
    for name in needs:
        assert name in message
    assert str(tmp_path / "resources" / "textattack") in message         # where it was expected
    assert "python -m floodx.attacks.fetch --resources" in message        # how to fetch it
    if recipe == "bertattack":
        assert "paragramcf" not in message


def test_bad_arguments_are_config_errors(recipes, victim):
    wrapper = recipes.DynamicPaddingWrapper(*victim)
    for args, kwargs in [(("pwws", wrapper, "offline", RESOURCES), {}),
                         (("textfooler", wrapper, "online", RESOURCES), {}),
                         (("textfooler", wrapper, "offline", RESOURCES), {"budget": 3})]:
        with pytest.raises(ConfigError):
            recipes.build_attack(*args, **kwargs)


def test_fetch_puts_resources_where_paper_mode_looks(tmp_path, monkeypatch):
    """The fetch steps with the network replaced by local archives: afterwards nothing is missing."""
    import io
    import tarfile
    import zipfile

    from floodx.attacks import fetch

    def download(url, dest):
        if url == fetch.PARAGRAMCF_URL:
            with zipfile.ZipFile(dest, "w") as zf:
                for name in ("paragram.npy", "wordlist.pickle", "nn.npy", "mse_dist.p", "cos_sim.p"):
                    zf.writestr(f"paragramcf/{name}", b"x")
        else:
            assert url.startswith(fetch.USE_URL)
            with tarfile.open(dest, "w:gz") as tf:
                info = tarfile.TarInfo("saved_model.pb")
                info.size = 1
                tf.addfile(info, io.BytesIO(b"x"))

    def touch(relpaths):
        def make(resources_dir):
            for rel in relpaths:
                (Path(resources_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
                (Path(resources_dir) / rel).write_text("x")
        return make

    by_name = {r.name.split(" (")[0]: r.relpath for r in fetch.PAPER_RESOURCES}
    monkeypatch.setattr(fetch, "_download", download)
    monkeypatch.setattr(fetch, "_fetch_bert", touch([by_name["bert-base-uncased masked LM"]]))
    monkeypatch.setattr(fetch, "_fetch_nltk", touch([
        by_name["NLTK averaged perceptron tagger"], by_name["NLTK universal tagset map"]]))
    fetch.fetch_paper_resources(tmp_path)
    for recipe in fetch.RECIPES:
        assert fetch.missing_paper_resources(recipe, tmp_path) == []
    assert (fetch.use_model_dir(tmp_path) / "saved_model.pb").read_bytes() == b"x"


def test_one_process_for_every_recipe_attacks_as_the_stock_path(recipes, victim, tmp_path, monkeypatch):
    """The speed work changes no outcome: the `attack_shard` job (one process, every recipe,
    floodx's WordNet reader) writes the same rows (result, perturbed text, queries) as the stock
    path (a recipe per run, NLTK's own WordNet loader) on a fixed set of examples."""
    import json

    import nltk.corpus

    from floodx.attacks import run, standins
    from floodx.attacks.rows import read_rows

    model, tokenizer = victim
    checkpoint, data = tmp_path / "victim", tmp_path / "data"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    examples = ATTACKED + [("an utterly charming and hilarious film", 1),
                           ("the plot is dull and the jokes fall flat", 0)]
    data.mkdir()
    (data / "test.jsonl").write_text("".join(
        json.dumps({"idx": i, "text": t, "text_pair": None, "label": y}) + "\n"
        for i, (t, y) in enumerate(examples)))
    (data / "meta.json").write_text(json.dumps(
        {"dataset": "pinned", "num_labels": 2, "attack_subset": {"test": list(range(len(examples)))}}))

    def key(path):
        return [(r["idx"], r["result"], r["perturbed"], r["queries"]) for r in read_rows(path)]

    spec = {"recipes": list(recipes.RECIPE_CLASSES), "mode": "offline", "subset": "test",
            "resources": str(RESOURCES), "max_length": 64}
    run.main(["--spec", json.dumps(spec), "--checkpoint", str(checkpoint), "--data", str(data),
              "--out", str(tmp_path / "floodx" / "{recipe}.csv")])
    monkeypatch.setattr(standins, "english_wordnet", lambda: nltk.corpus.wordnet)
    for recipe in recipes.RECIPE_CLASSES:
        stock = tmp_path / "stock" / f"{recipe}.csv"
        run._victim.cache_clear()   # a process of its own loads the model afresh
        run.attack_shard(checkpoint, data, "test", "test", recipe, "offline", 0, 1, stock, RESOURCES,
                         max_length=64)
        rows = key(stock)
        assert len(rows) == len(examples)
        assert any(result == "successful" for _, result, _, _ in rows), rows
        assert key(tmp_path / "floodx" / f"{recipe}.csv") == rows, recipe


def test_english_wordnet_answers_as_nltks(recipes):
    import nltk.corpus

    from floodx.attacks import standins

    words = ["dog", "dogs", "geese", "went", "running", "better", "happily", "xqzt", "unrunable",
             "films", "hilarious", "charming", "dull", "flat", "colour", "analyses"]
    for word in words:
        assert ([s.name() for s in standins.english_wordnet().synsets(word)]
                == [s.name() for s in nltk.corpus.wordnet.synsets(word)]), word
