"""The registry's handles: one per model called, shut down once Serve no longer lists it."""

import asyncio

from serve_app.serving.registry import ModelEntry, ModelRegistry


def test_registry_shuts_down_the_handles_of_models_gone_from_serve():
    class FakeHandle:  # stands in for a DeploymentHandle: only its shutdown is under test
        closed = False

        async def shutdown_async(self):
            self.closed = True

    async def scenario():
        registry = ModelRegistry()
        kept, gone, retyped = FakeHandle(), FakeHandle(), FakeHandle()
        registry._handles = {("a", "llm"): kept, ("b", "text2vec"): gone, ("c", "text2vec"): retyped}
        # "b" was stopped; "c" was restarted under the same name as a reranker
        registry._models = {"a": ModelEntry("a", "llm", "RUNNING", ""), "c": ModelEntry("c", "reranker", "RUNNING", "")}
        registry._forget_gone_handles()
        await asyncio.sleep(0)  # let the shutdown tasks run
        return registry, kept, gone, retyped

    registry, kept, gone, retyped = asyncio.run(scenario())
    assert list(registry._handles) == [("a", "llm")]
    assert gone.closed and retyped.closed and not kept.closed
