"""A fitted encoder: a dataset spec plus the statistics learned from its training rows, saved as JSON.

:func:`lifeboat.dataset.encoder.fit` makes one; a saved encoder embeds its spec and the spec's fingerprint,
and refuses to load for another spec or another encoding version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from lifeboat.dataset.models import DatasetSpec, canonical
from lifeboat.dataset.spec import parse_spec

#: Version of the encoding; bump it whenever :func:`encode` changes meaning, so old encoders are refused.
ENCODING_VERSION = 1


class EncoderError(ValueError):
    """A fitted encoder is unreadable, of another encoding version, or fitted for another spec."""


class FittedStatistics(BaseModel):
    """What :func:`fit` learned from the training rows (all keyed by step, feature or column name)."""

    model_config = ConfigDict(extra="forbid")

    rows: int
    group_tables: dict[str, dict[str, float]] = {}
    group_overall: dict[str, float] = {}
    fills: dict[str, float] = {}
    modes: dict[str, str | None] = {}
    vocabularies: dict[str, list[str]] = {}
    ranges: dict[str, tuple[float, float]] = {}
    categories: dict[str, list[str]] = {}


def _fingerprints_of(embedded: Mapping[str, Any]) -> set[str]:
    """The fingerprints an embedded spec may carry besides its parsed form's: the stored dict's canonical
    form, and the form of encoders fitted before unset keys were left out of it (the plain dump, every
    default written). A spec model that gained keys since then still loads what was fitted with it."""
    legacy = json.dumps(dict(embedded), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {
        hashlib.sha256(canonical(embedded).encode()).hexdigest(),
        hashlib.sha256(legacy.encode()).hexdigest(),
    }


@dataclass(frozen=True)
class FittedEncoder:
    """A spec plus the statistics fitted on its training rows: everything needed to encode like training."""

    spec: DatasetSpec
    statistics: FittedStatistics
    feature_names: tuple[str, ...]
    encoding_version: int = ENCODING_VERSION
    _plan: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: The fingerprint stored with a loaded encoder (the spec model may have gained keys since it was fitted).
    stored_fingerprint: str | None = field(default=None, compare=False)

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the spec this encoder was fitted for."""
        return self.stored_fingerprint or self.spec.fingerprint()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (embeds the spec and its fingerprint)."""
        return {
            "encoding_version": self.encoding_version,
            "spec_fingerprint": self.fingerprint,
            "spec": self.spec.model_dump(mode="json", by_alias=True),
            "feature_names": list(self.feature_names),
            "statistics": self.statistics.model_dump(mode="json"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], expected_fingerprint: str | None = None) -> FittedEncoder:
        """Inverse of :meth:`to_dict`; refuses another encoding version or (when given) another spec."""
        try:
            version = int(data["encoding_version"])
            if version != ENCODING_VERSION:
                raise EncoderError(
                    f"encoder has encoding version {version}; this code encodes version {ENCODING_VERSION}"
                )
            spec = parse_spec(data["spec"], file="<fitted encoder>")
            stored = str(data["spec_fingerprint"])
            if stored != spec.fingerprint() and stored not in _fingerprints_of(data["spec"]):
                raise EncoderError(f"encoder's embedded spec does not match its fingerprint {stored[:12]}")
            if expected_fingerprint is not None and stored != expected_fingerprint:
                raise EncoderError(
                    f"encoder was fitted for spec {stored[:12]}, not for spec {expected_fingerprint[:12]}"
                )
            return cls(
                spec=spec,
                statistics=FittedStatistics.model_validate(data["statistics"]),
                feature_names=tuple(data["feature_names"]),
                encoding_version=version,
                stored_fingerprint=stored,
            )
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            if isinstance(exc, EncoderError):
                raise
            raise EncoderError(f"malformed fitted encoder: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the encoder as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path, spec: DatasetSpec | None = None) -> FittedEncoder:
        """Read an encoder written by :meth:`save`; with ``spec``, refuse one fitted for another spec."""
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EncoderError(f"cannot read fitted encoder {path}: {exc}") from exc
        return cls.from_dict(data, expected_fingerprint=spec.fingerprint() if spec is not None else None)
