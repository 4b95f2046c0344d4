"""How a model's chunks become each dialect's stream: SSE frames, NUL-framed ModelOutputs,
and how a stream ends when it breaks. Fed by a scripted stream, no model or Ray."""

import asyncio
import json

from serve_app.dialects.dbgpt import serving as dbgpt_serving
from serve_app.dialects.dbgpt.protocol import PromptRequest
from serve_app.dialects.openai import serving as openai_serving
from serve_app.dialects.openai.protocol import ChatCompletionRequest, CompletionRequest
from serve_app.engines.base import GenerationChunk
from serve_app.engines.stop_strings import find_stop, held_back
from serve_app.serving.streams import OpenStream

WORDS = ["The", " capital", " is", " Paris."]


class Scripted:
    """A handle's stream stand-in: yields the given chunks, then raises `error` if any."""

    def __init__(self, chunks, error=None):
        self.chunks, self.error, self.cancelled = list(chunks), error, False

    async def __anext__(self):
        if self.chunks:
            return self.chunks.pop(0)
        if self.error:
            raise self.error
        raise StopAsyncIteration

    def cancel(self):
        self.cancelled = True


def stream_of(words, finish="stop", error=None) -> tuple[OpenStream, Scripted]:
    chunks = [GenerationChunk(text=w, prompt="P" if i == 0 else None, prompt_tokens=3, completion_tokens=i + 1)
              for i, w in enumerate(words)]
    if finish:
        chunks[-1] = chunks[-1].model_copy(update={"finish_reason": finish})
    rest = Scripted(chunks[1:], error)
    return OpenStream(chunks[0], rest), rest


async def lines(agen) -> list[str]:
    return [line async for line in agen]


def events(sse_lines) -> list:
    return [json.loads(line[len("data: "):]) if line != "data: [DONE]\n\n" else "[DONE]" for line in sse_lines]


def test_a_chat_stream_is_role_deltas_finish_usage_done():
    req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "q"}], stream=True,
                                stream_options={"include_usage": True})
    stream, _ = stream_of(WORDS)
    frames = events(asyncio.run(lines(openai_serving.chat_completion_sse(req, [stream]))))
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(f["choices"][0]["delta"].get("content") or "" for f in frames[1:-2]) == "".join(WORDS)
    assert [f["choices"][0]["finish_reason"] for f in frames[1:-2]] == [None] * len(WORDS) + ["stop"]
    assert all("usage" not in f for f in frames[:-2]), "only the usage frame carries usage"
    assert frames[-2]["choices"] == [] and frames[-2]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4,
                                                                    "total_tokens": 7}
    assert frames[-1] == "[DONE]"
    assert len({f["id"] for f in frames[:-1]}) == 1


def test_a_broken_chat_stream_ends_with_one_error_frame_and_never_a_finish():
    req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "q"}], stream=True)
    stream, rest = stream_of(WORDS, finish=None, error=RuntimeError("replica died"))
    frames = events(asyncio.run(lines(openai_serving.chat_completion_sse(req, [stream]))))
    assert frames[-1] == "[DONE]" and "replica died" in frames[-2]["error"]["message"]
    assert not any(f != "[DONE]" and "choices" in f and f["choices"][0]["finish_reason"] for f in frames)
    assert rest.cancelled, "the model is told to stop"


def test_a_stream_that_ends_without_a_finish_reason_is_an_error():
    req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "q"}], stream=True)
    stream, _ = stream_of(WORDS, finish=None)
    frames = events(asyncio.run(lines(openai_serving.chat_completion_sse(req, [stream]))))
    assert "without a finish reason" in frames[-2]["error"]["message"]


def test_completions_of_several_prompts_stream_one_after_another_by_index():
    req = CompletionRequest(model="m", prompt=["a", "b"], stream=True, echo=True)
    streams = [stream_of(["x", "y"])[0], stream_of(["z"], finish="length")[0]]
    frames = events(asyncio.run(lines(openai_serving.completion_sse(req, streams))))[:-1]
    by_index = [(f["choices"][0]["index"], f["choices"][0]["text"], f["choices"][0]["finish_reason"]) for f in frames]
    assert by_index == [(0, "a", None), (0, "x", None), (0, "y", None), (0, "", "stop"),
                        (1, "b", None), (1, "z", None), (1, "", "length")]


def worker_frames(stream, **fields) -> list[dict]:
    req = PromptRequest(model="m", prompt="P", **fields)
    async def body():
        response = await dbgpt_serving.generate_stream(req, stream, "span")
        return b"".join([part async for part in response.body_iterator])

    raw = asyncio.run(body())
    assert raw.endswith(b"\0"), "every frame, the last too, ends with a NUL byte"
    return [json.loads(f) for f in raw.split(b"\0")[:-1]]


def test_dbgpt_frames_are_cumulative_modeloutputs_ending_with_usage():
    frames = worker_frames(stream_of(WORDS)[0])
    texts = [f["text"] for f in frames]
    assert texts == ["The", "The capital", "The capital is", "The capital is Paris."]
    assert [f["finish_reason"] for f in frames] == [None, None, None, "stop"]
    assert frames[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert all(f["usage"] is None and f["error_code"] == 0 for f in frames[:-1])


def test_dbgpt_echo_starts_with_the_prompt_and_says_where_it_ends():
    frames = worker_frames(stream_of(WORDS)[0], echo=True)
    assert frames[-1]["text"] == "P" + "".join(WORDS)
    assert frames[-1]["model_context"] == {"prompt_echo_len_char": 1, "echo": True}


def test_a_broken_dbgpt_stream_ends_with_an_error_modeloutput():
    frames = worker_frames(stream_of(WORDS, finish=None, error=RuntimeError("replica died"))[0])
    assert frames[-1]["error_code"] == 1 and "replica died" in frames[-1]["text"]
    assert frames[-1]["text"].startswith("**LLMServer Generate Error")


def test_stop_strings_are_found_in_the_unsent_tail_and_their_startsheld_back():
    assert find_stop("The capital is Paris.", ["Paris"], 0) == 15
    assert find_stop("The capital is", ["Paris"], 0) is None
    assert find_stop("ab STOP cd STOP", ["STOP"], 8) == 11  # only the unsent tail is searched
    assert held_back("The capital is Par", ["Paris"]) == 3
    assert held_back("The capital is", ["Paris"]) == 0
    assert held_back("anything", []) == 0
