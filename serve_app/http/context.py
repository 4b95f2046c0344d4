"""What is known about the request being served, for its access-log line and its key's counts.

A route notes what it learned (model, tokens, span id); admission puts the request's
API key there (governance/admission.py); the access log (access_log.py) reads it all
when the response ends.
"""

import contextvars

from serve_app.fairness.ticket import DEFAULT_KEY, Ticket, band_for

# What a route learned about its request (model, tokens, span id), for the access
# log line written when the response ends. A mutable dict in a ContextVar, because
# Starlette streams a response body from a task that runs in a copy of the context.
access: contextvars.ContextVar[dict] = contextvars.ContextVar("smmf_access")

# The ASGI scope's entry that marks a batch's line: set by the batch runner in its own process
# (batches/runner.py), never from a request's headers. Such a request runs in the batch band.
BATCH_LINE = "smmf.batch_line"


def note(**fields) -> None:
    """Record fields for this request's access log line (a no-op outside a request)."""
    record = access.get(None)
    if record is not None:
        record.update({k: v for k, v in fields.items() if v is not None})


def current_key():
    """The API key of the request being served (None without keys)."""
    record = access.get(None)
    return record.get("key") if record is not None else None


def current_ticket(priority: int):
    """What the model's fair queue orders the request by (serve_app/fairness/): its key, the
    key's weight, and its band: the key's, lowered by the request's `priority`; a batch's
    line (the batch runner's, noted by the access log from its ASGI scope) runs in the batch band."""
    record = access.get(None) or {}
    key = record.get("key")
    band = "batch" if record.get("batch_line") else band_for(key.band if key else "standard", priority)
    return Ticket(key=key.id if key else DEFAULT_KEY, band=band, weight=key.weight if key else 1.0)


def current_session() -> str:
    """The request's `X-Session-Id` header ("" without one)."""
    record = access.get(None)
    return record.get("session", "") if record is not None else ""


def note_usage(prompt_tokens: int, completion_tokens: int = 0) -> None:
    """The request's tokens, for its access-log line and its key's counts."""
    note(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
