"""The vllm engine: `engine.py` (VLLMEngine, the contract of engines/base.py) over vLLM's own
async engine, and what only it uses: its engine args from ours (`options.py`), our types as
vLLM's and back (`translate.py`), and LoRA adapters as vLLM loads them (`adapters.py`).

Nothing here imports vllm at import time (engine.py says why).
"""
