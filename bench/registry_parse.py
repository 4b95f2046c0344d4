"""What reading Serve's state costs the ingress, per refresh, by the number of models (#31).

Starts a local Ray and Serve with one simulated llm, takes the controller's real answer to
`get_serve_instance_details`, and copies that application under new names to make Serve
states of 4 to 100 models. For each it times, in one run, Serve's own parse of the whole
answer (`ServeInstanceDetails(**raw)`, what the registry did before) and ours
(`entries_from_raw`, what it does now), and the unpickling of the answer that the ingress's
event loop also pays as the controller's answer arrives, median of 20 each:

    .venv/bin/python bench/registry_parse.py
"""

from __future__ import annotations

import copy
import pickle
import statistics
import time


def capture() -> dict:
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client

    from deployments.llm import build_app

    ray.init(address="local", num_cpus=2, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": 0})
        serve.run(build_app({"source": "simulated", "engine": "simulated"}), name="sim", route_prefix=None)
        return ray.get(_get_global_client()._controller.get_serve_instance_details.remote())
    finally:
        serve.shutdown()
        ray.shutdown()


def with_models(raw: dict, count: int) -> dict:
    template = raw["applications"]["sim"]
    apps = {name: app for name, app in raw["applications"].items() if name != "sim"}
    for i in range(count):
        app = copy.deepcopy(template)
        app["name"] = f"sim-{i}"
        apps[app["name"]] = app
    return {**raw, "applications": apps}


def median_ms(fn, raw: dict, runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn(raw)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    from ray.serve.schema import ServeInstanceDetails

    from serve_app.serving.registry import entries_from_raw

    raw = capture()
    print("| models | ServeInstanceDetails(**raw) ms | entries_from_raw ms | unpickling the answer ms |")
    print("|---|---|---|---|")
    for count in (4, 20, 50, 100):
        state = with_models(raw, count)
        assert len(entries_from_raw(state)) == count
        print(f"| {count} | {median_ms(lambda r: ServeInstanceDetails(**r), state):.1f} "
              f"| {median_ms(entries_from_raw, state):.3f} | {median_ms(pickle.loads, pickle.dumps(state)):.2f} |")


if __name__ == "__main__":
    main()
