"""The ingress: the Serve deployment that is the one HTTP entry (deployment.py) and the
FastAPI app it serves (app.py), assembled from the dialects' routers.

`serve_app.ingress:build_app` was the builder's path before this became a package;
configs checkpointed by running clusters still name it, so it resolves here, lazily,
without importing the deployment for every module of the package.
"""


def __getattr__(name: str):
    if name == "build_app":
        from serve_app.ingress.deployment import build_app

        return build_app
    raise AttributeError(f"module 'serve_app.ingress' has no attribute {name!r}")
