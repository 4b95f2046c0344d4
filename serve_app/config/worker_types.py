"""Which of Serve's applications are models, and of which worker type (llm, text2vec, reranker)."""

from __future__ import annotations

from typing import Optional

# The deployment name inside a model's application *is* its worker type: that is how
# the router tells models apart from other applications in Serve's state.
WORKER_TYPES = ("llm", "text2vec", "reranker")
# Each worker type's builder: the only code a request can select, and how an application
# Serve has not built yet (it has no deployments then) is known as a model.
IMPORT_PATHS = {worker_type: f"deployments.{worker_type}:build_app" for worker_type in WORKER_TYPES}


def worker_type_of(app: dict) -> Optional[str]:
    """The worker type of an application's config (a dict of serve_config.yaml), or None when it
    is not a model: its deployment's name, or before Serve has built it, its builder."""
    for dep in app.get("deployments") or []:
        if dep.get("name") in IMPORT_PATHS:
            return dep["name"]
    return next((worker_type for worker_type, path in IMPORT_PATHS.items() if app.get("import_path") == path), None)
