"""LoRA adapters on the transformers engine (engines/transformers/peft_adapters.py), in-process: an adapter
changes the greedy answer and the base's does not change, rows of several adapters and the
base share one batch and each gets its solo answer, an adapter let go while a row uses it
leaves after that row, and one that cannot be served is refused by name while the base serves."""

import asyncio

import pytest
from adapters import make_adapter, make_foreign_adapter
from helpers import LLM_SOURCE

from serve_app.config.workers import LLMArgs
from serve_app.engines.base import AdapterError, ChatMessage, GenerationRequest, SamplingParams

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def engine():
    from serve_app.engines.transformers.engine import TransformersEngine

    return TransformersEngine(LLMArgs(source=LLM_SOURCE))


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    home = tmp_path_factory.mktemp("adapters")
    return {"sql": make_adapter(home / "sql", seed=1), "poet": make_adapter(home / "poet", seed=2)}


def ask(adapter=None, question=QUESTION, n=12) -> GenerationRequest:
    return GenerationRequest(messages=[ChatMessage(role="user", content=question)], adapter=adapter,
                             params=SamplingParams(temperature=0, max_new_tokens=n))


async def text(engine, request) -> str:
    return "".join([c.text async for c in engine.generate(request)])


def test_adapters_change_their_answer_and_share_a_batch_with_the_base(engine, paths):
    async def scenario():
        base_before = await text(engine, ask())
        for name, path in paths.items():
            await engine.load_adapter(name, path)
        solo = {name: await text(engine, ask(name)) for name in [None, *paths]}
        together = await asyncio.gather(*(text(engine, ask(name)) for name in [None, *paths, None, "sql"]))
        return base_before, solo, together

    base_before, solo, together = asyncio.run(scenario())
    assert base_before == "The capital of France is Paris."
    assert solo[None] == base_before, "loading adapters leaves the base's answer as it was"
    assert solo["sql"] != base_before and solo["poet"] != base_before and solo["sql"] != solo["poet"]
    assert together == [solo[None], solo["sql"], solo["poet"], solo[None], solo["sql"]], "one batch, each row its own"


class Recorder:
    """Stands in for one of the engine's Ray metrics: the tags each value was recorded with."""

    def __init__(self):
        self.tags = []

    def inc(self, value, tags=None):
        self.tags.append(tags)

    observe = inc


def test_an_adapters_requests_count_under_its_name_in_the_engines_metrics(engine, paths, monkeypatch):
    names = ("prompt_tokens", "completion_tokens", "time_to_first_token", "time_per_output_token")
    recorders = {name: Recorder() for name in names}
    for name, recorder in recorders.items():
        monkeypatch.setattr(engine.metrics, name, recorder)

    async def scenario():
        await engine.load_adapter("sql", paths["sql"])
        try:
            return await text(engine, ask("sql")), await text(engine, ask())
        finally:
            await engine.unload_adapter("sql")

    asyncio.run(scenario())
    for name, recorder in recorders.items():
        assert recorder.tags == [{"model": "sql"}, None], (name, recorder.tags)  # None: the base's default tags


def test_an_adapter_let_go_leaves_once_its_rows_are_done(engine, paths):
    async def scenario():
        await engine.load_adapter("sql", paths["sql"])
        running = asyncio.ensure_future(text(engine, ask("sql", n=24)))
        await asyncio.sleep(0.3)
        await engine.unload_adapter("sql")
        held_while_running = "sql" in engine.adapters.loaded
        answer = await running
        await engine.load_adapter("poet", paths["poet"])  # a step of the loop, after the row left
        after = [await text(engine, ask(name)) for name in ("poet", None)]
        return held_while_running, answer, "sql" in engine.adapters.loaded, after

    held, answer, still_held, after = asyncio.run(scenario())
    assert held and answer, "the row with the adapter finished with it"
    assert not still_held, "then the adapter left"
    assert after[1] == "The capital of France is Paris." and after[0] != after[1], "the others serve on"

    async def all_leave():
        await engine.unload_adapter("poet")
        return await text(engine, ask()), engine.adapters.loaded.copy(), hasattr(engine.adapters.model, "peft_config")

    base, loaded, wrapped = asyncio.run(all_leave())
    assert base == "The capital of France is Paris." and loaded == {} and not wrapped, "the last gone, the plain model"

    with pytest.raises(AdapterError, match="not loaded"):
        asyncio.run(text(engine, ask("sql")))


@pytest.mark.parametrize("what", ["missing", "foreign"])
def test_an_adapter_that_cannot_be_served_is_refused_by_name_and_the_base_serves(engine, tmp_path, what):
    path = str(tmp_path / "nothing-here") if what == "missing" else make_foreign_adapter(tmp_path / "gpt2")
    with pytest.raises(AdapterError, match=f"LoRA adapter 'bad-{what}'"):
        asyncio.run(engine.load_adapter(f"bad-{what}", path))
    assert f"bad-{what}" not in engine.adapters.loaded
    assert asyncio.run(text(engine, ask())) == "The capital of France is Paris."
