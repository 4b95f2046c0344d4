"""lifecycle/resume.py's bring_back against a stop applied at the same moment: the stop's model is
not brought back (a race the clean-clone run of make test found: the keeper read which models
were started through the API, waited for the manager's turn while a stop held it, then started
the stopped model again)."""

import asyncio
from types import SimpleNamespace

from serve_app.kv import MemoryStore
from serve_app.lifecycle import catalog
from serve_app.lifecycle.group_commit import GroupCommit
from serve_app.lifecycle.resume import bring_back


def test_a_model_stopped_while_the_keeper_waits_for_its_turn_stays_stopped():
    async def go():
        store, targets, applied = MemoryStore(), {"router": {}, "m": {"name": "m"}}, []
        catalog.record_running(store, "m", {"name": "m"})
        release = asyncio.Event()

        async def stop_pass(batch):  # what the manager's pass does for a stop: apply, then drop it
            await release.wait()
            targets.pop("m")
            catalog.drop_running(store, "m")
            for _, done in batch:
                done.set_result("stopped")
            return []

        async def controller(method, *args):
            if method == "apply_config":
                applied.append(args)
            return dict(targets) if method == "get_app_configs" else {"applications": {}}

        async def publish():
            pass

        manager = SimpleNamespace(store=store, changes=GroupCommit(stop_pass), table=SimpleNamespace(publish=publish),
                                  _deploy_config=lambda raw, apps: {"applications": list(apps.values())})
        stop = asyncio.create_task(manager.changes.submit("stop m"))
        await asyncio.sleep(0)  # the stop's pass holds the turn
        keeper = asyncio.create_task(bring_back(manager, controller))
        await asyncio.sleep(0)  # the keeper waits for the turn, having seen m as started
        release.set()
        return await stop, await keeper, applied

    stopped, brought_back, applied = asyncio.run(go())
    assert stopped == "stopped"
    assert brought_back == [] and applied == [], "the keeper started the model a stop had just removed"
