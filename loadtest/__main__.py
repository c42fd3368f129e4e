"""``python -m loadtest``: run the mix at each concurrency and print the figures."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from . import mix, run


def spawn(workdir: Path, env_extra: dict[str, str]) -> tuple[str, subprocess.Popen[bytes]]:
    """`mxconv serve` with its default config on a free 127.0.0.1 port; waits until ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MXCONV_HOST": "127.0.0.1", "MXCONV_PORT": str(port), **env_extra}
    env.setdefault("MXCONV_DATA_DIR", str(workdir / "data"))
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([sys.executable, "-m", "mxconv.cli", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see {workdir / 'server.log'}")
        try:
            if requests.get(url + "/v1/health/ready", timeout=5).status_code == 200:
                return url, proc
        except requests.RequestException:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server not ready in 90 s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    p.add_argument("--url", help="a running server; default: --spawn one")
    p.add_argument("--server-pid", type=int, help="pid of `mxconv serve` (for RSS per worker)")
    p.add_argument("--spawn", action="store_true", help="start `mxconv serve` (default config) for the run")
    p.add_argument("--api-key", default=os.environ.get("MXCONV_API_KEY"))
    p.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)

    proc = None
    url, pid = args.url, args.server_pid
    if args.spawn or not url:
        workdir = Path(tempfile.mkdtemp(prefix="mxconv-load-"))
        url, proc = spawn(workdir, {})
        pid = proc.pid
        print(f"spawned mxconv serve (pid {pid}) at {url}; log in {workdir}/server.log")
    try:
        auth = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        spec = requests.get(url + "/openapi.json", headers=auth, timeout=30).json()
        info = requests.get(url + "/v1/info", headers=auth, timeout=30).json()
        print(f"server {info.get('version')} on {info.get('device')}, {os.cpu_count()} cores here")
        kinds = mix.available(mix.default_mix(), spec)
        figures = []
        for c in args.concurrency:
            result = run.run(
                url, kinds, concurrency=c, duration=args.duration, api_key=args.api_key, server_pid=pid
            )
            print(result.report(), flush=True)
            print()
            figures.append(run.summary(result))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))
        return 1 if any(f["unexpected"] for f in figures) else 0
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
