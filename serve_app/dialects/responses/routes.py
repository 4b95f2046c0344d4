"""The Responses API's routes: create (whole or streamed), retrieve, list its input items, delete. They go
through the same checks, keys, limits, usage and fallbacks as chat (serving/calls.py);
stored responses are the app's `response_store` (store.py), one API key's apart from
another's. Errors are OpenAI's shape (its route class)."""

from typing import Literal, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serve_app.dialects.openai.routes import OpenAIRoute
from serve_app.dialects.responses import serving
from serve_app.dialects.responses.protocol import ResponsesRequest
from serve_app.dialects.responses.store import ResponseStore
from serve_app.errors import InvalidRequest
from serve_app.http.context import current_key, note
from serve_app.serving.calls import ModelCalls, new_span_id
from serve_app.serving.fallbacks import MODEL_HEADER

router = APIRouter(route_class=OpenAIRoute)


def calls(request: Request) -> ModelCalls:
    return request.app.state.calls


def store(request: Request) -> ResponseStore:
    return request.app.state.response_store


def key_id() -> str | None:
    key = current_key()
    return key.id if key is not None else None


@router.post("/v1/responses")
async def create_response(request: Request, req: ResponsesRequest) -> Response:
    span_id = new_span_id()
    earlier = []
    if req.previous_response_id:  # the conversation so far: what it was asked, and what it answered
        record = store(request).get(req.previous_response_id, key_id())
        earlier = record["conversation"] + record["response"]["output"]
    generation = req.generation(earlier, span_id)
    calls(request).check(req.model, span_id, messages=generation.messages, max_tokens=req.max_output_tokens)
    note(prompt=generation.messages[-1].content)
    served, [stream] = await calls(request).generate(req.model, [generation])
    shell, conversation, owner = serving.Shell(req, served), earlier + req.items(), key_id()

    def kept(response: dict) -> dict:
        if req.store and not store(request).put(response, conversation, owner, len(earlier)):
            response["store"] = False  # over the size bound: answered, not kept
        return response

    headers = {MODEL_HEADER: served}
    if req.stream:
        return StreamingResponse(serving.response_events(req, shell, stream, kept), media_type="text/event-stream",
                                 headers=headers)
    return JSONResponse(await serving.response(req, shell, stream, kept), headers=headers)


@router.get("/v1/responses/{response_id}")
async def get_response(request: Request, response_id: str) -> dict:
    return store(request).get(response_id, key_id())["response"]


@router.get("/v1/responses/{response_id}/input_items")
async def input_items(request: Request, response_id: str, limit: int = Query(20, ge=1, le=100),
                      order: Literal["asc", "desc"] = "desc", after: Optional[str] = None) -> dict:
    """The input items of a stored response, paged as OpenAI's (newest first by default)."""
    items = store(request).input_items(response_id, key_id())
    items = items if order == "asc" else items[::-1]
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequest(f"after: '{after}' is not an input item of response '{response_id}'")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}


@router.delete("/v1/responses/{response_id}")
async def delete_response(request: Request, response_id: str) -> dict:
    store(request).delete(response_id, key_id())
    return {"id": response_id, "object": "response", "deleted": True}
