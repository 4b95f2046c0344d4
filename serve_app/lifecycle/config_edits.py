"""Turning a model change (changes.py) into edits of one Serve application config.

Pure functions, no Ray: the manager deployment (`manager.py`) reads the
running config from Serve, calls these to build the new one, and hands it back to
Serve. Every refusal is a `ManagementError` raised before anything is applied, so
a bad request changes nothing.
"""

import os
from typing import Any, Optional

from pydantic import ValidationError

from deployments.request_routers import ROUTERS
from serve_app.config.names import MODEL_NAME
from serve_app.config.router import SourcePolicy
from serve_app.config.worker_types import IMPORT_PATHS
from serve_app.config.workers import (
    ARGS_BY_WORKER_TYPE,
    SIMULATED_ACTOR_OPTIONS,
    LLMArgs,
    in_place_params,
)
from serve_app.replica.sources import PACKAGE_PREFIX, ModelSourceError, resolve

# DB-GPT's parameter names, so its users and tools can send what they send today.
DBGPT_ALIASES = {
    "model_path": "source",
    "concurrency": "max_ongoing_requests",
    "limit_model_concurrency": "max_ongoing_requests",
}
# Accepted from DB-GPT clients and ignored: they name things Serve or the request decides.
DBGPT_IGNORED = {"model_name", "model_alias", "worker_type", "host", "port", "model_type"}

# Serve deployment options a request may set. ray_actor_options fields restart replicas;
# the others Serve applies in place.
ACTOR_OPTIONS = {"num_cpus", "num_gpus", "accelerator_type"}
DEPLOYMENT_OPTIONS = {"num_replicas", "max_ongoing_requests", "max_queued_requests", "autoscaling_config",
                      "graceful_shutdown_timeout_s"}


class ManagementError(ValueError):
    """A management request that failed, with the HTTP status it is answered with.

    DB-GPT's RemoteWorkerManager reads only the status code of a management call,
    so a refusal or a failure must never be a 200. The base class and the first
    two subclasses are refusals raised before anything is applied: nothing changed.
    """

    status_code = 400


class UnknownModel(ManagementError):
    status_code = 404


class ChangeConflict(ManagementError):
    """The cluster's state does not allow the change (the model exists, or Serve's config
    is not one the manager may edit)."""

    status_code = 409


class CannotPlace(ManagementError):
    """No node the cluster has, or its autoscaler can add, could hold one replica."""

    status_code = 422


class ModelFailed(ManagementError):
    """The change was applied and the model failed to start (its reason in the message)."""

    status_code = 500


class ControllerNotAnswering(ManagementError):
    """Serve's controller did not answer (it restarts within seconds): retry the change."""

    status_code = 503


class ChangeTimedOut(ManagementError):
    """The change was applied and is not done within the call's timeout."""

    status_code = 504


def check_source(policy: SourcePolicy, source: str) -> None:
    """Refuse a source outside the operator's model roots and package sources."""
    if source.startswith(PACKAGE_PREFIX):
        package = source[len(PACKAGE_PREFIX) :].split("/", 1)[0]
        if package not in policy.package_sources:
            raise ManagementError(
                f"model source '{source}': package '{package}' is not one of the allowed package sources"
            )
        return
    try:
        kind = resolve(source).kind
    except ModelSourceError as exc:
        raise ManagementError(str(exc)) from exc
    if kind == "simulated":  # no weights, no files: nothing to guard
        return
    if kind == "hub":
        if not policy.allow_hub_sources:
            raise ManagementError(f"model source '{source}': Hugging Face Hub sources are not allowed")
        return
    real = os.path.realpath(os.path.expanduser(source))
    roots = [os.path.realpath(os.path.expanduser(r)) for r in policy.model_roots]
    if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
        raise ManagementError(
            f"model source '{source}' is outside the configured model roots ({', '.join(policy.model_roots) or 'none'})"
        )


def normalize_params(params: dict[str, Any]) -> dict[str, Any]:
    """DB-GPT names to ours; DB-GPT fields that mean nothing here dropped."""
    out = {}
    for key, value in params.items():
        if key in DBGPT_IGNORED or value is None:
            continue
        if key == "device" and value == "gpu":
            value = "cuda"
        name = DBGPT_ALIASES.get(key, key)
        # `dbgpt model start` sends both a name and its alias (model_path and source).
        if name in out and out[name] != value:
            raise ManagementError(f"parameters '{key}' and '{name}' disagree: {value!r} and {out[name]!r}")
        out[name] = value
    return out


def split_params(worker_type: str, params: dict[str, Any]) -> tuple[dict, dict, dict]:
    """(model args, deployment options, ray_actor_options) from one flat dict of params."""
    args_model = ARGS_BY_WORKER_TYPE[worker_type]
    args, deployment, actor = {}, {}, {}
    for key, value in params.items():
        if key in args_model.model_fields:
            args[key] = value
        elif key in DEPLOYMENT_OPTIONS:
            deployment[key] = value
        elif key in ACTOR_OPTIONS:
            actor[key] = value
        elif key == "routing":
            if value not in ROUTERS:
                raise ManagementError(f"routing '{value}' is not one of: {', '.join(ROUTERS)}")
            deployment["request_router_config"] = dict(ROUTERS[value])
        else:
            known = sorted(set(args_model.model_fields) | DEPLOYMENT_OPTIONS | ACTOR_OPTIONS | {"routing"})
            raise ManagementError(
                f"unknown parameter '{key}' for worker type {worker_type}; known parameters: {', '.join(known)}"
            )
    if args.get("trust_remote_code"):
        raise ManagementError("trust_remote_code can only be turned on in the operator's serve config")
    if args.get("vllm_kwargs"):  # any engine argument: remote code, other weights, other files
        raise ManagementError("vllm_kwargs can only be set in the operator's serve config")
    return args, deployment, actor


def validate_args(worker_type: str, args: dict[str, Any], policy: SourcePolicy, adapters: bool = True) -> None:
    """`adapters`: check the LoRA adapters' paths too (an update checks only those it adds)."""
    try:
        ARGS_BY_WORKER_TYPE[worker_type].model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ManagementError(f"invalid parameters for worker type {worker_type}: {problems}") from exc
    check_source(policy, args["source"])
    for path in (args.get("lora_modules") or {}).values() if adapters else ():  # the same guard as a model's files
        check_source(policy, path)


def new_app_config(
    name: str, worker_type: Optional[str], params: dict[str, Any], policy: SourcePolicy, actor_defaults: dict
) -> dict:
    """A Serve application config for a model started through the API (an llm unless told).

    Its replicas reserve `actor_defaults` (the operator's choice for this worker type)
    unless the request's params say otherwise.
    """
    worker_type = worker_type or "llm"
    if worker_type not in IMPORT_PATHS:
        raise ManagementError(f"unknown worker type '{worker_type}'; registered: {', '.join(IMPORT_PATHS)}")
    if not MODEL_NAME.match(name or ""):
        raise ManagementError(f"invalid model name '{name}': use letters, digits, '.', '_' and '-'")
    args, deployment, actor = split_params(worker_type, normalize_params(params))
    if "source" not in args:
        raise ManagementError("parameter 'source' (or DB-GPT's 'model_path') is required to start a model")
    validate_args(worker_type, args, policy)
    llm = LLMArgs.model_validate(args) if worker_type == "llm" else None
    if llm is not None and llm.engine == "simulated":
        # No weights and next to no compute: it must not hold what a real llm reserves, or a
        # laptop runs three of them instead of dozens. Its params may still ask for more.
        actor_defaults = SIMULATED_ACTOR_OPTIONS
    elif llm is not None and llm.devices > 1:
        # Its GPUs are its placement group's bundles (deployments/llm.py); the replica itself takes none.
        actor_defaults = {**actor_defaults, "num_gpus": 0}
    return {
        "name": name,
        "route_prefix": None,
        "import_path": IMPORT_PATHS[worker_type],
        "args": args,
        # max_surge_percent 100: in a rolling update the old replicas serve until their
        # replacements are ready, so requests sent during the roll all succeed.
        "deployments": [
            {"name": worker_type, "max_surge_percent": 100, **deployment, "ray_actor_options": {**actor_defaults, **actor}}
        ],
    }


def updated_app_config(app: dict, worker_type: str, params: dict[str, Any], policy: SourcePolicy) -> dict:
    """`app` with `params` applied: in-place ones through user_config, the rest where they belong."""
    args, deployment, actor = split_params(worker_type, normalize_params(params))
    running = app.get("args") or {}
    changeable = in_place_params(worker_type, {**running, **args}, running)
    in_place = {k: args.pop(k) for k in list(args) if k in changeable}
    for where in (in_place, args):  # in place, or in args where the engine restarts for them (vLLM's first)
        if "lora_modules" in where:
            where["lora_modules"] = merged_adapters(app, worker_type, where["lora_modules"], policy)
    new_args = {**running, **args}
    validate_args(worker_type, {**new_args, **in_place}, policy, adapters="lora_modules" in args)
    deployments = [dict(d) for d in app.get("deployments") or [{"name": worker_type}]]
    dep = next((d for d in deployments if d["name"] == worker_type), None)
    if dep is None:
        dep = {"name": worker_type}
        deployments.append(dep)
    dep.update(deployment)
    if actor:
        dep["ray_actor_options"] = {**(dep.get("ray_actor_options") or {}), **actor}
    # A parameter now set in args (one this engine restarts for) must not stay behind in
    # user_config, where reconfigure() would lay its old value over the new one.
    user_config = {k: v for k, v in (dep.get("user_config") or {}).items() if k not in args}
    if in_place or user_config != (dep.get("user_config") or {}):
        dep["user_config"] = {**user_config, **in_place}
    return {**app, "args": new_args, "deployments": deployments}


def merged_adapters(app: dict, worker_type: str, patch: Any, policy: SourcePolicy) -> dict:
    """An llm's LoRA adapters after an update: `patch` adds or replaces `name: path` and removes
    `name: null` (a JSON merge patch), over what the replicas hold now (user_config's, which
    reconfigure() lays over args', else args'): one adapter changes, the others stay."""
    if not isinstance(patch, dict):
        raise ManagementError("lora_modules: an object of adapter name to path (null removes one)")
    dep = next((d for d in app.get("deployments") or [] if d.get("name") == worker_type), {})
    current = (dep.get("user_config") or {}).get("lora_modules")
    current = dict(current if current is not None else (app.get("args") or {}).get("lora_modules") or {})
    for name, path in patch.items():
        if path is None:
            current.pop(name, None)
        else:
            check_source(policy, str(path))  # the paths it adds; those already there were allowed
            current[name] = path
    return current


def restarted_app_config(app: dict, nonce: str) -> dict:
    """`app` with a changed restart marker: Serve rolls its replicas, nothing else changes.

    The declarative API has no "restart" verb; a changed runtime_env is the smallest
    edit that makes Serve replace the replicas (one by one, as in any update).
    """
    runtime_env = dict(app.get("runtime_env") or {})
    runtime_env["env_vars"] = {**(runtime_env.get("env_vars") or {}), "SMMF_RESTART": nonce}
    return {**app, "runtime_env": runtime_env}

