"""The lifeboat pages of the Airflow UI: monitoring (drift and live performance reports) and the models.

:func:`create_ui_app` builds a small FastAPI application that the Airflow plugin (``plugins/lifeboat_ui.py``)
mounts in the Airflow 3 api-server (``fastapi_apps``) and shows in the UI's navigation (``external_views``,
rendered in an iframe). Its routes:

* ``GET /`` - a small index linking to the two pages;
* ``GET /monitoring`` - every report of :attr:`Settings.resolved_reports_dir` (from ``index.json``,
  :func:`lifeboat.monitoring.drift_index.read_index`), newest first, in two tables: live performance reports
  (verdict, live figure against the champion's holdout figure, labelled rows) and drift reports (verdict,
  share of drifted columns, where the current data came from, row counts); each name opens
  ``GET /monitoring/{name}``, the report's own HTML;
* ``GET /monitoring/{name}/summary.json`` - the report's JSON summary;
* ``GET /drift`` and ``GET /drift/{name}`` - the addresses of the former "Drift reports" page: permanent
  redirects (308) to the same view under ``/monitoring``, so old links keep working;
* ``GET /models`` - champion, previous champion and the recent versions of the registered model
  (:func:`lifeboat.registry.summary.model_summary`) with their gate decisions and reasons, linked to the
  MLflow UI when its URL is known (:func:`mlflow_ui_base`). An unreachable registry gives a 503 page saying
  so.

Security: every route depends on Airflow's own access check (``requires_access_view(AccessView.PLUGINS)``),
so the pages need the same login as the rest of the UI. Airflow authenticates a request by its
``Authorization: Bearer <JWT>`` header or, for the browser, by the ``_token`` cookie its login sets
(HTTP-only, ``SameSite=Lax``, path = the api-server's base path): the UI's iframe is same-origin, so the
browser sends the cookie and a logged-in user sees the pages, while an anonymous request gets 401 (403 for
an invalid token).
A report is served only when its name is listed in the index and its file lies inside the reports folder, so
no request can read any other file. It is served with ``Content-Security-Policy: sandbox allow-scripts``: its
scripts run in an opaque origin, so a planted report cannot reach Airflow's cookies, API or UI.

The pages are plain server-side HTML: no external CSS or JavaScript (they work offline), every value
escaped with :func:`html.escape`, and links relative to the page so they survive a base path or a proxy.
Airflow is imported only inside :func:`create_ui_app`: the rest of lifeboat (and the serving image) never
needs it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from lifeboat.orchestration.ui_html import dataset_query, error_block, escape, format_time, page, sort_key
from lifeboat.orchestration.ui_models import (
    DEFAULT_VERSIONS,
    MAX_VERSIONS,
    UnavailableError,
    registry_summary,
    render_models,
)
from lifeboat.settings import DATASET_NAME_PATTERN, Settings, get_settings

# lifeboat.monitoring.drift (pandas) and lifeboat.registry.store (scikit-learn, MLflow) are imported inside
# the functions that
# use them: the plugin module importing this one is loaded by every Airflow process, not only the api-server.

logger = logging.getLogger(__name__)

SettingsProvider = Callable[[], Settings]
#: ``?dataset=NAME`` on every page: which dataset the page shows (default: the settings' dataset).
DatasetQuery = Annotated[str | None, Query(pattern=DATASET_NAME_PATTERN)]


class UnknownDatasetPageError(LookupError):
    """A page was asked for a dataset that has no folder (answered with a 404 page)."""

    def __init__(self, dataset: str) -> None:
        super().__init__(dataset)
        self.dataset = dataset


_STATUS_LABELS = {
    "drift": "drift",
    "no_drift": "no drift",
    "not_enough_data": "not enough data",
    "ok": "ok",
    "degraded": "degraded",
}
_STATUS_CSS = {"drift": "bad", "no_drift": "good", "not_enough_data": "warn", "ok": "good", "degraded": "bad"}
#: The policy of every report page: its scripts run, but sandboxed in an opaque origin (see report_page).
REPORT_CSP = "sandbox allow-scripts"
#: The two kinds of report of the index; an entry without a kind is a drift report (written before kinds).
PERFORMANCE = "performance"
DRIFT = "drift"


def kind_of(entry: Mapping[str, Any]) -> str:
    """The kind of an index entry: ``performance`` or ``drift``."""
    return PERFORMANCE if entry.get("kind") == PERFORMANCE else DRIFT


# --- small helpers ---------------------------------------------------------------------------------------


# --- monitoring reports -----------------------------------------------------------------------------------


def monitoring_reports(settings: Settings) -> list[dict[str, Any]]:
    """Both kinds of report in the reports folder, newest first (raises :class:`UnavailableError`)."""
    from lifeboat.monitoring.drift_index import read_index
    from lifeboat.monitoring.drift_models import DriftError

    try:
        entries = read_index(settings.resolved_reports_dir)
    except DriftError as exc:
        raise UnavailableError(str(exc)) from exc
    valid = [e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
    return sorted(valid, key=sort_key, reverse=True)


def report_file(settings: Settings, name: str, kind: str) -> Path | None:
    """The ``kind`` ("html" or "json") file of the report ``name`` if the index lists it and it exists.

    None for a name the index does not list, a file name that is not a plain name inside the reports
    folder, or a missing file: a request can only ever reach a listed report's own files.
    """
    directory = settings.resolved_reports_dir.resolve()
    for entry in monitoring_reports(settings):
        if entry["name"] != name:
            continue
        file_name = entry.get(kind) or f"{name}.{kind}"
        if not isinstance(file_name, str) or Path(file_name).name != file_name or file_name.startswith("."):
            logger.warning("report index entry %r has a bad %s file name %r", name, kind, file_name)
            return None
        path = (directory / file_name).resolve()
        if not path.is_relative_to(directory) or not path.is_file():
            return None
        return path
    return None


def _verdict_badge(entry: Mapping[str, Any]) -> str:
    status = str(entry.get("status", ""))
    css = _STATUS_CSS.get(status, "neutral")
    return f'<span class="badge {css}">{escape(_STATUS_LABELS.get(status, status or "unknown"))}</span>'


def _share_cell(entry: Mapping[str, Any]) -> str:
    if entry.get("status") == "not_enough_data":
        return '<span class="muted">no test run</span>'
    share = entry.get("share_drifted")
    text = f"{share:.0%}" if isinstance(share, int | float) and not isinstance(share, bool) else "?"
    drifted = entry.get("drifted_columns") or []
    if drifted:
        text += f' <span class="muted">({escape(", ".join(str(c) for c in drifted))})</span>'
    return text


def _number(value: object, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _performance_cell(entry: Mapping[str, Any]) -> str:
    """``accuracy 0.5000 live / 0.8200 holdout (drop 0.3200)`` for the entry's metric."""
    metric = str(entry.get("metric") or "accuracy")
    live, holdout = (_mapping(entry.get(key)) for key in ("live", "holdout"))
    text = f"{escape(metric)} {_number(live.get(metric))} live / {_number(holdout.get(metric))} holdout"
    drop = entry.get("drop")
    if isinstance(drop, int | float) and not isinstance(drop, bool):
        text += f' <span class="muted">(drop {drop:.4f})</span>'
    return text


def _name_cell(entry: Mapping[str, Any], query: str) -> str:
    name = str(entry["name"])
    link = quote(name, safe="")
    return (
        f'<td><a href="monitoring/{link}{query}">{escape(name)}</a>'
        f' <a class="muted" href="monitoring/{link}/summary.json{query}">json</a></td>'
    )


def _report_table(
    entries: Sequence[Mapping[str, Any]],
    query: str,
    headers: Sequence[str],
    cells: Callable[[Mapping[str, Any]], str],
) -> str:
    """One table of reports: name, created time and verdict, then the kind's own ``cells`` (markup)."""
    rows = "".join(
        "<tr>" + _name_cell(entry, query) + f"<td>{escape(format_time(entry.get('created_at')))}</td>"
        f"<td>{_verdict_badge(entry)}</td>" + cells(entry) + "</tr>"
        for entry in entries
    )
    head = "".join(f"<th>{h}</th>" for h in ("report", "created", "verdict", *headers))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _performance_table(entries: Sequence[Mapping[str, Any]], query: str) -> str:
    if not entries:
        return (
            "<p>No live performance report yet. <code>lifeboat monitor</code> or the DAG's "
            "<code>monitor_performance</code> task writes one once served predictions have labels.</p>"
        )
    return _report_table(
        entries,
        query,
        ("live vs holdout", "model version", "labelled rows", "window"),
        lambda entry: (
            f"<td>{_performance_cell(entry)}</td>"
            f'<td class="num">{escape(entry.get("model_version", ""))}</td>'
            f'<td class="num">{escape(entry.get("labelled_rows", ""))}</td>'
            f"<td>{escape(entry.get('current_source', ''))}</td>"
        ),
    )


def _drift_table(entries: Sequence[Mapping[str, Any]], query: str) -> str:
    if not entries:
        return (
            "<p>No drift report yet. The retraining DAG's drift task (or <code>lifeboat drift</code>) "
            "writes one per run.</p>"
        )
    return _report_table(
        entries,
        query,
        ("drifted columns", "current data", "current rows", "reference rows"),
        lambda entry: (
            f"<td>{_share_cell(entry)}</td>"
            f"<td>{escape(entry.get('current_source', ''))}</td>"
            f'<td class="num">{escape(entry.get("current_rows", ""))}</td>'
            f'<td class="num">{escape(entry.get("reference_rows", ""))}</td>'
        ),
    )


def render_monitoring(entries: Sequence[Mapping[str, Any]], settings: Settings) -> str:
    """The "Monitoring" page: the live performance reports, then the drift reports, each newest first."""
    query = dataset_query(settings)
    performance = [e for e in entries if kind_of(e) == PERFORMANCE]
    drift = [e for e in entries if kind_of(e) == DRIFT]
    body = (
        "<h1>Monitoring</h1>"
        f'<p class="muted">{len(entries)} report(s) in <code>{escape(settings.resolved_reports_dir)}</code>, '
        "newest first.</p>"
        f'<h2 id="performance">Live performance ({len(performance)})</h2>'
        '<p class="muted">Served predictions joined with the labels sent back, against the champion\'s '
        "holdout figures.</p>"
        + _performance_table(performance, query)
        + f'<h2 id="drift">Drift ({len(drift)})</h2>'
        '<p class="muted">The current data against the champion\'s training data (Evidently).</p>'
        + _drift_table(drift, query)
    )
    return page("Monitoring", body, settings=settings)


# --- models -----------------------------------------------------------------------------------------------


def render_index(settings: Settings | None = None) -> str:
    """The app's small index page (about ``settings.dataset`` when given)."""
    query = dataset_query(settings)
    body = (
        "<h1>lifeboat</h1><ul>"
        f'<li><a href="monitoring{query}">Monitoring</a>: live performance and drift reports, newest first'
        "</li>"
        f'<li><a href="models{query}">Models</a>: champion, previous champion, recent versions and their '
        "gate decisions</li></ul>"
    )
    return page("lifeboat", body, settings=settings)


# --- the app ----------------------------------------------------------------------------------------------


def _moved(request: Request, target: str) -> str:
    """``target`` (relative to the request's path) with the request's query string: a proxy-safe Location."""
    query = request.url.query
    return f"{target}?{query}" if query else target


def _moved_report(request: Request, name: str, suffix: str) -> Response:
    """The 308 from a former ``/drift/{name}[suffix]`` address to ``/monitoring/{name}[suffix]``.

    A name that is no plain report name (``..``, a hidden file) gets the 404 the new address would give.
    """
    if not name or name.startswith("."):
        body = f"<h1>Report</h1><p>There is no report named <code>{escape(name)}</code>.</p>"
        return HTMLResponse(page("Report", body, root="../"), status_code=404)
    up = "../" * (1 + suffix.count("/"))
    return RedirectResponse(
        _moved(request, f"{up}monitoring/{quote(name, safe='')}{suffix}"), status_code=308
    )


def airflow_access_check() -> Callable[..., Any]:
    """Airflow's own access dependency for plugin pages (Airflow is imported here, not at module level)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    return requires_access_view(AccessView.PLUGINS)


def create_ui_app(settings_provider: SettingsProvider = get_settings) -> FastAPI:
    """The FastAPI app of the lifeboat UI pages, every route behind Airflow's access check.

    ``settings_provider`` is called on every request, so a changed environment (or a test's settings)
    applies without rebuilding the app. Building the app reads no file and opens no connection; it imports
    Airflow's security module. The access dependency is kept in ``app.state.access_check`` so that tests of
    the pages alone can replace it through ``app.dependency_overrides``.
    """
    access_check = airflow_access_check()
    app = FastAPI(
        title="lifeboat UI",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(access_check)],
    )
    app.state.access_check = access_check

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> HTMLResponse:
        logger.error("lifeboat UI page %s failed", request.url.path, exc_info=exc)
        body = "<h1>Error</h1>" + error_block(
            "This page failed unexpectedly.",
            f"{type(exc).__name__}: {exc}",
            "The api-server log has details.",
        )
        return HTMLResponse(page("Error", body), status_code=500)

    def dataset_settings(dataset: str | None) -> Settings:
        """The page's settings: the provider's, for ``?dataset=`` when given (404 for an unknown one)."""
        settings = settings_provider()
        if dataset is None or dataset == settings.dataset:
            return settings
        if dataset not in settings.known_datasets():
            raise UnknownDatasetPageError(dataset)
        return settings.for_dataset(dataset)

    @app.exception_handler(UnknownDatasetPageError)
    async def _unknown_dataset(request: Request, exc: UnknownDatasetPageError) -> HTMLResponse:
        known = ", ".join(settings_provider().known_datasets()) or "none"
        body = f"<h1>Unknown dataset</h1><p>There is no dataset named <code>{escape(exc.dataset)}</code> " + (
            f"(known: {escape(known)}).</p>"
        )
        return HTMLResponse(page("Unknown dataset", body), status_code=404)

    @app.get("/", response_class=HTMLResponse)
    def index(dataset: DatasetQuery = None) -> HTMLResponse:
        return HTMLResponse(render_index(dataset_settings(dataset)))

    @app.get("/monitoring", response_class=HTMLResponse)
    def monitoring(dataset: DatasetQuery = None) -> HTMLResponse:
        settings = dataset_settings(dataset)
        try:
            entries = monitoring_reports(settings)
        except UnavailableError as exc:
            body = "<h1>Monitoring</h1>" + error_block("The report index cannot be read.", str(exc))
            return HTMLResponse(page("Monitoring", body, settings=settings), status_code=503)
        return HTMLResponse(render_monitoring(entries, settings))

    @app.get("/monitoring/{name}", response_class=HTMLResponse)
    def report_page(name: str, dataset: DatasetQuery = None) -> Response:
        settings = dataset_settings(dataset)
        try:
            path = report_file(settings, name, "html")
        except UnavailableError as exc:
            body = "<h1>Report</h1>" + error_block("The report index cannot be read.", str(exc))
            return HTMLResponse(page("Report", body, root="../", settings=settings), status_code=503)
        if path is None:
            body = f"<h1>Report</h1><p>There is no report named <code>{escape(name)}</code>.</p>"
            return HTMLResponse(page("Report", body, root="../", settings=settings), status_code=404)
        # A report is a file of the shared state folder: whoever could write there must not get a script
        # into Airflow's origin. The sandbox runs the report's own scripts (Evidently draws with them) in an
        # opaque origin: no cookies, no Airflow API, no access to the UI around the iframe.
        return FileResponse(
            path, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": REPORT_CSP}
        )

    @app.get("/monitoring/{name}/summary.json")
    def report_summary(name: str, dataset: DatasetQuery = None) -> JSONResponse:
        try:
            path = report_file(dataset_settings(dataset), name, "json")
            if path is None:
                return JSONResponse({"detail": f"no report named {name!r}"}, status_code=404)
            return JSONResponse(json.loads(path.read_text(encoding="utf-8")))
        except UnavailableError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)
        except (OSError, ValueError) as exc:
            return JSONResponse({"detail": f"unreadable summary of {name!r}: {exc}"}, status_code=503)

    # The former "Drift reports" addresses (in alerts, MLflow notes and bookmarks) lead to the new page.
    @app.get("/drift")
    def drift_moved(request: Request) -> RedirectResponse:
        return RedirectResponse(_moved(request, "monitoring"), status_code=308)

    @app.get("/drift/{name}")
    def drift_report_moved(name: str, request: Request) -> Response:
        return _moved_report(request, name, "")

    @app.get("/drift/{name}/summary.json")
    def drift_summary_moved(name: str, request: Request) -> Response:
        return _moved_report(request, name, "/summary.json")

    @app.get("/models", response_class=HTMLResponse)
    def models(
        last: int = Query(DEFAULT_VERSIONS, ge=1, le=MAX_VERSIONS), dataset: DatasetQuery = None
    ) -> HTMLResponse:
        settings = dataset_settings(dataset)
        try:
            summary = registry_summary(settings, last_n=last)
        except UnavailableError as exc:
            logger.warning("Models page: %s", exc)
            body = f"<h1>Models: {escape(settings.model_name)}</h1>" + error_block(
                "The MLflow model registry is unavailable.",
                str(exc),
                "Check that the MLflow server is running and that <code>LIFEBOAT_MLFLOW_TRACKING_URI</code> "
                "(or <code>MLFLOW_TRACKING_URI</code>) points at it in the Airflow api-server's environment.",
            )
            return HTMLResponse(page("Models", body, settings=settings), status_code=503)
        return HTMLResponse(render_models(summary, settings))

    return app
