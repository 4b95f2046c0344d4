"""The largest gap between two chunks of one open stream (#31: "no gap longer than 10 ms that the
ingress caused"), through our ingress and through the bare Serve passthrough to the same model,
each alone and while others come and go beside it.

The others are four clients in a process of their own, so that their threads never hold the
measuring client's interpreter: two send short streamed chats to other models, two list models.
What the ingress causes is our stream's gap beside them less the passthrough's beside the same
load: the rest is the machine's (the proxy, the replicas and the clients share its cores)."""

from __future__ import annotations

import multiprocessing
import statistics
import threading

import httpx

from .streams import bare_chunk_times, chunk_times

ROUNDS = 5  # streams per case: each case's figure is the median of their largest gaps
SECONDS = 3


def others(url: str, started, stop) -> None:
    """The load beside the measured stream (run in its own process until `stop` is set)."""
    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                c.get("/v1/models") if i % 2 else chunk_times(c, f"sim-{i:03d}", 4)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    started.set()
    for t in threads:
        t.join()


def largest_gap_ms(times: list[float]) -> float:
    return max(1000 * (b - a) for a, b in zip(times, times[1:]))


def stream_gaps(client: httpx.Client, model: str, tokens_per_s: int) -> dict:
    """ms: {ours,bare}_{alone,beside}_ms, each the median over ROUNDS streams of SECONDS of the largest gap."""
    tokens = SECONDS * tokens_per_s
    streams = {"ours": lambda: chunk_times(client, model, tokens), "bare": lambda: bare_chunk_times(client, tokens)}
    out = {}
    for beside in (False, True):
        spawn = multiprocessing.get_context("spawn")  # not fork: this process is a Ray driver
        started, stop = spawn.Event(), spawn.Event()
        load = spawn.Process(target=others, args=(str(client.base_url), started, stop)) if beside else None
        if load:
            load.start()
            assert started.wait(60), "the load beside the stream did not start"
        try:
            gaps = {path: [] for path in streams}
            for _ in range(ROUNDS):  # the two paths taking turns: what the machine does meanwhile falls on both
                for path, stream in streams.items():
                    gaps[path].append(largest_gap_ms(stream()))
            for path, values in gaps.items():
                out[f"{path}_{'beside' if beside else 'alone'}_ms"] = statistics.median(values)
        finally:
            if load:
                stop.set()
                load.join(timeout=60)
    return out
