"""Compose services run as host processes: the production stack on loopback, without Docker.

:class:`HostStack` takes the services of docker-compose.yml (loaded with a filled env), maps them to this
machine with :func:`tests.deploy.compose.host_process` (service names -> 127.0.0.1, container ports -> free
ports, container paths -> temporary folders and this repository) and runs them: one-shot services to
completion, long-running ones in their own process group until :meth:`HostStack.stop_all`, which stops
every process it started by its pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.compose import (
    ComposeProject,
    Dockerfile,
    HostMapping,
    HostProcess,
    host_process,
    read_dockerfile,
)

logger = logging.getLogger(__name__)

#: Ports the services listen on inside their containers (each gets a free port on the host).
CONTAINER_PORTS = (5000, 7077, 8000, 8080, 8081, 8090, 8793, 8794, 8974)
#: Variables of this process that the host processes inherit; nothing else (no LIFEBOAT_*, AIRFLOW_*).
INHERITED = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "TZ")


class HostStackError(RuntimeError):
    """A host process failed, did not become healthy in time, or exited early; the message has its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_java_home() -> Path:
    """The Java installation of this machine: JAVA_HOME, else the folder above the ``java`` on PATH."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if java is None:
        raise HostStackError("java is not on PATH and JAVA_HOME is unset (Spark needs Java 17+)")
    return Path(java).resolve().parents[1]


_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def masked(argv: tuple[str, ...] | list[str]) -> str:
    """A command line for the test log, the passwords of URLs (``user:password@``) replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\1***@", " ".join(argv))


def log_tail(path: Path, lines: int = 60) -> str:
    """The last lines of a log file (empty when there is none)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class HostStack:
    """The compose services of ``project`` as host processes under ``root`` (a temporary folder)."""

    project: ComposeProject
    repo_root: Path
    root: Path
    venv_bin: Path
    postgres_port: int = 5432
    ports: dict[int, int] = field(default_factory=dict)
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: Every process group this stack ever started (its leader's pid), by service name, restarts included.
    history: list[tuple[str, int]] = field(default_factory=list)
    dockerfiles: dict[Path, Dockerfile] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for port in CONTAINER_PORTS:
            self.ports.setdefault(port, free_port())
        self.ports[5432] = self.postgres_port
        for folder in ("state", "airflow-home", "mlflow-artifacts", "spark-worker", "serving-state", "logs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def dockerfile(self, name: str) -> Dockerfile | None:
        """The Dockerfile service ``name`` is built from (its ENV and WORKDIR apply on the host too)."""
        build = self.project.service(name).build
        if build is None:
            return None
        if build.dockerfile not in self.dockerfiles:
            self.dockerfiles[build.dockerfile] = read_dockerfile(build.dockerfile)
        return self.dockerfiles[build.dockerfile]

    @property
    def mapping(self) -> HostMapping:
        """Service names -> 127.0.0.1, container ports -> free ports, container paths -> host paths."""
        import pyspark

        hosts = dict.fromkeys(self.project.services, "127.0.0.1")
        hosts["0.0.0.0"] = "127.0.0.1"
        paths = {
            "/opt/lifeboat/state": self.root / "state",
            "/opt/lifeboat": self.repo_root,
            "/opt/airflow": self.root / "airflow-home",
            "/mlflow/artifacts": self.root / "mlflow-artifacts",
            "/opt/spark": Path(pyspark.__file__).resolve().parent,
            "/opt/java": host_java_home(),
            "/tmp/spark-worker": self.root / "spark-worker",
            "/var/lib/lifeboat": self.root / "serving-state",
            "/app": self.repo_root,  # Dockerfile.serving copies lifeboat/ and serving/ there
        }
        return HostMapping(hosts=hosts, ports=self.ports, paths=paths)

    def base_env(self) -> dict[str, str]:
        """PATH with the virtualenv first (airflow, mlflow, spark-class, python), plus a few basics."""
        env = {name: os.environ[name] for name in INHERITED if name in os.environ}
        env["PATH"] = f"{self.venv_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        return env

    def process(self, name: str, extra_env: Mapping[str, str] | None = None) -> HostProcess:
        """The host process of service ``name`` (Spark on loopback whatever ``hostname -i`` says)."""
        extra = {"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_HOSTNAME": "127.0.0.1", **(extra_env or {})}
        dockerfile = self.dockerfile(name)
        return host_process(
            self.project.service(name),
            self.mapping,
            base_env=self.base_env(),
            image_env=dockerfile.env if dockerfile else None,
            image_workdir=dockerfile.workdir if dockerfile else None,
            extra_env=extra,
        )

    def port(self, container_port: int) -> int:
        """The host port that stands for ``container_port``."""
        return self.ports[container_port]

    def log_path(self, name: str) -> Path:
        """Where the output of service ``name`` goes."""
        return self.root / "logs" / f"{name}.log"

    def run(
        self, name: str, timeout: float, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a one-shot service to completion; its result (output in ``stdout``) whatever the exit code."""
        proc = self.process(name, extra_env)
        logger.info("running %s: %s", name, masked(proc.argv))
        try:
            done = subprocess.run(
                proc.argv,
                env=dict(proc.env),
                cwd=proc.cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise HostStackError(f"{name} did not finish within {timeout:g} s: {exc.output!r}") from exc
        self.log_path(name).write_text(done.stdout)
        return done

    def start(self, name: str, extra_env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running service in its own process group; its output goes to its log file."""
        if name in self.started and self.started[name].poll() is None:
            return self.started[name]
        proc = self.process(name, extra_env)
        logger.info("starting %s: %s", name, masked(proc.argv))
        with self.log_path(name).open("wb") as log:
            popen = subprocess.Popen(
                proc.argv,
                env=dict(proc.env),
                cwd=proc.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started[name] = popen
        self.history.append((name, popen.pid))
        return popen

    def wait_healthy(self, name: str, timeout: float) -> float:
        """Run the service's own (mapped) healthcheck until it passes; returns the seconds it took."""
        proc = self.process(name)
        if proc.healthcheck is None:
            raise HostStackError(f"service {name} has no healthcheck")
        begin = time.monotonic()
        deadline = begin + timeout
        while True:
            popen = self.started.get(name)
            if popen is not None and popen.poll() is not None:
                raise HostStackError(
                    f"{name} exited with code {popen.returncode} before it was healthy:\n"
                    f"{log_tail(self.log_path(name))}"
                )
            check = subprocess.run(
                proc.healthcheck,
                env=dict(proc.env),
                cwd=proc.cwd,
                capture_output=True,
                timeout=60,
                check=False,
            )
            if check.returncode == 0:
                took = time.monotonic() - begin
                logger.info("%s is healthy after %.1f s", name, took)
                return took
            if time.monotonic() > deadline:
                raise HostStackError(
                    f"{name} was not healthy after {timeout:g} s ({' '.join(proc.healthcheck)} -> "
                    f"{check.returncode}):\n{log_tail(self.log_path(name))}"
                )
            time.sleep(1.0)

    def stop(self, name: str, grace: float = 15.0) -> None:
        """Stop the process group started for ``name`` by its pid: SIGTERM, then SIGKILL after ``grace``."""
        popen = self.started.pop(name, None)
        if popen is None or popen.poll() is not None:
            return
        try:
            os.killpg(popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGTERM for %g s; killing it", name, grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)  # whatever is left of the group (workers, JVM children)
        popen.wait(timeout=10)

    def stop_all(self) -> None:
        """Stop every started service, newest first."""
        for name in reversed(list(self.started)):
            self.stop(name)

    def leftovers(self, names: Iterable[str] | None = None) -> list[str]:
        """``<service>: pid <pid> <command>`` for every process still alive in a group this stack started.

        ``names`` limits the check to those services (default: all). Each service is the leader of its own
        process group, and its children (uvicorn and api-server workers, Airflow task processes, the
        spark-submit drivers they run, the executors a Spark worker launches) stay in that group.
        """
        import psutil

        wanted = None if names is None else set(names)
        groups = {pid: name for name, pid in self.history if wanted is None or name in wanted}
        alive = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            try:
                group = os.getpgid(process.pid)
                if group not in groups or process.status() == psutil.STATUS_ZOMBIE:
                    continue
            except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                continue
            command = " ".join(process.info["cmdline"] or [])[:160]
            alive.append(f"{groups[group]}: pid {process.pid} {command}")
        return alive
