"""Whether a model's replica can ever be placed: its needs against the shapes of nodes the
cluster has, and the node types its autoscaler may add.

A start or update whose replica no node could hold would wait the whole management
timeout and then fail; here it is refused at once, naming what one replica needs and
the largest node. What a node could hold but none has free now (other models hold it,
or the autoscaler has to add a node) is not refused: the change waits, and says so.
Pure functions; `model_manager.py` passes in the nodes and the autoscaler's types.
"""

from __future__ import annotations

from typing import Optional


def replica_needs(actor_options: dict) -> dict[str, float]:
    """The Ray resources one replica asks for, as a node lists them."""
    needs = {"CPU": actor_options.get("num_cpus") or 0, "GPU": actor_options.get("num_gpus") or 0,
             "memory": actor_options.get("memory") or 0, **(actor_options.get("resources") or {})}
    if actor_options.get("accelerator_type"):
        needs[f"accelerator_type:{actor_options['accelerator_type']}"] = 0.001
    return {k: v for k, v in needs.items() if v}


def fits(needs: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(k, 0) >= v for k, v in needs.items())


def never_fits(model: str, needs: dict[str, float], shapes: list[dict[str, float]]) -> Optional[str]:
    """Why no node could ever hold one replica, or None when some node (or node type) could."""
    if not shapes or any(fits(needs, shape) for shape in shapes):
        return None
    # The resource no node has enough of (when each alone fits somewhere, just none together: any).
    missing = [k for k in sorted(needs) if not any(shape.get(k, 0) >= needs[k] for shape in shapes)]
    short = missing[0] if missing else sorted(needs)[0]
    largest = max(shapes, key=lambda shape: (shape.get(short, 0), shape.get("CPU", 0)))
    shown = {k: largest.get(k, 0) for k in sorted(set(needs) | {"CPU", "GPU"})}
    return (f"model '{model}' can never be placed: one replica needs {_show(needs)}, and the largest node "
            f"this cluster has or can add offers {_show(shown)}")


def group_never_fits(model: str, bundles: list[dict[str, float]], strategy: str,
                     shapes: list[dict[str, float]]) -> Optional[str]:
    """Why no node (STRICT_PACK: one node holds every bundle) or no set of nodes (PACK,
    SPREAD: each bundle on some node) could ever hold a replica's placement group."""
    if not shapes:
        return None
    if strategy.startswith("STRICT_PACK"):
        total: dict[str, float] = {}
        for bundle in bundles:
            for k, v in bundle.items():
                total[k] = total.get(k, 0) + v
        why = never_fits(model, total, shapes)
        return why and why.replace("one replica needs", f"one replica's {len(bundles)} bundles, on one node, need")
    for bundle in bundles:
        why = never_fits(model, bundle, shapes)
        if why:
            return why.replace("one replica needs", "one of a replica's bundles needs")
    return None


def _show(resources: dict[str, float]) -> str:
    def amount(k, v):
        return f"{v / 2**30:.1f} GiB" if k == "memory" else f"{v:g}"

    return "{" + ", ".join(f"{k}: {amount(k, v)}" for k, v in sorted(resources.items())) + "}"


def autoscaler_node_types(declared: Optional[dict[str, dict[str, float]]] = None) -> dict[str, dict[str, float]]:
    """The node types this cluster's autoscaler may add, by name: as the autoscaler reports them
    to the GCS (autoscaler v2, KubeRay), else as the operator declared them (the router's
    `node_types`: Ray's default v1 autoscaler reports none), else {}."""
    import ray

    try:
        cluster_config = ray._private.state.state.get_cluster_config()
    except Exception:  # no autoscaler state in this cluster
        cluster_config = None
    groups = cluster_config.node_group_configs if cluster_config else []
    reported = {group.name: dict(group.resources) for group in groups if group.max_count != 0}
    return reported or dict(declared or {})


def launching_node_types() -> list[str]:
    """The node types the autoscaler is adding right now (from its status in the GCS)."""
    import json

    from ray._private import ray_constants
    from ray.experimental import internal_kv

    try:
        raw = internal_kv._internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
        report = json.loads(raw)["autoscaler_report"] if raw else {}
    except Exception:  # no autoscaler, or a status of another shape
        return []
    pending = [node[2] if isinstance(node, list) and len(node) > 2 else None for node in report.get("pending_nodes") or []]
    return sorted({*(report.get("pending_launches") or {}), *filter(None, pending)})


def node_type_for(needs: dict[str, float], launching: list[str], node_types: dict[str, dict[str, float]]
                  ) -> Optional[str]:
    """The node type being added that could hold a replica needing `needs` (any being added,
    when the types' resources are not known)."""
    fitting = [name for name in launching if name not in node_types or fits(needs, node_types[name])]
    return fitting[0] if fitting else None
