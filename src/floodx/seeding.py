"""One place that fixes every random number generator a run touches."""

import os
import random

import numpy as np
import torch


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with `deterministic`, deterministic kernels only.

    On a GPU that is strict: an operation without a deterministic kernel raises instead of warning, SDPA
    attention uses its math kernel (the flash and memory-efficient backward passes are not deterministic),
    cuDNN does not autotune, and cuBLAS needs CUBLAS_WORKSPACE_CONFIG, which must be in the environment
    before CUDA starts: the workflow exports it for every job (workflow/rules/common.smk), this only covers
    a process started by hand before its first CUDA call. On the CPU the kernels used here are
    deterministic already (warn only, as some have no flagged variant)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=not on_gpu)
        if on_gpu:
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
            torch.backends.cuda.enable_flash_sdp(False)
            torch.backends.cuda.enable_mem_efficient_sdp(False)
