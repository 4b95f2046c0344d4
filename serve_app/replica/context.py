"""What any model replica asks about where it runs: its device, its threads, its model's name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def pick_device(requested: str) -> str:
    """'cpu' or 'cuda': 'auto' takes the GPU Ray assigned to the replica, if any."""
    import torch

    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or torch.cuda.is_available():
        return "cuda"
    return "cpu"


def default_threads() -> int:
    """Half the cores this process may run on, at least one: room for the other models' threads."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


def set_threads(num_threads: Optional[int]) -> int:
    """torch's compute threads for this replica: its args' `num_threads`, else the default.

    Ray would set them from the replica's `num_cpus` reservation (OMP_NUM_THREADS), which
    is a fraction of a CPU here so that more models fit; the two are set apart on purpose.
    """
    import torch

    threads = num_threads or default_threads()
    torch.set_num_threads(threads)
    return threads


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


def replica_id() -> str:
    """This replica's id in Serve ('' outside a replica: a deployment's class run in-process)."""
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id
    except Exception:
        return ""


def placement() -> dict:
    """Where this replica runs: its node, and the placement group it was given (bundles,
    strategy, the node of each bundle), if any. {} outside Ray."""
    try:
        import ray
        from ray.util.placement_group import get_current_placement_group, placement_group_table

        # Asking for the runtime context outside Ray would start (or join) a Ray cluster.
        if not ray.is_initialized():
            return {}
        node = ray.get_runtime_context().get_node_id()
    except Exception:
        return {}
    group = get_current_placement_group()
    if group is None:
        return {"node_id": node}
    table = placement_group_table(group)
    nodes = table.get("bundles_to_node_id", {})
    return {"node_id": node, "bundles": group.bundle_specs, "strategy": table.get("strategy"),
            "bundle_nodes": [nodes.get(i) for i in range(len(group.bundle_specs))]}
