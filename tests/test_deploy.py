"""The deployment files: every compose file validates with `docker-compose config`, and the
Dockerfile, compose services, balancer and scripts keep the promises the README makes about
them; start-up errors are one line. tests/containers/ runs them for real (make test-containers)."""

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
    assert set(merged["services"]) == {"redis", "api", "worker", "balancer"}


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
    # `--scale api=N --scale worker=M` needs services with no fixed name and no published port:
    # clients come in through the balancer, which alone publishes, on 127.0.0.1 by default.
    for svc in (api, worker):
        assert "container_name" not in svc and "ports" not in svc
    assert worker["image"] == api["image"]  # one image for both
    balancer = services["balancer"]
    assert balancer["ports"] == ["${MXCONV_PUBLISH:-127.0.0.1:8000}:80"]
    assert balancer["volumes"] == ["./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro"]
    assert balancer["depends_on"]["api"]["condition"] == "service_healthy"


#: ${MXCONV_..._IMAGE:-default}: every image a registry gives is a variable, the real image its default.
_IMAGE_VAR = re.compile(r"\$\{(MXCONV_[A-Z]+_IMAGE):-([^}]+)\}")


def test_image_names_are_variables_with_the_real_defaults() -> None:
    services = load("docker-compose.yml")["services"]
    compose = dict(_IMAGE_VAR.findall(services["redis"]["image"] + services["balancer"]["image"]))
    compose |= dict(_IMAGE_VAR.findall(services["api"]["build"]["args"]["PYTHON_IMAGE"]))
    assert compose == {
        "MXCONV_REDIS_IMAGE": "redis:7-alpine",
        "MXCONV_NGINX_IMAGE": "nginx:1.27-alpine",
        "MXCONV_PYTHON_IMAGE": "python:3.11-slim",
    }
    # The stand-in script makes the same names, and the Dockerfile's default base is the same.
    script = (ROOT / "deploy" / "base-images.sh").read_text()
    assert dict(_IMAGE_VAR.findall(script)) == compose
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in (ROOT / "Dockerfile").read_text()


def _nginx_directives() -> dict[str, list[str]]:
    """Each directive of deploy/nginx.conf (name -> every value it is given)."""
    text = re.sub(r"#.*", "", (ROOT / "deploy" / "nginx.conf").read_text())
    out: dict[str, list[str]] = {}
    for statement in re.findall(r"([a-z_]+)\s+([^;{}]*);", text):
        out.setdefault(statement[0], []).append(statement[1].strip())
    return out


def _seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def _gunicorn_timeout(tmp_path: Path) -> float:
    """gunicorn's worker timeout with the default settings, as gunicorn_conf.py computes it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MXCONV_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)  # else importing it makes a directory
    code = "import mxconv_server.gunicorn_conf as c; print(c.timeout)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


def test_the_balancer_buffers_bodies_and_outlasts_gunicorn(tmp_path: Path) -> None:
    from mxconv_server.config import Settings

    nginx = _nginx_directives()
    assert nginx["proxy_request_buffering"] == ["on"]  # gunicorn sees whole bodies only
    (size,) = nginx["client_max_body_size"]
    assert int(size.removesuffix("m")) * 2**20 == Settings.model_fields["max_body_bytes"].default
    gunicorn_timeout = _gunicorn_timeout(tmp_path)
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        assert _seconds(nginx[name][0]) > gunicorn_timeout
    # Every replica, found by Docker's DNS at request time; retries only where that is safe.
    assert nginx["resolver"][0].startswith("127.0.0.11 ")
    assert set(nginx["proxy_pass"]) == {"$api"} and nginx["set"] == ["$api http://api:8000"]
    assert sorted(nginx["proxy_next_upstream"]) == ["error timeout", "error timeout non_idempotent"]
    assert _seconds(nginx["proxy_next_upstream_timeout"][0]) < gunicorn_timeout


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "deploy").glob("*.sh")))
def test_deploy_scripts_parse(script: str) -> None:
    path = ROOT / "deploy" / script
    assert os.access(path, os.X_OK) or script == "env.sh"  # env.sh is sourced, not run
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


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


def test_readme_deploy_commands_are_the_make_targets() -> None:
    from . import readme

    commands = readme.shell_commands("Deploy")
    assert [c.split()[:2] for c in (commands[0], commands[-1])] == [
        ["make", "compose-up"],
        ["make", "compose-down"],
    ]
    assert commands[1] == readme.shell_commands("Try it with curl")[0]  # the seed's corr2d
    makefile = (ROOT / "Makefile").read_text()
    for target in ("compose-up", "compose-down", "test-containers"):
        assert re.search(rf"^{target}:", makefile, re.M), target


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


def test_every_setting_is_in_the_settings_table() -> None:
    from mxconv_server.config import Settings

    from . import readme

    table = readme.section("Settings", page="docs/settings.md")
    documented = set(re.findall(r"^\| `(MXCONV_[A-Z_]+)` \|", table, re.M))
    assert documented == {f"MXCONV_{name.upper()}" for name in Settings.model_fields}
