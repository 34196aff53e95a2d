"""Robustness evaluation with TextAttack: the paper's three recipes (TextFooler, TextBugger,
BERT-Attack) in paper mode (stock resources fetched by `floodx.attacks.fetch`) or offline mode
(registry stand-ins built by `floodx.attacks.standins`), built by
`floodx.attacks.recipes.build_attack`; sharded runs and metrics in `floodx.attacks.run` and
`floodx.attacks.metrics`. This package imports nothing heavy: `floodx.attacks.recipes` imports
TextAttack. See docs/attacks.md.
"""
