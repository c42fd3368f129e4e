"""The ``mxconv`` command."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence

from . import errors
from .client import Client


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, api_key=args.api_key)


def _cmd_serve(args: argparse.Namespace) -> int:
    # The client never imports the server; `serve` loads it only when asked, by name.
    try:
        serve = importlib.import_module("mxconv_server.serve").serve
    except ImportError:
        print("mxconv serve needs the server: pip install 'mxconv[server]'", file=sys.stderr)
        return 2
    return int(serve(host=args.host, port=args.port, workers=args.workers))


def _cmd_info(args: argparse.Namespace) -> int:
    print(_client(args).info().model_dump_json(indent=2))
    return 0


def _cmd_corr2d(args: argparse.Namespace) -> int:
    y = _client(args).corr2d(json.loads(args.x), json.loads(args.kernel))
    print(json.dumps(y.tolist()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mxconv", description="The mxconv convolution service.")
    parser.add_argument(
        "--url",
        default=os.environ.get("MXCONV_URL", "http://127.0.0.1:8000"),
        help="server URL (env MXCONV_URL)",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("MXCONV_API_KEY"), help="API key (env MXCONV_API_KEY)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service (gunicorn and job workers)")
    serve.add_argument("--host", default=None, help="bind address (default MXCONV_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default MXCONV_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=None, help="gunicorn workers (MXCONV_WORKERS)")
    serve.set_defaults(func=_cmd_serve)

    info = sub.add_parser("info", help="print the server's versions, device and limits")
    info.set_defaults(func=_cmd_info)

    corr = sub.add_parser("corr2d", help="valid 2-D cross-correlation of JSON arrays")
    corr.add_argument("x", help="input as JSON, e.g. '[[0,1,2],[3,4,5],[6,7,8]]'")
    corr.add_argument("kernel", help="kernel as JSON, e.g. '[[0,1],[2,3]]'")
    corr.set_defaults(func=_cmd_corr2d)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except errors.MxconvError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
