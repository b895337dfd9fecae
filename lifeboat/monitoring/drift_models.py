"""The typed results of a drift report: per-column verdicts, the report summary, statuses and policies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

Status = Literal["drift", "no_drift", "not_enough_data"]


Policy = Literal["retrain_on_drift", "report_only", "always"]


POLICIES: tuple[str, ...] = get_args(Policy)


class DriftError(RuntimeError):
    """A drift report could not be produced (bad input frame, bad settings, Evidently gave no verdict)."""


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict on one column: method, its score, the threshold it was compared with, drifted or not.

    ``method`` is ``"no_values"`` (and ``score`` None) when one side has no value at all in the column: no
    distribution can be compared, and the column counts as drifted unless both sides are empty.
    """

    kind: Literal["numerical", "categorical"]
    method: str
    score: float | None
    threshold: float
    drifted: bool


@dataclass
class DriftSummary:
    """The outcome of one drift report (the ``<name>.json`` file; small enough for XCom as a dict)."""

    name: str
    status: Status
    dataset_drift: bool
    share_drifted: float
    drift_share_threshold: float
    drifted_columns: list[str]
    columns: dict[str, ColumnDrift]
    reference_rows: int
    current_rows: int
    analysed_rows: int
    min_rows: int
    current_source: str
    created_at: str
    html_path: str
    json_path: str
    message: str
    sampled: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: plain types only, columns as {col: {kind, method, score, threshold, drifted}}."""
        data = asdict(self)
        data["columns"] = {name: asdict(col) for name, col in self.columns.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftSummary:
        """Rebuild a summary from :meth:`to_dict` output (for example read back from ``<name>.json``)."""
        values = dict(data)
        values["columns"] = {k: ColumnDrift(**v) for k, v in dict(values.get("columns", {})).items()}
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in names})
