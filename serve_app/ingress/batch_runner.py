"""The batch runner's Serve deployment (serve_app/batches/runner.py), in the router
application beside the ingress.

One replica: a batch is worked by one runner, with no claims to share out. It builds the
ingress's own app over its own handles (the lines go through it: runner.py) and, as it
starts, resumes every unfinished batch, so a runner that Serve restarts (a crash, its
node lost, `serve deploy` of a new config) goes on where the last one stopped.
"""

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.batches.runner import BatchRunner
from serve_app.config.router import RouterArgs
from serve_app.ingress.app import create_app
from serve_app.ingress.replica_state import replica_state
from serve_app.kv import Store


@serve.deployment(name="batches", num_replicas=1, max_ongoing_requests=100, ray_actor_options={"num_cpus": 0})
class BatchRunnerDeployment:
    async def __init__(self, args: RouterArgs, manager: DeploymentHandle, governor: DeploymentHandle, store: Store):
        state = replica_state(args, manager, governor, store)
        self.runner = BatchRunner(create_app(**state), state["batches"], state["files"], args.batches)
        self.runner.wake()  # every batch a runner before this one left unfinished

    async def wake(self, batch_id: str) -> None:
        self.runner.wake(batch_id)
