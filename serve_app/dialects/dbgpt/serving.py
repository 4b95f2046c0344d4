"""The DB-GPT dialect's answers: worker outputs and streams, refusals, supported models,
controller instances, management results and rerank scores.

The ingress validates the body and calls the model; the functions here shape what
DB-GPT's clients read. Their rules, which tests/compat checks against each
version's own code: a generation error is a ModelOutput with `error_code: 1`
(read whatever the status); a stream is cumulative ModelOutputs, each followed by
one NUL byte; a management call that failed is never a 200.
"""

from __future__ import annotations

import logging
import typing
from datetime import datetime, timezone
from typing import AsyncIterator, Literal, Optional

from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from serve_app.config.workers import ARGS_BY_WORKER_TYPE
from serve_app.dialects.dbgpt.protocol import (
    ModelInstance,
    ModelOutput,
    PromptRequest,
    RelevanceRequest,
    RelevanceResponse,
    RelevanceUsage,
    SupportedModel,
    WorkerApplyOutput,
    WorkerSupportedModels,
)
from serve_app.engines.base import Scored
from serve_app.errors import AuthError, ServeError, as_serve_error
from serve_app.http.boundary import BodyTooLarge, HTTPError, retry_headers
from serve_app.http.context import access, note_usage
from serve_app.lifecycle.changes import ChangeResult
from serve_app.replica.sources import source_exists
from serve_app.serving.registry import ModelEntry
from serve_app.serving.streams import OpenStream

logger = logging.getLogger("ray.serve")

# The name DB-GPT's clients look up to find the worker manager (its management API).
WORKER_MANAGER_SERVICE = "WorkerManager@service"


# --- generation ------------------------------------------------------------------------


def worker_error(model: str, span_id: str, exc: BaseException) -> ModelOutput:
    err = as_serve_error(exc)
    # The request's access line says 200 for an error sent in the body, as DB-GPT's workers send it: this says why.
    logger.info("route=generate model=%s span_id=%s status=error reason=%s", model, span_id, err.message)
    return ModelOutput.error(err.message)


def refusal(err: ServeError, frame_end: bytes = b"") -> Response:
    """A generation refused before its first token, in DB-GPT's shape: a ModelOutput with
    error_code 1, which its clients read whatever the status. DB-GPT's workers answer an
    error of the generation itself (no such model, a prompt that does not fit) with 200,
    and so do we; an error of the HTTP request keeps its status: one that asks the client
    to back off (a saturated model, a key over its limits: those with Retry-After, so
    load balancers and retrying clients back off as on the OpenAI routes), a missing or
    insufficient key, a body too large or unreadable."""
    seen = access.get({})
    body = worker_error(seen.get("model", "-"), seen.get("span_id", "-"), err).model_dump_json().encode() + frame_end
    headers = retry_headers(err)
    status = err.status_code if headers or isinstance(err, (AuthError, BodyTooLarge, HTTPError)) else 200
    # On the stream route the refusal is one frame of the stream, which has no content type either.
    return Response(body, status_code=status, headers=headers, media_type=None if frame_end else "application/json")


async def outputs(req: PromptRequest, stream: OpenStream, span_id: str) -> AsyncIterator[bytes]:
    """Cumulative ModelOutputs as the client reads them (ModelOutput.wire: a reasoning model's
    thinking in the client's version's shape); a failure becomes one error ModelOutput, as
    DB-GPT's clients expect."""
    try:
        text, thinking, context = "", "", None
        if req.echo:
            text = stream.first.prompt or ""
            context = {"prompt_echo_len_char": len(text), "echo": True}
        async for chunk in stream.chunks():
            text, thinking = text + chunk.text, thinking + chunk.reasoning
            usage = chunk.usage() if chunk.finish_reason else None
            out = ModelOutput(text=text, model_context=context, finish_reason=chunk.finish_reason, usage=usage)
            yield out.wire(thinking, req.reads_content_parts)
        note_usage(chunk.prompt_tokens, chunk.completion_tokens)  # for the request's access line
    except Exception as exc:
        yield worker_error(req.model, span_id, exc).wire()


async def generate_stream(req: PromptRequest, stream: OpenStream, span_id: str) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        async for out in outputs(req, stream, span_id):
            yield out + b"\0"

    return StreamingResponse(frames())


async def generate(req: PromptRequest, stream: OpenStream, span_id: str) -> Response:
    last = None
    async for last in outputs(req, stream, span_id):
        pass
    return Response(last, media_type="application/json")


# --- what runs, and what can ---------------------------------------------------------------


def supported_models(
    running: list[ModelEntry], stopped: dict[str, tuple[str, dict]], host: str, port: int
) -> list[WorkerSupportedModels]:
    """Running models, and stopped ones (`enabled: false`) that `start` brings back by name;
    each model's parameters are DB-GPT ParameterDescriptions of its current values."""
    found = {name: (worker_type, args, False) for name, (worker_type, args) in stopped.items()}
    found.update({m.name: (m.worker_type, m.args, m.callable) for m in running})
    models = [
        SupportedModel(
            model=name,
            worker_type=worker_type,
            path=str(args.get("source", "")),
            path_exist=source_exists(str(args.get("source", ""))),
            enabled=enabled,
            params=parameter_descriptions(ARGS_BY_WORKER_TYPE[worker_type], args),
        )
        for name, (worker_type, args, enabled) in sorted(found.items())
    ]
    return [WorkerSupportedModels(host=host, port=port, models=models)]


def controller_instances(
    models: list[ModelEntry], host: str, port: int, model_name: Optional[str], healthy_only: bool
) -> list[ModelInstance]:
    """One instance per model, at the ingress's address, and the worker manager service.

    A DB-GPT instance is an address to send a model's requests to; every replica of
    a model sits behind the one ingress, and Serve picks the replica. (Listing each
    replica would make DB-GPT send a management call once per replica.) A DB-GPT
    webserver or CLI finds where to send startup/shutdown/apply by the
    `WorkerManager@service` instance, which is the ingress too.
    """
    # Serve health-checks every replica (health_check_period_s); a RUNNING replica
    # passed its last check, so our read of Serve's state stands in for a heartbeat.
    seen = datetime.now(timezone.utc).isoformat()
    # A model asleep (scaled to zero) is healthy to DB-GPT: a request to it wakes it.
    keys = [(WORKER_MANAGER_SERVICE, True)] + [(f"{m.name}@{m.worker_type}", m.callable) for m in models]
    return [
        ModelInstance(model_name=key, host=host, port=port, healthy=healthy, last_heartbeat=seen if healthy else None)
        for key, healthy in keys
        if (not model_name or key == model_name) and (healthy or not healthy_only)
    ]


def management_result(result: ChangeResult) -> Response:
    """DB-GPT's WorkerApplyOutput, with the change's status (never 200 for a refusal)."""
    output = WorkerApplyOutput(message=result.message, success=result.success, timecost=result.timecost)
    return Response(output.model_dump_json(), status_code=result.status_code, media_type="application/json")


def parameter_descriptions(model: type[BaseModel], current: Optional[dict] = None) -> list[dict]:
    """DB-GPT's ParameterDescription list, generated from a pydantic model.

    `current` (a model's args) replaces the defaults, so that `dbgpt model start`,
    which sends every parameter with its default, sends what the model runs with.
    Fields holding a dict, a list or a nested model (an llm's `queue`) are left out: DB-GPT
    builds a dataclass from the list, which refuses mutable defaults, and its command line
    has no such type.
    """
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if typing.get_origin(annotation) in (dict, list) or (
                isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            continue
        args = typing.get_args(annotation)
        valid = None
        if typing.get_origin(annotation) is Literal:
            valid = list(args)
        non_none = [a for a in args if a is not type(None)]
        base = non_none[0] if typing.get_origin(annotation) is typing.Union else annotation
        if typing.get_origin(base) is Literal:
            valid = list(typing.get_args(base))
            base = type(valid[0])
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        out.append(
            {
                # DB-GPT imports this module and takes the class from it when it is there, else
                # builds a class of this name from the descriptions: `builtins` imports in every
                # client and has no such class, so it is built (our module does not import there).
                "param_class": f"builtins.{model.__name__}",
                "param_name": name,
                "param_type": getattr(typing.get_origin(base) or base, "__name__", str(base)),
                "default_value": (current or {}).get(name, default),
                "description": field.description or "",
                "required": field.is_required(),
                "valid_values": valid,
            }
        )
    return out


# --- rerank ----------------------------------------------------------------------------------


def relevance(req: RelevanceRequest, scored: Scored) -> RelevanceResponse:
    note_usage(scored.total_tokens)
    return RelevanceResponse(model=req.model, data=scored.scores, usage=RelevanceUsage(total_tokens=scored.total_tokens))
