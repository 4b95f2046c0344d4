"""The GPU-rate rows' reference: a bare Serve passthrough of a model's stream.

A FastAPI ingress that does nothing but call the simulated model's deployment with
`handle.options(stream=True)` and write each chunk as one JSON line: no parsing of
dialects, no registry, no access log, no limits. What it costs is what Serve itself
costs (proxy, handle, replica); our ingress's rows are read against it.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from ray import serve

from serve_app.engines.base import GenerationRequest, SamplingParams

app = FastAPI()


@serve.deployment(name="bare", max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.25})
@serve.ingress(app)
class BarePassthrough:
    def __init__(self, model: str):
        self.handle = serve.get_deployment_handle("llm", app_name=model)

    @app.post("/stream")
    async def stream(self, body: dict):
        request = GenerationRequest(prompt=body["prompt"], params=SamplingParams(max_new_tokens=body["max_tokens"]))
        chunks = self.handle.options(stream=True).generate_stream.remote(request)

        async def lines():
            async for chunk in chunks:
                yield chunk.model_dump_json(include={"text", "completion_tokens", "finish_reason"}) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")


def build_app(args: dict):
    return BarePassthrough.bind(args["model"])
