"""`routing: prefix_affinity` and `routing: session` through Serve, seen the way a client
sees them: with the simulated engine's per-replica prefix cache, every later turn of a
conversation reports its earlier turns as cached (`usage.prompt_tokens_details.cached_tokens`,
as OpenAI and vLLM report it) only if it reached the replica that served them. Serve's
default routing is the control: it scatters the turns, and some miss."""

import openai
import pytest
from helpers import apply, router_log_lines, start_simulated

SYSTEM = " ".join(f"rule{i}" for i in range(48))  # three whole 16-token blocks
CONVERSATIONS, TURNS = 6, 4


def converse(sdk: openai.OpenAI, model: str, conversation: int, identify: str) -> list[int]:
    """One conversation of TURNS turns; the cached tokens each later turn reports."""
    # The conversation first: no two conversations share a whole leading block.
    messages, cached = [{"role": "system", "content": f"conversation {conversation}: {SYSTEM}"}], []
    for turn in range(TURNS):
        messages.append({"role": "user", "content": f"turn {turn} of conversation {conversation} " * 5})
        session = f"conversation-{conversation}"
        by = {"user": session} if identify == "user" else {"extra_headers": {"X-Session-Id": session}} \
            if identify == "header" else {}
        answer = sdk.chat.completions.create(model=model, messages=messages, max_tokens=4, **by)
        details = answer.usage.prompt_tokens_details
        assert details is not None, "the simulated engine with a prefix cache reports its hits"
        if turn:
            cached.append(details.cached_tokens)
        messages.append({"role": "assistant", "content": answer.choices[0].message.content})
    return cached


@pytest.mark.parametrize("routing, identify", [
    ("prefix_affinity", "none"), ("session", "user"), ("session", "header"), ("least_loaded", "none"),
])
def test_later_turns_find_their_prefix_cached_only_where_routing_keeps_them_together(client, base_url, routing,
                                                                                      identify):
    name = f"turns-{routing.replace('_', '-')}-{identify}"
    out = start_simulated(client, name, num_replicas=2, routing=routing, simulated_prefix_cache_tokens=8192)
    try:
        assert out["success"], out
        sdk = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=60)
        later = [hit for c in range(CONVERSATIONS) for hit in converse(sdk, name, c, identify)]
        assert len(later) == CONVERSATIONS * (TURNS - 1)
        if routing == "least_loaded":
            assert min(later) == 0, f"Serve's default routing sent no later turn to the other replica: {later}"
        else:
            # Serve passes over a replica that does not answer its queue-length probe in time (0.1 s),
            # and then takes the next in the router's order: on a machine at load 30 and more, `make
            # test` of 2026-12-07 saw one such miss. A miss is allowed only where Serve logged that.
            misses = [hit for hit in later if hit < 48]
            unanswered = [line for line in router_log_lines()
                          if "Failed to get queue length" in line and f"app='{name}'" in line]
            assert len(misses) <= len(unanswered), \
                f"a later turn missed the replica holding its conversation: {later}; unanswered probes: {unanswered}"
    finally:
        apply(client, model=name, apply_type="stop")
