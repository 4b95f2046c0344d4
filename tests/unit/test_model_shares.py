"""A key's share of each model (serve_app/governance/shares.py), as `GET /api/keys/{id}/usage`
reports it, and the governor holding only a minute of counts however long nobody asks."""

from serve_app.governance.shares import ModelShares


def test_shares_are_of_the_last_minute_and_totals_of_all_time():
    shares = ModelShares()
    shares.add("a", "m", 100, now=0.0)
    shares.add("a", "m", 30, now=50.0)
    shares.add("b", "m", 90, now=55.0)
    shares.add("a", "other", 5, now=55.0)
    report = shares.report("a", now=70.0)  # the count at 0 s is over a minute old
    assert report["m"] == {"tokens": 130, "last_minute": {"tokens": 30, "all_keys_tokens": 120, "share": 0.25}}
    assert report["other"]["last_minute"]["share"] == 1.0 and "m" not in shares.report("c", now=70.0)


def test_counts_older_than_a_minute_go_as_new_ones_come_with_no_report_asked():
    shares = ModelShares()
    for second in range(600):
        shares.add("a", "m", 1, now=float(second))
    assert len(shares.recent["m"]) == 60 and shares.totals[("a", "m")] == 600
