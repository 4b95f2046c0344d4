"""DB-GPT's worker API (`/api/worker/*`, what its RemoteModelWorker and RemoteWorkerManager
call) and its API server's rerank route (`/api/v1/beta/relevance`).

Each route parses its body (protocol.py), makes one call through `app.state.calls`
(serving/calls.py) and shapes the answer (serving.py). How errors look is the route
class's: an error ModelOutput on the generation routes (`GenerationRoute`), FastAPI's
`{"detail": ...}` on the others, and OpenAI's shape on the relevance route, as DB-GPT's
own API server answers there.
"""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from serve_app.dialects.dbgpt import serving
from serve_app.dialects.dbgpt.protocol import (
    CountTokenRequest,
    EmbeddingsRequest,
    ModelMetadata,
    ModelMetadataRequest,
    ModelOutput,
    PromptRequest,
    RelevanceRequest,
    RelevanceResponse,
)
from serve_app.dialects.openai.routes import OpenAIRoute
from serve_app.errors import InvalidRequest, ServeError
from serve_app.http.boundary import BoundaryRoute
from serve_app.http.context import current_key, note, note_usage
from serve_app.serving.calls import ModelCalls, new_span_id
from serve_app.serving.fallbacks import MODEL_HEADER


class GenerationRoute(BoundaryRoute):
    """A refusal is an error ModelOutput (serving.refusal)."""

    error_model = ModelOutput
    frame_end = b""

    def render(self, request: Request, err: ServeError) -> Response:
        return serving.refusal(err, self.frame_end)


class StreamRoute(GenerationRoute):
    frame_end = b"\0"  # every frame of DB-GPT's stream, a refusal too, ends with a NUL byte
    error_model = None  # so a refusal is a frame of the stream (no content type, as the stream has), not JSON


router = APIRouter(route_class=BoundaryRoute)
generation = APIRouter(route_class=GenerationRoute)
streaming = APIRouter(route_class=StreamRoute)
rerank = APIRouter(route_class=OpenAIRoute)


def calls(request: Request) -> ModelCalls:
    return request.app.state.calls


@streaming.post("/api/worker/generate_stream", response_class=StreamingResponse,
                responses={200: {"description": "JSON objects, each ended by a NUL byte, as DB-GPT's worker sends them",
                                 "content": {}}})
async def generate_stream(request: Request, req: PromptRequest) -> Response:
    return await _generation(request, req, serving.generate_stream)


@generation.post("/api/worker/generate")
async def generate(request: Request, req: PromptRequest) -> ModelOutput:
    return await _generation(request, req, serving.generate)


async def _generation(request: Request, req: PromptRequest, answer) -> Response:
    span_id = new_span_id(req.span_id)
    calls(request).check(req.model, span_id, messages=req.messages, max_tokens=req.max_new_tokens)
    note(prompt=req.prompt or (req.messages and req.messages[-1].text()))
    served, [stream] = await calls(request).generate(req.model, [req.to_generation(span_id)])
    response = await answer(req, stream, span_id)
    response.headers[MODEL_HEADER] = served
    return response


@router.post("/api/worker/embeddings")
async def embeddings(request: Request, req: EmbeddingsRequest) -> list[list[float]]:
    span_id = new_span_id(req.span_id)
    calls(request).check(req.model, span_id, inputs=req.input)
    if req.query is not None:  # DB-GPT's reranker worker: [[score per document]]
        scored = await calls(request).score(req.model, req.query, req.input, span_id)
        note_usage(scored.total_tokens)
        return [scored.scores]
    embedded, _ = await calls(request).embed(req.model, req.input, span_id)  # cut to fit, as DB-GPT's workers do
    note_usage(embedded.prompt_tokens)
    return embedded.vectors


@router.post("/api/worker/count_token")
async def count_token(request: Request, req: CountTokenRequest) -> int:
    # DB-GPT's RemoteModelWorker sends no model name (it assumes one model per worker
    # address). DB-GPT counts to trim a conversation to fit the model's context, so the
    # largest count among the running llms fits whichever of them it meant.
    if req.model:
        calls(request).check(req.model)
        names = [req.model]
    else:
        key = current_key()
        names = [n for n in await calls(request).registry.running("llm") if key is None or key.may_call(n)]
        if not names:
            raise InvalidRequest("no llm model this key may call runs to count tokens with; name one in 'model'")
    handles = [await calls(request).handle(name) for name in names]
    return max(await asyncio.gather(*(h.count_token.remote(req.prompt) for h in handles)))


@router.post("/api/worker/model_metadata")
async def model_metadata(request: Request, req: ModelMetadataRequest) -> ModelMetadata:
    handle = await calls(request).handle(req.model)
    # The name it is called by (its application's, or an adapter's), not the one its replica
    # derives from its weights: DB-GPT's LLM client looks models up by this name.
    return ModelMetadata(**{**await handle.model_metadata.remote(), "model": req.model})


@rerank.post("/api/v1/beta/relevance")
async def relevance(request: Request, req: RelevanceRequest) -> RelevanceResponse:
    return serving.relevance(req, await calls(request).score(req.model, req.query, req.documents, new_span_id()))


router.include_router(generation)
router.include_router(streaming)
router.include_router(rerank)
