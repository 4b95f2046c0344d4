"""Application args: validated at build time, and what the vllm engine derives from them."""

import pytest
from pydantic import ValidationError

from serve_app.config.workers import LLMArgs


def test_llm_args_refuse_unknown_fields():
    with pytest.raises(ValidationError, match="worker_class"):
        LLMArgs(source="x", worker_class="os.system")


def test_importing_the_vllm_engine_module_imports_no_vllm():
    """vLLM's spawned engine core re-imports the module that starts it: importing must do nothing."""
    import subprocess
    import sys

    code = "import sys, serve_app.engines.vllm.engine, deployments.llm; assert 'vllm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_vllm_engine_options_come_from_llm_args():
    from serve_app.engines.vllm.options import engine_options

    args = LLMArgs(source="x", engine="vllm", kv_cache_space_gib=2, context_length=4096,
                   vllm_kwargs={"enforce_eager": True})
    cpu = engine_options(args, "/models/m", "m", on_cpu=True)
    assert cpu["model"] == "/models/m" and cpu["served_model_name"] == "m"
    assert cpu["dtype"] == "float32" and cpu["max_model_len"] == 4096 and cpu["max_num_seqs"] == 16
    assert cpu["kv_cache_memory_bytes"] == 2 * 2**30 and cpu["enforce_eager"] is True
    gpu = engine_options(LLMArgs(source="x", engine="vllm", dtype="bfloat16"), "/models/m", "m", on_cpu=False)
    assert gpu["dtype"] == "bfloat16" and "kv_cache_memory_bytes" not in gpu and "max_model_len" not in gpu


def test_auto_dtype_is_the_checkpoints_where_the_device_computes_in_it(tmp_path):
    from serve_app.replica.dtype import checkpoint_dtype, resolve

    assert resolve("auto", "float32", "cuda", cuda_capability=(9, 0))[0] == "float32"  # a converted GGUF stays
    assert resolve("auto", "bfloat16", "cuda", cuda_capability=(9, 0))[0] == "bfloat16"
    assert resolve("auto", "bfloat16", "cuda", cuda_capability=(7, 5))[0] == "float32"  # emulated on a T4
    assert resolve("auto", "float16", "cuda", cuda_capability=(7, 5))[0] == "float16"
    assert resolve("auto", "bfloat16", "cpu", {"avx512f", "avx512_bf16"})[0] == "bfloat16"
    assert resolve("auto", "bfloat16", "cpu", {"avx2"}) == ("float32", "the checkpoint is bfloat16, which this CPU would emulate")
    assert resolve("float16", "bfloat16", "cpu")[0] == "float16"  # the args say
    (tmp_path / "config.json").write_text('{"torch_dtype": "bfloat16"}')
    assert checkpoint_dtype(str(tmp_path)) == "bfloat16" and checkpoint_dtype(str(tmp_path / "none")) is None


def test_vllm_kwargs_cannot_set_what_a_field_sets():
    with pytest.raises(ValidationError, match="trust_remote_code"):
        LLMArgs(source="x", engine="vllm", vllm_kwargs={"trust_remote_code": True})
    with pytest.raises(ValidationError, match="model"):
        LLMArgs(source="x", engine="vllm", vllm_kwargs={"model": "/elsewhere"})
