"""Which models run: manager.py (the deployment that starts, stops, restarts and updates
them by editing Serve's config), config_edits.py (the pure edits), catalog.py (stopped
models), placement.py (whether a replica can ever be placed), status.py and routes.py
(`GET /api/models/status`)."""
