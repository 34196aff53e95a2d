"""TextAttack without flair where flair cannot be imported (a transformers-5 host).

TextAttack 0.3.11 imports flair at module level (`textattack.shared.attacked_text`, `.utils.strings`,
`constraints.grammaticality.part_of_speech`), and flair 0.15.1, the newest, imports
`LayoutLMv2FeatureExtractor`, which transformers 5 removed: `import textattack` fails there. floodx's
recipes never tag with flair (offline mode tags with the averaged perceptron, floodx.attacks.recipes;
paper mode with NLTK's tagger, as TextFooler's recipe does), so when, and only when, `import flair`
fails, `ensure_flair()` puts a minimal stand-in for the names TextAttack imports in `sys.modules`. Its
classes refuse to tag; nothing of TextAttack is patched. Provenance records it (`flair_standin`).
"""

import sys
import types

MARK = "__floodx_standin__"


def _refuse(*_args, **_kwargs):
    raise RuntimeError(f"flair is not importable here ({standin_reason()}); floodx installed a stand-in that "
                       "cannot tag. Use floodx's recipes (they tag with the averaged perceptron or NLTK)")


class _Tokenizer:
    """flair.data.Tokenizer's shape (TextAttack subclasses it at import)."""

    def tokenize(self, text):
        raise NotImplementedError

    @property
    def name(self):
        return type(self).__name__


class _Sentence:
    def __init__(self, *args, **kwargs):
        _refuse()


class _SequenceTagger:
    load = staticmethod(_refuse)


def standin_reason():
    """Why flair was replaced (None when the real flair is in use or not imported yet)."""
    return getattr(sys.modules.get("flair"), MARK, None)


def ensure_flair():
    """Import flair, or put the stand-in in its place if that fails; returns the reason or None."""
    if "flair" in sys.modules:
        return standin_reason()
    try:
        import flair  # noqa: F401
        return None
    except Exception as err:  # ImportError, or flair's own import-time errors under transformers 5
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
    for name in [m for m in sys.modules if m == "flair" or m.startswith("flair.")]:
        del sys.modules[name]                   # a half-imported flair
    flair, data, models = (types.ModuleType(n) for n in ("flair", "flair.data", "flair.models"))
    data.Sentence, data.Tokenizer, models.SequenceTagger = _Sentence, _Tokenizer, _SequenceTagger
    flair.data, flair.models, flair.device = data, models, None
    setattr(flair, MARK, reason)
    sys.modules.update({"flair": flair, "flair.data": data, "flair.models": models})
    return reason
