"""The ingress deployment: the one HTTP entry to every model, and `build_app`, the
router application's builder (serve_config.yaml's `import_path`).

A request's path, file by file:
  http/access_log.py      the access-log line, written when the response ends
  http/boundary.py        body limit, API key and limits (governance/admission.py),
                          and any error in the shape of the route's dialect
  dialects/*/routes.py    the route: its body parsed by the dialect's protocol model
  serving/calls.py        the key may call the model, the request is within limits;
                          the registry finds the model's handle (serving/registry.py)
  serving/streams.py      a generation opens the model's stream through that handle
  deployments/*.py        Serve picks a replica, which runs the model (engines/ for LLMs)
  dialects/*/serving.py   the answer in the dialect's shape

The Serve deployment keeps its name, `router`, so existing configs that set its
options keep working.
"""

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from serve_app import tracing
from serve_app.config.router import RouterArgs
from serve_app.governance.governor import Governor
from serve_app.governance.keys import configured_keys
from serve_app.ingress.app import create_app
from serve_app.ingress.batch_runner import BatchRunnerDeployment
from serve_app.ingress.replica_state import replica_state
from serve_app.kv import Store, open_store
from serve_app.lifecycle.manager import ModelManager


# Serve's own access line is off: the app writes one per request (http/access_log.py) with the
# model, tokens, key and time split, under the same Serve request id; with both, each request
# printed two lines.
@serve.deployment(name="router", max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.1},
                  logging_config={"enable_access_log": False})
@serve.ingress()
class Ingress:
    """The app is built in the replica, after this constructor, with what its routes use
    (Serve calls `__serve_build_asgi_app__`): an app given to `serve.ingress(app)` would be
    a frozen copy made when this module is imported, whose state the replica could not set."""

    def __init__(self, args: RouterArgs, manager: DeploymentHandle, governor: DeploymentHandle, store: Store,
                 batch_runner: DeploymentHandle):
        tracing.setup("smmf-serve/ingress")
        self.state = replica_state(args, manager, governor, store, batch_runner)

    def __serve_build_asgi_app__(self):
        return create_app(**self.state)


def build_app(args: dict) -> Application:
    # Validated here, at build time, so a bad config fails `serve deploy` with the field's name.
    router_args = RouterArgs.model_validate(args)
    configured = configured_keys(router_args.api_keys, router_args.api_keys_env)
    store = open_store(router_args.state.store, router_args.state.path)  # travels to replicas as its path
    manager = ModelManager.bind(router_args.sources, router_args.apply_timeout_s, router_args.node_types,
                                router_args.registry_ttl_s, store, tuple(router_args.remove_models))
    governor = Governor.bind(configured, store)
    runner = BatchRunnerDeployment.bind(router_args, manager, governor, store)
    return Ingress.bind(router_args, manager, governor, store, runner)
