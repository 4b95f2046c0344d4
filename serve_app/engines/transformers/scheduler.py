"""Continuous batching for the transformers engine: one step loop per replica.

Why not what transformers ships: its continuous batching (`generate_batch`, the
paged-attention `ContinuousBatchingManager`) reached 55 completion tokens/s on
this 2-core CPU for 16 concurrent prompts, against 159 for plain `generate` on
one left-padded batch of the same 16: paged attention on CPU runs through
gather/scatter in eager PyTorch, which costs more than the attention it
replaces at these sizes, and its manager takes one generation config for every
request, where ours carry their own temperature, top-p, top-k, seed, stop
tokens and length. `@serve.batch` does not fit either: it batches calls that
start and end together, and a generation is a stream whose rows finish at
different steps. So the loop below does what `generate` does on a padded batch
(DynamicCache, positions from the mask), one step at a time, and between steps
lets new rows in (one prefill forward for all that arrived, its cache merged
into the batch) and finished rows out.

The forward passes run on one dedicated thread (torch releases the GIL inside
its kernels), so the replica's event loop keeps serving streams and admitting
requests while the model computes. Each row hands its tokens to its consumer's
event loop through `call_soon_threadsafe`. Whatever else must touch the model (a LoRA
adapter loaded or deleted: peft_adapters.py) runs on that thread too, between steps.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from serve_app.engines.metrics import EngineMetrics
from serve_app.engines.transformers.padded_batch import PaddedBatch
from serve_app.engines.transformers.peft_adapters import PeftAdapters
from serve_app.engines.transformers.sampling import Chosen, RowSampling, next_tokens

logger = logging.getLogger("ray.serve")


@dataclass(eq=False)
class Sequence:
    """One request inside the scheduler. The consumer reads `queue`: (token id, its
    score or None) per step, then None when the model is done, or an exception."""

    prompt_ids: list[int]
    max_new: int
    stop_ids: frozenset[int]
    sampling: RowSampling
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    generated: int = 0
    # Set by the consumer when it needs no more tokens (a stop string, or it left):
    # the row leaves the batch before the next step.
    closed: bool = False
    finished: bool = False  # set by the loop: end of sequence or max tokens reached
    adapter: Optional[str] = None  # the LoRA adapter it runs with, or the base

    def emit(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the consumer's event loop is gone
            self.closed = True


class BatchScheduler:
    def __init__(
        self,
        adapters: PeftAdapters,
        pad_id: int,
        max_num_seqs: int,
        metrics: EngineMetrics,
        on_error: Callable[[BaseException], None],
    ):
        self.adapters, self.pad_id, self.max_num_seqs = adapters, pad_id, max_num_seqs
        self.metrics, self.on_error = metrics, on_error
        self._inbox: collections.deque[Sequence] = collections.deque()
        self._chores: collections.deque[tuple[Callable[[], object], asyncio.Future]] = collections.deque()
        self._wake = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    @property
    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    def submit(self, seq: Sequence) -> None:
        with self._wake:
            self._inbox.append(seq)
            self._start_and_wake()

    def run_between_steps(self, chore: Callable[[], object]) -> asyncio.Future:
        """Run `chore` on the loop's thread before its next step; the future has its result."""
        future = asyncio.get_running_loop().create_future()
        with self._wake:
            self._chores.append((chore, future))
            self._start_and_wake()
        return future

    def _start_and_wake(self) -> None:  # holding self._wake
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="smmf-batch-loop", daemon=True)
            self._thread.start()
        self._wake.notify()

    def stop(self) -> None:
        """End the loop (the replica is going away); rows still in it get an error. Waits for the
        step in flight: a thread left inside torch as the process exits aborts it."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def close(self, seq: Sequence) -> None:
        """The consumer needs no more tokens; wake the loop in case the row still waits."""
        seq.closed = True
        with self._wake:
            self._wake.notify()

    # --- the loop (scheduler thread) ------------------------------------------------

    def _run(self) -> None:
        batch: Optional[PaddedBatch] = None
        rows: list[Sequence] = []
        with torch.inference_mode():
            while True:
                keep = [i for i, s in enumerate(rows) if not (s.closed or s.finished)]
                if len(keep) < len(rows):
                    batch, rows = batch.keep(keep), [rows[i] for i in keep]
                joining = self._admit(len(rows))
                if joining is None:  # stopped
                    for s in [*rows, *self._inbox]:
                        s.emit(RuntimeError("the model replica is shutting down"))
                    for _, future in self._chores:
                        future.get_loop().call_soon_threadsafe(future.cancel)
                    return
                self._do_chores([*rows, *joining])
                if not rows and not joining:  # woken for a chore alone
                    continue
                model, adapters = self.adapters.model, self.adapters.forward_kwargs
                try:
                    if joining:
                        new, logits = PaddedBatch.prefill(model, [s.prompt_ids for s in joining], self.pad_id,
                                                          **adapters([s.adapter for s in joining]))
                        chosen = next_tokens(logits, [s.sampling for s in joining])
                        new.set_pending(chosen.tokens)
                        batch = batch.merge(new) if batch is not None else new
                        rows = rows + joining
                        self._deliver(joining, chosen)
                    else:
                        logits = batch.step(model, **adapters([s.adapter for s in rows]))
                        chosen = next_tokens(logits, [s.sampling for s in rows])
                        batch.set_pending(chosen.tokens)
                        self._deliver(rows, chosen)
                    self.metrics.batch_size.observe(len(rows))
                except BaseException as exc:  # every row in flight gets the error; the loop goes on
                    logger.exception("batch step failed for %d rows", len(rows) + len(joining))
                    for s in {*rows, *joining}:
                        s.finished = True
                        s.emit(exc)
                    batch, rows = None, []
                    self.on_error(exc)

    def _do_chores(self, rows: list[Sequence]) -> None:
        while self._chores:
            chore, future = self._chores.popleft()
            try:
                outcome = (future.set_result, chore())
            except Exception as exc:
                outcome = (future.set_exception, exc)
            future.get_loop().call_soon_threadsafe(lambda o=outcome, f=future: f.done() or o[0](o[1]))
        with self._wake:
            in_use = {s.adapter for s in [*rows, *self._inbox]}
        self.adapters.sweep(in_use)

    def _admit(self, running: int) -> Optional[list[Sequence]]:
        """Waiting sequences that fit the batch, None once stopped; blocks while there is nothing to do."""
        with self._wake:
            while not self._inbox and not running and not self._stopping and not self._chores:
                self.metrics.queue_length.set(0)
                self._wake.wait()
            if self._stopping:
                return None
            joining = []
            while self._inbox and running + len(joining) < self.max_num_seqs:
                seq = self._inbox.popleft()
                if not seq.closed:
                    joining.append(seq)
            self.metrics.queue_length.set(len(self._inbox))
            return joining

    @staticmethod
    def _deliver(rows: list[Sequence], chosen: Chosen) -> None:
        """Each row's token to its consumer; a row whose sampling failed gets its error and
        leaves the batch at the next step, alone."""
        for i, (seq, token, score) in enumerate(zip(rows, chosen.tokens, chosen.scores)):
            seq.generated += 1
            if i in chosen.errors:
                seq.finished = True
                logger.warning("a row's sampling failed; the other %d rows go on: %s", len(rows) - 1, chosen.errors[i])
                seq.emit(chosen.errors[i])
                continue
            if seq.closed:
                continue
            seq.emit((token, score))
            if token in seq.stop_ids or seq.generated >= seq.max_new:
                seq.finished = True
                seq.emit(None)

