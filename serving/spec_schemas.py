"""Request validation generated from a dataset spec's raw columns (the per-dataset routes' input models).

One :class:`RequestSchema` per served model: built from the spec the model carries
(``ServingModel.dataset_spec``, embedded in its fitted encoder) or, for a legacy Titanic artifact without one,
from :data:`lifeboat.dataset.schema.COLUMNS`. It holds a strict pydantic model of one record, generated with
``pydantic.create_model`` exactly as :mod:`serving.schemas` generates ``PassengerIn``, so the 422s name the
field the same way:

* ``integer`` columns take JSON integers only (``"3"``, ``3.0`` and ``true`` are refused), ``numeric`` columns
  JSON numbers (NaN/Infinity refused), ``boolean`` columns JSON ``true``/``false``, ``categorical`` and
  ``text`` columns JSON strings; ranges (``ge``/``le``), vocabularies and ``max_length`` are enforced;
* unknown fields are refused (the label too);
* a column may be omitted or null when it is ``nullable`` or its role is ``id`` or ``ignored`` (it
  identifies or is never used); every other column is required.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, create_model

from lifeboat.dataset.columns import Column, Range, Scalar
from lifeboat.dataset.models import DatasetSpec, Response
from lifeboat.dataset.schema import COLUMNS, ID_COLUMN, ColumnSpec

#: The response field names of a legacy (Titanic ``FeatureSpec``) artifact: the seed's contract.
LEGACY_RESPONSE = Response(prediction="survived", probability="probability_survive")
#: Roles a request may send but never has to.
OPTIONAL_ROLES = frozenset({"id", "ignored"})

#: Open Inference Protocol datatype of each column type (the tensor a client sends for the column).
OIP_DATATYPES: dict[str, str] = {
    "integer": "INT64",
    "numeric": "FP64",
    "boolean": "BOOL",
    "categorical": "BYTES",
    "text": "BYTES",
}


def _one_of(allowed: Sequence[Scalar]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in allowed or isinstance(value, bool) != any(isinstance(a, bool) for a in allowed):
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return value

    return check


def _bounds(column: Column) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if column.range is not None:
        if column.range.min is not None:
            bounds["ge"] = column.range.min
        if column.range.max is not None:
            bounds["le"] = column.range.max
    return bounds


def column_type(column: Column) -> Any:
    """The strict, constrained type of one raw column's value (not null)."""
    vocabulary = column.vocabulary
    if column.type in ("categorical", "text"):
        if vocabulary is not None and all(isinstance(v, str) for v in vocabulary):
            return Literal[tuple(vocabulary)]
        if vocabulary is not None:  # a categorical column of numbers: the value's JSON type must match
            return Annotated[
                Any, AfterValidator(_one_of(vocabulary)), Field(json_schema_extra={"enum": list(vocabulary)})
            ]
        return Annotated[str, Strict(), Field(max_length=column.max_length)]
    if column.type == "boolean":
        return Annotated[bool, Strict()]
    if column.type == "integer":
        if vocabulary is not None:
            # Literal[1, 2, 3] would accept True and 1.0; a strict int plus a membership check does not.
            return Annotated[
                int,
                Strict(),
                AfterValidator(_one_of(vocabulary)),
                Field(json_schema_extra={"enum": list(vocabulary)}),
            ]
        return Annotated[int, Strict(), Field(**_bounds(column))]
    return Annotated[float, Strict(), Field(allow_inf_nan=False, **_bounds(column))]


def is_optional(column: Column) -> bool:
    """Whether a request may omit the column (or send null)."""
    return column.nullable or column.role in OPTIONAL_ROLES


def legacy_columns(specs: Sequence[ColumnSpec] = COLUMNS) -> list[Column]:
    """The Titanic schema (:data:`lifeboat.dataset.schema.COLUMNS`) as spec columns (legacy artifacts)."""
    kinds = {"int": "integer", "float": "numeric"}
    out: list[Column] = []
    for spec in specs:
        kind = kinds.get(spec.kind) or ("categorical" if spec.allowed is not None else "text")
        bounded = spec.minimum is not None or spec.maximum is not None
        out.append(
            Column(
                name=spec.name,
                type=kind,
                role="id" if spec.name == ID_COLUMN else "feature",
                nullable=not spec.required,
                description=spec.description,
                range=Range(min=spec.minimum, max=spec.maximum)
                if bounded and kind != "categorical"
                else None,
                vocabulary=list(spec.allowed) if spec.allowed is not None else None,
                max_length=spec.max_length if kind == "text" else None,
            )
        )
    return out


@dataclass(frozen=True)
class RequestSchema:
    """What one served model accepts and how it answers: input columns, record model, response names."""

    dataset: str
    columns: tuple[Column, ...]
    response: Response
    example: dict[str, Any] = field(default_factory=dict)
    record_model: type[BaseModel] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields: dict[str, Any] = {}
        for column in self.columns:
            typ = column_type(column)
            info = Field(
                None if is_optional(column) else ...,
                title=column.name,
                description=column.description or None,
                examples=[self.example[column.name]] if column.name in self.example else None,
            )
            fields[column.name] = (typ | None if is_optional(column) else typ, info)
        model = create_model(
            f"{_camel(self.dataset)}Record",
            __config__=ConfigDict(extra="forbid", strict=True),
            __doc__=f"One raw record of the {self.dataset!r} dataset.",
            **fields,
        )
        object.__setattr__(self, "record_model", model)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Accepted columns, in spec order (every scored record has each of them, None where missing)."""
        return tuple(c.name for c in self.columns)

    @property
    def by_name(self) -> dict[str, Column]:
        """Accepted columns by name."""
        return {c.name: c for c in self.columns}

    def validate(self, record: Any) -> dict[str, Any]:
        """One record as a plain dict of every column; raises pydantic's ``ValidationError``."""
        return self.record_model.model_validate(record).model_dump()


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def schema_from_spec(spec: DatasetSpec) -> RequestSchema:
    """The request schema of a dataset spec: every raw column but the label."""
    columns = tuple(c for c in spec.columns if c.role != "label")
    return RequestSchema(spec.name, columns, spec.response, dict(spec.example))


def legacy_schema(dataset: str) -> RequestSchema:
    """The request schema of a legacy Titanic artifact (no embedded spec): today's ``PassengerIn``."""
    return RequestSchema(dataset, tuple(legacy_columns()), LEGACY_RESPONSE)


def schema_of(model: Any, dataset: str) -> RequestSchema:
    """The request schema of a loaded ``ServingModel``: from its spec, else the legacy Titanic schema."""
    spec = getattr(model, "dataset_spec", None)
    return schema_from_spec(spec) if isinstance(spec, DatasetSpec) else legacy_schema(dataset)


def csv_kind(column: Column) -> str:
    """How a CSV cell of the column is read before validation: ``str``, ``int``, ``float`` or ``bool``."""
    if column.type == "integer":
        return "int"
    if column.type == "numeric":
        return "float"
    if column.type == "boolean":
        return "bool"
    if column.vocabulary is not None and not all(isinstance(v, str) for v in column.vocabulary):
        return "int"
    return "str"
