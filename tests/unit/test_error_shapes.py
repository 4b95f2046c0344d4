"""What a request raised becomes a ServeError with its status: the one mapping
(errors.as_serve_error) behind the error boundary. Each dialect's shape of an error is
tested through the app itself, in tests/inprocess/test_errors.py."""

from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError

from serve_app.engines.base import InvalidPromptError, PromptTooLongError
from serve_app.errors import InvalidRequest, ModelOverloaded, NotFound, as_serve_error, last_line


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


def test_a_replicas_error_arrives_as_its_own_message_without_ray_or_class_paths():
    traceback = "Traceback (most recent call last):\n  File x\nserve_app.engines.base.InvalidPromptError: bad"
    raised = RayTaskError("generate", traceback, InvalidPromptError("logit_bias names token 999999")).as_instanceof_cause()
    mapped = as_serve_error(raised)
    assert isinstance(mapped, InvalidRequest) and mapped.message == "logit_bias names token 999999"
    # A ServeError raised in a replica (the governor's KeyNotFound, say) keeps its status and message.
    missing = RayTaskError("revoke", traceback, NotFound("key 'k' does not exist")).as_instanceof_cause()
    assert as_serve_error(missing).status_code == 404 and as_serve_error(missing).message == "key 'k' does not exist"


def test_a_replica_traceback_reduces_to_its_last_line():
    assert last_line("Traceback (most recent call last):\n  File x\nValueError: bad\n\n") == "ValueError: bad"
    assert last_line("") == ""
