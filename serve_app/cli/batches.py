"""`smmf batch list` and `smmf batch show ID`: the Batch API's batches, and one followed to its
end with a live line (as `smmf model start` shows a model starting)."""

import sys
import time
from datetime import datetime, timezone

from serve_app.cli.client import IngressClient

FINISHED = ("completed", "failed", "expired", "cancelled")
POLL_S = 1.0


def _when(seconds) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if seconds else "-"


def _progress(batch: dict) -> str:
    counts = batch["request_counts"]
    return f"{counts['completed']}/{counts['total']} answered, {counts['failed']} failed"


def list_batches(ingress: IngressClient) -> int:
    rows = [("ID", "STATUS", "ENDPOINT", "PROGRESS", "CREATED (UTC)")]
    rows += [(b["id"], b["status"], b["endpoint"], _progress(b), _when(b["created_at"]))
             for b in ingress.request("GET", "/v1/batches?limit=100")["data"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def show_batch(ingress: IngressClient, batch_id: str, follow: bool) -> int:
    """The batch; with `follow`, its progress until it ends (a live line in a terminal, one line
    per change elsewhere). Exit status 0 once completed, 1 for any other end, 0 unfollowed."""
    live, last = sys.stdout.isatty(), None
    started = time.time()
    batch = ingress.request("GET", f"/v1/batches/{batch_id}")
    while follow and batch["status"] not in FINISHED:
        line = f"{batch_id}: {batch['status']}, {_progress(batch)}"
        if live:
            print(f"\r\033[K{line}, {time.time() - started:.0f}s"[:160], end="", flush=True)
        elif line != last:
            print(line, flush=True)
        last = line
        time.sleep(POLL_S)
        batch = ingress.request("GET", f"/v1/batches/{batch_id}")
    if live and last is not None:
        print()
    print(f"{batch['id']}: {batch['status']}, {_progress(batch)}")
    print(f"  endpoint {batch['endpoint']}, input {batch['input_file_id']}, created {_when(batch['created_at'])} UTC")
    for name in ("output_file_id", "error_file_id"):
        if batch.get(name):
            print(f"  {name.removesuffix('_id').replace('_', ' ')}: {batch[name]}")
    return 0 if not follow or batch["status"] == "completed" else 1
