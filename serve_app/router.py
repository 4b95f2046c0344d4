"""The router: the one HTTP ingress, dispatching each request to a model's deployment.

A request names a model; the registry maps the name to that model's Serve
application and returns a deployment handle; Serve's router picks the replica
(least-loaded of two random choices) and enforces `max_ongoing_requests`.
Streams go through `handle.options(stream=True)`, so each chunk leaves here as
soon as the model yields it.

Two dialects share the models: DB-GPT's worker API (`/api/worker/*`) and the
OpenAI API (`/v1/*`, plus the rerank routes).
"""

import asyncio
import logging
import time
from datetime import datetime, timezone
import uuid
from typing import AsyncIterator, Optional

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from serve_app import catalog, openai_serving
from serve_app.auth import KeyChecker
from serve_app.config import ARGS_BY_WORKER_TYPE, RouterArgs, parameter_descriptions
from serve_app.errors import InvalidRequest, ModelOverloaded, as_serve_error
from serve_app.http import create_app, note
from serve_app.openai_protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ModelCard,
    ModelList,
    RelevanceRequest,
    RerankRequest,
    new_id,
)
from serve_app.management import worker_type_of
from serve_app.manager import Manager
from serve_app.protocol import (
    CountTokenRequest,
    EmbeddingsRequest,
    ModelMetadata,
    ModelInstance,
    ModelMetadataRequest,
    ModelOutput,
    ParameterDescription,
    PromptRequest,
    SupportedModel,
    WorkerApplyOutput,
    WorkerApplyRequest,
    WorkerStartupRequest,
    WorkerSupportedModels,
    WorkerTypeParam,
)
from serve_app.registry import ModelRegistry
from serve_app.results import Scored
from serve_app.sources import source_exists
from serve_app.streams import OpenStream, usage_of

logger = logging.getLogger("ray.serve")

app = create_app()


# The name DB-GPT's clients look up to find the worker manager (its management API).
WORKER_MANAGER_SERVICE = "WorkerManager@service"


def ingress_address(request: Request) -> tuple[str, int]:
    """Where clients reach this ingress, as DB-GPT's instances and supports report it."""
    return request.url.hostname or "127.0.0.1", request.url.port or 80


def new_span_id(given: Optional[str]) -> str:
    return given or uuid.uuid4().hex


async def _call(response):
    """Await a deployment call, turning what it raised into a ServeError."""
    try:
        return await response
    except Exception as exc:
        raise as_serve_error(exc) from exc


def worker_error(model: str, span_id: str, exc: BaseException) -> ModelOutput:
    err = as_serve_error(exc)
    logger.info("route=generate model=%s span_id=%s status=error reason=%s", model, span_id, err.message)
    return ModelOutput.error(err.message)


def worker_refusal(model: str, span_id: str, exc: BaseException, suffix: bytes = b"") -> Response:
    """A generation refused before its first token, in DB-GPT's shape (a ModelOutput with
    error_code 1, which its clients read whatever the status). DB-GPT answers every error
    with 200; a saturated model alone gets 503 and Retry-After, so load balancers and
    retrying HTTP clients back off just as they do on the OpenAI routes."""
    body = worker_error(model, span_id, exc).model_dump_json().encode() + suffix
    if isinstance(as_serve_error(exc), ModelOverloaded):
        retry = {"Retry-After": str(ModelOverloaded.retry_after_s)}
        return Response(body, status_code=503, headers=retry, media_type="application/json")
    return Response(body, media_type="application/json")


@serve.deployment(name="router", max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.25})
@serve.ingress(app)
class Router:
    def __init__(self, args: RouterArgs, manager: DeploymentHandle):
        self.registry = ModelRegistry(ttl_s=args.registry_ttl_s)
        self.manager = manager
        self.limits = args.limits
        app.state.keys = KeyChecker.from_config(args.api_keys, args.api_keys_env)
        app.state.max_body_bytes = args.limits.max_body_bytes
        app.state.log_prompts = args.limits.log_prompts

    def _check(self, model: str, span_id: str = "", *, messages=None, inputs=None, documents=None, max_tokens=None) -> None:
        """Enforce the configured request limits (400 naming the one exceeded); note the access-log fields."""
        note(model=model, span_id=span_id or None)
        limits = self.limits
        for value, limit, what in (
            (messages, limits.max_messages, "messages"),
            (inputs, limits.max_inputs, "inputs"),
            (documents, limits.max_documents, "documents"),
        ):
            if value is not None and len(value) > limit:
                raise InvalidRequest(f"too many {what}: {len(value)} (the limit is {limit})")
        if max_tokens is not None and max_tokens > limits.max_tokens:
            raise InvalidRequest(f"max tokens {max_tokens} is over the limit of {limits.max_tokens}")

    # --- DB-GPT worker API: generation ------------------------------------------

    async def _open_worker_stream(self, req: PromptRequest, span_id: str) -> OpenStream:
        self._check(req.model, span_id, messages=req.messages, max_tokens=req.max_new_tokens)
        note(prompt=req.prompt or (req.messages and req.messages[-1].text()))
        handle = await self.registry.handle(req.model, "llm")
        return await OpenStream.open(handle, req.to_generation(span_id))

    async def _worker_outputs(self, req: PromptRequest, stream: OpenStream, span_id: str) -> AsyncIterator[ModelOutput]:
        """Cumulative ModelOutputs; a failure becomes one error ModelOutput, as DB-GPT's clients expect."""
        started = time.monotonic()
        try:
            text, context = "", None
            if req.echo:
                text = stream.first.prompt or ""
                context = {"prompt_echo_len_char": len(text), "echo": True}
            async for chunk in stream.chunks():
                text += chunk.text
                usage = usage_of(chunk) if chunk.finish_reason else None
                yield ModelOutput(text=text, model_context=context, finish_reason=chunk.finish_reason, usage=usage)
            note(tokens=chunk.prompt_tokens + chunk.completion_tokens)
            logger.info(
                "route=generate model=%s span_id=%s status=ok latency_ms=%.0f tokens=%d",
                req.model, span_id, (time.monotonic() - started) * 1000, chunk.completion_tokens,
            )
        except Exception as exc:
            yield worker_error(req.model, span_id, exc)

    @app.post("/api/worker/generate_stream")
    async def generate_stream(self, req: PromptRequest) -> Response:
        span_id = new_span_id(req.span_id)
        try:
            stream = await self._open_worker_stream(req, span_id)
        except Exception as exc:
            return worker_refusal(req.model, span_id, exc, suffix=b"\0")

        async def frames() -> AsyncIterator[bytes]:
            async for out in self._worker_outputs(req, stream, span_id):
                yield out.model_dump_json().encode() + b"\0"

        return StreamingResponse(frames())

    @app.post("/api/worker/generate")
    async def generate(self, req: PromptRequest) -> ModelOutput:
        span_id = new_span_id(req.span_id)
        try:
            stream = await self._open_worker_stream(req, span_id)
        except Exception as exc:
            return worker_refusal(req.model, span_id, exc)
        last = None
        async for last in self._worker_outputs(req, stream, span_id):
            pass
        return last

    # --- DB-GPT worker API: other model calls ------------------------------------

    @app.post("/api/worker/embeddings")
    async def embeddings(self, req: EmbeddingsRequest) -> list[list[float]]:
        span_id = new_span_id(req.span_id)
        self._check(req.model, span_id, inputs=req.input)
        if req.query is not None:  # DB-GPT's reranker worker: [[score per document]]
            handle = await self.registry.handle(req.model, "reranker")
            return [(await _call(handle.rerank.remote(req.query, req.input, span_id))).scores]
        handle = await self.registry.handle(req.model, "text2vec")
        return (await _call(handle.embeddings.remote(req.input, span_id))).vectors

    @app.post("/api/worker/count_token")
    async def count_token(self, req: CountTokenRequest) -> int:
        model = req.model or await self._only_llm()
        self._check(model)
        handle = await self.registry.handle(model)
        return await _call(handle.count_token.remote(req.prompt))

    async def _only_llm(self) -> str:
        """The model a count_token without a name means. DB-GPT's RemoteModelWorker sends
        none (it assumes one worker per address); with one llm running, it is that one."""
        llms = [m.name for m in await self.registry.models() if m.worker_type == "llm" and m.running_replicas]
        if len(llms) != 1:
            running = ", ".join(llms) or "none"
            raise InvalidRequest(f"'model' is required when not exactly one llm model runs (running: {running})")
        return llms[0]

    @app.post("/api/worker/model_metadata")
    async def model_metadata(self, req: ModelMetadataRequest) -> ModelMetadata:
        handle = await self.registry.handle(req.model)
        return ModelMetadata(**await _call(handle.model_metadata.remote()))

    # --- DB-GPT worker API: what can run -----------------------------------------

    @app.get("/api/worker/models/supports")
    async def supports(self, request: Request) -> list[WorkerSupportedModels]:
        """Every model this cluster can run: the running ones, and those stopped through the
        API (`enabled: false`), which `dbgpt model start` may start again by name."""
        running = {m.name: (m.worker_type, m.args, m.running_replicas > 0) for m in await self.registry.models()}
        stopped = {
            name: (worker_type_of(app), app.get("args") or {}, False)
            for name, app in catalog.stopped().items()
            if name not in running and worker_type_of(app)
        }
        models = [
            SupportedModel(
                model=name,
                worker_type=worker_type,
                path=str(args.get("source", "")),
                path_exist=source_exists(str(args.get("source", ""))),
                enabled=enabled,
                params=parameter_descriptions(ARGS_BY_WORKER_TYPE[worker_type], args),
            )
            for name, (worker_type, args, enabled) in sorted({**stopped, **running}.items())
        ]
        host, port = ingress_address(request)
        return [WorkerSupportedModels(host=host, port=port, models=models)]

    @app.get("/api/worker/parameter/descriptions")
    async def parameter_descriptions(self, model: str, worker_type: WorkerTypeParam = "llm") -> list[ParameterDescription]:
        current = {m.name: m for m in await self.registry.models()}.get(model)
        # Report what the running model uses as each default.
        args = current.args if current and current.worker_type == worker_type else None
        return parameter_descriptions(ARGS_BY_WORKER_TYPE[worker_type], args)

    # --- DB-GPT worker API: starting and stopping models (admin) -----------------

    @app.post("/api/worker/models/startup")
    async def model_startup(self, req: WorkerStartupRequest) -> WorkerApplyOutput:
        return await self._apply(WorkerApplyRequest(apply_type="start", **req.model_dump(exclude={"host", "port"})))

    @app.post("/api/worker/models/shutdown")
    async def model_shutdown(self, req: WorkerStartupRequest) -> WorkerApplyOutput:
        return await self._apply(WorkerApplyRequest(apply_type="stop", **req.model_dump(exclude={"host", "port"})))

    @app.post("/api/worker/apply")
    async def apply(self, req: WorkerApplyRequest) -> WorkerApplyOutput:
        return await self._apply(req)

    async def _apply(self, req: WorkerApplyRequest) -> Response:
        status_code, output = await _call(self.manager.apply.remote(req))
        self.registry.invalidate()  # the next lookup sees the change at once
        # A refusal or failure is never a 200: DB-GPT's RemoteWorkerManager reads only the status.
        return Response(output.model_dump_json(), status_code=status_code, media_type="application/json")

    @app.get("/api/models/status")
    async def models_status(self) -> list[dict]:
        """Each model's Serve state, for `smmf model list` and progress while a model loads."""
        return [
            {"model": m.name, "worker_type": m.worker_type, "status": m.status,
             "running_replicas": m.running_replicas, "message": m.message}
            for m in await self.registry.models(fresh=True)
        ]

    # --- DB-GPT controller API, answered from Serve's state ------------------------

    @app.get("/api/controller/models")
    async def controller_models(
        self, request: Request, model_name: Optional[str] = None, healthy_only: bool = False
    ) -> list[ModelInstance]:
        """One instance per model, at the ingress's address, and the worker manager service.

        A DB-GPT instance is an address to send a model's requests to; every replica of
        a model sits behind the one ingress, and Serve picks the replica. (Listing each
        replica would make DB-GPT send a management call once per replica.) A DB-GPT
        webserver or CLI finds where to send startup/shutdown/apply by the
        `WorkerManager@service` instance, which is the ingress too.
        """
        host, port = ingress_address(request)
        # Serve health-checks every replica (health_check_period_s); a RUNNING replica
        # passed its last check, so our read of Serve's state stands in for a heartbeat.
        seen = datetime.now(timezone.utc).isoformat()
        keys = [(WORKER_MANAGER_SERVICE, True)] + [
            (f"{m.name}@{m.worker_type}", m.running_replicas > 0) for m in await self.registry.models(fresh=True)
        ]
        return [
            ModelInstance(model_name=key, host=host, port=port, healthy=healthy, last_heartbeat=seen if healthy else None)
            for key, healthy in keys
            if (not model_name or key == model_name) and (healthy or not healthy_only)
        ]

    @app.post("/api/controller/models")
    async def controller_register(self) -> bool:
        return True  # Serve registers replicas itself; accepted for DB-GPT workers, changes nothing

    @app.delete("/api/controller/models")
    async def controller_deregister(self) -> bool:
        return True  # Serve removes replicas itself

    @app.post("/api/controller/heartbeat")
    async def controller_heartbeat(self) -> bool:
        return True  # Serve health-checks replicas itself

    @app.get("/api/health")
    async def health(self) -> dict:
        return {"status": "ok"}

    # --- OpenAI API ------------------------------------------------------------------

    @app.get("/v1/models")
    async def list_models(self) -> ModelList:
        return ModelList(data=[self._card(m) for m in await self.registry.models() if m.running_replicas])

    @app.get("/v1/models/{model:path}")
    async def get_model(self, model: str) -> ModelCard:
        return self._card(await self.registry.lookup(model))

    @staticmethod
    def _card(entry) -> ModelCard:
        return ModelCard(id=entry.name, created=int(entry.created))

    @app.post("/v1/chat/completions")
    async def chat_completions(self, req: ChatCompletionRequest):
        span_id = new_span_id(None)
        self._check(req.model, span_id, messages=req.messages, max_tokens=req.max_completion_tokens or req.max_tokens)
        note(prompt=req.messages[-1].content)
        handle = await self.registry.handle(req.model, "llm")
        stream = await OpenStream.open(handle, req.to_generation(span_id))
        if req.stream:
            return StreamingResponse(openai_serving.chat_completion_sse(req, stream), media_type="text/event-stream")
        return await openai_serving.chat_completion(req, stream)

    @app.post("/v1/completions")
    async def completions(self, req: CompletionRequest):
        span_id = new_span_id(None)
        self._check(req.model, span_id, inputs=req.prompts(), max_tokens=req.max_tokens)
        note(prompt=req.prompts()[0])
        handle = await self.registry.handle(req.model, "llm")
        opened = await asyncio.gather(
            *(OpenStream.open(handle, req.to_generation(p, span_id)) for p in req.prompts()), return_exceptions=True
        )
        failed = [s for s in opened if isinstance(s, BaseException)]
        if failed:
            for s in opened:
                if isinstance(s, OpenStream):
                    s.cancel()
            raise as_serve_error(failed[0])
        if req.stream:
            return StreamingResponse(openai_serving.completion_sse(req, opened), media_type="text/event-stream")
        return await openai_serving.completion(req, opened)

    @app.post("/v1/embeddings")
    async def openai_embeddings(self, req: EmbeddingRequest) -> dict:
        span_id = new_span_id(None)
        self._check(req.model, span_id, inputs=[req.input] if isinstance(req.input, str) else req.input)
        handle = await self.registry.handle(req.model, "text2vec")
        return await openai_serving.embeddings(handle, req, span_id)

    # --- rerank ------------------------------------------------------------------------

    async def _scores(self, model: str, query: str, documents: list[str]) -> Scored:
        span_id = new_span_id(None)
        self._check(model, span_id, documents=documents)
        handle = await self.registry.handle(model, "reranker")
        return await _call(handle.rerank.remote(query, documents, span_id))

    @app.post("/v1/rerank")
    async def rerank(self, req: RerankRequest) -> dict:
        documents = req.texts()
        scores, tokens = await self._scores(req.model, req.query, documents)
        ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)[: req.top_n]
        results = []
        for i in ranked:
            result = {"index": i, "relevance_score": scores[i]}
            if req.return_documents:
                result["document"] = {"text": documents[i]}
            results.append(result)
        return {"id": new_id("rerank"), "model": req.model, "results": results, "usage": {"total_tokens": tokens}}

    @app.post("/api/v1/beta/relevance")
    async def relevance(self, req: RelevanceRequest) -> dict:
        scores, tokens = await self._scores(req.model, req.query, req.documents)
        return {"object": "list", "model": req.model, "data": scores, "usage": {"total_tokens": tokens}}


def build_app(args: dict) -> Application:
    # Validated here, at build time, so a bad config fails `serve deploy` with the field's name.
    router_args = RouterArgs.model_validate(args)
    return Router.bind(router_args, Manager.bind(router_args.sources, router_args.apply_timeout_s))
