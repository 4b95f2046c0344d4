"""The Messages API's routes. Each parses its body (protocol.py), goes through the same
checks, keys, limits, usage and fallbacks as chat (serving/calls.py), and answers in
Anthropic's shape (serving.py), its errors too (`AnthropicRoute`)."""

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serve_app.dialects.anthropic import serving
from serve_app.dialects.anthropic.protocol import CountTokensRequest, ErrorBody, MessagesRequest
from serve_app.errors import InvalidRequest, ServeError
from serve_app.http.boundary import BoundaryRoute, retry_headers
from serve_app.http.context import note
from serve_app.serving.calls import ModelCalls, new_span_id
from serve_app.serving.fallbacks import MODEL_HEADER


class AnthropicRoute(BoundaryRoute):
    error_model = ErrorBody

    def render(self, request: Request, err: ServeError) -> Response:
        return JSONResponse(serving.error_body(err), status_code=err.status_code, headers=retry_headers(err))

    def render_invalid(self, request: Request, exc: RequestValidationError) -> Response:
        message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
                            for e in exc.errors())
        return self.render(request, InvalidRequest(message or "invalid request body"))


router = APIRouter(route_class=AnthropicRoute)


def calls(request: Request) -> ModelCalls:
    return request.app.state.calls


@router.post("/v1/messages")
async def messages(request: Request, req: MessagesRequest) -> Response:
    span_id = new_span_id()
    calls(request).check(req.model, span_id, messages=req.messages, max_tokens=req.max_tokens)
    generation = req.generation(span_id)
    note(prompt=generation.messages[-1].content)
    served, [stream] = await calls(request).generate(req.model, [generation])
    headers = {MODEL_HEADER: served}
    if req.stream:
        return StreamingResponse(serving.message_events(req, served, stream), media_type="text/event-stream",
                                 headers=headers)
    return JSONResponse(await serving.message(req, served, stream), headers=headers)


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, req: CountTokensRequest) -> dict:
    calls(request).check(req.model, messages=req.messages)
    handle = await calls(request).handle(req.model, "llm")
    ids, _ = await handle.tokenize.remote(req.generation(), True)
    return {"input_tokens": len(ids)}
