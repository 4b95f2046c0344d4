"""A key made through one ingress replica works at once on another, before that replica's
periodic read of the keys (CI's flake of stop 43: a key made on one replica got 401 on the
other, whose read had not come round yet); and wrong keys cost the governor a bounded
number of reads, not one each."""

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
    """The real governor, counting how often an ingress replica reads its keys."""

    def __init__(self, instance):
        super().__init__(instance)
        self.reads = 0

    def __getattr__(self, name):
        if name == "keys":
            self.reads += 1
        return super().__getattr__(name)


@pytest.fixture
def governor(monkeypatch):
    monkeypatch.setattr(admission, "REFRESH_S", 3600)  # the periodic read never comes round in a test
    configured = [record_of(ApiKey(key_sha256=hash_key(ADMIN), id="ops", scope="admin"))]
    return CountingGovernor(Governor.func_or_class(configured, store=MemoryStore())), configured


def test_a_key_made_on_one_replica_is_admitted_at_once_by_another(governor):
    handle, configured = governor

    async def run():
        here, there = Admission(handle, configured), Admission(handle, configured)
        await there.admit(request(ADMIN))
        await asyncio.sleep(0.1)  # its periodic read's first round ends; the next is an hour away
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
