"""Dataset folders ``data/<name>/``: create one from a CSV or Parquet file, check one, list them all.

A dataset folder holds its spec (``dataset.yaml``) and its training data (``raw/train.csv``, tracked by DVC).
:func:`create_dataset` drafts the spec from the data (:mod:`lifeboat.dataset.infer`), checks the draft
against the data, and versions the CSV with DVC (add + push, undone if the push fails).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from lifeboat.data.versioning import DataError, add_and_push, count_rows, repo_root
from lifeboat.dataset.encoder import fit
from lifeboat.dataset.infer import InferenceError, infer_spec, render_yaml
from lifeboat.dataset.models import DatasetSpec
from lifeboat.dataset.schema import iter_csv_chunks
from lifeboat.dataset.spec import DatasetSpecError, check_against_data, load_spec
from lifeboat.dataset.validation import validate_csv
from lifeboat.settings import DATASET_NAME_PATTERN, Settings, get_settings

logger = logging.getLogger(__name__)

SPEC_FILE = "dataset.yaml"
RAW_FILE = Path("raw") / "train.csv"
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Characters of the spec fingerprint shown in one-line summaries.
FINGERPRINT_PREFIX = 12


class DatasetFolderError(ValueError):
    """A dataset folder cannot be created as asked (bad name, folder exists, unreadable file, bad columns)."""


@dataclass(frozen=True)
class DatasetCheck:
    """A dataset whose spec loads and agrees with its training data."""

    name: str
    spec_path: str
    rows: int
    features: int
    fingerprint: str

    def summary(self) -> str:
        """One line: name, rows, features, fingerprint prefix."""
        return (
            f"ok {self.name}: {self.rows} rows, {self.features} features, "
            f"fingerprint {self.fingerprint[:FINGERPRINT_PREFIX]}"
        )


@dataclass(frozen=True)
class DatasetEntry:
    """One line of ``lifeboat dataset list``: rows is None when the data is not pulled; error when the spec
    does not load."""

    name: str
    registered_model: str | None
    rows: int | None
    fingerprint: str | None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-serialisable form."""
        return asdict(self)


def dataset_folder(name: str, settings: Settings | None = None) -> Path:
    """``<data_root>/<name>``; refuses a name that is not a dataset name (lowercase, digits, _)."""
    if not re.match(DATASET_NAME_PATTERN, name):
        raise DatasetFolderError(
            f"invalid dataset name {name!r}: lowercase letters, digits and _, starting with a letter "
            f"(at most 40 characters)"
        )
    return (settings or get_settings()).data_root / name


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (every cell as text, empty = missing) or a Parquet file (``.parquet``/``.pq``, typed)."""
    if not path.is_file():
        raise DatasetFolderError(f"{path}: no such file")
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        return pd.concat(list(iter_csv_chunks(path)), ignore_index=True)
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pandas' and pyarrow's parse errors included
        kind = "Parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "CSV"
        raise DatasetFolderError(f"{path}: cannot read it as a {kind} file: {exc}") from exc


def _csv_text(frame: pd.DataFrame) -> str:
    """A typed table as the CSV lifeboat stores (header, no index, empty cells for missing values)."""
    return frame.to_csv(index=False, lineterminator="\n")


def create_dataset(
    name: str,
    source: Path | str,
    label: str,
    positive: str | None = None,
    id_column: str | None = None,
    force: bool = False,
    settings: Settings | None = None,
) -> tuple[DatasetCheck, Path]:
    """Create ``data/<name>/`` from ``source``: draft ``dataset.yaml``, copy the data to ``raw/train.csv``
    (Parquet converted to CSV), check the draft against it, then ``dvc add`` + ``dvc push`` the CSV.

    Returns the check of the new dataset and the ``.dvc`` pointer. Refuses (:class:`DatasetFolderError`,
    :class:`~lifeboat.dataset.infer.InferenceError`) before writing anything; if a later step fails, a new
    folder is removed again (with ``force``, the files written into the existing folder stay).
    """
    settings = settings or get_settings()
    folder = dataset_folder(name, settings)
    source = Path(source)
    if folder.exists() and not force:
        raise DatasetFolderError(
            f"{folder} already exists: choose another name, or pass --force to overwrite"
        )
    table = read_table(source)
    parquet = source.suffix.lower() in PARQUET_SUFFIXES
    csv_text = _csv_text(table) if parquet else None
    frame = (
        pd.read_csv(io.StringIO(csv_text), dtype=str, keep_default_na=False, na_values=[""])
        if parquet
        else table
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    draft = infer_spec(
        frame, name, label, positive=positive, id_column=id_column, description=f"Drafted from {source.name}"
    )
    header = (
        f"DRAFT written by `lifeboat dataset init` from {source} on {when}: REVIEW IT before training.\n"
        "Inferred from the data: types, ranges (observed + 10 % of the span), vocabularies, nullability,\n"
        "the label's positive value, median imputation + missing indicators, one-hot categories (+ other),\n"
        "and default model grids. Check the ranges and vocabularies against what new data may hold, the\n"
        "text columns left ignored, and the example. Reference of every key: docs/dataset-spec.md."
    )
    root = repo_root(settings.data_root.resolve())
    settings.data_root.mkdir(parents=True, exist_ok=True)
    created = not folder.exists()
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=settings.data_root))
    try:
        (staging / RAW_FILE).parent.mkdir(parents=True)
        if csv_text is not None:
            (staging / RAW_FILE).write_text(csv_text, encoding="utf-8")
        else:
            shutil.copyfile(source, staging / RAW_FILE)
        (staging / SPEC_FILE).write_text(render_yaml(draft, header), encoding="utf-8")
        _check(name, staging / SPEC_FILE, staging / RAW_FILE)
        if created:
            staging.rename(folder)
        else:
            (folder / RAW_FILE).parent.mkdir(parents=True, exist_ok=True)
            for relative in (RAW_FILE, Path(SPEC_FILE)):
                os.replace(staging / relative, folder / relative)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        pointer = add_and_push(folder / RAW_FILE, root=root, settings=settings)
    except DataError:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    check = _check(name, folder / SPEC_FILE, folder / RAW_FILE)
    logger.info("created dataset %s from %s (%d rows)", name, source, check.rows)
    return check, pointer


def _check(name: str, spec_path: Path, raw: Path) -> DatasetCheck:
    spec = load_spec(spec_path)
    if spec.name != name:
        raise DatasetSpecError(spec_path, "name", f"{spec.name!r} is not the folder's name {name!r}")
    summary = validate_csv(spec, raw)
    frame = pd.read_csv(raw)
    check_against_data(spec, frame, spec_path)
    return DatasetCheck(
        name=name,
        spec_path=str(spec_path),
        rows=summary.rows,
        features=_feature_count(spec, frame),
        fingerprint=spec.fingerprint(),
    )


def _feature_count(spec: DatasetSpec, frame: pd.DataFrame) -> int:
    """Matrix width: from the spec when it declares every one-hot value, else from an encoder fitted here."""
    names = spec.feature_names
    return len(names) if names is not None else len(fit(spec, frame).feature_names)


def check_dataset(name: str, settings: Settings | None = None) -> DatasetCheck:
    """Load ``data/<name>/dataset.yaml`` and check it against ``raw/train.csv``.

    Raises :class:`~lifeboat.dataset.spec.DatasetSpecError` (the spec is invalid or contradicts the data)
    or :class:`~lifeboat.dataset.schema.DataValidationError` (the data breaks the spec, or is not pulled).
    """
    folder = dataset_folder(name, settings)
    return _check(name, folder / SPEC_FILE, folder / RAW_FILE)


def dataset_names(settings: Settings | None = None) -> list[str]:
    """Names of the folders of the data root that hold a ``dataset.yaml``, sorted (folders whose name is not
    a dataset name, such as the hidden staging folder of an interrupted ``init``, are skipped)."""
    root = (settings or get_settings()).data_root
    names = (path.parent.name for path in root.glob(f"*/{SPEC_FILE}") if path.is_file())
    return sorted(name for name in names if re.match(DATASET_NAME_PATTERN, name))


def list_datasets(settings: Settings | None = None) -> list[DatasetEntry]:
    """Every dataset of the data root: its registered model, rows (None: not pulled), spec fingerprint."""
    settings = settings or get_settings()
    entries = []
    for name in dataset_names(settings):
        folder = settings.data_root / name
        raw = folder / RAW_FILE
        rows = count_rows(raw) if raw.is_file() else None
        try:
            spec = load_spec(folder / SPEC_FILE)
        except DatasetSpecError as exc:
            entries.append(DatasetEntry(name, None, rows, None, error=str(exc)))
            continue
        entries.append(DatasetEntry(name, spec.registered_model_name, rows, spec.fingerprint()))
    return entries


__all__ = [
    "DatasetCheck",
    "DatasetEntry",
    "DatasetFolderError",
    "InferenceError",
    "check_dataset",
    "create_dataset",
    "dataset_folder",
    "dataset_names",
    "list_datasets",
    "read_table",
]
