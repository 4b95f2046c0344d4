"""Errors that carry their HTTP status, and the one mapping of anything a request raised
(a deployment call's failure included) onto them.

Routes raise these, or let a deployment's exception through; the error boundary
(http/boundary.py) maps it with `as_serve_error` and the route's dialect renders it.
"""

from __future__ import annotations

from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError

from serve_app.engines.base import InvalidPromptError, PromptTooLongError
from serve_app.fairness.queue import QueueRefusal


class ServeError(Exception):
    status_code = 500
    error_type = "server_error"
    code = None  # OpenAI's machine-readable code, where it has one for the error

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(ServeError):
    status_code = 400
    error_type = "invalid_request_error"


class NotFound(ServeError):
    status_code = 404
    error_type = "not_found_error"


class Conflict(ServeError):
    status_code = 409
    error_type = "conflict_error"


class ModelNotFound(ServeError):
    status_code = 404
    error_type = "not_found_error"
    code = "model_not_found"

    def __init__(self, model: str, available: list[str]):
        listed = ", ".join(available) or "none"
        super().__init__(f"model '{model}' does not exist; running models: {listed}")
        self.model, self.available = model, available


class PromptTooLong(InvalidRequest):
    """The prompt (and the completion asked for) does not fit the model's context."""

    code = "context_length_exceeded"


class WrongWorkerType(InvalidRequest):
    def __init__(self, model: str, worker_type: str, wanted: tuple[str, ...]):
        needed = " or ".join(wanted)
        super().__init__(f"model '{model}' is of worker type {worker_type}; this route needs {needed}")


class ModelNotReady(ServeError):
    status_code = 503
    error_type = "service_unavailable"
    retry_after_s = 5  # Serve replaces a lost replica within seconds

    def __init__(self, model: str, status: str, detail: str = ""):
        super().__init__(
            f"model '{model}' has no running replica (Serve status {status})" + (f": {detail}" if detail else "")
        )


class ControllerUnavailable(ServeError):
    """Serve's controller does not answer (it restarts within seconds; replicas serve on)."""

    status_code = 503
    error_type = "service_unavailable"
    retry_after_s = 2


class ModelWaking(ServeError):
    """A model scaled to zero did not wake within the ingress's bound (`wake_timeout_s`)."""

    status_code = 503
    error_type = "service_unavailable"
    retry_after_s = 10

    def __init__(self, model: str, waited_s: float):
        super().__init__(f"model '{model}' is waking up from zero replicas and did not answer within "
                         f"{waited_s:g}s; retry shortly")


class AuthError(ServeError):
    """401: no valid key; 403: a valid key without the scope the route needs."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.error_type = "authentication_error" if status_code == 401 else "permission_error"
        self.code = "invalid_api_key" if status_code == 401 else None


class ModelOverloaded(ServeError):
    """The model's replicas and queue are full (Serve's max_queued_requests, or a band's place in
    a replica's fair queue: serve_app/fairness/)."""

    status_code = 503
    error_type = "service_unavailable"
    code = "model_overloaded"
    retry_after_s = 1


class OverShare(ServeError):
    """A full model's queue refused a key that holds more than its weight's share of it."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def as_serve_error(exc: BaseException) -> ServeError:
    """Map what a request raised to a ServeError. Ray re-raises a replica's exception as a
    RayTaskError that is also an instance of the original type; its `cause` is the
    original, whose message is the error itself, without Ray's traceback or class path."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, ServeError):
        return exc
    if isinstance(exc, PromptTooLongError):
        return PromptTooLong(last_line(str(exc)))
    if isinstance(exc, InvalidPromptError):
        return InvalidRequest(last_line(str(exc)))
    if isinstance(exc, QueueRefusal):
        if exc.over_share:
            return OverShare(exc.message, exc.retry_after_s)
        return ModelOverloaded(exc.message)
    if isinstance(exc, BackPressureError):
        return ModelOverloaded(f"the model is saturated, retry later: {last_line(str(exc))}")
    return ServeError(f"{type(exc).__name__}: {last_line(str(exc))}")


def last_line(text: str) -> str:
    """Ray prefixes a replica's error with its traceback; the last line is the error itself."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
