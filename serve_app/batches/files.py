"""Files for the Batch API: a record per file in the router's store (serve_app/kv.py), so every
ingress replica and the batch runner see the same files and a restart loses none, and the
contents under `batches.files_url` through fsspec.

Why fsspec for the contents: one interface for a local directory (make run's), a path every
node mounts, and object stores (s3://, gs://, abfs:// with their plug-ins), so a cluster can
keep files where its nodes all reach them; the store keeps only the small records.

A file belongs to the API key that uploaded it (a batch's output files to the batch's key):
another key reads it as not found; an admin key sees every file. Methods are blocking (the
store and the file system): the routes call them in a thread.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from typing import IO, Iterator, Optional

import fsspec

from serve_app.batches.protocol import FileObject
from serve_app.errors import NotFound
from serve_app.kv import Store

PREFIX = "file/"


def visible(owner: Optional[str], key) -> bool:
    """Whether the request's key (None: keys are off) may see what `owner` (a key id) made."""
    return key is None or key.scope == "admin" or key.id == owner


class FileStore:
    def __init__(self, kv: Store, files_url: str):
        self.kv = kv
        self.fs, root = fsspec.core.url_to_fs(os.path.expanduser(files_url))
        self.root = root.rstrip("/")

    def __reduce__(self):  # travels to the runner's replica as its settings
        return _reopen, (self.kv, self.fs.unstrip_protocol(self.root))

    def _path(self, file_id: str) -> str:
        return f"{self.root}/{file_id}"

    def _put(self, meta: FileObject, owner: Optional[str]) -> FileObject:
        self.kv.put(PREFIX + meta.id, json.dumps({"file": meta.model_dump(), "key": owner}))
        return meta

    def save(self, source: IO[bytes], filename: str, purpose: str, owner: Optional[str]) -> FileObject:
        """Copy an upload's contents in; its record last, so a listed file always has them."""
        file_id = "file-" + uuid.uuid4().hex
        self.fs.makedirs(self.root, exist_ok=True)
        with self.fs.open(self._path(file_id), "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        size = self.fs.size(self._path(file_id))
        return self._put(FileObject(id=file_id, bytes=size, created_at=int(time.time()), filename=filename,
                                    purpose=purpose), owner)

    def write(self, file_id: str, data: bytes, filename: str, owner: Optional[str]) -> FileObject:
        """A batch's output or error file, under an id of the batch's (written again, the same file)."""
        self.fs.makedirs(self.root, exist_ok=True)
        with self.fs.open(self._path(file_id), "wb") as out:
            out.write(data)
        return self._put(FileObject(id=file_id, bytes=len(data), created_at=int(time.time()), filename=filename,
                                    purpose="batch_output"), owner)

    def _record(self, file_id: str) -> Optional[dict]:
        raw = self.kv.get(PREFIX + file_id)
        return json.loads(raw) if raw else None

    def get(self, file_id: str, key) -> FileObject:
        record = self._record(file_id)
        if record is None or not visible(record["key"], key):
            raise NotFound(f"No such File object: {file_id}")
        return FileObject.model_validate(record["file"])

    def owner(self, file_id: str) -> Optional[str]:
        record = self._record(file_id)
        return record["key"] if record else None

    def open(self, file_id: str, key) -> IO[bytes]:
        self.get(file_id, key)
        return self.fs.open(self._path(file_id), "rb")

    def lines(self, file_id: str) -> Iterator[bytes]:
        """The file's lines (the runner's read: it checked the owner when the batch was made)."""
        with self.fs.open(self._path(file_id), "rb") as f:
            yield from f

    def list(self, key, purpose: Optional[str] = None) -> list[FileObject]:
        """The files `key` may see, newest first."""
        records = [json.loads(raw) for raw in self.kv.items(PREFIX).values()]
        files = [FileObject.model_validate(r["file"]) for r in records if visible(r["key"], key)]
        return sorted((f for f in files if purpose is None or f.purpose == purpose),
                      key=lambda f: (f.created_at, f.id), reverse=True)

    def delete(self, file_id: str, key) -> None:
        self.get(file_id, key)
        self.kv.delete(PREFIX + file_id)
        self.fs.rm(self._path(file_id))


def _reopen(kv: Store, url: str) -> FileStore:
    return FileStore(kv, url)
