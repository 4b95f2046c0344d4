"""DB-GPT's webserver (dbgpt-app 0.8.2) with the ingress as its model cluster, end to end.

The webserver runs in "light" mode with `controller_addr` set to us, DB-GPT's
documented way to use a remote model cluster: it finds models through our
controller API and calls our worker API. A recording proxy sits between the two,
so the test knows exactly which conversation DB-GPT sent (its chat scene adds a
system prompt and history of its own) and can ask the model for the same thing
directly: the answer the webserver returns must be that answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
import time

import httpx
import pytest
from aiohttp import ClientSession, web
from helpers import EMBEDDER, LLM, RERANKER, ROOT, THINKER, apply, direct_generate, direct_generate_parts, free_port

WEBSERVER = ROOT / ".venv-compat" / "webserver" / "bin" / "dbgpt"
ROLES = {"human": "user", "ai": "assistant", "system": "system"}


class RecordingProxy:
    """Forwards every request to the ingress, keeping the Host header (so the instances
    our controller API reports point back here), and records DB-GPT's generate bodies."""

    def __init__(self, upstream: str):
        self.upstream, self.port = upstream, free_port()
        self.generations: list[dict] = []
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> None:
        self._session = ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path in ("/api/worker/generate", "/api/worker/generate_stream"):
            self.generations.append(json.loads(body))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                         headers=headers) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            async for data in upstream.content.iter_any():
                await response.write(data)
            await response.write_eof()
            return response

    def close(self) -> None:
        async def stop():
            await self._session.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)


CONFIG = """
[system]
language = "en"
api_keys = []
encrypt_key = "smmf-serve-test"

[service.web]
host = "127.0.0.1"
port = {port}
light = true
controller_addr = "{controller}"

[service.web.database]
type = "sqlite"
path = "{home}/pilot/meta_data/dbgpt.db"

[rag.storage]
[rag.storage.vector]
type = "chroma"
persist_path = "{home}/pilot/data"

[models]
default_llm = "{llm}"
default_embedding = "{embedder}"
default_reranker = "{reranker}"
"""


THINKING_MODEL = "webserver-thinker"


@pytest.fixture(scope="module")
def thinker(client):
    """A reasoning model beside the defaults, started before the webserver reads the models."""
    apply(client, model=THINKING_MODEL, worker_type="llm", apply_type="start", params=THINKER)
    yield THINKING_MODEL
    apply(client, model=THINKING_MODEL, apply_type="stop", delete_after=True)


@pytest.fixture(scope="module")
def webserver(base_url, tmp_path_factory, thinker):
    assert WEBSERVER.exists(), f"{WEBSERVER} is missing: `make compat` builds the DB-GPT webserver venv"
    home = tmp_path_factory.mktemp("dbgpt-webserver")
    proxy = RecordingProxy(base_url)
    port = free_port()
    config = home / "smmf.toml"
    config.write_text(CONFIG.format(port=port, controller=f"http://127.0.0.1:{proxy.port}", home=home,
                                    llm=LLM, embedder=EMBEDDER, reranker=RERANKER))
    # Nothing may reach a model hub or a telemetry endpoint; HOME keeps its files in tmp.
    env = {**os.environ, "DBGPT_HOME": str(home), "HOME": str(home), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    log = open(home / "webserver.log", "w")
    server = subprocess.Popen([str(WEBSERVER), "start", "webserver", "-y", "--config", str(config)],
                              cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (home / "webserver.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the webserver did not start in 180 s"
            time.sleep(1)
        yield url, proxy
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        proxy.close()
        log.close()


def replayed(body: dict) -> str:
    """The model's own answer to the generate request DB-GPT sent."""
    messages = [{"role": ROLES[m["role"]], "content": m["content"]} for m in body["messages"] if m["role"] != "view"]
    return direct_generate(LLM, messages=messages, temperature=body["temperature"],
                           max_new_tokens=body["max_new_tokens"], stop=body.get("stop") or [])


CHAT = {"model": LLM, "messages": "What is the capital of France?", "chat_mode": "chat_normal",
        "temperature": 0, "max_new_tokens": 64}


def test_the_webserver_answers_a_chat_with_the_models_answer(webserver):
    url, proxy = webserver
    before = len(proxy.generations)
    r = httpx.post(url + "/api/v2/chat/completions", json={**CHAT, "stream": False}, timeout=300)
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["message"]["content"]
    [sent] = proxy.generations[before:]
    assert sent["model"] == LLM and sent["messages"][-1]["content"] == CHAT["messages"]
    assert content == replayed(sent)
    assert "Paris" in content


def test_the_webserver_streams_a_chat_with_the_models_answer(webserver):
    url, proxy = webserver
    before = len(proxy.generations)
    deltas = []
    with httpx.stream("POST", url + "/api/v2/chat/completions", json={**CHAT, "stream": True}, timeout=300) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                choice = json.loads(line[len("data: "):])["choices"][0]
                deltas.append(choice["delta"].get("content") or "")
    [sent] = proxy.generations[before:]
    assert "".join(deltas) == replayed(sent)


# How DB-GPT's chat shows a reasoning model's thinking: folded in a vis-thinking block before the answer.
FOLD = re.compile(r"\A``````vis-thinking\n(.*?)\n``````\n(.*)\Z", re.S)


def test_the_webserver_shows_a_reasoning_models_thinking_folded(webserver):
    url, proxy = webserver
    before = len(proxy.generations)
    r = httpx.post(url + "/api/v2/chat/completions", json={**CHAT, "model": THINKING_MODEL, "stream": False},
                   timeout=300)
    assert r.status_code == 200, r.text
    [sent] = proxy.generations[before:]
    messages = [{"role": ROLES[m["role"]], "content": m["content"]} for m in sent["messages"] if m["role"] != "view"]
    thinking, answer = direct_generate_parts(THINKING_MODEL, messages=messages, max_new_tokens=sent["max_new_tokens"])
    folded = FOLD.match(r.json()["choices"][0]["message"]["content"])
    assert folded, r.json()["choices"][0]["message"]["content"]
    assert (folded[1], folded[2]) == (thinking, answer) and thinking and answer
