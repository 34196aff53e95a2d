"""PGD adversarial training (Madry et al., 2018) on word embeddings, as used for BERT.

One optimisation step: delta_0 = random start in the ball, then K ascent steps
delta_{t+1} = Proj(delta_t + alpha * g_t / ||g_t||), g_t = d CE(E + delta_t) / d delta_t, and the
model is updated on the adversarial loss at the final delta_K only -- the clean loss is *not* added
(Madry's min-max formulation; TextDefender's PGD trainer: "for PGD-K, clean batch is not used").
The ascent passes ask autograd for the gradient on delta only, so they leave `.grad` untouched.
Cost: K ascent forward+backward passes + 1 final forward+backward = K + 1 passes per step.
"""

import torch

from .adversarial import EmbeddingAdversary, token_mask
from .base import classification_loss, embed


class PGD(EmbeddingAdversary):
    name = "pgd"
    defaults = dict(EmbeddingAdversary.defaults)   # K=5, alpha=0.03, init 0.05, eps 0 (unbounded)

    def __init__(self, **params):
        super().__init__(**params)
        self.passes_per_step = self.adv_steps + 1

    def step(self, model, batch):
        with torch.no_grad():
            clean = embed(model, batch)            # constant during the ascent
            mask = token_mask(batch, clean)
            perturbation = self.new_perturbation(model, batch, clean, mask)
        sync = self.dropout_sync(model)
        for index in range(self.adv_steps):
            if sync is not None:
                sync.before_pass(index)
            delta = perturbation.total().detach().requires_grad_()
            self.record(delta, mask)
            loss, _ = classification_loss(model, batch, inputs_embeds=clean + delta)
            (grad,) = torch.autograd.grad(loss, delta)
            self.log_pass(index, loss)
            with torch.no_grad():
                perturbation.ascend(grad)
        if sync is not None:
            sync.before_pass(self.adv_steps)
        delta = perturbation.total().detach()
        self.record(delta, mask)
        loss, _ = classification_loss(model, batch, inputs_embeds=embed(model, batch) + delta)
        loss.backward()
        self.log_pass(self.adv_steps, loss)
        return loss.detach()
