"""The Models page: champion, previous champion and recent versions of the registered model with their gate
decisions, linked to the MLflow UI."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from lifeboat.orchestration.ui_html import escape, format_number, format_time, page
from lifeboat.settings import Settings

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


class UnavailableError(RuntimeError):
    """A page's data source (the reports index or the MLflow registry) cannot be read right now."""


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
    """:func:`lifeboat.registry.summary.model_summary` of the configured model, read-only.

    Points MLflow at the settings' store (no experiment is created) and raises :class:`UnavailableError`
    with the reason when the store cannot be read.
    """
    from lifeboat.registry.store import database_uri

    uri = database_uri(settings.tracking_uri)
    check_registry_reachable(uri)

    import mlflow
    from mlflow.exceptions import MlflowException

    from lifeboat.registry.store import RegistryError
    from lifeboat.registry.summary import model_summary

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        return model_summary(settings.model_name, last_n=last_n)
    except (RegistryError, MlflowException, OSError) as exc:
        raise UnavailableError(f"cannot read the MLflow registry at {redact_uri(uri)}: {exc}") from exc


def _version_link(ui: str | None, model_name: str, version: str) -> str:
    if ui is None:
        return escape(version)
    url = ui + _MLFLOW_VERSION_ROUTE.format(name=quote(model_name, safe=""), version=quote(version, safe=""))
    return f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{escape(version)}</a>'


def _run_link(ui: str | None, run_id: object) -> str:
    if not run_id:
        return ""
    if ui is None:
        return f"<code>{escape(run_id)}</code>"
    url = ui + _MLFLOW_RUN_ROUTE.format(run_id=quote(str(run_id), safe=""))
    label = f"<code>{escape(run_id)}</code>"
    return f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{label}</a>'


def _decision_badge(decision: object) -> str:
    if not decision:
        return '<span class="badge neutral">not evaluated</span>'
    css = {"promote": "good", "reject": "bad"}.get(str(decision), "neutral")
    return f'<span class="badge {css}">{escape(decision)}</span>'


def _list_html(items: Iterable[object]) -> str:
    values = [str(i) for i in items]
    if not values:
        return ""
    return '<ul class="reasons">' + "".join(f"<li>{escape(v)}</li>" for v in values) + "</ul>"


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    if not metrics:
        return '<span class="muted">none recorded</span>'
    known = [k for k in _METRIC_ORDER if k in metrics]
    names = known + sorted(k for k in metrics if k not in _METRIC_ORDER)
    return "<br>".join(f"{escape(k)} <strong>{escape(format_number(metrics[k]))}</strong>" for k in names)


def _gate_html(version: Mapping[str, Any]) -> str:
    parts = [_decision_badge(version.get("gate_decision"))]
    compared = version.get("gate_compared_with")
    if compared:
        against = "no champion" if compared == "none" else f"champion v{compared}"
        parts.append(f'<span class="muted">vs {escape(against)}</span>')
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
    return " ".join(f'<span class="badge {css.get(str(a), "neutral")}">{escape(a)}</span>' for a in aliases)


def _card(title: str, version: Mapping[str, Any] | None, model_name: str, ui: str | None) -> str:
    if version is None:
        return f'<div class="card"><h2>{escape(title)}</h2><p class="muted">none</p></div>'
    rollback = version.get("rollback") or {}
    extra = ""
    if version.get("promoted_at"):
        extra += f"<dt>promoted</dt><dd>{escape(format_time(version['promoted_at']))}</dd>"
    if version.get("parity_max_abs_diff") is not None:
        parity = version["parity_max_abs_diff"]
        shown = f"{parity:.2g}" if isinstance(parity, float) else str(parity)
        extra += f"<dt>ONNX parity (max abs diff)</dt><dd>{escape(shown)}</dd>"
    if rollback:
        extra += "<dt>rollback</dt><dd>" + escape(", ".join(f"{k}: {v}" for k, v in sorted(rollback.items())))
        extra += "</dd>"
    link = _version_link(ui, model_name, str(version["version"]))
    return (
        f'<div class="card"><h2>{escape(title)}: version {link}</h2><dl>'
        f"<dt>created</dt><dd>{escape(format_time(version.get('created_at')))}</dd>"
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
    store = f"<code>{escape(redact_uri(database_uri(settings.tracking_uri)))}</code>"
    if not summary.get("exists"):
        body = (
            f"<h1>Models: {escape(model_name)}</h1>"
            f"<p>No registered model named <code>{escape(model_name)}</code> in the MLflow registry {store} "
            "yet: the first retraining run that passes the gate registers and promotes one.</p>"
        )
        return page("Models", body, settings=settings)
    if ui is not None:
        model_url = ui + _MLFLOW_MODEL_ROUTE.format(name=quote(model_name, safe=""))
        mlflow_line = (
            f'<a href="{escape(model_url)}" target="_blank" rel="noopener noreferrer">open in MLflow</a> '
            f'<span class="muted">(MLflow UI <code>{escape(ui)}</code>; links open in a new tab)</span>'
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
            f"<td>{escape(format_time(version.get('created_at')))}</td>"
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
        f"<h1>Models: {escape(model_name)}</h1>"
        f"<p>Registry {store}. {mlflow_line}</p>"
        '<div class="cards">'
        + _card("Champion", summary.get(CHAMPION), model_name, ui)
        + _card("Previous champion", summary.get(PREVIOUS_CHAMPION), model_name, ui)
        + "</div>"
        + f"<h2>Recent versions (newest first, up to {len(rows)})</h2>"
        + table
    )
    return page("Models", body, settings=settings)
