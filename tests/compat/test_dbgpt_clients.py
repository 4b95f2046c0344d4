"""DB-GPT's own client code, in every version we support, against the running ingress.

Each DB-GPT release runs in a venv of its own (`make compat` builds them under
.venv-compat/), through `dbgpt_driver.py`; every answer it got is compared here
with a direct call to the model's deployment (tests/helpers.py): the same text at
temperature 0, the same vectors, scores and counts.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from helpers import (
    EMBEDDER,
    LLM,
    RERANKER,
    ROOT,
    at_once,
    deploy,
    direct_count_tokens,
    direct_embeddings,
    direct_generate,
    direct_metadata,
    direct_rerank,
    wait_for_apps,
)

HERE = ROOT / "tests" / "compat"
# The newest release of each line that installs from PyPI. 0.6's wheel has no cluster
# clients (see dbgpt_driver.py); 0.7 and 0.8 run all of them.
VERSIONS = ["0.6.3", "0.7.5", "0.8.2"]
CLUSTER_VERSIONS = ["0.7.5", "0.8.2"]
QUESTION = "What is the capital of France?"
TEXTS = ["A cat sits on the mat.", "Stock markets fell sharply today."]
QUERY = "Where does the cat sit?"


def venv_bin(version: str, program: str) -> str:
    path = ROOT / ".venv-compat" / f"dbgpt-{version}" / "bin" / program
    assert path.exists(), f"{path} is missing: `make compat` builds the DB-GPT client venvs"
    return str(path)


def run_driver(version: str, tmp_path, *args: str) -> dict:
    out = tmp_path / f"dbgpt-{version}.json"
    done = subprocess.run(
        [venv_bin(version, "python"), str(HERE / "dbgpt_driver.py"), *args, str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["version"] == version
    return results


@pytest.fixture(scope="module")
def every_versions_calls(base_url, tmp_path_factory) -> dict[str, dict]:
    """Every read-only call of each DB-GPT version, made once for the whole module. The versions'
    drivers run at once: their generations share batches on the llm replica rather than taking
    turns, and greedy rows in a batch get their solo answers (test_served_batching.py)."""
    tmp = tmp_path_factory.mktemp("dbgpt")
    drivers = [lambda v=v: run_driver(v, tmp, "calls", base_url, LLM, EMBEDDER, RERANKER) for v in VERSIONS]
    return dict(zip(VERSIONS, at_once(*drivers)))


@pytest.fixture(scope="module", params=VERSIONS)
def calls(request, every_versions_calls) -> dict:
    return every_versions_calls[request.param]


@pytest.fixture(scope="module", params=CLUSTER_VERSIONS)
def cluster_calls(request, every_versions_calls) -> dict:
    return every_versions_calls[request.param]


def value(calls: dict, name: str):
    result = calls[name]
    assert result["ok"], f"DB-GPT {calls['version']} {name}: {result['error']}\n{result['trace']}"
    return result["value"]


def names(calls: dict, *candidates: str) -> list[str]:
    """The calls of this version among `candidates` (0.6 runs fewer); at least one."""
    present = [n for n in candidates if n in calls]
    assert present, f"none of {candidates} ran on DB-GPT {calls['version']}"
    return present


@pytest.fixture(scope="module")
def answer() -> str:
    return direct_generate(LLM, QUESTION)


def test_generate_is_the_models_greedy_answer(calls, answer):
    for name in names(calls, "worker.generate", "manager.generate", "client.generate", "dataclass.ModelOutput"):
        out = value(calls, name)
        assert out["error_code"] == 0 and out["finish_reason"] == "stop", name
        assert out["text"] == answer, name
        assert out["usage"]["completion_tokens"] > 0, name


def test_generate_stream_is_cumulative_and_ends_in_the_answer(calls, answer):
    for name in names(calls, "worker.generate_stream", "manager.generate_stream", "client.generate_stream",
                      "proxy.generate_stream"):
        frames = value(calls, name)
        texts = [f["text"] for f in frames]
        assert len(texts) > 2, name
        assert all(b.startswith(a) for a, b in zip(texts, texts[1:])), f"{name}: text is not cumulative: {texts}"
        assert texts[-1] == answer, name


def test_the_openai_proxy_client_gets_the_answer(calls, answer):
    # DB-GPT's proxy drops temperature 0 from its request (`if request.temperature:`), so
    # the driver asks for greedy decoding through its openai_kwargs, as a user must.
    assert value(calls, "proxy.generate")["text"] == answer


def test_embeddings_are_the_models_vectors(calls):
    expected = np.array(direct_embeddings(EMBEDDER, TEXTS))
    for name in names(calls, "worker.embeddings", "manager.embeddings", "remote_embeddings.aembed_documents",
                      "openapi_embeddings.embed_documents"):
        got = np.array(value(calls, name))
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_rerank_scores_are_the_models(calls):
    expected = direct_rerank(RERANKER, QUERY, TEXTS)
    for name in names(calls, "remote_rerank.apredict", "openapi_rerank.predict"):
        np.testing.assert_allclose(value(calls, name), expected, rtol=1e-5, err_msg=name)


def test_count_token_is_the_models_count(cluster_calls):
    expected = direct_count_tokens(LLM, QUESTION)
    # RemoteModelWorker sends no model name: the one running llm is meant.
    for name in ("worker.count_token", "manager.count_token", "client.count_token"):
        assert value(cluster_calls, name) == expected, name


def test_model_metadata_builds_dbgpts_dataclass(calls):
    expected = direct_metadata(LLM)
    for name in names(calls, "worker.model_metadata", "dataclass.ModelMetadata"):
        meta = value(calls, name)
        assert meta["model"] == LLM and meta["context_length"] == expected["context_length"], name


def test_the_llm_client_lists_models_by_their_metadata(cluster_calls):
    models = value(cluster_calls, "client.models")  # what a DB-GPT webserver lists
    assert [m["model"] for m in models] == [LLM]
    assert value(cluster_calls, "client.context_length") == direct_metadata(LLM)["context_length"]


def test_the_registry_and_the_manager_find_each_model_at_the_ingress(cluster_calls, base_url):
    [instance] = value(cluster_calls, "registry.instances")
    assert instance["model_name"] == f"{LLM}@llm" and instance["healthy"] is True
    port = int(base_url.rsplit(":", 1)[1])
    assert value(cluster_calls, "manager.select") == {"host": "127.0.0.1", "port": port, "worker_key": f"{LLM}@llm"}


def test_instances_lead_to_the_ingress(calls, base_url):
    port = int(base_url.rsplit(":", 1)[1])
    listed = value(calls, *names(calls, "registry.all_instances", "dataclass.ModelInstance"))
    keys = {i["model_name"] for i in listed}
    # The worker manager service is how DB-GPT finds where to send startup and shutdown.
    assert {"WorkerManager@service", f"{LLM}@llm", f"{EMBEDDER}@text2vec", f"{RERANKER}@reranker"} <= keys
    assert all((i["host"], i["port"]) == ("127.0.0.1", port) for i in listed)


def test_supported_models_carry_their_parameters(calls):
    [worker] = value(calls, *names(calls, "manager.supported_models", "dataclass.WorkerSupportedModel"))
    models = {m["model"]: m for m in worker["models"]}
    assert {LLM, EMBEDDER, RERANKER} <= set(models)
    llm = models[LLM]
    assert llm["worker_type"] == "llm" and llm["enabled"] is True and llm["path_exist"] is True
    params = {p["param_name"]: p for p in llm["params"]}
    assert params["source"]["default_value"] == llm["path"]  # what the model runs with
    assert params["max_new_tokens"]["param_type"] == "int"


# --- management: DB-GPT's RemoteWorkerManager and its command line ------------------------


def serve_apps() -> set[str]:
    from ray import serve

    return set(serve.status().applications)


@pytest.mark.parametrize("version", CLUSTER_VERSIONS)
def test_remote_worker_manager_starts_restarts_and_stops_a_model(version, base_url, tmp_path):
    model = f"dbgpt-managed-{version.replace('.', '-')}"
    results = run_driver(version, tmp_path, "manage", base_url, model, "simulated")
    assert results["startup"]["ok"], results["startup"]["error"]
    # A refusal must raise in DB-GPT's client, which reads only the HTTP status.
    assert not results["startup_again"]["ok"] and "already exists" in results["startup_again"]["error"]
    assert not results["startup_bad_params"]["ok"] and "no_such" in results["startup_bad_params"]["error"]
    restart = value(results, "apply_restart")
    assert restart["success"] is True and model in restart["message"]
    assert results["shutdown"]["ok"], results["shutdown"]["error"]
    assert not results["shutdown_again"]["ok"] and "does not exist" in results["shutdown_again"]["error"]
    assert model not in serve_apps()


def dbgpt_cli(version: str, base_url: str, *args: str, stdin: str = "", timeout: float = 400):
    return subprocess.run(
        [venv_bin(version, "dbgpt"), "model", "--address", base_url, *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, env={**os.environ, "TERM": "dumb"},
    )


@pytest.mark.parametrize("version", CLUSTER_VERSIONS)
def test_dbgpt_model_list_and_chat(version, base_url):
    listing = dbgpt_cli(version, base_url, "list")
    assert listing.returncode == 0, listing.stderr[-2000:]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in listing.stdout.splitlines() if line.startswith("|")]
    header, *instances = rows
    assert header[:2] == ["Model Name", "Model Type"]
    assert {(r[0], r[1], r[4]) for r in instances} >= {(LLM, "llm", "True"), (EMBEDDER, "text2vec", "True"),
                                                       ("WorkerManager", "service", "True")}

    chat = dbgpt_cli(version, base_url, "chat", "-m", LLM, stdin=f"{QUESTION}\n/exit\n")
    assert chat.returncode == 0, chat.stderr[-2000:]
    # The chat command samples at DB-GPT's default temperature (0.5) and offers no way to
    # change it, so its answer is checked for being whole, not against a greedy call.
    reply = chat.stdout.split("Bot: ", 1)[1].split("You: ", 1)[0].strip()
    assert reply and "Error" not in reply, chat.stdout[-2000:]


@pytest.mark.parametrize("version", CLUSTER_VERSIONS)
def test_dbgpt_model_stop_start_restart(version, base_url, client):
    # An llm with no weights (the simulated engine): what is checked is the lifecycle.
    model = f"dbgpt-cli-{version.replace('.', '-')}"
    started = client.post("/api/worker/models/startup", timeout=400, json={
        "model": model, "worker_type": "llm", "params": {"model_path": "simulated", "engine": "simulated"}})
    assert started.status_code == 200, started.text
    host, port = "127.0.0.1", base_url.rsplit(":", 1)[1]
    try:
        stop = dbgpt_cli(version, base_url, "stop", "--model_name", model, "--model_type", "llm",
                         "--host", host, "--port", port)
        assert stop.returncode == 0, stop.stderr[-2000:]
        assert model not in serve_apps()
        supports = client.get("/api/worker/models/supports").json()[0]["models"]
        assert {m["model"]: m["enabled"] for m in supports}[model] is False  # stopped, still startable

        # `dbgpt model start` discovers the model and its parameters from /models/supports.
        start = dbgpt_cli(version, base_url, "start", "--model_name", model)
        assert start.returncode == 0, start.stderr[-2000:]
        assert model in serve_apps()
        answer = client.post("/api/worker/generate", json={"model": model, "prompt": QUESTION, "max_new_tokens": 4})
        assert answer.json()["error_code"] == 0 and answer.json()["text"], answer.text  # as it was: simulated

        restart = dbgpt_cli(version, base_url, "restart", "--model_name", model, "--model_type", "llm")
        assert restart.returncode == 0 and "success=True" in restart.stdout, restart.stdout + restart.stderr[-2000:]

        unknown = dbgpt_cli(version, base_url, "stop", "--model_name", "no-such-model", "--model_type", "llm",
                            "--host", host, "--port", port)
        assert unknown.returncode != 0 and "does not exist" in unknown.stderr
    finally:
        client.post("/api/worker/models/shutdown", json={"model": model, "worker_type": "llm"}, timeout=400)
    assert model not in serve_apps()


@pytest.fixture(scope="module")
def lora_base(serve_instance) -> str:
    """A simulated base with one LoRA adapter (config/lora.py), deployed once for every version."""
    app = {"name": "dbgpt-lora-base", "route_prefix": None, "import_path": "deployments.llm:build_app",
           "args": {"source": "simulated", "engine": "simulated", "lora_modules": {"dbgpt-lora": "/nowhere"}},
           "deployments": [{"name": "llm", "ray_actor_options": {"num_cpus": 0.01}}]}
    deploy({**serve_instance, "applications": serve_instance["applications"] + [app]})
    try:
        wait_for_apps([app["name"]])
        yield app["name"]
    finally:
        deploy(serve_instance)


@pytest.mark.parametrize("version", CLUSTER_VERSIONS)
def test_a_lora_adapter_is_a_model_to_dbgpts_clients(version, base_url, client, lora_base, tmp_path):
    """DB-GPT's worker, registry and LLM client reach an adapter by its name and get what our
    worker route answers for it, not the base's answer."""
    ask = {"messages": [{"role": "human", "content": QUESTION}], "temperature": 0}  # as DB-GPT's request
    ours = client.post("/api/worker/generate", json={**ask, "model": "dbgpt-lora"}).json()
    base = client.post("/api/worker/generate", json={**ask, "model": lora_base}).json()
    assert ours["error_code"] == 0 and ours["text"] != base["text"]
    results = run_driver(version, tmp_path, "adapter", base_url, "dbgpt-lora")
    for name in ("worker.generate", "client.generate"):
        out = value(results, name)
        assert out["error_code"] == 0 and out["text"], name
    assert value(results, "worker.generate")["text"] == value(results, "client.generate")["text"] == ours["text"]
    assert [i["model_name"] for i in value(results, "registry.instances")] == ["dbgpt-lora@llm"]
