"""A limited key's request waits for a slow governor and is answered; a governor that does not
answer at all gets the request a 503 that says so, after GOVERNOR_TIMEOUT_S and no later (CI's
failure of stop 45: at a 1 s deadline, a governor slowed by a loaded machine had limited keys'
requests refused while it was up)."""

from __future__ import annotations

import asyncio
import time

from inprocess.local import LocalHandle
from starlette.requests import Request

from serve_app.config.keys import ApiKey, Limits
from serve_app.governance import admission
from serve_app.governance.admission import Admission, LimitsUnavailable
from serve_app.governance.governor import Governor
from serve_app.governance.keys import hash_key, record_of
from serve_app.kv import MemoryStore

KEY = "sk-test-limited"


class SlowGovernor(LocalHandle):
    """The real governor, whose leases take `delay` seconds (None: never answered)."""

    def __init__(self, instance, delay):
        super().__init__(instance)
        self.delay = delay

    def __getattr__(self, name):
        method = super().__getattr__(name)
        if name != "lease":
            return method
        delay, real = self.delay, method.fn

        async def slow(*args, **kwargs):
            await asyncio.sleep(3600 if delay is None else delay)
            return await real(*args, **kwargs)

        method.fn = slow
        return method


def admit_once(delay) -> tuple[float, object]:
    configured = [record_of(ApiKey(key_sha256=hash_key(KEY), id="limited", scope="inference",
                                   limits=Limits(requests_per_minute=5)))]
    handle = SlowGovernor(Governor.func_or_class(configured, store=MemoryStore()), delay)
    request = Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
                       "headers": [(b"authorization", f"Bearer {KEY}".encode())]})

    async def run():
        began = time.monotonic()
        try:
            await Admission(handle, configured).admit(request)
            outcome = None
        except Exception as exc:  # the outcome is what the test checks
            outcome = exc
        return time.monotonic() - began, outcome

    return asyncio.run(run())


def test_a_governor_slower_than_a_second_still_admits_a_limited_keys_request():
    took, outcome = admit_once(delay=1.5)
    assert outcome is None, outcome
    assert took >= 1.5


def test_a_governor_that_does_not_answer_gets_a_503_that_says_so_in_bounded_time(monkeypatch):
    monkeypatch.setattr(admission, "GOVERNOR_TIMEOUT_S", 0.3)  # the real five seconds, shortened
    took, outcome = admit_once(delay=None)
    assert isinstance(outcome, LimitsUnavailable) and outcome.status_code == 503, outcome
    assert "limits could not be checked" in str(outcome)
    assert 0.3 <= took < 1.5, took


def test_a_governor_that_answers_at_once_admits_without_waiting():
    took, outcome = admit_once(delay=0.0)
    assert outcome is None and took < 0.5, (took, outcome)
