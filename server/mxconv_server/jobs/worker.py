"""The job worker: claims queued jobs from the store and trains them, one at a time.

Run: ``python -m mxconv_server.jobs.worker`` (``mxconv serve`` starts MXCONV_JOB_WORKERS of
them and restarts any that die).

While it trains, a heartbeat thread renews the job's lease every third of
MXCONV_JOB_LEASE_SECONDS, whatever the epoch length; progress and the loss history are
written after each epoch. A worker killed with -9 stops renewing: once the lease expires,
any worker's reaper re-queues the job (or fails it after MXCONV_JOB_MAX_ATTEMPTS). On
SIGTERM it stops at the end of the current epoch and gives its job back to the queue.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from ..config import Settings
from . import rules
from .records import Heartbeat, JobRecord, Lease, StoreUnavailable
from .store import JobStore

log = logging.getLogger("mxconv.jobs.worker")

#: Progress (and the cancel flag) go through the store at most this often. 0: after every
#: epoch, so a cancel takes effect within one epoch; a write costs well under a millisecond.
FLUSH_SECONDS = 0.0
#: How often an idle worker looks at the queue (a cheap indexed read; no write lock).
POLL_SECONDS = 0.05


class LeaseLost(Exception):
    """The store says another worker holds this job now: stop, write nothing."""


class ShuttingDown(Exception):
    """The worker was asked to stop: give the job back to the queue."""


class Worker:
    def __init__(
        self,
        settings: Settings | None = None,
        store: JobStore | None = None,
        worker_id: str | None = None,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        from . import open_store

        self.settings = settings or Settings()
        self.store = store or open_store(self.settings.jobs_store_url)
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self._next_reap = 0.0
        self.flush_seconds = flush_seconds

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        from ..compute import device

        self.ctx = device.resolve(self.settings.device)  # loads MXNet before the first job
        log.info("job worker %s ready (device %s)", self.id, self.settings.device)
        failures = 0
        while not self.stopping.is_set():
            try:
                busy = self.run_once()
                failures = 0
            except Exception as e:  # the store is unreachable or locked: back off, keep the process
                failures += 1
                if isinstance(e, StoreUnavailable):  # an outage: one line, no trace
                    log.warning("job worker %s: %s (%d in a row)", self.id, e, failures)
                else:
                    log.exception("job worker %s: the job store failed (%d in a row)", self.id, failures)
                busy = False
                self.stopping.wait(min(10.0, 0.5 * 2**failures))
            if not busy:
                self.stopping.wait(POLL_SECONDS)
        log.info("job worker %s stopped", self.id)

    def run_once(self) -> bool:
        """Reap expired leases, then claim and run one job. False when the queue was empty."""
        now = time.monotonic()
        if now >= self._next_reap:
            self._next_reap = now + max(0.5, self.settings.job_lease_seconds / 4)
            for job_id in self.store.reap(self.settings.job_max_attempts):
                log.warning("job %s: its worker stopped renewing the lease; reaped", job_id)
        claimed = self.store.claim(self.id, self.settings.job_lease_seconds)
        if claimed is None:
            return False
        self.run_job(*claimed)
        return True

    # -- one job -----------------------------------------------------------------------

    def run_job(self, job: JobRecord, lease: Lease) -> None:
        from ..compute import train as training
        from ..compute.errors import InvalidArgument
        from . import spec as job_spec

        log.info("job %s: attempt %d on %s", job.id, lease.attempt, self.id)
        lease_s = self.settings.job_lease_seconds
        state: dict[str, Heartbeat] = {"beat": "ok"}
        done = threading.Event()
        pending: dict[int, float] = {}
        metrics: dict[str, dict[int, float]] = {}
        last = {"flush": 0.0, "epoch": 0, "flushed": 0, "checkpoint": job.checkpoint_epoch}

        def beat() -> None:  # keeps the lease alive through long epochs
            while not done.wait(lease_s / 3):
                try:
                    answer = self.store.heartbeat(lease, lease_s)
                except StoreUnavailable as e:  # a busy or absent store: try again next time
                    log.warning("job %s: heartbeat failed: %s", job.id, e)
                    continue
                except Exception:
                    log.exception("job %s: heartbeat failed", job.id)
                    continue
                if answer != "ok":
                    state["beat"] = answer

        def flush(report: Any, checkpoint: Any = None) -> Heartbeat:
            kwargs: dict[str, Any] = {"new_losses": dict(pending), "new_metrics": metrics}
            if report is not None:
                snap = getattr(report, "metrics", None) or report.snapshot()  # a network's metrics
                kwargs.update(epoch=report.epoch, loss=report.loss, elapsed=report.elapsed, snapshot=snap)
                last["flushed"] = report.epoch
            answer = self.store.heartbeat(lease, lease_s, checkpoint=checkpoint, **kwargs)
            pending.clear()
            metrics.clear()
            last["flush"] = time.monotonic()
            return answer

        def record(report: Any) -> None:
            pending[report.epoch] = report.loss
            for name, value in getattr(report, "metrics", {}).items():
                metrics.setdefault(name, {})[report.epoch] = value
            last["epoch"] = report.epoch

        def on_checkpoint(report: Any, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
            record(report)  # the epoch's progress and the checkpoint after it: one write
            answer = flush(report, (meta, arrays))
            if answer == "lost":
                raise LeaseLost
            last["checkpoint"] = report.epoch
            if answer == "cancel":
                state["beat"] = "cancel"

        def on_epoch(report: Any) -> None:
            if last["flushed"] != report.epoch:
                record(report)
            answer = state["beat"]
            if (
                answer == "ok"
                and pending
                and (time.monotonic() - last["flush"] >= self.flush_seconds or report.epoch == report.epochs)
            ):
                answer = flush(report)
            if answer == "lost":
                raise LeaseLost
            if answer == "cancel":
                if pending:
                    flush(report)
                raise training.Cancelled
            if self.stopping.is_set():
                raise ShuttingDown

        heart = threading.Thread(target=beat, name=f"lease-{job.id[:8]}", daemon=True)
        heart.start()
        try:
            arrays = self.store.arrays(job.id, job_spec.ARRAY_FIELDS)
            ctx = getattr(self, "ctx", None)
            if job_spec.is_network(job.spec):
                summary, outputs = self._train_network(job, lease, arrays, ctx, on_epoch, on_checkpoint)
            else:
                summary, outputs = self._train_kernel(job, arrays, ctx, on_epoch)
        except training.Cancelled:
            self._finish(lease, "cancelled", error=None)
        except LeaseLost:
            log.warning("job %s: lease lost to another worker; dropping attempt %d", job.id, lease.attempt)
        except ShuttingDown:
            reason = rules.shut_down(self.id, int(last["epoch"]), lease.attempt, int(last["checkpoint"]))
            self.store.requeue(lease, reason)
            log.info("job %s: %s", job.id, reason)
        except training.TimeLimitExceeded as e:
            self._finish(lease, "failed", error=f"{e} (MXCONV_MAX_JOB_SECONDS)")
        except (InvalidArgument, FloatingPointError, ValueError) as e:
            self._finish(lease, "failed", error=str(e))
        except StoreUnavailable as e:  # not the job's fault: its lease lapses, and it runs again
            log.warning(
                "job %s: attempt %d dropped, the job store is unavailable: %s", job.id, lease.attempt, e
            )
        except Exception as e:  # a bug: keep the trace in the log, tell the user what happened
            log.exception("job %s failed", job.id)
            self._finish(lease, "failed", error=rules.internal_error(e))
        else:
            if pending:
                flush(None)
            if self.store.finish(lease, "succeeded", result=summary, arrays=outputs):
                log.info(
                    "job %s succeeded: loss %.4g after %d epochs",
                    job.id,
                    summary["final_loss"],
                    summary["epochs_run"],
                )
            else:
                log.warning("job %s: finished, but its lease was lost; result dropped", job.id)
        finally:
            done.set()
            heart.join(5)

    def _train_kernel(
        self, job: JobRecord, arrays: dict[str, Any], ctx: Any, on_epoch: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A kernel job: every attempt trains from the start (kernel jobs keep no checkpoints)."""
        from ..compute import train as training
        from . import spec as job_spec

        cfg = job_spec.train_config(job.spec)
        result = training.train(
            arrays["x"],
            arrays["y"],
            cfg,
            plan=job_spec.plan(job.spec, cfg),
            initial_weight=arrays.get("initial_weight"),
            initial_bias=arrays.get("initial_bias"),
            ctx=ctx,
            on_epoch=on_epoch,
            max_seconds=self.settings.max_job_seconds,
        )
        outputs = {"weight": result.weight}
        if result.bias is not None:
            outputs["bias"] = result.bias
        return _summary(result), outputs

    def _train_network(
        self,
        job: JobRecord,
        lease: Lease,
        arrays: dict[str, Any],
        ctx: Any,
        on_epoch: Any,
        on_checkpoint: Any,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A network job: resumed from its last checkpoint when an attempt before saved one."""
        from ..compute import nettrain
        from . import spec as job_spec
        from .store import MODEL_PREFIX

        plan = job_spec.net_plan(job.spec)
        resume = None
        saved = self.store.checkpoint(job.id) if job.checkpoint_epoch else None
        if saved is not None:
            resume = nettrain.Resume(*saved)
            log.info("job %s: attempt %d resumes after epoch %d", job.id, lease.attempt, resume.epoch)
            self.store.heartbeat(
                lease, self.settings.job_lease_seconds, epoch=resume.epoch, elapsed=resume.meta.get("elapsed")
            )
        result = nettrain.train_network(
            arrays["x"],
            arrays["y"],
            job_spec.net_config(job.spec),
            plan,
            ctx=ctx,
            resume=resume,
            on_epoch=on_epoch,
            on_checkpoint=on_checkpoint,
            max_seconds=self.settings.max_job_seconds,
        )
        summary = {
            **_summary(result),
            "metrics": {"loss": result.final_loss, **result.metrics},
            "params": plan.net.params,
            "resumed_from": result.resumed_from,
        }
        return summary, {MODEL_PREFIX + name: w for name, w in result.weights.items()}

    def _finish(self, lease: Lease, status: Any, *, error: str | None) -> None:
        if not self.store.finish(lease, status, error=error):
            log.warning("job %s: lease lost before it could be marked %s", lease.job_id, status)
        else:
            log.info("job %s %s%s", lease.job_id, status, f": {error}" if error else "")


def _summary(result: Any) -> dict[str, Any]:
    """What every training job reports when it succeeds."""
    return {
        "final_loss": result.final_loss,
        "data_loss": result.data_loss,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "stop_reason": result.stop_reason,
        "seed": result.seed,
        "elapsed": result.elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    from .. import logs, startup

    # A bad setting, a missing GPU or a job store that never answers is one line and exit 2.
    try:
        settings = startup.load_settings()
        # OpenMP reads these when MXNet loads: set them before anything imports it.
        os.environ.setdefault("OMP_NUM_THREADS", str(settings.job_threads()))
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        startup.check_device(settings)
        store = startup.open_job_store(settings)
    except startup.StartupError as e:
        print(f"mxconv: {e}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)  # JSON lines, like the API's
    worker = Worker(settings, store=store)

    def stop(signum: int, _frame: Any) -> None:
        log.info("job worker %s: signal %d, stopping after this epoch", worker.id, signum)
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Every process starts with the same RNG state; jobs seed their own, this covers the rest.
    import random

    random.seed(os.getpid())
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
