"""OpenAI's Batch API through Serve (serve_app/batches): the openai SDK uploads a file and runs
a batch on a simulated llm; the batch runner's replica is killed mid-way, Serve starts another,
and the batch finishes with every custom_id answered exactly once. An embeddings batch runs on
the real MiniLM. (Each case of the API's behaviour is tests/inprocess/test_batch_api.py's.)"""

from __future__ import annotations

import json

from helpers import EMBEDDER, apply, kill_one_replica, replicas, smmf, start_simulated, wait_until
from helpers import batch_finished as finished
from helpers import batch_rows as rows

MODEL = "batch-sim"
LINES = 40


def test_a_batch_goes_on_after_its_runner_is_killed_and_answers_each_line_once(sdk, client, base_url):
    # 40 tokens at 20 tokens/s: 2 s a line, 16 at a time (batches.concurrency), so the batch runs for ~6 s.
    assert start_simulated(client, MODEL, simulated_tokens_per_s=20)["success"]
    try:
        lines = [{"custom_id": f"line-{i}", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": MODEL, "messages": [{"role": "user", "content": f"number {i}"}], "max_tokens": 40}}
                 for i in range(LINES)]
        upload = sdk.files.create(file=("lines.jsonl", "".join(json.dumps(ln) + "\n" for ln in lines).encode()),
                                  purpose="batch")
        batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
        wait_until(lambda: sdk.batches.retrieve(batch.id).request_counts.completed >= 4, 60, "the first answers")
        running = sdk.batches.retrieve(batch.id)
        assert running.status == "in_progress" and running.request_counts.completed < LINES, running
        runner = replicas("router")  # every replica of the router app; the runner's is the one to go
        killed = kill_one_replica("router", "batches")
        assert killed in runner
        followed = smmf(base_url, "batch", "show", batch.id, timeout=120)  # follows it to its end
        assert followed.returncode == 0, followed.stderr
        progress = followed.stdout.splitlines()
        assert progress[0].startswith(f"{batch.id}: in_progress, ") and "answered" in progress[0], progress
        assert f"{batch.id}: completed, {LINES}/{LINES} answered, 0 failed" in progress, progress
        done = finished(sdk, batch.id)
        assert done.status == "completed", done
        assert f"output file: {done.output_file_id}" in followed.stdout
        listed = smmf(base_url, "batch", "list").stdout.splitlines()
        assert listed[0].split() == ["ID", "STATUS", "ENDPOINT", "PROGRESS", "CREATED", "(UTC)"]
        assert [batch.id, "completed", "/v1/chat/completions", f"{LINES}/{LINES}", "answered,", "0", "failed"] in [
            row.split()[:7] for row in listed], listed
        assert killed not in replicas("router"), "Serve started a new runner"
        assert (done.request_counts.completed, done.request_counts.failed) == (LINES, 0)
        out = rows(sdk, done.output_file_id)
        assert [r["custom_id"] for r in out] == [f"line-{i}" for i in range(LINES)]
        assert all(r["response"]["status_code"] == 200 and r["response"]["body"]["usage"]["completion_tokens"] == 40
                   for r in out)
        assert done.error_file_id is None
    finally:
        apply(client, model=MODEL, apply_type="stop")


def test_an_embeddings_batch_answers_as_the_embeddings_route_does(sdk):
    texts = ["a cat sat", "the sky is blue", "batches run on idle capacity"]
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings", "body": {"model": EMBEDDER, "input": t}}
             for i, t in enumerate(texts)]
    upload = sdk.files.create(file=("embed.jsonl", "".join(json.dumps(ln) + "\n" for ln in lines).encode()),
                              purpose="batch")
    done = finished(sdk, sdk.batches.create(input_file_id=upload.id, endpoint="/v1/embeddings",
                                            completion_window="24h").id)
    assert done.status == "completed" and done.request_counts.completed == 3, done
    direct = sdk.embeddings.create(model=EMBEDDER, input=texts).data
    for row, want in zip(rows(sdk, done.output_file_id), direct):
        got = row["response"]["body"]["data"][0]["embedding"]
        assert max(abs(a - b) for a, b in zip(got, want.embedding)) < 1e-5
