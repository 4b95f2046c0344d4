"""The transformers engine: `engine.py` (TransformersEngine, the contract of engines/base.py),
and what only it uses: its continuous batching loop (`scheduler.py`, `padded_batch.py`),
per-row sampling (`sampling.py`), JSON-schema masks (`structured.py`) and LoRA adapters
through peft (`peft_adapters.py`)."""
