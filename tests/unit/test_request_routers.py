"""The pure parts of routing: what a request's prefix and session are, how sessions map
to replicas, and the simulated engine's prefix cache. (Through Serve, with real replicas:
tests/served/test_routing_policies.py.)"""

from types import SimpleNamespace

from deployments.request_routers import ROUTERS, rendezvous, request_text, session_of
from serve_app.engines.base import ChatMessage, GenerationRequest
from serve_app.engines.simulated.prefix_cache import BLOCK, PrefixCache


def pending(*args):
    return SimpleNamespace(args=args)


def replicas(*ids):
    return [SimpleNamespace(replica_id=SimpleNamespace(unique_id=i)) for i in ids]


def test_a_chat_prefix_grows_with_its_turns():
    first = [ChatMessage(role="user", content="hello")]
    later = first + [ChatMessage(role="assistant", content="hi"), ChatMessage(role="user", content="more")]
    one, two = (request_text(pending(GenerationRequest(messages=m))) for m in (first, later))
    assert two.startswith(one) and len(two) > len(one)


def test_prompts_and_chats_never_share_a_prefix_and_text_is_never_empty():
    chat = request_text(pending(GenerationRequest(messages=[ChatMessage(role="user", content="")])))
    prompt = request_text(pending(GenerationRequest(prompt="")))
    assert chat and prompt and not chat.startswith(prompt) and not prompt.startswith(chat)
    assert request_text(pending("not a generation request"))


def test_the_session_is_read_from_the_request():
    assert session_of(pending(GenerationRequest(prompt="x", session="alice"))) == "alice"
    assert session_of(pending(GenerationRequest(prompt="x"))) == ""
    assert session_of(None) == ""


def test_a_new_replica_takes_sessions_only_from_the_others_never_moves_them_between_them():
    sessions = [f"s{i}" for i in range(400)]
    before = {s: rendezvous(s, replicas("a", "b", "c"))[0].replica_id.unique_id for s in sessions}
    after = {s: rendezvous(s, replicas("a", "b", "c", "d"))[0].replica_id.unique_id for s in sessions}
    moved = {s for s in sessions if before[s] != after[s]}
    assert all(after[s] == "d" for s in moved)
    assert 60 < len(moved) < 140  # about a quarter of them
    assert 80 < sum(1 for s in sessions if before[s] == "a") < 190  # spread: about a third each


def test_every_routing_name_is_a_serve_request_router_config():
    from ray.serve.config import RequestRouterConfig

    for name, config in ROUTERS.items():
        RequestRouterConfig(**config)  # raises on a class path Serve cannot import
    assert set(ROUTERS) == {"least_loaded", "random", "prefix_affinity", "session"}


def test_the_prefix_cache_finds_whole_leading_blocks_only():
    cache = PrefixCache(capacity_tokens=1000)
    history = [f"w{i}" for i in range(40)]
    assert cache.prefill(history) == 0
    assert cache.prefill(history + ["next", "turn"]) == 2 * BLOCK  # 40 tokens = two whole blocks
    assert cache.prefill(["other"] + history) == 0  # a different first token: no prefix in common


def test_the_prefix_cache_forgets_the_least_recently_used_prompt():
    cache = PrefixCache(capacity_tokens=2 * BLOCK)
    one, two = [f"a{i}" for i in range(BLOCK)], [f"b{i}" for i in range(BLOCK)]
    cache.prefill(one)
    cache.prefill(two)
    assert cache.prefill(one) == BLOCK  # both fit; `one` is now the most recent
    cache.prefill([f"c{i}" for i in range(BLOCK)])  # evicts `two`
    assert cache.prefill(two) == 0 and cache.prefill(one) == 0  # two back in evicts one (LRU)
