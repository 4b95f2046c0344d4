"""The routing table the manager publishes (serving/routing_table.py): a new version only when
Serve's state changed, a long poll that answers at once when behind and as soon as a change
comes, and the last table kept when the controller does not answer. The state read is a stand-in
for the controller's answer (the one function under test is the publisher's)."""

import asyncio

import pytest
from test_registry import controller_answer

from serve_app.serving.routing_table import TablePublisher


class Controller:
    """Answers `get_serve_instance_details` from `state`, or raises while `down`."""

    def __init__(self):
        self.state, self.down, self.reads = controller_answer(), False, 0

    async def read(self) -> dict:
        self.reads += 1
        if self.down:
            raise TimeoutError("the controller is restarting")
        return self.state


def test_a_watch_answers_at_once_when_behind_and_when_a_change_comes():
    async def scenario():
        controller = Controller()
        table = TablePublisher(controller.read, interval_s=3600)  # no poll: each read is the test's
        first, models = await table.watch(None, wait_s=0)
        assert set(models) == {"m1"} and models["m1"].running_replicas == 1
        same, nothing = await table.watch(first, wait_s=0.05)
        assert (same, nothing) == (first, None), "nothing changed: no table sent"
        await table.refresh()  # the same state again: no new version
        assert table.version == first

        waiting = asyncio.ensure_future(table.watch(first, wait_s=30))
        await asyncio.sleep(0.05)
        assert not waiting.done(), "a watch at the current version waits"
        controller.state = controller_answer(replica_state="STOPPING")
        await table.refresh()
        version, models = await asyncio.wait_for(waiting, 1)
        assert version != first and models["m1"].running_replicas == 0
        return controller

    asyncio.run(scenario())


def test_the_last_table_stays_while_the_controller_does_not_answer():
    async def scenario():
        controller = Controller()
        table = TablePublisher(controller.read, interval_s=0.01)
        version, models = await table.watch(None, wait_s=0)
        controller.down = True
        reads = controller.reads
        await asyncio.sleep(0.1)  # the poller keeps trying, and keeps the table
        assert controller.reads > reads and table.table == models and table.version == version
        with pytest.raises(TimeoutError):
            await table.watch(version, wait_s=0, fresh=True)  # a fresh read says it could not
        controller.down = False
        controller.state = controller_answer(state="DEPLOYING")
        version2, models2 = await table.watch(version, wait_s=1)
        assert models2["m1"].status == "DEPLOYING"

    asyncio.run(scenario())


def test_a_new_publisher_never_shares_a_version_with_an_old_one():
    async def versions():
        return [(await TablePublisher(Controller().read, 3600).watch(None, 0))[0] for _ in range(2)]

    first, second = asyncio.run(versions())
    assert first != second and first[1] == second[1] == 1

