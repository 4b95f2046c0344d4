"""What `dtype: auto` means for one checkpoint on one device: the checkpoint's own dtype where
the device computes in it natively, float32 otherwise. The same rule for both engines.

- A float32 checkpoint (every GGUF we convert) stays float32: its greedy answers stay as
  they are.
- A bfloat16 (or float16) checkpoint, the way hub checkpoints ship, runs in its own dtype
  on a device that computes in it natively: CUDA from compute capability 8.0 (Ampere) for
  bfloat16 (7.0 for float16), and CPUs with AVX512-BF16 or AMX for bfloat16 (bare vLLM on
  such a CPU: 401 tok/s in bfloat16 against 242 in float32). Elsewhere bfloat16 would be
  emulated, slower than float32: float32 then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

NATIVE_CPU_BF16 = {"avx512_bf16", "amx_bf16"}


def checkpoint_dtype(directory: str) -> Optional[str]:
    """The dtype a Hugging Face checkpoint's config.json names (`torch_dtype`, or `dtype`)."""
    try:
        config = json.loads((Path(directory) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("torch_dtype") or config.get("dtype")
    return str(value).removeprefix("torch.") if value else None


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve(requested: str, checkpoint: Optional[str], device: str, flags: set[str] = frozenset(),
            cuda_capability: Optional[tuple[int, int]] = None) -> tuple[str, str]:
    """(dtype, why) for `requested` ('auto' or a dtype), a checkpoint's dtype, and a device."""
    if requested != "auto":
        return requested, "set in the model's args"
    if checkpoint not in ("bfloat16", "float16"):
        return "float32", f"the checkpoint is {checkpoint or 'float32 (unnamed)'}"
    if device == "cuda":
        needed = (8, 0) if checkpoint == "bfloat16" else (7, 0)
        if cuda_capability is not None and cuda_capability >= needed:
            return checkpoint, f"the checkpoint is {checkpoint}, native on this GPU (sm{cuda_capability[0]}{cuda_capability[1]})"
        return "float32", f"the checkpoint is {checkpoint}, which this GPU would emulate"
    if checkpoint == "bfloat16" and flags & NATIVE_CPU_BF16:
        return "bfloat16", f"the checkpoint is bfloat16, native on this CPU ({', '.join(sorted(flags & NATIVE_CPU_BF16))})"
    return "float32", f"the checkpoint is {checkpoint}, which this CPU would emulate"


def for_engine(requested: str, directory: str, device: str) -> tuple[str, str]:
    """`resolve` for a checkpoint on disk and this process's device."""
    checkpoint, capability = checkpoint_dtype(directory), None
    if requested == "auto" and device == "cuda" and checkpoint in ("bfloat16", "float16"):
        import torch

        capability = torch.cuda.get_device_capability()
    return resolve(requested, checkpoint, device, cpu_flags() if device == "cpu" else set(), capability)
