"""Deprecated import path, kept so that configs naming it keep deploying:
`serve_app.router:build_app` is `serve_app.ingress:build_app`."""

from serve_app.ingress import build_app

__all__ = ["build_app"]
