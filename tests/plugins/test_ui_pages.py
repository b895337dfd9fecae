"""The lifeboat pages of the Airflow UI: monitoring, models, Airflow's authentication, plugin discovery.

The page tests mount :func:`lifeboat.orchestration.ui.create_ui_app` under ``/lifeboat`` (as the api-server
does) and replace only Airflow's access dependency; the reports are real ``drift_report`` and
``performance_report`` output and the registry a real MLflow store on SQLite. The authentication test runs the
real ``airflow api-server`` (SimpleAuthManager, a temporary AIRFLOW_HOME and SQLite database) with the plugin
folder of this repository on a free loopback port.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lifeboat.data.simulate import DriftSpec, make_batch
from lifeboat.dataset.models import PerformanceRule
from lifeboat.monitoring.drift import drift_report
from lifeboat.monitoring.performance import performance_report
from lifeboat.orchestration.ui import create_ui_app
from lifeboat.orchestration.ui_models import (
    UnavailableError,
    check_registry_reachable,
    mlflow_ui_base,
    redact_uri,
)
from lifeboat.settings import Settings
from tests.conftest import REPO_ROOT
from tests.drift.drift_cases import BATCH_ROWS, START_ID
from tests.support.models import mlflow_store, register_sklearn_version, split_by_passenger_id

PLUGINS_DIR = REPO_ROOT / "plugins"
PREFIX = "/lifeboat"
BASE = f"http://testserver{PREFIX}/"
#: Longest wait for the api-server to answer its health check (its first start takes ~20 s on 2 busy cores).
SERVER_START_SECONDS = 120.0


# --- helpers ------------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """The links of a page and the cell texts of its table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self.rows: list[list[str]] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self._link: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.rows.append([])
            if self.tables:
                self.tables[-1].append(self.rows[-1])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self._link = dict(attrs).get("href")
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "a" and self._link is not None:
            self.links.setdefault("".join(self._text).strip(), self._link)
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._link is not None:
            self._text.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def ui_client(settings: Settings | Callable[[], Settings], **kwargs: Any) -> TestClient:
    """The UI app mounted under /lifeboat like the api-server does, with Airflow's access check replaced."""
    provider = settings if callable(settings) else (lambda: settings)
    ui = create_ui_app(provider)
    ui.dependency_overrides[ui.state.access_check] = lambda: None
    root = FastAPI()
    root.mount(PREFIX, ui)
    return TestClient(root, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released: refused connections, no timeout)."""
    return free_port()


# --- monitoring reports -------------------------------------------------------------------------------------

#: The drift reports of the module's folder, newest first: (name, hours after the base time, kind).
REPORTS = [("newest", 3, "few"), ("real-drift", 2, "real"), ("oldest", 1, "few")]
#: The performance reports, newest first: (name, hours after the base time, labelled rows).
PERFORMANCE_REPORTS = [("live-degraded", 4, 400), ("live-few", 1, 20)]
HOSTILE_SOURCE = '<script>alert("x")</script> & batch.csv'


@pytest.fixture(scope="module")
def train_frame(raw_train_csv: Path) -> pd.DataFrame:
    return pd.read_csv(raw_train_csv)


@pytest.fixture(scope="module")
def module_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The folders of this module: drift reports, the MLflow store, the Airflow home (created empty)."""
    return {name: tmp_path_factory.mktemp(f"ui-{name}") for name in ("reports", "registry", "airflow")}


@pytest.fixture(scope="module")
def reports_settings(module_dirs: dict[str, Path], train_frame: pd.DataFrame) -> Settings:
    """A reports folder with one real Evidently report (a drifted batch) and two 'not enough data' ones,
    written out of chronological order."""
    state = module_dirs["reports"]
    settings = Settings(state_dir=state, reports_dir=state / "reports")
    base = datetime(2025, 6, 1, tzinfo=UTC)
    drifted = make_batch(train_frame, BATCH_ROWS, DriftSpec.parse("Age+15"), seed=3, start_id=START_ID)
    drift_report(
        train_frame,
        drifted,
        settings.resolved_reports_dir,
        "real-drift",
        settings,
        current_source="data/titanic/incoming/batch-age.csv",
        created_at=base + timedelta(hours=2),
    )
    for name, hours, source in (("oldest", 1, "requests: last 10"), ("newest", 3, HOSTILE_SOURCE)):
        drift_report(
            train_frame,
            train_frame.head(10),
            settings.resolved_reports_dir,
            name,
            settings,
            current_source=source,
            created_at=base + timedelta(hours=hours),
        )
    for name, hours, rows in PERFORMANCE_REPORTS:
        performance_report(
            labelled_frame(rows),
            settings.resolved_reports_dir,
            name,
            dataset="titanic",
            holdout={"holdout_accuracy": 0.82, "holdout_roc_auc": 0.87},
            rule=PerformanceRule(),
            model_version="7",
            window=f"last {rows} labelled predictions",
            created_at=base + timedelta(hours=hours),
        )
    # A file in the folder that is not a listed report must never be served.
    (settings.resolved_reports_dir / "not-listed.html").write_text("<p>secret</p>")
    return settings


def labelled_frame(rows: int) -> pd.DataFrame:
    """Labelled predictions right 3 times out of 4 (accuracy 0.75), probabilities that rank perfectly."""
    target = [i % 2 for i in range(rows)]
    prediction = [t if i % 4 else 1 - t for i, t in enumerate(target)]
    probability = [0.9 if t else 0.1 for t in target]
    return pd.DataFrame(
        {"target": target, "prediction": prediction, "probability": probability, "model_version": "7"}
    )


@pytest.mark.unit
def test_every_route_refuses_anonymous_requests() -> None:
    """No override: Airflow's dependency sits on every route and refuses a request without credentials."""
    ui = create_ui_app(Settings)
    client = TestClient(ui)
    paths = (
        "/",
        "/monitoring",
        "/monitoring/real-drift",
        "/monitoring/real-drift/summary.json",
        "/drift",
        "/drift/real-drift",
        "/models",
    )
    for path in paths:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 401, path
        assert response.json() == {"detail": "Not authenticated"}
    assert client.get("/nope").status_code == 404


@pytest.mark.unit
def test_monitoring_lists_drift_reports_newest_first_with_verdicts(reports_settings: Settings) -> None:
    response = ui_client(reports_settings).get(f"{PREFIX}/monitoring")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)
    assert len(page.tables) == 2
    header, *rows = page.tables[1]
    assert header == [
        "report",
        "created",
        "verdict",
        "drifted columns",
        "current data",
        "current rows",
        "reference rows",
    ]
    assert [row[0].split()[0] for row in rows] == ["newest", "real-drift", "oldest"]
    by_name = {row[0].split()[0]: row for row in rows}
    real = by_name["real-drift"]
    assert real[1] == "2025-06-01 02:00:00 UTC"
    assert real[2] == "drift"
    summary = json.loads((reports_settings.resolved_reports_dir / "real-drift.json").read_text())
    assert "Age" in summary["drifted_columns"]  # Age moved by 15 years
    assert real[3] == f"{summary['share_drifted']:.0%} ({', '.join(summary['drifted_columns'])})"
    assert real[4:] == ["data/titanic/incoming/batch-age.csv", str(BATCH_ROWS), "891"]
    assert by_name["oldest"][2:] == ["not enough data", "no test run", "requests: last 10", "10", "891"]
    # The hostile source text is shown as text, never as markup.
    assert by_name["newest"][4] == HOSTILE_SOURCE
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; batch.csv" in response.text
    assert '<h2 id="drift">Drift (3)</h2>' in response.text


@pytest.mark.unit
def test_monitoring_lists_performance_reports_with_live_and_holdout_figures(
    reports_settings: Settings,
) -> None:
    response = ui_client(reports_settings).get(f"{PREFIX}/monitoring")
    assert response.status_code == 200
    header, *rows = parse(response.text).tables[0]
    assert header == [
        "report",
        "created",
        "verdict",
        "live vs holdout",
        "model version",
        "labelled rows",
        "window",
    ]
    assert rows == [
        [
            "live-degraded json",
            "2025-06-01 04:00:00 UTC",
            "degraded",  # 0.82 - 0.75 = 0.07 > max_drop 0.05
            "accuracy 0.7500 live / 0.8200 holdout (drop 0.0700)",
            "7",
            "400",
            "last 400 labelled predictions",
        ],
        [
            "live-few json",
            "2025-06-01 01:00:00 UTC",
            "not enough data",  # 20 < min_labelled_rows 200
            "accuracy 0.7500 live / 0.8200 holdout",
            "7",
            "20",
            "last 20 labelled predictions",
        ],
    ]
    assert '<h2 id="performance">Live performance (2)</h2>' in response.text
    assert "5 report(s)" in response.text


@pytest.mark.unit
def test_each_report_link_opens_its_html_and_summary(reports_settings: Settings) -> None:
    client = ui_client(reports_settings)
    page = parse(client.get(f"{PREFIX}/monitoring").text)
    report_dir = reports_settings.resolved_reports_dir
    names = [(name, kind) for name, _, kind in REPORTS] + [
        (name, "performance") for name, _, _ in PERFORMANCE_REPORTS
    ]
    for name, kind in names:
        url = urljoin(f"{BASE}monitoring", page.links[name])
        assert url == f"{BASE}monitoring/{name}?dataset=titanic"
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.content == (report_dir / f"{name}.html").read_bytes()
        assert response.headers["content-security-policy"] == "sandbox allow-scripts"
        if kind == "real":
            assert len(response.content) > 500_000  # the self-contained Evidently page
        if kind == "performance":
            assert 'id="lifeboat-live"' in response.text
    summary = client.get(f"{BASE}monitoring/real-drift/summary.json")
    assert summary.status_code == 200
    assert summary.json()["name"] == "real-drift"
    assert summary.json()["status"] == "drift"
    assert "Age" in summary.json()["drifted_columns"]
    live = client.get(
        urljoin(f"{BASE}monitoring", page.links["live-degraded"]).replace("?", "/summary.json?")
    )
    assert live.status_code == 200
    assert live.json()["status"] == "degraded"
    assert live.json()["live"]["labelled_rows"] == 400
    # The navigation links of the pages lead to the other pages.
    assert urljoin(f"{BASE}monitoring", page.links["Models"]) == f"{BASE}models?dataset=titanic"
    assert urljoin(f"{BASE}monitoring", page.links["lifeboat"]) == f"{BASE}?dataset=titanic"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("drift", "monitoring"),
        ("drift?dataset=adult", "monitoring?dataset=adult"),
        ("drift/real-drift", "monitoring/real-drift"),
        ("drift/real-drift?dataset=titanic", "monitoring/real-drift?dataset=titanic"),
        ("drift/real-drift/summary.json", "monitoring/real-drift/summary.json"),
        ("drift/a%20b", "monitoring/a%20b"),
    ],
)
def test_the_former_drift_addresses_redirect_to_monitoring(
    reports_settings: Settings, old: str, new: str
) -> None:
    response = ui_client(reports_settings).get(f"{BASE}{old}", follow_redirects=False)
    assert response.status_code == 308
    assert urljoin(f"{BASE}{old}", response.headers["location"]) == f"{BASE}{new}"


@pytest.mark.unit
def test_a_former_drift_address_is_followed_to_its_report(reports_settings: Settings) -> None:
    response = ui_client(reports_settings).get(f"{BASE}drift/real-drift")
    assert response.status_code == 200
    assert str(response.url) == f"{BASE}monitoring/real-drift"
    assert response.content == (reports_settings.resolved_reports_dir / "real-drift.html").read_bytes()


@pytest.mark.unit
def test_the_pages_switch_dataset_with_the_selector(reports_settings: Settings) -> None:
    client = ui_client(reports_settings)
    titanic = client.get(f"{PREFIX}/monitoring")
    assert titanic.status_code == 200
    selector = parse(titanic.text).links
    assert urljoin(f"{BASE}monitoring", selector["adult"]) == f"{BASE}monitoring?dataset=adult"
    assert '<a class="current" href="?dataset=titanic">titanic</a>' in titanic.text
    adult = client.get(f"{PREFIX}/monitoring?dataset=adult")
    assert adult.status_code == 200
    assert '<a class="current" href="?dataset=adult">adult</a>' in adult.text
    # Adult's reports live in its own state folder: none yet, while Titanic's list shows its own.
    assert "No drift report yet" in adult.text
    assert str(reports_settings.state_dir / "adult" / "reports") in adult.text
    assert "real-drift" in titanic.text
    assert "real-drift" not in adult.text
    assert client.get(f"{PREFIX}/monitoring/real-drift?dataset=adult").status_code == 404


@pytest.mark.unit
@pytest.mark.parametrize(("query", "status"), [("atlantis", 404), ("Bad%20Name", 422)])
def test_an_unknown_dataset_is_a_clear_404(reports_settings: Settings, query: str, status: int) -> None:
    response = ui_client(reports_settings).get(f"{PREFIX}/monitoring?dataset={query}")
    assert response.status_code == status
    if status == 404:
        assert "There is no dataset named <code>atlantis</code> (known: adult, titanic)." in response.text


@pytest.mark.unit
@pytest.mark.parametrize(
    "path",
    [
        "monitoring/unknown",
        "monitoring/not-listed",  # a file of the folder that the index does not list
        "monitoring/index",  # index.json is not a report
        "monitoring/.index.lock",
        "monitoring/%2E%2E",
        "monitoring/..%2Findex.json",
        "monitoring/..%2F..%2F..%2Fetc%2Fpasswd",
        "monitoring/%2Fetc%2Fpasswd",
        "monitoring/real-drift.html",
        "monitoring/unknown/summary.json",
        "monitoring/..%2F..%2Fetc%2Fpasswd/summary.json",
        "drift/%2E%2E",  # the former addresses: redirected, then 404 like the new ones
        "drift/.index.lock",
        "drift/..%2F..%2F..%2Fetc%2Fpasswd",
        "drift/not-listed",
    ],
)
def test_unknown_or_traversal_names_are_404(reports_settings: Settings, path: str) -> None:
    response = ui_client(reports_settings).get(f"{BASE}{path}")
    assert response.status_code == 404, response.text[:200]
    assert "secret" not in response.text
    assert "root:" not in response.text


@pytest.mark.unit
def test_index_entries_pointing_outside_the_folder_are_not_served(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (tmp_path / "outside.html").write_text("<p>outside</p>")
    entry = {"name": "evil", "status": "drift", "created_at": "2025-06-01T00:00:00+00:00"}
    index = {"version": 1, "reports": [{**entry, "html": "../outside.html", "json": "/etc/passwd"}]}
    (reports / "index.json").write_text(json.dumps(index))
    client = ui_client(Settings(state_dir=tmp_path, reports_dir=reports))
    assert client.get(f"{PREFIX}/monitoring").status_code == 200  # listed ...
    assert client.get(f"{PREFIX}/monitoring/evil").status_code == 404  # ... but never read outside the folder
    assert client.get(f"{PREFIX}/monitoring/evil/summary.json").status_code == 404


@pytest.mark.unit
def test_no_reports_yet_and_unreadable_index(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, reports_dir=tmp_path / "reports")
    client = ui_client(settings)
    empty = client.get(f"{PREFIX}/monitoring")
    assert empty.status_code == 200
    assert "No drift report yet" in empty.text
    assert "No live performance report yet" in empty.text
    assert not (tmp_path / "reports").exists()  # the page does not create the folder

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "index.json").write_text("{not json")
    broken = client.get(f"{PREFIX}/monitoring")
    assert broken.status_code == 503
    assert "The report index cannot be read." in broken.text
    assert "unreadable drift report index" in broken.text
    assert client.get(f"{PREFIX}/monitoring/anything").status_code == 503


@pytest.mark.unit
def test_an_unexpected_failure_is_a_page_without_traceback() -> None:
    def broken_settings() -> Settings:
        raise RuntimeError("settings exploded <b>")

    response = ui_client(broken_settings, raise_server_exceptions=False).get(f"{PREFIX}/monitoring")
    assert response.status_code == 500
    assert "RuntimeError: settings exploded &lt;b&gt;" in response.text
    assert "Traceback" not in response.text


@pytest.mark.unit
def test_index_page_links_to_both_pages(reports_settings: Settings) -> None:
    response = ui_client(reports_settings).get(BASE)
    assert response.status_code == 200
    links = parse(response.text).links
    assert urljoin(BASE, links["Monitoring"]) == f"{BASE}monitoring?dataset=titanic"
    assert urljoin(BASE, links["Models"]) == f"{BASE}models?dataset=titanic"


# --- models -------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_mlflow_ui_base() -> None:
    assert mlflow_ui_base(Settings(mlflow_tracking_uri="sqlite:///x.db")) is None
    assert mlflow_ui_base(Settings(mlflow_tracking_uri="http://mlflow:5000")) == "http://mlflow:5000/"
    assert (
        mlflow_ui_base(Settings(mlflow_tracking_uri="https://u:pw@mlflow.example.com/root/"))
        == "https://mlflow.example.com/root/"
    )
    explicit = Settings(mlflow_tracking_uri="http://mlflow:5000", mlflow_ui_url="https://ml.example.com")
    assert mlflow_ui_base(explicit) == "https://ml.example.com/"
    assert mlflow_ui_base(Settings(mlflow_tracking_uri="sqlite:///x.db", mlflow_ui_url="file:///x")) is None
    assert redact_uri("postgresql://user:hunter2@db:5432/mlflow") == "postgresql://user:***@db:5432/mlflow"
    assert redact_uri("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.unit
def test_unreachable_registry_is_a_503_page(tmp_path: Path) -> None:
    port = closed_port()
    settings = Settings(state_dir=tmp_path, mlflow_tracking_uri=f"http://u:hunter2@127.0.0.1:{port}")
    client = ui_client(settings)
    started = time.monotonic()
    response = client.get(f"{PREFIX}/models")
    assert time.monotonic() - started < 5  # a refused connection: no minutes of MLflow retries
    assert response.status_code == 503
    assert "The MLflow model registry is unavailable." in response.text
    assert f"http://u:***@127.0.0.1:{port} is unreachable" in response.text
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


class _StatusServer(ThreadingHTTPServer):
    """Answers every GET with one status code (a stand-in for a tracking server's /health) and logs paths."""

    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _StatusHandler)
        self.status = status
        self.paths: list[str] = []


class _StatusHandler(BaseHTTPRequestHandler):
    server: _StatusServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.unit
@pytest.mark.parametrize("status", [200, 401])
def test_a_tracking_server_that_answers_is_reachable(status: int) -> None:
    """Any HTTP answer of /health counts as up (also with credentials in the URI, or 401 from a proxy)."""
    server = _StatusServer(status)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check_registry_reachable(f"http://user:pw@127.0.0.1:{port}/mlflow/")
        assert server.paths == ["/mlflow/health"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    with pytest.raises(UnavailableError, match="is unreachable"):
        check_registry_reachable(f"http://user:pw@127.0.0.1:{port}/mlflow/")  # now closed


@pytest.mark.unit
def test_missing_sqlite_store_is_a_503_page_and_is_not_created(tmp_path: Path) -> None:
    store = tmp_path / "nothing-here" / "mlflow.db"
    settings = Settings(state_dir=tmp_path, mlflow_tracking_uri=f"sqlite:///{store}")
    response = ui_client(settings).get(f"{PREFIX}/models")
    assert response.status_code == 503
    assert f"there is no MLflow store at {store}" in response.text
    assert not store.exists()


MODEL = "ui-models"


def registry_settings_of(module_dirs: dict[str, Path]) -> Settings:
    state = module_dirs["registry"]
    return Settings(
        state_dir=state,
        mlflow_tracking_uri=f"sqlite:///{state / 'mlflow.db'}",
        experiment_name="ui-tests",
        model_name=MODEL,
    )


@pytest.fixture(scope="module")
def registry_settings(
    module_dirs: dict[str, Path], raw_train_csv: Path, airflow_api_boot: AirflowBoot
) -> Iterator[tuple[Settings, dict[str, str]]]:
    """A SQLite MLflow store with three gated versions: v1 promoted, v2 rejected (bad), v3 promoted over v1.

    Returns the settings and the run id of each version. (The Airflow api-server of the authentication test
    boots in the background meanwhile: each takes ~15-20 s.)
    """
    from mlflow import MlflowClient

    from lifeboat.registry.promotion import promote_if_better

    settings = registry_settings_of(module_dirs)
    train, holdout = split_by_passenger_id(pd.read_csv(raw_train_csv))
    # v3 is as good as v1: let it pass so that v1 becomes the previous champion.
    lenient = settings.model_copy(update={"gate_min_improvement": -1.0})
    with mlflow_store(settings):
        for noise, seed, gate_settings in ((0.0, 0, settings), (0.9, 0, settings), (0.0, 1, lenient)):
            version = register_sklearn_version(MODEL, train, noise=noise, seed=seed, parity_rows=holdout)
            promote_if_better(MODEL, version, holdout, gate_settings)
        runs = {v.version: v.run_id for v in MlflowClient().search_model_versions(f"name = '{MODEL}'")}
        yield settings, {str(k): str(v) for k, v in runs.items()}


@pytest.mark.integration
def test_models_page_shows_champions_versions_and_gate_decisions(
    registry_settings: tuple[Settings, dict[str, str]],
) -> None:
    settings, runs = registry_settings
    response = ui_client(settings).get(f"{PREFIX}/models")
    assert response.status_code == 200, response.text
    text = response.text
    assert "Champion: version 3" in text
    assert "Previous champion: version 1" in text
    page = parse(text)
    rows = [row for row in page.rows if row and row[0].isdigit()]
    assert [row[0] for row in rows] == ["3", "2", "1"]
    v3, v2, v1 = rows
    assert v3[1] == "challenger champion"  # the newest registered version keeps the challenger alias
    assert v2[1] == ""
    assert v1[1] == "previous_champion"
    assert v3[3] == runs["3"]
    assert "roc_auc" in v1[4]
    assert v1[5].startswith("promote vs no champion")
    assert v3[5].startswith("promote vs champion v1")
    assert v2[5].startswith("reject vs champion v1")
    assert "< floor 0.8000" in v2[5]  # the reason, as the gate recorded it
    assert "&lt; floor 0.8000" in text  # escaped in the markup
    # SQLite store and no UI URL: nothing links to MLflow, and the page says how to get links.
    assert "#/models/" not in text
    assert "LIFEBOAT_MLFLOW_UI_URL" in text


@pytest.mark.integration
def test_models_page_links_to_the_mlflow_ui(registry_settings: tuple[Settings, dict[str, str]]) -> None:
    settings, runs = registry_settings
    linked = settings.model_copy(update={"mlflow_ui_url": "http://mlflow.example:5000"})
    page = parse(ui_client(linked).get(f"{PREFIX}/models?last=2").text)
    assert page.links["3"] == f"http://mlflow.example:5000/#/models/{MODEL}/versions/3"
    assert page.links[runs["3"]] == f"http://mlflow.example:5000/#/runs/{runs['3']}"
    assert page.links["open in MLflow"] == f"http://mlflow.example:5000/#/models/{MODEL}"
    assert [row[0] for row in page.rows if row and row[0].isdigit()] == ["3", "2"]  # ?last=2


@pytest.mark.integration
def test_models_page_for_a_model_not_registered_yet(
    registry_settings: tuple[Settings, dict[str, str]],
) -> None:
    settings, _ = registry_settings
    other = settings.model_copy(update={"model_name": "never-registered"})
    response = ui_client(other).get(f"{PREFIX}/models")
    assert response.status_code == 200
    assert "No registered model named <code>never-registered</code>" in response.text


# --- inside Airflow -----------------------------------------------------------------------------------------


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow process of these tests: its own home, this repository's plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LIFEBOAT_", "MLFLOW_"))}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            **extra,
        }
    )
    return env


@pytest.mark.integration
def test_airflow_plugins_command_lists_the_plugin(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "plugins", "-o", "json"],
        env=airflow_env(tmp_path, LIFEBOAT_STATE_DIR=str(tmp_path / "state")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    plugin = plugins["lifeboat"]
    assert plugin["source"] == "$PLUGINS_FOLDER/lifeboat_ui.py"
    assert plugin["fastapi_apps"] == [
        {"app": "fastapi.applications.FastAPI", "url_prefix": "/lifeboat", "name": "lifeboat"}
    ]
    views = {v["name"]: v for v in plugin["external_views"]}
    assert set(views) == {"Monitoring", "Models"}
    assert views["Monitoring"]["href"] == "lifeboat/monitoring"  # relative: resolved against [api] base_url
    assert views["Models"]["href"] == "lifeboat/models"
    assert all(v["url_route"] and v["destination"] == "nav" for v in views.values())  # shown in an iframe
    assert not (tmp_path / "state").exists()  # loading the plugin touched no lifeboat state


@dataclass
class AirflowBoot:
    """An ``airflow db migrate && airflow api-server`` started in the background."""

    process: subprocess.Popen[bytes]
    base_url: str
    passwords: dict[str, str]
    log_path: Path

    def wait_until_healthy(self) -> str:
        """Block until the api-server answers its health check; return its base URL."""
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"api-server exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return self.base_url
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api-server did not start in {SERVER_START_SECONDS} s:\n{self._log_tail()}")
            time.sleep(0.5)

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Stop the process group (the api-server and its worker)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def airflow_api_boot(module_dirs: dict[str, Path]) -> Iterator[AirflowBoot]:
    """Start migrating a fresh SQLite metadata DB and then ``airflow api-server`` on a free loopback port.

    lifeboat's settings in the server point at this module's reports and MLflow store. Does not wait.
    """
    home = module_dirs["airflow"]
    passwords = {"admin": secrets.token_urlsafe(12), "viewer": secrets.token_urlsafe(12)}
    (home / "passwords.json").write_text(json.dumps(passwords))
    env = airflow_env(
        home,
        LIFEBOAT_STATE_DIR=str(home / "state"),
        LIFEBOAT_REPORTS_DIR=str(module_dirs["reports"] / "reports"),
        LIFEBOAT_MLFLOW_TRACKING_URI=registry_settings_of(module_dirs).tracking_uri,
        LIFEBOAT_MODEL_NAME=MODEL,
    )
    port = free_port()
    airflow = shlex.quote(str(Path(sys.executable).parent / "airflow"))
    script = f"{airflow} db migrate && exec {airflow} api-server --host 127.0.0.1 --port {port} --workers 1"
    log_path = home / "api-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["/bin/sh", "-c", script],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the server and its worker
        )
    boot = AirflowBoot(process, f"http://127.0.0.1:{port}", passwords, log_path)
    try:
        yield boot
    finally:
        boot.stop()


@pytest.fixture(scope="module")
def api_server(
    airflow_api_boot: AirflowBoot,
    reports_settings: Settings,
    registry_settings: tuple[Settings, dict[str, str]],
) -> tuple[str, dict[str, str]]:
    """The running api-server (base URL, users' passwords), once the reports and the store are ready."""
    return airflow_api_boot.wait_until_healthy(), airflow_api_boot.passwords


@pytest.mark.integration
def test_pages_inside_airflow_need_an_airflow_login(
    api_server: tuple[str, dict[str, str]], module_dirs: dict[str, Path]
) -> None:
    base, passwords = api_server
    pages = ["/lifeboat/", "/lifeboat/monitoring", "/lifeboat/monitoring/real-drift", "/lifeboat/models"]
    with httpx.Client(base_url=base, timeout=60) as client:
        for path in pages:
            anonymous = client.get(path)
            assert anonymous.status_code == 401, path
            forged = client.get(path, headers={"Authorization": "Bearer not-a-jwt"})
            assert forged.status_code == 403, path
        wrong = client.post("/auth/token", json={"username": "viewer", "password": "wrong"})
        assert wrong.status_code == 401

        login = client.post("/auth/token", json={"username": "viewer", "password": passwords["viewer"]})
        assert login.status_code == 201, login.text
        token = login.json()["access_token"]

        # An API client: the JWT in the Authorization header.
        bearer = {"Authorization": f"Bearer {token}"}
        listing = client.get("/lifeboat/monitoring", headers=bearer)
        assert listing.status_code == 200
        tables = parse(listing.text).tables
        assert [r[0].split()[0] for r in tables[0][1:]] == ["live-degraded", "live-few"]
        assert [r[0].split()[0] for r in tables[1][1:]] == ["newest", "real-drift", "oldest"]

        # The browser: the UI's iframe sends the HTTP-only `_token` cookie set at login, no header.
        client.cookies.set("_token", token)
        report = client.get("/lifeboat/monitoring/real-drift")
        assert report.status_code == 200
        assert report.headers["content-type"] == "text/html; charset=utf-8"
        assert len(report.content) > 500_000
        models = client.get("/lifeboat/models")
        assert models.status_code == 200, models.text[-2000:]
        assert "Champion: version 3" in models.text

        # The UI builds its navigation from the plugins endpoint: both pages are there, shown in an iframe.
        plugins = client.get("/api/v2/plugins").json()["plugins"]
        views = {v["name"]: v for p in plugins if p["name"] == "lifeboat" for v in p["external_views"]}
        assert {name: v["href"] for name, v in views.items()} == {
            "Monitoring": "lifeboat/monitoring",
            "Models": "lifeboat/models",
        }
    # Loading the plugin and serving the pages wrote nothing into lifeboat's state folder of the server.
    assert not (module_dirs["airflow"] / "state").exists()
