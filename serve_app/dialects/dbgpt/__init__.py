"""DB-GPT's dialect: protocol.py (wire models every supported DB-GPT version reads),
serving.py (answers: ModelOutputs, refusals, instances), and its routes: the worker
API (worker_routes.py), the controller API (controller_routes.py) and model
management (management_routes.py)."""
