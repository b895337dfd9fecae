"""The process manager of `make run`: secrets kept once, processes started in their own group and stopped
by recorded pid only (a reused pid is never signalled)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lifeboat.settings import Settings
from lifeboat.stack import embedded as stack
from lifeboat.stack import processes
from tests.serving.serving_support import free_port

pytestmark = pytest.mark.unit


def paths_in(tmp_path: Path) -> processes.StackPaths:
    return processes.StackPaths(tmp_path / "state")


def test_secrets_are_generated_once_private_and_kept(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    first = stack.load_secrets(paths)
    assert set(first) == {*stack.SECRET_NAMES, "airflow_fernet_key"}
    assert all(len(v) >= 32 for v in first.values())
    assert stat.S_IMODE(paths.secrets_file.stat().st_mode) == 0o600
    assert stack.load_secrets(paths) == first
    # a secret missing from the file is added; the others stay
    stored = json.loads(paths.secrets_file.read_text())
    del stored["reload_token"]
    paths.secrets_file.write_text(json.dumps(stored))
    again = stack.load_secrets(paths)
    assert again["airflow_admin_password"] == first["airflow_admin_password"]
    assert again["reload_token"] != first["reload_token"]


def test_a_secrets_file_written_before_the_feedback_token_gains_one(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    older = {
        name: f"{name}-0123456789abcdef0123456789" for name in stack.SECRET_NAMES if name != "feedback_token"
    }
    older["airflow_fernet_key"] = stack.load_secrets(paths_in(tmp_path / "other"))["airflow_fernet_key"]
    paths.root.mkdir(parents=True)
    paths.secrets_file.write_text(json.dumps(older))
    found = stack.load_secrets(paths)
    assert {k: v for k, v in found.items() if k != "feedback_token"} == older  # the others are kept
    assert len(found["feedback_token"]) >= 32
    assert json.loads(paths.secrets_file.read_text())["feedback_token"] == found["feedback_token"]
    assert stat.S_IMODE(paths.secrets_file.stat().st_mode) == 0o600
    Settings(feedback_token=found["feedback_token"])  # a token the server accepts


def test_the_state_folder_is_private_and_a_planted_link_is_not_followed(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    paths.root.mkdir(mode=0o755, parents=True)
    os.chmod(paths.root, 0o755)  # made earlier by another command, with a permissive umask
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours")
    (paths.root / ".secrets.json.tmp").symlink_to(victim)
    found = stack.load_secrets(paths)
    assert stat.S_IMODE(paths.root.stat().st_mode) == 0o700
    assert victim.read_text() == "not yours"
    assert json.loads(paths.secrets_file.read_text()) == found
    assert not paths.secrets_file.is_symlink()
    assert not (paths.root / ".secrets.json.tmp").exists()


def test_unreadable_secrets_file_is_an_error_not_a_reset(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    paths.root.mkdir(parents=True)
    paths.secrets_file.write_text("{broken")
    with pytest.raises(processes.StackError, match="not valid JSON"):
        stack.load_secrets(paths)
    assert paths.secrets_file.read_text() == "{broken"


def test_airflow_password_file(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    target = stack.write_airflow_password(paths, "s3cret-value")
    assert json.loads(target.read_text()) == {"admin": "s3cret-value"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    both = stack.write_airflow_password(paths, "s3cret-value", "server-password")
    assert json.loads(both.read_text()) == {"admin": "s3cret-value", "lifeboat-feedback": "server-password"}


def test_environment_of_the_stack(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path / "state", airflow_port=18080, mlflow_port=15000, serving_port=18000
    )
    paths = processes.StackPaths.from_settings(settings)
    repo = Path(__file__).resolve().parents[2]
    services = {s.name: s for s in stack.services(settings, repo, paths)}
    assert list(services) == ["mlflow", "serving", "airflow"]
    found = stack.load_secrets(paths)
    env = services["airflow"].env
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == found["airflow_jwt_secret"]
    assert env["AIRFLOW__CORE__FERNET_KEY"] == found["airflow_fernet_key"]
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(repo / "dags")
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"]) == {"conn_type": "spark", "host": "local[*]"}
    for service in services.values():
        assert service.env["LIFEBOAT_MLFLOW_TRACKING_URI"] == "http://127.0.0.1:15000"
        assert service.env["LIFEBOAT_SERVING_URL"] == "http://127.0.0.1:18000"
        assert service.env["LIFEBOAT_RELOAD_TOKEN"] == found["reload_token"]
        assert Path(service.env["LIFEBOAT_DATA_ROOT"]) == (repo / "data").resolve()
        assert "LIFEBOAT_RAW_DATA" not in service.env  # it would give every dataset the same file
        assert Path(service.env["LIFEBOAT_STATE_DIR"]) == (tmp_path / "state").resolve()
    assert services["serving"].env["LIFEBOAT_FEEDBACK_TOKEN"] == found["feedback_token"]
    assert services["airflow"].env.get("LIFEBOAT_FEEDBACK_TOKEN") != found["feedback_token"]
    assert services["mlflow"].env.get("LIFEBOAT_FEEDBACK_TOKEN") != found["feedback_token"]
    # The server tells Airflow of labels as its own "op" user; only the server gets that user's password.
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,lifeboat-feedback:op"
    served = services["serving"].env
    assert served["LIFEBOAT_AIRFLOW_EVENTS_URL"] == "http://127.0.0.1:18080"
    assert served["LIFEBOAT_AIRFLOW_EVENTS_USER"] == "lifeboat-feedback"
    assert served["LIFEBOAT_AIRFLOW_EVENTS_PASSWORD"] == found["airflow_feedback_password"]
    assert found["airflow_feedback_password"] != found["airflow_admin_password"]
    for name in ("mlflow", "airflow"):
        assert "LIFEBOAT_AIRFLOW_EVENTS_PASSWORD" not in services[name].env, name
    assert found["airflow_admin_password"] not in served.values()
    assert "--port" in services["mlflow"].command
    assert "15000" in services["mlflow"].command
    assert services["serving"].health_url == "http://127.0.0.1:18000/health"


def test_an_inherited_mlflow_uri_never_reaches_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shell (or an earlier test) pointing MLflow elsewhere must not send the stack's promotions there.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:////elsewhere/registry.db")
    settings = Settings(state_dir=tmp_path / "state", mlflow_port=15001)
    paths = processes.StackPaths.from_settings(settings)
    for service in stack.services(settings, Path(__file__).resolve().parents[2], paths):
        assert service.env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:15001", service.name
        assert service.env["MLFLOW_REGISTRY_URI"] == "http://127.0.0.1:15001", service.name


def http_service(tmp_path: Path, port: int, extra: str = "") -> processes.Service:
    """A real process that answers HTTP 200 on /health (python's http.server), optionally with a child."""
    code = (
        "import http.server, subprocess, sys\n"
        f"{extra}\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    return processes.Service(
        name="demo",
        command=[sys.executable, "-c", code],
        env=dict(os.environ),
        health_url=f"http://127.0.0.1:{port}/health",
        url=f"http://127.0.0.1:{port}",
        start_timeout=30.0,
        cwd=tmp_path,
    )


def test_start_reuse_and_stop_with_children(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    port = free_port()
    child = "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])"
    service = http_service(tmp_path, port, extra=child)
    said: list[str] = []
    assert processes.ensure_running(service, paths, said.append) == "started"
    pid = processes.running_pid(paths, "demo")
    assert pid is not None
    children = psutil.Process(pid).children(recursive=True)
    assert children, "the demo service should have started a child process"
    assert processes.ensure_running(service, paths, said.append) == "reused"
    assert processes.running_pid(paths, "demo") == pid
    assert processes.stop(paths, "demo", timeout=10) is True
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert all(not c.is_running() or c.status() == psutil.STATUS_ZOMBIE for c in children)
    assert not paths.pid_file("demo").exists()
    assert processes.stop(paths, "demo") is False


def test_stop_also_ends_children_in_a_process_group_of_their_own(tmp_path: Path) -> None:
    """Airflow runs each task (spark-submit, the Spark JVM) in its own process group: `make stop` during
    a run (adult's trains in the background after `make run`) must end those too."""
    paths = paths_in(tmp_path)
    child = (
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
        "start_new_session=True)"
    )
    service = http_service(tmp_path, free_port(), extra=child)
    processes.ensure_running(service, paths, print)
    pid = processes.running_pid(paths, "demo")
    assert pid is not None
    children = psutil.Process(pid).children(recursive=True)
    assert any(os.getpgid(c.pid) != os.getpgid(pid) for c in children)
    assert processes.stop(paths, "demo", timeout=10) is True
    assert all(not c.is_running() or c.status() == psutil.STATUS_ZOMBIE for c in children)


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """A pid file whose process start time does not match belongs to another process: leave it alone."""
    paths = paths_in(tmp_path)
    paths.pids.mkdir(parents=True)
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        record = {"pid": bystander.pid, "create_time": time.time() - 3600, "command": ["old"]}
        paths.pid_file("demo").write_text(json.dumps(record))
        assert processes.running_pid(paths, "demo") is None
        assert processes.stop(paths, "demo") is False
        assert bystander.poll() is None, "the unrelated process was signalled"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_port_taken_by_a_foreign_process_is_refused(tmp_path: Path) -> None:
    port = free_port()
    foreign = processes.Service(**{**http_service(tmp_path, port).__dict__, "name": "foreign"})
    paths = paths_in(tmp_path)
    processes.start(foreign, paths)
    try:
        processes.wait_until_healthy(foreign, paths)
        with pytest.raises(processes.StackError, match="taken by a process this stack did not start"):
            processes.ensure_running(http_service(tmp_path, port), paths, print)
    finally:
        processes.stop(paths, "foreign", timeout=10)


def test_a_service_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    broken = processes.Service(
        name="broken",
        command=[sys.executable, "-c", "import sys; print('cannot bind: port in use'); sys.exit(3)"],
        env=dict(os.environ),
        health_url=f"http://127.0.0.1:{free_port()}/health",
        url="",
        start_timeout=30.0,
        cwd=tmp_path,
    )
    with pytest.raises(processes.StackError, match=r"broken exited during start-up(.|\n)*cannot bind"):
        processes.ensure_running(broken, paths, print)


def test_a_data_path_set_away_from_its_dataset_reaches_the_stack(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", incoming_dir=tmp_path / "batches")
    paths = processes.StackPaths.from_settings(settings)
    repo = Path(__file__).resolve().parents[2]
    for service in stack.services(settings, repo, paths):
        assert service.env["LIFEBOAT_INCOMING_DIR"] == str((tmp_path / "batches").resolve())
        assert "LIFEBOAT_RAW_DATA" not in service.env
