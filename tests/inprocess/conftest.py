"""The in-process tier: the ingress's FastAPI app (serve_app/ingress/app.py) driven through
Starlette's TestClient, over models that run in this process (local.py): no Ray.

One app and one TestClient serve the whole session: the models' `@serve.batch`
queues and the engines' clocks belong to the event loop they first ran on, which is
the TestClient's. A test that needs keys or other limits swaps the app's state for
its duration (`state`), as a replica's own config would set it.
"""

from __future__ import annotations

import contextlib
import sys

import openai
import pytest
from fastapi.testclient import TestClient
from inprocess.local import (
    EMBEDDER,
    LLM,
    MATRYOSHKA,
    MINILM,
    QUEUED,
    RERANKER,
    SHORT,
    SIMULATED,
    STARTING,
    THINKER,
    LocalRegistry,
    ServedApp,
    app_state,
    worker,
)

from deployments.llm import LLMWorker
from deployments.reranker import RerankerWorker
from deployments.text2vec import Text2VecWorker
from serve_app.config.router import RequestLimits
from serve_app.config.workers import LLMArgs, RerankerArgs, Text2VecArgs
from serve_app.dialects.responses.store import ResponseStore
from serve_app.governance.keys import KeyRecord
from serve_app.ingress.app import configure, create_app
from serve_app.kv import MemoryStore


@pytest.fixture(autouse=True)
def no_ray():
    """No test here may start Ray: a Ray API called outside a replica starts a cluster of its own,
    or hangs joining the one an earlier `ray start` recorded on this machine."""
    yield
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized(), "this test started Ray"


@pytest.fixture(scope="session", autouse=True)
def batching_outside_a_replica():
    """`@serve.batch` works in any event loop, but its queue's constructor reads the replica's
    max_ongoing_requests to log a sizing warning; outside a replica there is none to read."""
    from ray.serve.batching import _BatchQueue

    check = _BatchQueue._warn_if_max_batch_size_exceeds_max_ongoing_requests
    _BatchQueue._warn_if_max_batch_size_exceeds_max_ongoing_requests = lambda self: None
    yield
    _BatchQueue._warn_if_max_batch_size_exceeds_max_ongoing_requests = check


@pytest.fixture(scope="session")
def registry() -> LocalRegistry:
    llm = {**SIMULATED}
    short = {**SIMULATED, "context_length": 40, "fallbacks": [LLM]}
    starting = {**SIMULATED, "fallbacks": [LLM]}
    thinker = {**SIMULATED, "simulated_thinking_tokens": 5, "reasoning_parser": "qwen3"}
    queued = {**SIMULATED, "simulated_tokens_per_s": 200, "max_num_seqs": 1,
              "queue": {band: {"max_queue": 3, "max_wait_s": 30} for band in ("interactive", "standard", "batch")}}
    text2vec = {"source": MINILM}
    reranker = {"source": MINILM, "method": "embedding_similarity"}
    embedder = worker(Text2VecWorker, Text2VecArgs, text2vec)
    return LocalRegistry({
        LLM: ("llm", worker(LLMWorker, LLMArgs, llm), llm),
        SHORT: ("llm", worker(LLMWorker, LLMArgs, short), short),
        STARTING: ("llm", None, starting),
        THINKER: ("llm", worker(LLMWorker, LLMArgs, thinker), thinker),
        QUEUED: ("llm", worker(LLMWorker, LLMArgs, queued), queued),
        EMBEDDER: ("text2vec", embedder, text2vec),
        MATRYOSHKA: ("text2vec", embedder, {**text2vec, "matryoshka": True}),
        RERANKER: ("reranker", worker(RerankerWorker, RerankerArgs, reranker), reranker),
    }, stopped=(STARTING,))


RESPONSES = ResponseStore(MemoryStore())  # stored responses outlive a test's own keys, as in GCS


@pytest.fixture(scope="session")
def app(registry):
    ServedApp.app = create_app(**_default_state(registry))
    return ServedApp.app


def _default_state(registry, keys: list[KeyRecord] = (), limits: RequestLimits = RequestLimits(),
                   open_docs: bool = False) -> dict:
    return app_state(registry, RESPONSES, keys, limits, open_docs)


@pytest.fixture(scope="session")
def client(app):
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="session")
def sdk(client):
    """The openai SDK, as users run it, over the in-process app."""
    return openai.OpenAI(base_url="http://127.0.0.1/v1", api_key="unused", http_client=client, max_retries=0)


@pytest.fixture
def state(app, registry):
    """`state(keys=..., limits=...)`: the app runs with these until the test ends."""

    @contextlib.contextmanager
    def using(**settings):
        configure(app, **_default_state(registry, **settings))
        try:
            yield
        finally:
            configure(app, **_default_state(registry))

    return using
