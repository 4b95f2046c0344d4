"""DB-GPT's own client code, unmodified, against a running ingress; run inside a DB-GPT venv.

    python dbgpt_driver.py calls    ADDRESS LLM EMBEDDER RERANKER OUT.json
    python dbgpt_driver.py manage   ADDRESS MODEL SOURCE OUT.json
    python dbgpt_driver.py thinking ADDRESS MODEL OUT.json

It imports nothing of ours (our packages are not installed in those venvs). Each
named call records what DB-GPT's code returned, made JSON-able, or the error it
raised; the pytest side (test_dbgpt_clients.py) compares every result with a
direct call to the model. `calls` reads only; `manage` starts, restarts and stops
one throwaway model through DB-GPT's RemoteWorkerManager.

DB-GPT 0.6's PyPI wheel leaves out `dbgpt.model.cluster` (its setup.py packages it
only in dev mode), so on 0.6 the cluster clients cannot run: there the driver runs
the clients the wheel has (the OpenAI proxy client, OpenAPI embeddings and rerank)
and builds 0.6's own dataclasses from our worker API's answers the way its remote
worker does, so a key that 0.6 refuses still fails here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import traceback

import dbgpt

QUESTION = "What is the capital of France?"
TEXTS = ["A cat sits on the mat.", "Stock markets fell sharply today."]
QUERY = "Where does the cat sit?"


def plain(value):
    """DB-GPT's objects as JSON-able values."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return plain(value.model_dump())
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def output_text(out) -> dict:
    """A ModelOutput's text and end, in every version (0.7+ keep text in `content`)."""
    return {"text": out.text, "error_code": out.error_code, "finish_reason": out.finish_reason, "usage": plain(out.usage)}


async def collect(stream) -> list[dict]:
    return [output_text(o) async for o in stream]


def has_cluster() -> bool:
    try:
        import dbgpt.model.cluster  # noqa: F401
    except ImportError:
        return False
    return True


async def record(results: dict, name: str, make):
    try:
        value = make()
        if asyncio.iscoroutine(value):
            value = await value
        results[name] = {"ok": True, "value": plain(value)}
    except BaseException as exc:  # what DB-GPT raised is the result
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}


def model_request(llm: str, **extra):
    from dbgpt.core import ModelMessage, ModelRequest

    return ModelRequest(model=llm, messages=[ModelMessage(role="human", content=QUESTION)], temperature=0, **extra)


# --- the DB-GPT cluster clients (0.7 and later) ---------------------------------------


async def cluster_calls(results: dict, address: str, llm: str, embedder: str, reranker: str) -> None:
    from dbgpt.model.cluster import ModelRegistryClient, RemoteWorkerManager
    from dbgpt.model.cluster.client import DefaultLLMClient
    from dbgpt.model.cluster.embedding.remote_embedding import RemoteEmbeddings, RemoteRerankEmbeddings
    from dbgpt.model.cluster.worker.remote_worker import RemoteModelWorker

    host, port = address.split("//")[1].split(":")
    params = model_request(llm).to_dict()  # what DB-GPT's LLM client sends
    worker = RemoteModelWorker()
    worker.load_worker(llm, host=host, port=int(port))
    await record(results, "worker.generate", lambda: _text(worker.async_generate(dict(params))))
    await record(results, "worker.generate_stream", lambda: collect(worker.async_generate_stream(dict(params))))
    await record(results, "worker.embeddings", lambda: worker.async_embeddings({"model": embedder, "input": TEXTS}))
    await record(results, "worker.count_token", lambda: worker.async_count_token(QUESTION))
    await record(results, "worker.model_metadata", lambda: worker.async_get_model_metadata({"model": llm}))

    registry = ModelRegistryClient(address)
    manager = RemoteWorkerManager(registry)
    await record(results, "registry.instances", lambda: registry.get_all_instances(f"{llm}@llm", True))
    await record(results, "registry.all_instances", lambda: registry.get_all_model_instances(healthy_only=True))
    await record(results, "manager.select", lambda: _address_of(manager.select_one_instance("llm", llm)))
    await record(results, "manager.generate", lambda: _text(manager.generate(dict(params))))
    await record(results, "manager.generate_stream", lambda: collect(manager.generate_stream(dict(params))))
    await record(results, "manager.embeddings", lambda: manager.embeddings({"model": embedder, "input": TEXTS}))
    await record(results, "manager.count_token", lambda: manager.count_token({"model": llm, "prompt": QUESTION}))
    await record(results, "manager.supported_models", manager.supported_models)

    client = DefaultLLMClient(manager)
    await record(results, "client.models", client.models)
    await record(results, "client.generate", lambda: _text(client.generate(model_request(llm))))
    await record(results, "client.generate_stream", lambda: collect(client.generate_stream(model_request(llm))))
    await record(results, "client.count_token", lambda: client.count_token(llm, QUESTION))
    await record(results, "client.context_length", lambda: _context_length(client, llm))

    embeddings = RemoteEmbeddings(embedder, manager)
    await record(results, "remote_embeddings.aembed_documents", lambda: embeddings.aembed_documents(TEXTS))
    rerank = RemoteRerankEmbeddings(reranker, manager)
    await record(results, "remote_rerank.apredict", lambda: rerank.apredict(QUERY, TEXTS))


async def _text(out) -> dict:
    return output_text(await out)


async def _address_of(selected) -> dict:
    run = await selected
    return {"host": run.host, "port": run.port, "worker_key": run.worker_key}


async def _context_length(client, llm: str) -> int:
    # DefaultLLMClient has no get_context_length (its proxy clients do): the webserver
    # reads the context length from the model's metadata, as here.
    return (await client.get_model_metadata(llm)).context_length


# --- DB-GPT 0.6's dataclasses, built from our answers as its remote worker builds them -----


def dataclass_calls(results: dict, address: str, llm: str, embedder: str) -> None:
    import httpx
    from dbgpt.core import ModelMetadata, ModelOutput
    from dbgpt.model.base import ModelInstance, WorkerSupportedModel

    http = httpx.Client(base_url=address, timeout=300)
    body = model_request(llm).to_dict()
    results_from = {
        "dataclass.ModelOutput": lambda: output_text(ModelOutput(**http.post("/api/worker/generate", json=body).json())),
        "dataclass.ModelMetadata": lambda: ModelMetadata.from_dict(
            http.post("/api/worker/model_metadata", json={"model": llm}).json()
        ),
        "dataclass.ModelInstance": lambda: [
            ModelInstance(**i) for i in http.get("/api/controller/models", params={"healthy_only": True}).json()
        ],
        "dataclass.WorkerSupportedModel": lambda: [
            WorkerSupportedModel.from_dict(w) for w in http.get("/api/worker/models/supports").json()
        ],
    }
    for name, make in results_from.items():
        asyncio.run(record(results, name, make))


# --- clients every version ships: the OpenAI proxy LLM, OpenAPI embeddings and rerank ------


async def openai_side_calls(results: dict, address: str, llm: str, embedder: str, reranker: str) -> None:
    from dbgpt.model.proxy.llms.chatgpt import OpenAILLMClient
    from dbgpt.rag.embedding.embeddings import OpenAPIEmbeddings
    from dbgpt.rag.embedding.rerank import OpenAPIRerankEmbeddings

    # DB-GPT's proxy leaves temperature out of its request when it is 0 (`if
    # request.temperature:`), and the server's default (OpenAI's, 1.0) samples: a user
    # who wants greedy answers sets it through openai_kwargs, as here.
    proxy = OpenAILLMClient(
        api_base=f"{address}/v1", api_key="none", model=llm, model_alias=llm, openai_kwargs={"temperature": 0}
    )
    await record(results, "proxy.generate", lambda: _text(proxy.generate(model_request(llm))))
    await record(results, "proxy.generate_stream", lambda: collect(proxy.generate_stream(model_request(llm))))
    embeddings = OpenAPIEmbeddings(api_url=f"{address}/v1/embeddings", api_key="none", model_name=embedder)
    await record(results, "openapi_embeddings.embed_documents", lambda: embeddings.embed_documents(TEXTS))
    rerank = OpenAPIRerankEmbeddings(api_url=f"{address}/api/v1/beta/relevance", api_key="none", model_name=reranker)
    await record(results, "openapi_rerank.predict", lambda: rerank.predict(QUERY, TEXTS))


# --- management through RemoteWorkerManager ----------------------------------------------


async def manage(results: dict, address: str, model: str, source: str) -> None:
    """Start, restart and stop an llm with no weights (the simulated engine): what is checked
    is the lifecycle as DB-GPT's manager drives it, not a model's answer."""
    from dbgpt.model.cluster import ModelRegistryClient, RemoteWorkerManager, WorkerApplyRequest, WorkerStartupRequest

    manager = RemoteWorkerManager(ModelRegistryClient(address))
    host, port = address.split("//")[1].split(":")

    def startup(name: str, params: dict):
        req = WorkerStartupRequest(host=host, port=int(port), model=name, worker_type="llm", params=params)
        return manager.model_startup(req)

    def shutdown(name: str):
        req = WorkerStartupRequest(host=host, port=int(port), model=name, worker_type="llm", params={})
        return manager.model_shutdown(req)

    params = {"model_path": source, "engine": "simulated"}
    await record(results, "startup", lambda: startup(model, params))
    await record(results, "startup_again", lambda: startup(model, params))  # exists: must fail
    await record(results, "startup_bad_params", lambda: startup(model + "-bad", {**params, "no_such": 1}))
    apply = WorkerApplyRequest(model=model, worker_type="llm", apply_type="restart")
    await record(results, "apply_restart", lambda: manager.worker_apply(apply))
    await record(results, "shutdown", lambda: shutdown(model))
    await record(results, "shutdown_again", lambda: shutdown(model))  # gone: must fail


# --- a reasoning model's thinking, as each version reads it --------------------------------


def parts(out) -> dict:
    """What 0.7+ read from a reasoning model's output: its thinking part and its text."""
    return {"thinking": out.thinking_text, "text": out.text if out.has_text else None, "error_code": out.error_code}


async def thinking_calls(results: dict, address: str, model: str) -> None:
    if not has_cluster():  # 0.6: its dataclass, from our answer, as its remote worker builds it
        import httpx
        from dbgpt.core import ModelOutput

        answer = httpx.post(f"{address}/api/worker/generate", json=model_request(model).to_dict(), timeout=300).json()
        await record(results, "thinking.dataclass", lambda: output_text(ModelOutput(**answer)))
        return
    from dbgpt.model.cluster.worker.remote_worker import RemoteModelWorker

    host, port = address.split("//")[1].split(":")
    worker = RemoteModelWorker()
    worker.load_worker(model, host=host, port=int(port))
    params = model_request(model).to_dict()

    async def last_of_stream():
        frames = [parts(o) async for o in worker.async_generate_stream(dict(params))]
        return {"last": frames[-1], "frames": len(frames)}

    async def whole():
        return parts(await worker.async_generate(dict(params)))

    await record(results, "thinking.generate", whole)
    await record(results, "thinking.generate_stream", last_of_stream)


async def adapter_calls(results: dict, address: str, adapter: str) -> None:
    """A LoRA adapter (a model of its own, on its base's replicas) through DB-GPT's classes."""
    from dbgpt.model.cluster import ModelRegistryClient, RemoteWorkerManager
    from dbgpt.model.cluster.client import DefaultLLMClient
    from dbgpt.model.cluster.worker.remote_worker import RemoteModelWorker

    host, port = address.split("//")[1].split(":")
    worker = RemoteModelWorker()
    worker.load_worker(adapter, host=host, port=int(port))
    await record(results, "worker.generate", lambda: _text(worker.async_generate(model_request(adapter).to_dict())))
    registry = ModelRegistryClient(address)
    await record(results, "registry.instances", lambda: registry.get_all_instances(f"{adapter}@llm", True))
    client = DefaultLLMClient(RemoteWorkerManager(registry))
    await record(results, "client.generate", lambda: _text(client.generate(model_request(adapter))))


def main() -> None:
    mode, *args = sys.argv[1:]
    results: dict = {"version": dbgpt.__version__, "cluster": has_cluster()}
    if mode == "calls":
        address, llm, embedder, reranker, out = args
        if results["cluster"]:
            asyncio.run(cluster_calls(results, address, llm, embedder, reranker))
        else:
            dataclass_calls(results, address, llm, embedder)
        asyncio.run(openai_side_calls(results, address, llm, embedder, reranker))
    elif mode == "adapter":
        address, adapter, out = args
        asyncio.run(adapter_calls(results, address, adapter))
    elif mode == "thinking":
        address, model, out = args
        asyncio.run(thinking_calls(results, address, model))
    else:
        address, model, source, out = args
        asyncio.run(manage(results, address, model, source))
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
