"""`smmf`: manage the running models through the ingress, like `dbgpt model`, and follow batches.

    smmf model list
    smmf model start NAME --type llm --source PATH [--param k=v ...]
    smmf model start NAME                    (a model stopped earlier, as it was)
    smmf model stop NAME [--forget]
    smmf model restart NAME
    smmf model update NAME --param k=v [--param k=v ...]
    smmf batch list
    smmf batch show ID [--no-wait]           (follows it to its end, unless --no-wait)
    smmf state export|import FILE

The address comes from --address or SMMF_ADDRESS (default http://127.0.0.1:8000),
an admin key from --api-key or SMMF_API_KEY.
"""

import argparse
import os
import sys
from typing import Optional

from serve_app.cli import batches
from serve_app.cli.client import IngressClient
from serve_app.cli.models import apply, list_models, parse_params
from serve_app.cli.state import state_command


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="smmf", description="Manage the models of an smmf-serve ingress.")
    parser.add_argument("--address", default=os.environ.get("SMMF_ADDRESS", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("SMMF_API_KEY"))
    sub = parser.add_subparsers(dest="group", required=True)
    model = sub.add_parser("model", help="list, start, stop, restart or update models").add_subparsers(
        dest="command", required=True
    )
    model.add_parser("list", help="name, type, replicas and state of every model")
    start = model.add_parser("start", help="start a model")
    start.add_argument("name")
    start.add_argument("--type", default=None, dest="worker_type",
                       help="llm (default), text2vec or reranker; a stopped model keeps its own")
    start.add_argument("--source", help="model path, package:<pkg>/<path> or hub id; not needed to start a stopped model again")
    for name in ("stop", "restart", "update"):
        p = model.add_parser(name, help=f"{name} a model")
        p.add_argument("name")
    model.choices["stop"].add_argument(
        "--forget", action="store_true", help="also forget its config (a stopped model can otherwise start again by name)"
    )
    for p in (start, model.choices["update"]):
        p.add_argument("--param", action="append", default=[], help="key=value (repeatable)")
    for p in model.choices.values():
        p.add_argument("--timeout", type=float, default=None, help="seconds to wait for the change")
    for name in ("start", "restart", "update"):
        model.choices[name].add_argument(
            "--no-wait", action="store_true", help="return once the change is applied; `smmf model list` follows it"
        )
    state = sub.add_parser("state", help="back up or restore what the API made (keys as hashes)").add_subparsers(
        dest="command", required=True)
    state.add_parser("export", help="models, keys, counts and stored responses into FILE").add_argument("file")
    state.add_parser("import", help="FILE into this deployment; what it started is started").add_argument("file")
    batch = sub.add_parser("batch", help="the Batch API's batches").add_subparsers(dest="command", required=True)
    batch.add_parser("list", help="id, status, endpoint and progress of every batch the key may see")
    show = batch.add_parser("show", help="a batch, followed to its end (a live line in a terminal)")
    show.add_argument("id")
    show.add_argument("--no-wait", action="store_true", help="show it as it is now and return")
    args = parser.parse_args(argv)

    ingress = IngressClient(args.address, args.api_key)
    try:
        if args.group == "state":
            return state_command(ingress, args.command, args.file)
        if args.group == "batch":
            if args.command == "list":
                return batches.list_batches(ingress)
            return batches.show_batch(ingress, args.id, follow=not args.no_wait)
        if args.command == "list":
            return list_models(ingress)
        body = {"model": args.name, "timeout_s": args.timeout, "wait": not getattr(args, "no_wait", False)}
        if args.command == "start":
            params = {**({"source": args.source} if args.source else {}), **parse_params(args.param)}
            body.update(apply_type="start", worker_type=args.worker_type, params=params)
        elif args.command == "update":
            body.update(apply_type="update_params", params=parse_params(args.param))
        else:
            body.update(apply_type=args.command, delete_after=getattr(args, "forget", False))
        watch = args.name if args.command in ("start", "restart", "update") else None
        return apply(ingress, body, watch)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise
