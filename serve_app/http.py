"""The FastAPI app under the ingress: error shapes, API keys, size limits, access log.

Everything here happens around a route, never inside one: the routes in
`ingress.py` only validate, dispatch and hand the answer to their dialect.
"""

import logging
import re
import time
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from serve_app import openai_serving
from serve_app.dbgpt_protocol import ModelOutput
from serve_app.governance import RateLimited
from serve_app.request_context import access
from serve_app.errors import AuthError, InvalidRequest, ModelNotFound, ServeError

logger = logging.getLogger("ray.serve")

OPENAI_PREFIXES = ("/v1", "/api/v1", "/tokenize", "/detokenize")

def is_openai_route(request: Request) -> bool:
    return request.url.path.startswith(OPENAI_PREFIXES)


# DB-GPT's generation routes: its clients read a refusal there as an error ModelOutput.
DBGPT_GENERATION = ("/api/worker/generate", "/api/worker/generate_stream")


def error_response(request: Request, err: ServeError, param: Optional[str] = None) -> Response:
    """OpenAI's error shape on /v1 routes; FastAPI's {"detail": ...} on DB-GPT's, and an error
    ModelOutput for a key over its limits on DB-GPT's generation routes."""
    headers = {"Retry-After": str(err.retry_after_s)} if getattr(err, "retry_after_s", None) else None
    if isinstance(err, RateLimited) and request.url.path in DBGPT_GENERATION:
        suffix = b"\0" if request.url.path.endswith("_stream") else b""
        body = ModelOutput.error(err.message).model_dump_json().encode() + suffix
        return Response(body, status_code=err.status_code, headers=headers, media_type="application/json")
    if is_openai_route(request) or isinstance(err, AuthError):
        body = openai_serving.error_body(err, param)
    else:
        body = {"detail": err.message}
        if isinstance(err, ModelNotFound):
            body["available_models"] = err.available
    return JSONResponse(body, status_code=err.status_code, headers=headers)


class BodyTooLarge(ServeError):
    status_code = 413
    error_type = "invalid_request_error"


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413, counting as they arrive.

    An ASGI wrapper rather than a Content-Length check, so chunked uploads are
    caught too, before the whole body is held in memory.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        limit = scope["app"].state.max_body_bytes if scope["type"] == "http" else 0
        if not limit:
            return await self.app(scope, receive, send)
        request = Request(scope)
        declared = request.headers.get("content-length")
        too_large = BodyTooLarge(f"request body is larger than the limit of {limit} bytes")
        if declared and declared.isdigit() and int(declared) > limit:
            return await error_response(request, too_large)(scope, receive, send)
        seen, answered = 0, False

        async def counted():
            # Past the limit, answer 413 ourselves and tell the app the client left:
            # an exception here would be swallowed by FastAPI's body parsing as a 400.
            nonlocal seen, answered
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit and not answered:
                answered = True
                await error_response(request, too_large)(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not answered:  # whatever the app says after our 413 goes nowhere
                await send(message)

        await self.app(scope, counted, guarded_send)


async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
    return error_response(request, exc)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    if not is_openai_route(request):  # DB-GPT clients expect FastAPI's 422
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
    errors = exc.errors()
    param = ".".join(str(p) for p in errors[0].get("loc", ())[1:]) if errors else None
    if errors and not param:  # a check across fields names the one at fault first: "Value error, tools: ..."
        named = re.match(r"Value error, (\w+): ", errors[0].get("msg", ""))
        param = named.group(1) if named else None
    message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in errors)
    return error_response(request, InvalidRequest(message or "invalid request body"), param or None)


class KeysAndAccessLog:
    """Check the API key (and a limited key's limits), then write one access-log line and
    count the key's tokens when the response ends.

    A plain ASGI wrapper rather than `app.middleware("http")`: Starlette's
    BaseHTTPMiddleware runs the route in a task group and pipes every body chunk
    through a memory stream, a cost each request and each streamed token pays.
    Logging at the end also lets the line carry a stream's latency and tokens.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        record = {"status": 500}
        reset = access.set(record)
        request = Request(scope)
        state = scope["app"].state
        governance = state.governance
        key = None

        async def send_noting_status(message):
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            await send(message)

        try:
            if governance is not None:
                governance.ensure_refreshing()
                key = record["key"] = governance.book.identify(request.headers.get("authorization"))
            app = await self._admitted(request, governance, key)
            await app(scope, receive, send_noting_status)
        finally:
            access.reset(reset)
            if key is not None and record["status"] < 400:
                governance.served(key, record.get("prompt_tokens", 0), record.get("completion_tokens", 0))
            self._log(scope, state, record, started)

    async def _admitted(self, request: Request, governance, key):
        """The app, or the error response that stands in for it."""
        denied = governance.book.check(request.url.path, key) if governance is not None else None
        if denied:
            return error_response(request, AuthError(*denied))
        if key is not None:
            try:
                await governance.admit(key)
            except ServeError as err:
                return error_response(request, err)
        return self.app

    @staticmethod
    def _log(scope, state, record: dict, started: float) -> None:
        # Never a key (its id at most), and the prompt only when the operator asks.
        prompt = f" prompt={record['prompt']!r}" if state.log_prompts and "prompt" in record else ""
        tokens = record.get("prompt_tokens", 0) + record.get("completion_tokens", 0)
        logger.info(
            "access route=%s %s model=%s status=%d latency_ms=%.1f tokens=%s key=%s span_id=%s%s",
            scope["method"], scope["path"], record.get("model", "-"), record["status"],
            (time.monotonic() - started) * 1000, tokens or "-", getattr(record.get("key"), "id", "-"),
            record.get("span_id", "-"), prompt,
        )


def create_app() -> FastAPI:
    # The handlers live at module level: Serve pickles the app, and module-level
    # functions travel by reference (the ContextVar they use cannot be pickled).
    app = FastAPI(title="smmf-serve", description="DB-GPT's model cluster and the OpenAI API on Ray Serve.")
    app.state.governance = None  # set by the ingress: keys, limits and their counts
    app.state.max_body_bytes = 0
    app.state.log_prompts = False
    app.add_exception_handler(ServeError, _serve_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(KeysAndAccessLog)
    app.add_middleware(BodyLimit)  # outermost: a body too large is refused before anything else
    return app
