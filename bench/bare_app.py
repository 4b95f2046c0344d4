"""The overhead baseline: a bare FastAPI app doing count_token's work, on uvicorn in a thread."""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class CountTokenRequest(BaseModel):
    model: str
    prompt: str


def serve_bare_app(tokenizer, port: int) -> uvicorn.Server:
    app = FastAPI()

    @app.post("/api/worker/count_token")
    async def count_token(req: CountTokenRequest) -> int:
        return len(tokenizer(req.prompt, add_special_tokens=False)["input_ids"])

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, name="bare-fastapi", daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the bare FastAPI app did not start in 30 s")
        time.sleep(0.05)
    return server
