"""The simulated engine: no weights, words at a set rate (`engine.py`), with the prefix cache it
pretends to keep (`prefix_cache.py`); for load tests and routing without a model."""
