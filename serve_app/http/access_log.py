"""One access-log line per request, written when its response ends, and the hook that
counts a key's tokens then (governance/admission.py's `finished`).

A plain ASGI wrapper rather than `app.middleware("http")`: Starlette's
BaseHTTPMiddleware runs the route in a task group and pipes every body chunk through
a memory stream, a cost each request and each streamed token pays. Logging at the end
lets the line carry a stream's latency and tokens.
"""

from __future__ import annotations

import logging
import time

from serve_app import tracing
from serve_app.http.context import BATCH_LINE, access
from serve_app.http.timing import RequestMetrics, server_timing, split

logger = logging.getLogger("ray.serve")


class AccessLog:
    def __init__(self, app):
        self.app = app
        self.metrics = RequestMetrics()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        record = {"status": 500}
        session = _session(scope)
        if session:
            record["session"] = session  # for `routing: session` (serving/streams.py)
        if scope.get(BATCH_LINE):
            record["batch_line"] = True  # in the batch band of the model's fair queue (context.current_ticket)
        reset = access.set(record)

        async def send_noting_status(message):
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
                # What the route learned, on the request's span (FastAPI ends it with the body).
                tracing.annotate(scope, **{"smmf.model": record.get("model"), "dbgpt.span_id": record.get("span_id"),
                                           "smmf.fallback_from": record.get("fallback_from")})
                parts = split(record, time.monotonic() - started)
                if parts:
                    message = {**message, "headers": [*message.get("headers", []), (b"server-timing", server_timing(parts))]}
            await send(message)

        state = scope["app"].state
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            access.reset(reset)
            if state.admission is not None:
                state.admission.finished(record)
            elapsed = time.monotonic() - started
            parts = split(record, elapsed)
            self.metrics.observe(record.get("model", "-"), _route(scope), record["status"], parts)
            _log(scope, state.log_prompts, record, elapsed, parts)


def _session(scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-session-id":
            return value.decode("latin-1")[:256]
    return ""


def _route(scope) -> str:
    """The route's template (`/v1/models/{model}`), not the path: one series per route."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def _log(scope, log_prompts: bool, record: dict, elapsed: float, parts) -> None:
    # Never a key (its id at most), and the prompt only when the operator asks.
    prompt = f" prompt={record['prompt']!r}" if log_prompts and "prompt" in record else ""
    tokens = record.get("prompt_tokens", 0) + record.get("completion_tokens", 0)
    timing = "".join(f" {part}_ms={seconds * 1000:.1f}" for part, seconds in (parts or {}).items())
    logger.info(
        "access route=%s %s model=%s status=%d latency_ms=%.1f tokens=%s key=%s span_id=%s%s%s",
        scope["method"], scope["path"], record.get("model", "-"), record["status"],
        elapsed * 1000, tokens or "-", getattr(record.get("key"), "id", "-"),
        record.get("span_id", "-"), timing, prompt,
    )
