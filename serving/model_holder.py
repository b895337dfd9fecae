"""The served model and its atomic swap.

A request takes :meth:`ModelHolder.current` once and uses that :class:`LoadedModel` until it answers, so a
reload in the middle of a request never mixes two models: the swap is one reference assignment, and the old
object lives on for as long as requests in flight hold it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from lifeboat.registry.artifact import ServingModel
from serving.spec_schemas import RequestSchema, schema_of


@dataclass(frozen=True)
class ModelMeta:
    """Provenance of a loaded version, read from the MLflow registry when it was loaded."""

    model_name: str
    model_version: str
    run_id: str | None = None
    trained_at: str | None = None
    registered_at: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    data_fingerprint: str | None = None
    gate_decision: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass(frozen=True)
class LoadedModel:
    """A validated serving model together with what the registry says about it."""

    model: ServingModel
    meta: ModelMeta

    @property
    def version(self) -> str:
        """The registered version number, as text."""
        return self.meta.model_version

    @cached_property
    def schema(self) -> RequestSchema:
        """What this model accepts and how it answers (from its embedded dataset spec; built once)."""
        return schema_of(self.model, self.meta.model_name)


class ModelHolder:
    """Holds the served model; readers never lock, swaps are serialised."""

    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self._swap_lock = threading.Lock()

    def current(self) -> LoadedModel | None:
        """The model to use for one whole request (None before the first successful load)."""
        return self._current

    @property
    def version(self) -> str | None:
        """The served version, or None."""
        current = self._current
        return current.version if current is not None else None

    def swap(self, new: LoadedModel) -> LoadedModel | None:
        """Serve ``new`` from now on and return the model it replaced."""
        with self._swap_lock:
            old = self._current
            self._current = new
            return old
