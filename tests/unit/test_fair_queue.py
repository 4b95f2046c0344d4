"""The llm replica's fair queue (serve_app/fairness/queue.py): band order, token-fair order
within a band (VTC), its bounds and their 429/503, and a caller that leaves."""

import asyncio
import contextlib

import pytest

from serve_app.config.fairness import BandLimits, FairQueueArgs
from serve_app.fairness.queue import FairQueue, QueueRefusal
from serve_app.fairness.ticket import Ticket, band_for


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))  # a place lost would hang a test: fail it instead


async def hold(queue: FairQueue, ticket: Ticket, order: list, release: asyncio.Event, tokens: int = 0):
    async with queue.turn(ticket) as meter:
        order.append(ticket.key)
        meter.count(10, tokens)
        await release.wait()


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_higher_band_goes_first_whatever_came_before():
    async def main():
        queue, order, release = FairQueue(1, FairQueueArgs()), [], asyncio.Event()
        first = asyncio.create_task(hold(queue, Ticket(key="busy"), order, release))
        await settle()
        tasks = [asyncio.create_task(hold(queue, Ticket(key=k, band=b), order, release))
                 for k, b in [("nightly", "batch"), ("app", "standard"), ("chat", "interactive")]]
        await settle()
        release.set()
        await asyncio.gather(first, *tasks)
        return order

    assert run(main()) == ["busy", "chat", "app", "nightly"]


def test_within_a_band_the_key_served_least_goes_first():
    async def main():
        queue, order, release = FairQueue(1, FairQueueArgs()), [], asyncio.Event()
        first = asyncio.create_task(hold(queue, Ticket(key="flood"), order, release))
        await settle()
        flood = [asyncio.create_task(hold(queue, Ticket(key="flood"), order, release)) for _ in range(3)]
        await settle()
        light = asyncio.create_task(hold(queue, Ticket(key="light"), order, release))  # came last
        await settle()
        queue.service.update({"flood": 500.0, "light": 10.0})
        release.set()
        await asyncio.gather(first, light, *flood)
        return order

    order = run(main())
    assert order[:2] == ["flood", "light"], order


def test_a_key_back_from_idling_starts_at_the_least_busy_counter_not_its_old_one():
    async def main():
        queue, order, release = FairQueue(1, FairQueueArgs()), [], asyncio.Event()
        queue.service["returning"] = 0.0  # idle for long: it must not own the model for as long
        busy = asyncio.create_task(hold(queue, Ticket(key="busy"), order, release, tokens=100))
        await settle()
        assert queue.service["busy"] == 10 + 2 * 100  # prompt weight 1, completion weight 2
        back = asyncio.create_task(hold(queue, Ticket(key="returning"), order, release))
        await settle()
        lifted = queue.service["returning"]
        release.set()
        await asyncio.gather(busy, back)
        return lifted

    assert run(main()) == 210


def test_weights_divide_the_service_a_key_is_charged():
    async def main():
        charged = {}
        for key, weight in [("heavy", 2.0), ("plain", 1.0)]:
            queue, release = FairQueue(1, FairQueueArgs()), asyncio.Event()
            release.set()
            await hold(queue, Ticket(key=key, weight=weight), [], release, tokens=45)
            charged[key] = queue.service[key]
        return charged

    assert run(main()) == {"heavy": 50, "plain": 100}  # 10 prompt tokens + 2 x 45 completion tokens


def test_two_backlogged_keys_get_tokens_in_the_ratio_of_their_weights():
    async def main():
        queue = FairQueue(2, FairQueueArgs(reserved_places=0))  # of two places, one kept free would be each key's
        served = {"one": 0, "two": 0}

        async def flood(key, weight):
            while sum(served.values()) < 3000:
                async with queue.turn(Ticket(key=key, weight=weight)) as meter:
                    for done in range(1, 11):  # 10 tokens, one per step
                        await asyncio.sleep(0)
                        meter.count(0, done)
                        served[key] += 1

        await asyncio.gather(*[flood("one", 1.0) for _ in range(4)], *[flood("two", 2.0) for _ in range(4)])
        return served

    served = run(main())
    assert served["two"] / sum(served.values()) == pytest.approx(2 / 3, abs=0.05), served


def test_a_full_band_refuses_with_503_when_the_key_is_alone_and_429_when_it_holds_more_than_its_share():
    async def main():
        args = FairQueueArgs(standard=BandLimits(max_queue=2))
        queue, release = FairQueue(1, args), asyncio.Event()
        held = [asyncio.create_task(hold(queue, Ticket(key="flood"), [], release)) for _ in range(3)]
        await settle()
        with pytest.raises(QueueRefusal) as alone:
            await hold(queue, Ticket(key="flood"), [], release)
        light = asyncio.create_task(hold(queue, Ticket(key="light", band="interactive"), [], release))
        await settle()
        with pytest.raises(QueueRefusal) as crowded:
            await hold(queue, Ticket(key="flood"), [], release)
        release.set()
        await asyncio.gather(light, *held)
        return alone.value, crowded.value, queue

    alone, crowded, queue = run(main())
    assert not alone.over_share and alone.retry_after_s >= 1 and "saturated" in alone.message
    assert "2 requests of its band (standard) are waiting" in alone.message
    assert crowded.over_share and "more than its share" in crowded.message
    assert (queue.running, dict(queue.held), queue.waiting_in("standard")) == (0, {}, 0)


def test_a_wait_past_its_limit_is_refused_and_the_place_is_not_lost():
    async def main():
        queue, release = FairQueue(1, FairQueueArgs(standard=BandLimits(max_wait_s=0.05))), asyncio.Event()
        busy = asyncio.create_task(hold(queue, Ticket(key="a"), [], release))
        await settle()
        with pytest.raises(QueueRefusal, match="within 0.05s"):
            await hold(queue, Ticket(key="b"), [], release)
        release.set()
        await busy
        order = []
        await hold(queue, Ticket(key="c"), order, release)
        return order, queue.running

    assert run(main()) == (["c"], 0)


def test_a_caller_that_leaves_leaves_the_queue_at_once():
    async def main():
        queue, order, release = FairQueue(1, FairQueueArgs()), [], asyncio.Event()
        busy = asyncio.create_task(hold(queue, Ticket(key="a"), order, release))
        await settle()
        gone = asyncio.create_task(hold(queue, Ticket(key="gone"), order, release))
        stays = asyncio.create_task(hold(queue, Ticket(key="stays"), order, release))
        await settle()
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        waiting = queue.waiting_in("standard")
        release.set()
        await asyncio.gather(busy, stays)
        return order, waiting, queue.running

    assert run(main()) == (["a", "stays"], 1, 0)


def test_a_cancel_that_comes_as_the_place_is_given_passes_the_place_on():
    async def main():
        queue, order, release = FairQueue(1, FairQueueArgs()), [], asyncio.Event()
        tasks = {}

        async def busy():
            async with queue.turn(Ticket(key="a")):
                order.append("a")
                await release.wait()
            tasks["late"].cancel()  # in the same step as its place was given, before it could run

        first = asyncio.create_task(busy())
        await settle()
        tasks["late"] = asyncio.create_task(hold(queue, Ticket(key="late"), order, release))
        nxt = asyncio.create_task(hold(queue, Ticket(key="next"), order, release))
        await settle()
        release.set()
        await first
        with contextlib.suppress(asyncio.CancelledError):
            await tasks["late"]
        await nxt
        return order, queue.running

    assert run(main()) == (["a", "next"], 0)


def test_a_place_is_kept_free_for_a_key_that_comes_while_another_floods_but_not_for_a_key_alone():
    async def main():
        now = [0.0]
        queue = FairQueue(4, FairQueueArgs(), clock=lambda: now[0])
        order, release = [], asyncio.Event()
        alone = [asyncio.create_task(hold(queue, Ticket(key="flood"), order, release)) for _ in range(6)]
        await settle()
        running_alone = queue.running  # no other key was here: every place
        release.set()
        await asyncio.gather(*alone)
        release.clear()
        back = asyncio.create_task(hold(queue, Ticket(key="light"), order, release))  # another key, now gone
        await settle()
        release.set()
        await back
        release.clear()
        flood = [asyncio.create_task(hold(queue, Ticket(key="flood"), order, release)) for _ in range(6)]
        await settle()
        running_beside = queue.running
        light = asyncio.create_task(hold(queue, Ticket(key="light"), order, release))
        await settle()
        light_started = order[-1] == "light" and queue.running == 4
        now[0] = 61.0  # a minute on, "light" is no longer one who may come back
        release.set()
        await asyncio.gather(light, *flood)
        return running_alone, running_beside, light_started

    assert run(main()) == (4, 3, True)


@pytest.mark.parametrize("key_band, priority, band", [
    ("standard", None, "standard"), ("standard", 0, "standard"), ("standard", -5, "standard"),
    ("standard", 1, "batch"), ("interactive", 1, "standard"), ("interactive", 9, "batch"), ("batch", -1, "batch"),
])
def test_vllms_priority_lowers_a_requests_band_and_never_raises_it(key_band, priority, band):
    assert band_for(key_band, priority) == band


def test_a_full_band_makes_room_for_a_key_under_its_share_by_refusing_the_greedy_keys_newest():
    async def main():
        queue, order, release = FairQueue(1, FairQueueArgs(standard=BandLimits(max_queue=2))), [], asyncio.Event()
        flood = [asyncio.create_task(hold(queue, Ticket(key="flood"), order, release)) for _ in range(3)]
        await settle()
        light = asyncio.create_task(hold(queue, Ticket(key="light"), order, release))
        await settle()
        release.set()
        outcomes = await asyncio.gather(*flood, light, return_exceptions=True)
        return order, outcomes

    order, outcomes = run(main())
    pushed = [o for o in outcomes if isinstance(o, QueueRefusal)]
    assert len(pushed) == 1 and pushed[0].over_share and "took its place" in pushed[0].message
    assert outcomes[2] is pushed[0], "the flood's newest waiting request made the room"
    assert sorted(order) == ["flood", "flood", "light"]  # a tie on counters (the lift) goes to the older


@pytest.mark.parametrize("share, batch_running", [(0.25, 1), (1.0, 3)])
def test_a_keys_batch_band_leaves_places_for_its_own_chat(share, batch_running):
    """A quarter of the places (the batch band's default share beside people), or all but the
    reserved one, and the chat starts at once."""
    async def main():
        args = FairQueueArgs(batch=BandLimits(share_beside_higher=share))
        queue, order, release = FairQueue(4, args), [], asyncio.Event()
        chat = Ticket(key="team", band="interactive")
        await hold(queue, chat, [], _done())  # the team chatted a moment ago
        batch = [asyncio.create_task(hold(queue, Ticket(key="team", band="batch"), order, release)) for _ in range(6)]
        await settle()
        running_batch = queue.running
        later = asyncio.create_task(hold(queue, chat, order, release))
        await settle()
        chat_started = order[-1] == "team" and queue.running == running_batch + 1
        release.set()
        await asyncio.gather(later, *batch)
        return running_batch, chat_started

    assert run(main()) == (batch_running, True)


def _done() -> asyncio.Event:
    done = asyncio.Event()
    done.set()
    return done


def test_making_room_passes_over_a_request_whose_caller_has_just_left():
    async def main():
        queue, order, release = FairQueue(1, FairQueueArgs(standard=BandLimits(max_queue=2))), [], asyncio.Event()
        flood = [asyncio.create_task(hold(queue, Ticket(key="flood"), order, release)) for _ in range(3)]
        await settle()
        light = asyncio.create_task(hold(queue, Ticket(key="light"), order, release))  # runs before the cancel lands
        flood[2].cancel()  # the newest waiting one: its future is cancelled now, its task wakes after light's
        await settle()
        release.set()
        outcomes = await asyncio.gather(*flood, light, return_exceptions=True)
        return order, outcomes

    order, outcomes = run(main())
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert not any(isinstance(o, QueueRefusal) for o in outcomes), "no one was pushed out: the leaver made the room"
    assert sorted(order) == ["flood", "flood", "light"]
