"""The Responses API's routes: create (whole, streamed or in the background), retrieve, list its input
items, cancel a background one, delete. They go
through the same checks, keys, limits, usage and fallbacks as chat (serving/calls.py);
stored responses are the app's `response_store` (store.py), one API key's apart from
another's. Errors are OpenAI's shape (its route class)."""

import asyncio
from typing import Literal, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serve_app.dialects.openai.routes import OpenAIRoute
from serve_app.dialects.responses import background, serving
from serve_app.dialects.responses.protocol import ResponsesRequest
from serve_app.dialects.responses.store import ResponseStore
from serve_app.errors import InvalidRequest
from serve_app.http.context import current_key, note
from serve_app.serving.calls import ModelCalls, new_span_id
from serve_app.serving.fallbacks import MODEL_HEADER

router = APIRouter(route_class=OpenAIRoute)
CANCEL_WAIT_S = 5.0


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
    if req.background:
        key, admission = current_key(), request.app.state.admission

        def count(prompt_tokens: int, completion_tokens: int) -> None:  # as the access log counts a request's
            if key is not None and admission is not None:
                admission.served(key, prompt_tokens, completion_tokens, served)

        queued = background.start(store(request), shell, req, stream, conversation, owner, len(earlier), count)
        return JSONResponse(queued, headers=headers)
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


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(request: Request, response_id: str) -> dict:
    """Cancel a background response: it stops within about a second, on whichever replica runs it.
    A finished one comes back as it is, as OpenAI's does."""
    record = store(request).get(response_id, key_id())
    if not record.get("background"):
        raise InvalidRequest(f"response '{response_id}' was not created with background: true; only those "
                             "can be cancelled")
    if record["response"]["status"] in background.UNFINISHED:
        store(request).ask_to_cancel(response_id)
        for _ in range(int(CANCEL_WAIT_S / background.CANCEL_POLL_S)):  # answer with it cancelled, if it is soon
            await asyncio.sleep(background.CANCEL_POLL_S)
            record = store(request).get(response_id, key_id())
            if record["response"]["status"] not in background.UNFINISHED:
                break
    return record["response"]


@router.delete("/v1/responses/{response_id}")
async def delete_response(request: Request, response_id: str) -> dict:
    store(request).delete(response_id, key_id())
    return {"id": response_id, "object": "response", "deleted": True}
