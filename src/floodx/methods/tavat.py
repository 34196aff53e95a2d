"""TAVAT (Li & Qiu, AAAI 2021): token-aware virtual adversarial training.

The perturbation of a step is the sum of two parts, both on the word embeddings:
* a sentence-level delta_lb: FreeLB's random start and normalised ascent step (per example);
* a token-level delta_tok, initialised from the *accumulated perturbation vocabulary* V (|V| x d):
  delta_tok = V[input_ids] / ||V[input_ids]||_F (the norm over the whole batch, as in the code),
  updated with the gradient normalised per token (g_i / ||g_i||), then passed through the
  token-level normalisation of the code: every token is rescaled by ||delta_i|| / max_j ||delta_j||
  (j over the sentence's tokens), so the most perturbed token keeps its size and weakly perturbed
  tokens shrink further.
The sum is projected onto the sentence ball ||delta_lb + delta_tok||_F <= epsilon (both parts
scaled by the same factor). After the last pass the final delta_tok is added into V at its token
ids (`index_put_(..., accumulate=True)` of the code), so later batches start from it. The passes
are FreeLB's (K passes, parameter gradients averaged). V starts as U(-1, 1) * init_mag / sqrt(d);
it is method state (`state_dict()`), not a parameter. Deviations: docs/baselines.md.
"""

import torch

from .adversarial import (EmbeddingAdversary, FreeAdversary, ascent_step, example_norm,
                          init_delta, shrink_factor, token_norm)


class TokenAwarePerturbation:
    def __init__(self, vocab, input_ids, embeds, mask, init_mag, lr, max_norm):
        self.vocab, self.ids, self.mask, self.lr, self.max_norm = vocab, input_ids, mask, lr, max_norm
        self.lb = init_delta(embeds, mask, init_mag, "l2")
        gathered = vocab[input_ids].to(embeds.dtype) * mask
        self.tok = gathered / gathered.float().norm().clamp(min=1e-12).to(embeds.dtype)
        self._project()

    def total(self):
        return self.lb + self.tok

    def ascend(self, grad):
        self.lb = ascent_step(self.lb, grad, self.lr, self.mask, "l2")
        tok = ascent_step(self.tok, grad, self.lr, self.mask, "token")
        norms = token_norm(tok)                                   # (B, L, 1), zero on padding
        self.tok = tok * norms / norms.amax(dim=1, keepdim=True).clamp(min=1e-12)
        self._project()

    def _project(self):
        if self.max_norm > 0:
            factor = shrink_factor(example_norm(self.lb + self.tok, "l2"), self.max_norm)
            self.lb, self.tok = self.lb * factor, self.tok * factor

    def finish(self):
        rows = (self.tok * self.mask).reshape(-1, self.tok.shape[-1]).to(self.vocab.dtype)
        self.vocab.index_add_(0, self.ids.reshape(-1), rows)


class TAVAT(FreeAdversary):
    name = "tavat"
    # TAVAT README, SST-2 with bert-base-uncased (= TextDefender's TAVAT defaults); K from Flooding-X.
    defaults = {**EmbeddingAdversary.defaults,
                "adv_lr": 0.05, "adv_init_mag": 0.2, "adv_max_norm": 0.5}
    norm_types = ("l2",)

    def __init__(self, **params):
        super().__init__(**params)
        self.vocab = None

    def setup(self, model, tokenizer, train_loader):
        self.vocab = self.initial_vocab(model)

    def initial_vocab(self, model):
        weight = model.get_input_embeddings().weight
        rows, dim = weight.shape
        vocab = torch.empty(rows, dim, device=weight.device, dtype=torch.float32).uniform_(-1, 1)
        return vocab * (self.adv_init_mag / dim ** 0.5)

    def new_perturbation(self, model, batch, embeds, mask):
        if self.vocab is None:        # step() without setup(): build V now
            self.vocab = self.initial_vocab(model)
        self.vocab = self.vocab.to(embeds.device)   # after load_state_dict from a CPU file
        return TokenAwarePerturbation(self.vocab, batch["input_ids"], embeds, mask,
                                      self.adv_init_mag, self.adv_lr, self.adv_max_norm)

    def state_dict(self):
        return {} if self.vocab is None else {"vocab": self.vocab}

    def load_state_dict(self, state):
        if "vocab" in state:
            self.vocab = state["vocab"]
