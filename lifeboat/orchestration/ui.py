"""The lifeboat pages of the Airflow UI: the drift reports and the model registry.

:func:`create_ui_app` builds a small FastAPI application that the Airflow plugin (``plugins/lifeboat_ui.py``)
mounts in the Airflow 3 api-server (``fastapi_apps``) and shows in the UI's navigation (``external_views``,
rendered in an iframe). Its routes:

* ``GET /`` - a small index linking to the two pages;
* ``GET /drift`` - every drift report of :attr:`Settings.resolved_reports_dir`, newest first (from
  ``index.json``, :func:`lifeboat.monitoring.drift_index.read_index`): created time, verdict, share of drifted
  columns, where
  the current data came from, row counts; each name opens ``GET /drift/{name}``, the report's own HTML;
* ``GET /drift/{name}/summary.json`` - the report's JSON summary;
* ``GET /models`` - champion, previous champion and the recent versions of the registered model
  (:func:`lifeboat.registry.store.model_summary`) with their gate decisions and reasons, linked to the MLflow
  UI
  when its URL is known (:func:`mlflow_ui_base`). An unreachable registry gives a 503 page saying so.

Security: every route depends on Airflow's own access check (``requires_access_view(AccessView.PLUGINS)``),
so the pages need the same login as the rest of the UI. Airflow authenticates a request by its
``Authorization: Bearer <JWT>`` header or, for the browser, by the ``_token`` cookie its login sets
(HTTP-only, ``SameSite=Lax``, path = the api-server's base path): the UI's iframe is same-origin, so the
browser sends the cookie and a logged-in user sees the pages, while an anonymous request gets 401 (403 for
an invalid token).
A report is served only when its name is listed in the index and its file lies inside the reports folder, so
no request can read any other file.

The pages are plain server-side HTML: no external CSS or JavaScript (they work offline), every value
escaped with :func:`html.escape`, and links relative to the page so they survive a base path or a proxy.
Airflow is imported only inside :func:`create_ui_app`: the rest of lifeboat (and the serving image) never
needs it.
"""

from __future__ import annotations

import html
import json
import logging
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from lifeboat.settings import Settings, get_settings

# lifeboat.monitoring.drift (pandas) and lifeboat.registry.store (scikit-learn, MLflow) are imported inside
# the functions that
# use them: the plugin module importing this one is loaded by every Airflow process, not only the api-server.

logger = logging.getLogger(__name__)

SettingsProvider = Callable[[], Settings]

#: How long the Models page waits for the MLflow tracking server's health check before saying it is down.
MLFLOW_PROBE_TIMEOUT_SECONDS = 3.0
#: How many versions the Models page lists by default, and at most (``?last=N``).
DEFAULT_VERSIONS = 10
MAX_VERSIONS = 100
#: The MLflow UI link for a model version and for a run (MLflow 3 hash routes).
_MLFLOW_VERSION_ROUTE = "#/models/{name}/versions/{version}"
_MLFLOW_MODEL_ROUTE = "#/models/{name}"
_MLFLOW_RUN_ROUTE = "#/runs/{run_id}"

#: Metrics shown first, in this order (the gate's primary and guard metrics); any others follow by name.
_METRIC_ORDER = ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "brier", "log_loss")

_STATUS_LABELS = {"drift": "drift", "no_drift": "no drift", "not_enough_data": "not enough data"}

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#1f2328;
line-height:1.45;font-size:15px}
h1{font-size:1.4rem;margin:0 0 .75rem} h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
nav{margin-bottom:1rem} nav a{margin-right:1rem}
a{color:#0b5cad} code{font-size:.9em;background:#f3f4f6;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.5rem 0} th,td{border-bottom:1px solid #d8dee4;
padding:.35rem .5rem;text-align:left;vertical-align:top} th{background:#f6f8fa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:0 .45em;border-radius:.6em;font-size:.85em;font-weight:600;
white-space:nowrap}
.bad{background:#ffebe9;color:#a40e26} .good{background:#dafbe1;color:#116329}
.neutral{background:#eaeef2;color:#424a53} .warn{background:#fff8c5;color:#7d4e00}
.muted{color:#59636e} .error{border:1px solid #ff8182;background:#ffebe9;padding:.75rem 1rem;
border-radius:6px;max-width:60rem} .error pre{white-space:pre-wrap;margin:.5rem 0 0}
.cards{display:flex;flex-wrap:wrap;gap:1rem} .card{border:1px solid #d8dee4;border-radius:6px;
padding:.75rem 1rem;min-width:18rem;flex:1 1 18rem;max-width:36rem} .card h2{margin-top:0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:0} dt{color:#59636e}
dd{margin:0} ul.reasons{margin:0;padding-left:1.1rem}
"""


class UnavailableError(RuntimeError):
    """A page's data source (the reports index or the MLflow registry) cannot be read right now."""


# --- small helpers ---------------------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, root: str = "") -> str:
    """A complete HTML page; ``root`` is the relative path from the page to the app root ("" or "../")."""
    nav = (
        f'<nav><a href="{root}drift">Drift reports</a><a href="{root}models">Models</a>'
        f'<a href="{root or "./"}">lifeboat</a></nav>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)} - lifeboat</title><style>{_STYLE}</style></head>\n"
        f"<body>{nav}\n{body}\n</body></html>\n"
    )


def _error_block(heading: str, detail: str, hint: str = "") -> str:
    """An error box: ``heading`` and ``detail`` are escaped, ``hint`` is markup written in this module."""
    hint_html = f"<p>{hint}</p>" if hint else ""
    return f'<div class="error"><strong>{_esc(heading)}</strong><pre>{_esc(detail)}</pre>{hint_html}</div>'


def _format_time(raw: object) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS UTC`` (the raw text when it does not parse)."""
    if not raw:
        return ""
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        return str(raw)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo is not None else "")


def _sort_key(entry: Mapping[str, Any]) -> float:
    try:
        moment = datetime.fromisoformat(str(entry.get("created_at")))
    except ValueError:
        return -math.inf
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _number(value: object, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def redact_uri(uri: str) -> str:
    """``uri`` without the password of its user-info part (safe to show on a page or in a log)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def mlflow_ui_base(settings: Settings) -> str | None:
    """The MLflow UI base URL for links: ``mlflow_ui_url``, else an http(s) tracking URI, else None.

    Credentials in the URL are dropped (the link is shown to every user of the page).
    """
    candidate = settings.mlflow_ui_url or settings.tracking_uri
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/", "", ""))


# --- drift reports ----------------------------------------------------------------------------------------


def drift_reports(settings: Settings) -> list[dict[str, Any]]:
    """The reports of the settings' reports folder, newest first (raises :class:`UnavailableError`)."""
    from lifeboat.monitoring.drift_index import read_index
    from lifeboat.monitoring.drift_models import DriftError

    try:
        entries = read_index(settings.resolved_reports_dir)
    except DriftError as exc:
        raise UnavailableError(str(exc)) from exc
    valid = [e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
    return sorted(valid, key=_sort_key, reverse=True)


def report_file(settings: Settings, name: str, kind: str) -> Path | None:
    """The ``kind`` ("html" or "json") file of the report ``name`` if the index lists it and it exists.

    None for a name the index does not list, a file name that is not a plain name inside the reports
    folder, or a missing file: a request can only ever reach a listed report's own files.
    """
    directory = settings.resolved_reports_dir.resolve()
    for entry in drift_reports(settings):
        if entry["name"] != name:
            continue
        file_name = entry.get(kind) or f"{name}.{kind}"
        if not isinstance(file_name, str) or Path(file_name).name != file_name or file_name.startswith("."):
            logger.warning("drift index entry %r has a bad %s file name %r", name, kind, file_name)
            return None
        path = (directory / file_name).resolve()
        if not path.is_relative_to(directory) or not path.is_file():
            return None
        return path
    return None


def _verdict_badge(entry: Mapping[str, Any]) -> str:
    status = str(entry.get("status", ""))
    css = {"drift": "bad", "no_drift": "good", "not_enough_data": "warn"}.get(status, "neutral")
    return f'<span class="badge {css}">{_esc(_STATUS_LABELS.get(status, status or "unknown"))}</span>'


def _share_cell(entry: Mapping[str, Any]) -> str:
    if entry.get("status") == "not_enough_data":
        return '<span class="muted">no test run</span>'
    share = entry.get("share_drifted")
    text = f"{share:.0%}" if isinstance(share, int | float) and not isinstance(share, bool) else "?"
    drifted = entry.get("drifted_columns") or []
    if drifted:
        text += f' <span class="muted">({_esc(", ".join(str(c) for c in drifted))})</span>'
    return text


def render_drift_list(entries: Sequence[Mapping[str, Any]], settings: Settings) -> str:
    """The "Drift reports" page: one row per report, newest first, each name linking to its HTML."""
    directory = settings.resolved_reports_dir
    if not entries:
        body = (
            "<h1>Drift reports</h1>"
            f"<p>No drift report yet in <code>{_esc(directory)}</code>. The retraining DAG's drift task "
            "(or <code>lifeboat drift</code>) writes one per run.</p>"
        )
        return _page("Drift reports", body)
    rows = []
    for entry in entries:
        name = str(entry["name"])
        link = quote(name, safe="")
        rows.append(
            "<tr>"
            f'<td><a href="drift/{link}">{_esc(name)}</a>'
            f' <a class="muted" href="drift/{link}/summary.json">json</a></td>'
            f"<td>{_esc(_format_time(entry.get('created_at')))}</td>"
            f"<td>{_verdict_badge(entry)}</td>"
            f"<td>{_share_cell(entry)}</td>"
            f"<td>{_esc(entry.get('current_source', ''))}</td>"
            f'<td class="num">{_esc(entry.get("current_rows", ""))}</td>'
            f'<td class="num">{_esc(entry.get("reference_rows", ""))}</td>'
            "</tr>"
        )
    body = (
        "<h1>Drift reports</h1>"
        f'<p class="muted">{len(entries)} report(s) in <code>{_esc(directory)}</code>, newest first. '
        "A report compares the current data with the champion's training data (Evidently).</p>"
        "<table><thead><tr><th>report</th><th>created</th><th>verdict</th><th>drifted columns</th>"
        "<th>current data</th><th>current rows</th><th>reference rows</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    return _page("Drift reports", body)


# --- models -----------------------------------------------------------------------------------------------


def check_registry_reachable(tracking_uri: str) -> None:
    """Fail fast (:class:`UnavailableError`) when the store cannot answer, instead of MLflow's long retries.

    An http(s) tracking server must answer its ``/health`` route within a few seconds (any HTTP answer
    counts: the server is up); a SQLite store must exist (opening a missing one would create an empty store).
    """
    parts = urlsplit(tracking_uri)
    if parts.scheme in ("http", "https"):
        # Only reachability matters here: user-info in the URI would be taken for the host name by urllib.
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/health", "", ""))
        try:
            with urllib.request.urlopen(url, timeout=MLFLOW_PROBE_TIMEOUT_SECONDS):
                pass
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UnavailableError(
                f"the MLflow tracking server {redact_uri(tracking_uri)} is unreachable: {reason}"
            ) from exc
    elif tracking_uri.startswith("sqlite:///"):
        path = Path(unquote(tracking_uri[len("sqlite:///") :]).split("?", 1)[0])
        if not path.is_file():
            raise UnavailableError(
                f"there is no MLflow store at {path} (nothing has been trained with this state folder yet?)"
            )


def registry_summary(settings: Settings, last_n: int = DEFAULT_VERSIONS) -> dict[str, Any]:
    """:func:`lifeboat.registry.store.model_summary` of the configured model, read-only.

    Points MLflow at the settings' store (no experiment is created) and raises :class:`UnavailableError`
    with the reason when the store cannot be read.
    """
    from lifeboat.registry.store import database_uri

    uri = database_uri(settings.tracking_uri)
    check_registry_reachable(uri)

    import mlflow
    from mlflow.exceptions import MlflowException

    from lifeboat.registry.store import RegistryError, model_summary

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        return model_summary(settings.model_name, last_n=last_n)
    except (RegistryError, MlflowException, OSError) as exc:
        raise UnavailableError(f"cannot read the MLflow registry at {redact_uri(uri)}: {exc}") from exc


def _version_link(ui: str | None, model_name: str, version: str) -> str:
    if ui is None:
        return _esc(version)
    url = ui + _MLFLOW_VERSION_ROUTE.format(name=quote(model_name, safe=""), version=quote(version, safe=""))
    return f'<a href="{_esc(url)}" target="_blank" rel="noopener noreferrer">{_esc(version)}</a>'


def _run_link(ui: str | None, run_id: object) -> str:
    if not run_id:
        return ""
    if ui is None:
        return f"<code>{_esc(run_id)}</code>"
    url = ui + _MLFLOW_RUN_ROUTE.format(run_id=quote(str(run_id), safe=""))
    return f'<a href="{_esc(url)}" target="_blank" rel="noopener noreferrer"><code>{_esc(run_id)}</code></a>'


def _decision_badge(decision: object) -> str:
    if not decision:
        return '<span class="badge neutral">not evaluated</span>'
    css = {"promote": "good", "reject": "bad"}.get(str(decision), "neutral")
    return f'<span class="badge {css}">{_esc(decision)}</span>'


def _list_html(items: Iterable[object]) -> str:
    values = [str(i) for i in items]
    if not values:
        return ""
    return '<ul class="reasons">' + "".join(f"<li>{_esc(v)}</li>" for v in values) + "</ul>"


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    if not metrics:
        return '<span class="muted">none recorded</span>'
    known = [k for k in _METRIC_ORDER if k in metrics]
    names = known + sorted(k for k in metrics if k not in _METRIC_ORDER)
    return "<br>".join(f"{_esc(k)} <strong>{_esc(_number(metrics[k]))}</strong>" for k in names)


def _gate_html(version: Mapping[str, Any]) -> str:
    parts = [_decision_badge(version.get("gate_decision"))]
    compared = version.get("gate_compared_with")
    if compared:
        against = "no champion" if compared == "none" else f"champion v{compared}"
        parts.append(f'<span class="muted">vs {_esc(against)}</span>')
    reasons = _list_html(version.get("gate_reasons") or [])
    notes = _list_html(version.get("gate_notes") or [])
    if reasons:
        parts.append(reasons)
    if notes:
        parts.append(f'<div class="muted">notes:</div>{notes}')
    return " ".join(parts)


def _aliases_html(aliases: Iterable[object]) -> str:
    from lifeboat.registry.store import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION

    css = {CHAMPION: "good", PREVIOUS_CHAMPION: "neutral", CHALLENGER: "warn"}
    return " ".join(f'<span class="badge {css.get(str(a), "neutral")}">{_esc(a)}</span>' for a in aliases)


def _card(title: str, version: Mapping[str, Any] | None, model_name: str, ui: str | None) -> str:
    if version is None:
        return f'<div class="card"><h2>{_esc(title)}</h2><p class="muted">none</p></div>'
    rollback = version.get("rollback") or {}
    extra = ""
    if version.get("promoted_at"):
        extra += f"<dt>promoted</dt><dd>{_esc(_format_time(version['promoted_at']))}</dd>"
    if version.get("parity_max_abs_diff") is not None:
        parity = version["parity_max_abs_diff"]
        shown = f"{parity:.2g}" if isinstance(parity, float) else str(parity)
        extra += f"<dt>ONNX parity (max abs diff)</dt><dd>{_esc(shown)}</dd>"
    if rollback:
        extra += "<dt>rollback</dt><dd>" + _esc(", ".join(f"{k}: {v}" for k, v in sorted(rollback.items())))
        extra += "</dd>"
    link = _version_link(ui, model_name, str(version["version"]))
    return (
        f'<div class="card"><h2>{_esc(title)}: version {link}</h2><dl>'
        f"<dt>created</dt><dd>{_esc(_format_time(version.get('created_at')))}</dd>"
        f"<dt>run</dt><dd>{_run_link(ui, version.get('run_id'))}</dd>"
        f"<dt>holdout metrics</dt><dd>{_metrics_html(version.get('metrics') or {})}</dd>"
        f"<dt>gate</dt><dd>{_gate_html(version)}</dd>{extra}"
        "</dl></div>"
    )


def render_models(summary: Mapping[str, Any], settings: Settings) -> str:
    """The "Models" page: champion and previous champion cards, then the recent versions table."""
    from lifeboat.registry.store import CHAMPION, PREVIOUS_CHAMPION, database_uri

    model_name = str(summary.get("model_name", settings.model_name))
    ui = mlflow_ui_base(settings)
    store = f"<code>{_esc(redact_uri(database_uri(settings.tracking_uri)))}</code>"
    if not summary.get("exists"):
        body = (
            f"<h1>Models: {_esc(model_name)}</h1>"
            f"<p>No registered model named <code>{_esc(model_name)}</code> in the MLflow registry {store} "
            "yet: the first retraining run that passes the gate registers and promotes one.</p>"
        )
        return _page("Models", body)
    if ui is not None:
        model_url = ui + _MLFLOW_MODEL_ROUTE.format(name=quote(model_name, safe=""))
        mlflow_line = (
            f'<a href="{_esc(model_url)}" target="_blank" rel="noopener noreferrer">open in MLflow</a> '
            f'<span class="muted">(MLflow UI <code>{_esc(ui)}</code>; links open in a new tab)</span>'
        )
    else:
        mlflow_line = (
            '<span class="muted">No MLflow UI URL is known (set <code>LIFEBOAT_MLFLOW_UI_URL</code>), '
            "so versions and runs are not linked.</span>"
        )
    rows = []
    for version in summary.get("versions") or []:
        rows.append(
            "<tr>"
            f'<td class="num">{_version_link(ui, model_name, str(version["version"]))}</td>'
            f"<td>{_aliases_html(version.get('aliases') or [])}</td>"
            f"<td>{_esc(_format_time(version.get('created_at')))}</td>"
            f"<td>{_run_link(ui, version.get('run_id'))}</td>"
            f"<td>{_metrics_html(version.get('metrics') or {})}</td>"
            f"<td>{_gate_html(version)}</td>"
            "</tr>"
        )
    table = (
        "<table><thead><tr><th>version</th><th>aliases</th><th>created</th><th>run</th>"
        "<th>holdout metrics (at the gate)</th><th>gate decision and reasons</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else '<p class="muted">No versions.</p>'
    )
    body = (
        f"<h1>Models: {_esc(model_name)}</h1>"
        f"<p>Registry {store}. {mlflow_line}</p>"
        '<div class="cards">'
        + _card("Champion", summary.get(CHAMPION), model_name, ui)
        + _card("Previous champion", summary.get(PREVIOUS_CHAMPION), model_name, ui)
        + "</div>"
        + f"<h2>Recent versions (newest first, up to {len(rows)})</h2>"
        + table
    )
    return _page("Models", body)


def render_index() -> str:
    """The app's small index page."""
    body = (
        "<h1>lifeboat</h1><ul>"
        '<li><a href="drift">Drift reports</a>: every Evidently report, newest first</li>'
        '<li><a href="models">Models</a>: champion, previous champion, recent versions and their gate '
        "decisions</li></ul>"
    )
    return _page("lifeboat", body)


# --- the app ----------------------------------------------------------------------------------------------


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
        body = "<h1>Error</h1>" + _error_block(
            "This page failed unexpectedly.",
            f"{type(exc).__name__}: {exc}",
            "The api-server log has details.",
        )
        return HTMLResponse(_page("Error", body), status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(render_index())

    @app.get("/drift", response_class=HTMLResponse)
    def drift_list() -> HTMLResponse:
        settings = settings_provider()
        try:
            entries = drift_reports(settings)
        except UnavailableError as exc:
            body = "<h1>Drift reports</h1>" + _error_block("The drift report index cannot be read.", str(exc))
            return HTMLResponse(_page("Drift reports", body), status_code=503)
        return HTMLResponse(render_drift_list(entries, settings))

    @app.get("/drift/{name}", response_class=HTMLResponse)
    def drift_report_page(name: str) -> Response:
        try:
            path = report_file(settings_provider(), name, "html")
        except UnavailableError as exc:
            body = "<h1>Drift report</h1>" + _error_block("The drift report index cannot be read.", str(exc))
            return HTMLResponse(_page("Drift report", body, root="../"), status_code=503)
        if path is None:
            body = f"<h1>Drift report</h1><p>There is no drift report named <code>{_esc(name)}</code>.</p>"
            return HTMLResponse(_page("Drift report", body, root="../"), status_code=404)
        return FileResponse(path, media_type="text/html; charset=utf-8")

    @app.get("/drift/{name}/summary.json")
    def drift_report_summary(name: str) -> JSONResponse:
        try:
            path = report_file(settings_provider(), name, "json")
            if path is None:
                return JSONResponse({"detail": f"no drift report named {name!r}"}, status_code=404)
            return JSONResponse(json.loads(path.read_text(encoding="utf-8")))
        except UnavailableError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)
        except (OSError, ValueError) as exc:
            return JSONResponse({"detail": f"unreadable drift summary of {name!r}: {exc}"}, status_code=503)

    @app.get("/models", response_class=HTMLResponse)
    def models(last: int = Query(DEFAULT_VERSIONS, ge=1, le=MAX_VERSIONS)) -> HTMLResponse:
        settings = settings_provider()
        try:
            summary = registry_summary(settings, last_n=last)
        except UnavailableError as exc:
            logger.warning("Models page: %s", exc)
            body = f"<h1>Models: {_esc(settings.model_name)}</h1>" + _error_block(
                "The MLflow model registry is unavailable.",
                str(exc),
                "Check that the MLflow server is running and that <code>LIFEBOAT_MLFLOW_TRACKING_URI</code> "
                "(or <code>MLFLOW_TRACKING_URI</code>) points at it in the Airflow api-server's environment.",
            )
            return HTMLResponse(_page("Models", body), status_code=503)
        return HTMLResponse(render_models(summary, settings))

    return app
