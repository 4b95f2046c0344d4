"""LoRA adapters built here, with peft, on the default small model (nothing from a hub):
what the adapter tests of every tier load."""

from __future__ import annotations

from pathlib import Path

from helpers import LLM_SOURCE


def base_dir() -> str:
    """The default llm's weights in Hugging Face's format (its converted GGUF)."""
    from serve_app.config.workers import DEFAULT_CACHE_DIR
    from serve_app.replica.sources import hf_format_dir

    return hf_format_dir(LLM_SOURCE, DEFAULT_CACHE_DIR, False)


def make_adapter(out: Path, seed: int, rank: int = 4) -> str:
    """A LoRA adapter on the default llm's attention with random weights (peft starts B at
    zero, which would change nothing): its greedy answers differ from the base's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir(), dtype=torch.float32)
    # A large alpha (scale alpha / r = 16): random weights at the usual scale barely move a greedy answer.
    config = LoraConfig(r=rank, lora_alpha=16 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return str(out)


def make_foreign_adapter(out: Path) -> str:
    """An adapter for another architecture (a tiny GPT-2 made here): no module of ours matches."""
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=64, n_positions=64))
    get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"])).save_pretrained(out)
    return str(out)
