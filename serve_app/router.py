"""The router: the one HTTP ingress, dispatching each request to a model's deployment.

A request names a model; the registry maps the name to that model's Serve
application and returns a deployment handle; Serve's router picks the replica
(least-loaded of two random choices) and enforces `max_ongoing_requests`.
Streams go through `handle.options(stream=True)`, so each chunk leaves here as
soon as the model yields it.
"""


import logging
import time
import uuid
from typing import AsyncIterator, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from ray.serve import Application

from serve_app.config import ARGS_BY_WORKER_TYPE, RouterArgs, parameter_descriptions
from serve_app.engine import GenerationChunk, PromptTooLongError
from serve_app.errors import InvalidRequest, ServeError
from serve_app.protocol import (
    CountTokenRequest,
    EmbeddingsRequest,
    ModelMetadata,
    ModelMetadataRequest,
    ModelOutput,
    PromptRequest,
    SupportedModel,
    Usage,
    WorkerSupportedModels,
    WorkerTypeParam,
)
from serve_app.registry import ModelRegistry
from serve_app.sources import source_exists

logger = logging.getLogger("ray.serve")

app = FastAPI(title="smmf-serve", description="DB-GPT's model cluster API on Ray Serve.")


@app.exception_handler(ServeError)
async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
    body = {"detail": exc.message}
    if hasattr(exc, "available"):
        body["available_models"] = exc.available
    return JSONResponse(body, status_code=exc.status_code)


def as_serve_error(exc: BaseException) -> ServeError:
    """Map whatever a deployment raised (Ray wraps it, keeping its type) to a ServeError."""
    if isinstance(exc, ServeError):
        return exc
    if isinstance(exc, PromptTooLongError):
        return InvalidRequest(str(exc).splitlines()[-1])
    cause = getattr(exc, "cause", None) or exc
    return ServeError(f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}")


def new_span_id(given: Optional[str]) -> str:
    return given or uuid.uuid4().hex


@serve.deployment(name="router", max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.5})
@serve.ingress(app)
class Router:
    def __init__(self, args: RouterArgs):
        self.registry = ModelRegistry(ttl_s=args.registry_ttl_s)

    # --- DB-GPT worker API: generation ------------------------------------------

    async def _worker_outputs(self, req: PromptRequest, span_id: str) -> AsyncIterator[ModelOutput]:
        """Cumulative ModelOutputs; a failure becomes one error ModelOutput, as DB-GPT's clients expect."""
        started = time.monotonic()
        try:
            handle = await self.registry.handle(req.model, "llm")
            stream = handle.options(stream=True).generate_stream.remote(req.to_generation(span_id))
            text, context = "", None
            chunk: Optional[GenerationChunk] = None
            async for chunk in stream:
                if chunk.prompt is not None and req.echo:
                    text = chunk.prompt
                    context = {"prompt_echo_len_char": len(chunk.prompt), "echo": True}
                text += chunk.text
                usage = None
                if chunk.finish_reason:
                    usage = Usage(
                        prompt_tokens=chunk.prompt_tokens,
                        completion_tokens=chunk.completion_tokens,
                        total_tokens=chunk.prompt_tokens + chunk.completion_tokens,
                    )
                yield ModelOutput(text=text, model_context=context, finish_reason=chunk.finish_reason, usage=usage)
            if chunk is None or chunk.finish_reason is None:
                raise ServeError("the model's stream ended without a finish reason")
            logger.info(
                "route=generate model=%s span_id=%s status=ok latency_ms=%.0f tokens=%d",
                req.model, span_id, (time.monotonic() - started) * 1000, chunk.completion_tokens,
            )
        except Exception as exc:
            err = as_serve_error(exc)
            logger.info("route=generate model=%s span_id=%s status=error reason=%s", req.model, span_id, err.message)
            yield ModelOutput.error(err.message)

    @app.post("/api/worker/generate_stream")
    async def generate_stream(self, req: PromptRequest) -> StreamingResponse:
        outputs = self._worker_outputs(req, new_span_id(req.span_id))

        async def frames() -> AsyncIterator[bytes]:
            async for out in outputs:
                yield out.model_dump_json().encode() + b"\0"

        return StreamingResponse(frames())

    @app.post("/api/worker/generate")
    async def generate(self, req: PromptRequest) -> ModelOutput:
        last = None
        async for last in self._worker_outputs(req, new_span_id(req.span_id)):
            pass
        return last

    # --- DB-GPT worker API: other model calls ------------------------------------

    @app.post("/api/worker/embeddings")
    async def embeddings(self, req: EmbeddingsRequest) -> list[list[float]]:
        handle = await self.registry.handle(req.model, "text2vec")
        return await self._call(handle.embeddings.remote(req.input, new_span_id(req.span_id)))

    @app.post("/api/worker/count_token")
    async def count_token(self, req: CountTokenRequest) -> int:
        handle = await self.registry.handle(req.model)
        return await self._call(handle.count_token.remote(req.prompt))

    @app.post("/api/worker/model_metadata")
    async def model_metadata(self, req: ModelMetadataRequest) -> ModelMetadata:
        handle = await self.registry.handle(req.model)
        return ModelMetadata(**await self._call(handle.model_metadata.remote()))

    @staticmethod
    async def _call(response):
        try:
            return await response
        except Exception as exc:
            raise as_serve_error(exc) from exc

    # --- DB-GPT worker API: what can run -----------------------------------------

    @app.get("/api/worker/models/supports")
    async def supports(self, request: Request) -> list[WorkerSupportedModels]:
        models = [
            SupportedModel(
                model=m.name,
                worker_type=m.worker_type,
                provider=m.args.get("engine", "hf") if m.worker_type == "llm" else "hf",
                path=str(m.args.get("source", "")),
                path_exist=source_exists(str(m.args.get("source", ""))),
                enabled=m.running_replicas > 0,
                params=m.args,
            )
            for m in await self.registry.models()
        ]
        host = request.url.hostname or "127.0.0.1"
        return [WorkerSupportedModels(host=host, port=request.url.port or 80, models=models)]

    @app.get("/api/worker/parameter/descriptions")
    async def parameter_descriptions(self, model: str, worker_type: WorkerTypeParam = "llm") -> list[dict]:
        descriptions = parameter_descriptions(ARGS_BY_WORKER_TYPE[worker_type])
        current = {m.name: m for m in await self.registry.models()}.get(model)
        if current and current.worker_type == worker_type:
            for d in descriptions:  # report what the running model uses
                d["default_value"] = current.args.get(d["param_name"], d["default_value"])
        return descriptions


def build_app(args: dict) -> Application:
    # Validated here, at build time, so a bad config fails `serve deploy` with the field's name.
    return Router.bind(RouterArgs.model_validate(args))
