"""response_format through the openai SDK on the default SmolLM2 model: the answer is
valid JSON against the schema every time, because the decoder cannot write anything else.

Schemas bound every string, number and array: a 135M model held to a schema may
otherwise write digits or items until its token budget ends (constrained decoding
guarantees the shape of what is written, not that the model stops).
"""

import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jsonschema
import openai
import pytest
from helpers import at_once

WORD = {"type": "string", "maxLength": 30}
SCHEMAS = {
    "place": {"type": "object", "properties": {"name": WORD, "country": WORD,
              "population": {"type": "integer", "minimum": 0, "maximum": 50000000}},
              "required": ["name", "country", "population"], "additionalProperties": False},
    "person": {"type": "object", "properties": {"name": WORD, "born": {"type": "integer", "minimum": 1000, "maximum": 2025},
               "field": {"enum": ["science", "art", "politics", "sport", "other"]}},
               "required": ["name", "born", "field"], "additionalProperties": False},
    "review": {"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]},
               "score": {"type": "integer", "minimum": 0, "maximum": 10}},
               "required": ["sentiment", "score"], "additionalProperties": False},
    "list": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 20},
             "minItems": 1, "maxItems": 5}}, "required": ["items"], "additionalProperties": False},
    "book": {"type": "object", "properties": {"title": {"type": "string", "maxLength": 40},
             "author": {"type": "object", "properties": {"first": WORD, "last": WORD}, "required": ["first", "last"],
                        "additionalProperties": False},
             "fiction": {"type": "boolean"}}, "required": ["title", "author", "fiction"], "additionalProperties": False},
}
PROMPTS = [
    ("place", "Describe Paris."), ("place", "Tell me about Tokyo."), ("place", "What do you know about Cairo?"),
    ("place", "Describe the city of Lima."),
    ("person", "Who was Albert Einstein?"), ("person", "Tell me about Frida Kahlo."), ("person", "Who is Serena Williams?"),
    ("person", "Who was Abraham Lincoln?"),
    ("review", "Review: the food was cold and the waiter was rude."), ("review", "Review: best concert of my life!"),
    ("review", "Review: the hotel was fine, nothing special."), ("review", "Rate this movie: a slow but moving drama."),
    ("list", "Name some fruits."), ("list", "List the planets you know."), ("list", "What colours are in a rainbow?"),
    ("list", "Give me ideas for a picnic."),
    ("book", "Tell me about the novel Moby Dick."), ("book", "Describe the book A Brief History of Time."),
    ("book", "What is Pride and Prejudice?"), ("book", "Tell me about The Origin of Species."),
]


def schema_format(kind: str) -> dict:
    return {"type": "json_schema", "json_schema": {"name": kind, "schema": SCHEMAS[kind], "strict": True}}


def ask(sdk, llm, kind: str, prompt: str, temperature: float):
    return sdk.chat.completions.create(model=llm, messages=[{"role": "user", "content": prompt}], max_tokens=200,
                                       temperature=temperature, seed=7, response_format=schema_format(kind))


def test_json_schema_answers_validate_over_varied_prompts(sdk, llm):
    assert len(PROMPTS) >= 20
    # Half greedy, half sampled: the mask must hold whatever the sampler would pick.
    jobs = [(kind, prompt, 0.0 if i % 2 else 0.9) for i, (kind, prompt) in enumerate(PROMPTS)]
    # All at once: a replica runs 16 in one batch (max_num_seqs), the rest as places free up.
    answers = at_once(*(partial(ask, sdk, llm, *job) for job in jobs))
    for (kind, prompt, _), answer in zip(jobs, answers):
        choice = answer.choices[0]
        assert choice.finish_reason == "stop", (prompt, choice.message.content)
        jsonschema.validate(json.loads(choice.message.content), SCHEMAS[kind])


def test_completions_follow_a_schema_too(sdk, llm):
    r = sdk.completions.create(model=llm, prompt="A famous scientist, as JSON:", max_tokens=200, temperature=0,
                               extra_body={"response_format": schema_format("person")})
    jsonschema.validate(json.loads(r.choices[0].text), SCHEMAS["person"])


def test_json_object_answers_are_objects(sdk, llm):
    r = sdk.chat.completions.create(
        model=llm, max_tokens=200, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Reply in JSON with the keys 'city' and 'country' for Rome."}],
    )
    choice = r.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert isinstance(json.loads(choice.message.content), dict)


def test_constrained_and_free_rows_share_a_batch_without_leaking(sdk, llm):
    free = [{"role": "user", "content": "What is the capital of France?"}]
    alone = sdk.chat.completions.create(model=llm, messages=free, max_tokens=24, temperature=0)
    with ThreadPoolExecutor(4) as pool:
        constrained = [pool.submit(ask, sdk, llm, "place", "Describe Rome.", 0.0) for _ in range(3)]
        beside = pool.submit(sdk.chat.completions.create, model=llm, messages=free, max_tokens=24, temperature=0)
        assert beside.result().choices[0].message.content == alone.choices[0].message.content
        for future in constrained:
            jsonschema.validate(json.loads(future.result().choices[0].message.content), SCHEMAS["place"])


def test_streamed_json_is_the_same_json(sdk, llm):
    def streamed() -> str:
        stream = sdk.chat.completions.create(
            model=llm, messages=[{"role": "user", "content": "Review: a lovely little cafe."}], max_tokens=200,
            temperature=0, response_format=schema_format("review"), stream=True,
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    whole, joined = at_once(lambda: ask(sdk, llm, "review", "Review: a lovely little cafe.", 0.0), streamed)
    assert joined == whole.choices[0].message.content


@pytest.mark.parametrize(
    "response_format, names",
    [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "wat"}}}, "Invalid type: wat"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "(("}}}, "regex"),
        ({"type": "json_schema"}, "needs a 'json_schema' object"),
        ({"type": "yaml"}, "json_object"),
    ],
)
def test_a_schema_that_cannot_be_followed_is_400_naming_response_format(sdk, llm, response_format, names):
    with pytest.raises(openai.BadRequestError) as e:
        sdk.chat.completions.create(model=llm, messages=[{"role": "user", "content": "hi"}], max_tokens=8,
                                    response_format=response_format)
    assert "response_format" in e.value.message and names in e.value.message, e.value.message
