"""Starting, stopping, restarting and updating models by editing Serve's own config.

There is one declarative truth: the config Serve's controller holds, the one that
`serve deploy serve_config.yaml` applies, `serve config` prints and the dashboard
shows. A management call reads it, edits one application (`config_edits.py`),
applies the whole config back through the controller (what Serve's REST API
`PUT /api/serve/applications/` does), then waits for the change to run or fail.
Serve checkpoints that config, so a model started here survives restarts of the
router, of replicas and of the controller.

The manager is its own single-replica deployment beside the router. Changes take turns
(group_commit.py), so no call loses another's change, and the changes that arrive while one
is applied are applied together: a burst of N starts costs one more apply, not N.
"""

import asyncio
import logging
import time
import uuid
from typing import Optional

import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.schema import ServeDeploySchema

from deployments.llm import parallel_options
from serve_app.config.router import SourcePolicy
from serve_app.config.worker_types import IMPORT_PATHS, worker_type_of
from serve_app.config.workers import DEFAULT_ACTOR_OPTIONS, LLMArgs
from serve_app.kv import Store, gcs
from serve_app.lifecycle import catalog
from serve_app.lifecycle.changes import ChangeResult, ModelChange
from serve_app.lifecycle.config_edits import (
    CannotPlace,
    ChangeConflict,
    ChangeTimedOut,
    ControllerNotAnswering,
    ManagementError,
    ModelFailed,
    UnknownModel,
    new_app_config,
    restarted_app_config,
    updated_app_config,
)
from serve_app.lifecycle.group_commit import GroupCommit
from serve_app.lifecycle.pending import Progress, pending_reason
from serve_app.lifecycle.placement import autoscaler_node_types, group_never_fits, never_fits, replica_needs
from serve_app.lifecycle.resume import bring_back, forget_removed, resume
from serve_app.serving.routing_table import TablePublisher

logger = logging.getLogger("ray.serve")

POLL_S = 0.5
# A management call, not a request's path: waiting longer beats a 503. In CI, on a loaded 2-core
# machine, the controller took over 10 s (the bound until then) to answer a stop's call.
CONTROLLER_TIMEOUT_S = 30.0
# The controller acts on a new config in its next control-loop pass; look no sooner.
SETTLE_S = 1.0


async def _controller(method: str, *args):
    """A call to Serve's controller, bounded: a controller restarting (seconds) makes the change
    a 503 to retry, never a hang. Serve exposes no public async call that applies a whole
    declarative config from inside a replica; `apply_config` is what its REST API calls."""
    controller = serve.context._get_global_client()._controller
    try:
        return await asyncio.wait_for(getattr(controller, method).remote(*args), CONTROLLER_TIMEOUT_S)
    except (asyncio.TimeoutError, RayActorError) as exc:
        raise ControllerNotAnswering(f"Serve's controller is not answering ({type(exc).__name__}); retry") from exc


# No Serve access line per call: only ingress replicas call it (their access log has the request,
# and `apply` logs each change), and the routing table's long poll wrote one every 5 s, idle.
@serve.deployment(name="manager", num_replicas=1, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0},
                  logging_config={"enable_access_log": False})
class ModelManager:
    def __init__(self, policy: SourcePolicy, default_timeout_s: float, node_types: Optional[dict] = None,
                 table_interval_s: float = 1.0, store: Store = gcs, remove_models: tuple[str, ...] = ()):
        self.policy = policy
        self.store = store  # the stopped-model catalog's
        self.default_timeout_s = default_timeout_s
        self.node_types = node_types or {}
        self.changes = GroupCommit(self._apply_together)
        self.table = TablePublisher(lambda: _controller("get_serve_instance_details"), table_interval_s)
        forget_removed(store, list(remove_models))
        # Serve runs a constructor on the replica's event loop: the resume (then the keeping of
        # what was started through the API) starts with the replica and runs for its life.
        self._resuming = asyncio.get_running_loop().create_task(resume(self, _controller))

    async def app_names(self) -> list[str]:
        """The applications in Serve's config (small: no replica details)."""
        return list(await _controller("get_app_configs"))

    async def restore(self) -> list[str]:
        """Start what an imported backup says was started through the API (serve_app/state)."""
        return await bring_back(self, _controller)

    async def routing_table(self, since, wait_s: float, fresh: bool = False):
        """The routing table every ingress replica holds (serving/routing_table.py): (version,
        table) once it differs from `since`, else (version, None) after `wait_s`."""
        return await self.table.watch(since, min(wait_s, 60.0), fresh)

    async def apply(self, req: ModelChange) -> ChangeResult:
        started = time.monotonic()
        timeout_s = req.timeout_s or self.default_timeout_s
        try:
            targets, applied_at = await self.changes.submit(req)
            logger.info("management %s model=%s targets=%s applied", req.apply_type, req.model, targets)
            await self.table.publish()
            if not req.wait:  # the caller follows the change on GET /api/models/status
                message = f"{', '.join(targets) or 'no model'}: applied"
                return ChangeResult(202, message, True, time.monotonic() - started)
            message = await self._wait(targets, req.apply_type == "stop", applied_at, timeout_s)
            await self.table.publish()
            return ChangeResult(200, message, True, time.monotonic() - started)
        except ManagementError as exc:
            logger.info("management %s model=%s failed (%d): %s", req.apply_type, req.model, exc.status_code, exc)
            return ChangeResult(exc.status_code, str(exc), False, time.monotonic() - started)

    async def _apply_together(self, batch: list[tuple[ModelChange, asyncio.Future]]) -> list:
        """The changes waiting at this moment (group_commit.py): one read of Serve's config, each
        change's edit in turn (a refused one fails alone), one apply. A change to a model that an
        earlier change of this pass touched, and every change after it, waits for the next pass."""
        raw = await _controller("get_serve_instance_details")
        targets_now = await _controller("get_app_configs")
        config = self._deploy_config(raw, targets_now)
        apps = {app["name"]: app for app in config["applications"]}
        stopped, started_here = catalog.stopped(self.store), catalog.running(self.store)
        shapes = node_shapes(self.node_types)
        taken, deferred, touched = [], [], set()
        for req, done in batch:
            if deferred or req.model in touched or (req.model is None and touched):
                deferred.append((req, done))
                continue
            edited = dict(apps)  # the edits replace an application's dict, never change it
            try:
                targets = self._edit(edited, stopped, req)
                refuse_what_never_fits(edited, targets, shapes)
            except ManagementError as exc:
                done.set_exception(exc)
                continue
            apps = edited
            touched.update(targets or ["*"])
            taken.append((req, done, targets))
        if taken:
            config["applications"] = list(apps.values())
            applied_at = time.time()
            await _controller("apply_config", ServeDeploySchema(**config))
            for req, done, targets in taken:
                self._update_catalog(req, targets, stopped, started_here, targets_now, apps)
                done.set_result((targets, applied_at))
            logger.info("management applied %d change(s) in one pass: %s", len(taken),
                        ", ".join(f"{req.apply_type} {req.model or 'every model'}" for req, _, _ in taken))
        return deferred

    def _update_catalog(self, req: ModelChange, targets: list[str], stopped: dict, started_here: dict,
                        before: dict, after: dict[str, dict]) -> None:
        """A stopped model is remembered with its last config, unless it is to be forgotten; one
        started through the API is recorded as running (and again as it is updated or restarted),
        for a new cluster to resume and a new config not to drop (resume.py). A model of the
        operator's config updated through the API is not: the config that removes it means it.
        `stopped` and `started_here` are the catalog as the pass read it: no other change of the
        pass touches these targets (_apply_together defers it)."""
        for name in targets:
            if req.apply_type == "stop":
                catalog.drop_running(self.store, name)
                if req.delete_after:
                    catalog.forget(self.store, name)
                else:
                    catalog.remember(self.store, name, before[name].model_dump(exclude_unset=True))
            elif req.apply_type == "start" or name in started_here:
                catalog.record_running(self.store, name, after[name])
                if name in stopped:  # started again
                    catalog.forget(self.store, name)

    @staticmethod
    def _deploy_config(raw: dict, app_configs: dict) -> dict:
        """The whole declarative config as the controller holds it now.

        Applications come from the controller's config checkpoint (its target),
        not from the live details, where an application being deleted still shows.
        """
        for name, app in raw.get("applications", {}).items():
            if name not in app_configs and app.get("status") != "DELETING":
                raise ChangeConflict(
                    f"application '{name}' was deployed with serve.run, not a config: "
                    "models can only be managed when every application comes from a Serve config"
                )
        config = {"applications": [c.model_dump(exclude_unset=True) for c in app_configs.values()]}
        for key in ("proxy_location", "http_options", "grpc_options", "target_capacity"):
            if raw.get(key) is not None:
                config[key] = raw[key]
        return config

    def _edit(self, apps: dict[str, dict], stopped: dict[str, dict], req: ModelChange) -> list[str]:
        """Edit `apps` in place for the request; return the applications it changes."""
        models = {name: worker_type_of(app) for name, app in apps.items() if worker_type_of(app)}
        if req.apply_type == "start":
            if not req.model:
                raise ManagementError("'model' is required to start a model")
            if req.model in apps:
                raise ChangeConflict(f"model '{req.model}' already exists; use restart or update_params to change it")
            apps[req.model] = self._new_app(req, stopped.get(req.model), apps)
            return [req.model]
        forgettable = set(stopped) if req.apply_type == "stop" and req.delete_after else set()
        if req.model is None:
            targets = sorted(models)
        elif req.model not in models and req.model not in forgettable:
            raise UnknownModel(f"model '{req.model}' does not exist; models: {', '.join(sorted(models)) or 'none'}")
        elif req.model in models and req.worker_type in IMPORT_PATHS and models[req.model] != req.worker_type:
            raise ManagementError(f"model '{req.model}' is of worker type {models[req.model]}, not {req.worker_type}")
        else:
            targets = [req.model]
        for name in targets:
            if req.apply_type == "stop":
                apps.pop(name, None)  # absent: a stopped model, now to be forgotten
            elif req.apply_type == "restart":
                apps[name] = restarted_app_config(apps[name], uuid.uuid4().hex)
            else:
                apps[name] = updated_app_config(apps[name], models[name], req.params, self.policy)
        return targets

    def _new_app(self, req: ModelChange, stopped_config: Optional[dict], apps: dict[str, dict]) -> dict:
        """A new model's application, or a stopped one's last config with the request's params on top."""
        if stopped_config is None:
            defaults = actor_options_of_type(apps, req.worker_type or "llm")
            return new_app_config(req.model, req.worker_type, req.params, self.policy, defaults)
        worker_type = worker_type_of(stopped_config)
        if req.worker_type in IMPORT_PATHS and req.worker_type != worker_type:
            raise ManagementError(f"model '{req.model}' was stopped as worker type {worker_type}, not {req.worker_type}")
        return updated_app_config(stopped_config, worker_type, req.params, self.policy)

    async def _wait(self, targets: list[str], removed: bool, applied_at: float, timeout_s: float) -> str:
        """Until every target runs (or is gone); raises ManagementError with Serve's reason. It reads
        the targets' statuses alone, twice a second (pending.py says why), and their configs once."""
        deadline = time.monotonic() + timeout_s
        await asyncio.sleep(min(SETTLE_S, timeout_s))
        configs = {} if removed else await _controller("get_app_configs")  # for what a replica waits on
        while True:
            pending = {}
            for name, blob in zip(targets, await _controller("get_serve_statuses", targets)):
                problem = pending_reason(Progress.from_bytes(blob), removed, applied_at, configs.get(name))
                if problem and problem.startswith("failed"):
                    raise ModelFailed(f"model '{name}' {problem}")
                if problem and problem.startswith("cancelled"):
                    raise ChangeConflict(f"model '{name}' {problem}")
                if problem:
                    pending[name] = problem
            if not pending:
                verb = "stopped" if removed else "running"
                return f"{', '.join(targets) or 'no model'}: {verb}"
            if time.monotonic() >= deadline:
                reasons = "; ".join(f"model '{n}' {why}" for n, why in pending.items())
                raise ChangeTimedOut(f"not done after {timeout_s:.0f}s: {reasons}")
            await asyncio.sleep(POLL_S)


def actor_options_of_type(apps: dict[str, dict], worker_type: str) -> dict:
    """What a new model of a worker type reserves: the same as the operator's first model of
    that type in Serve's config (its GPUs too), else the deployment's own default."""
    for app in apps.values():
        if worker_type_of(app) == worker_type:
            return dict(deployment_of(app).get("ray_actor_options") or DEFAULT_ACTOR_OPTIONS[worker_type])
    return dict(DEFAULT_ACTOR_OPTIONS.get(worker_type, {}))


def deployment_of(app: dict) -> dict:
    worker_type = worker_type_of(app)
    return next((d for d in app.get("deployments") or [] if d.get("name") == worker_type), {})


def node_shapes(declared: dict) -> list[dict[str, float]]:
    """The resources of every live node, and of every node type the autoscaler may add."""
    live = [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
    return live + list(autoscaler_node_types(declared).values())


def refuse_what_never_fits(apps: dict[str, dict], targets: list[str], shapes: list[dict[str, float]]) -> None:
    """Raise CannotPlace, before anything is applied, for a target whose replica (or its
    placement group, for a model spanning several GPUs) no node could hold."""
    for name in targets:
        if name not in apps:  # stopped
            continue
        deployment, worker_type = deployment_of(apps[name]), worker_type_of(apps[name])
        options = deployment.get("ray_actor_options") or DEFAULT_ACTOR_OPTIONS[worker_type]
        why = never_fits(name, replica_needs(options), shapes)
        group = dict(deployment) if deployment.get("placement_group_bundles") else \
            parallel_options(LLMArgs.model_validate(apps[name]["args"])) if worker_type == "llm" else {}
        if not why and group:
            why = group_never_fits(name, group["placement_group_bundles"],
                                   group.get("placement_group_strategy", "PACK"), shapes)
        if why:
            raise CannotPlace(why)
