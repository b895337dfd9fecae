"""Keep the served model in step with the registry's champion and with the other workers.

Three ways a worker changes model, all through :meth:`ChampionSync.load_version` (download, canary check,
atomic swap; serialised by one lock, so two loads never race):

* ``startup`` — the lifespan loads the champion (bounded wait: a registry that is down does not keep the
  server from starting; it starts not ready and retries on the poll);
* ``admin`` — ``POST /admin/reload`` loads the champion, publishes the version to the fleet board and waits
  until every live worker reports it;
* ``poll`` / ``fleet`` — a background task reads the fleet board's target about twice a second and resolves
  the champion alias every ``registry_poll_seconds`` (0 disables the alias poll).

A version whose artifact is not servable is remembered as *refused*: polls and fleet targets skip it (the
old model keeps serving and the reason is reported by ``/ready``), only an explicit reload tries it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

import anyio.to_thread

from lifeboat.registry.artifact import ArtifactError
from serving.champion_source import ChampionSource, NoChampion, RegistryUnavailable
from serving.fleet import FleetBoard, WorkerStatus
from serving.metrics import DatasetMetrics
from serving.model_holder import LoadedModel, ModelHolder

logger = logging.getLogger(__name__)

#: How often the background task reads the fleet board and writes this worker's heartbeat.
SYNC_INTERVAL_SECONDS = 0.5
#: After a failed fleet-target load that may be transient (registry unreachable), wait this long to retry.
FLEET_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did on this worker."""

    old_version: str | None
    new_version: str
    changed: bool


@dataclass(frozen=True)
class FleetReport:
    """Whether every live worker serves a version, and what each one reported."""

    converged: bool
    workers: list[WorkerStatus]
    board_available: bool


class ChampionSync:
    """Loads, swaps and follows the champion for one app."""

    def __init__(
        self,
        holder: ModelHolder,
        source: ChampionSource,
        fleet: FleetBoard,
        metrics: DatasetMetrics,
        poll_seconds: float,
        sync_seconds: float = SYNC_INTERVAL_SECONDS,
    ) -> None:
        self.holder = holder
        self.source = source
        self.fleet = fleet
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.sync_seconds = sync_seconds
        self.last_error: str | None = None
        self.refused: dict[str, str] = {}
        self._load_lock = threading.Lock()
        self._seen_target_seq: int | None = None
        self._fleet_retry_at = 0.0

    # -- loading (blocking: call from a worker thread) -------------------------------------------------------

    def load_version(self, version: str, trigger: str) -> tuple[LoadedModel | None, LoadedModel]:
        """Load ``version`` (unless it is already served) and swap it in; return (old, new).

        Raises ``ArtifactError`` (not servable: remembered as refused) or ``RegistryUnavailable``; the old
        model keeps serving either way.
        """
        with self._load_lock:
            current = self.holder.current()
            if current is not None and current.version == version:
                return current, current
            started = time.perf_counter()
            try:
                loaded = self.source.load(version)
            except ArtifactError as exc:
                self.refused[version] = str(exc)
                self._failed(
                    trigger, "artifact", f"{self.source.model_name} version {version} is not servable: {exc}"
                )
                raise
            except RegistryUnavailable as exc:
                self._failed(trigger, "registry", str(exc))
                raise
            old = self.holder.swap(loaded)
            self.refused.pop(version, None)
            self.last_error = None
            self.metrics.reloads.labels(trigger=trigger).inc()
            self.metrics.set_model(self.source.model_name, version)
            logger.info(
                "serving %s version %s (was %s; trigger %s; loaded in %.2f s)",
                self.source.model_name,
                version,
                old.version if old else None,
                trigger,
                time.perf_counter() - started,
            )
        self._heartbeat()
        return old, loaded

    def reload_champion(self, trigger: str) -> ReloadResult:
        """Resolve the champion alias and serve it.

        Raises ``NoChampion``, ``RegistryUnavailable`` or ``ArtifactError`` (the old model keeps serving).
        """
        old_version = self.holder.version
        try:
            version = self.source.champion_version()
        except NoChampion as exc:
            self._failed(trigger, "no_champion", str(exc))
            raise
        except RegistryUnavailable as exc:
            self._failed(trigger, "registry", str(exc))
            raise
        self.load_version(version, trigger)
        return ReloadResult(old_version=old_version, new_version=version, changed=old_version != version)

    def _failed(self, trigger: str, reason: str, message: str) -> None:
        self.last_error = message
        self.metrics.reload_failures.labels(trigger=trigger, reason=reason).inc()
        logger.error("model load failed (trigger %s): %s", trigger, message)

    # -- readiness -----------------------------------------------------------------------------------------

    def not_ready_reason(self) -> str:
        """Why this worker has no model (for ``/ready`` and the 503 answers of the prediction endpoints)."""
        if self.last_error:
            return f"no model loaded: {self.last_error}"
        return (
            f"no model loaded yet: waiting for {self.source.model_name}@{self.source.alias} in the registry "
            f"at {self.source.tracking_uri}"
        )

    # -- the fleet -------------------------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        try:
            self.fleet.heartbeat(self.holder.version, self.last_error)
        except OSError as exc:
            logger.debug("cannot write the fleet heartbeat: %s", exc)

    def publish(self, version: str) -> bool:
        """Ask the other workers to serve ``version``; False when the fleet board is not writable."""
        try:
            target = self.fleet.publish_target(version)
        except OSError as exc:
            logger.warning(
                "cannot publish version %s to the fleet board %s (other workers converge by polling "
                "the registry): %s",
                version,
                self.fleet.directory,
                exc,
            )
            return False
        self._seen_target_seq = target.seq
        return True

    def fleet_report(self, version: str) -> FleetReport:
        """Whether every live worker reports ``version``."""
        self._heartbeat()
        workers = self.fleet.live_workers()
        if not any(w.worker == self.fleet.worker_id for w in workers):
            # The board is not usable (not writable): only this worker's own state is known.
            me = WorkerStatus(self.fleet.worker_id, 0, self.holder.version, self.last_error, time.time())
            return FleetReport(converged=False, workers=[me], board_available=False)
        return FleetReport(
            converged=all(w.version == version for w in workers), workers=workers, board_available=True
        )

    async def wait_for_fleet(self, version: str, timeout: float) -> FleetReport:
        """Poll the fleet board until every live worker serves ``version`` or ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        while True:
            report = await anyio.to_thread.run_sync(self.fleet_report, version)
            if report.converged or not report.board_available or time.monotonic() >= deadline:
                return report
            await asyncio.sleep(0.1)

    # -- background ------------------------------------------------------------------------------------------

    def startup(self) -> None:
        """First load at start-up; failures leave the worker not ready (the poll retries)."""
        target = self.fleet.target()
        self._seen_target_seq = target.seq if target is not None else None  # older targets are history
        # Failures are already logged and counted, and /ready reports them.
        with contextlib.suppress(NoChampion, RegistryUnavailable, ArtifactError):
            self.reload_champion("startup")
        self._heartbeat()

    def _follow_fleet(self) -> None:
        target = self.fleet.target()
        if target is None or target.seq == self._seen_target_seq or time.monotonic() < self._fleet_retry_at:
            return
        if target.version == self.holder.version or target.version in self.refused:
            self._seen_target_seq = target.seq
            return
        try:
            self.load_version(target.version, "fleet")
            self._seen_target_seq = target.seq
        except ArtifactError:
            self._seen_target_seq = target.seq
        except RegistryUnavailable:
            self._fleet_retry_at = time.monotonic() + FLEET_RETRY_SECONDS

    def _poll_registry(self) -> None:
        try:
            version = self.source.champion_version()
        except NoChampion as exc:
            if self.holder.version is None:
                self.last_error = str(exc)
            else:
                logger.warning("%s; still serving version %s", exc, self.holder.version)
            return
        except RegistryUnavailable as exc:
            self._failed("poll", "registry", str(exc))
            return
        if version == self.holder.version:
            return
        if version in self.refused:
            logger.debug("champion version %s was refused earlier: %s", version, self.refused[version])
            return
        # Failures are logged and counted by load_version; the old model keeps serving.
        with contextlib.suppress(ArtifactError, RegistryUnavailable):
            self.load_version(version, "poll")

    async def run(self) -> None:
        """Follow the fleet board and poll the registry until cancelled."""
        next_poll = time.monotonic() + self.poll_seconds
        while True:
            try:
                await anyio.to_thread.run_sync(self._follow_fleet, abandon_on_cancel=True)
                if self.poll_seconds > 0 and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.poll_seconds
                    await anyio.to_thread.run_sync(self._poll_registry, abandon_on_cancel=True)
                await anyio.to_thread.run_sync(self._heartbeat, abandon_on_cancel=True)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the loop: log it with its traceback and go on
                logger.exception("model sync step failed")
            await asyncio.sleep(self.sync_seconds)
