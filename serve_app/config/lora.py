"""LoRA adapters served on an llm's base weights: the `lora_modules` and `max_loras` of its args.

Each adapter is a model of its own to clients (by its name, with `parent` its base), and
runs on the base's replicas: Serve's model multiplexing loads it into a replica on its
first request there, keeps at most `max_loras` per replica (least recently used leaves
first), and routes its requests to replicas that already hold it (deployments/llm.py).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from serve_app.config.names import MODEL_NAME


class LoraArgs(BaseModel):
    lora_modules: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "LoRA adapters on this base, name: path (a local directory in peft's format, as "
            "save_pretrained writes it). Each is a model to clients; every engine takes them "
            "(transformers through peft, vllm its own LoRA, simulated by name). On vllm, LoRA is "
            "switched on at start: the first adapters of a base started without restart it."
        ),
    )
    max_loras: int = Field(
        default=4, ge=1, le=256, description="Adapters one replica holds at once; the least recently used leaves first."
    )

    @field_validator("lora_modules")
    @classmethod
    def _names_and_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not MODEL_NAME.match(name):
                raise ValueError(f"adapter name '{name}': use letters, digits, '.', '_' and '-'")
            if not isinstance(path, str) or not path.strip():
                raise ValueError(f"adapter '{name}' has no path")
        return value


def vllm_lora_on(args: dict) -> bool:
    """Whether a vllm replica started with these args has LoRA on (engines/vllm/options.py)."""
    return bool(args.get("lora_modules")) or bool((args.get("vllm_kwargs") or {}).get("enable_lora"))
