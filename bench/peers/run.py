"""`make bench-peers`: one checkpoint served by bare `vllm serve`, by Ray Serve LLM and by
us (the vllm engine behind our ingress), one after another on this machine in one
sitting, each driven by vLLM's own benchmark client (`vllm bench serve`, its random
dataset with a fixed seed, `ignore_eos` so every answer has the same length) at 1, 16 and
64 concurrent clients. Every side runs at its defaults, then at one shared dtype (the one
this device computes in natively, as our `dtype: auto` picks it), plus our engine without
torch.compile (the start-up against tok/s that decides vLLM's compilation).

Writes bench/peers/results.json and the "Beside the peers" section of BENCHMARKS.md (make bench
keeps that section when it rewrites the rest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]  # bench/'s modules, and this folder as the package `peers`

from cluster import free_port, step  # noqa: E402
from peers import report as peers_report  # noqa: E402
from peers.checkpoint import bfloat16_checkpoint  # noqa: E402
from peers.servers import NAME, Running, bare_vllm, ours, ray_serve_llm  # noqa: E402

from serve_app.config.workers import DEFAULT_CACHE_DIR  # noqa: E402
from serve_app.replica import dtype as dtypes  # noqa: E402

COMMAND = "make bench-peers"
INPUT_TOKENS, OUTPUT_TOKENS = 128, 64
PROMPTS = {1: 4, 16: 32, 64: 64}  # concurrent clients: prompts sent (one wave at 64)
# Every side's KV cache on CPU: vLLM's default (0.92 of a NUMA node's memory) does not fit
# on this machine beside anything else, so all three get the same fixed size.
KV_CACHE_GIB = "2"
BENCH_TIMEOUT_S = 900
VLLM_CPU_MAX_NUM_SEQS = 128  # vLLM's OpenAI server's default on CPU


def rows_to_run(bin_dir: Path, checkpoint: str, shared: str) -> list:
    """Every row's side: the defaults, the shared dtype where a default differs, eager."""
    rows = [bare_vllm(bin_dir, checkpoint, free_port(), "vLLM serve, defaults"),
            ray_serve_llm(bin_dir, checkpoint, free_port(), "Ray Serve LLM, defaults"),
            ours(bin_dir, checkpoint, free_port(), "ours, defaults")]
    if shared != dtypes.checkpoint_dtype(checkpoint):  # vLLM's "auto" keeps the checkpoint's; ours picked `shared`
        rows += [bare_vllm(bin_dir, checkpoint, free_port(), f"vLLM serve, {shared}", dtype=shared),
                 ray_serve_llm(bin_dir, checkpoint, free_port(), f"Ray Serve LLM, {shared}", dtype=shared)]
    rows.append(ours(bin_dir, checkpoint, free_port(), "ours, eager (no torch.compile)",
                     vllm_kwargs={"enforce_eager": True}))
    # Our max_num_seqs and max_ongoing_requests default to DB-GPT's 16; vLLM's server takes
    # 128 on CPU: the 64-client rows at vLLM's batch size.
    rows.append(ours(bin_dir, checkpoint, free_port(), f"ours, max_num_seqs {VLLM_CPU_MAX_NUM_SEQS}",
                     max_num_seqs=VLLM_CPU_MAX_NUM_SEQS, max_ongoing_requests=VLLM_CPU_MAX_NUM_SEQS))
    return rows


def bench(bin_dir: Path, base_url: str, checkpoint: str, clients: int, out: Path) -> dict:
    result = out / f"c{clients}.json"
    cmd = [str(bin_dir / "python"), str(HERE / "vllm_cli.py"), "bench", "serve", "--backend", "openai",
           "--base-url", base_url, "--model", NAME, "--tokenizer", checkpoint, "--dataset-name", "random",
           "--random-input-len", str(INPUT_TOKENS), "--random-output-len", str(OUTPUT_TOKENS),
           "--num-prompts", str(PROMPTS[clients]), "--max-concurrency", str(clients), "--ignore-eos",
           "--seed", "0", "--num-warmups", "2", "--save-result", "--result-dir", str(out),
           "--result-filename", result.name, "--disable-tqdm",
           "--percentile-metrics", "ttft,tpot,itl", "--metric-percentiles", "50,99"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    if done.returncode != 0 or not result.exists():
        raise RuntimeError(f"vllm bench serve failed ({done.returncode}): {done.stderr[-2000:]}")
    r = json.loads(result.read_text())
    return {"clients": clients, "prompts": PROMPTS[clients], "completed": r["completed"], "failed": r["failed"],
            "ttft_p50_ms": r["p50_ttft_ms"], "ttft_p99_ms": r["p99_ttft_ms"], "tpot_p50_ms": r["p50_tpot_ms"],
            "output_tok_s": r["output_throughput"], "requests_s": r["request_throughput"]}


def main(only: list[str]) -> None:
    """Every row, or with `--only LABEL ...` those rows again, replaced in bench/peers/results.json
    (each row keeps the time it was measured at)."""
    from run import machine

    started = time.perf_counter()
    bin_dir = Path(sys.executable).parent
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = KV_CACHE_GIB
    checkpoint = bfloat16_checkpoint(DEFAULT_CACHE_DIR)
    shared, why = dtypes.for_engine("auto", checkpoint, "cpu")
    step(f"checkpoint {checkpoint}; shared dtype {shared}: {why}", started)
    subprocess.run([str(bin_dir / "ray"), "stop", "--force"], capture_output=True)  # nothing else on the cores
    if only:
        results = json.loads((HERE / "results.json").read_text())
    else:
        results = {"command": COMMAND, "machine": machine(), "checkpoint": checkpoint, "shared_dtype": shared,
                   "shared_dtype_why": why, "input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                   "kv_cache_gib": int(KV_CACHE_GIB), "vllm": _version("vllm-cpu"), "ray": _version("ray"),
                   "rows": []}
    sides = [s for s in rows_to_run(bin_dir, checkpoint, shared) if not only or s.label in only]
    if only and len(sides) != len(only):
        raise SystemExit(f"--only names rows this bench does not have: {only}")
    native = dtypes.checkpoint_dtype(checkpoint)  # what vLLM's and Ray Serve LLM's "auto" run
    logs = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    for side in sides:
        with Running(side, bin_dir, logs) as server:
            step(f"{side.label} ready in {server.started_s:.0f} s", started)
            runs = []
            for clients in PROMPTS:
                run = bench(bin_dir, server.base_url, checkpoint, clients, logs / side.slug)
                runs.append(run)
                step(f"{side.label} x{clients}: {run['output_tok_s']:.1f} tok/s, TTFT p50 {run['ttft_p50_ms']:.0f} ms",
                     started)
        row = {"label": side.label, "kind": side.kind, "settings": side.settings,
               "dtype": side.settings.get("dtype", shared if side.kind == "ours" else native),
               "startup_s": server.started_s, "runs": runs, "measured_at": machine()["date"], "alone": bool(only)}
        results["rows"] = [r for r in results["rows"] if r["label"] != side.label] + [row]
        (HERE / "results.json").write_text(json.dumps(results, indent=1))
    if not only:
        results["seconds"] = time.perf_counter() - started
    (HERE / "results.json").write_text(json.dumps(results, indent=1))
    peers_report.write_into(ROOT / "BENCHMARKS.md", results)
    step(f"wrote bench/peers/results.json and BENCHMARKS.md; server logs in {logs}", started)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=[], metavar="LABEL", help="measure these rows again")
    main(parser.parse_args().only)
