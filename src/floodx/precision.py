"""Numeric precision of training, evaluation and attack queries: bf16 autocast where it is native.

`training.bf16: auto` means bf16 autocast over fp32 weights wherever the hardware computes bf16
natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or AMX (these machines' CPUs
have AVX512-BF16; there autocast is a real speed lever). Elsewhere bf16 would be emulated, slower
than fp32, so `auto` keeps fp32 there; `true` forces bf16, `false` keeps fp32.

Attack queries have their own setting (`attacks.precision`: fp32 | bf16), since an attack's
outcome can hinge on a logit margin that rounding moves (docs/attacks.md, Precision).
"""

from contextlib import nullcontext

ATTACK_PRECISIONS = ("fp32", "bf16")


def cpu_has_native_bf16():
    """True when this CPU has bf16 instructions (AVX512-BF16 or AMX), as torch's own probes see it."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in probes:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:
            continue
    return False


def native_bf16(device):
    """Whether `device` (a torch.device) computes bf16 natively."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def uses_bf16(device, setting="auto"):
    """The `training.bf16` setting (auto | true | false) resolved on `device`."""
    if setting is True:
        return device.type in ("cuda", "cpu")
    return setting == "auto" and native_bf16(device)


def autocast_for(device, setting="auto"):
    """A context-manager factory: bf16 autocast when `setting` resolves to bf16, else a no-op."""
    import torch

    if not uses_bf16(device, setting):
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def attack_autocast(device, precision):
    """The autocast of an attack's model queries: `attacks.precision` fp32 (none) or bf16."""
    if precision not in ATTACK_PRECISIONS:
        from .errors import ConfigError

        raise ConfigError(f"attacks.precision '{precision}' must be one of {' | '.join(ATTACK_PRECISIONS)}")
    return autocast_for(device, precision == "bf16")


def precision_name(autocast):
    """'bf16' or 'fp32' for a factory returned by autocast_for (what result files record)."""
    return "fp32" if autocast is nullcontext else "bf16"
