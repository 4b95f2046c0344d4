"""What the ingress's app uses in a Serve replica, built from the router's args: for an ingress
replica (deployment.py) and for the batch runner's own copy of the app (batch_runner.py), so a
batch's line meets the same limits, keys and models as the request sent over HTTP."""

from typing import Optional

from ray.serve.handle import DeploymentHandle

from serve_app.batches.files import FileStore
from serve_app.batches.store import BatchStore
from serve_app.config.router import RouterArgs
from serve_app.dialects.responses.store import ResponseStore
from serve_app.governance.admission import Admission
from serve_app.governance.keys import configured_keys
from serve_app.kv import Store
from serve_app.serving.calls import ModelCalls
from serve_app.serving.registry import ModelRegistry


def replica_state(args: RouterArgs, manager: DeploymentHandle, governor: DeploymentHandle, store: Store,
                  batch_runner: Optional[DeploymentHandle] = None) -> dict:
    """`create_app`'s keyword arguments (ingress/app.py)."""
    calls = ModelCalls(ModelRegistry(manager), args.limits, args.embeddings_batch_wait_ms, args.wake_timeout_s)
    admission = Admission(governor, configured_keys(args.api_keys, args.api_keys_env), args.open_docs)
    return {"calls": calls, "manager": manager, "governor": governor, "admission": admission,
            "response_store": ResponseStore(store), "store": store, "node_types": args.node_types,
            "max_body_bytes": args.limits.max_body_bytes, "log_prompts": args.limits.log_prompts,
            "files": FileStore(store, args.batches.files_url), "batches": BatchStore(store),
            "batch_runner": batch_runner, "batch_settings": args.batches}
