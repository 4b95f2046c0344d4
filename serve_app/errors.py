"""Errors that carry their HTTP status; the router renders them for each API dialect."""

from __future__ import annotations


class ServeError(Exception):
    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(ServeError):
    status_code = 400
    error_type = "invalid_request_error"


class ModelNotFound(ServeError):
    status_code = 404
    error_type = "not_found_error"

    def __init__(self, model: str, available: list[str]):
        listed = ", ".join(available) or "none"
        super().__init__(f"model '{model}' does not exist; running models: {listed}")
        self.model, self.available = model, available


class WrongWorkerType(InvalidRequest):
    def __init__(self, model: str, worker_type: str, wanted: tuple[str, ...]):
        needed = " or ".join(wanted)
        super().__init__(f"model '{model}' is of worker type {worker_type}; this route needs {needed}")


class ModelNotReady(ServeError):
    status_code = 503
    error_type = "service_unavailable"

    def __init__(self, model: str, status: str, detail: str = ""):
        super().__init__(
            f"model '{model}' has no running replica (Serve status {status})" + (f": {detail}" if detail else "")
        )
