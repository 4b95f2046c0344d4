"""A local multi-node Ray cluster whose node types come from the shipped cluster.yaml.

Everything runs on one machine: the head is a real `ray start --head`, and the real
autoscaler "launches" worker nodes by starting more raylets on this machine (Ray's
fake_multinode provider). Worker nodes of type worker.gpu advertise pretend GPUs: Ray
only counts them, nothing touches CUDA.

    with SmmfAutoscalingCluster(idle_timeout_s=10) as cluster:   # start() ... shutdown()
        ray.init(address=cluster.address)
        ...
        cluster.kill_raylet(node_id)        # SIGKILL, no grace

Needs the `ray` CLI on PATH (start shells out to it). It stops only its own Ray: every process
whose command line names its session, and their children (the workers rename themselves), so
another Ray on this machine (the served tier's, run beside this one by `make test`) is left
alone. What it found on Ray 2.60:
- the PyPI wheel lacks the harness's base config (fake_multi_node/example.yaml), so this
  subclass writes the whole config; autoscaler v2 reads that file itself and cannot run;
- the fake provider names the head's type `ray.head.default`, whatever the config says;
- every node reports the machine's IP: nodes are told apart by node id;
- Serve's proxies on every node bind one port with SO_REUSEPORT, so a test could not pick
  one; RAY_SERVE_WORKER_PROXY_HTTP_PORT moves the workers' proxies to a port of their own;
- a killed node's replicas serve on until the GCS marks the node dead (health checks),
  and a draining proxy keeps an idle node busy for RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import psutil
import yaml
from ray.cluster_utils import AutoscalingCluster

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"

# The fake provider tags the head with this node type, whatever the config calls it
# (ray/autoscaler/_private/fake_multi_node/node_provider.py: FAKE_HEAD_NODE_TYPE), so
# cluster.yaml's head.cpu is renamed to it here; its resources are kept.
FAKE_HEAD_TYPE = "ray.head.default"

# Where the driver and the fake workers reach the GCS. Ray itself turns 127.0.0.1 into the
# machine's address for node IPs (every node reports the same IP), and GCS/raylets listen
# on all interfaces whatever we pass; only the dashboard and Serve's HTTP bind loopback.
HEAD_IP = "127.0.0.1"
GCS_PORT = 6379        # the fake provider's default; workers join <ip>:6379

# A node label naming the node's type, so a deployment can be pinned with
# ray_actor_options={"label_selector": {NODE_TYPE_LABEL: "head.cpu"}}. Ray 2.60 sets no
# node-type label itself (only ray.io/node-id); the autoscaler passes a node type's
# `labels` to the nodes it launches, and the head gets it from `ray start --labels`.
NODE_TYPE_LABEL = "smmf-node-type"


class SmmfAutoscalingCluster(AutoscalingCluster):
    """AutoscalingCluster with its config built from cluster.yaml, not example.yaml.

    The PyPI wheel ships without fake_multi_node/example.yaml, which the parent's
    _generate_config reads; this class writes the whole config itself.

    Args:
        head_cpus / worker_cpus: logical CPUs per node (Ray only counts them; the machine
            has 2 real cores whatever we say). cluster.yaml leaves CPU to detection.
        worker_gpus: pretend GPUs per worker.gpu node; default: cluster.yaml's GPU.
        worker_min_workers: 0 for the tests (cluster.yaml keeps 1 GPU node warm).
        worker_max_workers: default cluster.yaml's (4); also caps the cluster total.
        idle_timeout_s: the autoscaler removes a worker idle this long (cluster.yaml: 10 min).
        worker_proxy_port: if set, Serve proxies on worker nodes bind this port instead of
            http_options.port (RAY_SERVE_WORKER_PROXY_HTTP_PORT; the head is exempt), so a
            test can tell the head's proxy from a worker's. See proxy_port_for(). Two or
            more workers' proxies share it (SO_REUSEPORT: the kernel picks one per
            connection). None: every proxy shares http_options.port with the head's.
        heartbeat_timeout_s: autoscaler v1 terminates a node it has not heard from this long
            (AUTOSCALER_HEARTBEAT_TIMEOUT_S, Ray's default 30).
        object_store_mb: object store per node; small, so 5 nodes fit in /dev/shm.
        system_config: passed to `ray start --system-config` (e.g. GCS health check knobs).
        env: extra environment for every Ray process (head, autoscaler, fake workers).
        autoscaler_v2: kept from the parent, but with the PyPI wheel v2 does not run: its
            autoscaler reads fake_multi_node/example.yaml itself (FileNotFoundError in
            monitor.log) and never launches a node.
    """

    def __init__(
        self,
        cluster_yaml: Path = CLUSTER_YAML,
        *,
        head_cpus: float = 2,
        worker_cpus: float = 1,
        worker_gpus: Optional[float] = None,
        worker_min_workers: int = 0,
        worker_max_workers: Optional[int] = None,
        idle_timeout_s: float = 10,
        worker_proxy_port: Optional[int] = 8001,
        heartbeat_timeout_s: int = 30,
        object_store_mb: int = 150,
        system_config: Optional[dict] = None,
        env: Optional[dict] = None,
        autoscaler_v2: bool = False,
    ):
        shipped = yaml.safe_load(Path(cluster_yaml).read_text())
        types = shipped["available_node_types"]
        head_type, worker_type = shipped["head_node_type"], "worker.gpu"
        head_res = dict(types[head_type].get("resources", {}))  # {GPU: 0}
        head_res["CPU"] = head_cpus
        w = types[worker_type]
        w_res = dict(w.get("resources", {}))  # {GPU: 1}
        w_res["CPU"] = worker_cpus
        if worker_gpus is not None:
            w_res["GPU"] = worker_gpus
        w_res["object_store_memory"] = object_store_mb * 1024 * 1024
        max_w = worker_max_workers if worker_max_workers is not None else w["max_workers"]
        worker_types = {
            worker_type: {
                "resources": w_res,
                "labels": {NODE_TYPE_LABEL: worker_type},
                "node_config": {},  # EC2 settings mean nothing to the fake provider
                "min_workers": worker_min_workers,
                "max_workers": max_w,
            }
        }
        self.head_cpus = head_cpus
        self.object_store_mb = object_store_mb
        self.worker_proxy_port = worker_proxy_port
        self.address = f"{HEAD_IP}:{GCS_PORT}"
        self._env = dict(env or {})
        self._env["AUTOSCALER_HEARTBEAT_TIMEOUT_S"] = str(heartbeat_timeout_s)
        if worker_proxy_port is not None:
            # Read by each proxy actor at import time (serve/_private/constants.py); the
            # fake workers' raylets inherit the autoscaler's environment, which inherits
            # the `ray start --head` one set here.
            self._env["RAY_SERVE_WORKER_PROXY_HTTP_PORT"] = str(worker_proxy_port)
        self._system_config = system_config
        self._config_file: Optional[str] = None
        super().__init__(
            head_resources=head_res,
            worker_node_types=worker_types,
            autoscaler_v2=autoscaler_v2,
            upscaling_speed=shipped.get("upscaling_speed", 1.0),
            max_workers=max_w,
            idle_timeout_minutes=idle_timeout_s / 60.0,
            cluster_name="smmf-serve-local",
        )

    # The parent reads example.yaml here; we write the config that file would give.
    def _generate_config(self, head_resources, worker_node_types, autoscaler_v2=False, **kw):
        config = {
            "cluster_name": "fake_multinode",
            "max_workers": 4,
            "provider": {
                "type": "fake_multinode",
                # All nodes share one IP, so the autoscaler must match them by node id.
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,        # no SSH, no setup commands
                "disable_launch_config_check": True,
                "gcs_address": f"{HEAD_IP}:{GCS_PORT}",  # where fake workers join
            },
            "available_node_types": {
                **worker_node_types,
                FAKE_HEAD_TYPE: {"resources": dict(head_resources), "node_config": {}, "max_workers": 0},
            },
            "head_node_type": FAKE_HEAD_TYPE,
            "upscaling_speed": 1.0,         # example.yaml's values; __init__ overrides
            "idle_timeout_minutes": 0.1,
            "auth": {},
            "docker": {},
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "rsync_exclude": [],
            "rsync_filter": [],
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }
        if autoscaler_v2:
            from ray.cluster_utils import FAKE_HEAD_NODE_ID

            config["provider"]["launch_multiple"] = True
            config["provider"]["head_node_id"] = FAKE_HEAD_NODE_ID
        config.update(kw)
        return config

    @property
    def config(self) -> dict:
        return self._config

    def serve_node_types(self) -> dict[str, dict[str, float]]:
        """The node types as the router's `node_types` arg declares them (cluster.yaml's names)."""
        types = self._config["available_node_types"]
        return {("head.cpu" if name == FAKE_HEAD_TYPE else name): {k: v for k, v in t["resources"].items()
                                                                   if k in ("CPU", "GPU")}
                for name, t in types.items()}

    # Own start() rather than the parent's: it binds the dashboard to loopback, labels the
    # head, never mutates head resources (the parent pops them, so a second start() would
    # lose the CPU count), and cleans up when `ray start` fails.
    def start(self, _system_config=None, override_env=None) -> "SmmfAutoscalingCluster":
        # A cluster left by an earlier run that was killed still holds the GCS port.
        leftover = session_on_gcs_port()
        if leftover:
            stop_session(leftover)
        fd, self._config_file = tempfile.mkstemp(prefix="smmf-fake-cluster-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(self._config, f)
        head = self._config["available_node_types"][FAKE_HEAD_TYPE]["resources"]
        cmd = [
            "ray", "start", "--head",
            f"--autoscaling-config={self._config_file}",
            f"--port={GCS_PORT}",
            "--dashboard-host=127.0.0.1",
            f"--num-cpus={head['CPU']}",
            f"--num-gpus={head.get('GPU', 0)}",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            "--disable-usage-stats",
            # Nothing here prints the workers' logs (the tier's driver has log_to_driver=False), and
            # a log monitor lists and reads the logs folder in a busy loop while any log grows
            # (tests/conftest.py). The fake worker nodes still start one each: Ray's fake node
            # provider builds their RayParams with no way to leave it out.
            "--include-log-monitor=false",
            f"--labels={NODE_TYPE_LABEL}=head.cpu",
        ]
        sysconf = _system_config or self._system_config
        if sysconf:
            cmd.append("--system-config=" + json.dumps(sysconf, separators=(",", ":")))
        # Token auth on, as cluster.yaml runs its head (a token file a local ray.init() made earlier
        # would turn it on anyway); the driver must have RAY_AUTH_MODE=token before importing Ray.
        if not (Path.home() / ".ray" / "auth_token").exists():
            subprocess.run(["ray", "get-auth-token", "--generate"], check=True, capture_output=True)
        env = {"RAY_AUTH_MODE": "token", **os.environ, "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1",
               **self._env}
        if self._autoscaler_v2:
            from ray.cluster_utils import FAKE_HEAD_NODE_ID

            env.update(RAY_enable_autoscaler_v2="1", RAY_CLOUD_INSTANCE_ID=FAKE_HEAD_NODE_ID,
                       RAY_OVERRIDE_NODE_ID_FOR_TESTING=FAKE_HEAD_NODE_ID)
        env.update(override_env or {})
        try:
            subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=120)
        except subprocess.CalledProcessError as e:
            self.shutdown()
            raise RuntimeError(f"ray start failed:\n{e.stdout}\n{e.stderr}") from e
        except BaseException:
            self.shutdown()
            raise
        self.session = session_on_gcs_port()
        return self

    def shutdown(self) -> None:
        """Stops this cluster's Ray processes (fake workers too) and removes the config."""
        import ray

        if ray.is_initialized():
            ray.shutdown()
        session = getattr(self, "session", None) or session_on_gcs_port()
        if session:
            left = stop_session(session)
            if left:
                print(f"WARNING: Ray processes of {session} left after SIGKILL: {left}")
        if self._config_file and os.path.exists(self._config_file):
            os.unlink(self._config_file)
        try:
            from ray._private import services

            services.find_gcs_addresses.cache_clear()
        except AttributeError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.shutdown()

    # -- what a test needs to look at and break the nodes --------------------------------

    @staticmethod
    def nodes(alive_only: bool = True) -> list[dict]:
        """One dict per node: node_id, ip, alive, is_head, node_type, resources, raylet_pid.

        Needs ray.init(address=...) first. All nodes share the machine's IP (Ray turns
        127.0.0.1 into it), so the node id is what tells them apart. raylet_pid: the
        local raylet started with --node_id=<node_id>.
        """
        import ray

        out = []
        for n in ray.nodes():
            if alive_only and not n["Alive"]:
                continue
            res = n.get("Resources", {})
            is_head = "node:__internal_head__" in res
            pid = raylet_pid(n["NodeID"]) if n["Alive"] else None
            node_type = ((n.get("Labels") or {}).get(NODE_TYPE_LABEL)
                         or ("head.cpu" if is_head else node_type_of(pid)) or "?")
            out.append({
                "node_id": n["NodeID"],
                "ip": n["NodeManagerAddress"],
                "alive": n["Alive"],
                "is_head": is_head,
                "node_type": node_type,
                "resources": {k: v for k, v in res.items() if not k.startswith("node:")},
                "raylet_pid": pid,
            })
        return out

    def head_node_id(self) -> str:
        return next(n["node_id"] for n in self.nodes() if n["is_head"])

    def worker_nodes(self) -> list[dict]:
        return [n for n in self.nodes() if not n["is_head"]]

    def kill_raylet(self, node_id: str) -> int:
        """SIGKILL the raylet of `node_id` (no drain, no grace). Returns the pid killed.

        Measured here: the node's actor processes keep serving until GCS
        marks the node dead (~15 s with default health checks, ~3 s with
        health_check_period_ms=1000, timeout 1000, threshold 3); then they die and Serve
        replaces its replicas. The fake provider keeps listing the node until the
        autoscaler removes it (logged as idle), ~20-35 s after the kill.
        """
        node = next(n for n in self.nodes() if n["node_id"] == node_id)
        if node["is_head"]:
            raise ValueError("refusing to kill the head's raylet")
        pid = node["raylet_pid"]
        if pid is None:
            raise RuntimeError(f"no raylet process found for node {node_id}")
        os.kill(pid, signal.SIGKILL)
        return pid

    def proxy_port_for(self, node: dict, http_port: int = 8000) -> int:
        """The port the Serve proxy on `node` listens on (with this harness's env)."""
        if node["is_head"] or self.worker_proxy_port is None:
            return http_port
        return self.worker_proxy_port


def raylet_pid(node_id: str) -> Optional[int]:
    """Pid of the live raylet started with --node_id=<node_id>, on this machine.

    Its --node_manager_port is 0 (picked at start), so the node id is what to match.
    """
    flag = f"--node_id={node_id}"
    for p in psutil.process_iter(["name", "cmdline", "status"]):
        try:
            if (p.info["name"] == "raylet" and p.info["status"] != psutil.STATUS_ZOMBIE
                    and flag in (p.info["cmdline"] or [])):
                return p.pid
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def node_type_of(pid: Optional[int]) -> Optional[str]:
    """RAY_NODE_TYPE_NAME from a raylet's environment: the fake provider sets it on the
    workers it launches (the head has none). Ray 2.60 puts no node-type label on nodes."""
    if pid is None:
        return None
    try:
        return psutil.Process(pid).environ().get("RAY_NODE_TYPE_NAME")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def session_on_gcs_port() -> Optional[str]:
    """The session name of the Ray whose GCS listens on GCS_PORT (this harness's), if one runs."""
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            cmd = p.info["cmdline"] or []
            if p.info["name"] == "gcs_server" and f"--gcs_server_port={GCS_PORT}" in cmd:
                return next((a.split("=", 1)[1] for a in cmd if a.startswith("--session-name=")), None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def session_processes(session: str) -> list[psutil.Process]:
    """Every live process of one Ray session: those whose command line names it (GCS, raylets,
    dashboard, autoscaler, log monitors, the fake nodes' raylets) and all their descendants (the
    workers, whose command lines read `ray::IDLE` and the like)."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != os.getpid() and any(session in a for a in p.info["cmdline"] or []):
                for q in [p, *p.children(recursive=True)]:
                    found[q.pid] = q
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return [p for p in found.values() if _alive(p)]


def stop_session(session: str) -> list[int]:
    """SIGKILLs a session's processes (as `ray stop --force` does, but for this session only);
    returns the pids still alive after a few tries, for the caller to report."""
    for _ in range(5):
        procs = session_processes(session)
        if not procs:
            return []
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=3)
    return [p.pid for p in session_processes(session)]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(pred, timeout_s: float, interval_s: float = 0.25, what: str = "condition"):
    """Poll pred() until truthy; return (value, seconds waited). Raises TimeoutError."""
    t0 = time.monotonic()
    while True:
        try:
            v = pred()
        except Exception:  # noqa: BLE001  (the cluster is expected to be mid-change)
            v = None
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)
