"""Which models run, read from Serve's own state rather than a list of our own.

Every model is a Serve application whose deployment is named after its worker
type (`llm`, `text2vec`); the ingress's application ("router") has no such deployment.
So adding or removing a model is adding or removing an application, and the ingress
sees it on its next refresh with no redeploy of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.schema import ApplicationStatus, ReplicaState, ServeInstanceDetails

from serve_app.config.workers import WORKER_TYPES
from serve_app.errors import (
    ControllerUnavailable,
    ModelNotFound,
    ModelNotReady,
    WrongWorkerType,
    last_line,
)

logger = logging.getLogger("ray.serve")
# Longer than a healthy controller's answer on a busy node (tens of ms), shorter than a client's patience.
CONTROLLER_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ModelEntry:
    name: str
    worker_type: str
    status: str  # the application's Serve status: RUNNING, DEPLOYING, DEPLOY_FAILED, ...
    message: str
    args: dict[str, Any] = field(default_factory=dict)
    running_replicas: int = 0
    created: float = 0.0  # when the application was last deployed
    # (replica id, Serve replica state, placed: whether Ray has started its process)
    replicas: tuple[tuple[str, str, bool], ...] = ()
    needs: dict[str, float] = field(default_factory=dict)  # what one replica reserves
    sleeps: bool = False  # autoscales down to zero replicas when idle (min_replicas: 0)

    @property
    def asleep(self) -> bool:
        """Scaled to zero: no replica, and a request wakes it (Serve starts one for it)."""
        return self.sleeps and self.running_replicas == 0 and self.status != ApplicationStatus.DEPLOY_FAILED.value

    @property
    def callable(self) -> bool:
        """A request may be sent: a replica runs, or the request will wake one."""
        return self.running_replicas > 0 or self.asleep


# A replica serves while RUNNING, and while a restarted controller is recovering its view of
# it (RECOVERING): the replica itself never stopped.
SERVING = (ReplicaState.RUNNING, ReplicaState.RECOVERING)


def _sleeps(dep) -> bool:
    autoscaling = getattr(dep.deployment_config, "autoscaling_config", None)
    if hasattr(autoscaling, "model_dump"):
        autoscaling = autoscaling.model_dump()
    return isinstance(autoscaling, dict) and autoscaling.get("min_replicas") == 0


def entries_from_details(details: ServeInstanceDetails) -> dict[str, ModelEntry]:
    models = {}
    for app in details.applications.values():
        for dep in app.deployments.values():
            if dep.name not in WORKER_TYPES:
                continue
            config = app.deployed_app_config
            models[app.name] = ModelEntry(
                name=app.name,
                worker_type=dep.name,
                status=app.status.value if hasattr(app.status, "value") else str(app.status),
                message=last_line(dep.message) or app.message,
                args=dict(config.args or {}) if config else {},
                running_replicas=sum(r.state in SERVING for r in dep.replicas),
                created=app.last_deployed_time_s,
                replicas=tuple((r.replica_id, r.state.value, r.pid is not None) for r in dep.replicas),
                needs=dict(dep.required_resources or {}),
                sleeps=_sleeps(dep),
            )
    return models


class ModelRegistry:
    """A cached snapshot of Serve's applications.

    Requests read the snapshot; once it is older than `ttl_s` a request starts a
    refresh in the background and goes on with what it has (stale while
    revalidating): the controller call costs tens of milliseconds on a busy
    node, and on the hot path it would land on nearly every request's time to
    first token. A name the snapshot lacks, or that has no running replica, is
    looked up again at once, so a model started a moment ago is found.
    """

    def __init__(self, ttl_s: float = 1.0):
        self._ttl_s = ttl_s
        self._models: dict[str, ModelEntry] = {}
        self._fetched_at = 0.0
        self._handles: dict[tuple[str, str], DeploymentHandle] = {}
        self._lock = asyncio.Lock()
        self._background: asyncio.Task | None = None
        self._closing: set[asyncio.Task] = set()

    async def _refresh(self) -> None:
        async with self._lock:  # one controller call serves every waiting request
            if self._fetched_at and time.monotonic() - self._fetched_at < 0.05:
                return
            try:
                self._models = await asyncio.wait_for(self._snapshot(), CONTROLLER_TIMEOUT_S)
            except Exception as exc:
                # Serve's controller restarting (seconds): its replicas serve on, and so does
                # our last snapshot of them; without one there is nothing to go on.
                if not self._fetched_at:
                    raise ControllerUnavailable(f"Serve's controller is not answering ({type(exc).__name__}); retry") from exc
                logger.warning("Serve's controller did not answer (%s): serving from the last snapshot", exc)
                return
            self._fetched_at = time.monotonic()
            self._forget_gone_handles()

    async def _snapshot(self) -> dict[str, ModelEntry]:
        # The public `serve.status()` is synchronous and leaves out each app's args, which
        # /models/supports reports; the controller call it wraps returns both, so we await
        # that directly.
        client = serve.context._get_global_client()
        raw = await client._controller.get_serve_instance_details.remote()
        return entries_from_details(ServeInstanceDetails(**raw))

    def _new_handle(self, entry: ModelEntry) -> DeploymentHandle:
        return serve.get_deployment_handle(entry.worker_type, app_name=entry.name)

    def _forget_gone_handles(self) -> None:
        # A handle runs its own request router (long poll, metrics pusher) until shut down,
        # so an ingress that sees models come and go by name for weeks would keep one per
        # name ever called. Once Serve no longer lists the application, nothing can be
        # in flight on it, and the handle goes.
        live = {(m.name, m.worker_type) for m in self._models.values()}
        for key in [k for k in self._handles if k not in live]:
            task = asyncio.get_running_loop().create_task(self._handles.pop(key).shutdown_async())
            self._closing.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._closing.discard)

    def _refresh_soon(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(self._refresh())

    def invalidate(self) -> None:
        self._fetched_at = 0.0

    async def models(self, fresh: bool = False) -> list[ModelEntry]:
        """Every model; `fresh` waits for Serve's current state (status and admin routes)."""
        if fresh or not self._fetched_at:
            await self._refresh()
        elif time.monotonic() - self._fetched_at > self._ttl_s:
            self._refresh_soon()
        return sorted(self._models.values(), key=lambda m: m.name)

    async def lookup(self, name: str) -> ModelEntry:
        await self.models()
        entry = self._models.get(name)
        if entry is None or not entry.callable:
            await self._refresh()  # it may have started since the last look
            entry = self._models.get(name)
        if entry is None:
            raise ModelNotFound(name, sorted(self._models))
        return entry

    async def running(self, worker_type: str) -> list[str]:
        """The models of a worker type with a running replica, by name."""
        return [m.name for m in await self.models() if m.worker_type == worker_type and m.running_replicas]

    async def handle(self, name: str, *worker_types: str) -> DeploymentHandle:
        """The handle of a running model of one of `worker_types`; raises a ServeError."""
        return self.handle_of(await self.lookup(name), *worker_types)

    def handle_of(self, entry: ModelEntry, *worker_types: str) -> DeploymentHandle:
        """The handle of a model already looked up: no second lookup on the request's path."""
        if worker_types and entry.worker_type not in worker_types:
            raise WrongWorkerType(entry.name, entry.worker_type, worker_types)
        if entry.status == ApplicationStatus.DEPLOY_FAILED.value or not entry.callable:
            raise ModelNotReady(entry.name, entry.status, entry.message)
        key = (entry.name, entry.worker_type)
        if key not in self._handles:
            self._handles[key] = self._new_handle(entry)
        return self._handles[key]
