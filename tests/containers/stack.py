"""The compose topology under test, driven through deploy/compose.sh and the docker CLI.

Everything it starts is its own: a compose project with a fresh name, the balancer on a free
127.0.0.1 port, probe containers recorded by id, and the daemon only if none answered. Its
figures (build times, image size, time to healthy, each fault's outcome) go to FIGURES.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from ..conftest import ROOT, free_port

COMPOSE_SH = ROOT / "deploy" / "compose.sh"
DOCKERD_SH = ROOT / "deploy" / "dockerd.sh"
IN_CI = os.environ.get("CI") == "true"
INSTALL = "apt-get install --no-install-recommends docker.io docker-compose mmdebstrap"
#: What every case adds, printed at the end of the session and written to test-artifacts/.
FIGURES: dict[str, Any] = {}


def unavailable(why: str) -> None:
    """In CI a missing tool is a broken CI, never a skip."""
    if IN_CI:
        pytest.fail(f"{why}; .ci/run should {INSTALL}")
    pytest.skip(f"{why}: {INSTALL} (and run as root, or start Docker and set DOCKER_HOST)")


def base_env() -> dict[str, str]:
    """deploy/env.sh's choices, for the docker CLI run from here: Debian's CLI, BuildKit."""
    # The shell's compose settings must not change the topology under test; the daemon's stay.
    keep = ("MXCONV_DOCKERD_", "MXCONV_STANDINS")
    env = {
        k: v for k, v in os.environ.items() if k.startswith(keep) or not k.startswith(("MXCONV_", "COMPOSE_"))
    }
    env["PATH"] = "/usr/bin:/usr/sbin:" + env.get("PATH", "")
    env |= {"DOCKER_BUILDKIT": "1", "COMPOSE_DOCKER_CLI_BUILD": "1"}
    return env


@dataclass
class Stack:
    project: str = field(default_factory=lambda: f"mxconvtest{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=base_env)
    started_daemon: bool = False
    reachable: bool = False  # a daemon answered: there is something to clean up
    probes: list[str] = field(default_factory=list)  # containers started with `docker run`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def network(self) -> str:
        return f"{self.project}_default"

    def configure(self, **variables: str) -> None:
        self.env |= {"COMPOSE_PROJECT_NAME": self.project, "MXCONV_PUBLISH": f"127.0.0.1:{self.port}"}
        self.env |= variables

    # -- running things ----------------------------------------------------------------

    def run(self, *argv: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            argv, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )  # fmt: skip
        if check and proc.returncode != 0:
            output = f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{output}")
        return proc

    def docker(self, *args: str, **kwargs: Any) -> str:
        return self.run("docker", *args, **kwargs).stdout.strip()

    def compose_sh(self, step: str, timeout: float = 900) -> float:
        """One deploy/compose.sh step, as `make compose-up` runs it; returns its seconds."""
        t0 = time.monotonic()
        proc = self.run(str(COMPOSE_SH), step, timeout=timeout)
        for line in proc.stderr.splitlines():
            if line.startswith(("base-images:", "dockerd.sh:", "compose: every")):
                print(f"  {line}")
        return round(time.monotonic() - t0, 1)

    def compose_tool(self) -> list[str]:
        return ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]

    def compose(self, *args: str, timeout: float = 300) -> str:
        return self.run(*self.compose_tool(), *args, timeout=timeout).stdout

    # -- the daemon ----------------------------------------------------------------------

    def ensure_daemon(self) -> None:
        if shutil.which("docker", path=self.env["PATH"]) is None:
            unavailable("no docker CLI")
        if (
            shutil.which("docker-compose") is None
            and self.run("docker", "compose", "version", check=False, timeout=30).returncode != 0
        ):
            unavailable("no docker-compose")
        own = "unix://" + os.environ.get("MXCONV_DOCKERD_RUN", "/run/mxconv-dockerd") + "/docker.sock"
        host = os.environ.get("DOCKER_HOST")
        if host is None and self.run("docker", "version", check=False, timeout=30).returncode != 0:
            host = own  # no daemon answers: mxconv's own, as deploy/compose.sh does
        if host is not None:
            self.env["DOCKER_HOST"] = host
        if host == own and self.run(str(DOCKERD_SH), "status", check=False).returncode != 0:
            if os.geteuid() != 0 or shutil.which("dockerd") is None:
                unavailable("no Docker daemon answers, and this user cannot start one")
            t0 = time.monotonic()
            self.run(str(DOCKERD_SH), "start", timeout=120)
            self.started_daemon = True
            FIGURES["daemon_start_s"] = round(time.monotonic() - t0, 1)
        if self.run("docker", "version", check=False, timeout=30).returncode != 0:
            unavailable(f"the Docker daemon at {host or 'the default socket'} does not answer")
        self.reachable = True

    # -- state -----------------------------------------------------------------------

    def containers(self, service: str | None = None, all: bool = False) -> list[str]:
        """Ids of the project's containers (of one service), oldest first."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = self.docker("ps", "-q", "--no-trunc", *(["-a"] if all else []), *filters).split()
        return sorted(ids, key=lambda i: self.inspect(i)["Created"])

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(self.docker("inspect", container))[0]  # type: ignore[no-any-return]

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        return str(state["Health"]["Status"]) if state.get("Health") else str(state["Status"])

    def wait_health(self, containers: list[str], want: str, timeout: float = 120) -> float:
        t0 = time.monotonic()
        while True:
            states = {c[:12]: self.health(c) for c in containers}
            if all(s == want for s in states.values()):
                return round(time.monotonic() - t0, 1)
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"not {want} after {timeout} s: {states}")
            time.sleep(0.5)

    def logs(self, container: str) -> str:
        proc = self.run("docker", "logs", container, check=False)
        return proc.stdout + proc.stderr

    def probe(self, *args: str) -> str:
        """`docker run -d` on the project's network; the id is kept for teardown."""
        cid = self.docker("run", "-d", "--network", self.network, *args)
        self.probes.append(cid)
        return cid

    def remove_probes(self) -> None:
        for cid in self.probes:
            self.run("docker", "rm", "-f", "-v", cid, check=False)
        self.probes.clear()

    # -- teardown --------------------------------------------------------------------

    def teardown(self) -> None:
        """Remove all this stack made, by id: probes, then the project's containers, network
        and volume; then the daemon, if it was this session's."""
        if self.reachable:
            self.remove_probes()
            self.run(*self.compose_tool(), "down", "-v", "--remove-orphans", "--timeout", "5", check=False)
            label = f"label=com.docker.compose.project={self.project}"
            for kind in ("container", "network", "volume"):
                listing = ["ps", "-aq"] if kind == "container" else [kind, "ls", "-q"]
                left = self.run("docker", *listing, "--filter", label, check=False).stdout.split()
                for obj in left:  # what `down` left behind, by id
                    self.run("docker", kind, "rm", "-f", obj, check=False)
                FIGURES.setdefault("left_behind", {})[kind] = len(left)
        if self.started_daemon:
            self.run(str(DOCKERD_SH), "stop", check=False, timeout=120)
            FIGURES["daemon_stopped"] = True
