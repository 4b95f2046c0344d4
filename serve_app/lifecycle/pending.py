"""How far a change to a model has got, from Serve's own report: what the manager's wait
(manager.py) reads after each apply, and says when a change fails or waits."""

from __future__ import annotations

from typing import Optional

import ray
from ray.serve.schema import ApplicationDetails

from serve_app.errors import last_line
from serve_app.lifecycle.placement import replica_needs


def resource_gap(app) -> str:
    """What a replica waits for, when no node has free what one replica needs.

    Read from the app's config, not its live deployments: those appear only once the
    app is built, and a model stuck on resources should say so from the start. (A need
    no node could ever meet was refused before applying: see refuse_what_never_fits.)
    """
    free = ray.available_resources()
    config = app.deployed_app_config
    for dep in config.deployments if config else []:
        options = dep.ray_actor_options
        if not options or not hasattr(options, "num_cpus"):  # unset: the code's defaults apply
            continue
        need = replica_needs(options.model_dump(exclude_unset=True))
        short = {k: v for k, v in need.items() if v > free.get(k, 0)}
        if short:
            have = {k: round(free.get(k, 0), 3) for k in short}
            return (
                f" (waiting for resources: each replica of {dep.name} needs {short}, free now {have}: other "
                "replicas hold the rest; stop one, or an autoscaler may add a node)"
            )
    return ""


def app_details(raw: dict, name: str) -> Optional[ApplicationDetails]:
    """One application of the controller's `get_serve_instance_details` answer, validated alone:
    validating the whole answer costs 5-8 ms per application here (bench/registry_parse.py), and
    the wait reads it twice a second while a model starts beside 47 others."""
    app = raw.get("applications", {}).get(name)
    return None if app is None else ApplicationDetails(**app)


def pending_reason(app: Optional[ApplicationDetails], removed: bool, applied_at: float) -> Optional[str]:
    """None when the application (None: absent) has reached its goal; 'failed: ...' when it never
    will; else what it waits for."""
    if removed:
        return None if app is None else f"is still {app.status.value}"
    if app is None:
        return "cancelled: it was stopped before it was ready"
    status = app.status.value
    deployment_messages = " ".join(d.message for d in app.deployments.values() if d.message)
    if status == "DEPLOY_FAILED":
        return f"failed to deploy: {last_line(deployment_messages or app.message)}"
    if app.last_deployed_time_s + 1 < applied_at:
        return "waits for the controller to take the new config"
    if status != "RUNNING":
        return f"is {status}" + (f": {deployment_messages}" if deployment_messages else "") + resource_gap(app)
    for dep in app.deployments.values():
        if dep.status.value == "UNHEALTHY":
            return f"failed: deployment {dep.name} is unhealthy: {last_line(dep.message)}"
        if dep.status.value != "HEALTHY":
            return f"deployment {dep.name} is {dep.status.value}"
    return None
