"""The error boundary: what happens around every route, whatever its dialect.

Every route of the app is a `BoundaryRoute` (each dialect's router sets its own
subclass as `route_class`), and its handler runs inside `boundary()`:

1. the body limit (413), counted as the body arrives, so chunked uploads are caught
   too, before the whole body is held in memory;
2. admission: the request's API key, its scope and limits (401, 403, 429; the
   object on `app.state.admission`, governance/admission.py);
3. the route itself: it validates its body (FastAPI), dispatches and shapes the answer;
4. anything raised on the way becomes a ServeError (`errors.as_serve_error`, the one
   mapping) and a response in the shape of the route's dialect: the route class's
   `render` and `render_invalid`. So the dialect of an error is the route's, never
   guessed from the URL.

An error after a streamed answer has started cannot change its status: each dialect's
stream writes it as its own last frame (dialects/*/serving.py).
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from serve_app.errors import ModelNotFound, ServeError, as_serve_error

logger = logging.getLogger("ray.serve")


class BodyTooLarge(ServeError):
    status_code = 413
    error_type = "invalid_request_error"


class HTTPError(ServeError):
    """An HTTP error Starlette or FastAPI raised (a body that is not JSON, say), with its status."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.error_type = "invalid_request_error" if status_code < 500 else "server_error"


class _BodyOverLimit(HTTPException):
    # Raised from the body's receive(): FastAPI re-raises an HTTPException met while reading
    # a body as it is (anything else there becomes its own 400).
    def __init__(self, limit: int):
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


def retry_headers(err: ServeError) -> Optional[dict[str, str]]:
    retry_after = getattr(err, "retry_after_s", None)
    return {"Retry-After": str(retry_after)} if retry_after else None


# What the boundary may answer on any route besides the route's own answers, each documented in
# the published schema (every route, in its route class's `error_model`), so that what comes back
# is what `/openapi.json` says: clients generated from it, and the schema fuzz (tests/inprocess).
ERROR_STATUSES = {
    400: "The request is not valid; the message names the field at fault.",
    401: "API keys are on and the request has no key, or not a valid one.",
    403: "The key may not do this (its scope, or the models it may call).",
    404: "No such model or object; a model's 404 lists the models it could have asked for.",
    409: "The change conflicts with the current state.",
    413: "The body is over the ingress's limit (max_body_bytes).",
    429: "Over the key's limits; Retry-After says when to retry.",
    503: "Not available now (a model starting or saturated, a part restarting); Retry-After says when to retry.",
    504: "Timed out waiting for the model or for Serve's controller.",
}


class DetailError(BaseModel):
    """FastAPI's error shape: the errors of the routes that belong to no other dialect."""

    detail: str
    available_models: Optional[list[str]] = None  # a model's 404: the models the caller could name


class BoundaryRoute(APIRoute):
    """A route whose errors are `{"detail": message}` (FastAPI's shape) with their status; a
    dialect's route class overrides `render` and `render_invalid` with its own shapes, and
    `error_model` with the model of their body."""

    error_model: Optional[type[BaseModel]] = DetailError  # None: an error body that is not one JSON object

    def __init__(self, path: str, endpoint: Callable, **kwargs):
        documented = {status: {"description": why, **({"model": self.error_model} if self.error_model else {})}
                      for status, why in ERROR_STATUSES.items()}
        kwargs["responses"] = {**documented, **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)

    def render(self, request: Request, err: ServeError) -> Response:
        available = err.available if isinstance(err, ModelNotFound) else None  # what the caller could have asked for
        body = DetailError(detail=err.message, available_models=available).model_dump(exclude_none=True)
        return JSONResponse(body, status_code=err.status_code, headers=retry_headers(err))

    def render_invalid(self, request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    def body_limit(self, request: Request) -> int:
        """The largest body this route takes (0: no limit)."""
        return request.app.state.max_body_bytes

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        route = self

        async def boundary(request: Request) -> Response:
            try:
                request = _limited(request, route.body_limit(request))
                admission = request.app.state.admission
                if admission is not None:
                    await admission.admit(request)
                return await handler(request)
            except RequestValidationError as exc:
                return route.render_invalid(request, exc)
            except HTTPException as exc:
                return route.render(request, HTTPError(exc.status_code, str(exc.detail)))
            except Exception as exc:
                err = as_serve_error(exc)
                if err.status_code >= 500 and not isinstance(exc, ServeError):
                    logger.warning("%s %s failed: %s", request.method, request.url.path, err.message, exc_info=exc)
                return route.render(request, err)

        return boundary


def _limited(request: Request, limit: int) -> Request:
    """The request, reading its body through a counter that stops at `limit`."""
    if not limit:
        return request
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(_BodyOverLimit(limit).detail)
    seen = 0
    receive = request.receive

    async def counted():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _BodyOverLimit(limit)
        return message

    return Request(request.scope, counted)
