"""The batch runner's Serve deployment (serve_app/batches/runner.py), in the router
application beside the ingress.

One replica: a batch is worked by one runner, with no claims to share out. It builds the
ingress's own app over its own handles (the lines go through it: runner.py) and, as it
starts, resumes every unfinished batch, so a runner that Serve restarts (a crash, its
node lost, `serve deploy` of a new config) goes on where the last one stopped.
"""

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.batches.files import FileStore
from serve_app.batches.runner import BatchRunner
from serve_app.batches.store import BatchStore
from serve_app.config.router import RouterArgs
from serve_app.dialects.responses.store import ResponseStore
from serve_app.governance.admission import Admission
from serve_app.governance.keys import configured_keys
from serve_app.ingress.app import create_app
from serve_app.kv import Store
from serve_app.serving.calls import ModelCalls
from serve_app.serving.registry import ModelRegistry


@serve.deployment(name="batches", num_replicas=1, max_ongoing_requests=100, ray_actor_options={"num_cpus": 0})
class BatchRunnerDeployment:
    async def __init__(self, args: RouterArgs, manager: DeploymentHandle, governor: DeploymentHandle, store: Store):
        calls = ModelCalls(ModelRegistry(manager), args.limits, args.embeddings_batch_wait_ms, args.wake_timeout_s)
        admission = Admission(governor, configured_keys(args.api_keys, args.api_keys_env), args.open_docs)
        files = FileStore(store, args.batches.files_url)
        app = create_app(calls=calls, manager=manager, governor=governor, admission=admission,
                         response_store=ResponseStore(store), store=store, files=files, batches=BatchStore(store),
                         batch_settings=args.batches, max_body_bytes=0, log_prompts=args.limits.log_prompts)
        self.runner = BatchRunner(app, BatchStore(store), files, args.batches)
        self.runner.wake()  # every batch a runner before this one left unfinished

    async def wake(self, batch_id: str) -> None:
        self.runner.wake(batch_id)
