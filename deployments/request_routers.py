"""Serve RequestRouters (replica choice) our models can ask for: DB-GPT's random pick.

Serve's default router (least loaded of two random choices) is what models get
unless their config sets `routing: random` (management API) or
`request_router_config: {request_router_class: deployments.request_routers:RandomRouter}`.
It exists for parity with DB-GPT's controller, whose random pick users found
unbalanced (DB-GPT #2538); it is a Serve RequestRouter, so Serve still owns
queueing, retries and backpressure.
"""

import random
from typing import List, Optional

from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica

ROUTERS = {
    "least_loaded": None,  # Serve's default: power of two choices
    "random": "deployments.request_routers:RandomRouter",
}


class RandomRouter(FIFOMixin, RequestRouter):
    async def choose_replicas(
        self, candidate_replicas: List[RunningReplica], pending_request: Optional[PendingRequest] = None
    ) -> List[List[RunningReplica]]:
        # One replica per rank, in random order. Serve takes the least loaded replica
        # *within* a rank, so a single rank would turn back into least-loaded routing;
        # later ranks are only tried when the first replica is full.
        return [[r] for r in random.sample(candidate_replicas, len(candidate_replicas))]
