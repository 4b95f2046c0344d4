"""How far a change to a model has got, from Serve's own report: what the manager's wait
(manager.py) reads after each apply, and says when a change fails or waits.

It reads the targets' status overviews (`get_serve_statuses`), not the controller's whole
`get_serve_instance_details`: that one builds every application's details, replicas included,
on the controller, the process whose control loop starts the new replica, and the wait asked
for it twice a second while a model started beside 47 others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import ray
from ray.serve._private.application_state import StatusOverview
from ray.serve.generated.serve_pb2 import StatusOverview as StatusOverviewProto
from ray.serve.schema import ServeApplicationSchema

from serve_app.errors import last_line
from serve_app.lifecycle.placement import replica_needs


@dataclass(frozen=True)
class Progress:
    """One application's status as the wait reads it; `status` is NOT_STARTED when it is absent."""

    status: str
    message: str
    deployed_at: float
    deployments: tuple[tuple[str, str, str], ...]  # (name, status, message)

    @classmethod
    def from_bytes(cls, blob: bytes) -> "Progress":
        """One entry of the controller's `get_serve_statuses` answer (serialized protobuf)."""
        overview = StatusOverview.from_proto(StatusOverviewProto.FromString(blob))
        return cls(
            status=overview.app_status.status.value,
            message=overview.app_status.message,
            deployed_at=overview.app_status.deployment_timestamp,
            deployments=tuple((d.name, d.status.value, d.message) for d in overview.deployment_statuses),
        )


def resource_gap(config: Optional[ServeApplicationSchema]) -> str:
    """What a replica waits for, when no node has free what one replica needs.

    Read from the app's config, not its live deployments: those appear only once the
    app is built, and a model stuck on resources should say so from the start. (A need
    no node could ever meet was refused before applying: see refuse_what_never_fits.)
    """
    if config is None:
        return ""
    free = ray.available_resources()
    for dep in config.deployments:
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


def pending_reason(app: Progress, removed: bool, applied_at: float,
                   config: Optional[ServeApplicationSchema]) -> Optional[str]:
    """None when the application has reached its goal; 'failed: ...' when it never will; else
    what it waits for. `config`: the application's, for what a replica waits on."""
    absent = app.status == "NOT_STARTED"
    if removed:
        return None if absent else f"is still {app.status}"
    if absent:
        return "cancelled: it was stopped before it was ready"
    deployment_messages = " ".join(message for _, _, message in app.deployments if message)
    if app.status == "DEPLOY_FAILED":
        return f"failed to deploy: {last_line(deployment_messages or app.message)}"
    if app.deployed_at + 1 < applied_at:
        return "waits for the controller to take the new config"
    if app.status != "RUNNING":
        return f"is {app.status}" + (f": {deployment_messages}" if deployment_messages else "") + resource_gap(config)
    for name, status, message in app.deployments:
        if status == "UNHEALTHY":
            return f"failed: deployment {name} is unhealthy: {last_line(message)}"
        if status != "HEALTHY":
            return f"deployment {name} is {status}"
    return None
