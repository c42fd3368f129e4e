"""Scale-out without containers: one redis-server, two gunicorn APIs on two ports, two job
workers, all on 127.0.0.1 and all launched as docker-compose.yml launches them (topology.py).

20 jobs go in through both APIs; each is read back through the other API; one worker is
killed with SIGKILL while it trains. Every job must end succeeded, with the seed's kernel
learned, and none may have run to completion twice; then one API restarts and still reads
every record. Its figures are printed in every run (past pytest's capture), and written to
test-artifacts/topology.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import mxconv
import numpy as np
import pytest
import requests
import yaml
from mxconv_server.jobs import open_store

from . import redis_server, topology
from .conftest import ROOT, free_port

JOBS = 20
EPOCHS = 1000  # about a second a job here: long enough to be killed mid-run


def seed_xy() -> tuple[np.ndarray, np.ndarray]:
    x = np.ones((6, 6))
    x[:, 2:4] = 0
    y = np.zeros((6, 5))
    y[:, 1], y[:, 3] = 1, -1  # corr2d(x, [[1, -1]])
    return x, y


class Proc:
    def __init__(self, launch: topology.Launch, log_path: Path) -> None:
        self.launch = launch
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(
                launch.argv,
                env=launch.process_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=log_path.parent,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.launch.env['MXCONV_PORT']}"

    def records(self) -> list[dict[str, object]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:  # a line cut short by SIGKILL
                    pass
        return out

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def wait_ready(apis: list[Proc], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    pending = list(apis)
    while pending and time.monotonic() < deadline:
        for api in list(pending):
            if api.popen.poll() is not None:
                raise RuntimeError(
                    f"API exited with {api.popen.returncode}:\n{api.log_path.read_text()[-3000:]}"
                )
            try:
                if requests.get(f"{api.url}/v1/health/ready", timeout=5).status_code == 200:
                    pending.remove(api)
            except requests.RequestException:
                pass
        time.sleep(0.3)
    assert not pending, "APIs not ready in time"


def test_topology_redis_two_apis_two_workers_one_killed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    redis = redis_server.start(tmp_path / "redis")
    launches = topology.plan(redis.url, [free_port(), free_port()], workers=2)
    for launch in launches:  # what runs is what compose runs
        assert topology.drift(launch) == []
    procs = [Proc(launch, tmp_path / f"{launch.service}-{i}.log") for i, launch in enumerate(launches)]
    apis = [p for p in procs if p.launch.service == "api"]
    workers = [p for p in procs if p.launch.service == "worker"]
    try:
        started = time.monotonic()
        wait_ready(apis)
        clients = [mxconv.Client(api.url) for api in apis]
        ready_s = time.monotonic() - started

        x, y = seed_xy()
        t0 = time.monotonic()
        submitted: dict[str, int] = {}  # job id -> index of the API that took it
        for i in range(JOBS):
            job = clients[i % 2].jobs.submit(
                x, y, kernel_size=(1, 2), optimizer="adam", learning_rate=0.05, epochs=EPOCHS, seed=i
            )
            assert job.status in ("queued", "running")  # a worker may claim it before the reply
            submitted[job.id] = i % 2
        for job_id, via in submitted.items():  # each job is visible through the other API
            other = clients[1 - via].jobs.get(job_id, history=False)
            assert other.id == job_id and other.status in ("queued", "running", "succeeded")

        # Kill a worker while it trains, once it has finished a few jobs: SIGKILL, nothing to
        # clean up, its lease just stops being renewed.
        victim = workers[0]
        store = open_store(redis.url)
        victim_id = None
        deadline = time.monotonic() + 90
        while victim_id is None and time.monotonic() < deadline:
            done, _ = store.list(status="succeeded", limit=JOBS)
            running, _ = store.list(status="running")
            mine = [j for j in running if str(j.worker).endswith(f":{victim.popen.pid}")]
            if sum(str(j.worker).endswith(f":{victim.popen.pid}") for j in done) >= 3 and mine:
                if mine[0].epoch >= 10:
                    victim_id = mine[0].id
            time.sleep(0.05)
        assert victim_id is not None, "the victim worker never ran a fourth job"
        os.kill(victim.popen.pid, signal.SIGKILL)
        victim.popen.wait(10)
        killed_at = time.monotonic()

        deadline = time.monotonic() + 240
        final: dict[str, mxconv.schemas.Job] = {}
        recovery_s = float("nan")
        while len(final) < JOBS and time.monotonic() < deadline:
            for job_id in submitted:
                if job_id not in final:
                    job = clients[0].jobs.get(job_id, history=False)
                    if job.status in ("succeeded", "failed", "cancelled"):
                        final[job_id] = job
                        if job_id == victim_id:
                            recovery_s = time.monotonic() - killed_at
            time.sleep(0.2)
        all_final_s = time.monotonic() - t0
        assert len(final) == JOBS, f"{JOBS - len(final)} jobs not final in time"
        recovered = final[victim_id]

        # All succeeded, with the seed's kernel learned.
        assert Counter(j.status for j in final.values()) == {"succeeded": JOBS}, {
            j.id: (j.status, j.error) for j in final.values()
        }
        for job in final.values():
            assert job.result is not None
            np.testing.assert_allclose(np.asarray(job.result.weight).reshape(2), [1, -1], atol=1e-3)
            np.testing.assert_allclose(np.asarray(job.result.bias), [0], atol=1e-3)
        # The killed worker's job was re-queued and finished by the other worker.
        # The API shows the worker only while a job runs; the store keeps who finished it.
        records = {job_id: store.get(job_id) for job_id in submitted}
        assert recovered.attempts >= 2
        assert str(records[victim_id].worker).endswith(f":{workers[1].popen.pid}")  # type: ignore[union-attr]

        # None ran twice: every job finished exactly once, in the worker logs as in the store.
        finished: Counter[str] = Counter()
        attempts: Counter[tuple[str, str]] = Counter()
        lost = 0
        for w in workers:
            for rec in w.records():
                msg = str(rec.get("message", ""))
                if msg.startswith("job ") and " succeeded: loss " in msg:
                    finished[msg.split()[1]] += 1
                if ": attempt " in msg:
                    job_id, rest = msg[4:].split(": attempt ", 1)
                    attempts[(job_id, rest.split()[0])] += 1
                lost += "lease lost" in msg or "lease was lost" in msg
        assert finished == Counter(dict.fromkeys(submitted, 1))
        assert max(attempts.values()) == 1  # no attempt number was handed out twice
        store_attempts = sum(j.attempts for j in final.values())
        assert store_attempts == len(attempts)

        # Records survive an API restart: stop one API, start it again, read every job through it.
        restart_t0 = time.monotonic()
        apis[0].stop()
        restarted = Proc(apis[0].launch, tmp_path / "api-0-restarted.log")
        procs.append(restarted)
        wait_ready([restarted])
        again = mxconv.Client(restarted.url)
        for job_id, before in final.items():
            after = again.jobs.get(job_id, history=False)
            assert after.status == "succeeded" and after.result is not None and before.result is not None
            assert np.array_equal(np.asarray(after.result.weight), np.asarray(before.result.weight))
        restart_s = time.monotonic() - restart_t0

        figures = {
            "jobs": JOBS,
            "epochs_per_job": EPOCHS,
            "apis": len(apis),
            "workers": len(workers),
            "seconds_to_ready": round(ready_s, 1),
            "seconds_submit_to_all_final": round(all_final_s, 1),
            "killed_job": victim_id,
            "recoveries": sum(1 for j in final.values() if j.attempts > 1),
            "seconds_kill_to_recovered_job_done": round(recovery_s, 1),
            "attempts_total": store_attempts,
            "seconds_api_restart_to_all_read": round(restart_s, 1),
            "stale_writes_refused": lost,
            "jobs_per_worker": dict(Counter(str(r.worker) for r in records.values() if r)),
            "submitted_per_api": dict(Counter(submitted.values())),
        }
        with capsys.disabled():  # shown in every run, CI's included, not only with -s
            print("\ntopology:", json.dumps(figures))
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        (artifacts / "topology.json").write_text(json.dumps(figures, indent=2) + "\n")

        # Both APIs report the same job figures from Redis.
        for api in (restarted, apis[1]):
            text = requests.get(f"{api.url}/metrics", timeout=10).text
            assert f'mxconv_jobs{{state="succeeded"}} {float(JOBS)}' in text
            assert "mxconv_job_store_up 1.0" in text
    except BaseException:
        for p in procs:
            print(f"--- {p.log_path.name}\n{p.log_path.read_text(errors='replace')[-2000:]}")
        raise
    finally:
        for p in procs:
            p.stop()
        redis.stop()


def test_plan_matches_compose() -> None:
    launches = topology.plan("redis://127.0.0.1:1/0", [1, 2], workers=2)
    assert [launch.service for launch in launches] == ["api", "api", "worker", "worker"]
    for launch in launches:
        assert topology.drift(launch) == []
    api = launches[0]
    assert api.argv[1:] == ["serve"] and api.env["MXCONV_JOB_WORKERS"] == "0"
    # A changed compose file shows up as drift.
    api.env["MXCONV_JOB_WORKERS"] = "1"
    assert topology.drift(api) == ["api: MXCONV_JOB_WORKERS='1' in the test, '0' in compose"]


def test_compose_variables_read_as_docker_compose_reads_them(tmp_path: Path) -> None:
    """topology.py's ${VAR:-default} reading agrees with docker-compose's own."""
    from .test_deploy import docker_compose

    env = {k: v for k, v in os.environ.items() if not k.startswith("MXCONV_")} | topology.VARIABLES
    proc = subprocess.run(
        [docker_compose(), "-f", str(topology.COMPOSE), "config"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    for name in ("api", "worker"):
        command, environment = topology.compose_service(name)
        assert services[name]["command"] == command
        assert {k: str(v) for k, v in services[name]["environment"].items()} == environment
