"""Every route fuzzed from the schema we publish (#33): schemathesis reads our own
`/openapi.json` and sends generated requests, valid and not, to each operation in turn,
through the session's TestClient (the in-process app over the simulated llm and MiniLM).

Asserted on every answer: never a 5xx; its status code is one the schema lists for that
operation; its body matches the schema published for that status; its content type too.
Bounded: FUZZ_SCHEMA_EXAMPLES examples per operation and mode (`make stress` sends 100),
derandomized (the same examples every run), no shrinking: a failure is reported as found.
With keys on, every route but `/api/health` answers 401 to a request without a key.

What it found on first run (fixed with it): no route documented its error statuses (400,
404, 403, ...), and `generate_stream`'s refusal was a NUL-ended frame sent as JSON.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serve_app.governance.keys import KeyRecord, hash_key

EXAMPLES = int(os.environ.get("FUZZ_SCHEMA_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]

# Routes that act through the manager deployment, which only a served cluster has (the served
# tier's lifecycle and state tests cover them): here they would only say it is missing.
NEEDS_THE_MANAGER = {"POST /api/worker/apply", "POST /api/worker/models/startup", "POST /api/worker/models/shutdown",
                     "POST /api/state", "GET /api/models/status"}


def operations(client) -> list:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    found = [result.ok() for result in schema.get_all_operations()]
    assert NEEDS_THE_MANAGER <= {op.label for op in found}, "a route left out here is no longer in the schema"
    return found


def fuzz(operation, client, mode: GenerationMode) -> list[str]:
    """EXAMPLES requests generated for one operation; what went wrong with each, if anything."""
    found: list[str] = []

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case):
        try:
            response = client.request(**case.as_transport_kwargs(base_url="http://127.0.0.1"))
        except UnicodeEncodeError:  # a header no HTTP client can send (httpx encodes them as ASCII)
            return
        sent_as_bytes(response)
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:  # a failure, or a group of them: one line each
            for failure in getattr(exc, "exceptions", [exc]):
                title = getattr(failure, "title", type(failure).__name__)
                found.append(f"{operation.label} ({mode.value}) -> {response.status_code}: {title}: "
                             f"{' '.join(str(failure).split())[:200]}")

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
        assert mode is GenerationMode.NEGATIVE, operation.label
    return found


def sent_as_bytes(response) -> None:
    """A multipart upload's body (POST /v1/files) is a stream, which schemathesis reads as bytes."""
    try:
        response.request.read()
    except Exception:  # one httpx cannot render twice (a generated part that is not a file)
        response.request._content = b""


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_route_answers_as_its_schema_says(client, mode):
    ops = [op for op in operations(client) if op.label not in NEEDS_THE_MANAGER]
    assert len(ops) > 20, [op.label for op in ops]
    found = [problem for operation in ops for problem in fuzz(operation, client, mode)]
    assert not found, "\n".join(sorted(set(found)))


def test_with_keys_on_every_route_but_health_answers_401_without_one(client, state):
    ops = operations(client)  # the schema itself is behind keys once they are on (#33)
    with state(keys=[KeyRecord(id="k", key_sha256=hash_key("sk-fuzz"), name="fuzz", scope="admin")]):
        for operation in ops:
            without_a_key(operation, client, 200 if operation.label == "GET /api/health" else 401)


def without_a_key(operation, client, want: int) -> None:
    """One valid request to the route, derandomized like the fuzz (`.example()` would draw anew each run)."""

    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    @settings(max_examples=1, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case):
        response = client.request(**case.as_transport_kwargs(base_url="http://127.0.0.1"))
        assert response.status_code == want, (operation.label, response.status_code, response.text[:300])
        sent_as_bytes(response)
        case.validate_response(response, checks=CHECKS)

    run()
