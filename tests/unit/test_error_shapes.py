"""Errors: what a deployment raised becomes a status, and each dialect's shape of it."""

import json

import pytest
from ray.serve.exceptions import BackPressureError
from starlette.requests import Request

from serve_app.engines.base import PromptTooLongError
from serve_app.errors import (
    AuthError,
    InvalidRequest,
    ModelNotFound,
    ModelOverloaded,
    ServeError,
    as_serve_error,
    last_line,
)
from serve_app.http import error_response


def request(path: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""})


def test_what_a_deployment_raised_maps_to_a_status():
    too_long = as_serve_error(PromptTooLongError("Traceback ...\nthe prompt has 9000 tokens"))
    assert isinstance(too_long, InvalidRequest) and too_long.message == "the prompt has 9000 tokens"
    overloaded = as_serve_error(BackPressureError(num_queued_requests=16, max_queued_requests=16))
    assert isinstance(overloaded, ModelOverloaded) and overloaded.status_code == 503
    assert "saturated" in overloaded.message
    fault = as_serve_error(RuntimeError("boom"))
    assert fault.status_code == 500 and fault.message == "RuntimeError: boom"
    same = InvalidRequest("x")
    assert as_serve_error(same) is same


def test_openai_routes_answer_in_openai_shape():
    r = error_response(request("/v1/chat/completions"), InvalidRequest("bad max_tokens"), "max_tokens")
    body = json.loads(r.body)
    assert r.status_code == 400
    assert body == {"error": {"message": "bad max_tokens", "type": "invalid_request_error",
                              "param": "max_tokens", "code": 400}}


def test_dbgpt_routes_answer_in_fastapi_shape_and_list_models_on_404():
    r = error_response(request("/api/worker/embeddings"), ModelNotFound("x", ["a", "b"]))
    assert r.status_code == 404
    assert json.loads(r.body) == {"detail": "model 'x' does not exist; running models: a, b",
                                  "available_models": ["a", "b"]}


def test_a_saturated_model_says_when_to_retry():
    r = error_response(request("/v1/embeddings"), ModelOverloaded("saturated"))
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


@pytest.mark.parametrize("status, error_type", [(401, "authentication_error"), (403, "permission_error")])
def test_key_errors_are_openai_shaped_on_every_route(status, error_type):
    r = error_response(request("/api/worker/generate"), AuthError(status, "no key"))
    assert r.status_code == status and json.loads(r.body)["error"]["type"] == error_type


def test_a_replica_traceback_reduces_to_its_last_line():
    assert last_line("Traceback (most recent call last):\n  File x\nValueError: bad\n\n") == "ValueError: bad"
    assert last_line("") == "" and isinstance(ServeError("x"), Exception)
