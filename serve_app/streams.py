"""Opening a model's token stream through its deployment handle.

Both API dialects open a stream the same way: call the `llm` deployment with
`handle.options(stream=True)` and await the first chunk before the HTTP response
starts, so a failure before any token (an overlong prompt, a saturated model, a
dead replica) still gets a proper status instead of a half-sent stream.
"""

from typing import AsyncIterator

from ray.serve.handle import DeploymentHandle

from serve_app.engine import GenerationChunk, GenerationRequest
from serve_app.errors import ServeError, as_serve_error
from serve_app.protocol import Usage


class OpenStream:
    """A model stream whose first chunk has already arrived (or whose opening failed)."""

    def __init__(self, first: GenerationChunk, rest: AsyncIterator[GenerationChunk]):
        self.first, self._rest = first, rest

    @classmethod
    async def open(cls, handle: DeploymentHandle, request: GenerationRequest) -> "OpenStream":
        rest = handle.options(stream=True).generate_stream.remote(request)
        try:
            return cls(await rest.__anext__(), rest)
        except StopAsyncIteration:
            raise ServeError("the model's stream ended before its first chunk")
        except Exception as exc:
            raise as_serve_error(exc) from exc

    def cancel(self) -> None:
        self._rest.cancel()

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
            yield chunk
        finally:
            if not chunk.finish_reason:  # the client left, or the stream broke: stop the model
                self.cancel()


def usage_of(chunk: GenerationChunk) -> Usage:
    return Usage(
        prompt_tokens=chunk.prompt_tokens,
        completion_tokens=chunk.completion_tokens,
        total_tokens=chunk.prompt_tokens + chunk.completion_tokens,
    )
