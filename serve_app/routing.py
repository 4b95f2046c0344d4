"""Deprecated import path, kept because running clusters' configs and the stopped-model
catalog name it: `serve_app.routing:RandomRouter` is `deployments.request_routers:RandomRouter`."""

from deployments.request_routers import RandomRouter

__all__ = ["RandomRouter"]
