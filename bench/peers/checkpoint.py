"""The checkpoint every side of `make bench-peers` serves: the default model as a bfloat16
Hugging Face checkpoint, the way hub checkpoints ship. Our GGUF conversion (replica/
sources.py) gives float32; this casts that once to bfloat16 and keeps it in the cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from workload import LLM_SOURCE


def bfloat16_checkpoint(cache_dir: str) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from serve_app.replica.sources import hf_format_dir

    float32_dir = hf_format_dir(LLM_SOURCE, cache_dir, trust_remote_code=False)
    target = Path(cache_dir) / "peers" / f"{Path(float32_dir).name}-bfloat16"
    if (target / "config.json").is_file():
        return str(target)
    model = AutoModelForCausalLM.from_pretrained(float32_dir, dtype=torch.bfloat16)
    tmp = tempfile.mkdtemp(dir=Path(cache_dir), prefix=".peers-")
    try:
        model.save_pretrained(tmp)  # config.json names torch_dtype bfloat16
        AutoTokenizer.from_pretrained(float32_dir).save_pretrained(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


if __name__ == "__main__":
    from serve_app.config.workers import DEFAULT_CACHE_DIR

    print(bfloat16_checkpoint(DEFAULT_CACHE_DIR))
