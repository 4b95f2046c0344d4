"""Opening a model's token stream through its deployment handle.

Both API dialects open a stream the same way: call the `llm` deployment with
`handle.options(stream=True)` and await the first chunk before the HTTP response
starts, so a failure before any token (an overlong prompt, a saturated model, a
dead replica) still gets a proper status instead of a half-sent stream.
"""

import asyncio
import time
from typing import AsyncIterator

from ray.serve.handle import DeploymentHandle

from serve_app import tracing
from serve_app.engines.base import GenerationChunk, GenerationRequest
from serve_app.errors import ServeError, as_serve_error
from serve_app.http.context import current_session, current_ticket, note


class OpenStream:
    """A model stream whose first chunk has already arrived (or whose opening failed)."""

    def __init__(self, first: GenerationChunk, rest: AsyncIterator[GenerationChunk]):
        self.first, self._rest = first, rest
        self.done = bool(first.finish_reason)

    @classmethod
    async def open(cls, handle: DeploymentHandle, request: GenerationRequest) -> "OpenStream":
        with tracing.span("call llm"):
            request = request.model_copy(update={"sent_at": time.time(), "trace_context": tracing.carrier(),
                                                 "session": current_session() or request.session,
                                                 "ticket": current_ticket(request.priority)})
            rest = handle.options(stream=True).generate_stream.remote(request)
            return await cls._first(rest)

    @classmethod
    async def _first(cls, rest) -> "OpenStream":
        try:
            first = await rest.__anext__()
            note(queue_s=first.queue_s, prefill_s=first.prefill_s)  # the request's time split (http/timing.py)
            return cls(first, rest)
        except StopAsyncIteration:
            raise ServeError("the model's stream ended before its first chunk")
        except Exception as exc:
            raise as_serve_error(exc) from exc

    @classmethod
    async def open_all(cls, handle: DeploymentHandle, requests: list[GenerationRequest]) -> list["OpenStream"]:
        """Several streams opened at once (they generate together); if one fails, the rest are cancelled."""
        opened = await asyncio.gather(*(cls.open(handle, r) for r in requests), return_exceptions=True)
        failed = [s for s in opened if isinstance(s, BaseException)]
        if failed:
            for s in opened:
                if isinstance(s, OpenStream):
                    s.cancel()
            raise as_serve_error(failed[0])
        return opened

    def cancel(self) -> None:
        self._rest.cancel()

    @staticmethod
    def cancel_unfinished(streams: list["OpenStream"]) -> None:
        """Stop the model on every stream not read to its end (a sibling failed, or the client left)."""
        for stream in streams:
            if not stream.done:
                stream.cancel()

    async def chunks(self) -> AsyncIterator[GenerationChunk]:
        """Every chunk up to the one with a finish_reason; a stream cut short raises."""
        chunk = self.first
        try:
            while not chunk.finish_reason:
                yield chunk
                try:
                    chunk = await self._rest.__anext__()
                except StopAsyncIteration:
                    raise ServeError("the model's stream ended without a finish reason")
            self.done = True
            note(decode_s=chunk.decode_s)
            yield chunk
        finally:
            if not chunk.finish_reason:  # the client left, or the stream broke: stop the model
                self.cancel()

