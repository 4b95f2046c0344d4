"""API keys (serve_app/governance/keys.py): known by their hash, which key opens which route, which models."""

import pytest
from pydantic import ValidationError

from serve_app.config.keys import ApiKey
from serve_app.governance.keys import KeyBook, configured_keys, hash_key, keys_from_env, record_of

APP, OPS = "sk-app", "sk-ops"
BOOK = KeyBook([record_of(ApiKey(key_sha256=hash_key(APP), id="app", models=["m1"])),
                record_of(ApiKey(key=OPS, scope="admin"))])


def check(path: str, authorization):
    return BOOK.check(path, BOOK.identify(authorization))


def test_without_keys_every_route_is_open():
    book = KeyBook([])
    assert book.check("/api/worker/apply", None) is None and not book.enabled


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/beta/relevance", "/api/worker/generate",
                                  "/api/controller/models", "/api/models/status", "/v1/models"])
def test_every_route_needs_a_valid_bearer_key(path):
    assert check(path, None)[0] == 401
    assert check(path, "Bearer sk-wrong")[0] == 401
    assert check(path, f"Basic {APP}")[0] == 401
    assert check(path, f"Bearer {APP}") is None
    assert check(path, f"bearer {OPS}") is None  # the scheme is case-insensitive


@pytest.mark.parametrize("path", ["/api/worker/models/startup", "/api/worker/models/shutdown", "/api/worker/apply",
                                  "/api/keys", "/api/keys/key-1"])
def test_routes_that_change_which_models_run_or_manage_keys_need_an_admin_key(path):
    status, message = check(path, f"Bearer {APP}")
    assert status == 403 and "admin" in message
    assert check(path, f"Bearer {OPS}") is None


def test_the_health_route_stays_open():
    assert check("/api/health", None) is None


def test_a_key_is_known_by_its_hash_and_may_be_limited_to_models():
    app = BOOK.identify(f"Bearer {APP}")
    assert app.id == "app" and app.key_sha256 == hash_key(APP) and APP not in repr(app)
    assert app.may_call("m1") and not app.may_call("m2")
    assert "key_sha256" not in app.public()
    ops = BOOK.identify(f"Bearer {OPS}")
    assert ops.may_call("anything") and ops.id.startswith("config-")


def test_a_configured_key_is_a_hash_or_a_key_not_both():
    with pytest.raises(ValidationError, match="exactly one"):
        ApiKey(key="k", key_sha256=hash_key("k"))
    with pytest.raises(ValidationError):
        ApiKey(key_sha256="not-a-hash")


def test_keys_from_the_environment_default_to_inference(monkeypatch):
    keys = keys_from_env(" sk-a:admin, sk-b ,,")
    assert [(k.key.get_secret_value(), k.scope) for k in keys] == [("sk-a", "admin"), ("sk-b", "inference")]
    assert "sk-a" not in repr(keys), "a key never shows in a repr or a log"
    monkeypatch.setenv("TEST_KEYS", "sk-c:admin")
    [record] = configured_keys([], "TEST_KEYS")
    assert record.key_sha256 == hash_key("sk-c") and record.scope == "admin"
