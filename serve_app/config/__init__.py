"""Pydantic models of every application's `args` in serve_config.yaml: `workers` (the
model applications), `router` (the ingress application), `keys` (API keys and their
limits). This package imports nothing else of ours: every other folder reads it."""
