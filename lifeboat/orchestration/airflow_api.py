"""A small client of Airflow 3's REST API v2: log in, unpause, trigger and follow DAG runs.

Used by ``lifeboat up`` / ``lifeboat trigger`` (``make run``), the integration tests and the DAG benchmark.
Authentication: ``POST /auth/token`` with the user's name and password gives a JWT for ``Authorization:
Bearer``; a token that expires is renewed once on a 401.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

logger = logging.getLogger(__name__)

FINISHED = frozenset({"success", "failed"})
#: How often a GET is sent before a timeout or lost connection is an error, and the base pause between tries.
GET_ATTEMPTS = 4
RETRY_SECONDS = 2.0


class AirflowApiError(RuntimeError):
    """Airflow answered with an error (the message carries the status and Airflow's detail)."""


@dataclass(frozen=True)
class TaskState:
    """One task instance of a run as the API reports it."""

    task_id: str
    state: str | None
    try_number: int
    start_date: str | None
    end_date: str | None
    duration: float | None


class AirflowClient:
    """REST API v2 of one Airflow API server (``base_url`` like ``http://127.0.0.1:8080``)."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---

    def token(self) -> str:
        """A fresh access token for the user (``POST /auth/token``)."""
        response = self._http.post(
            "/auth/token", json={"username": self._username, "password": self._password}
        )
        if response.status_code not in (200, 201):
            raise AirflowApiError(f"login as {self._username!r} failed: {_describe(response)}")
        token = response.json().get("access_token")
        if not token:
            raise AirflowApiError(f"login as {self._username!r} returned no access_token")
        return str(token)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send an authenticated request; log in again once when the token was refused.

        A GET that times out or loses its connection is sent again (up to :data:`GET_ATTEMPTS` times): a busy
        api-server must not end a long wait for a run. Other methods are sent once.
        """
        extra_headers = dict(kwargs.pop("headers", None) or {})
        attempts = GET_ATTEMPTS if method.upper() == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._authenticated(method, path, extra_headers, **kwargs)
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise AirflowApiError(f"{method} {path}: Airflow did not answer ({exc!r})") from exc
                logger.warning("%s %s: %r; trying again (%d/%d)", method, path, exc, attempt, attempts)
                time.sleep(RETRY_SECONDS * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _authenticated(
        self, method: str, path: str, extra_headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        for attempt in (1, 2):
            if self._token is None:
                self._token = self.token()
            headers = {**extra_headers, "Authorization": f"Bearer {self._token}"}
            response = self._http.request(method, path, headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(f"{method} {path}: {_describe(response)}")
        return response.json()

    # --- API ---

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health`` (no login needed)."""
        response = self._http.get("/api/v2/monitor/health")
        if response.status_code != 200:
            raise AirflowApiError(f"health: {_describe(response)}")
        data: dict[str, Any] = response.json()
        return data

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's details, or None when Airflow does not know it (yet)."""
        response = self.request("GET", f"/api/v2/dags/{dag_id}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise AirflowApiError(f"GET dag {dag_id}: {_describe(response)}")
        data: dict[str, Any] = response.json()
        return data

    def import_errors(self) -> list[dict[str, Any]]:
        """The DAG files Airflow could not import, with their tracebacks."""
        data = self._json("GET", "/api/v2/importErrors")
        errors: list[dict[str, Any]] = data.get("import_errors", [])
        return errors

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0, poll: float = 2.0) -> dict[str, Any]:
        """Wait until the DAG processor has parsed ``dag_id``; fail early with the file's import error."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.dag(dag_id)
            if found is not None:
                return found
            errors = [e for e in self.import_errors() if dag_id.split("_")[0] in str(e.get("filename", ""))]
            if errors:
                first = errors[0]
                raise AirflowApiError(
                    f"DAG {dag_id} does not import: {first.get('filename')}: {first.get('stack_trace')}"
                )
            if time.monotonic() > deadline:
                raise AirflowApiError(f"DAG {dag_id} did not appear within {timeout:g} s")
            time.sleep(poll)

    def pool(self, name: str) -> dict[str, Any] | None:
        """``GET /api/v2/pools/{name}``: the pool, or None when it does not exist."""
        response = self.request("GET", f"/api/v2/pools/{name}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise AirflowApiError(f"GET pool {name}: {_describe(response)}")
        data: dict[str, Any] = response.json()
        return data

    def put_pool(self, name: str, slots: int, description: str) -> None:
        """Create the pool ``name``, or set its slots and description when it exists."""
        body = {"name": name, "slots": slots, "description": description, "include_deferred": False}
        if self.pool(name) is None:
            self._json("POST", "/api/v2/pools", json=body)
        else:
            self._json("PATCH", f"/api/v2/pools/{name}", json=body)

    def asset_id(self, name: str) -> int | None:
        """The id of the asset named ``name``, or None when Airflow does not know it."""
        data = self._json("GET", "/api/v2/assets", params={"name_pattern": name, "limit": 100})
        # name_pattern is a SQL LIKE pattern ("_" matches any character): keep the exact name only.
        found = [a for a in data.get("assets", []) if a.get("name") == name]
        return int(found[0]["id"]) if found else None

    def create_asset_event(self, asset_id: int, extra: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/assets/events``: record an event on the asset (DAGs scheduled on it start a run)."""
        data: dict[str, Any] = self._json(
            "POST", "/api/v2/assets/events", json={"asset_id": asset_id, "extra": dict(extra)}
        )
        return data

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause a DAG."""
        self._json("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, note: str | None = None) -> str:
        """Start a DAG run now with ``conf`` (the run's params); return its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if note:
            body["note"] = note
        data = self._json("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        return str(data["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One DAG run."""
        data: dict[str, Any] = self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return data

    def runs(self, dag_id: str, limit: int = 25) -> list[dict[str, Any]]:
        """The newest runs of a DAG, newest first."""
        data = self._json(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": limit, "order_by": "-run_after"}
        )
        runs: list[dict[str, Any]] = data.get("dag_runs", [])
        return runs

    def task_states(self, dag_id: str, run_id: str) -> list[TaskState]:
        """The task instances of a run."""
        data = self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return [
            TaskState(
                task_id=str(t["task_id"]),
                state=t.get("state"),
                try_number=int(t.get("try_number") or 0),
                start_date=t.get("start_date"),
                end_date=t.get("end_date"),
                duration=t.get("duration"),
            )
            for t in data.get("task_instances", [])
        ]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The value a task pushed (its return value by default), or None."""
        response = self.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise AirflowApiError(f"xcom {task_id}.{key}: {_describe(response)}")
        return response.json().get("value")

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The log of one try of a task, one line per entry (structured entries as JSON)."""
        response = self.request(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": True},
            headers={"Accept": "application/json"},
        )
        if response.status_code >= 400:
            raise AirflowApiError(f"log of {task_id}: {_describe(response)}")
        content = response.json().get("content")
        if isinstance(content, str):
            return content
        return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in content or [])

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 1800.0,
        poll: float = 3.0,
        on_change: Callable[[TaskState], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the run finishes (success or failed); call ``on_change`` when a task changes state."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str | None] = {}
        while True:
            run = self.run(dag_id, run_id)
            if on_change is not None:
                for task in self.task_states(dag_id, run_id):
                    if seen.get(task.task_id, "unseen") != task.state:
                        seen[task.task_id] = task.state
                        on_change(task)
            if run.get("state") in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise AirflowApiError(
                    f"run {run_id} of {dag_id} did not finish within {timeout:g} s (state {run.get('state')})"
                )
            time.sleep(poll)


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text[:500]
    return f"HTTP {response.status_code}: {detail}"
