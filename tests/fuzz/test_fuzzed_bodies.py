"""Fuzzed bodies on every generating and embedding route, in-process: generated from each route's
fields with values of any JSON type (tests/inprocess/test_bad_input.py has the named cases);
whatever the body, never a 5xx."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess.local import EMBEDDER, LLM, RERANKER

ROUTE_FIELDS = {
    "/v1/chat/completions": {"messages", "temperature", "top_p", "max_tokens", "stop", "n", "stream", "seed", "tools",
                             "tool_choice", "response_format", "logprobs", "top_logprobs", "logit_bias"},
    "/v1/completions": {"prompt", "temperature", "max_tokens", "stop", "echo", "n", "logprobs", "response_format",
                        "prompt_logprobs"},
    "/v1/embeddings": {"input", "encoding_format", "dimensions", "truncate_prompt_tokens"},
    "/v1/rerank": {"query", "documents", "top_n", "return_documents"},
    "/api/worker/generate": {"messages", "prompt", "temperature", "top_k", "max_new_tokens", "stop", "echo"},
    "/api/worker/embeddings": {"input", "query"},
    "/api/worker/count_token": {"prompt"},
    "/tokenize": {"prompt", "messages", "add_special_tokens"},
    "/v1/responses": {"input", "instructions", "temperature", "top_p", "max_output_tokens", "stream", "text"},
    "/v1/messages": {"messages", "system", "temperature", "top_p", "top_k", "max_tokens", "stream"},
}
TOKEN_FIELDS = {"max_tokens", "max_new_tokens", "max_output_tokens"}
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),  # JSON has neither
    st.text(max_size=20), st.sampled_from(["user", "human", "system", "wizard", ""]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["role", "content", "text", "type", "x"]), inner, max_size=3), max_leaves=12)


@st.composite
def bodies(draw):
    path = draw(st.sampled_from(sorted(ROUTE_FIELDS)))
    fields = ROUTE_FIELDS[path]
    body = {k: draw(values) for k in draw(st.sets(st.sampled_from(sorted(fields))))}
    body["model"] = draw(st.sampled_from([LLM, EMBEDDER, RERANKER, "no-such", 7]))
    for k in TOKEN_FIELDS & fields:  # keep any valid generation short: the budget is examples, not minutes
        body[k] = draw(st.sampled_from([-1, 0, 1, 2, 10**12, "many", None]))
    return path, body


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=bodies())
def test_fuzzed_bodies_never_get_a_server_error(client, case):
    path, body = case
    r = client.post(path, json=body)
    assert r.status_code < 500, (path, body, r.status_code, r.text[:300])
