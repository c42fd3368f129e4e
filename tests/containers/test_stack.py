"""The compose topology as deployed: redis, three api replicas behind nginx, two job workers,
built from this checkout and driven through the balancer on 127.0.0.1. The cases run in file
order on one stack; each fault's outcome goes to the suite's figures."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mxconv
import numpy as np
import requests

from .. import readme
from .stack import FIGURES, Stack

SEED_X = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
SEED_K = [[0, 1], [2, 3]]
SEED_Y = [[19, 25], [37, 43]]
JOBS = 10
EPOCHS = 1000  # about a second a job here: long enough to be killed mid-run
WORKER_CMD = ["python", "-m", "mxconv_server.jobs.worker"]


def edge_xy() -> tuple[np.ndarray, np.ndarray]:
    x = np.ones((6, 6))
    x[:, 2:4] = 0
    y = np.zeros((6, 5))
    y[:, 1], y[:, 3] = 1, -1  # corr2d(x, [[1, -1]])
    return x, y


def submit(client: mxconv.Client, n: int, seed0: int = 0) -> list[str]:
    x, y = edge_xy()
    return [
        client.jobs.submit(
            x, y, kernel_size=(1, 2), optimizer="adam", learning_rate=0.05, epochs=EPOCHS, seed=seed0 + i
        ).id
        for i in range(n)
    ]


def wait_final(client: mxconv.Client, ids: list[str], timeout: float = 180) -> dict[str, Any]:
    final: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(final) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            if job_id not in final:
                job = client.jobs.get(job_id, history=False)
                if job.finished:
                    final[job_id] = job
        time.sleep(0.3)
    assert len(final) == len(ids), f"{len(ids) - len(final)} jobs not final in {timeout} s"
    return final


def assert_learned_the_edge(jobs: dict[str, Any]) -> None:
    assert Counter(j.status for j in jobs.values()) == {"succeeded": len(jobs)}, {
        j.id: (j.status, j.error) for j in jobs.values()
    }
    for job in jobs.values():
        np.testing.assert_allclose(np.asarray(job.result.weight).reshape(2), [1, -1], atol=1e-3)


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut short by SIGKILL
                pass
    return out


def all_jobs(client: mxconv.Client) -> dict[str, Any]:
    """Every job's record, its result included (a listing leaves results out)."""
    page = client.jobs.list(limit=200)
    return {j.id: client.jobs.get(j.id, history=False) for j in page.jobs}


def running_jobs(client: mxconv.Client) -> list[Any]:
    return list(client.jobs.list(status="running", limit=200).jobs)


# -- the cases, in order --------------------------------------------------------------------


def test_healthy_non_root_and_its_size(stack: Stack) -> None:
    ids = stack.containers()
    services = Counter(stack.inspect(c)["Config"]["Labels"]["com.docker.compose.service"] for c in ids)
    assert services == {"redis": 1, "api": 3, "worker": 2, "balancer": 1}
    health = {c[:12]: stack.health(c) for c in ids}
    assert set(health.values()) <= {"healthy", "running"}, health
    for c in stack.containers("worker"):  # the worker has no health check: running is all
        assert stack.health(c) == "running"
    image = json.loads(stack.docker("image", "inspect", "mxconv:latest"))[0]
    assert image["Config"]["User"] == "mxconv"
    for c in stack.containers("api") + stack.containers("worker"):
        assert stack.docker("exec", c, "id", "-u") == "10001"
    FIGURES["image_mib"] = round(image["Size"] / 2**20)
    FIGURES["image_layers"] = len(image["RootFS"]["Layers"])
    bases = {}
    for name in ("python:3.11-slim", "redis:7-alpine", "nginx:1.27-alpine"):
        labels = json.loads(stack.docker("image", "inspect", name))[0]["Config"].get("Labels") or {}
        bases[name] = labels.get("org.mxconv.stand-in", "from a registry")
    FIGURES["base_images"] = bases
    # BuildKit built only the CPU stages: the GPU variant's CUDA image was never fetched.
    cuda = stack.run("docker", "image", "ls", "-q", "nvidia/cuda").stdout.strip()
    assert cuda == ""


def test_seed_curl_and_typed_client_through_the_balancer(stack: Stack) -> None:
    command = readme.against(readme.shell_commands("Try it with curl")[0], stack.url)
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout)["y"] == SEED_Y
    for transport in ("lists", "base64", "binary"):
        client = mxconv.Client(stack.url, transport=transport)  # type: ignore[arg-type]
        np.testing.assert_array_equal(client.corr2d(SEED_X, SEED_K), SEED_Y)
        x = np.random.default_rng(0).random((1, 8, 32, 32), dtype=np.float32)
        w = np.random.default_rng(1).random((4, 8, 3, 3), dtype=np.float32)
        assert client.conv2d(x, w).shape == (1, 4, 30, 30)
    # The balancer spreads requests over every replica (Docker's DNS names all three).
    client = mxconv.Client(stack.url)
    for _ in range(30):
        client.corr2d(SEED_X, SEED_K)
    served = {
        c[:12]: sum(r.get("path") == "/v1/corr2d" for r in json_lines(stack.logs(c)))
        for c in stack.containers("api")
    }
    FIGURES["corr2d_per_replica"] = served
    assert all(n > 0 for n in served.values()), served


def test_a_worker_killed_mid_job_loses_nothing_and_runs_nothing_twice(stack: Stack) -> None:
    client = mxconv.Client(stack.url)
    ids = submit(client, JOBS)
    workers = stack.containers("worker")
    victim = job_id = None
    deadline = time.monotonic() + 90
    while victim is None and time.monotonic() < deadline:
        for job in running_jobs(client):
            if job.progress.epoch >= 50 and job.worker:
                host = job.worker.split(":")[0]  # host:pid, and a container's host is its id
                victim = next((c for c in workers if c.startswith(host)), None)
                job_id = job.id
                break
        time.sleep(0.1)
    assert victim is not None and job_id is not None, "no job ran on a worker container"
    stack.docker("kill", "-s", "KILL", victim)
    killed_at = time.monotonic()

    final = wait_final(client, ids)
    assert_learned_the_edge(final)
    assert final[job_id].attempts == 2  # re-queued once its lease expired, then finished
    # None ran twice: each job finished once, and no attempt number was handed out twice.
    finished: Counter[str] = Counter()
    attempts: Counter[tuple[str, str]] = Counter()
    for c in workers:
        for rec in json_lines(stack.logs(c)):
            msg = str(rec.get("message", ""))
            if msg.startswith("job ") and " succeeded: loss " in msg:
                finished[msg.split()[1]] += 1
            if msg.startswith("job ") and ": attempt " in msg:
                jid, rest = msg[4:].split(": attempt ", 1)
                attempts[(jid, rest.split()[0])] += 1
    assert {k: finished[k] for k in ids} == dict.fromkeys(ids, 1)
    assert max(attempts.values()) == 1
    assert sum(j.attempts for j in final.values()) == sum(attempts[k] for k in attempts if k[0] in ids)
    state = stack.inspect(victim)
    FIGURES["worker_kill"] = {
        "jobs": JOBS,
        "succeeded": sum(j.status == "succeeded" for j in final.values()),
        "killed_job_attempts": final[job_id].attempts,
        "seconds_kill_to_all_final": round(time.monotonic() - killed_at, 1),
        "killed_container": f"{state['State']['Status']}, restarts {state['RestartCount']}",
    }
    stack.docker("start", victim)  # `docker kill` counts as a stop for `restart: unless-stopped`


def test_an_api_replica_stopped_under_load_fails_no_request(stack: Stack) -> None:
    client = mxconv.Client(stack.url)
    stop = threading.Event()
    ok: Counter[int] = Counter()
    failures: list[str] = []
    slowest = [0.0]

    def loop(n: int) -> None:
        while not stop.is_set():
            t = time.monotonic()
            try:
                y = client.corr2d(SEED_X, SEED_K)
                assert y.tolist() == SEED_Y
                ok[n] += 1
            except Exception as e:  # counted, and the assertion below shows them
                failures.append(repr(e))
            slowest[0] = max(slowest[0], time.monotonic() - t)

    victim = stack.containers("api")[0]
    balancer = stack.containers("balancer")[0]
    threads = [threading.Thread(target=loop, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    time.sleep(2)
    since = f"{time.time():.3f}"
    t0 = time.monotonic()
    stack.docker("stop", victim)
    stop_s = round(time.monotonic() - t0, 1)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(30)
    # What nginx met on the stopped replica, and passed on to another.
    kinds = {"refused": "Connection refused", "timed out": "timed out", "reset": "reset by peer",
             "closed": "prematurely closed", "unreachable": "No route to host"}  # fmt: skip
    lines = [
        x
        for x in stack.run("docker", "logs", "--since", since, balancer).stderr.splitlines()
        if "upstream" in x
    ]
    FIGURES["api_replica_stop"] = {
        "requests_ok": sum(ok.values()),
        "failed": len(failures),
        "slowest_request_s": round(slowest[0], 2),
        "docker_stop_s": stop_s,
        "nginx_upstream_errors": {k: sum(v in x for x in lines) for k, v in kinds.items()},
    }
    assert failures == []
    stack.docker("start", victim)
    FIGURES["api_replica_stop"]["seconds_restart_to_healthy"] = stack.wait_health([victim], "healthy")


def test_redis_restart_keeps_every_record_and_queued_jobs_run(stack: Stack) -> None:
    client = mxconv.Client(stack.url)
    workers = stack.containers("worker")
    apis = stack.containers("api")
    stack.docker("stop", *workers)  # so that the new jobs stay queued through the restart
    queued = submit(client, 4, seed0=100)
    before = all_jobs(client)
    assert all(before[j].status == "queued" for j in queued)

    redis = stack.containers("redis")[0]
    stack.docker("stop", redis)
    # The store is broken: every api's health check fails, and compose marks it unhealthy.
    unhealthy_s = stack.wait_health(apis, "unhealthy", timeout=60)
    # Compute still answers; job calls answer 503 with Retry-After.
    assert mxconv.Client(stack.url).corr2d(SEED_X, SEED_K).tolist() == SEED_Y
    down = requests.get(f"{stack.url}/v1/jobs/{queued[0]}", timeout=30)
    assert down.status_code == 503 and "Retry-After" in down.headers
    stack.docker("start", redis)
    healthy_s = stack.wait_health(apis, "healthy", timeout=60)

    after = all_jobs(client)
    assert set(after) == set(before)
    for job_id, job in before.items():
        assert after[job_id].status == job.status
        if job.result is not None:
            assert np.array_equal(np.asarray(after[job_id].result.weight), np.asarray(job.result.weight))
    stack.docker("start", *workers)
    final = wait_final(client, queued)
    assert_learned_the_edge(final)
    FIGURES["redis_restart"] = {
        "records_kept": f"{len(after)}/{len(before)}",
        "seconds_store_down_to_apis_unhealthy": unhealthy_s,
        "seconds_store_back_to_apis_healthy": healthy_s,
        "queued_then_succeeded": len(final),
        "job_status_while_down": down.status_code,
    }


def test_broken_mxnet_goes_unhealthy(stack: Stack) -> None:
    """Two probe apis with fast health checks: one as deployed, one whose MXNet crashes on
    every convolution (MXNET_CPU_TEMP_COPY=0: a division by zero inside libmxnet)."""
    # (0 would mean "the image's": its 60 s start period, in which failures do not count.)
    fast = ["--health-interval", "1s", "--health-retries", "2", "--health-start-period", "1s"]
    settings = ["MXCONV_JOBS_URL=redis://redis:6379/0", "MXCONV_WORKERS=1", "MXCONV_JOB_WORKERS=0"]
    common = [a for s in settings for a in ("-e", s)] + fast
    try:
        t0 = time.monotonic()
        control = stack.probe(*common, "mxconv:latest")
        broken = stack.probe(*common, "-e", "MXNET_CPU_TEMP_COPY=0", "mxconv:latest")
        want = {control: "healthy", broken: "unhealthy"}
        reached: dict[str, float] = {}
        while len(reached) < 2 and time.monotonic() - t0 < 120:
            for cid, state in want.items():
                if cid not in reached and stack.health(cid) == state:
                    reached[cid] = round(time.monotonic() - t0, 1)
            time.sleep(0.5)
        assert len(reached) == 2, {c[:12]: stack.health(c) for c in want}
        assert stack.inspect(broken)["State"]["Status"] == "running"  # gunicorn lives; MXNet does not
        log = stack.logs(broken)
    finally:
        stack.remove_probes()  # before `compose down` removes their network
    FIGURES["broken_mxnet"] = {
        "control_seconds_to_healthy": reached[control],
        "broken_seconds_to_unhealthy": reached[broken],
        "worker_crashes_logged": log.count("SIGFPE"),
    }


def test_startup_errors_are_one_line_and_exit_2(stack: Stack) -> None:
    no_redis = ["-e", "MXCONV_JOBS_URL=redis://nowhere:6379/0", "-e", "MXCONV_STARTUP_TIMEOUT=3"]
    cases = {  # (docker run options, command, what the one line must say)
        "api, MXCONV_DEVICE=gpu": (["-e", "MXCONV_DEVICE=gpu"], [], "MXCONV_DEVICE='gpu'"),
        "worker, MXCONV_DEVICE=gpu": (["-e", "MXCONV_DEVICE=gpu"], WORKER_CMD, "MXCONV_DEVICE='gpu'"),
        "api, no Redis": (no_redis, [], "cannot reach the job store redis://nowhere:6379/0 after 3 s"),
        "worker, no Redis": (no_redis, WORKER_CMD, "cannot reach the job store redis://nowhere:6379/0"),
        "api, invalid setting": (["-e", "MXCONV_WORKERS=many"], [], "invalid setting MXCONV_WORKERS='many'"),
        "worker, invalid setting": (
            ["-e", "MXCONV_JOB_LEASE_SECONDS=-1"],
            WORKER_CMD,
            "invalid setting MXCONV_JOB_LEASE_SECONDS='-1'",
        ),
    }

    def run(case: str) -> tuple[str, int, str, float]:
        env, cmd, _ = cases[case]
        t0 = time.monotonic()
        cid = stack.probe(*env, "mxconv:latest", *cmd)
        code = int(stack.docker("wait", cid, timeout=120))
        return case, code, stack.logs(cid).strip(), round(time.monotonic() - t0, 1)

    try:
        with ThreadPoolExecutor(len(cases)) as pool:
            results = list(pool.map(run, cases))
    finally:
        stack.remove_probes()
    FIGURES["startup_errors"] = {case: f"exit {code} in {s} s: {log}" for case, code, log, s in results}
    for case, code, log, _ in results:
        assert code == 2, (case, log)
        assert len(log.splitlines()) == 1 and cases[case][2] in log, (case, log)


def test_down_then_up_keeps_every_finished_job(stack: Stack) -> None:
    client = mxconv.Client(stack.url)
    before = {k: j for k, j in all_jobs(client).items() if j.status == "succeeded"}
    assert len(before) >= JOBS
    redis_before = stack.containers("redis")
    stack.compose("down", timeout=180)
    assert stack.containers(all=True) == []
    up_s = stack.compose_sh("start")
    assert stack.containers("redis") != redis_before  # a new container, the same volume
    after = all_jobs(client)
    for job_id, job in before.items():
        assert after[job_id].status == "succeeded"
        assert np.array_equal(np.asarray(after[job_id].result.weight), np.asarray(job.result.weight))
    FIGURES["down_up"] = {"finished_jobs_kept": f"{len(before)}/{len(before)}", "seconds_up_to_healthy": up_s}
