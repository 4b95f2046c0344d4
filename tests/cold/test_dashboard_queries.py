"""The shipped Grafana dashboard against a real Prometheus (Debian's, `make prometheus`) scraping
`make run` under load: every panel's query returns data through Prometheus's HTTP API.

Prometheus finds Ray's metrics exporters through the file Ray writes for it
(prom_metrics_service_discovery.json), as docs/operations.md tells an operator to.
The load covers every panel: chat and DB-GPT streams, embeddings, rerank, and an API key
with limits (served and refused), made with the operator's admin key and revoked at the end.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from helpers import EMBEDDER, LLM, RERANKER, ROOT, wait_until

PROMETHEUS = ROOT / ".tools" / "prometheus" / "usr" / "bin" / "prometheus"
DISCOVERY = Path("/tmp/ray/prom_metrics_service_discovery.json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def panel_queries() -> dict[str, str]:
    dashboard = json.loads((ROOT / "grafana" / "smmf-serve.json").read_text())
    return {f"{p['title']} [{t['refId']}]": t["expr"].replace("$model", ".*")
            for p in dashboard["panels"] for t in p.get("targets", [])}


@pytest.fixture(scope="module")
def prometheus(laptop, tmp_path_factory):
    assert PROMETHEUS.exists(), f"{PROMETHEUS} is missing: `make prometheus` fetches Debian's package"
    wait_until(lambda: DISCOVERY.exists(), 60, "Ray's Prometheus service discovery file")
    home = tmp_path_factory.mktemp("prometheus")
    (home / "prometheus.yml").write_text(
        "global: {scrape_interval: 2s, evaluation_interval: 2s}\n"
        f"scrape_configs: [{{job_name: ray, file_sd_configs: [{{files: ['{DISCOVERY}'], refresh_interval: 2s}}]}}]\n")
    port = free_port()
    log = open(home / "prometheus.log", "w")
    server = subprocess.Popen([str(PROMETHEUS), f"--config.file={home / 'prometheus.yml'}",
                               f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/-/ready", timeout=2).status_code == 200, 60, "Prometheus")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def load(base_url: str, client: httpx.Client) -> None:
    """Traffic through every route a panel reads, and a key's served and refused requests."""
    for _ in range(3):
        client.post("/v1/chat/completions", json={"model": LLM, "max_tokens": 4,
                                                   "messages": [{"role": "user", "content": "hi"}]})
        client.post("/api/worker/generate_stream", json={"model": LLM, "prompt": "hi", "max_new_tokens": 4})
        client.post("/v1/embeddings", json={"model": EMBEDDER, "input": ["a", "b"]})
        client.post("/v1/rerank", json={"model": RERANKER, "query": "q", "documents": ["a", "b"]})
        client.post("/v1/chat/completions", json={"model": "no-such-model", "messages": []})  # an error by status


def test_every_panel_of_the_dashboard_gets_data_from_prometheus(laptop, prometheus):
    base_url, keyed, _ = laptop  # its client sends the operator's admin key
    limited = keyed.post("/api/keys", json={"limits": {"requests_per_minute": 1}}).json()
    refused = httpx.Client(base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {limited['key']}"})
    try:
        deadline = time.monotonic() + 240
        missing = panel_queries()
        while missing and time.monotonic() < deadline:
            load(base_url, keyed)
            load(base_url, refused)  # one served a minute, the rest refused: a key's both outcomes
            time.sleep(3)
            for name, expr in list(missing.items()):
                answer = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10).json()
                if answer["status"] == "success" and any(math.isfinite(float(series["value"][1]))
                                                         for series in answer["data"]["result"]):
                    del missing[name]  # a number to draw, not only a series (a rate of nothing is NaN)
        assert missing == {}, f"panels whose query returned no number: {sorted(missing)}"
        if os.environ.get("SMMF_PLOT_TIME_SPLIT"):  # docs/operations.md's plot, drawn from this Prometheus
            plot_time_split(prometheus, Path(os.environ["SMMF_PLOT_TIME_SPLIT"]))
    finally:
        keyed.delete(f"/api/keys/{limited['id']}")
        refused.close()
    wait_until(lambda: refused_now(base_url, limited["key"]), 10, "the revoked key refused")


def refused_now(base_url: str, key: str) -> bool:
    return httpx.get(base_url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def plot_time_split(prometheus: str, path: Path) -> None:
    """The dashboard's two time-split panels over the run, as a PNG (needs matplotlib: `.[bench]`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    queries = {title: expr for title, expr in panel_queries().items() if title.startswith("Where the time goes")}
    fig, axes = plt.subplots(1, len(queries), figsize=(12, 4))
    end = time.time()
    for ax, (title, expr) in zip(axes, sorted(queries.items())):
        answer = httpx.get(prometheus + "/api/v1/query_range", params={"query": expr, "start": end - 180, "end": end,
                                                                         "step": 2}, timeout=10).json()
        for series in answer["data"]["result"]:
            xs = [float(t) - end for t, _ in series["values"]]
            ys = [1000 * float(v) for _, v in series["values"]]
            ax.plot(xs, ys, label=series["metric"].get("part", "?"))
        ax.set_title(title.split(" [")[0], fontsize=9)
        ax.set_xlabel("seconds before the end of the run")
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
