"""Request and response models of the prediction API.

The passenger input model is generated from :data:`lifeboat.dataset.schema.COLUMNS` (the one definition of
the raw
columns, their ranges and vocabularies), so the API can never accept what training would refuse.

Strictness (a deliberate choice, documented in the OpenAPI description):

* integers must be JSON integers (``3``; not ``"3"``, ``3.0`` or ``true``), numbers must be JSON numbers
  (an integer is fine for a float field), text must be JSON strings;
* NaN and Infinity (which Python's JSON parser accepts) are refused;
* unknown fields are refused, vocabularies are case-sensitive (``"male"``, not ``"Male"``);
* ``PassengerId``, ``Name``, ``Ticket``, ``Cabin``, ``Age``, ``Fare`` and ``Embarked`` may be omitted or null;
  ``Pclass``, ``Sex``, ``SibSp`` and ``Parch`` are required.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired, Required

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    create_model,
    with_config,
)
from typing_extensions import TypedDict

from lifeboat.dataset.schema import COLUMNS, ID_COLUMN, ColumnSpec

#: An example passenger for the OpenAPI docs (Kaggle test.csv row 1 changed into a first-class woman).
EXAMPLE_PASSENGER: dict[str, Any] = {
    "PassengerId": 893,
    "Pclass": 1,
    "Name": "Wilkes, Mrs. James (Ellen Needs)",
    "Sex": "female",
    "Age": 47.0,
    "SibSp": 1,
    "Parch": 0,
    "Ticket": "363272",
    "Fare": 71.28,
    "Cabin": "C85",
    "Embarked": "C",
}
EXAMPLE_MINIMAL: dict[str, Any] = {"Pclass": 3, "Sex": "male", "SibSp": 0, "Parch": 0}


def api_optional(spec: ColumnSpec) -> bool:
    """Whether a request may omit the column: optional columns, and the id (it identifies, never predicts)."""
    return not spec.required or spec.name == ID_COLUMN


def _one_of(allowed: tuple[Any, ...]) -> Any:
    def check(value: Any) -> Any:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return value

    return check


def _column_type(spec: ColumnSpec) -> Any:
    """The validated type of one column, with the constraints of its spec."""
    constraints: dict[str, Any] = {}
    if spec.minimum is not None:
        constraints["ge"] = spec.minimum
    if spec.maximum is not None:
        constraints["le"] = spec.maximum
    if spec.kind == "str":
        if spec.allowed is not None:
            return Literal[tuple(spec.allowed)]
        return Annotated[str, Strict(), Field(max_length=spec.max_length)]
    if spec.kind == "int":
        if spec.allowed is not None:
            # Literal[1, 2, 3] would accept True and 1.0; a strict int plus a membership check does not.
            return Annotated[
                int,
                Strict(),
                AfterValidator(_one_of(spec.allowed)),
                Field(json_schema_extra={"enum": list(spec.allowed)}),
            ]
        return Annotated[int, Strict(), Field(**constraints)]
    return Annotated[float, Strict(), Field(allow_inf_nan=False, **constraints)]


def _passenger_model() -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for spec in COLUMNS:
        typ = _column_type(spec)
        example = EXAMPLE_PASSENGER.get(spec.name)
        if api_optional(spec):
            fields[spec.name] = (
                typ | None,
                Field(None, title=spec.name, description=spec.description, examples=[example]),
            )
        else:
            fields[spec.name] = (
                typ,
                Field(..., title=spec.name, description=spec.description, examples=[example]),
            )
    return create_model(
        "PassengerIn",
        __config__=ConfigDict(
            extra="forbid",
            strict=True,
            json_schema_extra={"examples": [EXAMPLE_PASSENGER, EXAMPLE_MINIMAL]},
        ),
        __doc__="One raw passenger, in the columns of Kaggle's test.csv.",
        **fields,
    )


if TYPE_CHECKING:

    class PassengerIn(BaseModel):
        """Static stand-in for type checkers; the real fields are generated from ``COLUMNS``."""

else:
    PassengerIn = _passenger_model()


class BatchRequest(BaseModel):
    """A JSON batch: ``{"passengers": [...]}`` (CSV uploads are the other accepted form)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"passengers": [EXAMPLE_PASSENGER, EXAMPLE_MINIMAL]}]},
    )

    passengers: list[PassengerIn] = Field(..., min_length=1, description="Passengers to score, in order.")


@cache
def _passenger_row() -> Any:
    """One passenger as a strict ``TypedDict``: the columns, types and constraints of :class:`PassengerIn`.

    Built from the same :func:`_column_type`, so it accepts the same inputs with the same values, but
    validating into it creates no model object. A row's dict holds only the keys it was sent with.
    """
    make_typed_dict: Any = TypedDict  # the functional form, with fields computed at run time
    row = make_typed_dict(
        "PassengerRow",
        {
            spec.name: NotRequired[_column_type(spec) | None]
            if api_optional(spec)
            else Required[_column_type(spec)]
            for spec in COLUMNS
        },
    )
    return with_config(ConfigDict(extra="forbid", strict=True))(row)


@cache
def passenger_row_adapter() -> TypeAdapter[Any]:
    """Validates one JSON passenger body straight into a plain dict (the fast path of ``/predict``).

    Accepting the same inputs with the same values as :class:`PassengerIn` is what allows it to be a fast
    path; its error messages are not the API's (see ``serving.routes.predictions``).
    """
    return TypeAdapter(_passenger_row())


@cache
def batch_rows_adapter() -> TypeAdapter[Any]:
    """Validates a whole JSON batch body ``{"passengers": [...]}`` straight into plain dicts (the fast path).

    The rows are :func:`_passenger_row` dicts. Accepting the same inputs with the same values as
    :class:`BatchRequest` is what allows it to be a fast path: its error messages are not the API's (see
    ``serving.batch_input``).
    """
    make_typed_dict: Any = TypedDict
    rows: Any = list.__class_getitem__(_passenger_row())
    batch = make_typed_dict("PassengerRows", {"passengers": Annotated[rows, Field(min_length=1)]})
    return TypeAdapter(with_config(ConfigDict(extra="forbid", strict=True))(batch))


class PredictionOut(BaseModel):
    """The seed's response contract, plus the version of the model that answered and the row's id."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "survived": 1,
                    "probability_survive": 0.834,
                    "drift_alerts": "No drift detected",
                    "model_version": "3",
                    "request_id": "6f1c0b9e8d7a4c3b9a2e1f0d5c4b3a29",
                }
            ]
        },
    )

    survived: Literal[0, 1] = Field(..., description="1 when probability_survive >= 0.5")
    probability_survive: float = Field(..., ge=0, le=1, description="Probability of survival, 3 decimals")
    drift_alerts: str = Field(
        ...,
        description="What in the passenger lies outside the training data, or exactly 'No drift detected'",
    )
    model_version: str = Field(..., description="Registered model version that scored the passenger")
    request_id: str = Field(
        ...,
        description="The row's id, stored with it in the prediction log: the request's id (a valid "
        "client-sent X-Request-ID, 1-128 characters of A-Za-z0-9._:-, else a generated UUIDv7 hex); "
        "row i (from 0) of a batch gets '<id>-<i>'",
    )


class BatchOut(BaseModel):
    """Per-passenger results, in request order, all scored by one model version."""

    model_version: str
    count: int
    predictions: list[PredictionOut]


class RowError(BaseModel):
    """One invalid field of one batch row (``row`` counts from 0; for a CSV, data rows from 0)."""

    row: int | None = Field(..., description="Index of the passenger in the batch; null for the CSV header")
    field: str | None = Field(..., description="Column at fault")
    msg: str
    type: str
    loc: list[str | int]


class BatchValidationError(BaseModel):
    """A batch was refused: nothing was scored."""

    detail: str
    invalid_rows: list[int]
    error_count: int
    errors: list[RowError]


class Message(BaseModel):
    """An error or status message."""

    detail: str


class HealthOut(BaseModel):
    """Liveness: the process answers."""

    status: Literal["alive"] = "alive"
    worker: str


class ReadyOut(BaseModel):
    """Readiness: whether this worker has a model to serve, and which."""

    ready: bool
    model_name: str
    model_version: str | None
    reason: str | None = Field(None, description="Why the worker is not ready (or the last load error)")
    worker: str


class ModelInfoOut(BaseModel):
    """Provenance of the served model, read from the MLflow registry when it was loaded."""

    model_name: str
    model_version: str
    run_id: str | None
    trained_at: str | None = Field(None, description="End (or start) of the training run, ISO-8601 UTC")
    registered_at: str | None
    loaded_at: str
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Holdout metrics of the training run (holdout_ prefix removed)"
    )
    data_fingerprint: str | None = None
    gate_decision: str | None = None
    tags: dict[str, str] = Field(default_factory=dict, description="All tags of the model version")
    info: dict[str, Any] = Field(default_factory=dict, description="model_info.json of the serving artifact")


class WorkerVersion(BaseModel):
    """What one worker process of this server reported last."""

    worker: str
    model_version: str | None
    error: str | None = None


class ReloadOut(BaseModel):
    """The result of a reload, for the worker that received it and for the fleet of workers."""

    old_version: str | None
    new_version: str
    changed: bool
    converged: bool = Field(..., description="Every live worker of this server reports new_version")
    workers: list[WorkerVersion]
    note: str


class FeedbackOut(BaseModel):
    """What a feedback request did with each label: ``matched + unknown + duplicate == received``."""

    dataset: str
    received: int = Field(..., description="Labels in the request")
    matched: int = Field(..., description="Labels of logged predictions that had none: stored now")
    unknown: int = Field(
        ..., description="Ids not in the prediction log (never logged, or trimmed): not stored"
    )
    duplicate: int = Field(..., description="The same label again (stored before, or earlier in the request)")


class FeedbackConflictOut(BaseModel):
    """Some ids got a label different from their stored one (or two in one request): nothing was stored."""

    detail: str
    conflicting_ids: list[str] = Field(..., description="The ids at fault (at most 100 listed)")
    conflict_count: int


class LabelErrorOut(BaseModel):
    """One invalid label, or a problem of the whole body (``row`` null)."""

    row: int | None = Field(..., description="Index of the label in the request (from 0)")
    line: int | None = Field(..., description="Line of the CSV file (the header is line 1), or of the JSON")
    field: str | None = Field(..., description="request_id or label")
    value: str | None = Field(..., description="The value refused (as received, shortened)")
    msg: str


class FeedbackInvalidOut(BaseModel):
    """Some labels are invalid (or the body is malformed): nothing was stored."""

    detail: str
    error_count: int
    errors: list[LabelErrorOut] = Field(..., description="The problems (at most 100 listed)")
