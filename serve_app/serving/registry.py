"""Which models run, read from Serve's own state rather than a list of our own.

Every model is a Serve application whose deployment is named after its worker
type (`llm`, `text2vec`); the ingress's application ("router") has no such deployment.
So adding or removing a model is adding or removing an application, and the ingress
sees it as soon as the manager publishes the new table (routing_table.py), with no
redeploy of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.schema import ApplicationStatus, ReplicaState

from serve_app.config.worker_types import WORKER_TYPES, worker_type_of
from serve_app.errors import (
    ControllerUnavailable,
    ModelNotFound,
    ModelNotReady,
    WrongWorkerType,
    last_line,
)
from serve_app.versioned import Version, follow, supersedes

logger = logging.getLogger("ray.serve")
# Longer than a healthy controller's answer on a busy node (tens of ms), shorter than a client's patience.
CONTROLLER_TIMEOUT_S = 5.0
# How long one long poll on the manager's table waits for a change before it asks again. A
# poll in flight is a request the manager is running, and Serve stops a replica only once
# those end (or its grace, 20 s by default, runs out). Serve stops the ingress first, and
# the poll of an ingress that has gone is not cancelled: polls of 30 s held every Ctrl-C of
# `make run` and every redeploy of the router for that whole grace, then a kill.
WATCH_S = 5.0


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
    # A LoRA adapter (config/lora.py) is a model of its own that runs on its base's replicas:
    # the base's name. Its replicas, status and args are the base's.
    parent: str = ""

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
SERVING = {ReplicaState.RUNNING.value, ReplicaState.RECOVERING.value}


def _text(value: Any) -> str:
    """An enum the controller sent as itself (ApplicationStatus, ReplicaState), or its value."""
    return str(getattr(value, "value", value) or "")


def _sleeps(dep: dict) -> bool:
    autoscaling = (dep.get("deployment_config") or {}).get("autoscaling_config")
    return isinstance(autoscaling, dict) and autoscaling.get("min_replicas") == 0


def entries_from_raw(raw: dict) -> dict[str, ModelEntry]:
    """The models in the controller's answer to `get_serve_instance_details`, read as the plain
    dict it is. Why not `ServeInstanceDetails(**raw)`: validating Serve's whole state costs
    about 3.5 ms per application (72 ms at 20, 355 ms at 100: bench/registry_parse.py) on the
    ingress's event loop, where every request and open stream waits for it; reading the few
    keys a ModelEntry needs costs 3 microseconds per application."""
    models = {}
    for app in (raw.get("applications") or {}).values():
        config = app.get("deployed_app_config") or {}
        deployments = (app.get("deployments") or {}).values()
        if not deployments and (worker_type := worker_type_of(config)):
            # Not built yet: Serve lists the application at once and its deployments only once a
            # task has imported its builder, seconds later on a busy node. A model just started
            # is listed from the start, with no replica.
            models[app["name"]] = ModelEntry(
                name=app["name"], worker_type=worker_type, status=_text(app.get("status")),
                message=app.get("message") or "", args=dict(config.get("args") or {}),
                created=float(app.get("last_deployed_time_s") or 0.0))
        for dep in deployments:
            if dep.get("name") not in WORKER_TYPES:
                continue
            replicas = dep.get("replicas") or []
            args = dict(config.get("args") or {})
            # Adapters added or removed at runtime live in user_config, which the replicas lay over args.
            adapters = ((dep.get("deployment_config") or {}).get("user_config") or {}).get("lora_modules")
            if adapters is not None:
                args["lora_modules"] = adapters
            models[app["name"]] = ModelEntry(
                name=app["name"],
                worker_type=dep["name"],
                status=_text(app.get("status")),
                message=last_line(dep.get("message") or "") or app.get("message") or "",
                args=args,
                running_replicas=sum(_text(r.get("state")) in SERVING for r in replicas),
                created=float(app.get("last_deployed_time_s") or 0.0),
                replicas=tuple((r["replica_id"], _text(r.get("state")), r.get("pid") is not None) for r in replicas),
                needs=dict(dep.get("required_resources") or {}),
                sleeps=_sleeps(dep),
            )
    return with_adapters(models)


def with_adapters(models: dict[str, ModelEntry]) -> dict[str, ModelEntry]:
    """`models` and each llm's LoRA adapters as models of their own. A name that is already a
    model stays that model (the management API refuses such an adapter)."""
    for base in [m for m in models.values() if m.worker_type == "llm"]:
        for name in base.args.get("lora_modules") or {}:
            models.setdefault(name, replace(base, name=name, parent=base.name))
    return models


class ModelRegistry:
    """The ingress's table of models: Serve's applications as the manager publishes them
    (serving/routing_table.py).

    Requests read the table and never wait for it: a watcher task holds a long poll on the
    manager and installs each new version as it comes. A name the table lacks, or that has
    no running replica, is asked for again at once (`fresh`: the manager reads Serve's state
    first), so a model started a moment ago is found. A registry without a manager (the
    in-process tier's) gives its own `_snapshot` and has no watcher.
    """

    def __init__(self, manager: DeploymentHandle | None = None):
        self._manager = manager
        self._models: dict[str, ModelEntry] = {}
        self._version: Optional[Version] = None  # the manager's version of the table we hold
        self._fetched_at = 0.0
        self._handles: dict[tuple[str, str], DeploymentHandle] = {}
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task | None = None
        self._closing: set[asyncio.Task] = set()
        self._adapter_keys: set[tuple[str, str]] = set()  # handles made from a base's (no router of their own)

    async def _refresh(self) -> None:
        async with self._lock:  # one call serves every waiting request
            if self._fetched_at and time.monotonic() - self._fetched_at < 0.05:
                return
            try:
                self._install(*await asyncio.wait_for(self._snapshot(), CONTROLLER_TIMEOUT_S))
            except Exception as exc:
                # Serve's controller (or the manager) restarting, for seconds: the replicas serve
                # on, and so does our last table of them; without one there is nothing to go on.
                if not self._fetched_at:
                    raise ControllerUnavailable(f"Serve's controller is not answering ({type(exc).__name__}); retry") from exc
                logger.warning("Serve's state could not be read (%s): serving from the last table", exc)

    async def _snapshot(self) -> tuple[Optional[Version], dict[str, ModelEntry]]:
        """The table as Serve has it now (the manager reads it first), and its version."""
        return await self._manager.routing_table.remote(None, 0, True)

    def _install(self, version: Optional[Version], table: dict[str, ModelEntry]) -> None:
        """The table from a read or the watch, unless this copy holds a later one (a watch answer
        that arrives after a fresher read): versioned.supersedes. No version: no manager."""
        if version is None or supersedes(version, self._version):
            self._models, self._version = table, version
            self._forget_gone_handles()
        self._fetched_at = time.monotonic()

    def _ensure_watching(self) -> None:
        if self._manager is not None and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.get_running_loop().create_task(self._watch_forever())

    async def _watch_forever(self) -> None:
        await follow(lambda since: self._manager.routing_table.remote(since, WATCH_S), lambda: self._version,
                     self._install, "the manager's routing table")

    def _new_handle(self, entry: ModelEntry) -> DeploymentHandle:
        if entry.parent:  # the base's handle (one router for all), the adapter's name on each request
            base = self._handles.get((entry.parent, entry.worker_type))
            if base is None:
                base = self._handles[(entry.parent, entry.worker_type)] = serve.get_deployment_handle(
                    entry.worker_type, app_name=entry.parent)
            return base.options(multiplexed_model_id=entry.name)
        return serve.get_deployment_handle(entry.worker_type, app_name=entry.name)

    def _forget_gone_handles(self) -> None:
        # A handle runs its own request router (long poll, metrics pusher) until shut down,
        # so an ingress that sees models come and go by name for weeks would keep one per
        # name ever called. Once Serve no longer lists the application, nothing can be
        # in flight on it, and the handle goes.
        live = {(m.name, m.worker_type) for m in self._models.values()}
        for key in [k for k in self._handles if k not in live]:
            handle = self._handles.pop(key)
            if key in self._adapter_keys:  # it shares its base's router: the base's handle goes, or not
                self._adapter_keys.discard(key)
                continue
            task = asyncio.get_running_loop().create_task(handle.shutdown_async())
            self._closing.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._closing.discard)

    def invalidate(self) -> None:
        self._fetched_at = 0.0

    async def models(self, fresh: bool = False) -> list[ModelEntry]:
        """Every model; `fresh` waits for Serve's current state (status and admin routes)."""
        if fresh or not self._fetched_at:
            await self._refresh()
        self._ensure_watching()
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
            if entry.parent:
                self._adapter_keys.add(key)
        return self._handles[key]
