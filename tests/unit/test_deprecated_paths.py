"""Every import path a running cluster's checkpointed config or the stopped-model catalog may
name resolves, through Serve's own resolver, to the object its new path names.
(tests/served/test_governance.py deploys two of them: its router and a model.)"""

import pytest
from ray._common.utils import import_attr

NEW = {
    "build_app": "serve_app.ingress.deployment:build_app",
    "RandomRouter": "deployments.request_routers:RandomRouter",
}


@pytest.mark.parametrize("old, new", [
    ("serve_app.router:build_app", NEW["build_app"]),
    ("serve_app.ingress:build_app", NEW["build_app"]),
    ("serve_app.routing:RandomRouter", NEW["RandomRouter"]),
    ("serve_app.request_routers:RandomRouter", NEW["RandomRouter"]),
])
def test_an_old_path_is_the_new_object(old, new):
    assert import_attr(old) is import_attr(new)


def test_the_shipped_configs_name_the_new_paths():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for config in ("serve_config.yaml", "k8s/rayservice.yaml"):
        text = (root / config).read_text()
        assert NEW["build_app"] in text and "serve_app.router:" not in text, config
