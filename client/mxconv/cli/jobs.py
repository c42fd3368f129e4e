"""``mxconv jobs``: submit, watch, get, cancel, list and delete training jobs, and get a
trained model (``mxconv jobs model ID --format onnx -o model.onnx``).

Every command takes a job's id or any unique prefix of it (as the progress bar prints it).
A spec is a JobSpec as JSON: one ``layer``, or a ``network`` of layers; ``--x``/``--y`` give
its tensors from ``.npy`` files (class labels may be integers), sent as ``.npy`` parts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import schemas
from ..client import Client
from . import client

#: How many of the newest jobs a short id is looked for among.
PREFIX_SEARCH = 500


def resolve(c: Client, job_id: str) -> str:
    """The full id of the one job ``job_id`` is a prefix of (a full id is taken as it is)."""
    if len(job_id) >= 32:
        return job_id
    matches = [j.id for j in c.jobs.list(limit=PREFIX_SEARCH).jobs if j.id.startswith(job_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SystemExit(f"mxconv: no job's id starts with {job_id!r} (mxconv jobs list shows them)")
    shown = ", ".join(matches[:4])
    raise SystemExit(f"mxconv: {job_id!r} starts {len(matches)} ids ({shown} ...); give more of it")


def _summary(job: schemas.Job) -> str:
    """What a person watching a job wants at the end; `mxconv jobs get ID` has the full record."""
    lines = [f"job {job.id}: {job.status}"]
    if job.result is not None:
        r = job.result
        lines.append(f"final loss {r.final_loss:.4g} after {r.epochs_run} epochs")
        if r.weight is None:  # a network
            m = r.metrics or {}
            shown = [f"{k} {m[k]:.4g}" for k in ("accuracy", "val_loss", "val_accuracy") if k in m]
            if shown:
                lines.append(", ".join(shown))
            lines.append(
                f"{r.params} parameters; model: mxconv jobs model {job.id[:8]} --format onnx -o model.onnx"
            )
        elif r.weight.size <= 64:
            lines.append(f"weight {np.array2string(r.weight.squeeze(), precision=4)}")
            if r.bias is not None:
                lines.append(f"bias {np.array2string(r.bias, precision=4)}")
        else:
            lines.append(f"weight of shape {list(r.weight.shape)}")
    if job.error:
        lines.append(f"error: {job.error}")
    lines.append(f"full record: mxconv jobs get {job.id[:8]}")
    return "\n".join(lines)


def _watch(c: Client, job_id: str, timeout: float | None, as_json: bool) -> int:
    job = c.jobs.wait(job_id, timeout=timeout, progress=True)
    print(job.model_dump_json() if as_json else _summary(job))
    return 0 if job.status == "succeeded" else 1


def _cmd_submit(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
    spec = json.loads(text)
    arrays = {}
    for name in ("x", "y", "initial_weight", "initial_bias"):
        path = getattr(args, name, None)
        if path:  # .npy files only, never pickles
            arrays[name] = np.load(path, allow_pickle=False)
    c = client(args)
    job = c.jobs.submit_spec(spec, arrays=arrays)
    if not args.wait:
        print(job.model_dump_json() if args.json else job.id)
        return 0
    print(job.id, flush=True)
    return _watch(c, job.id, args.timeout, args.json)


def _cmd_watch(args: argparse.Namespace) -> int:
    c = client(args)
    return _watch(c, resolve(c, args.job_id), args.timeout, args.json)


def _cmd_get(args: argparse.Namespace) -> int:
    c = client(args)
    print(
        c.jobs.get(resolve(c, args.job_id), history=args.history).model_dump_json(
            indent=None if args.json else 2
        )
    )
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    c = client(args)
    job = c.jobs.cancel(resolve(c, args.job_id))
    if args.json:
        print(job.model_dump_json())
    elif job.status == "cancelled":
        print(f"job {job.id[:8]}: cancelled")
    else:
        print(f"job {job.id[:8]}: {job.status}, cancel requested (it stops within an epoch)")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    c = client(args)
    job_id = resolve(c, args.job_id)
    c.jobs.delete(job_id)
    print(json.dumps({"id": job_id, "deleted": True}) if args.json else f"job {job_id[:8]}: deleted")
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    c = client(args)
    job_id = resolve(c, args.job_id)
    data = c.models.export(job_id, args.format)
    out = args.output or ("model.onnx" if args.format == "onnx" else "model.zip")
    Path(out).write_bytes(data)
    print(
        json.dumps({"id": job_id, "file": out, "bytes": len(data)})
        if args.json
        else f"{out}: {len(data)} bytes"
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    page = client(args).jobs.list(status=args.status, limit=args.limit, offset=args.offset)
    if args.json:
        print(page.model_dump_json())
        return 0
    for job in page.jobs:
        loss = "-" if job.progress.loss is None else f"{job.progress.loss:.4g}"
        print(f"{job.id[:8]}  {job.status:<9}  epoch {job.progress.epoch}/{job.progress.epochs}  loss {loss}")
    print(f"({len(page.jobs)} of {page.total})", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="training jobs: submit, watch, get, cancel, list, delete")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")
    submit = jsub.add_parser("submit", help="submit a job spec (JSON file, or - for stdin)")
    submit.add_argument("spec", help="JobSpec as JSON: x, y, layer, optimizer, epochs ...")
    for name in ("x", "y", "initial_weight", "initial_bias"):
        submit.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"{name} from a .npy file")
    submit.add_argument("--wait", action="store_true", help="then watch it with a progress bar")
    submit.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    submit.set_defaults(func=_cmd_submit)
    for name, fn, help_text in (
        ("watch", _cmd_watch, "show a progress bar until the job finishes"),
        ("get", _cmd_get, "print the job as JSON"),
        ("cancel", _cmd_cancel, "cancel a queued or running job"),
        ("delete", _cmd_delete, "delete a finished job"),
    ):
        p = jsub.add_parser(name, help=help_text)
        p.add_argument("job_id", help="the id, or any unique start of it")
        if name == "watch":
            p.add_argument("--timeout", type=float, default=None)
        if name == "get":
            p.add_argument("--no-history", dest="history", action="store_false", help="omit the loss history")
        p.set_defaults(func=fn)
    model = jsub.add_parser("model", help="save a succeeded job's trained model (MXNet .zip or ONNX)")
    model.add_argument("job_id", help="the id, or any unique start of it")
    model.add_argument("--format", choices=["mxnet", "onnx"], default="mxnet")
    model.add_argument("-o", "--output", default=None, help="file to write (default model.zip / model.onnx)")
    model.set_defaults(func=_cmd_model)
    lst = jsub.add_parser("list", help="list jobs, newest first")
    lst.add_argument(
        "--status", default=None, choices=["queued", "running", "succeeded", "failed", "cancelled"]
    )
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--offset", type=int, default=0)
    lst.set_defaults(func=_cmd_list)
