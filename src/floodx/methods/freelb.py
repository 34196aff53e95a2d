"""FreeLB (Zhu et al., ICLR 2020): "free" large-batch adversarial training on word embeddings.

K passes per step on E + delta_t; each pass back-propagates CE / K, so the parameter gradient is
the average of the K adversarial gradients; between passes delta takes a normalised ascent step
(alpha * g / ||g||_F per example) and is projected onto the epsilon ball (epsilon = 0: no bound, as
in the FreeLB code). delta_0 ~ U(-1, 1) * init_mag / sqrt(length * d), zero on padding. Dropout
masks are shared by the K passes (paper section 3.3, the `dp_masks` of the code). The loop itself
lives in `adversarial.FreeAdversary`; see docs/baselines.md for the hyper-parameters.
"""

from .adversarial import EmbeddingAdversary, FreeAdversary


class FreeLB(FreeAdversary):
    name = "freelb"
    defaults = {**EmbeddingAdversary.defaults, "share_dropout_mask": True}
