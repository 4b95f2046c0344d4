"""What a model replica knows besides its engine: where it runs (context.py: device,
threads, its model's name), where its weights come from (sources.py) and how far its
start has got (progress.py, read back by lifecycle/status.py)."""
