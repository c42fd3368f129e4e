"""gunicorn settings for mxconv, all in one place, read from MXCONV_* (see config.py).

Run: gunicorn -c python:mxconv_server.gunicorn_conf 'mxconv_server.app:create_app()'
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
from typing import Any

from mxconv import sockets

from mxconv_server import logs
from mxconv_server.config import Settings
from mxconv_server.errors import raw_error_response
from mxconv_server.transport import compat
from mxconv_server.watchdog import GRACE_SECONDS

_settings = Settings()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
# Sync workers: each request is CPU-bound MXNet work, so one at a time per process.
worker_class = "sync"
# Above everything a request may take (its body, its work, the watchdog's grace), so gunicorn
# never kills a worker for a timeout: the deadline answers 504 first (mxconv_server.watchdog).
timeout = int(_settings.body_timeout + _settings.max_request_seconds + GRACE_SECONDS + 30)
graceful_timeout = 30
keepalive = 5
# Every worker imports MXNet itself (no preload): MXNet's engine threads do not survive fork.
preload_app = False

# Read when MXNet loads, so set here in the master before any fork (Settings.worker_env).
# Measured on the 2-core benchmark machine (make bench; docs/performance.md):
# - OMP_NUM_THREADS = cores / workers (1 with the default 2 workers). Spin-waiting OpenMP
#   threads starve the other workers (DESIGN.md: 283 vs 2,592 small req/s). With 2 threads per
#   worker and passive waiting, the (1,3,224,224)x(64,3,3,3) case took 31 ms against 15 ms with
#   1 thread once the cores were busy: oversubscribed OpenMP barriers cost more than the second
#   thread gains. A machine with spare cores per worker gets them (MXCONV_OMP_THREADS overrides).
# - OMP_WAIT_POLICY=passive: idle OpenMP threads sleep instead of spinning.
# - MXNET_ENGINE_TYPE=NaiveEngine: a sync worker computes one request at a time, so MXNet's
#   engine thread only adds a hand-off at every sync point. Under wrk load, py-spy put 41% of a
#   worker's busy time in NDArray._sync_copyfrom waiting for that thread; with NaiveEngine the
#   op runs inline, and a seed-sized request costs ~5-10% less CPU (test client, medians).
# - MXNET_CPU_TEMP_COPY=1: MXNet keeps this many temporary workspaces (default 4) for operators
#   that may run in parallel; run one at a time, a worker only ever needs one. With 4, RSS grew
#   by another workspace on each of the first requests: the worker's request path run in a loop
#   on (8,64,56,56)x(64,64,3,3) held 297 MiB after five requests against 260 MiB with 1, and
#   make bench's peak-RSS figure for repeats fell from +36.8 to +6-12 MiB; no speed change.
for _key, _value in _settings.worker_env().items():
    os.environ.setdefault(_key, _value)

# gunicorn's own lines (master and workers) in the service's format: JSON unless told otherwise.
logconfig_dict = logs.dict_config(_settings.log_level, _settings.log_format)

# prometheus-client's multiprocess mode: every worker writes its metrics to files in this
# directory and /metrics sums them. It must be fresh for every start: `mxconv serve` makes one;
# run by hand, gunicorn gets one here, in the master, before any worker imports prometheus_client.
_own_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_metrics_dir = tempfile.mkdtemp(prefix="mxconv-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


def when_ready(server: Any) -> None:
    """Listening sockets with tensor-sized buffers, which every accepted connection inherits:
    6.4 MB each way on a fresh connection, 25.9 instead of 29.2 ms (mxconv.sockets)."""
    for listener in server.LISTENERS:
        sockets.apply(listener.sock)


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges must not be summed any more; its counters still are."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)


def post_fork(server: Any, worker: Any) -> None:
    """Every process starts with the same RNG state; give each worker its own seed."""
    # Until gunicorn installs the worker's own handlers (after this hook), the fork still has the
    # master's, which only queue the signal for a master that is not there: a stop arriving while
    # MXNet loads below was lost, and shutdown waited out graceful_timeout. Die at once instead.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    seed = (os.getpid() * 2654435761) % 2**31
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass
    from mxconv_server.compute.mx import mxnet

    mxnet.random.seed(seed)


control_socket_disable = True  # several services (and tests) may share this host

_GUNICORN_CODES = {400: "malformed_request", 414: "uri_too_long", 431: "headers_too_large"}


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn answers requests it cannot parse (request line over 4094 bytes, bad headers)
    itself, in HTML; answer in mxconv's one error shape instead, so clients and the spec hold."""
    code = _GUNICORN_CODES.get(status_int, "internal_error" if status_int >= 500 else "error")
    compat.write_nonblock(sock, raw_error_response(status_int, code, f"{reason}: {mesg}"))


# No server banner (gunicorn answers "Server: gunicorn"; older releases added the version), and
# its own errors in mxconv's shape. Workers are forked from this master: they inherit both.
compat.patch_gunicorn(_write_json_error)
