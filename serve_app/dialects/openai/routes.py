"""The OpenAI dialect's routes: `/v1/models`, `/v1/chat/completions`, `/v1/completions`,
`/v1/embeddings`, `/v1/rerank` (Cohere/Jina's shape), and vLLM's `/tokenize` and
`/detokenize`.

Each route parses its body (protocol.py), makes one call through `app.state.calls`
(serving/calls.py) and shapes the answer (serving.py). Errors anywhere are OpenAI's
`{"error": {...}}`: `OpenAIRoute` renders them (http/boundary.py runs it).
"""

import re
from typing import Optional

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serve_app.dialects.openai import serving, vectors
from serve_app.dialects.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, RerankRequest
from serve_app.dialects.openai.responses import EmbeddingResponse, ErrorResponse, ModelCard, ModelList, RerankResponse
from serve_app.dialects.openai.tokens import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from serve_app.errors import InvalidRequest, ServeError
from serve_app.http.boundary import BoundaryRoute, retry_headers
from serve_app.http.context import current_key, note
from serve_app.serving.calls import ModelCalls, new_span_id
from serve_app.serving.fallbacks import MODEL_HEADER


class OpenAIRoute(BoundaryRoute):
    error_model = ErrorResponse

    def render(self, request: Request, err: ServeError, param: Optional[str] = None) -> Response:
        return JSONResponse(serving.error_body(err, param), status_code=err.status_code, headers=retry_headers(err))

    def render_invalid(self, request: Request, exc: RequestValidationError) -> Response:
        """OpenAI answers a bad body with 400 and names the parameter at fault."""
        errors = exc.errors()
        param = ".".join(str(p) for p in errors[0].get("loc", ())[1:]) if errors else None
        if errors and not param:  # a check across fields names the one at fault first: "Value error, tools: ..."
            named = re.match(r"Value error, (\w+): ", errors[0].get("msg", ""))
            param = named.group(1) if named else None
        message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in errors)
        return self.render(request, InvalidRequest(message or "invalid request body"), param or None)


router = APIRouter(route_class=OpenAIRoute)


def calls(request: Request) -> ModelCalls:
    return request.app.state.calls


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    key = current_key()  # a key limited to some models sees only those; a model asleep is listed
    models = [m for m in await calls(request).registry.models()
              if m.callable and (key is None or key.may_call(m.name))]
    return ModelList(data=[ModelCard.of(m) for m in models])


@router.get("/v1/models/{model:path}")
async def get_model(request: Request, model: str) -> ModelCard:
    calls(request).check(model)
    return ModelCard.of(await calls(request).registry.lookup(model))


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, req: ChatCompletionRequest, response: Response):
    span_id = new_span_id()
    calls(request).check(req.model, span_id, messages=req.messages, max_tokens=req.max_completion_tokens or req.max_tokens)
    note(prompt=req.messages[-1].content)
    return await _answer(request, req, span_id, response, serving.chat_completion_sse, serving.chat_completion)


@router.post("/v1/completions")
async def completions(request: Request, req: CompletionRequest, response: Response):
    span_id = new_span_id()
    calls(request).check(req.model, span_id, inputs=req.prompts() * req.n, max_tokens=req.max_tokens)
    first = req.prompts()[0]
    note(prompt=first if isinstance(first, str) else f"<{len(first)} token ids>")
    return await _answer(request, req, span_id, response, serving.completion_sse, serving.completion)


async def _answer(request: Request, req: ChatCompletionRequest | CompletionRequest, span_id: str, response: Response,
                  streamed, whole):
    """Open a stream per choice (on the model or a fallback), then answer as SSE or whole."""
    served, streams = await calls(request).generate(req.model, req.to_generations(span_id))
    req = req.model_copy(update={"model": served})
    if req.stream:
        return StreamingResponse(streamed(req, streams), media_type="text/event-stream", headers={MODEL_HEADER: served})
    response.headers[MODEL_HEADER] = served
    return await whole(req, streams)


@router.post("/v1/embeddings")
async def embeddings(request: Request, req: EmbeddingRequest) -> EmbeddingResponse:
    span_id = new_span_id()
    calls(request).check(req.model, span_id, inputs=req.inputs())
    # Without truncate_prompt_tokens an input too long is refused (OpenAI's rule), and not embedded first.
    keep = -1 if req.truncate_prompt_tokens is not None and req.truncate_prompt_tokens < 0 else req.truncate_prompt_tokens
    embedded, entry = await calls(request).embed(req.model, req.inputs(), span_id, keep)
    return vectors.embeddings(req, embedded, matryoshka=bool(entry.args.get("matryoshka")))


@router.post("/tokenize")
async def tokenize(request: Request, req: TokenizeRequest) -> TokenizeResponse:
    calls(request).check(req.model, messages=req.messages)
    handle = await calls(request).handle(req.model, "llm")
    ids, context_length = await handle.tokenize.remote(req.generation(), req.add_special_tokens)
    return TokenizeResponse(count=len(ids), max_model_len=context_length, tokens=ids)


@router.post("/detokenize")
async def detokenize(request: Request, req: DetokenizeRequest) -> DetokenizeResponse:
    calls(request).check(req.model)
    handle = await calls(request).handle(req.model, "llm")
    return DetokenizeResponse(prompt=await handle.detokenize.remote(req.tokens))


@router.post("/v1/rerank", response_model_exclude_none=True)
async def rerank(request: Request, req: RerankRequest) -> RerankResponse:
    return vectors.rerank(req, await calls(request).score(req.model, req.query, req.texts(), new_span_id()))
