"""BENCHMARKS.md's many-models section and #31's targets, from bench/many_models/measure.py's figures."""

from __future__ import annotations

from .gaps import ROUNDS
from .measure import STARTS


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _added(ms: dict | None) -> str:
    return "n/a" if ms is None else f"{ms['p50']:.1f} / {ms['max']:.1f}"


TTFT_GROWTH_MS, OVER_BARE_MS, GAP_ADDED_MS, LIST_MS, ADAPTER_RATIO = 3, 5, 10, 150, 0.7


def targets(results: dict, target) -> list[dict]:
    """#31's targets, from this run's many-models and adapter figures (`target` is targets.target)."""
    out = []
    if "many_models" in results:
        m = results["many_models"]
        first, last = m["rows"][0], m["rows"][-1]
        grew = last["ttft_added_ms"]["p50"] - first["ttft_added_ms"]["p50"]
        bare = last.get("bare_ttft_added_ms")
        floor = ""
        if bare and "bare_ttft_added_ms" in first:  # the passthrough at every count, taking turns with ours
            bare_grew = bare["p50"] - first["bare_ttft_added_ms"]["p50"]
            floor = (f"; a bare Serve passthrough to the same model, its requests taking turns with ours, went from "
                     f"{first['bare_ttft_added_ms']['p50']:.1f} to {bare['p50']:.1f} ms ({bare_grew:+.1f}): ours "
                     f"beyond the passthrough grew by {grew - bare_grew:+.1f} ms")
        elif bare:
            floor = (f"; at {last['models']} models ours is {last['ttft_added_ms']['p50'] - bare['p50']:.1f} ms over "
                     f"a bare Serve passthrough in the same run ({bare['p50']:.1f} ms)")
        out.append(target(f"TTFT added, spaced requests, {last['models']} models: <= {first['models']} model's "
                          f"+ {TTFT_GROWTH_MS} ms", f"{last['ttft_added_ms']['p50']:.1f} vs "
                          f"{first['ttft_added_ms']['p50']:.1f} ms ({grew:+.1f})", grew <= TTFT_GROWTH_MS,
                          "the table is pushed by the manager and installed in under a millisecond (below)"
                          + floor + "."))
        if bare:
            over = last["ttft_added_ms"]["p50"] - bare["p50"]
            out.append(target(f"TTFT added at {last['models']} models: <= bare Serve passthrough + {OVER_BARE_MS} ms",
                              f"{last['ttft_added_ms']['p50']:.1f} vs {bare['p50']:.1f} ms ({over:+.1f})",
                              over <= OVER_BARE_MS, "the serving path's own cost per request (see 'TTFT added by "
                              "the serving path' above)."))
        out.append(gap_target(m["stream_gap"], target))
        if "start_s" in last:
            ratio = last["start_s"] / first["start_s"]
            why = ("Serve's controller applies the whole config and reconciles every application in each pass, "
                   "so its own work grows with the model count")
            if "serve_start_s" in last:
                why += (f": Serve alone, from a driver, took {last['serve_start_s']:.2f} vs "
                        f"{first['serve_start_s']:.2f} s ({last['serve_start_s'] / first['serve_start_s']:.2f}x); "
                        f"ours beyond Serve's {last['start_s'] - last['serve_start_s']:.2f} vs "
                        f"{first['start_s'] - first['serve_start_s']:.2f} s")
            out.append(target(f"starting one more model through the API at {last['models']} models: <= 1.5x at "
                              f"{first['models']}", f"{last['start_s']:.2f} vs {first['start_s']:.2f} s "
                              f"({ratio:.2f}x)", ratio <= 1.5, why + "."))
        slowest = max(v for k, v in last.items() if k.startswith("/"))
        out.append(target(f"list routes at {last['models']} models: < {LIST_MS} ms", f"slowest {slowest:.1f} ms",
                          slowest < LIST_MS, ""))
    if "lora_mix" in results:
        r = results["lora_mix"]
        out.append(target(f"{r['adapters']} adapters in mixed traffic (transformers): >= {ADAPTER_RATIO} of the "
                          "base alone's tok/s", f"{r['ratio']:.2f} ({r['mixed_tokens_per_s']:.0f} vs "
                          f"{r['base_tokens_per_s']:.0f} tok/s)", r["ratio"] >= ADAPTER_RATIO,
                          "peft applies each adapter's rows of the batch apart (mixed-adapter inference), "
                          "so a batch over 8 adapters runs more, smaller matrix products than one over the base."))
    return out


def gap_target(gap: dict, target) -> dict:
    if "bare_beside_ms" not in gap:  # a run before 2026-12-07's bench/many_models/gaps.py: ours alone and beside
        added = gap["beside_others_ms"] - gap["alone_ms"]
        return target(f"an open stream's largest chunk gap, others coming and going: <= alone + {GAP_ADDED_MS} ms",
                      f"{gap['beside_others_ms']:.0f} vs {gap['alone_ms']:.0f} ms alone ({added:+.0f})",
                      added <= GAP_ADDED_MS, "measured with the other clients' threads in the measuring process.")
    caused = gap["ours_beside_ms"] - gap["bare_beside_ms"]
    return target(f"an open stream's largest chunk gap that the ingress caused, others coming and going: "
                  f"<= {GAP_ADDED_MS} ms", f"{caused:+.0f} ms ({gap['ours_beside_ms']:.0f} through the ingress vs "
                  f"{gap['bare_beside_ms']:.0f} through a bare Serve passthrough, beside the same load)",
                  caused <= GAP_ADDED_MS, "what the ingress's loop spends on the other requests between two of "
                  "this stream's chunks; the rest of the gap the passthrough's stream has too.")


def gap_sentence(g: dict) -> str:
    if "bare_beside_ms" not in g:
        return (f"One 3-second stream at {g['models']} models: largest gap between two chunks {g['alone_ms']:.0f} ms "
                f"alone, {g['beside_others_ms']:.0f} ms while four clients send short chats and list models beside it.")
    return (f"One 3-second stream at {g['models']} models, the largest gap between two of its chunks (median of "
            f"{ROUNDS} streams, the two paths taking turns): through our ingress {g['ours_alone_ms']:.0f} ms alone "
            f"and {g['ours_beside_ms']:.0f} ms "
            f"while four clients in another process send short chats to other models and list models; through "
            f"a bare Serve passthrough to the same model {g['bare_alone_ms']:.0f} and {g['bare_beside_ms']:.0f} ms "
            "(bench/many_models/gaps.py).")


def section(results: dict) -> list[str]:
    m = results["many_models"]
    lines = ["## Many models", "",
             f"Simulated llms (first token after {m['sim_ttft_ms']} ms) beside the default router, in a Ray of their "
             f"own (bench/many_models/). TTFT added: the client's time to the first content chunk less the "
             f"engine's, requests {m['spacing_s']} s apart (each finds the ingress's table older than its 1 s "
             f"interval), median and max; through our ingress, and through a bare Serve passthrough to the same "
             "model (bench/bare_stream_app.py), the two taking turns. List routes: median ms. One more started: "
             "`POST /api/worker/apply` "
             f"starting one more simulated llm, until it runs (median of {STARTS}); Serve alone: the same "
             "model added to the whole config from a driver, its status read every 50 ms until it runs.", "",
             "| models | TTFT added p50 / max (ms) | bare passthrough's (ms) | `/v1/models` | `/api/models/status` "
             "| `/api/controller/models` | `smmf model list` | one more started (s) | Serve alone (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in m["rows"]:
        lines.append(f"| {r['models']} | {_added(r['ttft_added_ms'])} | {_added(r.get('bare_ttft_added_ms'))} | "
                     f"{r['/v1/models']:.1f} | {r['/api/models/status']:.1f} | {r['/api/controller/models']:.1f} | "
                     f"{r['smmf model list']:.0f} | {_f(r.get('start_s'))} | {_f(r.get('serve_start_s'))} |")
    g, t = m["stream_gap"], m["table_update_ms"]
    bare = m["rows"][-1].get("bare_ttft_added_ms")
    if bare and "bare_ttft_added_ms" not in m["rows"][0]:  # a run that measured the passthrough at the last count
        lines += ["", f"The floor, in the same run at {m['rows'][-1]['models']} models: a bare Serve passthrough "
                  f"(bench/bare_stream_app.py) to the same model, requests spaced alike: {bare['p50']:.1f} / "
                  f"{bare['max']:.1f} ms added (p50 / max)."]
    lines += ["", gap_sentence(g) + " One routing-table update on the ingress's loop (unpickling the manager's "
              "table and installing it, in-process): " + ", ".join(f"{float(v):.2f} ms at {k} models"
                                                                 for k, v in t.items()) + ".", ""]
    if "lora_mix" in results:
        r = results["lora_mix"]
        lines += [f"LoRA adapters on the transformers engine, in-process (bench/lora_mix.py): {r['clients']} clients x "
                  f"{r['tokens']} tokens, median of 3: the base alone {r['base_tokens_per_s']:.1f} tok/s, spread over "
                  f"{r['adapters']} adapters {r['mixed_tokens_per_s']:.1f} tok/s ({r['ratio']:.2f}); loading an "
                  f"adapter {r['load_ms_p50']:.0f} ms; the first request's TTFT on a just-loaded adapter "
                  f"{r['cold_adapter_ttft_ms_p50']:.0f} ms (the base's: {r['base_ttft_ms_p50']:.0f} ms).", ""]
    if m.get("run"):
        lines += [f"This section's run: `{m['run']['command']}`, {m['run']['date']}.", ""]
    return lines
