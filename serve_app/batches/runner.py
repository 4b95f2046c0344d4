"""The batch runner: works through each batch's lines and writes its output and error files.

Each line goes through the ingress's own FastAPI app, built in this process (deployment.py),
over httpx's ASGI transport: the same validation, model calls, fallbacks, error shapes and
key accounting as the line's request sent over HTTP, with no second copy of any of it. The
line runs as its batch's API key: the runner puts the key's id in the ASGI scope (KeyedApp),
which only code in this process can set, never a header a client could send; admission
(governance/admission.py) takes it from there, so a batch's tokens count against its key's
limits and budget, and a key revoked since stops its batch's lines (401 each).

A line answered 429 (its key's limits) or 503 (the model is starting, asleep or full) waits
and is tried again until the batch's window ends; any other answer is final, 2xx to the
output file and the rest to the error file, so one bad line never fails the batch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Optional

import httpx
from pydantic import ValidationError

from serve_app.batches.files import FileStore
from serve_app.batches.protocol import Batch, BatchLine, RequestCounts, custom_id_of
from serve_app.batches.store import BatchStore
from serve_app.config.batches import BatchSettings
from serve_app.governance.keys import BATCH_KEY
from serve_app.http.context import BATCH_LINE

logger = logging.getLogger("ray.serve")

RETRIED = (429, 503)
WATCH_S = 0.5  # how often a running batch looks for a cancel and its window's end
SAVE_EVERY_S = 0.5  # how often a running batch's record (request_counts) is written


class KeyedApp:
    """The ingress's app, every request in the ASGI scope carrying its batch's key id."""

    def __init__(self, app, key_id: Optional[str]):
        self.app, self.key_id = app, key_id

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope = {**scope, BATCH_LINE: True, **({BATCH_KEY: self.key_id} if self.key_id is not None else {})}
        await self.app(scope, receive, send)


def _result(custom_id: Optional[str], status: Optional[int] = None, body=None, error: Optional[dict] = None) -> dict:
    """A line of the output or error file, in OpenAI's shape."""
    response = None if status is None else {"status_code": status, "request_id": "req_" + uuid.uuid4().hex,
                                            "body": body}
    return {"id": "batch_req_" + uuid.uuid4().hex, "custom_id": custom_id, "response": response, "error": error}


def _invalid(custom_id: Optional[str], line_no: int, message: str) -> dict:
    return _result(custom_id, error={"code": "invalid_request", "message": f"line {line_no + 1}: {message}"})


class BatchRunner:
    def __init__(self, app, batches: BatchStore, files: FileStore, settings: BatchSettings):
        self.app, self.batches, self.files, self.settings = app, batches, files, settings
        self._running: dict[str, asyncio.Task] = {}

    def wake(self, batch_id: Optional[str] = None) -> None:
        """Run `batch_id`, or every unfinished batch (when this runner starts), unless running."""
        for bid in [batch_id] if batch_id else self.batches.unfinished():
            if bid not in self._running or self._running[bid].done():
                self._running[bid] = asyncio.get_running_loop().create_task(self._run(bid))

    async def _run(self, batch_id: str) -> None:
        try:
            await self._work(batch_id)
        except Exception:  # the record stays unfinished: the next start of this runner resumes it
            logger.exception("batch %s stopped", batch_id)

    async def _work(self, batch_id: str) -> None:
        owner = self.batches.owner(batch_id)
        batch = self.batches.get(batch_id)
        if batch.status == "validating":
            batch = self._save(batch.model_copy(update={"status": "in_progress", "in_progress_at": int(time.time())}),
                               owner)
        lines = await asyncio.to_thread(lambda: [ln for ln in self.files.lines(batch.input_file_id) if ln.strip()])
        done = await asyncio.to_thread(self.batches.results, batch_id)
        counts = RequestCounts(total=len(lines), completed=sum(r["ok"] for r in done.values()),
                               failed=sum(not r["ok"] for r in done.values()))
        end = self._stop_reason(batch) or "completed"  # where a runner stopped while finalizing
        if batch.status in ("in_progress", "cancelling"):
            end = await self._run_lines(batch, owner, lines, set(done), counts)
        await self._finish(batch.model_copy(update={"request_counts": counts}), owner, lines, end)

    async def _run_lines(self, batch: Batch, owner, lines: list[bytes], done: set[int], counts: RequestCounts) -> str:
        """Every line without a result, `concurrency` at a time; how the batch ends."""
        todo = iter([n for n in range(len(lines)) if n not in done])
        saved = [time.monotonic()]
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=KeyedApp(self.app, owner)),
                                   base_url="http://batch", timeout=None)

        async def worker():
            for n in todo:
                if time.time() >= batch.expires_at:  # no line starts past the window
                    return
                ok, result = await self._line(client, batch, n, lines[n])
                await asyncio.to_thread(self.batches.keep_result, batch.id, n, ok, result)
                counts.completed += ok
                counts.failed += not ok
                if time.monotonic() - saved[0] > SAVE_EVERY_S:
                    saved[0] = time.monotonic()
                    self._save(batch.model_copy(update={"request_counts": counts}), owner)

        stop = self._stop_reason(batch)
        if stop:
            return stop
        workers = asyncio.ensure_future(asyncio.gather(*(worker() for _ in range(self.settings.concurrency))))
        try:
            while not workers.done():
                await asyncio.wait({workers}, timeout=WATCH_S)
                stop = self._stop_reason(batch)
                if stop and not workers.done():
                    workers.cancel()  # the lines in flight close their model streams
                    return stop
            await workers
            unrun = counts.completed + counts.failed < counts.total
            return (self._stop_reason(batch) or "completed") if unrun else "completed"
        finally:
            await client.aclose()

    def _stop_reason(self, batch: Batch) -> Optional[str]:
        if self.batches.cancel_asked(batch.id):
            return "cancelled"
        return "expired" if time.time() >= batch.expires_at else None

    async def _line(self, client: httpx.AsyncClient, batch: Batch, n: int, raw: bytes) -> tuple[bool, dict]:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            return False, _invalid(None, n, f"not JSON ({exc})")
        try:
            line = BatchLine.model_validate(parsed)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
            return False, _invalid(custom_id_of(parsed), n, problems)
        if line.url != batch.endpoint:
            return False, _invalid(line.custom_id, n, f"url {line.url} is not this batch's endpoint {batch.endpoint}")
        if line.body.get("stream"):
            return False, _invalid(line.custom_id, n, "stream: a batch's answers are not streamed")
        if line.body.get("background"):  # a Responses line would answer "queued", its answer never in the batch's file
            return False, _invalid(line.custom_id, n, "background: a batch's line is answered in the batch")
        while True:
            answer = await client.post(line.url, json=line.body)
            if answer.status_code not in RETRIED or time.time() >= batch.expires_at:
                break
            await asyncio.sleep(min(30.0, float(answer.headers.get("retry-after") or 1)))
        try:
            body = answer.json()
        except ValueError:
            body = {"error": {"message": answer.text}}
        return answer.status_code < 400, _result(line.custom_id, answer.status_code, body)

    async def _finish(self, batch: Batch, owner, lines: list[bytes], end: str) -> None:
        """The output and error files (under ids of the batch's own, so a finish done twice writes
        the same files), then the record, then the lines' results go."""
        now = int(time.time())
        batch = self._save(batch.model_copy(update={"status": "finalizing", "finalizing_at": now}), owner)
        results = await asyncio.to_thread(self.batches.results, batch.id)
        ok = [results[n]["line"] for n in sorted(results) if results[n]["ok"]]
        failed = [results[n]["line"] for n in sorted(results) if not results[n]["ok"]]
        if end == "expired":  # OpenAI's: each line not run is an error of its own
            for n in (n for n in range(len(lines)) if n not in results):
                failed.append(_result(custom_id_of(lines[n]), error={"code": "batch_expired",
                                                        "message": "this request could not be run in the batch's window"}))
        hex_id = batch.id.removeprefix("batch_")
        files = {}
        for kind, rows in (("output", ok), ("error", failed)):
            if rows:
                data = "".join(json.dumps(r) + "\n" for r in rows).encode()
                written = await asyncio.to_thread(self.files.write, f"file-{hex_id}-{kind}", data,
                                                  f"{batch.id}_{kind}.jsonl", owner)
                files[f"{kind}_file_id"] = written.id
        counts = RequestCounts(total=len(lines), completed=len(ok), failed=len(failed))
        self._save(batch.model_copy(update={"status": end, f"{end}_at": int(time.time()), "request_counts": counts,
                                            **files}), owner)
        await asyncio.to_thread(self.batches.drop_results, batch.id)
        logger.info("batch %s %s: %d answered, %d failed", batch.id, end, len(ok), len(failed))

    def _save(self, batch: Batch, owner) -> Batch:
        return self.batches.put(batch, owner)

