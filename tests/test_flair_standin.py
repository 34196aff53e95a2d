"""The flair stand-in (floodx.attacks.flair_standin): used only when flair cannot be imported, and then
enough for `import textattack` and floodx's recipes, never for tagging."""

import subprocess
import sys
import textwrap


def run(code, nltk_data=None):
    import os

    env = {**os.environ, **({"NLTK_DATA": str(nltk_data)} if nltk_data else {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env=env)


def stopwords(folder):
    """The NLTK stop-word list `import textattack` needs, from PyPI's stop-words package."""
    from pathlib import Path

    import stop_words

    target = folder / "corpora" / "stopwords"
    target.mkdir(parents=True)
    source = Path(stop_words.__file__).parent / "stop-words" / "english.txt"
    (target / "english").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def test_a_broken_flair_is_replaced_and_textattack_imports(tmp_path):
    # flair made unimportable as transformers 5 makes it (an ImportError at import time).
    result = run("""
        import builtins, sys
        real_import = builtins.__import__
        def no_flair(name, *args, **kwargs):
            if name == "flair" or name.startswith("flair."):
                raise ImportError("cannot import name 'LayoutLMv2FeatureExtractor' from 'transformers'")
            return real_import(name, *args, **kwargs)
        builtins.__import__ = no_flair
        from floodx.attacks.flair_standin import ensure_flair, standin_reason
        reason = ensure_flair()
        builtins.__import__ = real_import
        assert "LayoutLMv2FeatureExtractor" in reason and standin_reason() == reason
        import nltk
        from floodx.attacks.rows import result_row        # imports textattack's results
        import textattack.shared.attacked_text, textattack.shared.utils.strings  # the modules that import flair
        from floodx.provenance import provenance
        assert provenance()["flair_standin"] == reason
        import flair.data
        try:
            flair.data.Sentence("a film")
        except RuntimeError as err:
            assert "cannot tag" in str(err)
        else:
            raise AssertionError("the stand-in tagged")
        print("ok")
    """, nltk_data=stopwords(tmp_path / "nltk_data"))
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_a_working_flair_is_left_alone():
    import pytest

    if run("import flair").returncode != 0:
        pytest.skip("flair does not import here (a transformers-5 host): the stand-in is what runs")
    result = run("""
        from floodx.attacks.flair_standin import ensure_flair
        assert ensure_flair() is None
        import flair
        assert not hasattr(flair, "__floodx_standin__")
        print("ok")
    """)
    assert result.returncode == 0, result.stderr[-3000:]
