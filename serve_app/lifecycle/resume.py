"""What was started through the API stays started: a new Ray cluster brings those models back
(`make run` stopped and started again: the manager's first act, once per cluster), and so does
a `serve deploy` of a config that leaves them out (the manager looks every KEEP_S). A config
removes one for good by naming it in the router's `remove_models`."""

from __future__ import annotations

import asyncio
import logging
import time

from ray.serve.schema import ServeDeploySchema

from serve_app.kv import gcs
from serve_app.lifecycle import catalog

logger = logging.getLogger("ray.serve")

# In this Ray cluster's GCS once its first manager has resumed what the store holds.
RESUMED_MARK = "manager-resumed"
# How often the manager looks for models started through the API that a new config left out.
KEEP_S = 5.0


def forget_removed(store, names: list[str]) -> None:
    """The models a config's `remove_models` names: no longer kept as started through the API,
    remembered as stopped (with their last config, so `start NAME` brings one back)."""
    kept = catalog.running(store)
    for name in names:
        if name in kept:
            catalog.remember(store, name, kept[name])
            catalog.drop_running(store, name)


async def keep(manager, controller) -> None:
    """For the manager's life: bring back, every KEEP_S, what a new config left out (bring_back)."""
    while True:
        await asyncio.sleep(KEEP_S)
        try:
            if missing := await bring_back(manager, controller):
                logger.warning("a new config left out models started through the API; started them again: %s "
                               "(the router's remove_models removes one for good)", ", ".join(missing))
        except Exception as exc:  # noqa: BLE001  (a controller restarting: the next look tries again)
            logger.warning("could not look for models a new config left out: %s", exc)


async def resume(manager, controller) -> None:
    """As `manager` (the ModelManager) starts: once per Ray cluster, the models started through
    the API before the cluster last stopped that Serve's config does not hold, applied again as
    one change through `controller` (manager.py's bounded controller call); then `keep`."""
    if gcs.get(RESUMED_MARK) is not None:
        return await keep(manager, controller)
    gcs.put(RESUMED_MARK, str(time.time()))
    try:
        if missing := await bring_back(manager, controller):
            logger.warning("resumed the models started through the API before the cluster stopped: %s",
                           ", ".join(missing))
    except Exception as exc:  # the store still holds them: `smmf model start NAME` brings each back
        logger.error("could not resume the models started through the API (%s): %s",
                     ", ".join(sorted(catalog.running(manager.store))), exc)
    await keep(manager, controller)


async def bring_back(manager, controller) -> list[str]:
    """The models the store says were started through the API and Serve's config lacks, applied
    as one change; their names. Also what an import of a backup ends with (serve_app/state)."""
    if not catalog.running(manager.store):
        return []
    async with manager.changes.turn:  # no pass of other changes meanwhile (group_commit.py)
        # Read again under the turn: a stop applied while this waited for it has dropped its model.
        kept = catalog.running(manager.store)
        targets_now = await controller("get_app_configs")  # small: the whole state only when needed
        missing = {name: app for name, app in kept.items() if name not in targets_now}
        if not missing:
            return []
        raw = await controller("get_serve_instance_details")
        config = manager._deploy_config(raw, targets_now)
        config["applications"] += list(missing.values())
        await controller("apply_config", ServeDeploySchema(**config))
    await manager.table.publish()
    return sorted(missing)
