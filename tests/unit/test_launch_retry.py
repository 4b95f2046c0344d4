"""`make run`'s launcher starts `serve run` again when Ray's new node missed Ray's own 30 s to
register (serve_app/launch.py), and only then, at most START_ATTEMPTS times in all. A small script
stands in for `serve run`."""

import signal
import sys

from serve_app.launch import RAY_START_TIMED_OUT, START_ATTEMPTS, serve_run

# Fails as Ray does on its first run (a marker file says which run it is), then prints and exits `then`.
FAKE = """
import os, sys
marker, first, then = sys.argv[1], sys.argv[2], int(sys.argv[3])
if not os.path.exists(marker):
    open(marker, "w").close()
    sys.stderr.write("Traceback (most recent call last):\\nException: " + first + "\\n")
    sys.exit(1)
sys.stderr.write("second run\\n")
sys.exit(then)
"""


def fake(tmp_path, first: str, then: int = 0) -> list[str]:
    return [sys.executable, "-c", FAKE, str(tmp_path / "ran"), first, str(then)]


def test_a_node_that_timed_out_at_start_is_started_once_more(tmp_path, capfd):
    sigint = signal.getsignal(signal.SIGINT)
    message = f"{RAY_START_TIMED_OUT}. This could happen because some of the raylet failed to startup"
    assert serve_run(fake(tmp_path, message, then=3), {}, retry=True) == 3
    out, err = capfd.readouterr()
    assert "starting it once more" in out
    assert RAY_START_TIMED_OUT in err and "second run" in err  # the child's stderr passes through
    assert signal.getsignal(signal.SIGINT) == sigint  # this process's Ctrl-C as it was


def test_another_failure_or_a_joined_cluster_is_not_retried(tmp_path, capfd):
    assert serve_run(fake(tmp_path, "ValueError: a bad config"), {}, retry=True) == 1
    (tmp_path / "joined").mkdir()
    assert serve_run(fake(tmp_path / "joined", RAY_START_TIMED_OUT), {}, retry=False) == 1
    out, err = capfd.readouterr()
    assert "once more" not in out and "second run" not in err


# Fails as Ray does every time, counting its runs in a file.
ALWAYS = """
import sys
with open(sys.argv[1], "a") as runs:
    runs.write("run\\n")
sys.stderr.write("Exception: " + sys.argv[2] + "\\n")
sys.exit(1)
"""


def test_a_node_that_never_starts_is_tried_start_attempts_times_then_fails(tmp_path, capfd):
    runs = tmp_path / "runs"
    assert serve_run([sys.executable, "-c", ALWAYS, str(runs), RAY_START_TIMED_OUT], {}, retry=True) == 1
    assert runs.read_text().count("run") == START_ATTEMPTS == 3
    assert f"({START_ATTEMPTS} of {START_ATTEMPTS})" in capfd.readouterr().out
