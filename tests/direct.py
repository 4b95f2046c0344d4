"""Direct calls to a model's deployment, past the ingress: what a client's answer is compared with.

The test process is a Ray driver (conftest's `serve_instance`), so it can call a
model's Serve deployment by handle, exactly as the ingress does but without any of
its parsing, dialects or HTTP. A client that gets the same text (at temperature 0),
the same vectors and the same counts as these calls got the model's true answer.
"""

from __future__ import annotations

from ray import serve

from serve_app.engine import ChatMessage, GenerationRequest, SamplingParams


def _handle(model: str, worker_type: str):
    return serve.get_deployment_handle(worker_type, app_name=model)


def generate(
    model: str, question: str = "", *, prompt: str | None = None, messages: list[dict] | None = None, **params
) -> str:
    """The whole answer to one user message, a conversation or a raw prompt; greedy unless told."""
    params.setdefault("temperature", 0)
    if prompt is None:
        messages = [ChatMessage(**m) for m in messages or [{"role": "user", "content": question}]]
    request = GenerationRequest(prompt=prompt, messages=messages, params=SamplingParams(**params))
    chunks = _handle(model, "llm").options(stream=True).generate_stream.remote(request)
    return "".join(chunk.text for chunk in chunks)


def embeddings(model: str, texts: list[str]) -> list[list[float]]:
    return _handle(model, "text2vec").embeddings.remote(texts).result().vectors


def rerank(model: str, query: str, documents: list[str]) -> list[float]:
    return _handle(model, "reranker").rerank.remote(query, documents).result().scores


def count_tokens(model: str, text: str) -> int:
    return _handle(model, "llm").count_token.remote(text).result()


def metadata(model: str, worker_type: str = "llm") -> dict:
    return _handle(model, worker_type).model_metadata.remote().result()
