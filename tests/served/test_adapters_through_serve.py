"""LoRA adapters through Serve (config/lora.py, deployments/llm.py): two adapters built here
with peft on the default model's weights, declared in a base's `lora_modules`, reached by
their own names through the openai SDK; Serve's multiplexing loads them into the base's
replica on demand and keeps one at a time (`max_loras: 1`), so every switch evicts one,
while requests for both run at once."""

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from adapters import make_adapter
from helpers import LLM, LLM_SOURCE, deploy, replicas, wait_for_apps, wait_until

BASE = "lora-base"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def adapters(serve_instance, client, tmp_path_factory):
    home = tmp_path_factory.mktemp("lora")
    paths = {"sql-lora": make_adapter(home / "sql", seed=1), "poet-lora": make_adapter(home / "poet", seed=2),
             "broken-lora": str(home / "never-written")}
    app = {"name": BASE, "route_prefix": None, "import_path": "deployments.llm:build_app",
           "args": {"source": LLM_SOURCE, "max_new_tokens": 32, "lora_modules": paths, "max_loras": 1},
           "deployments": [{"name": "llm", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1}}]}
    deploy({**serve_instance, "applications": serve_instance["applications"] + [app]})
    try:
        wait_for_apps([BASE])
        # Deployed outside the manager (as `serve deploy` is): the ingress's table has it at the
        # manager's next read of Serve's state, a second on an idle machine. Under `make test` this
        # fixture runs as the other lanes start their Serves and clusters on the same 2 cores, and
        # CI once saw more than 30 s here (stop 51), so it allows two minutes.
        wait_until(lambda: adapters_listed(client), 120, "the adapters in /v1/models")
        yield paths
    finally:
        deploy(serve_instance)


def adapters_listed(client) -> list[str]:
    answer = client.get("/v1/models")
    ids = [m["id"] for m in answer.json().get("data", [])]
    if "sql-lora" not in ids:  # what the ingress lists instead, for wait_until's message
        raise ValueError(f"{answer.status_code}, listed {ids or answer.text[:200]}")
    return ids


def ask(sdk, model: str) -> str:
    answer = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}],
                                         max_tokens=12, temperature=0)
    return answer.choices[0].message.content


def test_adapters_are_models_of_their_own_and_answer_as_their_weights_do(sdk, adapters):
    cards = {m.id: m for m in sdk.models.list().data}
    assert cards["sql-lora"].parent == BASE and cards["poet-lora"].parent == BASE
    assert cards[BASE].parent is None and cards[LLM].parent is None
    base, sql, poet = ask(sdk, BASE), ask(sdk, "sql-lora"), ask(sdk, "poet-lora")
    assert base == ask(sdk, LLM), "the base alone answers as the same weights served without adapters"
    assert len({base, sql, poet}) == 3, "each adapter changes the answer its own way"
    # One adapter held at a time: each switch evicts the other, and answers stay each one's own.
    assert [ask(sdk, m) for m in ["sql-lora", "poet-lora", "sql-lora", BASE]] == [sql, poet, sql, base]
    with ThreadPoolExecutor(6) as pool:  # both adapters and the base at once, on one replica
        together = list(pool.map(lambda m: ask(sdk, m), ["sql-lora", "poet-lora", BASE] * 2))
    assert together == [sql, poet, base] * 2


def test_an_adapter_that_cannot_load_is_a_400_naming_it_and_the_base_serves(client, adapters):
    body = {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 4}
    refused = client.post("/v1/chat/completions", json={**body, "model": "broken-lora"})
    assert refused.status_code == 400, refused.text
    assert "broken-lora" in refused.json()["error"]["message"] and "never-written" in refused.json()["error"]["message"]
    assert client.post("/v1/chat/completions", json={**body, "model": BASE}).status_code == 200
    assert client.post("/v1/chat/completions", json={**body, "model": "sql-lora"}).status_code == 200


def test_vllms_routes_add_and_remove_an_adapter_while_the_base_serves_on(client, sdk, adapters, tmp_path):
    """As vLLM's users call them (curl, requests: the openai SDK has no method for these)."""
    late = make_adapter(tmp_path / "late", seed=3)
    before, base, sql = replicas(BASE), ask(sdk, BASE), ask(sdk, "sql-lora")
    loaded = client.post("/v1/load_lora_adapter", json={"lora_name": "late-lora", "lora_path": late, "base_model": BASE})
    assert loaded.status_code == 200 and "added successfully" in loaded.text, loaded.text
    cards = {m.id: m for m in sdk.models.list().data}
    assert cards["late-lora"].parent == BASE
    assert ask(sdk, "late-lora") not in {base, sql}
    assert (ask(sdk, BASE), ask(sdk, "sql-lora")) == (base, sql), "the others answer as before"
    assert replicas(BASE) == before, "no replica of the base restarted"

    refused = {
        "again": client.post("/v1/load_lora_adapter", json={"lora_name": "late-lora", "lora_path": late, "base_model": BASE}),
        "a model's name": client.post("/v1/load_lora_adapter", json={"lora_name": LLM, "lora_path": late, "base_model": BASE}),
        "no files": client.post("/v1/load_lora_adapter", json={"lora_name": "x-lora", "lora_path": str(tmp_path / "none"),
                                                                "base_model": BASE}),
        "no such base": client.post("/v1/load_lora_adapter", json={"lora_name": "y-lora", "lora_path": late,
                                                                    "base_model": "no-such-llm"}),
    }
    assert {k: r.status_code for k, r in refused.items()} == {"again": 400, "a model's name": 400, "no files": 400,
                                                               "no such base": 404}
    assert "already been loaded" in refused["again"].text and "already the name of a model" in refused["a model's name"].text
    assert "adapter_config.json" in refused["no files"].text

    unloaded = client.post("/v1/unload_lora_adapter", json={"lora_name": "late-lora"})
    assert unloaded.status_code == 200 and "removed successfully" in unloaded.text, unloaded.text
    assert client.post("/v1/unload_lora_adapter", json={"lora_name": "late-lora"}).status_code == 404
    with pytest.raises(openai.NotFoundError):
        ask(sdk, "late-lora")
    assert ask(sdk, "sql-lora") == sql and replicas(BASE) == before


def test_serve_sends_an_adapters_requests_to_the_replica_that_holds_it(client, serve_instance):
    """Two replicas of a simulated base holding one adapter each at most: once each adapter has
    answered, every call for it goes where it is loaded (its model_metadata names the replica)."""
    app = {"name": "sim-lora-base", "route_prefix": None, "import_path": "deployments.llm:build_app",
           "args": {"source": "simulated", "engine": "simulated", "max_loras": 1,
                    "lora_modules": {"sim-a": "/nowhere/a", "sim-b": "/nowhere/b"}},
           "deployments": [{"name": "llm", "num_replicas": 2, "ray_actor_options": {"num_cpus": 0.01}}]}
    deploy({**serve_instance, "applications": serve_instance["applications"] + [app]})
    try:
        wait_for_apps([app["name"]])
        body = {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 4}

        def replica_of(model: str) -> str:
            meta = client.post("/api/worker/model_metadata", json={"model": model}).json()
            return meta["metadata"]["replica_id"]

        answers = {}
        for model in ("sim-a", "sim-b"):
            answers[model] = client.post("/v1/chat/completions", json={**body, "model": model}).json()
            # Until the handle has heard where it was loaded (replicas report their adapters to
            # Serve's controller, which tells every handle): then its calls all go there.
            wait_until(lambda m=model: len({replica_of(m) for _ in range(6)}) == 1, 30, f"{model}'s calls to settle")
        assert answers["sim-a"]["choices"][0]["message"]["content"] != answers["sim-b"]["choices"][0]["message"]["content"]
        held = {m: {replica_of(m) for _ in range(8)} for m in ("sim-a", "sim-b")}
        assert all(len(ids) == 1 for ids in held.values()), held
        assert held["sim-a"] != held["sim-b"], "each on its own replica: neither evicts the other"
    finally:
        deploy(serve_instance)
