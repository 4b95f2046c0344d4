"""A new Ray cluster brings back the models started through the API before (`make run` stopped
and started again): the manager's first act, once per cluster."""

from __future__ import annotations

import logging
import time

from ray.serve.schema import ServeDeploySchema

from serve_app.kv import gcs
from serve_app.lifecycle import catalog

logger = logging.getLogger("ray.serve")

# In this Ray cluster's GCS once its first manager has resumed what the store holds.
RESUMED_MARK = "manager-resumed"


async def resume(manager, controller) -> None:
    """Once per Ray cluster, as `manager` (the ModelManager) starts: the models started through
    the API before the cluster last stopped that Serve's config does not hold, applied again as
    one change through `controller` (manager.py's bounded controller call). A manager that
    restarts within a cluster (a `serve deploy` that changed the router, a crash) finds the
    mark and leaves Serve's config as it is: a model a new config removed stays removed."""
    if gcs.get(RESUMED_MARK) is not None:
        return
    gcs.put(RESUMED_MARK, str(time.time()))
    try:
        if missing := await bring_back(manager, controller):
            logger.warning("resumed the models started through the API before the cluster stopped: %s",
                           ", ".join(missing))
    except Exception as exc:  # the store still holds them: `smmf model start NAME` brings each back
        logger.error("could not resume the models started through the API (%s): %s",
                     ", ".join(sorted(catalog.running(manager.store))), exc)


async def bring_back(manager, controller) -> list[str]:
    """The models the store says were started through the API and Serve's config lacks, applied
    as one change; their names. Also what an import of a backup ends with (serve_app/state)."""
    kept = catalog.running(manager.store)
    if not kept:
        return []
    async with manager.changes.turn:  # no pass of other changes meanwhile (group_commit.py)
        raw = await controller("get_serve_instance_details")
        targets_now = await controller("get_app_configs")
        missing = {name: app for name, app in kept.items() if name not in targets_now}
        if not missing:
            return []
        config = manager._deploy_config(raw, targets_now)
        config["applications"] += list(missing.values())
        await controller("apply_config", ServeDeploySchema(**config))
    await manager.table.publish()
    return sorted(missing)
