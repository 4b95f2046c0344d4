"""The fuzz tier: every route fuzzed in-process, from our own `/openapi.json` (schemathesis) and
from each route's fields (hypothesis), on the in-process tier's app over its local models. No Ray.

Apart from tests/inprocess so that the quick loop (`pytest tests/unit tests/inprocess`) stays
under a minute: the fuzz took 37 of its 89 s in `make test` (2026-12-07), which runs this tier
in a lane beside the others. The app, models and clients are the in-process tier's own fixtures,
imported from its conftest rather than copied.
"""

from inprocess.conftest import app, batching_outside_a_replica, client, no_ray, registry, sdk, state  # noqa: F401
