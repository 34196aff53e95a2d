"""floodx: Flooding-X (Liu et al., ACL 2022) reproduced as a Snakemake pipeline."""

__version__ = "0.1.0"
