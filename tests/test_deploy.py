"""The deployment files: every compose file validates with `docker-compose config`, and the
Dockerfile and compose services keep the promises the README makes about them; start-up errors
are one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT

#: Each compose file, with the files it is layered on (an override is only valid on its base).
COMPOSE_SETS = {
    "docker-compose.yml": ["docker-compose.yml"],
    "docker-compose.gpu.yml": ["docker-compose.yml", "docker-compose.gpu.yml"],
}
IN_CI = os.environ.get("CI") == "true"


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        if IN_CI:  # .ci/run installs it: missing there is a broken CI, not a skip
            pytest.fail("docker-compose is not installed; .ci/run should apt-get install it")
        pytest.skip("docker-compose is not installed: apt-get install --no-install-recommends docker-compose")
    return path


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())  # type: ignore[no-any-return]


def test_every_compose_file_is_covered() -> None:
    assert {p.name for p in ROOT.glob("docker-compose*.y*ml")} == set(COMPOSE_SETS)


@pytest.mark.parametrize("name", sorted(COMPOSE_SETS))
def test_docker_compose_config_accepts(name: str, tmp_path: Path) -> None:
    files = [arg for f in COMPOSE_SETS[name] for arg in ("-f", str(ROOT / f))]
    # No .env or shell settings may be needed: the defaults alone make a valid stack.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MXCONV_")}
    cmd = [docker_compose(), *files, "config"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    merged = yaml.safe_load(proc.stdout)
    assert set(merged["services"]) == {"redis", "api", "worker"}


def _env_keys(service: dict[str, Any]) -> set[str]:
    return set(service.get("environment", {}))


def test_compose_services_keep_their_promises() -> None:
    services = load("docker-compose.yml")["services"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"  # persistence on
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])

    api, worker = services["api"], services["worker"]
    assert api["command"] == ["mxconv", "serve"]
    assert api["environment"]["MXCONV_HOST"] == "0.0.0.0"
    assert "/v1/health/ready" in " ".join(api["healthcheck"]["test"])
    assert api["environment"]["MXCONV_JOB_WORKERS"] == "0"  # the workers are their own service
    for svc in (api, worker):
        assert svc["environment"]["MXCONV_JOBS_URL"] == "redis://redis:6379/0"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert {k for k in _env_keys(svc) if not k.startswith("MXCONV_")} == set()
    # `--scale worker=N` needs a service with no fixed name and no published port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["image"] == api["image"]  # one image for both


def test_gpu_variant_builds_the_cuda_wheel_and_reserves_a_gpu() -> None:
    services = load("docker-compose.gpu.yml")["services"]
    assert set(services) == {"api", "worker"}
    for svc in services.values():
        assert re.fullmatch(r"mxnet-cu\d+==1\.9\.1", svc["build"]["args"]["MXNET_PACKAGE"])
        assert svc["build"]["args"]["VARIANT"] == "gpu"
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        assert svc["environment"]["MXCONV_DEVICE"] == "gpu"


def test_dockerfile_is_one_slim_non_root_image_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]
    instructions = [line for line in lines if not line.startswith("#")]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in instructions
    assert "FROM ${PYTHON_IMAGE} AS base-cpu" in instructions
    assert instructions[-1] == 'CMD ["mxconv", "serve"]'
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    (health,) = [line for line in instructions if line.startswith("HEALTHCHECK ")]
    assert "/v1/health/ready" in health
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)


# -- start-up errors: one line on stderr and exit 2, for the api and for the worker -----------

ENTRYPOINTS = {
    "api": [str(Path(sys.executable).parent / "mxconv"), "serve"],
    "worker": [sys.executable, "-m", "mxconv_server.jobs.worker"],
}
STARTUP_FAULTS = {
    "gpu on a CPU host": ({"MXCONV_DEVICE": "gpu"}, "MXCONV_DEVICE='gpu' asks for GPU 0"),
    "invalid setting": ({"MXCONV_WORKERS": "two"}, "invalid setting MXCONV_WORKERS='two': Input should be"),
    "unreachable redis": (
        {"MXCONV_JOBS_URL": "redis://:secret@127.0.0.1:{port}/0", "MXCONV_STARTUP_TIMEOUT": "0.5"},
        "cannot reach the job store redis://:***@127.0.0.1:{port}/0 after 0.5 s",
    ),
}


@pytest.mark.parametrize("fault", sorted(STARTUP_FAULTS))
@pytest.mark.parametrize("entrypoint", sorted(ENTRYPOINTS))
def test_startup_error_is_one_line_and_exit_2(entrypoint: str, fault: str, tmp_path: Path) -> None:
    from .conftest import free_port

    port = str(free_port())  # nothing listens there
    settings, expected = STARTUP_FAULTS[fault]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MXCONV_")}
    env |= {k: v.format(port=port) for k, v in settings.items()} | {"MXCONV_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        ENTRYPOINTS[entrypoint], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr  # one line
    assert proc.stderr.startswith("mxconv: ") and expected.format(port=port) in proc.stderr
    assert "secret" not in proc.stderr
