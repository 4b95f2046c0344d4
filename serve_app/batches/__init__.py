"""OpenAI's Files and Batch API: files uploaded for batches (files.py), batches and their
lines' results (store.py), the runner that works through them (runner.py; its Serve
deployment is ingress/batch_runner.py, as it builds the ingress's app) and the routes
(routes.py)."""
