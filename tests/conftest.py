"""One real Ray + Serve instance per test session, running the default serve_config.yaml.

Only tests that ask for `serve_instance` (or `base_url`, `client`) start it, so the
unit tier (`pytest tests/unit`) runs in seconds without Ray.
"""

import importlib.util
import os

import httpx
import pytest
from helpers import (
    LLM,
    QUIET_SERVE_ENV,
    TIER_MAX_NEW_TOKENS,
    VLLM_APP,
    free_port,
    load_config,
    running_vllm,
    wait_for_apps,
    with_state_file,
)

# Short: Ray's unix sockets live under it, and a socket's path is limited to 107 bytes. `make test`
# names another for the DB-GPT lane, whose Serve runs beside the served lane's.
SERVED_TEMP_DIR = os.environ.get("SMMF_TEST_RAY_DIR", "/tmp/ray-served")


@pytest.fixture(scope="session")
def serve_instance(tmp_path_factory):
    import ray
    from ray import serve
    from ray._private.node import Node
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    # 2 real cores: oversubscribe logical CPUs so every replica (and the extra apps
    # some tests deploy) can be placed. Two pretend GPUs let tests check placement.
    # "local": a new cluster of its own, never one Ray recorded earlier on this machine. Its own
    # temp dir: `make test` runs the cold tier's `make run` beside this tier, and a Ray head writes
    # Prometheus's discovery file into its temp dir, which for `make run` is /tmp/ray.
    # No dashboard: nothing here reads it (tests call Serve's controller), and it cost about 1 CPU-s
    # at start and 0.03 of a core while idle, measured here, for the whole of each lane that runs this.
    os.environ.update(QUIET_SERVE_ENV)  # read by the Ray processes this start spawns
    # No log monitor either: it copies every worker's log lines to the GCS for drivers that print
    # them, and none here does (log_to_driver=False). It lists the logs folder and reads what grew in
    # a loop that rests 0.1 s only when nothing did: the suite's log monitors took 219 CPU-s of one
    # `make test` (bench/suite_cpu.py).
    # `ray start --include-log-monitor=false` is Ray's switch for it; ray.init has none.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Node, "start_log_monitor", lambda self: None)
        ray.init(address="local", num_cpus=8, num_gpus=2, log_to_driver=False, include_dashboard=False,
                 _temp_dir=SERVED_TEMP_DIR)
    config = load_config()
    config["http_options"] = {"host": "127.0.0.1", "port": free_port()}
    with_state_file(config, tmp_path_factory.mktemp("state") / "state.db")  # never the user's own
    # The operator lets the API name model and adapter files under the session's own temp directory.
    router = next(app for app in config["applications"] if app["name"] == "router")
    router["args"]["sources"] = {"model_roots": [str(tmp_path_factory.getbasetemp())]}
    next(app for app in config["applications"] if app["name"] == LLM)["args"]["max_new_tokens"] = TIER_MAX_NEW_TOKENS
    serve.start(http_options=config["http_options"])
    _get_global_client().deploy_apps(ServeDeploySchema(**config))
    # Up to 10 minutes: under `make test` on a slow day this start took 305 s here and over 300 s
    # in CI (the replicas' imports and model loads, at a tenth of a core each), though about 25 s alone.
    wait_for_apps([app["name"] for app in config["applications"]], timeout_s=600)
    if os.environ.get("SMMF_TEST_SERVE_READY"):  # `make test` starts the other lanes' work on this
        open(os.environ["SMMF_TEST_SERVE_READY"], "w").close()
    yield config
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def base_url(serve_instance) -> str:
    http = serve_instance["http_options"]
    return f"http://{http['host']}:{http['port']}"


@pytest.fixture(scope="session")
def client(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def sdk(base_url):
    import openai

    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=300)


# vLLM cases exist only where vllm is installed (`make test-vllm`), rather than as skips in every run.
ENGINES = ["transformers"] + (["vllm"] if importlib.util.find_spec("vllm") else [])


@pytest.fixture(scope="module", params=ENGINES)
def llm(request, serve_instance):
    """The default LLM's name on each engine: the default config's model (transformers), then the
    same weights on vLLM, started for the module."""
    if request.param == "transformers":
        yield LLM
        return
    with running_vllm(serve_instance):
        yield VLLM_APP["name"]
