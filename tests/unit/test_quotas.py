"""A key's limits: requests and tokens per minute, tokens per day; what is refused, and for how long."""

from serve_app.config.keys import Limits
from serve_app.governance.quotas import KeyUsage


def admit(usage: KeyUsage, limits: Limits, now=None):
    """One request at a time (a lease of one): None, and it is counted; or the refusal."""
    return usage.lease(limits, replicas=1, most=1, now=now)[1]


def test_requests_per_minute_slide_with_time():
    usage, limits = KeyUsage(), Limits(requests_per_minute=3)
    assert [admit(usage, limits, now=t) for t in (0, 1, 2)] == [None, None, None]
    refusal = admit(usage, limits, now=10)
    assert refusal.reason == "requests_per_minute" and refusal.retry_after_s == 50
    assert "3 requests per minute" in refusal.message
    assert admit(usage, limits, now=60.5) is None, "the first request left the window"
    assert usage.report(now=60.5)["refused"] == {"requests_per_minute": 1}


def test_tokens_per_minute_count_when_known():
    usage, limits = KeyUsage(), Limits(tokens_per_minute=100)
    assert admit(usage, limits, now=0) is None
    usage.count_tokens(30, 80, now=1)  # 110: over, after the fact
    refusal = admit(usage, limits, now=2)
    assert refusal.reason == "tokens_per_minute" and refusal.retry_after_s == 59
    assert admit(usage, limits, now=61.5) is None


def test_a_daily_budget_waits_for_the_next_utc_day():
    usage, limits = KeyUsage(), Limits(tokens_per_day=50)
    usage.count_tokens(20, 40)
    refusal = admit(usage, limits)
    assert refusal.reason == "tokens_per_day" and 1 <= refusal.retry_after_s <= 86400


def test_no_limits_admit_everything_and_still_count():
    usage = KeyUsage()
    for _ in range(1000):
        assert admit(usage, Limits()) is None
    usage.count_tokens(5, 7)
    report = usage.report()
    assert report["requests"] == 1000 and report["prompt_tokens"] == 5 and report["completion_tokens"] == 7
    assert not Limits().any and Limits(tokens_per_day=1).any


def test_leases_shrink_to_one_request_near_the_limit_and_never_pass_it():
    usage, limits = KeyUsage(), Limits(requests_per_minute=60)
    grants = []
    while True:
        granted, refusal = usage.lease(limits, replicas=2, now=1)
        if refusal:
            break
        grants.append(granted)
    assert sum(grants) == 60, "the leases add up to the limit exactly"
    assert grants[0] == 15 and grants == sorted(grants, reverse=True) and grants[-3:] == [1, 1, 1]
    assert refusal.reason == "requests_per_minute"


def test_unused_leased_requests_come_back():
    usage, limits = KeyUsage(), Limits(requests_per_minute=10)
    granted, _ = usage.lease(limits, replicas=1, now=0)
    assert granted == 5
    usage.give_back(4)  # one used
    assert usage.report(now=0)["last_minute"]["requests"] == 1 and usage.report(now=0)["requests"] == 1
    assert sum(usage.lease(limits, replicas=1, now=0)[0] for _ in range(9)) == 9


def test_a_token_limit_leases_what_its_mean_request_leaves_room_for():
    usage, limits = KeyUsage(), Limits(tokens_per_minute=1000)
    assert usage.lease(limits, replicas=1, now=0) == (1, None), "no tokens known yet: one at a time"
    usage.count_tokens(40, 60, now=0)  # a request of 100 tokens: room for 9 more
    assert usage.lease(limits, replicas=1, now=0)[0] == 4
    assert usage.lease(limits, replicas=1, now=0, most=1)[0] == 1


def test_a_key_without_limits_gets_leases_of_the_largest_size():
    usage = KeyUsage()
    assert usage.lease(Limits(), replicas=3, now=0)[0] == 64
