"""The ``mxconv`` command."""

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

from . import errors, schemas
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


def _print_job(job: schemas.Job) -> None:
    print(job.model_dump_json(indent=2))


def _cmd_jobs_submit(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
    spec = json.loads(text)
    for name in ("x", "y", "initial_weight", "initial_bias"):
        path = getattr(args, name, None)
        if path:  # .npy files only, never pickles
            spec[name] = np.load(path, allow_pickle=False).tolist()
    client = _client(args)
    job = client.jobs.submit_spec(spec)
    print(job.id if args.wait else job.model_dump_json(indent=2))
    if args.wait:
        return _watch(client, job.id, args.timeout)
    return 0


def _summary(job: schemas.Job) -> str:
    """What a person watching a job wants at the end; `mxconv jobs get ID` has the full record."""
    lines = [f"job {job.id}: {job.status}"]
    if job.result is not None:
        r = job.result
        lines.append(f"final loss {r.final_loss:.4g} after {r.epochs_run} epochs")
        if r.weight.size <= 64:
            lines.append(f"weight {np.array2string(r.weight.squeeze(), precision=4)}")
            if r.bias is not None:
                lines.append(f"bias {np.array2string(r.bias, precision=4)}")
        else:
            lines.append(f"weight of shape {list(r.weight.shape)}")
    if job.error:
        lines.append(f"error: {job.error}")
    lines.append(f"full record: mxconv jobs get {job.id}")
    return "\n".join(lines)


def _watch(client: Client, job_id: str, timeout: float | None) -> int:
    job = client.jobs.wait(job_id, timeout=timeout, progress=True)
    print(_summary(job))
    return 0 if job.status == "succeeded" else 1


def _cmd_jobs_watch(args: argparse.Namespace) -> int:
    return _watch(_client(args), args.job_id, args.timeout)


def _cmd_jobs_get(args: argparse.Namespace) -> int:
    _print_job(_client(args).jobs.get(args.job_id, history=args.history))
    return 0


def _cmd_jobs_cancel(args: argparse.Namespace) -> int:
    _print_job(_client(args).jobs.cancel(args.job_id))
    return 0


def _cmd_jobs_delete(args: argparse.Namespace) -> int:
    _client(args).jobs.delete(args.job_id)
    return 0


def _cmd_jobs_list(args: argparse.Namespace) -> int:
    page = _client(args).jobs.list(status=args.status, limit=args.limit, offset=args.offset)
    for job in page.jobs:
        loss = "-" if job.progress.loss is None else f"{job.progress.loss:.4g}"
        print(f"{job.id}  {job.status:<9}  epoch {job.progress.epoch}/{job.progress.epochs}  loss {loss}")
    print(f"({len(page.jobs)} of {page.total})", file=sys.stderr)
    return 0


def _add_jobs(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="training jobs: submit, watch, get, cancel, list, delete")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True)
    submit = jsub.add_parser("submit", help="submit a job spec (JSON file, or - for stdin)")
    submit.add_argument("spec", help="JobSpec as JSON: x, y, layer, optimizer, epochs ...")
    for name in ("x", "y", "initial_weight", "initial_bias"):
        submit.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"{name} from a .npy file")
    submit.add_argument("--wait", action="store_true", help="then watch it with a progress bar")
    submit.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    submit.set_defaults(func=_cmd_jobs_submit)
    watch = jsub.add_parser("watch", help="show a progress bar until the job finishes")
    watch.add_argument("job_id")
    watch.add_argument("--timeout", type=float, default=None)
    watch.set_defaults(func=_cmd_jobs_watch)
    get = jsub.add_parser("get", help="print the job as JSON")
    get.add_argument("job_id")
    get.add_argument("--no-history", dest="history", action="store_false", help="omit the loss history")
    get.set_defaults(func=_cmd_jobs_get)
    cancel = jsub.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id")
    cancel.set_defaults(func=_cmd_jobs_cancel)
    delete = jsub.add_parser("delete", help="delete a finished job")
    delete.add_argument("job_id")
    delete.set_defaults(func=_cmd_jobs_delete)
    lst = jsub.add_parser("list", help="list jobs, newest first")
    lst.add_argument("--status", default=None)
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--offset", type=int, default=0)
    lst.set_defaults(func=_cmd_jobs_list)


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
    _add_jobs(sub)
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
