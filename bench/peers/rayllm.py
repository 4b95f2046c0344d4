"""Ray Serve LLM's OpenAI app over one checkpoint, at its defaults on CPU, for `make bench-peers`:
    python bench/peers/rayllm.py CHECKPOINT MODEL_ID PORT '{"engine_kwarg": value}'
Runs until interrupted. Its own local Ray; HTTP on 127.0.0.1:PORT."""

import json
import sys

import ray
from ray import serve
from ray.serve.llm import LLMConfig, build_openai_app

checkpoint, model_id, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine_kwargs = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
# Logical CPUs for its placement group and ingress, as the other Ray side gets; the cores are the machine's.
ray.init(address="local", num_cpus=8, include_dashboard=False)
serve.start(http_options={"host": "127.0.0.1", "port": port})
config = LLMConfig(model_loading_config={"model_id": model_id, "model_source": checkpoint},
                   accelerator_config={"kind": "cpu"}, engine_kwargs=engine_kwargs)
serve.run(build_openai_app({"llm_configs": [config]}), blocking=True)
