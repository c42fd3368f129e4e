"""``python -m benchmarks`` (``make bench``): first every ``benchmarks/bench_*.py`` (each prints
its own table, e.g. the training-jobs benchmark), then the fast-path suite, whose one table
and target lines come last. ``--quick`` shortens every measurement (a smoke run, not figures
to quote); ``--sections`` runs part of the suite and skips the bench_*.py scripts."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_scripts() -> int:
    """Every benchmarks/bench_*.py in turn, each in its own process, printing its own table."""
    code = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.stem} ==", flush=True)
        code |= subprocess.call([sys.executable, "-m", f"benchmarks.{script.stem}"], cwd=HERE.parent)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not figures to quote")
    parser.add_argument("--sections", default=None, help="suite sections to run, e.g. 12 (default 123456)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiles of missed targets")
    args = parser.parse_args(argv)
    scripts_code = 0
    if args.sections is None and not args.quick:
        scripts_code = run_scripts()
        print("== the fast-path suite ==", flush=True)
    args.sections = args.sections or "123456"

    # The benchmark process computes with the threads one gunicorn worker gets, set the same way
    # (before MXNet loads), so in-process and end-to-end times compare like with like.
    from mxconv_server.config import Settings

    settings = Settings()
    for key, value in settings.worker_env().items():
        os.environ.setdefault(key, value)
    threads = int(os.environ["OMP_NUM_THREADS"])
    server_env = {"MXCONV_WORKERS": str(settings.workers)}

    from . import common, e2e, inprocess, oip, sweep, throughput
    from .profile import pyinstrument_text, pyspy_top

    started = time.monotonic()
    report = common.Report()
    print(_header(settings.workers, threads), flush=True)
    if "1" in args.sections:
        inprocess.run(report, threads, quick=args.quick)
    if "2" in args.sections:
        e2e.run(report, threads, server_env, quick=args.quick)
    if "3" in args.sections:
        throughput.run(report, server_env, seconds=2 if args.quick else 4, rounds=1 if args.quick else 2)
    if "4" in args.sections:
        e2e.rss(report, server_env)
    if "5" in args.sections:
        sweep.run(report, quick=args.quick)
    if "6" in args.sections:
        oip.run(report, threads, server_env, quick=args.quick)
    print()
    print(report.render())
    print()
    print("ratio: section 1 = competitor time / mxconv time (>= 1: mxconv faster); section 2 = end-to-end")
    print(
        "time / in-process time; section 3 = mxconv req/s / bare Flask req/s; section 4 = growth / allowed;"
    )
    print("section 6 = end-to-end time / in-process time, and /v2 time / /v1 time (rows marked vs).")
    missed = [t for t in report.targets if not t[1]]
    if missed and not args.no_profile:
        print()
        print("Profiles of the missed targets (where the time goes)")
        print("=====================================================")
        _profiles(missed, server_env, pyinstrument_text, pyspy_top)
    for note in report.notes:
        print(f"note: {note}")
    print()
    kind = "--quick: do not quote" if args.quick else "medians"
    print(f"Targets ({time.monotonic() - started:.0f} s, {kind}):")
    for name, holds, detail in report.targets:
        print(f"  {'HOLDS ' if holds else 'MISSED'}  {name}: {detail}")
    held = sum(1 for t in report.targets if t[1])
    print(f"{held} of {len(report.targets)} targets hold.")
    return scripts_code


def _header(workers: int, threads: int) -> str:
    import numpy as np
    from mxconv_server.compute.mx import mxnet  # MXNet as the service loads it (oneDNN settings)

    try:
        import torch

        torch_v = torch.__version__
    except ImportError:
        torch_v = "not installed"
    cpu = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"mxconv benchmarks, {now}: {os.cpu_count()} cores ({cpu}), load {load:.1f}; "
        f"python {platform.python_version()}, mxnet {mxnet.__version__}, numpy {np.__version__}, "
        f"torch {torch_v}\nthreads per worker and in-process: OMP_NUM_THREADS={threads} "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
        f"MXNET_ENGINE_TYPE={os.environ.get('MXNET_ENGINE_TYPE', '-')} "
        f"DNNL_MAX_CPU_ISA={os.environ.get('DNNL_MAX_CPU_ISA', '-')} (MXNet's oneDNN 2.4 only); "
        f"gunicorn -w {workers}"
    )


def _profiles(missed: list[tuple[str, bool, str]], env: dict[str, str], pyinstrument_text, pyspy_top) -> None:  # noqa: ANN001
    import mxconv

    from . import common, inprocess, layers
    from .throughput import SEED

    by_name = {c.name: c for c in common.CASES}
    in_cases = [n.split()[1] for n, _, _ in missed if n.startswith("in-process")]
    for name in in_cases:
        case = by_name[name]
        fn = inprocess.competitors(case, int(os.environ["OMP_NUM_THREADS"]))["mxconv"]
        print(f"\n-- in-process {case.label}: compute.conv2d under pyinstrument")
        print(pyinstrument_text(fn))
    e2e_missed = [n for n, _, _ in missed if n.startswith("end-to-end")]
    small_missed = any(n.startswith("small requests") for n, _, _ in missed)
    if not (e2e_missed or small_missed):
        return
    with common.mxconv_server(env) as server:
        for name in e2e_missed:
            transport, case = name.split()[1], by_name[name.split()[2]]
            client = mxconv.Client(server.url, transport=transport)  # type: ignore[arg-type]
            x, w = case.arrays()

            def call(client: mxconv.Client = client, case: common.Case = case, x=x, w=w) -> object:  # noqa: ANN001
                return client.conv2d(x, w, padding=case.padding)

            call()
            print(f"\n-- end-to-end {transport} {case.label}: the gunicorn workers under py-spy")
            print(pyspy_top(server.workers(), call))
            print(f"-- end-to-end {transport} {case.label}: the client under pyinstrument")
            print(pyinstrument_text(call, seconds=2.0, lines=18))
            if transport == "binary":
                local = inprocess.competitors(case, int(os.environ["OMP_NUM_THREADS"]))["mxconv"]
                print(f"-- end-to-end binary {case.label}: the same request through each client layer")
                print(layers.table(server.url, (x, w), case.padding, local))
        if small_missed:
            import requests

            session = requests.Session()

            def small() -> object:
                return session.post(
                    f"{server.url}/v1/corr2d", data=SEED, headers={"Content-Type": "application/json"}
                )

            print("\n-- small requests: the gunicorn workers under py-spy (one client)")
            print(pyspy_top(server.workers(), small))


if __name__ == "__main__":
    sys.exit(main())
