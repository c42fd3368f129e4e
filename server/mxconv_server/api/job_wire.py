"""A stored job as the API shows it (``mxconv.schemas.Job``), and its curves as a PNG.

A layer job's record has exactly the keys it had before network jobs existed; a network job
adds its metrics (progress and result), their histories and its last checkpoint.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..jobs import JobRecord, JobStore
from . import common

#: A network job's metrics besides the training loss, as the worker records them.
METRICS = ("accuracy", "val_loss", "val_accuracy")


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, tz=timezone.utc).isoformat()


def is_network(job: JobRecord) -> bool:
    return job.spec.get("network") is not None


def to_wire(
    s: JobStore, job: JobRecord, *, history: bool = True, encoding: str = "list", result: bool = True
) -> dict[str, Any]:
    """A stored record as the API's ``Job``; ``result=False`` leaves the learned arrays out."""
    network = is_network(job)
    timestamps = {"queued": _iso(job.created_at)}
    if job.started_at is not None:
        timestamps["running"] = _iso(job.started_at)
    if job.cancel_requested_at is not None:
        timestamps["cancel_requested"] = _iso(job.cancel_requested_at)
    if job.finished and job.finished_at is not None:
        timestamps[job.status] = _iso(job.finished_at)
    eta = None
    if job.status == "running" and job.epoch and job.elapsed:
        # The pace since the last checkpoint (a resumed attempt's own), else since epoch 0.
        base_epoch, base_elapsed = 0, 0.0
        if network and job.checkpoint and job.epoch > job.checkpoint_epoch:
            base_epoch, base_elapsed = job.checkpoint_epoch, float(job.checkpoint.get("elapsed", 0.0))
        pace = (job.elapsed - base_elapsed) / (job.epoch - base_epoch)
        eta = max(0.0, pace) * (job.epochs - job.epoch)
    elif job.finished:
        eta = 0.0
    learned_result = None
    if result and job.status == "succeeded" and job.result is not None:
        if network:
            learned_result = {**job.result, "weight": None, "bias": None, "model": f"/v1/jobs/{job.id}/model"}
        else:
            learned = s.arrays(job.id, ["weight", "bias"])
            learned_result = {
                **job.result,
                "weight": common.encode(learned["weight"], encoding),
                "bias": common.encode(learned["bias"], encoding) if "bias" in learned else None,
            }
    progress: dict[str, Any] = {
        "epoch": job.epoch,
        "epochs": job.epochs,
        "loss": job.loss,
        "elapsed": job.elapsed,
        "eta": eta,
    }
    if network:
        latest = (job.result or {}).get("metrics") if job.status == "succeeded" else job.snapshot
        progress.update({name: (latest or {}).get(name) for name in METRICS})
    else:
        progress.update(_live_weights(job, encoding))
    wire = {
        "id": job.id,
        "status": job.status,
        "name": job.spec.get("name"),
        "progress": progress,
        "timestamps": timestamps,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested_at is not None,
        "worker": job.worker if job.status == "running" else None,
        "spec": job.spec,
        "loss_history": s.losses(job.id) if history else None,
        "result": learned_result,
        "error": job.error,
        "message": job.message,
    }
    if network:
        wire["history"] = s.history(job.id) if history else None
        wire["checkpoint"] = checkpoint_info(job)
    return wire


def checkpoint_info(job: JobRecord) -> dict[str, Any] | None:
    if not job.checkpoint:
        return None
    return {
        "epoch": job.checkpoint_epoch,
        "saved_at": _iso(job.checkpoint.get("saved_at")),
        "elapsed": job.checkpoint.get("elapsed", 0.0),
    }


def _live_weights(job: JobRecord, encoding: str) -> dict[str, Any]:
    """A running small layer's current weight and bias (see compute.train.SNAPSHOT_MAX_WEIGHTS)."""
    if job.status != "running" or not job.snapshot:
        return {}
    return {
        name: common.encode(np.asarray(v, dtype=np.float32), encoding) for name, v in job.snapshot.items()
    }


def plot(losses: list[float], history: dict[str, list[float]], title: str, loss_name: str) -> bytes:
    """The loss curve (and a network's validation loss) so far; with accuracies, a second
    panel of training and validation accuracy."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in any thread of a server process
    from matplotlib.figure import Figure

    accuracy = {k: history[k] for k in ("accuracy", "val_accuracy") if history.get(k)}
    fig = Figure(figsize=(6, 6.2 if accuracy else 3.6), dpi=100)
    ax = fig.add_subplot(2 if accuracy else 1, 1, 1)
    curves = {"train": losses, "validation": history.get("val_loss", [])}
    shown = [v for series in curves.values() for v in series]
    if shown:
        for (label, series), color in zip(curves.items(), ("tab:blue", "tab:orange"), strict=True):
            if series:
                ax.plot(range(1, len(series) + 1), series, color=color, linewidth=1.5, label=label)
        if min(shown) > 0 and max(shown) / min(shown) > 100:
            ax.set_yscale("log")
        if history.get("val_loss"):
            ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no epochs yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{loss_name} loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if accuracy:
        acc = fig.add_subplot(2, 1, 2, sharex=ax)
        for (name, series), color in zip(accuracy.items(), ("tab:blue", "tab:orange"), strict=False):
            label = "train" if name == "accuracy" else "validation"
            acc.plot(range(1, len(series) + 1), series, color=color, linewidth=1.5, label=label)
        acc.set_ylim(0, 1.02)
        acc.set_xlabel("epoch")
        acc.set_ylabel("accuracy")
        acc.legend(loc="lower right")
        acc.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
