"""OpenAI's Files and Batch API in-process (serve_app/batches), driven by the openai SDK's
`client.files` and `client.batches`: the batch runner's lines go through the same app.
The served tier runs a batch through Serve and stops the runner's replica mid-way."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest
from helpers import batch_finished as finished
from helpers import batch_rows as rows
from inprocess.local import BATCHES, FILES, LLM, RUNNER, BatchRunner, ServedApp
from openai.types.responses import Response

from serve_app.batches import routes
from serve_app.batches.protocol import Batch
from serve_app.config.keys import ApiKey
from serve_app.governance.keys import hash_key, record_of

ADMIN = "sk-test-batch-admin"


def chat_line(custom_id: str, model: str = LLM, max_tokens: int = 4, **extra) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"say {custom_id}"}],
                     "max_tokens": max_tokens, **extra}}


def jsonl(*lines) -> bytes:
    return b"".join((ln if isinstance(ln, bytes) else json.dumps(ln).encode()) + b"\n" for ln in lines)


def resumed(client, batch_id: str, until: str) -> Batch:
    """What a new runner over the same stores makes of `batch_id` (as a restarted runner's
    constructor wakes every unfinished batch), once its status is `until`."""

    async def resume():
        BatchRunner(ServedApp(), BATCHES, FILES, RUNNER.settings).wake()
        deadline = time.monotonic() + 20
        while BATCHES.get(batch_id).status != until:
            assert time.monotonic() < deadline, BATCHES.get(batch_id)
            await asyncio.sleep(0.02)

    client.portal.call(resume)
    return BATCHES.get(batch_id)


def test_a_files_round_trip_through_the_sdk(sdk):
    data = jsonl(chat_line("a"), chat_line("b"))
    made = sdk.files.create(file=("lines.jsonl", data), purpose="batch")
    assert (made.purpose, made.bytes, made.filename) == ("batch", len(data), "lines.jsonl")
    assert made.id in [f.id for f in sdk.files.list(purpose="batch")]
    assert sdk.files.retrieve(made.id).bytes == len(data)
    assert sdk.files.content(made.id).content == data
    assert sdk.files.delete(made.id).deleted
    with pytest.raises(openai.NotFoundError, match=made.id):
        sdk.files.retrieve(made.id)
    assert made.id not in [f.id for f in sdk.files.list()]


def test_a_file_for_another_purpose_or_over_the_limit_is_refused_naming_why(sdk):
    with pytest.raises(openai.BadRequestError, match="purpose 'fine-tune'"):
        sdk.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")
    with pytest.raises(openai.APIStatusError, match=r"limit of 65536 bytes") as over:
        sdk.files.create(file=("big.jsonl", b"x" * 70_000), purpose="batch")
    assert over.value.status_code == 413
    with pytest.raises(openai.BadRequestError, match=r"expires_after\[anchor\].*not supported"):
        sdk.files.create(file=("x.jsonl", b"{}\n"), purpose="batch",
                         expires_after={"anchor": "created_at", "seconds": 3600})
    with pytest.raises(openai.BadRequestError, match="output_expires_after"):
        sdk.batches.create(input_file_id="file-x", endpoint="/v1/chat/completions", completion_window="24h",
                           output_expires_after={"anchor": "created_at", "seconds": 3600})


def test_a_batch_answers_each_line_once_and_bad_lines_go_to_the_error_file(sdk):
    good = [chat_line(f"good-{i}") for i in range(3)]
    bad = [b"{not json", chat_line("no-model", model="no-such-model"),
           {**chat_line("elsewhere"), "url": "/v1/embeddings"}, chat_line("streamed", stream=True),
           {"custom_id": "no-body", "method": "POST", "url": "/v1/chat/completions"},
           {**chat_line("too-long"), "body": {"model": LLM, "max_tokens": 4, "messages": [  # over its 8192
               {"role": "user", "content": "word " * 9000}]}}]
    upload = sdk.files.create(file=("mixed.jsonl", jsonl(*good[:2], *bad, good[2])), purpose="batch")
    batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h",
                               metadata={"team": "evals"})
    assert batch.status == "validating" and batch.request_counts.total == 9 and batch.metadata == {"team": "evals"}
    done = finished(sdk, batch.id)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (9, 3, 6)
    assert done.completed_at >= done.in_progress_at >= done.created_at
    out = rows(sdk, done.output_file_id)
    assert [r["custom_id"] for r in out] == ["good-0", "good-1", "good-2"]
    direct = sdk.chat.completions.create(**good[0]["body"]).choices[0].message.content
    assert out[0]["response"]["status_code"] == 200 and out[0]["response"]["body"]["object"] == "chat.completion"
    assert out[0]["response"]["body"]["choices"][0]["message"]["content"] == direct
    errors = {r["custom_id"]: r for r in rows(sdk, done.error_file_id)}
    assert set(errors) == {None, "no-model", "elsewhere", "streamed", "no-body", "too-long"}
    assert errors["too-long"]["response"]["status_code"] == 400
    assert "context" in errors["too-long"]["response"]["body"]["error"]["message"]
    assert "not JSON" in errors[None]["error"]["message"]
    assert errors["no-model"]["response"]["status_code"] == 404
    assert "no-such-model" in errors["no-model"]["response"]["body"]["error"]["message"]
    assert "/v1/embeddings" in errors["elsewhere"]["error"]["message"]
    assert "stream" in errors["streamed"]["error"]["message"] and "body" in errors["no-body"]["error"]["message"]
    assert sdk.files.retrieve(done.output_file_id).purpose == "batch_output"
    assert batch.id in [b.id for b in sdk.batches.list()]


def test_a_responses_batch_answers_each_line_as_the_route_does_and_refuses_background(sdk):
    def line(custom_id: str, **extra) -> dict:
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/responses",
                "body": {"model": LLM, "input": f"say {custom_id}", "max_output_tokens": 4, **extra}}

    good = [line("r-0"), line("r-1", instructions="Be brief.")]
    upload = sdk.files.create(file=("responses.jsonl", jsonl(*good, line("queued", background=True))), purpose="batch")
    done = finished(sdk, sdk.batches.create(input_file_id=upload.id, endpoint="/v1/responses",
                                            completion_window="24h").id)
    assert done.status == "completed" and (done.request_counts.completed, done.request_counts.failed) == (2, 1), done
    out = rows(sdk, done.output_file_id)
    assert [r["custom_id"] for r in out] == ["r-0", "r-1"]
    answers = [Response.model_validate(r["response"]["body"]) for r in out]  # the SDK's own type
    for answer, sent in zip(answers, good):
        direct = sdk.responses.create(**sent["body"])
        assert (answer.status, answer.output_text) == (direct.status, direct.output_text) and answer.output_text
        assert sdk.responses.retrieve(answer.id).output_text == answer.output_text, "stored, as the route stores it"
    (queued,) = rows(sdk, done.error_file_id)
    assert queued["custom_id"] == "queued" and "background" in queued["error"]["message"], queued


def test_a_file_no_batch_could_run_is_refused_when_the_batch_is_made(sdk):
    for data, why in [(jsonl(chat_line("same"), chat_line("same")), "repeated: same"), (b"\n\n", "no requests")]:
        upload = sdk.files.create(file=("x.jsonl", data), purpose="batch")
        with pytest.raises(openai.BadRequestError, match=why):
            sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError, match="file-nope"):
        sdk.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")


def test_a_cancelled_batch_stops_and_keeps_what_it_answered(sdk):
    slow = [chat_line(f"slow-{i}", max_tokens=600) for i in range(12)]  # 0.3 s each, two at a time
    upload = sdk.files.create(file=("slow.jsonl", jsonl(*slow)), purpose="batch")
    batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    time.sleep(0.5)
    assert sdk.batches.cancel(batch.id).status == "cancelling"
    done = finished(sdk, batch.id)
    assert done.status == "cancelled" and done.cancelled_at is not None
    answered = done.request_counts.completed
    assert 0 < answered < 12, done.request_counts
    assert len(rows(sdk, done.output_file_id)) == answered
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        sdk.batches.cancel(batch.id)


def test_a_runner_that_starts_again_skips_answered_lines_and_runs_the_rest_once(client):
    """What a runner's restart leaves: a batch in progress with some lines' results stored. A new
    runner over the same stores answers only the others (the served tier kills a real one)."""
    lines = [chat_line(f"r-{i}") for i in range(6)]
    upload = FILES.write("file-resume-input", jsonl(*lines), "resume.jsonl", None)
    now = int(time.time())
    batch = BATCHES.put(Batch(id="batch_resume", endpoint="/v1/chat/completions", input_file_id=upload.id,
                              status="in_progress", created_at=now, expires_at=now + 3600, in_progress_at=now), None)
    for n in (0, 3):  # answered before the old runner stopped: kept as they were, not asked again
        BATCHES.keep_result(batch.id, n, True, {"custom_id": f"r-{n}", "response": {"status_code": 200, "body": "kept"}})

    done = resumed(client, batch.id, "completed")
    out = [json.loads(line) for line in b"".join(FILES.lines(done.output_file_id)).splitlines()]
    assert [r["custom_id"] for r in out] == [f"r-{i}" for i in range(6)]
    assert [r["response"]["body"] == "kept" for r in out] == [True, False, False, True, False, False]
    assert BATCHES.results(batch.id) == {}, "a finished batch's line results are dropped"


def test_a_key_sees_only_its_own_files_and_batches_and_its_batch_counts_against_it(client, sdk, state):
    admin = record_of(ApiKey(key_sha256=hash_key(ADMIN), id="batch-ops", scope="admin"))
    with state(keys=[admin]):
        head = {"Authorization": f"Bearer {ADMIN}"}
        made = [client.post("/api/keys", json={"name": n}, headers=head).json() for n in ("one", "two")]
        one, two = (sdk.with_options(api_key=m["key"]) for m in made)
        upload = one.files.create(file=("mine.jsonl", jsonl(chat_line("mine", max_tokens=5))), purpose="batch")
        batch = one.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
        for call in (lambda: two.files.retrieve(upload.id), lambda: two.batches.retrieve(batch.id),
                     lambda: two.batches.cancel(batch.id)):
            with pytest.raises(openai.NotFoundError):
                call()
        assert upload.id not in [f.id for f in two.files.list()] and batch.id not in [b.id for b in two.batches.list()]
        done = finished(one, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 1
        admin_sdk = sdk.with_options(api_key=ADMIN)
        assert batch.id in [b.id for b in admin_sdk.batches.list()]
        [answer] = rows(one, done.output_file_id)
        deadline = time.monotonic() + 5
        while (usage := client.get(f"/api/keys/{made[0]['id']}", headers=head).json()["usage"])["requests"] < 1:
            assert time.monotonic() < deadline, usage
            time.sleep(0.05)
        assert usage["completion_tokens"] == answer["response"]["body"]["usage"]["completion_tokens"] == 5


def test_a_batch_made_while_the_runner_is_away_is_stored_and_run_when_it_starts(client, sdk, app, monkeypatch):
    class Away:  # a runner's handle while Serve restarts it: the call waits
        class wake:
            @staticmethod
            def remote(batch_id):
                return asyncio.sleep(3600)

    monkeypatch.setattr(routes, "WAKE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(app.state, "batch_runner", Away())
    upload = sdk.files.create(file=("away.jsonl", jsonl(chat_line("while-away"))), purpose="batch")
    started = time.monotonic()
    batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "validating" and time.monotonic() - started < 3
    time.sleep(0.3)
    assert sdk.batches.retrieve(batch.id).status == "validating", "nothing ran it"

    async def runner_starts():
        BatchRunner(ServedApp(), BATCHES, FILES, RUNNER.settings).wake()  # as a new runner's constructor does

    client.portal.call(runner_starts)
    done = finished(sdk, batch.id)
    assert done.status == "completed" and [r["custom_id"] for r in rows(sdk, done.output_file_id)] == ["while-away"]


def test_a_batch_past_its_window_expires_and_its_lines_not_run_are_errors(client):
    """OpenAI's expiry: what ran is in the output, each line not run an error `batch_expired`."""
    lines = [chat_line(f"x-{i}") for i in range(3)]
    upload = FILES.write("file-expiry-input", jsonl(*lines), "expiry.jsonl", None)
    now = int(time.time())
    batch = BATCHES.put(Batch(id="batch_expiry", endpoint="/v1/chat/completions", input_file_id=upload.id,
                              status="in_progress", created_at=now - 90000, expires_at=now - 3600,
                              in_progress_at=now - 90000), None)
    BATCHES.keep_result(batch.id, 1, True, {"custom_id": "x-1", "response": {"status_code": 200, "body": "ran"}})

    done = resumed(client, batch.id, "expired")
    assert done.expired_at is not None and (done.request_counts.completed, done.request_counts.failed) == (1, 2)
    errors = [json.loads(line) for line in b"".join(FILES.lines(done.error_file_id)).splitlines()]
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [("x-0", "batch_expired"), ("x-2", "batch_expired")]


def test_file_contents_go_wherever_an_fsspec_url_says():
    """A cluster's files in an object store: any fsspec URL (here fsspec's in-memory file system)."""
    from serve_app.batches.files import FileStore
    from serve_app.kv import MemoryStore

    store = FileStore(MemoryStore(), "memory://smmf-test-files")
    made = store.write("file-url-test", b'{"a": 1}\n', "a.jsonl", "key-1")
    assert "memory" in store.fs.protocol and store.fs.exists("/smmf-test-files/file-url-test")
    assert list(store.lines(made.id)) == [b'{"a": 1}\n']
    with pytest.raises(Exception, match="No such File"):
        store.get(made.id, record_of(ApiKey(key="sk-other", id="key-2")))
    store.delete(made.id, None)
    assert not store.fs.exists("/smmf-test-files/file-url-test")
