"""One module per worker type; each exposes `build_app(args)` for a Serve config."""
