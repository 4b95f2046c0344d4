"""Serve RequestRouters (replica choice) a model's config can ask for with `routing:`.

- `least_loaded` (default): Serve's own, the less loaded of two random replicas.
- `random`: DB-GPT's controller pick, for parity (its users found it unbalanced, DB-GPT #2538).
- `prefix_affinity`: the replica that recently served the longest matching prompt prefix,
  so its prefix cache (vLLM's automatic prefix caching) hits; Serve's own when loads
  diverge. Ray Serve LLM's PrefixCacheAffinityRouter, taught to read our requests.
- `session`: every request of one session (an `X-Session-Id` header, or the OpenAI
  `user` / Anthropic `metadata.user_id` field) on one replica, by rendezvous hashing;
  another replica when that one is full, and Serve's own without a session.

They are Serve RequestRouters, so Serve still owns queueing, retries and backpressure.
"""

import hashlib
import random
import time
from typing import Any, List, Optional

from ray.llm._internal.serve.routing_policies.prefix_aware.prefix_aware_router import PrefixCacheAffinityRouter
from ray.serve._private.request_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica

# Load imbalance (difference in ongoing requests between the busiest and the idlest
# replica) past which prefix affinity gives way to Serve's least-loaded choice. Ray's
# default (infinite) would keep a hot conversation's replica busy however long its
# queue; a quarter of an llm replica's places (max_num_seqs, 16) keeps affinity while
# loads are close.
PREFIX_IMBALANCE = 4

# name -> Serve `request_router_config` (an empty one is Serve's default).
ROUTERS: dict[str, dict[str, Any]] = {
    "least_loaded": {},
    "random": {"request_router_class": "deployments.request_routers:RandomRouter"},
    "prefix_affinity": {
        "request_router_class": "deployments.request_routers:PrefixAffinityRouter",
        "request_router_kwargs": {"imbalanced_threshold": PREFIX_IMBALANCE},
    },
    "session": {"request_router_class": "deployments.request_routers:SessionRouter"},
}


class RandomRouter(FIFOMixin, RequestRouter):
    async def choose_replicas(
        self, candidate_replicas: List[RunningReplica], pending_request: Optional[PendingRequest] = None
    ) -> List[List[RunningReplica]]:
        # One replica per rank, in random order. Serve takes the least loaded replica
        # *within* a rank, so a single rank would turn back into least-loaded routing;
        # later ranks are only tried when the first replica is full.
        return [[r] for r in random.sample(candidate_replicas, len(candidate_replicas))]


def request_text(pending_request: PendingRequest) -> str:
    """The text a request's prompt starts with, for prefix matching: a chat's turns in
    order (role and content) or a completion's prompt; never empty."""
    for arg in pending_request.args:
        messages, prompt = getattr(arg, "messages", None), getattr(arg, "prompt", None)
        if messages is not None:
            return "".join(f"<{m.role}>{m.content or ''}" for m in messages) or "<chat>"
        if prompt is not None:
            return "<prompt>" + prompt
    return "<none>"  # a call without a prompt (tokenize, health): any replica


class PrefixAffinityRouter(PrefixCacheAffinityRouter):
    """Ray Serve LLM's router, its policy and its shared prefix tree (one actor per model,
    so every ingress replica learns from every request), with two changes:

    - it reads our GenerationRequest's text (Ray's reads OpenAI models' `messages` dicts);
    - it awaits the tree actor instead of blocking on `ray.get`: Serve routes all of an
      ingress replica's requests on one event loop, and the blocking calls queued every
      request behind each lookup (bench/prefix_routing.py at 32 clients, one run each: TTFT p50
      106 ms over least-loaded's with ray.get, 17 ms awaited).

    Imported from Ray's internal path: its public one (`ray.serve.llm`) pulls pyarrow into
    the ingress; neither pulls vLLM. It leans on Serve's RequestRouter internals (queue
    length cache and probes), as Ray's own routers do: tests/served/test_routing_policies.py
    proves it on the installed Ray."""

    def _extract_text_from_request(self, pending_request: PendingRequest) -> str:
        return request_text(pending_request)

    async def _prefix_match_best_replicas(
        self, pending_request: Optional[PendingRequest], candidate_replicas: List[RunningReplica]
    ) -> List[List[RunningReplica]]:
        """The replicas holding the longest prefix of the request's text (or, below the match
        threshold, those holding the least text), unless loads diverge: then none, and the
        caller falls back to Serve's least-loaded choice."""
        if pending_request is None or not pending_request.args:
            return [[]]
        lens, unknown = [], []
        for r in candidate_replicas:
            cached = self._replica_queue_len_cache.get(r.replica_id) if self._use_replica_queue_len_cache else None
            (unknown.append(r) if cached is None or cached >= r.max_ongoing_requests else lens.append(cached))
        if unknown:
            lens += [q for _, q in await self._probe_queue_lens(unknown, 0) if q is not None]
        if lens and max(lens) - min(lens) > self._imbalanced_threshold:
            return [[]]
        text = self._extract_text_from_request(pending_request)
        ids = [r.replica_id.to_full_id_str() for r in candidate_replicas]
        matched, tenants = await self._tree_actor.prefix_match.remote(text, ids)
        if len(matched) / len(text) < self._match_rate_threshold:
            tenants = await self._tree_actor.get_smallest_tenants.remote()
        by_id = {r.replica_id.to_full_id_str(): r for r in candidate_replicas}
        return [[by_id[t] for t in tenants or [] if t in by_id]]

    def on_request_routed(self, pending_request: PendingRequest, replica_id, result) -> None:
        # Not waited for: nothing depends on the tree having it before the next request.
        if pending_request is not None and pending_request.args:
            self._tree_actor.insert.remote(self._extract_text_from_request(pending_request),
                                           replica_id.to_full_id_str(), time.time())


def session_of(pending_request: Optional[PendingRequest]) -> str:
    if pending_request is None:
        return ""
    return next((arg.session for arg in pending_request.args if getattr(arg, "session", "")), "")


def rendezvous(session: str, replicas: List[RunningReplica]) -> List[RunningReplica]:
    """Replicas in the session's order of preference: each session's first choice moves
    only when that replica leaves (rendezvous hashing), so adding or losing a replica
    moves only the sessions that must move."""
    def weight(replica: RunningReplica) -> bytes:
        return hashlib.blake2b(f"{session}|{replica.replica_id.unique_id}".encode(), digest_size=8).digest()

    return sorted(replicas, key=weight, reverse=True)


class SessionRouter(PowerOfTwoChoicesRequestRouter):
    async def choose_replicas(
        self, candidate_replicas: List[RunningReplica], pending_request: Optional[PendingRequest] = None
    ) -> List[List[RunningReplica]]:
        session = session_of(pending_request)
        if not session:
            return await super().choose_replicas(candidate_replicas, pending_request)
        first, *rest = rendezvous(session, candidate_replicas)
        # Serve tries a later rank only when every replica of the earlier one is full;
        # within the second rank it takes the least loaded.
        return [[first], rest] if rest else [[first]]
