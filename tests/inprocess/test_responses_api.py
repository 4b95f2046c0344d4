"""OpenAI's Responses API through the openai SDK (`client.responses.create`, `.stream`,
`.retrieve`, `.delete`), as its users run it: text and item input, instructions,
previous_response_id over stored responses (one key's apart from another's), reasoning
items, the streamed events' order, and refusals by name. (Tools and structured output on
a real tokenizer: tests/served/test_responses_tools.py.)"""

import time

import openai
import pytest
from inprocess.local import LLM, THINKER

from serve_app.config.keys import ApiKey
from serve_app.governance.keys import record_of

QUESTION = "What is the capital of France?"


def test_a_text_input_answers_as_chat_does(sdk):
    r = sdk.responses.create(model=LLM, input=QUESTION, max_output_tokens=8)
    chat = sdk.chat.completions.create(model=LLM, messages=[{"role": "user", "content": QUESTION}], max_tokens=8)
    assert r.id.startswith("resp_") and r.object == "response" and r.model == LLM
    assert r.output_text == chat.choices[0].message.content
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.input_tokens == chat.usage.prompt_tokens and r.usage.output_tokens == 8


def test_instructions_and_item_input_are_the_conversation(sdk):
    items = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Paris."},
             {"role": "user", "content": [{"type": "input_text", "text": "And Italy?"}]}]
    r = sdk.responses.create(model=LLM, instructions="Be brief.", input=items, max_output_tokens=6)
    chat = sdk.chat.completions.create(model=LLM, max_tokens=6, messages=[{"role": "system", "content": "Be brief."},
                                       *items[:2], {"role": "user", "content": "And Italy?"}])
    assert r.output_text == chat.choices[0].message.content


def test_previous_response_id_continues_a_stored_conversation(sdk):
    first = sdk.responses.create(model=LLM, input=QUESTION, max_output_tokens=4)
    second = sdk.responses.create(model=LLM, input="And Italy?", previous_response_id=first.id, max_output_tokens=6)
    chat = sdk.chat.completions.create(model=LLM, max_tokens=6, messages=[
        {"role": "user", "content": QUESTION}, {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "And Italy?"}])
    assert second.output_text == chat.choices[0].message.content
    assert second.previous_response_id == first.id
    assert sdk.responses.retrieve(first.id).output_text == first.output_text
    sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model=LLM, input="again", previous_response_id=first.id)


def test_one_keys_responses_are_not_anothers(client, state):
    keys = [record_of(ApiKey(key="sk-a", id="a")), record_of(ApiKey(key="sk-b", id="b"))]
    with state(keys=keys):
        made = client.post("/v1/responses", json={"model": LLM, "input": "hi", "max_output_tokens": 2},
                           headers={"Authorization": "Bearer sk-a"}).json()
        assert client.get(f"/v1/responses/{made['id']}", headers={"Authorization": "Bearer sk-a"}).status_code == 200
        other = client.get(f"/v1/responses/{made['id']}", headers={"Authorization": "Bearer sk-b"})
        assert other.status_code == 404 and other.json()["error"]["type"] == "not_found_error"


def test_store_false_keeps_nothing(sdk):
    r = sdk.responses.create(model=LLM, input="hi", max_output_tokens=2, store=False)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(r.id)


def test_the_stream_comes_in_openais_order_and_ends_with_the_whole_response(sdk):
    whole = sdk.responses.create(model=LLM, input=QUESTION, max_output_tokens=8)
    with sdk.responses.stream(model=LLM, input=QUESTION, max_output_tokens=8) as stream:
        events = [e for e in stream]
    kinds = [e.type for e in events]
    final = events[-1].response  # cut at max_output_tokens: `response.incomplete`, as OpenAI's (the SDK's
    # get_final_response() takes only `response.completed`; tests/served has an answer that ends on its own)
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.incomplete"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == whole.output_text
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == whole.output_text


def test_a_reasoning_models_thinking_is_a_reasoning_item(sdk):
    r = sdk.responses.create(model=THINKER, input=QUESTION, max_output_tokens=12)
    chat = sdk.chat.completions.create(model=THINKER, max_tokens=12,
                                       messages=[{"role": "user", "content": QUESTION}]).choices[0].message
    assert [item.type for item in r.output] == ["reasoning", "message"]
    assert r.output[0].content[0].text == chat.reasoning and r.output_text == chat.content
    assert r.usage.output_tokens_details.reasoning_tokens == 7
    with sdk.responses.stream(model=THINKER, input=QUESTION, max_output_tokens=12) as stream:
        events = [e for e in stream]
    final = events[-1].response
    assert "response.reasoning_text.delta" in [e.type for e in events]
    assert final.output[0].content[0].text == chat.reasoning


LOGPROBS = ["message.output_text.logprobs"]


def test_a_reasoning_item_carries_encrypted_content_when_included_and_comes_back_as_input(sdk):
    r = sdk.responses.create(model=THINKER, input=QUESTION, max_output_tokens=12, store=False,
                             include=["reasoning.encrypted_content"])
    assert r.output[0].type == "reasoning" and r.output[0].encrypted_content
    assert sdk.responses.create(model=THINKER, input=QUESTION, max_output_tokens=12).output[0].encrypted_content is None
    # A client that keeps no state sends the items back, as the Agents SDK does with store=False.
    again = sdk.responses.create(model=THINKER, max_output_tokens=4, store=False, include=["reasoning.encrypted_content"],
                                 input=[{"role": "user", "content": QUESTION}, *[i.model_dump() for i in r.output],
                                        {"role": "user", "content": "Sure?"}])
    assert again.status in ("completed", "incomplete") and again.output


@pytest.mark.parametrize("extra, names", [
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"include": ["message.output_text.annotations"]}, "include"),
    ({"include": LOGPROBS, "tools": [{"type": "function", "name": "f", "parameters": {}}]}, "include"),
    ({"tools": [{"type": "web_search"}]}, "web_search"),
    ({"context_management": [{"type": "compaction", "compact_threshold": 1000}]}, "context_management"),
    ({"moderation": {"model": "omni-moderation-latest"}}, "moderation"),
    ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
    ({"truncation": "auto"}, "truncation"),
    ({"background": True, "stream": True}, "background"),
    ({"background": True, "store": False}, "background"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input_image"),
    ({"tool_choice": "required"}, "tool_choice"),
])
def test_what_cannot_be_done_is_a_400_naming_it(client, extra, names):
    r = client.post("/v1/responses", json={"model": LLM, "input": "hi", **extra})
    assert r.status_code == 400 and names in r.json()["error"]["message"], r.text


def test_a_responses_input_items_are_listed_and_paged_as_openais(sdk):
    """`client.responses.input_items.list` (#33): the response's own input, newest first by default,
    paged with `limit` and `after`; a continued conversation lists only its own new input."""
    items = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Paris."},
             {"role": "user", "content": [{"type": "input_text", "text": "And Italy?"}]}]
    r = sdk.responses.create(model=LLM, input=items, max_output_tokens=2)
    listed = sdk.responses.input_items.list(r.id)
    assert [i.role for i in listed.data] == ["user", "assistant", "user"][::-1]
    assert listed.data[0].content[0].text == "And Italy?" and listed.data[-1].content[0].text == QUESTION
    assert all(i.id.startswith("msg_") and i.type == "message" for i in listed.data) and not listed.has_more
    first = sdk.responses.input_items.list(r.id, order="asc", limit=2)
    assert [i.content[0].text for i in first.data] == [QUESTION, "Paris."] and first.has_more
    rest = sdk.responses.input_items.list(r.id, order="asc", after=first.data[-1].id)
    assert [i.content[0].text for i in rest.data] == ["And Italy?"] and not rest.has_more
    assert [i.id for i in sdk.responses.input_items.list(r.id, order="asc").data] == \
           [i.id for i in first.data + rest.data], "ids are the stored ones, the same each time"
    second = sdk.responses.create(model=LLM, input="And Spain?", previous_response_id=r.id, max_output_tokens=2)
    assert [i.content[0].text for i in sdk.responses.input_items.list(second.id).data] == ["And Spain?"]
    with pytest.raises(openai.NotFoundError):
        sdk.responses.input_items.list("resp_nope")


def wait_for_status(sdk, response_id: str, statuses: set[str], timeout_s: float = 20):
    deadline = time.monotonic() + timeout_s
    while (got := sdk.responses.retrieve(response_id)).status not in statuses:
        assert time.monotonic() < deadline, got.status
        time.sleep(0.1)
    return got


def test_a_background_response_is_queued_then_read_back_whole(sdk):
    """`background: true` (#33): answered at once, `queued`; `retrieve` then finds it in progress or
    done, and done it is the answer the same request gets in the foreground."""
    # 2,000 tokens: about a second at the simulated llm's rate, so its input is listed mid-way too.
    queued = sdk.responses.create(model=LLM, input=QUESTION, max_output_tokens=2000, background=True)
    assert queued.status == "queued" and queued.output == []
    listed_early = [i.id for i in sdk.responses.input_items.list(queued.id).data]
    assert sdk.responses.retrieve(queued.id).status in ("queued", "in_progress")
    done = wait_for_status(sdk, queued.id, {"completed", "incomplete"})
    foreground = sdk.responses.create(model=LLM, input=QUESTION, max_output_tokens=2000)
    assert done.output_text == foreground.output_text and done.usage.output_tokens == 2000
    listed = sdk.responses.input_items.list(queued.id).data
    assert [i.content[0].text for i in listed] == [QUESTION]
    assert [i.id for i in listed] == listed_early, "an input item keeps its id while its response moves on"


def test_cancelling_a_background_response_stops_it_and_a_finished_one_stays_as_it_is(sdk, client):
    running = sdk.responses.create(model=LLM, input=QUESTION, max_output_tokens=8000, background=True)
    wait_for_status(sdk, running.id, {"in_progress"})
    started = time.monotonic()
    cancelled = sdk.responses.cancel(running.id)
    assert cancelled.status == "cancelled" and time.monotonic() - started < 5, cancelled.status
    time.sleep(4.5)  # past when 8,000 tokens at 2,000/s would have ended: had the work gone on, it would say so
    assert sdk.responses.retrieve(running.id).status == "cancelled", "the generation went on after the cancel"

    finished = sdk.responses.create(model=LLM, input=QUESTION, max_output_tokens=4, background=True)
    done = wait_for_status(sdk, finished.id, {"completed", "incomplete"})
    assert sdk.responses.cancel(finished.id).status == done.status  # as OpenAI's: returned as it is

    plain = sdk.responses.create(model=LLM, input=QUESTION, max_output_tokens=4)
    refused = client.post(f"/v1/responses/{plain.id}/cancel")
    assert refused.status_code == 400 and "background" in refused.json()["error"]["message"]
