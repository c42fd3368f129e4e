"""One training epoch through the service vs. the same loop as a bare in-process Gluon script.

    python -m benchmarks.bench_jobs [--repeats 5] [--threads 1]

The service side is end to end, as a user sees it: submit x and y through the client,
wait for the job (queue, worker, training, result write), fetch the learned weights. The
bare side builds the same Conv2D, runs one epoch of the same loop, and reads the weights
back. Both use the same OpenMP thread count and alternate, so machine load hits both.
The figure is the ratio of medians (target: <= 1.2x for a job of >= 1 s per epoch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# N, C, H, O, k: about 130 GFLOP per epoch (forward + backward), 3.9 M elements of x and y.
SHAPE = (10, 96, 48, 128, 13)


def make_data(shape: tuple[int, int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    n, c, h, o, k = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    y = rng.standard_normal((n, o, h - k + 1, h - k + 1)).astype(np.float32)
    return x, y


def bare_loop(
    x: np.ndarray, y: np.ndarray, out_channels: int, k: int, epochs: int = 1
) -> tuple[float, float]:
    """The seed's loop, generalised: what a user would write in a script. Returns its time,
    and the time of one more forward pass for the loss of the learned layer, which the
    service computes and returns too ("data_loss")."""
    from mxconv_server.compute.mx import mxnet as mx  # loaded as the service loads it
    from mxnet import autograd, gluon, nd
    from mxnet.gluon import nn

    start = time.perf_counter()
    mx.random.seed(0)
    data, label = nd.array(x), nd.array(y)
    net = nn.Conv2D(out_channels, kernel_size=k, in_channels=x.shape[1])
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 1e-3})
    for _ in range(epochs):
        with autograd.record():
            loss = ((net(data) - label) ** 2).mean()
        loss.backward()
        trainer.step(1)
        loss.asscalar()
    net.weight.data().asnumpy()
    loop = time.perf_counter() - start
    ((net(data) - label) ** 2).mean().asscalar()
    return loop, time.perf_counter() - start - loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--epochs", type=int, nargs="+", default=[1, 5], help="job lengths; per-epoch time is compared"
    )
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads, both sides")
    parser.add_argument("--poll", type=float, default=0.05, help="client.jobs.wait poll interval, s")
    parser.add_argument("--shape", type=int, nargs=5, default=SHAPE, metavar=("N", "C", "H", "O", "K"))
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before MXNet loads, here and in the server
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")

    sys.path.insert(0, str(ROOT))
    import mxconv

    from tests.conftest import start_server

    x, y = make_data(tuple(args.shape))
    n, c, h, o, k = args.shape
    bare_loop(x[:1], y[:1], o, k)  # warm MXNet up in this process

    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    server = start_server(
        tmp,
        workers=1,
        MXCONV_JOB_WORKERS="1",
        MXCONV_JOB_OMP_THREADS=str(args.threads),
        OMP_NUM_THREADS=str(args.threads),
        MXCONV_LOG_LEVEL="WARNING",
    )
    results = {}
    try:
        api = mxconv.Client(server.url, timeout=(5, 300))
        kw = {"kernel_size": k, "out_channels": o, "optimizer": "adam", "learning_rate": 1e-3}
        api.jobs.wait(api.jobs.submit(x[:1], y[:1], epochs=1, **kw).id, timeout=120)  # warm the worker
        for epochs in args.epochs:
            bare, evals, service, training, queued = [], [], [], [], []
            for _ in range(args.repeats):
                loop, final_eval = bare_loop(x, y, o, k, epochs)
                bare.append(loop / epochs)
                evals.append((loop + final_eval) / epochs)
                start = time.perf_counter()
                job = api.jobs.submit(x, y, epochs=epochs, **kw)
                done = api.jobs.wait(job.id, timeout=600, poll_interval=args.poll)
                assert done.status == "succeeded" and done.result is not None, done.error
                service.append((time.perf_counter() - start) / epochs)
                training.append(done.result.elapsed / epochs)
                queued.append((done.timestamps["running"] - done.timestamps["queued"]).total_seconds())
                api.jobs.delete(job.id)
            results[epochs] = (bare, evals, service, training, queued)
    finally:
        server.stop()

    med = statistics.median
    mb = (x.nbytes + y.nbytes) / 2**20
    print(f"\nConv2D {c}->{o} {k}x{k} on x {list(x.shape)} ({mb:.1f} MiB of x and y), adam, full batch,")
    print(f"{args.threads} OpenMP thread(s) on both sides, {args.repeats} repeats alternating bare/service.")
    print("Seconds per epoch; the service is end to end (submit, queue, train, final loss, fetch).\n")
    print(
        "| job epochs | bare loop | bare loop + final loss | service | of which training "
        "| queue wait | service / bare loop | service / (bare + final loss) | same, ratio of minima |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for epochs, (bare, evals, service, training, queued) in results.items():
        print(
            f"| {epochs} | {med(bare):.3f} | {med(evals):.3f} | {med(service):.3f} | {med(training):.3f} | "
            f"{med(queued):.3f} | **{med(service) / med(bare):.2f}x** | {med(service) / med(evals):.2f}x | "
            f"{min(service) / min(bare):.2f}x / {min(service) / min(evals):.2f}x |"
        )
    print("\n(medians; target <= 1.2x for a job of >= 1 s per epoch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
