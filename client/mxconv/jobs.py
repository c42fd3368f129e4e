"""Training jobs from the client: ``client.jobs.submit(...)``, ``.get``, ``.list``, ``.wait`` ...

>>> job = client.jobs.submit(x, y, kernel_size=(1, 2), optimizer="adam", epochs=300)
>>> done = client.jobs.wait(job.id, timeout=60, progress=True)
>>> done.result.weight

A network instead of one layer (typed layers from :mod:`mxconv.layers`):

>>> from mxconv import layers as L
>>> job = client.jobs.submit(x, labels, network=[L.Flatten(), L.Dense(units=10)],
...                          loss="softmax_cross_entropy", validation_split=0.2, batch_size=32)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from typing_extensions import Unpack

from . import errors, schemas
from ._transport import BINARY_MIN_ELEMENTS, ArrayLike, Transport, as_json, real, wire_value
from .networks import LayerLike, network_json
from .schemas.geometry import GeometryOptions
from .wire.multipart import multipart_body


class JobTimeoutError(errors.MxconvError):
    """``wait`` gave up before the job finished; the job goes on running."""

    def __init__(self, job: schemas.Job, timeout: float) -> None:
        super().__init__(
            f"job {job.id} is still {job.status} after {timeout:g} s "
            f"(epoch {job.progress.epoch} of {job.progress.epochs})"
        )
        self.job = job


class Jobs:
    """The /v1/jobs resource."""

    def __init__(self, client: Transport) -> None:
        self._client = client

    def submit(
        self,
        x: ArrayLike,
        y: ArrayLike,
        *,
        kernel_size: int | tuple[int, int] | None = None,
        network: Sequence[LayerLike] | None = None,
        out_channels: int = 1,
        in_channels: int | None = None,
        bias: bool = True,
        optimizer: str = "sgd",
        learning_rate: float = 0.03,
        epochs: int = 100,
        batch_size: int | None = None,
        loss: str = "l2",
        seed: int | None = None,
        shuffle: bool = True,
        early_stopping: schemas.EarlyStopping | dict[str, Any] | None = None,
        initial_weight: ArrayLike | None = None,
        initial_bias: ArrayLike | None = None,
        name: str | None = None,
        idempotency_key: str | None = None,
        validation_split: float | None = None,
        checkpoint_every: int | None = None,
        checkpoint_seconds: float | None = None,
        **geometry: Unpack[GeometryOptions],
    ) -> schemas.Job:
        """Submit a training job. Returns at once.

        One layer (``kernel_size`` given): learn a Conv2D so that layer(x) ≈ y; ``geometry``:
        the layer's ``stride``, ``padding``, ``padding_mode``, ``dilation``, ``groups`` and
        ``flip``, as for ``Client.conv2d``.

        A network (``network``: a list of :mod:`mxconv.layers` or dicts): x is (N, *one
        sample's shape), y (N, *the output shape), or class labels (N,) with
        ``loss="softmax_cross_entropy"``; ``validation_split`` holds a seeded fraction out;
        ``checkpoint_every`` (epochs) or ``checkpoint_seconds`` (default 60 s) say how often a
        checkpoint is saved, which a job whose worker died resumes from. Large x and y travel
        as ``.npy`` parts of a multipart body.

        Retries are safe: every submit carries an ``Idempotency-Key`` (a fresh one unless
        given), so a retried request returns the job the first one created.
        """
        if (network is None) == (kernel_size is None):
            raise ValueError("give kernel_size (learn one Conv2D layer) or network (a list of layers)")
        body: dict[str, Any] = {}
        if network is not None:
            given = [*geometry] + [
                k
                for k, v in (
                    ("in_channels", in_channels),
                    ("initial_weight", initial_weight),
                    ("initial_bias", initial_bias),
                )
                if v is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: only for a one-layer job (kernel_size); a network's "
                    "layers carry their own geometry"
                )
            body["network"] = network_json(network)
            for key, value in (
                ("validation_split", validation_split),
                ("checkpoint_every", checkpoint_every),
                ("checkpoint_seconds", checkpoint_seconds),
            ):
                if value is not None:
                    body[key] = value
        else:
            layer: dict[str, Any] = {
                "out_channels": out_channels,
                **as_json({"kernel_size": kernel_size, **geometry}),
                "bias": bias,
            }
            if in_channels is not None:
                layer["in_channels"] = in_channels
            body["layer"] = layer
        body.update(
            optimizer=optimizer,
            learning_rate=learning_rate,
            epochs=epochs,
            batch_size=batch_size,
            loss=loss,
            seed=seed,
            shuffle=shuffle,
        )
        if early_stopping is not None:
            body["early_stopping"] = (
                early_stopping.model_dump()
                if isinstance(early_stopping, schemas.EarlyStopping)
                else dict(early_stopping)
            )
        if initial_weight is not None:
            body["initial_weight"] = wire_value(initial_weight, "float32")
        if initial_bias is not None:
            body["initial_bias"] = wire_value(initial_bias, "float32")
        if name is not None:
            body["name"] = name
        return self.submit_spec(body, idempotency_key=idempotency_key, arrays={"x": x, "y": y})

    def submit_spec(
        self,
        spec: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        arrays: Mapping[str, ArrayLike] | None = None,
    ) -> schemas.Job:
        """Submit a job spec given as a dict in the wire format (``JobSpec``). ``arrays``
        (x, y ...) go with it: as JSON when small, as ``.npy`` parts of a multipart body when
        they hold more than BINARY_MIN_ELEMENTS together (or with ``transport="binary"``)."""
        key = idempotency_key or uuid.uuid4().hex
        headers = {"Idempotency-Key": key}
        given = {name: real(a, "float32") for name, a in (arrays or {}).items() if a is not None}
        size = sum(a.size for a in given.values())
        binary = self._client.transport == "binary" or (
            self._client.transport == "auto" and size > BINARY_MIN_ELEMENTS
        )
        if given and binary:
            body = multipart_body(given, {k: v for k, v in spec.items() if k not in given})
            headers["Content-Type"] = body.content_type
            resp = self._client.request("POST", "/v1/jobs", data=body, headers=headers)
        else:
            full = {**spec, **{n: wire_value(a, "float32") for n, a in given.items()}}
            resp = self._client.request("POST", "/v1/jobs", json=full, headers=headers)
        return schemas.Job.model_validate(resp.json())

    def get(self, job_id: str, *, history: bool = True) -> schemas.Job:
        """The job's state, progress and, once it succeeded, its learned weight and bias."""
        resp = self._client.request(
            "GET",
            f"/v1/jobs/{job_id}",
            params={"history": str(history).lower(), "encoding": "base64"},
        )
        return schemas.Job.model_validate(resp.json())

    def list(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> schemas.JobList:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        return schemas.JobList.model_validate(self._client.request("GET", "/v1/jobs", params=params).json())

    def cancel(self, job_id: str) -> schemas.Job:
        """Ask a job to stop: a queued one is cancelled at once, a running one within an epoch.
        Raises ConflictError if it has already finished."""
        resp = self._client.request("POST", f"/v1/jobs/{job_id}/cancel")
        return schemas.Job.model_validate(resp.json())

    def delete(self, job_id: str) -> None:
        """Delete a finished job. Raises ConflictError while it is queued or running."""
        self._client.request("DELETE", f"/v1/jobs/{job_id}")

    def loss_png(self, job_id: str) -> bytes:
        return self._client.request("GET", f"/v1/jobs/{job_id}/loss.png").content

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        progress: bool = False,
        *,
        poll_interval: float = 0.25,
        on_update: Callable[[schemas.Job], None] | None = None,
    ) -> schemas.Job:
        """Poll until the job has finished (succeeded, failed or cancelled) and return it.

        ``progress=True`` shows a tqdm bar with the epoch and the latest loss. Raises
        :class:`JobTimeoutError` after ``timeout`` seconds; the job itself goes on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        bar: Any = None
        try:
            while True:
                job = self.get(job_id, history=False)
                if on_update is not None:
                    on_update(job)
                if progress:
                    bar = _update_bar(bar, job)
                if job.finished:
                    return self.get(job_id)  # with the loss history
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobTimeoutError(job, timeout or 0.0)
                delay = poll_interval
                if deadline is not None:
                    delay = max(0.0, min(delay, deadline - time.monotonic()))
                time.sleep(delay)
        finally:
            if bar is not None:
                bar.close()


def _update_bar(bar: Any, job: schemas.Job) -> Any:
    from tqdm.auto import tqdm

    p = job.progress
    if bar is None:
        bar = tqdm(total=p.epochs, desc=f"job {job.id[:8]}", unit="epoch", leave=True)
    # A queued job has run no epoch of its coming attempt, whatever a lost attempt had counted.
    epoch = 0 if job.status == "queued" else p.epoch
    if epoch < bar.n:  # a re-queued job starts over
        bar.reset(total=p.epochs)
    bar.update(epoch - bar.n)
    postfix: dict[str, str] = {"status": job.status}
    if p.loss is not None:
        postfix["loss"] = f"{p.loss:.4g}"
    if p.accuracy is not None:
        postfix["acc"] = f"{p.accuracy:.3f}"
    if p.val_accuracy is not None:
        postfix["val_acc"] = f"{p.val_accuracy:.3f}"
    if job.attempts > 1:
        postfix["attempt"] = str(job.attempts)
    bar.set_postfix(postfix, refresh=True)
    return bar
