"""Traces across the deployment graph, with OpenTelemetry: off unless an OTLP endpoint is set.

Each process (the ingress, every model replica) reads OpenTelemetry's own environment
variables, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`
(serve_config.yaml sets them for a Serve application with `runtime_env: {env_vars:
...}`), and exports spans over OTLP/HTTP. One trace per request:

  POST /v1/chat/completions           FastAPI's own server span (it traces once a tracer
  └─ fastapi.endpoint                 provider is set), continuing the client's W3C
     └─ attempt <model>               `traceparent`; the model and DB-GPT's span_id added
        └─ call llm                   (http/access_log.py), to join a DB-GPT trace with
           ├─ queue                   ours; one attempt per model tried
           ├─ prefill                 (serving/fallbacks.py); the handle call
           └─ decode                  (serving/streams.py); the replica's parts
                                      (deployments/llm.py; text2vec: queue, compute)

The context crosses a deployment handle inside the request (`trace_context`), as a
`traceparent` crosses HTTP.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

from opentelemetry import propagate, trace

_configured = False


def endpoint() -> Optional[str]:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")


def setup(service: str) -> bool:
    """Export this process's spans when an endpoint is configured (once per process)."""
    global _configured
    if _configured or not endpoint():
        return _configured
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or endpoint().rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def enabled() -> bool:
    return _configured


def tracer() -> trace.Tracer:
    return trace.get_tracer("smmf-serve")


def carrier() -> dict[str, str]:
    """The current span's context, to travel with a request to a replica."""
    out: dict[str, str] = {}
    propagate.inject(out)
    return out


@contextlib.contextmanager
def span(name: str, parent: Optional[dict[str, str]] = None, **attributes) -> Iterator[trace.Span]:
    """A span under the current one, or under the context in `parent` (a carrier or headers)."""
    ctx = propagate.extract(parent) if parent is not None else None
    with tracer().start_as_current_span(name, context=ctx, attributes=_clean(attributes)) as current:
        yield current


def timed_span(name: str, parent: dict[str, str], start_s: float, end_s: float, **attributes) -> None:
    """A span that has already happened, from unix times (a replica's queue wait, say)."""
    if not parent:
        return
    one = tracer().start_span(name, context=propagate.extract(parent), start_time=int(start_s * 1e9),
                              attributes=_clean(attributes))
    one.end(end_time=int(end_s * 1e9))


def annotate(scope: dict, **attributes) -> None:
    """Attributes on the request's server span (FastAPI's, which it keeps in the ASGI scope)."""
    telemetry = scope.get("fastapi.telemetry")
    server = getattr(telemetry, "span", None)
    if server is not None and server.is_recording():
        server.set_attributes(_clean(attributes))


def _clean(attributes: dict) -> dict:
    return {k: v for k, v in attributes.items() if v is not None}
