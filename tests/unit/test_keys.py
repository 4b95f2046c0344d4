"""API keys and their scopes (serve_app/auth.py): which key opens which route."""

import pytest

from serve_app.auth import ApiKey, KeyChecker, keys_from_env

KEYS = KeyChecker([ApiKey(key="sk-app", scope="inference"), ApiKey(key="sk-ops", scope="admin")])


def test_without_keys_every_route_is_open():
    assert KeyChecker([]).check("/api/worker/apply", None) is None
    assert not KeyChecker([]).enabled


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/beta/relevance", "/api/worker/generate"])
def test_model_routes_need_a_valid_bearer_key(path):
    assert KEYS.check(path, None)[0] == 401
    assert KEYS.check(path, "Bearer sk-wrong")[0] == 401
    assert KEYS.check(path, "Basic sk-app")[0] == 401
    assert KEYS.check(path, "Bearer sk-app") is None
    assert KEYS.check(path, "bearer sk-ops") is None  # the scheme is case-insensitive


@pytest.mark.parametrize("path", ["/api/worker/models/startup", "/api/worker/models/shutdown", "/api/worker/apply"])
def test_routes_that_change_which_models_run_need_an_admin_key(path):
    status, message = KEYS.check(path, "Bearer sk-app")
    assert status == 403 and "admin" in message
    assert KEYS.check(path, "Bearer sk-ops") is None


def test_the_health_route_stays_open():
    assert KEYS.check("/api/health", None) is None


def test_keys_from_the_environment_default_to_inference():
    keys = keys_from_env(" sk-a:admin, sk-b ,,")
    assert [(k.key.get_secret_value(), k.scope) for k in keys] == [("sk-a", "admin"), ("sk-b", "inference")]
    assert "sk-a" not in repr(keys), "a key never shows in a repr or a log"
