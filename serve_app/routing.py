"""Deprecated import path, kept so that configs naming it keep deploying:
`serve_app.routing:RandomRouter` is `serve_app.request_routers:RandomRouter`."""

from serve_app.request_routers import RandomRouter

__all__ = ["RandomRouter"]
