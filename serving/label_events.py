"""Tell Airflow that labels came back: an event on the dataset's incoming asset, so that ``<dataset>_retrain``
(scheduled on the cron OR that asset) starts a run that measures the live performance with them.

Configured by ``LIFEBOAT_AIRFLOW_EVENTS_URL`` (Airflow's api-server), ``LIFEBOAT_AIRFLOW_EVENTS_USER`` and
``LIFEBOAT_AIRFLOW_EVENTS_PASSWORD`` (a user with Airflow's ``op`` role: the role that may create asset
events). Without a URL, nothing is sent and the nightly run measures the labels. The embedded stack creates
that user and passes the three settings to the server.

Events are rate-limited per dataset: the first stored labels send one at once, later ones within
``LIFEBOAT_LABEL_EVENT_INTERVAL_SECONDS`` are gathered into one event sent when the interval has passed, so a
steady stream of feedback calls becomes at most one event per interval (Airflow folds events that arrive while
a run waits into that run anyway). Sending happens on a background thread: a feedback call never waits for
Airflow, and an unreachable Airflow is logged (never the password), not raised.

The HTTP client is ``requests``, which the serving image already has (MLflow's client uses it): httpx is not
in the serving image.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from lifeboat.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["LabelEvents", "incoming_asset_name"]

#: Seconds one call to Airflow may take.
HTTP_TIMEOUT = 10.0


def incoming_asset_name(dataset: str) -> str:
    """The name of a dataset's incoming asset (as :func:`lifeboat.orchestration.assets.incoming_name`)."""
    return f"{dataset}_incoming"


class AirflowEventError(RuntimeError):
    """Airflow refused or could not take the event (the message names the step and the answer)."""


@dataclass
class _Pending:
    """Labels stored since the last event of one dataset, and whether a deferred send is scheduled."""

    labels: int = 0
    last_sent: float = float("-inf")
    timer: threading.Timer | None = None


@dataclass
class LabelEvents:
    """Sends rate-limited asset events for stored labels (one object per server worker)."""

    url: str
    user: str
    password: str = field(repr=False)
    interval: float = 60.0
    clock: Callable[[], float] = time.monotonic
    #: Events recorded by this worker, and the newest one (for /metrics and tests; bounded: no list).
    events_sent: int = 0
    last_event: dict[str, Any] | None = None
    _pending: dict[str, _Pending] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelEvents | None:
        """The sender configured by the settings, or None without ``airflow_events_url``."""
        if settings.airflow_events_url is None:
            return None
        password = settings.airflow_events_password
        return cls(
            url=settings.airflow_events_url.rstrip("/"),
            user=settings.airflow_events_user,
            password=password.get_secret_value() if password is not None else "",
            interval=settings.label_event_interval_seconds,
        )

    def labels_stored(self, dataset: str, count: int) -> None:
        """``count`` labels of ``dataset`` were stored: send an event now, or once the interval has passed."""
        if count <= 0:
            return
        with self._lock:
            if self._closed:
                return
            pending = self._pending.setdefault(dataset, _Pending())
            pending.labels += count
            if pending.timer is not None:
                return  # a deferred send will carry these labels too
            wait = pending.last_sent + self.interval - self.clock()
            timer = threading.Timer(max(wait, 0.0), self._send, args=(dataset,))
            timer.daemon = True
            pending.timer = timer
        timer.start()

    def close(self) -> None:
        """Cancel the deferred sends (server shutdown); labels stay stored, the next run measures them."""
        with self._lock:
            self._closed = True
            timers = [p.timer for p in self._pending.values() if p.timer is not None]
        for timer in timers:
            timer.cancel()

    def _send(self, dataset: str) -> None:
        with self._lock:
            pending = self._pending[dataset]
            labels, pending.labels, pending.timer = pending.labels, 0, None
            pending.last_sent = self.clock()
        extra = {"dataset": dataset, "source": "feedback", "labels": labels}
        try:
            event = self.post_event(incoming_asset_name(dataset), extra)
        except Exception as exc:  # an unreachable or refusing Airflow must never hurt the server
            logger.warning(
                "labels of %s stored, but Airflow at %s was not told (%s: %s): the next scheduled run "
                "measures them",
                dataset,
                self.url,
                type(exc).__name__,
                exc,
            )
            return
        with self._lock:
            self.events_sent += 1
            self.last_event = event
        logger.info(
            "asset event %s on %s: %d new label(s)", event.get("id"), incoming_asset_name(dataset), labels
        )

    def post_event(self, asset: str, extra: dict[str, Any]) -> dict[str, Any]:
        """Log in, find the asset's id, record the event; raise :class:`AirflowEventError` naming the step."""
        import requests

        with requests.Session() as session:
            token = self._json(
                session.post(
                    f"{self.url}/auth/token",
                    json={"username": self.user, "password": self.password},
                    timeout=HTTP_TIMEOUT,
                ),
                f"login as {self.user!r}",
            ).get("access_token")
            if not token:
                raise AirflowEventError(f"login as {self.user!r} returned no access_token")
            session.headers["Authorization"] = f"Bearer {token}"
            assets = self._json(
                session.get(
                    f"{self.url}/api/v2/assets",
                    params={"name_pattern": asset, "limit": "100"},
                    timeout=HTTP_TIMEOUT,
                ),
                f"looking up asset {asset}",
            ).get("assets", [])
            # name_pattern is a SQL LIKE pattern ("_" matches any character): keep the exact name only.
            found = [a for a in assets if a.get("name") == asset]
            if not found:
                raise AirflowEventError(f"Airflow has no asset {asset} (its DAG is not parsed yet)")
            return self._json(
                session.post(
                    f"{self.url}/api/v2/assets/events",
                    json={"asset_id": int(found[0]["id"]), "extra": extra},
                    timeout=HTTP_TIMEOUT,
                ),
                f"recording an event on {asset}",
            )

    @staticmethod
    def _json(response: requests.Response, step: str) -> dict[str, Any]:
        if response.status_code not in (200, 201):
            raise AirflowEventError(f"{step}: HTTP {response.status_code} {response.text[:200]}")
        body = response.json()
        if not isinstance(body, dict):
            raise AirflowEventError(f"{step}: the answer is not a JSON object")
        return body
