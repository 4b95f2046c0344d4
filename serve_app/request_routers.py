"""Deprecated import path, kept because running clusters' configs and the stopped-model
catalog name it: `serve_app.request_routers:RandomRouter` is
`deployments.request_routers:RandomRouter`."""

from deployments.request_routers import ROUTERS, RandomRouter

__all__ = ["ROUTERS", "RandomRouter"]
