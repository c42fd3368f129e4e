"""The scale-out topology without containers, planned from docker-compose.yml itself.

The topology test runs each service's compose `command` with its compose `environment`,
changing only what a single machine without Docker must (:data:`LOCAL`) and setting compose
variables the way ``VAR=value docker compose up`` would (:data:`VARIABLES`). :func:`drift`
says how a launch differs from compose beyond that; the topology test asserts it is empty
for every process it ran, and test_deploy.py for the plan, so the two cannot drift.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"

#: The only values that differ from compose, and why.
LOCAL = {
    "MXCONV_HOST": "servers bind to 127.0.0.1 on a shared machine, not 0.0.0.0",
    "MXCONV_PORT": "two APIs on one host need two free ports (compose: 8000 in each container)",
    "MXCONV_JOBS_URL": "the test's redis-server on 127.0.0.1:<free port> (compose: redis://redis:6379/0)",
}
#: Compose variables the topology test sets (each is a ${VAR:-default} in the compose file).
VARIABLES = {
    "MXCONV_WORKERS": "1",  # one gunicorn worker per API: two cores for the whole topology
    "MXCONV_JOB_LEASE_SECONDS": "4",  # a killed worker's job is recovered in seconds
    "MXCONV_JOB_OMP_THREADS": "1",
}
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def interpolate(value: Any, variables: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}``, enough for our file."""

    def sub(m: re.Match[str]) -> str:
        name, op, default = m["name"], m["op"], m["default"] or ""
        if name in variables and (op != ":-" or variables[name] != ""):
            return variables[name]
        return default if op else ""

    return _VAR.sub(sub, str(value))


def compose_service(name: str, variables: Mapping[str, str] = VARIABLES) -> tuple[list[str], dict[str, str]]:
    """A service's command and environment, as compose would run it with these variables."""
    service = yaml.safe_load(COMPOSE.read_text())["services"][name]
    env = {k: interpolate(v, variables) for k, v in service.get("environment", {}).items()}
    return [str(a) for a in service["command"]], env


def local_argv(command: list[str]) -> list[str]:
    """The image's programs are this virtual environment's: `mxconv` and `python`."""
    programs = {"mxconv": str(Path(sys.executable).parent / "mxconv"), "python": sys.executable}
    return [programs.get(command[0], command[0]), *command[1:]]


@dataclass
class Launch:
    service: str  # "api" or "worker"
    argv: list[str]
    env: dict[str, str]  # the MXCONV_* settings; the process gets them over a clean environment

    def process_env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MXCONV_", "PROMETHEUS_"))}
        # OpenMP: one thread per process on the shared test machine (not an MXCONV setting).
        return {**base, "OMP_NUM_THREADS": "1", **self.env}


def plan(redis_url: str, api_ports: list[int], workers: int) -> list[Launch]:
    launches = []
    for port in api_ports:
        command, env = compose_service("api")
        env |= {"MXCONV_HOST": "127.0.0.1", "MXCONV_PORT": str(port), "MXCONV_JOBS_URL": redis_url}
        launches.append(Launch("api", local_argv(command), env))
    for _ in range(workers):
        command, env = compose_service("worker")
        env |= {"MXCONV_JOBS_URL": redis_url}
        launches.append(Launch("worker", local_argv(command), env))
    return launches


def drift(launch: Launch) -> list[str]:
    """How this launch differs from compose's service, beyond LOCAL: empty when they match."""
    command, env = compose_service(launch.service)
    problems = []
    if launch.argv != local_argv(command):
        problems.append(f"{launch.service}: ran {launch.argv}, compose says {command}")
    for key in sorted(set(env) | set(launch.env)):
        if key in LOCAL:
            if key in env and key not in launch.env:
                problems.append(f"{launch.service}: {key} is set in compose but not in the test")
            continue
        if env.get(key) != launch.env.get(key):
            problems.append(
                f"{launch.service}: {key}={launch.env.get(key)!r} in the test, {env.get(key)!r} in compose"
            )
    return problems
