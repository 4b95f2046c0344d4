"""The ingress: the one HTTP entry, which validates, authorises and dispatches.

A request reads through:
  http.py             keys, body limit, access log, error shapes (around every route)
  ingress.py          the route: the body is parsed by its dialect's protocol model,
                      limits are checked, the registry finds the model's handle
  streams.py          a generation opens the model's stream through that handle
  deployments/*.py    Serve picks a replica, which runs the model (engines/ for LLMs)
  *_serving.py        the answer is shaped in the dialect: dbgpt_serving, openai_serving

Two dialects share the models: DB-GPT's (worker API `/api/worker/*`, controller API
`/api/controller/*`, `/api/v1/beta/relevance`) and OpenAI's (`/v1/*`, with `/v1/rerank`).
The Serve deployment keeps its name, `router`, so existing configs that set its
options keep working.
"""

# No `from __future__ import annotations` here: Serve's ingress re-creates each route
# method, and FastAPI could not resolve string annotations to find the request body.
import uuid
from typing import Optional

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
import ray
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from serve_app import catalog, dbgpt_serving, openai_serving
from serve_app.auth import KeyChecker
from serve_app.config import ARGS_BY_WORKER_TYPE, RouterArgs
from serve_app.config_edits import worker_type_of
from serve_app.dbgpt_protocol import (
    CountTokenRequest,
    EmbeddingsRequest,
    ModelInstance,
    ModelMetadata,
    ModelMetadataRequest,
    ModelOutput,
    ParameterDescription,
    PromptRequest,
    RelevanceRequest,
    RelevanceResponse,
    WorkerApplyOutput,
    WorkerApplyRequest,
    WorkerStartupRequest,
    WorkerSupportedModels,
    WorkerTypeParam,
)
from serve_app.embeddings_batcher import EmbeddingsBatcher
from serve_app.engines.base import Embedded, Scored
from serve_app.errors import InvalidRequest, as_serve_error
from serve_app.http import create_app, note
from serve_app.model_manager import ModelManager
from serve_app.openai_protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
    RerankRequest,
    RerankResponse,
)
from serve_app.registry import ModelRegistry
from serve_app.status import ModelStatus
from serve_app.streams import OpenStream

app = create_app()


def new_span_id(given: Optional[str] = None) -> str:
    return given or uuid.uuid4().hex


def address_of(request: Request) -> tuple[str, int]:
    """Where clients reach this ingress, as DB-GPT's instances and supports report it."""
    return request.url.hostname or "127.0.0.1", request.url.port or 80


async def _call(response):
    """Await a deployment call, turning what it raised into a ServeError."""
    try:
        return await response
    except Exception as exc:
        raise as_serve_error(exc) from exc


@serve.deployment(name="router", max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.1})
@serve.ingress(app)
class Ingress:
    def __init__(self, args: RouterArgs, manager: DeploymentHandle):
        self.registry = ModelRegistry(ttl_s=args.registry_ttl_s)
        self.embedder = EmbeddingsBatcher(args.embeddings_batch_wait_ms)
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

    # --- DB-GPT worker API: model calls -------------------------------------------------

    async def _open_worker_stream(self, req: PromptRequest, span_id: str) -> OpenStream:
        self._check(req.model, span_id, messages=req.messages, max_tokens=req.max_new_tokens)
        note(prompt=req.prompt or (req.messages and req.messages[-1].text()))
        handle = await self.registry.handle(req.model, "llm")
        return await OpenStream.open(handle, req.to_generation(span_id))

    @app.post("/api/worker/generate_stream")
    async def generate_stream(self, req: PromptRequest) -> Response:
        return await self._generation(req, dbgpt_serving.generate_stream, refusal_suffix=b"\0")

    @app.post("/api/worker/generate")
    async def generate(self, req: PromptRequest) -> ModelOutput:
        return await self._generation(req, dbgpt_serving.generate)

    async def _generation(self, req: PromptRequest, answer, refusal_suffix: bytes = b""):
        """Open the model's stream, then answer in DB-GPT's shape; a refusal is an error ModelOutput."""
        span_id = new_span_id(req.span_id)
        try:
            stream = await self._open_worker_stream(req, span_id)
        except Exception as exc:
            return dbgpt_serving.refusal(req.model, span_id, exc, suffix=refusal_suffix)
        return await answer(req, stream, span_id)

    @app.post("/api/worker/embeddings")
    async def embeddings(self, req: EmbeddingsRequest) -> list[list[float]]:
        span_id = new_span_id(req.span_id)
        self._check(req.model, span_id, inputs=req.input)
        if req.query is not None:  # DB-GPT's reranker worker: [[score per document]]
            return [(await self._scores(req.model, req.query, req.input, span_id)).scores]
        return (await self._embed(req.model, req.input, span_id)).vectors

    async def _embed(self, model: str, texts: list[str], span_id: str) -> Embedded:
        handle = await self.registry.handle(model, "text2vec")
        return await _call(self.embedder.embed(model, handle, texts, span_id))

    @app.post("/api/worker/count_token")
    async def count_token(self, req: CountTokenRequest) -> int:
        # DB-GPT's RemoteModelWorker sends no model name: then the one running llm is meant.
        model = req.model or await self.registry.sole_model("llm")
        self._check(model)
        handle = await self.registry.handle(model)
        return await _call(handle.count_token.remote(req.prompt))

    @app.post("/api/worker/model_metadata")
    async def model_metadata(self, req: ModelMetadataRequest) -> ModelMetadata:
        handle = await self.registry.handle(req.model)
        return ModelMetadata(**await _call(handle.model_metadata.remote()))

    # --- DB-GPT worker API: what runs, and starting and stopping it (admin) -------------------

    @app.get("/api/worker/models/supports")
    async def supports(self, request: Request) -> list[WorkerSupportedModels]:
        stopped = {
            name: (worker_type_of(config), config.get("args") or {})
            for name, config in catalog.stopped().items()
            if worker_type_of(config)
        }
        return dbgpt_serving.supported_models(await self.registry.models(), stopped, *address_of(request))

    @app.get("/api/worker/parameter/descriptions")
    async def parameter_descriptions(self, model: str, worker_type: WorkerTypeParam = "llm") -> list[ParameterDescription]:
        current = {m.name: m for m in await self.registry.models()}.get(model)
        # Report what the running model uses as each default.
        args = current.args if current and current.worker_type == worker_type else None
        return dbgpt_serving.parameter_descriptions(ARGS_BY_WORKER_TYPE[worker_type], args)

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
        return dbgpt_serving.management_result(status_code, output)

    # --- DB-GPT controller API, answered from Serve's state --------------------------------

    @app.get("/api/controller/models")
    async def controller_models(
        self, request: Request, model_name: Optional[str] = None, healthy_only: bool = False
    ) -> list[ModelInstance]:
        models = await self.registry.models(fresh=True)
        return dbgpt_serving.controller_instances(models, *address_of(request), model_name, healthy_only)

    @app.post("/api/controller/models")
    async def controller_register(self) -> bool:
        return True  # Serve registers replicas itself; accepted for DB-GPT workers, changes nothing

    @app.delete("/api/controller/models")
    async def controller_deregister(self) -> bool:
        return True  # Serve removes replicas itself

    @app.post("/api/controller/heartbeat")
    async def controller_heartbeat(self) -> bool:
        return True  # Serve health-checks replicas itself

    # --- smmf's own ----------------------------------------------------------------------------

    @app.get("/api/models/status")
    async def models_status(self) -> list[ModelStatus]:
        """Each model's Serve state, for `smmf model list` and progress while a model loads."""
        free = ray.available_resources()
        return [ModelStatus.of(m, free) for m in await self.registry.models(fresh=True)]

    @app.get("/api/health")
    async def health(self) -> dict:
        return {"status": "ok"}

    # --- OpenAI API --------------------------------------------------------------------------

    @app.get("/v1/models")
    async def list_models(self) -> ModelList:
        return ModelList(data=[ModelCard.of(m) for m in await self.registry.models() if m.running_replicas])

    @app.get("/v1/models/{model:path}")
    async def get_model(self, model: str) -> ModelCard:
        return ModelCard.of(await self.registry.lookup(model))

    @app.post("/v1/chat/completions")
    async def chat_completions(self, req: ChatCompletionRequest):
        span_id = new_span_id()
        self._check(req.model, span_id, messages=req.messages, max_tokens=req.max_completion_tokens or req.max_tokens)
        note(prompt=req.messages[-1].content)
        handle = await self.registry.handle(req.model, "llm")
        stream = await OpenStream.open(handle, req.to_generation(span_id))
        if req.stream:
            return StreamingResponse(openai_serving.chat_completion_sse(req, stream), media_type="text/event-stream")
        return await openai_serving.chat_completion(req, stream)

    @app.post("/v1/completions")
    async def completions(self, req: CompletionRequest):
        span_id = new_span_id()
        self._check(req.model, span_id, inputs=req.prompts(), max_tokens=req.max_tokens)
        note(prompt=req.prompts()[0])
        handle = await self.registry.handle(req.model, "llm")
        streams = await OpenStream.open_all(handle, [req.to_generation(p, span_id) for p in req.prompts()])
        if req.stream:
            return StreamingResponse(openai_serving.completion_sse(req, streams), media_type="text/event-stream")
        return await openai_serving.completion(req, streams)

    @app.post("/v1/embeddings")
    async def openai_embeddings(self, req: EmbeddingRequest) -> EmbeddingResponse:
        span_id = new_span_id()
        self._check(req.model, span_id, inputs=req.texts())
        return openai_serving.embeddings(req, await self._embed(req.model, req.texts(), span_id))

    # --- rerank, in both dialects ----------------------------------------------------------------

    async def _scores(self, model: str, query: str, documents: list[str], span_id: str) -> Scored:
        self._check(model, span_id, documents=documents)
        handle = await self.registry.handle(model, "reranker")
        return await _call(handle.rerank.remote(query, documents, span_id))

    @app.post("/v1/rerank", response_model_exclude_none=True)
    async def rerank(self, req: RerankRequest) -> RerankResponse:
        return openai_serving.rerank(req, await self._scores(req.model, req.query, req.texts(), new_span_id()))

    @app.post("/api/v1/beta/relevance")
    async def relevance(self, req: RelevanceRequest) -> RelevanceResponse:
        return dbgpt_serving.relevance(req, await self._scores(req.model, req.query, req.documents, new_span_id()))


def build_app(args: dict) -> Application:
    # Validated here, at build time, so a bad config fails `serve deploy` with the field's name.
    router_args = RouterArgs.model_validate(args)
    return Ingress.bind(router_args, ModelManager.bind(router_args.sources, router_args.apply_timeout_s))
