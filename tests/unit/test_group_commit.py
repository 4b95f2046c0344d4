"""serve_app/lifecycle/group_commit.py: changes that arrive during an apply go in the next one,
together; each caller gets its own change's result; nothing hangs on an error or a hang-up."""

import asyncio

import pytest

from serve_app.lifecycle.group_commit import GroupCommit


class Applier:
    """Records each pass's changes; the first pass waits for `release` (an apply in flight)."""

    def __init__(self, defer=lambda change: False, fail_on=None):
        self.passes: list[list] = []
        self.release = asyncio.Event()
        self.defer, self.fail_on = defer, fail_on

    async def __call__(self, batch):
        self.passes.append([change for change, _ in batch])
        if len(self.passes) == 1:
            await self.release.wait()
        if self.fail_on in [change for change, _ in batch]:
            raise RuntimeError(f"controller said no to {self.fail_on}")
        deferred = []
        for change, done in batch:
            if self.defer(change) and len(self.passes) == 1:
                deferred.append((change, done))
            elif change == "refused":
                done.set_exception(ValueError("refused alone"))
            else:
                done.set_result(f"{change} applied in pass {len(self.passes)}")
        return deferred


async def started(commit: GroupCommit, *changes):
    tasks = [asyncio.create_task(commit.submit(c)) for c in changes]
    await asyncio.sleep(0)
    return tasks


def test_changes_that_arrive_during_an_apply_are_applied_together_next():
    async def go():
        applier = Applier()
        commit = GroupCommit(applier)
        first = await started(commit, "a")
        burst = await started(commit, *[f"m{i}" for i in range(6)], "refused")
        applier.release.set()
        results = await asyncio.gather(*first, *burst, return_exceptions=True)
        return applier.passes, results

    passes, results = asyncio.run(go())
    assert passes == [["a"], ["m0", "m1", "m2", "m3", "m4", "m5", "refused"]]
    assert results[:7] == ["a applied in pass 1"] + [f"m{i} applied in pass 2" for i in range(6)]
    assert isinstance(results[7], ValueError), "a refused change fails alone"


def test_a_deferred_change_is_applied_in_the_next_pass_in_its_order():
    async def go():
        applier = Applier(defer=lambda change: change.startswith("again"))
        commit = GroupCommit(applier)
        tasks = await started(commit, "a", "again-a", "b")
        applier.release.set()
        return applier.passes, await asyncio.gather(*tasks)

    passes, results = asyncio.run(go())
    assert passes == [["a", "again-a", "b"], ["again-a"]]
    assert results == ["a applied in pass 1", "again-a applied in pass 2", "b applied in pass 1"]


def test_an_apply_that_fails_fails_its_pass_and_the_next_pass_runs():
    async def go():
        applier = Applier(fail_on="x")
        commit = GroupCommit(applier)
        tasks = await started(commit, "a", "x")
        applier.release.set()
        failed = await asyncio.gather(*tasks, return_exceptions=True)
        return failed, await commit.submit("b")

    failed, later = asyncio.run(go())
    assert all(isinstance(r, RuntimeError) and "x" in str(r) for r in failed), failed
    assert later == "b applied in pass 2"


def test_a_caller_that_hangs_up_cuts_no_pass_and_its_waiting_change_is_never_applied():
    async def go():
        applier = Applier()
        commit = GroupCommit(applier)
        leader = await started(commit, "a")
        follower, gone = await started(commit, "b"), await started(commit, "gone")
        leader[0].cancel()  # hangs up while its pass applies
        gone[0].cancel()  # hangs up before its change is taken
        await asyncio.sleep(0)
        applier.release.set()
        return applier.passes, await follower[0], leader[0], gone[0]

    passes, follower, leader, gone = asyncio.run(go())
    assert passes == [["a"], ["b"]], "the leader's pass went on; the cancelled waiting change never ran"
    assert follower == "b applied in pass 2"
    assert leader.cancelled() and gone.cancelled()


@pytest.mark.parametrize("n", [1, 20])
def test_every_caller_gets_its_own_result(n):
    async def go():
        applier = Applier()
        applier.release.set()
        commit = GroupCommit(applier)
        return await asyncio.gather(*[commit.submit(f"c{i}") for i in range(n)])

    results = asyncio.run(go())
    assert [r.split()[0] for r in results] == [f"c{i}" for i in range(n)]
