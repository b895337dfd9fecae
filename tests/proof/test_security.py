"""Security of the prediction server: the reload token, production start-up, secrets in logs, the image user.

* reload without a token is 401, with a wrong one 403, with the right one 200, over real sockets;
* the token is compared in constant time: the implementation calls ``hmac.compare_digest`` on every
  request and never compares it with ``==`` (read from serving/routes/admin.py; no timing measurement);
* production mode refuses to start with a missing, placeholder, whitespace-padded or short token:
  ``Settings`` raises, and ``uvicorn --factory serving.app:create_app`` exits non-zero saying why, without
  echoing the token; with a real token it starts;
* no secret in logs: that production server, at debug log level, sees right and wrong tokens, a refused
  and an accepted reload, and the token appears nowhere in its log, its state folder or its answers;
* the serving image runs as a non-root user created with a non-zero uid.

(Settings' refusal of placeholders is also unit-tested in tests/unit/test_settings.py.)
"""

from __future__ import annotations

import ast
import base64
import hmac
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifeboat.settings import PLACEHOLDER_SECRETS, Settings
from tests.serving.serving_support import (
    REPO_ROOT,
    ServingVersions,
    StoreRef,
    free_port,
    serving_env,
    serving_settings,
    set_champion,
    stop_process_group,
)

ADMIN_ROUTES = REPO_ROOT / "serving" / "routes" / "admin.py"
DOCKERFILE = REPO_ROOT / "Dockerfile.serving"
TOKEN_ERROR = "LIFEBOAT_RELOAD_TOKEN must be set to a random value"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- constant-time comparison -------------------------------------------------------------------------------


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    assert len(found) == 1, f"{name} not found in {ADMIN_ROUTES}"
    return found[0]


@pytest.mark.unit
def test_the_reload_token_is_compared_with_compare_digest_only() -> None:
    tree = ast.parse(ADMIN_ROUTES.read_text())
    check = _function(tree, "require_reload_token")
    calls = {
        ast.unparse(n.func)
        for n in ast.walk(check)
        if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("compare_digest")
    }
    assert calls & {"hmac.compare_digest", "secrets.compare_digest"}, "no compare_digest in the token check"
    # No other comparison touches the presented or the configured token (== leaks timing; `in` too);
    # identity tests (`credentials is None`) compare no content.
    secret_names = {"credentials", "configured"}
    leaky = [
        ast.unparse(n)
        for n in ast.walk(check)
        if isinstance(n, ast.Compare)
        and not all(isinstance(op, ast.Is | ast.IsNot) for op in n.ops)
        and {x.id for x in ast.walk(n) if isinstance(x, ast.Name)} & secret_names
    ]
    assert leaky == []
    # The route depends on the check: no reload happens before the token was compared.
    reload_route = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef) and n.name == "reload_model"
    )
    decorators = " ".join(ast.unparse(d) for d in reload_route.decorator_list)
    assert "Depends(require_reload_token)" in decorators


@pytest.mark.integration
def test_every_token_check_goes_through_compare_digest(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At run time: each presented token is compared with hmac.compare_digest, right or wrong."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    token = secrets.token_urlsafe(24)
    client = make_client(f"http://127.0.0.1:{free_port()}", reload_token=token)  # no registry: not ready
    seen: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert client.post("/admin/reload").status_code == 401  # nothing to compare
    assert client.post("/admin/reload", headers=bearer(token + "x")).status_code == 403
    assert client.post("/admin/reload", headers=bearer(token)).status_code == 502  # authorised; no registry
    assert seen == [((token + "x").encode(), token.encode()), (token.encode(), token.encode())]


# --- production start-up ------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    "token",
    [
        None,
        *sorted(PLACEHOLDER_SECRETS - {""}),
        "CHANGEME",
        "changeme" + " " * 8,  # a placeholder padded to the minimum length
        " " * 16,
        "fifteen-chars!!",
    ],
)
def test_production_settings_refuse_a_weak_token_without_echoing_it(
    token: str | None, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=TOKEN_ERROR) as refused:
        Settings(environment="production", reload_token=token, state_dir=tmp_path)
    if token and token.strip():
        assert token.strip() not in str(refused.value)


@contextmanager
def production_server(
    tracking_uri: str, token: str | None, workdir: Path, log_level: str = "info"
) -> Iterator[ProductionServer]:
    """``uvicorn --factory serving.app:create_app`` with LIFEBOAT_ENVIRONMENT=production (stopped at the end).

    It runs in ``workdir``, so that no ``.env`` file of the repository can supply a token; its state folder
    is ``workdir/state``.
    """
    env = serving_env(serving_settings(workdir / "state", tracking_uri))
    env["LIFEBOAT_ENVIRONMENT"] = "production"
    env.pop("LIFEBOAT_RELOAD_TOKEN")
    if token is not None:
        env["LIFEBOAT_RELOAD_TOKEN"] = token
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app"),
        *("--port", str(port), "--log-level", log_level),
    ]
    log = workdir / "uvicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield ProductionServer(process, log, f"http://127.0.0.1:{port}")
    finally:
        stop_process_group(process)


@dataclass(frozen=True)
class ProductionServer:
    """A uvicorn process started in production mode."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def log_text(self) -> str:
        """What the process printed so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Wait until /ready answers 200 (fails the test, with the log, if the process exits or times out)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.log_text()[-3000:]
            time.sleep(0.25)


@pytest.mark.integration
@pytest.mark.parametrize(
    "token", [None, "changeme", "fifteen-chars!!"], ids=["missing", "placeholder", "short"]
)
def test_production_refuses_to_start_with_a_weak_token(token: str | None, tmp_path: Path) -> None:
    with production_server(f"sqlite:///{tmp_path / 'unused.db'}", token, tmp_path) as server:
        try:
            code = server.process.wait(120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"uvicorn did not exit:\n{server.log_text()[-3000:]}")
        log = server.log_text()
    assert code != 0
    assert TOKEN_ERROR in log
    if token:
        assert token not in log


# --- secrets in logs ----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_production_server_starts_and_logs_no_secret(
    store_copy: StoreRef, serving_versions: ServingVersions, tmp_path: Path
) -> None:
    """Production mode with a real token starts; at debug log level, after right and wrong tokens and a
    refused and an accepted reload, the token is in no log line, no file of its state folder, no answer."""
    token = secrets.token_urlsafe(24)
    basic = base64.b64encode(f"admin:{token}".encode()).decode()
    answers: list[str] = []
    with (
        production_server(store_copy.tracking_uri, token, tmp_path, log_level="debug") as server,
        httpx.Client(base_url=server.url, timeout=120) as c,
    ):
        server.wait_ready()
        statuses = [
            c.post("/admin/reload").status_code,
            c.post("/admin/reload", headers={"Authorization": f"Basic {basic}"}).status_code,
            c.post("/admin/reload", headers=bearer(token + "x")).status_code,  # the secret inside a wrong one
            c.post("/admin/reload", headers=bearer(token[:-1])).status_code,
            c.post("/admin/reload", headers=bearer(token)).status_code,
        ]
        set_champion(store_copy, serving_versions.broken)
        refused = c.post("/admin/reload", headers=bearer(token))  # an ERROR is logged, with the reason
        set_champion(store_copy, serving_versions.alternate)
        accepted = c.post("/admin/reload", headers=bearer(token))
        for path in ("/ready", "/model", "/metrics", "/openapi.json", "/health"):
            answers.append(c.get(path).text)
        answers += [refused.text, accepted.text, c.post("/predict", json={"Pclass": 1}).text]
    log = server.log_text()  # complete: the server has stopped

    assert statuses == [401, 401, 403, 403, 200]
    assert (refused.status_code, accepted.status_code) == (409, 200)
    # The log really holds the traffic and the failure (otherwise its silence would prove nothing).
    for status in ("401", "403", "200", "409"):
        assert f'"POST /admin/reload HTTP/1.1" {status}' in log, status
    assert "not servable" in log
    secret_forms = {token, basic}
    assert [form for form in secret_forms if form in log] == []
    assert [form for form in secret_forms if any(form in answer for answer in answers)] == []
    written = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert written  # the prediction log and the fleet board are there
    assert [str(p) for p in written if token.encode() in p.read_bytes()] == []


# --- the serving image --------------------------------------------------------------------------------------


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in joined
    ]


def _option(words: list[str], *names: str) -> str | None:
    for i, word in enumerate(words):
        for name in names:
            if word == name and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


@pytest.mark.unit
def test_the_serving_image_runs_as_a_non_root_user() -> None:
    instructions = _instructions(DOCKERFILE.read_text())
    last_stage = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    stage = instructions[last_stage:]
    starts = [i for i, (op, _) in enumerate(stage) if op in ("CMD", "ENTRYPOINT")]
    assert starts, "the image has no CMD or ENTRYPOINT"
    users = [(i, args.strip()) for i, (op, args) in enumerate(stage) if op == "USER"]
    assert users, "no USER: the server would run as root"
    effective = users[-1][1]  # the image's user is the last USER of the stage
    before_start = [user for i, user in users if i < min(starts)]
    assert before_start, "USER must be set before CMD/ENTRYPOINT"
    assert before_start[-1] == effective
    user = effective.split(":")[0]
    assert user not in ("root", "0")

    # The user is created in the image with a non-zero uid (and a non-zero gid for its group).
    runs = [shlex.split(args.replace("&&", " && ")) for op, args in stage if op == "RUN"]
    commands = [cmd for run in runs for cmd in _split_commands(run)]
    useradd = [cmd for cmd in commands if cmd and cmd[0] == "useradd" and cmd[-1] == user]
    if user.isdigit():
        assert int(user) != 0
    else:
        assert len(useradd) == 1, f"user {user!r} is not created by useradd in the image"
        uid = _option(useradd[0], "--uid", "-u")
        assert uid is not None
        assert int(uid) != 0
        group = _option(useradd[0], "--gid", "-g")
        groupadd = [cmd for cmd in commands if cmd and cmd[0] == "groupadd" and cmd[-1] == group]
        if groupadd:
            gid = _option(groupadd[0], "--gid", "-g")
            assert gid is None or int(gid) != 0


def _split_commands(words: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", "||", ";"):
            commands.append([])
        else:
            commands[-1].append(word)
    return commands
