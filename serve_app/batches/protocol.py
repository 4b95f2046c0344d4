"""The Files and Batch API's bodies and answers, in OpenAI's shapes (the openai SDK's `FileObject`
and `Batch`), apart from the code that stores and runs them."""

from __future__ import annotations

import json
from typing import Any, Generic, Literal, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# The endpoints a batch may run, as OpenAI names them; each line's `url` must be its batch's.
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")
Item = TypeVar("Item")


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["batch", "batch_output"]
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: Optional[int] = None
    status_details: Optional[str] = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class BatchCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1)
    endpoint: Literal[ENDPOINTS]  # type: ignore[valid-type]
    completion_window: Literal["24h"] = Field(description="OpenAI's only window: 24 hours from creation.")
    metadata: Optional[dict[str, str]] = Field(default=None, max_length=16)


class RequestCounts(BaseModel):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchError(BaseModel):
    code: str
    message: str
    line: Optional[int] = None
    param: Optional[str] = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class Batch(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    input_file_id: str
    completion_window: str = "24h"
    status: Literal["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling",
                    "cancelled"]
    created_at: int
    expires_at: int
    in_progress_at: Optional[int] = None
    finalizing_at: Optional[int] = None
    completed_at: Optional[int] = None
    failed_at: Optional[int] = None
    expired_at: Optional[int] = None
    cancelling_at: Optional[int] = None
    cancelled_at: Optional[int] = None
    output_file_id: Optional[str] = None
    error_file_id: Optional[str] = None
    errors: Optional[BatchErrors] = None
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    metadata: Optional[dict[str, str]] = None


class Page(BaseModel, Generic[Item]):
    """OpenAI's cursor page: the items after the one with id `after`, at most `limit`."""

    object: Literal["list"] = "list"
    data: list[Item]
    first_id: Optional[str] = None
    last_id: Optional[str] = None
    has_more: bool = False

    @classmethod
    def of(cls, items: list, after: Optional[str], limit: int) -> "Page":
        if after is not None:
            ids = [i.id for i in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        data = items[:limit]
        return cls(data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None,
                   has_more=len(items) > limit)


FileList, BatchList = Page[FileObject], Page[Batch]


def custom_id_of(line) -> Optional[str]:
    """A line's `custom_id` where it has a string one: from the line's bytes, or from its JSON parsed."""
    if isinstance(line, bytes):
        try:
            line = json.loads(line)
        except ValueError:
            return None
    value = line.get("custom_id") if isinstance(line, dict) else None
    return value if isinstance(value, str) else None


class BatchLine(BaseModel):
    """One line of a batch's input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=512)
    method: Literal["POST"]
    url: str
    body: dict[str, Any]
