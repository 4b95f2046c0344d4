"""What any model replica asks about where it runs: its device, and its model's name."""

from __future__ import annotations

from pathlib import Path


def pick_device(requested: str) -> str:
    """'cpu' or 'cuda': 'auto' takes the GPU Ray assigned to the replica, if any."""
    import torch

    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or torch.cuda.is_available():
        return "cuda"
    return "cpu"


def model_name(source: str) -> str:
    """The application's name inside a replica (what clients call the model), else the source's."""
    try:
        from ray.serve.context import _get_internal_replica_context

        context = _get_internal_replica_context()
        if context is not None and context.app_name:
            return context.app_name
    except Exception:  # not in a replica
        pass
    return Path(source.split(":", 1)[-1]).name or source
