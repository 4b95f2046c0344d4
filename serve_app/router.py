"""Deprecated import path, kept because running clusters' checkpointed configs name it:
`serve_app.router:build_app` is `serve_app.ingress.deployment:build_app`."""

from serve_app.ingress.deployment import build_app

__all__ = ["build_app"]
