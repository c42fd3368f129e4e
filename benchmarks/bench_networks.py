"""LeNet against an MLP of about the same size on scikit-learn's digits, as jobs on a real
`mxconv serve`: parameters, validation accuracy and job time (the seed's question, 卷积，相比于
全连接的优劣势, with numbers), and the cost model's predicted seconds beside the measured ones.

    python -m benchmarks.bench_networks [--seeds 0 1 2 3 4] [--threads 0] [--epochs 40]

The networks and settings are those of docs/networks.md's example. Each job runs alone (one
job worker), so its time is its own; ``--threads 0`` leaves the job worker's OpenMP threads at
the server's default (cores / job workers). Target: LeNet >= 97% validation accuracy in
<= 60 s of job time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def networks() -> dict[str, list]:
    from mxconv import layers as L

    return {
        "LeNet": [
            L.Conv2d(channels=6, kernel_size=5, padding=2), L.ReLU(), L.MaxPool2d(pool_size=2),
            L.Conv2d(channels=16, kernel_size=5, padding=2), L.ReLU(), L.MaxPool2d(pool_size=2),
            L.Flatten(), L.Dense(units=120), L.ReLU(), L.Dense(units=84), L.ReLU(), L.Dense(units=10),
        ],
        "MLP": [L.Flatten(), L.Dense(units=288), L.ReLU(), L.Dense(units=10)],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=0, help="job worker OpenMP threads; 0: the default")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import mxconv
    from sklearn.datasets import load_digits

    from tests.conftest import start_server

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target
    env = {"MXCONV_JOB_WORKERS": "1", "MXCONV_LOG_LEVEL": "WARNING"}
    if args.threads:
        env["MXCONV_JOB_OMP_THREADS"] = str(args.threads)
    server = start_server(Path(tempfile.mkdtemp(prefix="bench-networks-")), workers=1, **env)
    rows: dict[str, dict[str, list[float]]] = {}
    facts: dict[str, tuple[int, int, int]] = {}
    try:
        api = mxconv.Client(server.url, timeout=(5, 300))
        for name, net in networks().items():
            s = api.networks.summary(net, [1, 8, 8])
            facts[name] = (s.params, s.network_flops, s.dense_equivalent_params)
            r = rows.setdefault(name, {"acc": [], "seconds": [], "predicted": []})
            for seed in args.seeds:
                job = api.jobs.submit(
                    x, y, network=net, loss="softmax_cross_entropy", optimizer="adam", learning_rate=3e-3,
                    epochs=args.epochs, batch_size=32, validation_split=0.2, seed=seed,
                )  # fmt: skip
                done = api.jobs.wait(job.id, timeout=900)
                assert done.status == "succeeded" and done.result is not None, done.error
                assert done.result.metrics is not None
                r["acc"].append(done.result.metrics["val_accuracy"])
                r["seconds"].append(done.result.elapsed)
                r["predicted"].append(float(done.spec["predicted_seconds"]))
        device = api.info().device
    finally:
        server.stop()

    med = statistics.median
    print(f"\nscikit-learn digits: 1,797 8x8 images, 20% held out (seeded), adam 3e-3, {args.epochs} epochs,")
    threads = args.threads or f"{os.cpu_count()} (the default: cores / job workers)"
    print(f"batches of 32; seeds {args.seeds}; one job at a time; {device}, {threads} OpenMP threads.\n")
    print("| network | parameters | FLOPs a sample | val accuracy: median (min-max) | job s: median (max) "
          "| predicted s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        params, flops, _ = facts[name]
        acc = f"{med(r['acc']):.3f} ({min(r['acc']):.3f}-{max(r['acc']):.3f})"
        print(
            f"| {name} | {params:,} | {flops:,} | {acc} "
            f"| {med(r['seconds']):.1f} ({max(r['seconds']):.1f}) | {med(r['predicted']):.1f} |"
        )
    lenet = rows["LeNet"]
    ok = min(lenet["acc"]) >= 0.97 and max(lenet["seconds"]) <= 60
    print(f"\ntarget: LeNet >= 97% validation accuracy in <= 60 s of job time: {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
