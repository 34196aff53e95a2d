"""Benchmarks and studies: measurements of floodx, not stages of the pipeline.

`make bench` runs `python -m floodx.bench` (`suite`: training, probe, baselines, attacks); `probe`
and `attacks` hold the side-by-side measurements those sections call; `standins_study` compares
the candidates for the offline attack stand-ins (docs/attacks.md).
"""
