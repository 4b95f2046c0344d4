"""A key made through one ingress replica works at once on another: through the other's watch
of the governor's keys, and, in the moment before the watch answers, through the read a key it
does not hold gets before it is refused (CI's flake of stop 43: a key made on one replica got 401
on the other, whose read had not come round yet); wrong keys cost the governor a bounded number
of reads, not one each; and idle, a replica's copy costs the governor no read."""

from __future__ import annotations

import asyncio

import pytest
from inprocess.local import LocalHandle
from starlette.requests import Request

from serve_app.config.keys import ApiKey, KeySpec
from serve_app.errors import AuthError
from serve_app.governance import admission
from serve_app.governance.admission import Admission
from serve_app.governance.governor import Governor
from serve_app.governance.keys import hash_key, record_of
from serve_app.kv import MemoryStore

ADMIN = "sk-test-admin"


def request(key: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
                    "headers": [(b"authorization", f"Bearer {key}".encode())]})


class CountingGovernor(LocalHandle):
    """The real governor, counting how often an ingress replica reads its keys (`reads`) and
    opens a watch on them (`watches`)."""

    def __init__(self, instance):
        super().__init__(instance)
        self.reads = self.watches = 0

    def __getattr__(self, name):
        if name == "keys":
            self.reads += 1
        elif name == "keys_since":
            self.watches += 1
        return super().__getattr__(name)


def new_governor() -> tuple[CountingGovernor, list]:
    configured = [record_of(ApiKey(key_sha256=hash_key(ADMIN), id="ops", scope="admin"))]
    return CountingGovernor(Governor.func_or_class(configured, store=MemoryStore())), configured


@pytest.fixture
def governor(monkeypatch):
    monkeypatch.setattr(Admission, "ensure_watching", lambda self: None)  # the read on a miss alone
    return new_governor()


def test_the_watch_brings_a_new_key_and_a_revocation_at_once_and_idle_reads_nothing(monkeypatch):
    monkeypatch.setattr(admission, "WATCH_S", 0.3)  # a few rounds of the long poll in the idle second
    handle, configured = new_governor()

    async def run():
        there = Admission(handle, configured)
        await there.admit(request(ADMIN))  # its first read, and its watch begins
        reads, watches = handle.reads, handle.watches
        await asyncio.sleep(1.0)
        idle = handle.reads - reads, handle.watches - watches
        record, key = await handle.create.remote(KeySpec(name="new", scope="inference"))
        await asyncio.sleep(0.05)
        made = there.book.identify(f"Bearer {key}", None)
        await handle.revoke.remote(record.id)
        await asyncio.sleep(0.05)
        revoked = there.book.identify(f"Bearer {key}", None)
        return idle, made, revoked, handle.reads - reads

    (idle_reads, idle_watches), made, revoked, reads = asyncio.run(run())
    assert idle_reads == 0 and 1 <= idle_watches <= 5, f"idle for 1 s: {idle_reads} reads, {idle_watches} watches"
    assert made is not None and made.id.startswith("key-"), "the new key reached the copy through the watch"
    assert revoked is None, "the revoked key left the copy through the watch"
    assert reads == 0, "no read of the keys: the watch brought both changes"


def test_a_key_made_on_one_replica_is_admitted_at_once_by_another(governor):
    handle, configured = governor

    async def run():
        here, there = Admission(handle, configured), Admission(handle, configured)
        await there.admit(request(ADMIN))
        _, key = await handle.create.remote(KeySpec(name="new", scope="inference"))
        await there.admit(request(key))  # raises AuthError (401) if `there` refused it
        with pytest.raises(AuthError) as wrong:
            await here.admit(request("sk-never-made"))
        return wrong.value

    refused = asyncio.run(run())
    assert refused.status_code == 401 and "invalid API key" in str(refused)


def test_a_flood_of_wrong_keys_reads_the_keys_once_per_gap_not_once_per_request(governor):
    handle, configured = governor

    async def run():
        gate = Admission(handle, configured)
        await gate.admit(request(ADMIN))
        await asyncio.sleep(0.1)
        reads_before = handle.reads
        outcomes = await asyncio.gather(*(gate.admit(request(f"sk-wrong-{i}")) for i in range(200)),
                                        return_exceptions=True)
        return outcomes, handle.reads - reads_before

    outcomes, reads = asyncio.run(run())
    assert all(isinstance(o, AuthError) and o.status_code == 401 for o in outcomes), outcomes[:3]
    assert 1 <= reads <= 2, f"{reads} reads of the keys for 200 wrong keys sent at once"


class TwoGovernors(CountingGovernor):
    """Two live governors behind one handle, answering in turns (a rolling update's moment, or a
    config that gave the governor two replicas): each answers the other's epoch at once."""

    def __init__(self, first, second):
        super().__init__(first)
        self._both, self._turn = (first, second), 0

    def __getattr__(self, name):
        if name == "keys_since":
            self._turn += 1
            self._instance = self._both[self._turn % 2]
        return super().__getattr__(name)


def test_a_watch_between_two_governors_is_paced_not_spun(monkeypatch):
    monkeypatch.setattr(admission, "WATCH_S", 0.3)
    configured = [record_of(ApiKey(key_sha256=hash_key(ADMIN), id="ops", scope="admin"))]
    handle = TwoGovernors(*(Governor.func_or_class(configured, store=MemoryStore()) for _ in range(2)))

    async def run():
        gate = Admission(handle, configured)
        await gate.admit(request(ADMIN))
        watches = handle.watches
        await asyncio.sleep(2.0)
        return handle.watches - watches

    watches = asyncio.run(run())
    assert watches <= 4, f"{watches} watches in 2 s between two governors' epochs"
