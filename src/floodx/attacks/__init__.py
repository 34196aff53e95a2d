"""Robustness evaluation with TextAttack: the paper's three recipes (TextFooler, TextBugger,
BERT-Attack) in paper mode (stock resources fetched by `floodx.attacks.fetch`) or offline mode
(registry stand-ins built by `floodx.attacks.standins`), built by `recipes.build_attack`.

One job each: `run` attacks a shard (the `attack_shard` rule; `resume` keeps finished examples
across a kill), `metrics` gathers shards into `summary.json` (the `gather_attack` rule). Shared:
`examples` (which examples are attacked), `rows` (the row format), `floodx.inference` (batched
model calls). Only `recipes` imports TextAttack. See docs/attacks.md.
"""
