"""Reaching a model from a route: which models run (registry.py), the checks and calls
every dialect makes (calls.py), generation streams (streams.py) and fallbacks
(fallbacks.py), and merged embedding calls (embeddings_batcher.py)."""
