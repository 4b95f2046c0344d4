"""Anthropic's Messages API through the `anthropic` SDK, as its users run it: a message, its
stream of events, a system prompt and several turns, stop sequences, thinking blocks,
keys from x-api-key, and errors in Anthropic's shape. (Tool use on a real tokenizer:
tests/served/test_messages_api_tools.py.)"""

import json

import anthropic
import pydantic
import pytest
from inprocess.local import LLM, THINKER

USER = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def claude(client):
    return anthropic.Anthropic(base_url="http://127.0.0.1", api_key="unused", http_client=client, max_retries=0)


def test_a_message_is_the_models_answer_with_its_usage(claude, sdk):
    m = claude.messages.create(model=LLM, max_tokens=8, messages=USER)
    assert m.type == "message" and m.role == "assistant" and m.model == LLM and m.id.startswith("msg_")
    assert [b.type for b in m.content] == ["text"] and m.stop_reason == "max_tokens"
    chat = sdk.chat.completions.create(model=LLM, max_tokens=8, messages=USER)
    assert m.content[0].text == chat.choices[0].message.content  # the same model, the same answer
    assert m.usage.input_tokens == chat.usage.prompt_tokens and m.usage.output_tokens == 8


def test_system_prompt_and_turns_reach_the_model(claude, sdk):
    turns = USER + [{"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Italy?"}]
    m = claude.messages.create(model=LLM, max_tokens=6, system="Answer briefly.", messages=turns)
    chat = sdk.chat.completions.create(model=LLM, max_tokens=6,
                                       messages=[{"role": "system", "content": "Answer briefly."}] + turns)
    assert m.content[0].text == chat.choices[0].message.content


def test_a_stop_sequence_ends_the_answer_and_is_named(claude):
    whole = claude.messages.create(model=LLM, max_tokens=12, messages=USER).content[0].text
    stop = whole.split()[3]
    m = claude.messages.create(model=LLM, max_tokens=12, messages=USER, stop_sequences=[stop])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == stop
    assert stop not in m.content[0].text and whole.startswith(m.content[0].text)


def test_the_stream_is_anthropics_events_and_joins_to_the_message(claude):
    whole = claude.messages.create(model=LLM, max_tokens=10, messages=USER)
    with claude.messages.stream(model=LLM, max_tokens=10, messages=USER) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.content[0].text == whole.content[0].text and final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 10


def test_thinking_comes_as_a_signed_thinking_block_first(claude, sdk):
    m = claude.messages.create(model=THINKER, max_tokens=12, messages=USER)
    assert [b.type for b in m.content] == ["thinking", "text"]
    chat = sdk.chat.completions.create(model=THINKER, max_tokens=12, messages=USER).choices[0].message
    assert m.content[0].thinking == chat.reasoning and m.content[1].text == chat.content
    assert m.content[0].signature
    with claude.messages.stream(model=THINKER, max_tokens=12, messages=USER) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[0].thinking == chat.reasoning
    hidden = claude.messages.create(model=THINKER, max_tokens=12, messages=USER, thinking={"type": "disabled"})
    assert [b.type for b in hidden.content] == ["text"]
    # Thinking sent back in the next turn is accepted (and dropped from the prompt).
    again = claude.messages.create(model=THINKER, max_tokens=4, messages=USER + [
        {"role": "assistant", "content": [b.model_dump() for b in m.content]}, {"role": "user", "content": "Sure?"}])
    assert again.content


@pytest.mark.parametrize("extra, names", [
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "image"),
    ({"mcp_servers": [{"url": "x"}]}, "mcp_servers"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tools"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
])
def test_what_cannot_be_done_is_a_400_naming_it_in_anthropics_shape(claude, extra, names):
    body = {"model": LLM, "max_tokens": 4, "messages": USER, **extra}
    known = {k: body.pop(k) for k in list(body) if k in ("model", "max_tokens", "messages", "tools", "tool_choice")}
    with pytest.raises(anthropic.BadRequestError, match=names) as e:
        claude.messages.create(**known, extra_body=body)
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "invalid_request_error"


def test_an_unknown_model_is_anthropics_not_found(claude):
    with pytest.raises(anthropic.NotFoundError) as e:
        claude.messages.create(model="no-such-model", max_tokens=4, messages=USER)
    assert e.value.body["error"]["type"] == "not_found_error" and LLM in e.value.body["error"]["message"]


def test_keys_come_from_x_api_key_as_anthropics_clients_send_them(client, state):
    from serve_app.config.keys import ApiKey
    from serve_app.governance.keys import record_of

    with state(keys=[record_of(ApiKey(key="sk-claude"))]):
        r = client.post("/v1/messages", json={"model": LLM, "max_tokens": 2, "messages": USER})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        ok = client.post("/v1/messages", json={"model": LLM, "max_tokens": 2, "messages": USER},
                         headers={"x-api-key": "sk-claude", "anthropic-version": "2023-06-01"})
        assert ok.status_code == 200 and ok.json()["content"]


def test_count_tokens_on_a_model_without_a_vocabulary_says_so(claude):
    with pytest.raises(anthropic.BadRequestError, match="vocabulary"):
        claude.messages.count_tokens(model=LLM, messages=USER)


@pytest.mark.parametrize("model", [LLM, THINKER])
def test_the_anthropic_sdks_own_types_take_the_message_and_every_event_strictly(client, model):
    # The SDK reads leniently (a missing key goes unnoticed); its pydantic types say what Anthropic
    # sends. A thinking block's start lacked `signature` (its delta comes at the block's end).
    body = {"model": model, "max_tokens": 12, "messages": USER}
    found = []

    def strict(model_type, answer) -> None:
        try:
            pydantic.TypeAdapter(model_type).validate_python(answer)
        except pydantic.ValidationError as exc:
            found.append(f"{answer.get('type')}: {str(exc)[:300]}")

    strict(anthropic.types.Message, client.post("/v1/messages", json=body).json())
    with client.stream("POST", "/v1/messages", json={**body, "stream": True}) as answer:
        events = [json.loads(line[6:]) for line in answer.iter_lines() if line.startswith("data: {")]
    for event in events:
        strict(anthropic.types.RawMessageStreamEvent, event)
    assert len(events) > 4 and found == [], found


def test_output_config_is_read_a_schema_on_an_engine_that_cannot_follow_one_and_other_efforts_are_400s(claude):
    # The schema itself is followed on a real tokenizer: tests/compat/test_agents_and_anthropic.py.
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    for config, names in [({"format": {"type": "json_schema", "schema": schema}}, "schema"),
                          ({"effort": "low"}, "effort")]:
        with pytest.raises(anthropic.BadRequestError, match=names):
            claude.messages.create(model=LLM, max_tokens=8, messages=USER, output_config=config)
    assert claude.messages.create(model=LLM, max_tokens=8, messages=USER, output_config={"effort": "high"})
    with pytest.raises(anthropic.BadRequestError, match="output_config.format"):
        claude.messages.create(model=LLM, max_tokens=8, messages=USER, tool_choice={"type": "any"},
                               tools=[{"name": "w", "input_schema": schema}],
                               output_config={"format": {"type": "json_schema", "schema": schema}})
