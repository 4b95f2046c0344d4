"""The ingress: the one HTTP entry, which validates, authorises and dispatches.

A request reads through:
  http.py             keys and limits, body limit, access log, error shapes (around every route)
  ingress.py          the route: the body is parsed by its dialect's protocol model,
                      limits are checked, the registry finds the model's handle
  streams.py          a generation opens the model's stream through that handle
  deployments/*.py    Serve picks a replica, which runs the model (engines/ for LLMs)
  *_serving.py        the answer is shaped in the dialect: dbgpt_serving, openai_serving

Two dialects share the models: DB-GPT's (worker API `/api/worker/*`, controller API
`/api/controller/*`, `/api/v1/beta/relevance`) and OpenAI's (`/v1/*`, with `/v1/rerank`).
The routes that reach no model (management, controller, status, keys) are in
control_routes.py, on the same app.
The Serve deployment keeps its name, `router`, so existing configs that set its
options keep working.
"""

# No `from __future__ import annotations` here: Serve's ingress re-creates each route
# method, and FastAPI could not resolve string annotations to find the request body.
import uuid
from typing import Optional

from fastapi.responses import Response, StreamingResponse
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from serve_app import control_routes, dbgpt_serving, openai_serving
from serve_app.auth import configured_keys
from serve_app.config import RouterArgs
from serve_app.dbgpt_protocol import (
    CountTokenRequest,
    EmbeddingsRequest,
    ModelMetadata,
    ModelMetadataRequest,
    ModelOutput,
    PromptRequest,
    RelevanceRequest,
    RelevanceResponse,
)
from serve_app.embeddings_batcher import EmbeddingsBatcher
from serve_app.engines.base import Embedded, Scored
from serve_app.fallbacks import MODEL_HEADER, open_with_fallbacks
from serve_app.errors import AuthError, InvalidRequest, as_serve_error
from serve_app.governance import Governance
from serve_app.governor import Governor
from serve_app.http import create_app
from serve_app.model_manager import ModelManager
from serve_app.openai_protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, RerankRequest
from serve_app.openai_responses import EmbeddingResponse, ModelCard, ModelList, RerankResponse
from serve_app.registry import ModelRegistry
from serve_app.request_context import current_key, note, note_usage
from serve_app.streams import OpenStream
from serve_app.tokens_protocol import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse

app = create_app()
app.include_router(control_routes.router)


def new_span_id(given: Optional[str] = None) -> str:
    return given or uuid.uuid4().hex


async def _call(response):
    """Await a deployment call, turning what it raised into a ServeError."""
    try:
        return await response
    except Exception as exc:
        raise as_serve_error(exc) from exc


@serve.deployment(name="router", max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.1})
@serve.ingress(app)
class Ingress:
    def __init__(self, args: RouterArgs, manager: DeploymentHandle, governor: DeploymentHandle):
        self.registry = ModelRegistry(ttl_s=args.registry_ttl_s)
        self.embedder = EmbeddingsBatcher(args.embeddings_batch_wait_ms)
        # What the control routes (control_routes.py) use, on the app they share.
        app.state.registry, app.state.manager, app.state.governor = self.registry, manager, governor
        self.limits = args.limits
        app.state.governance = Governance(governor, configured_keys(args.api_keys, args.api_keys_env))
        app.state.max_body_bytes = args.limits.max_body_bytes
        app.state.log_prompts = args.limits.log_prompts

    def _check(self, model: str, span_id: str = "", *, messages=None, inputs=None, documents=None, max_tokens=None) -> None:
        """The key may call the model (403), the request is within the configured limits (400
        naming the one exceeded); note the access-log fields."""
        note(model=model, span_id=span_id or None)
        key = current_key()
        if key is not None and not key.may_call(model):
            raise AuthError(403, f"this API key may not call model '{model}'")
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

    async def _open(self, model: str, opener) -> tuple[str, object]:
        """The model's stream(s), or a fallback's (serve_app/fallbacks.py): (model that took it, streams)."""
        return await open_with_fallbacks(self.registry, model, current_key(), opener)

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
            self._check(req.model, span_id, messages=req.messages, max_tokens=req.max_new_tokens)
            note(prompt=req.prompt or (req.messages and req.messages[-1].text()))
            request = req.to_generation(span_id)
            served, stream = await self._open(req.model, lambda handle: OpenStream.open(handle, request))
        except Exception as exc:
            return dbgpt_serving.refusal(req.model, span_id, exc, suffix=refusal_suffix)
        response = await answer(req, stream, span_id)
        response.headers[MODEL_HEADER] = served
        return response

    @app.post("/api/worker/embeddings")
    async def embeddings(self, req: EmbeddingsRequest) -> list[list[float]]:
        span_id = new_span_id(req.span_id)
        self._check(req.model, span_id, inputs=req.input)
        if req.query is not None:  # DB-GPT's reranker worker: [[score per document]]
            scored = await self._scores(req.model, req.query, req.input, span_id)
            note_usage(scored.total_tokens)
            return [scored.scores]
        embedded = await self._embed(req.model, req.input, span_id)
        note_usage(embedded.prompt_tokens)
        return embedded.vectors

    async def _embed(self, model: str, inputs: list, span_id: str, keep: int = -1) -> Embedded:
        handle = await self.registry.handle(model, "text2vec")
        return await _call(self.embedder.embed(model, handle, inputs, span_id, keep))

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

    # --- OpenAI API --------------------------------------------------------------------------

    @app.get("/v1/models")
    async def list_models(self) -> ModelList:
        key = current_key()  # a key limited to some models sees only those
        models = [m for m in await self.registry.models() if m.running_replicas and (key is None or key.may_call(m.name))]
        return ModelList(data=[ModelCard.of(m) for m in models])

    @app.get("/v1/models/{model:path}")
    async def get_model(self, model: str) -> ModelCard:
        self._check(model)
        return ModelCard.of(await self.registry.lookup(model))

    @app.post("/v1/chat/completions")
    async def chat_completions(self, req: ChatCompletionRequest, response: Response):
        span_id = new_span_id()
        self._check(req.model, span_id, messages=req.messages, max_tokens=req.max_completion_tokens or req.max_tokens)
        note(prompt=req.messages[-1].content)
        return await self._answer(req, span_id, response, openai_serving.chat_completion_sse,
                                  openai_serving.chat_completion)

    @app.post("/v1/completions")
    async def completions(self, req: CompletionRequest, response: Response):
        span_id = new_span_id()
        self._check(req.model, span_id, inputs=req.prompts() * req.n, max_tokens=req.max_tokens)
        note(prompt=req.prompts()[0])
        return await self._answer(req, span_id, response, openai_serving.completion_sse, openai_serving.completion)

    async def _answer(self, req: ChatCompletionRequest | CompletionRequest, span_id: str, response: Response,
                      streamed, whole):
        """Open a stream per choice (on the model or a fallback), then answer as SSE or whole."""
        requests = req.to_generations(span_id)
        served, streams = await self._open(req.model, lambda handle: OpenStream.open_all(handle, requests))
        req = req.model_copy(update={"model": served})
        if req.stream:
            return StreamingResponse(streamed(req, streams), media_type="text/event-stream",
                                     headers={MODEL_HEADER: served})
        response.headers[MODEL_HEADER] = served
        return await whole(req, streams)

    @app.post("/v1/embeddings")
    async def openai_embeddings(self, req: EmbeddingRequest) -> EmbeddingResponse:
        span_id = new_span_id()
        self._check(req.model, span_id, inputs=req.inputs())
        embedded = await self._embed(req.model, req.inputs(), span_id, req.truncate_prompt_tokens or -1)
        matryoshka = bool((await self.registry.lookup(req.model)).args.get("matryoshka"))
        return openai_serving.embeddings(req, embedded, matryoshka)

    # --- vLLM's tokenizer routes ------------------------------------------------------------------

    @app.post("/tokenize")
    async def tokenize(self, req: TokenizeRequest) -> TokenizeResponse:
        self._check(req.model, messages=req.messages)
        handle = await self.registry.handle(req.model, "llm")
        ids, context_length = await _call(handle.tokenize.remote(req.generation(), req.add_special_tokens))
        return TokenizeResponse(count=len(ids), max_model_len=context_length, tokens=ids)

    @app.post("/detokenize")
    async def detokenize(self, req: DetokenizeRequest) -> DetokenizeResponse:
        self._check(req.model)
        handle = await self.registry.handle(req.model, "llm")
        return DetokenizeResponse(prompt=await _call(handle.detokenize.remote(req.tokens)))

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
    configured = configured_keys(router_args.api_keys, router_args.api_keys_env)
    manager = ModelManager.bind(router_args.sources, router_args.apply_timeout_s)
    return Ingress.bind(router_args, manager, Governor.bind(configured))
