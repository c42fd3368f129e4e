"""The ``mxconv`` command: a subcommand for each API resource, for people and for scripts.

Arrays come from ``.npy`` files (never pickled) or JSON literals; results go to ``-o FILE``
(``.npy``, or ``.png`` where the server draws one) or to standard output, as text or, with
``--json``, as JSON. ``--url`` and ``--api-key`` default to ``MXCONV_URL`` and
``MXCONV_API_KEY``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, errors
from ..client import Client


def client(args: argparse.Namespace) -> Client:
    return Client(args.url, api_key=args.api_key)


def array(text: str) -> Any:
    """A ``.npy`` file's array (never unpickled), or a JSON literal such as ``[[1,-1]]``."""
    if text.endswith(".npy"):
        return np.load(text, allow_pickle=False)
    try:
        return json.loads(text)
    except ValueError:
        raise SystemExit(f"mxconv: {text!r} is neither a .npy file nor a JSON array like [[1,-1]]") from None


def emit(args: argparse.Namespace, y: Any, result: Any = None) -> None:
    """Write an array to ``-o`` (.npy), or print it: as JSON (the whole result) with ``--json``."""
    out: str | None = getattr(args, "output", None)
    if out:
        np.save(out, np.asarray(y))
        _say(args, f"{out}: {list(np.shape(y))} {np.asarray(y).dtype}")
    elif args.json:
        print(json.dumps(_jsonable(result if result is not None else y)))
    else:
        print(np.array2string(np.asarray(y), threshold=200, precision=6))


def _say(args: argparse.Namespace, text: str) -> None:
    """A note for people; with --json it goes to stderr, keeping stdout parseable."""
    print(text, file=sys.stderr if args.json else sys.stdout)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return _jsonable(value.model_dump())
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_bytes(args: argparse.Namespace, data: bytes) -> None:
    Path(args.output).write_bytes(data)
    _say(args, f"{args.output}: {len(data)} bytes")


def _cmd_serve(args: argparse.Namespace) -> int:
    # The client never imports the server; `serve` loads it only when asked, by name.
    try:
        serve = importlib.import_module("mxconv_server.serve").serve
    except ImportError:
        print("mxconv serve needs the server: pip install 'mxconv[server]'", file=sys.stderr)
        return 2
    return int(serve(host=args.host, port=args.port, workers=args.workers))


def _cmd_info(args: argparse.Namespace) -> int:
    info = client(args).info()
    if args.json:
        print(info.model_dump_json())
        return 0
    print(f"mxconv {info.version} on {args.url}: device {info.device}, mxnet {info.versions.get('mxnet')}")
    for name, value in info.limits.items():
        print(f"  {name} = {value}")
    print(f"  features: {', '.join(info.features)}")
    return 0


def _cmd_health(args: argparse.Namespace) -> int:
    try:
        health = client(args).health(ready=not args.live)
    except errors.ServiceUnavailableError as e:
        print(f"not ready: {e.message}")
        return 1
    print(health.model_dump_json() if args.json else health.status)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import compute, jobs

    parser = argparse.ArgumentParser(
        prog="mxconv", description="The mxconv convolution service, from the shell."
    )
    parser.add_argument("--version", action="version", version=f"mxconv {__version__}")
    parser.add_argument(
        "--url",
        default=os.environ.get("MXCONV_URL", "http://127.0.0.1:8000"),
        help="server URL (env MXCONV_URL)",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("MXCONV_API_KEY"), help="API key (env MXCONV_API_KEY)"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON, for scripts")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the service (gunicorn and job workers)")
    serve.add_argument("--host", default=None, help="bind address (default MXCONV_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default MXCONV_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=None, help="gunicorn workers (MXCONV_WORKERS)")
    serve.set_defaults(func=_cmd_serve)
    sub.add_parser("info", help="the server's versions, device, limits and features").set_defaults(
        func=_cmd_info
    )
    health = sub.add_parser("health", help="whether the server is ready (exit 1 if not)")
    health.add_argument("--live", action="store_true", help="liveness only")
    health.set_defaults(func=_cmd_health)
    compute.add_commands(sub)
    jobs.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that went away is seen here, not at the interpreter's exit
        return code
    except errors.MxconvError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`mxconv jobs list | head`): no traceback. Point stdout at
        # /dev/null so that the interpreter's final flush fails quietly too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
