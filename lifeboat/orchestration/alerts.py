"""Alerts of the DAGs: a log line always, a webhook and an e-mail when the settings ask for them.

:func:`notify_failure` is the DAGs' ``on_failure_callback``; :func:`notify_monitoring` reports drift in live
traffic and a live performance drop, whether or not a retraining follows. An alert that cannot be delivered
is logged and never raises: a broken webhook must not hide the task failure it reports.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from lifeboat.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: Longest exception text carried by an alert.
MAX_ERROR_CHARS = 2000


def failure_details(context: Mapping[str, Any]) -> dict[str, str]:
    """What an alert says about a failed task, from Airflow's task context."""
    ti = context.get("task_instance") or context.get("ti")
    dag_run = context.get("dag_run")
    error = context.get("exception")
    return {
        "dag_id": str(getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", "unknown")),
        "task_id": str(getattr(ti, "task_id", "unknown")),
        "run_id": str(getattr(ti, "run_id", None) or context.get("run_id") or "unknown"),
        "try_number": str(getattr(ti, "try_number", "")),
        "error": (str(error) if error is not None else "no exception recorded")[:MAX_ERROR_CHARS],
        "log_url": str(getattr(ti, "log_url", "") or ""),
    }


def alert_text(details: Mapping[str, str]) -> str:
    """One readable paragraph for chat and e-mail."""
    text = (
        f"lifeboat: task {details['task_id']} of {details['dag_id']} failed "
        f"(run {details['run_id']}, try {details['try_number']}): {details['error']}"
    )
    if details.get("log_url"):
        text += f"\nlog: {details['log_url']}"
    return text


def send_webhook(
    url: str, details: Mapping[str, str], timeout: float = 10.0, text: str | None = None
) -> None:
    """POST the alert as JSON (``text`` for Slack-style hooks, plus every detail); raises on failure.

    urllib rather than httpx: httpx logs every request's URL at INFO, and a webhook's URL is its credential.
    """
    body = json.dumps({"text": text if text is not None else alert_text(details), **details}).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def delivery_failure(exc: BaseException) -> str:
    """What went wrong posting to the webhook, without its URL (the credential of Slack-style hooks): the
    HTTP status, else the kind of error."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".rstrip()
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return type(exc.reason).__name__
    return type(exc).__name__


def send_email(
    settings: Settings,
    details: Mapping[str, str],
    timeout: float = 10.0,
    text: str | None = None,
    subject: str | None = None,
) -> None:
    """Send the alert by SMTP to ``settings.alert_emails``; raises on failure."""
    message = EmailMessage()
    message["Subject"] = subject or f"[lifeboat] {details['dag_id']}.{details['task_id']} failed"
    message["From"] = settings.alert_email_from
    message["To"] = ", ".join(settings.alert_emails)
    message.set_content(text if text is not None else alert_text(details))
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
        smtp.send_message(message)


def _deliver(settings: Settings, details: Mapping[str, str], text: str, subject: str, what: str) -> list[str]:
    """The webhook and e-mail configured (never raising); return the channels reached besides the log.

    ``what`` names the alert in the log lines of a failed delivery ("failure alert", "monitoring alert").
    """
    reached = []
    if settings.alert_webhook_url:
        try:
            send_webhook(settings.alert_webhook_url.get_secret_value(), details, text=text)
            reached.append("webhook")
        except Exception as exc:  # any failure to deliver is reported, never raised (see module doc)
            logger.error("the %s could not be posted to the webhook: %s", what, delivery_failure(exc))
    if settings.alert_emails:
        try:
            send_email(settings, details, text=text, subject=subject)
            reached.append("email")
        except (OSError, smtplib.SMTPException) as exc:
            logger.error("the %s could not be e-mailed: %s", what, exc)
    return reached


def notify_failure(context: Mapping[str, Any], settings: Settings | None = None) -> list[str]:
    """Report a failed task: log it, then the webhook and e-mail configured; return the channels reached."""
    settings = settings or get_settings()
    details = failure_details(context)
    text = alert_text(details)
    logger.error("%s", text)
    subject = f"[lifeboat] {details['dag_id']}.{details['task_id']} failed"
    return ["log", *_deliver(settings, details, text, subject, "failure alert")]


def notify_monitoring(
    settings: Settings, kind: str, dataset: str, message: str, figures: Mapping[str, Any]
) -> list[str]:
    """Report what monitoring saw (``kind``: ``live_drift``, ``performance_drop``) even when no retraining
    follows: a log line, then the webhook and e-mail configured; return the channels reached."""
    details = {
        "kind": kind,
        "dataset": dataset,
        "message": message,
        "figures": json.dumps(dict(figures), sort_keys=True, default=str),
    }
    text = f"lifeboat: {dataset}: {message}"
    logger.warning("%s", text)
    subject = f"[lifeboat] {dataset}: {kind.replace('_', ' ')}"
    return ["log", *_deliver(settings, details, text, subject, "monitoring alert")]
