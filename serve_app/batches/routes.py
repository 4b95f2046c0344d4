"""OpenAI's Files and Batch API: `/v1/files` and `/v1/batches`, as the openai SDK's `client.files`
and `client.batches` call them.

A route checks what it is given, stores it (files.py, store.py: blocking calls, run in a
thread) and, for a new batch, wakes the batch runner (runner.py), which does the work in its
own deployment. What a key may see: its own files and batches (an admin key every one).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from typing import Literal, Optional

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from serve_app.batches.protocol import (
    Batch,
    BatchCreateRequest,
    BatchList,
    FileDeleted,
    FileList,
    FileObject,
    custom_id_of,
)
from serve_app.dialects.openai.routes import OpenAIRoute
from serve_app.errors import InvalidRequest, ServeError
from serve_app.http.context import current_key

UPLOAD_SLACK = 64 * 1024  # a multipart body's own headers and boundaries, beyond the file
WAKE_TIMEOUT_S = 5.0
logger = logging.getLogger("ray.serve")


class FileTooLarge(ServeError):
    status_code = 413
    error_type = "invalid_request_error"


class FilesRoute(OpenAIRoute):
    def body_limit(self, request: Request) -> int:
        return request.app.state.batch_settings.max_file_bytes + UPLOAD_SLACK


router = APIRouter(route_class=OpenAIRoute)
uploads = APIRouter(route_class=FilesRoute)


@uploads.post("/v1/files")
async def upload_file(request: Request, file: UploadFile = File(...), purpose: str = Form(...)) -> FileObject:
    unread = sorted(set((await request.form()).keys()) - {"file", "purpose"})
    if unread:  # expires_after[...] and the like would change what is kept: refused, not ignored
        raise InvalidRequest(f"{', '.join(unread)}: not supported here (files are kept until deleted)")
    if purpose != "batch":
        raise InvalidRequest(f"purpose '{purpose}': this server keeps files for the Batch API only ('batch')")
    limit = request.app.state.batch_settings.max_file_bytes
    key = current_key()
    saved = await run_in_threadpool(request.app.state.files.save, file.file, file.filename or "upload.jsonl",
                                    purpose, key.id if key else None)
    if saved.bytes > limit:
        await run_in_threadpool(request.app.state.files.delete, saved.id, key)
        raise FileTooLarge(f"the file is {saved.bytes} bytes, over the limit of {limit} bytes (batches.max_file_bytes)")
    return saved


@router.get("/v1/files")
async def list_files(request: Request, purpose: Optional[str] = None, after: Optional[str] = None,
                     limit: int = Query(10000, ge=1, le=10000), order: Literal["asc", "desc"] = "desc") -> FileList:
    files = await run_in_threadpool(request.app.state.files.list, current_key(), purpose)
    return FileList.of(files if order == "desc" else files[::-1], after, limit)


@router.get("/v1/files/{file_id}")
async def retrieve_file(request: Request, file_id: str) -> FileObject:
    return await run_in_threadpool(request.app.state.files.get, file_id, current_key())


@router.get("/v1/files/{file_id}/content", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
async def file_content(request: Request, file_id: str) -> Response:
    def read() -> bytes:
        with request.app.state.files.open(file_id, current_key()) as f:
            return f.read()

    return Response(await run_in_threadpool(read), media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}")
async def delete_file(request: Request, file_id: str) -> FileDeleted:
    await run_in_threadpool(request.app.state.files.delete, file_id, current_key())
    return FileDeleted(id=file_id)


def _check_input(files, file_id: str, key, max_lines: int) -> int:
    """The number of requests in a batch's input file; 400 for a file no batch could run."""
    if files.get(file_id, key).purpose != "batch":
        raise InvalidRequest(f"input_file_id '{file_id}' is not a file uploaded with purpose 'batch'")
    custom_ids: Counter = Counter()
    lines = 0
    for raw in files.lines(file_id):
        if not raw.strip():
            continue
        lines += 1
        custom_id = custom_id_of(raw)  # None: a line the batch's error file will name when it runs
        if custom_id is not None:
            custom_ids[custom_id] += 1
    if not lines:
        raise InvalidRequest(f"input_file_id '{file_id}': the file has no requests")
    if lines > max_lines:
        raise InvalidRequest(f"input_file_id '{file_id}': {lines} requests, over the limit of {max_lines} per batch")
    repeated = sorted(c for c, n in custom_ids.items() if n > 1)
    if repeated:
        raise InvalidRequest(f"input_file_id '{file_id}': custom_id must be unique in a batch; repeated: "
                             + ", ".join(repeated[:5]))
    return lines


@router.post("/v1/batches")
async def create_batch(request: Request, req: BatchCreateRequest) -> Batch:
    state, key = request.app.state, current_key()
    total = await run_in_threadpool(_check_input, state.files, req.input_file_id, key,
                                    state.batch_settings.max_lines)
    now = int(time.time())
    batch = Batch(id="batch_" + uuid.uuid4().hex, endpoint=req.endpoint, input_file_id=req.input_file_id,
                  status="validating", created_at=now, expires_at=now + 24 * 3600, metadata=req.metadata,
                  request_counts={"total": total})
    await run_in_threadpool(state.batches.put, batch, key.id if key else None)
    try:  # a runner that is not there (restarting) picks the batch up as it starts: it is stored
        await asyncio.wait_for(state.batch_runner.wake.remote(batch.id), WAKE_TIMEOUT_S)
    except Exception as exc:
        logger.warning("batch %s stored; the runner did not answer (%s): it starts it when it is back",
                       batch.id, type(exc).__name__)
    return batch


@router.get("/v1/batches")
async def list_batches(request: Request, after: Optional[str] = None,
                       limit: int = Query(20, ge=1, le=100)) -> BatchList:
    batches = await run_in_threadpool(request.app.state.batches.list, current_key())
    return BatchList.of(batches, after, limit)


@router.get("/v1/batches/{batch_id}")
async def retrieve_batch(request: Request, batch_id: str) -> Batch:
    return await run_in_threadpool(request.app.state.batches.get, batch_id, current_key(), True)


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(request: Request, batch_id: str) -> Batch:
    store = request.app.state.batches
    batch = await run_in_threadpool(store.get, batch_id, current_key(), True)
    if batch.status in ("completed", "failed", "expired", "cancelled"):
        raise InvalidRequest(f"batch '{batch_id}' is {batch.status}: only a batch still running can be cancelled")
    await run_in_threadpool(store.ask_cancel, batch_id)
    return await run_in_threadpool(store.get, batch_id)

