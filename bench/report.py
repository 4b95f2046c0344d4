"""BENCHMARKS.md, written from one run's results (never by hand)."""

from __future__ import annotations

from pathlib import Path

import batches
import fairness
import many_models
import prefix_routing
import serve_paths
from peers import report as peers_report
from plots import plots
from targets import judge
from workload import NEW_TOKENS, QUESTIONS, VLLM_APP, VLLM_ARGS


def _f(value, digits=1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def write_report(results: dict, folder: Path, path: Path) -> None:
    images = plots(results, folder)
    lines = header(results) + targets_section(results) + gpu_rate_section(results["gpu_rate"])
    lines += llm_sections(results) + text2vec_section(results) + overhead_section(results["overhead"])
    lines += key_overhead_section(results["key_overhead"])
    if "routing" in results:
        lines += prefix_routing.section(results["routing"])
    if "serve_paths" in results:
        lines += serve_paths.section(results["serve_paths"])
    if "time_split" in results:
        lines += time_split_section(results["time_split"], results.get("tracing"))
    if "structured" in results:
        lines += structured_section(results["structured"])
    if "many_models" in results:
        lines += many_models.section(results)
    lines += batches.section(results)
    lines += fairness.section(results)
    lines += cold_start_section(results["cold_start"], results.get("cold_start_run"))
    peers = peers_report.load(folder)  # make bench-peers' own run, kept as it wrote it
    if peers:
        lines += peers_report.section(peers) + peers_report.later_sections(folder)
    lines += ["## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images]
    lines += ["", "## Reproduce", "", "```bash", results["command"], "```", ""]
    path.write_text("\n".join(lines))


def time_split_section(s: dict, tracing) -> list[str]:
    lines = ["## Where the time goes under load", "",
             f"{s['streams']} GPU-rate streams at once on DB-GPT's `generate_stream` (the simulated llm, "
             f"{s['requests_with_split']} requests whose access-log line carries the split): the mean of each part "
             "of the server's time, as `Server-Timing`, the access log and `smmf_request_time_split_s` report it, "
             "beside the latency the client measured.", "",
             "| part | mean ms | p99 ms |", "|---|---|---|"]
    lines += [f"| {part} | {_f(s['mean_ms'].get(part))} | {_f(s['p99_ms'].get(part))} |" for part in s["mean_ms"]]
    lines += [f"| **sum of the parts** | {_f(sum(s['mean_ms'].values()))} | |",
              f"| client-measured latency | {_f(s['client_mean_ms'])} | |", ""]
    if tracing:
        lines += [f"Tracing (OpenTelemetry over OTLP/HTTP to a receiver on 127.0.0.1) at {tracing['streams']} "
                  f"streams: off {_f(tracing['off_tokens_per_s'], 0)} tok/s (mean of a run before and after), "
                  f"on {_f(tracing['on_tokens_per_s'], 0)} tok/s ({_f(tracing['on_over_off'], 3)} of off), "
                  f"{tracing['spans_received']} spans received.", ""]
    return lines


def header(results: dict) -> list[str]:
    m, threads = results["machine"], results["threads"]
    return [
        "# Benchmarks", "",
        f"Written by `{results['command']}` (bench/run.py) on {m['date']}; every figure below comes from that run "
        f"(raw numbers: `bench/results.json`), except the sections that name their own run: `make bench-peers`'s "
        f"(`bench/peers/results.json`) and, where they ran since, `make bench-cold`'s cold starts and "
        f"`make bench-many`'s many-models section. The run took "
        f"{_f(results['wall_seconds'], 0)} s. Only ratios within "
        "this one run mean anything: the same code measures differently on another machine or day.", "",
        f"Machine: {m['cpu']}, `nproc` = {m['nproc']}, Python {m['python']}, CPU flags of note: "
        f"{m.get('cpu_flags') or 'n/a'}. `free -g`:", "", "```", m["free_g"], "```", "",
        f"1-minute load average at the start of the run: {m['loadavg_1min_at_start']:.2f}, at the end: "
        f"{m.get('loadavg_1min_at_end', float('nan')):.2f}.", "",
        f"Real-model workload: {len(QUESTIONS)} chat prompts of about 30 tokens (SmolLM2's chat template), "
        f"{NEW_TOKENS} new tokens, greedy, the default serve_config.yaml. A replica's torch threads are its args' "
        f"`num_threads`, by default half the node's cores: {threads['llm_replica']} here.", "",
    ]


def targets_section(results: dict) -> list[str]:
    targets = judge(results)
    lines = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |" for t in targets]
    unmet = [t for t in targets if not t["met"]]
    if unmet:
        lines += ["", "Not met, and what limited it (measured in this run):", ""]
        lines += [f"- {t['target']}: {t['why']}" for t in unmet]
    return lines + [""]


def gpu_rate_section(g: dict) -> list[str]:
    lines = [
        "## GPU-rate streams (the simulated engine)", "",
        f"A simulated llm streams {g['rate']} tokens/s to every stream in flight after {g['ttft_ms']} ms, as a GPU "
        f"engine would; each client asks for {g['tokens']} tokens, all at once. `bare_passthrough` is a FastAPI "
        "ingress that only forwards the handle's stream (bench/bare_stream_app.py): Serve's own cost. TTFT added = "
        "the client's time to first token less the engine's. Cores: CPU each process kept busy during the run.", "",
        f"### stream_interval_ms at 64 streams (chat_completions); the default is {g['stream_interval_ms']:.0f}", "",
        "| stream_interval_ms | of ideal | tokens/s | gap p50 / p99 (ms) | chunks | ingress / proxy / model cores |",
        "|---|---|---|---|---|---|",
    ]
    for r in g["sweep"]:
        lines.append(f"| {r['stream_interval_ms']:.0f} | {r['of_ideal']:.2f} | {_f(r['tokens_per_s'], 0)} | "
                     f"{_f(r['gap_ms']['p50'], 0)} / {_f(r['gap_ms']['p99'], 0)} | {r['gap_ms']['chunks']} | "
                     f"{_cores(r)} |")
    lines += ["", f"### Routes at {g['stream_interval_ms']:.0f} ms", "",
              "| route | streams | ideal tok/s | delivered tok/s | of ideal | TTFT added p50 / p99 (ms) | "
              "gap p50 / p99 (ms) | ingress or bare / proxy / model cores |", "|---|---|---|---|---|---|---|---|"]
    rows = g["rows"] + [dict(g["two_ingress_replicas"], route="chat_completions, 2 ingress replicas")]
    for r in rows:
        lines.append(f"| `{r['route']}` | {r['streams']} | {_f(r['ideal_tokens_per_s'], 0)} | "
                     f"{_f(r['tokens_per_s'], 0)} | {r['of_ideal']:.2f} | {_f(r['ttft_added_ms']['p50'], 0)} / "
                     f"{_f(r['ttft_added_ms']['p99'], 0)} | {_f(r['gap_ms']['p50'], 0)} / "
                     f"{_f(r['gap_ms']['p99'], 0)} | {_cores(r)} |")
    lines += ["", "### One stream at a time: TTFT added over the engine's", "",
              "| route | requests | p50 (ms) | p99 (ms) |", "|---|---|---|---|"]
    lines += [f"| `{r['route']}` | {r['requests']} | {_f(r['p50_ms'])} | {_f(r['p99_ms'])} |" for r in g["ttft_alone"]]
    return lines + [""]


def _cores(r: dict) -> str:
    c = r["cores"]
    front = c["ingress"] if c["ingress"] > c["bare"] else c["bare"]
    return f"{front:.2f} / {c['proxy']:.2f} / {c['model']:.2f}"


HTTP_HEADER = ["| route | clients | requests | completion tokens | tokens/s | TTFT p50 / p99 (ms) | "
               "inter-token p50 / p99 (ms) |", "|---|---|---|---|---|---|---|"]


def _http_rows(runs: list[dict]) -> list[str]:
    return [f"| `{r['route']}` | {r['concurrency']} | {r['requests']} | {r['completion_tokens']} | "
            f"{_f(r['tokens_per_s'])} | {_f(r['ttft']['p50_ms'], 0)} / {_f(r['ttft']['p99_ms'], 0)} | "
            f"{_f(r['itl']['p50_ms'], 0)} / {_f(r['itl']['p99_ms'], 0)} |" for r in runs]


def llm_sections(results: dict) -> list[str]:
    lines = ["## The real LLM through HTTP streaming (transformers engine)", ""] + HTTP_HEADER
    lines += _http_rows(results["http_llm"])
    if "http_vllm" in results:
        lines += ["", "## The real LLM, vllm engine", "",
                  f"Application `{VLLM_APP}`: the LLM's args with `{VLLM_ARGS}`, beside the default config.", ""]
        lines += HTTP_HEADER + _http_rows(results["http_vllm"])
    offline = [("transformers", key, r) for key, r in results["offline_llm"].items()]
    if "offline_vllm" in results:
        offline.append(("vllm", "its own", results["offline_vllm"]))
    lines += ["", "## LLM offline, in-process (the ceiling)", "",
              f"The same engine classes, all {len(QUESTIONS)} prompts at once (one batch); TTFT is one prompt alone.",
              "", "| engine | torch threads | completion tokens | seconds | tokens/s | TTFT p50 (ms) |",
              "|---|---|---|---|---|---|"]
    for engine, key, r in offline:
        lines.append(f"| {engine} | {key} | {r['tokens']} | {_f(r['seconds'], 2)} | {_f(r['tokens_per_s'])} | "
                     f"{_f(r['ttft_p50_ms'], 0)} |")
    return lines + [""]


def text2vec_section(results: dict) -> list[str]:
    lines = ["## text2vec (all-MiniLM-L6-v2)", "",
             "64 clients each sending single-text requests. `merged`: the ingress merges concurrent requests for one "
             "model into one deployment call (`embeddings_batch_wait_ms`, default 2); `one_call_each`: set to 0. "
             "CPU per text: milliseconds of each process's CPU per text served.", "",
             "| way | texts | texts/s | latency p50 / p99 (ms) | CPU ms per text: proxy / ingress / text2vec |",
             "|---|---|---|---|---|"]
    for label, r in results["http_text2vec"].items():
        c = r["cpu_ms_per_text"]
        lines.append(f"| HTTP, {label} | {r['texts']} | {_f(r['texts_per_s'], 0)} | {_f(r['latency']['p50_ms'], 0)} / "
                     f"{_f(r['latency']['p99_ms'], 0)} | {c['proxy']:.2f} / {c['ingress']:.2f} / {c['text2vec']:.2f} |")
    for key, r in results["offline_text2vec"].items():
        lines.append(f"| offline `encode`, batches of 64, {key} thread(s) | {r['texts']} | {_f(r['texts_per_s'], 0)} "
                     "| | |")
    return lines + [""]


def overhead_section(o: dict) -> list[str]:
    lines = ["## Overhead of a trivial request (count_token)", "", "Calls made one after another.", "",
             "| path | p50 (ms) | p99 (ms) | calls |", "|---|---|---|---|"]
    for key, label in (("ingress_http", "HTTP through the Serve proxy and the ingress"),
                       ("deployment_handle", "direct deployment handle to the `llm` replica"),
                       ("bare_fastapi_http", "HTTP to a bare FastAPI app (uvicorn) doing the same work")):
        lines.append(f"| {label} | {_f(o[key]['p50_ms'], 2)} | {_f(o[key]['p99_ms'], 2)} | {o[key]['n']} |")
    return lines + [""]


def key_overhead_section(k: dict) -> list[str]:
    lines = ["## Per-key limits: what they add to a request", "", "`GET /v1/models`, one call after another.", "",
             "| keys | p50 (ms) | p99 (ms) | calls |", "|---|---|---|---|"]
    for key, label in (("no_keys", "none configured"), ("key_with_limits", "a key with limits (a governor call per lease)")):
        lines.append(f"| {label} | {_f(k[key]['p50_ms'], 2)} | {_f(k[key]['p99_ms'], 2)} | {k[key]['n']} |")
    return lines + [""]


def structured_section(s: dict) -> list[str]:
    rates = s["tokens_per_s"]
    lines = ["## Structured output: constrained rows beside free ones", "",
             f"One batch of {s['rows']} `/v1/completions` rows of exactly {s['tokens']} tokens each (transformers "
             "engine), some of them under a JSON schema (`response_format`); median of "
             f"{s['rounds']} rounds. A row's grammar mask is computed in the step loop, so its cost is paid by its "
             "whole batch: the ratio is what the batch loses, no target.", "",
             "| rows under a schema | tokens/s | against all free |", "|---|---|---|"]
    for name, rate in rates.items():
        lines.append(f"| {name} | {_f(rate)} | {rate / rates['all free']:.2f} |")
    return lines + [""]


def cold_start_section(runs: list[dict], run: dict | None) -> list[str]:
    measured = f"`{run['command']}`, {run['date']}: " if run else ""
    lines = ["## Cold start", "", f"{measured}`make run`'s launcher (`python -m serve_app.launch`) on serve_config.yaml "
             "in a subprocess (its own Ray cluster, the real CPU count, a state file of its own) until the first "
             "answered `/api/worker/generate`; the timeline says when Ray and Serve started and each replica was "
             "added (from the run's log), when the ingress first answered and each model's application was RUNNING "
             "(seconds from the start).", "",
             "| converted-model cache | seconds to first answer | timeline |", "|---|---|---|"]
    for c in runs:
        cache = "warm (`~/.cache/smmf-serve`)" if c["cache"] == "warm" else "cold (an empty `SMMF_CACHE_DIR`)"
        timeline = ", ".join(f"{k} {v:.1f}" for k, v in sorted(c.get("timeline", {}).items(), key=lambda kv: kv[1]))
        lines.append(f"| {cache} | {_f(c['seconds'])} | {timeline} |")
    return lines + [""]
