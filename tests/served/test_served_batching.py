"""Continuous batching through Serve: concurrent requests get exactly their solo answers."""

import concurrent.futures

from helpers import LLM, SERVED_PROMPTS


def test_served_concurrent_requests_match_their_solo_answers(client):
    prompts = SERVED_PROMPTS

    def generate(prompt: str) -> tuple:
        body = {"model": LLM, "messages": [{"role": "human", "content": prompt}], "temperature": 0,
                "max_new_tokens": 24}
        out = client.post("/api/worker/generate", json=body).json()
        assert out["error_code"] == 0, out["text"]
        return out["text"], out["finish_reason"], out["usage"]["completion_tokens"]

    alone = [generate(p) for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(generate, prompts))
    assert together == alone
    assert alone[0][0] == "The capital of France is Paris."
