"""The plots in BENCHMARKS.md, drawn from one run's results."""

from __future__ import annotations

from pathlib import Path

from workload import CONCURRENCY


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
