"""The DVC data layer: pull and push versioned data, fingerprint a dataset, add new labelled batches.

Training data is the raw CSV (``data/<dataset>/raw/train.csv``) followed by every labelled batch in the
incoming folder (``data/<dataset>/incoming/*.csv``), each tracked by DVC through its own ``.dvc`` pointer
file. DVC runs as the ``dvc`` executable of this environment in a subprocess, so its own locking, logging and
exit codes apply unchanged; lifeboat serialises its DVC commands with a file lock in the state folder,
because two DVC commands at once in one repository fail with a lock error.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lifeboat.dataset.spec import spec_of
from lifeboat.dataset.validation import validate_csv
from lifeboat.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DVC_DIR = ".dvc"
POINTER_SUFFIX = ".dvc"
LOCK_FILE = "dvc.lock"
#: How long a lifeboat process waits for another one's DVC command before giving up.
DEFAULT_LOCK_TIMEOUT = 900.0
#: Longest a single DVC command may run (pull/push of large data included).
DEFAULT_DVC_TIMEOUT = 3600.0
_HASH_CHUNK = 1 << 20
_POINTER_MD5 = re.compile(r"^\s*-?\s*md5:\s*([0-9a-f]{32})\s*$", re.MULTILINE)
_BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class DataError(RuntimeError):
    """A DVC operation or a data file failed; the message names the file and what went wrong."""


@dataclass(frozen=True)
class FileFingerprint:
    """One data file: its content hash (as DVC records it), size and number of data rows."""

    path: str
    md5: str
    size: int
    rows: int
    pointer_md5: str | None

    @property
    def matches_pointer(self) -> bool | None:
        """Whether the file equals the version its ``.dvc`` pointer records (None: not tracked)."""
        return None if self.pointer_md5 is None else self.pointer_md5 == self.md5

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-serialisable form."""
        return {
            "path": self.path,
            "md5": self.md5,
            "size": self.size,
            "rows": self.rows,
            "pointer_md5": self.pointer_md5,
        }


@dataclass(frozen=True)
class DatasetFingerprint:
    """The files a training run reads, in order, with their total row count."""

    files: tuple[FileFingerprint, ...]

    @property
    def total_rows(self) -> int:
        """Data rows over all files (headers excluded)."""
        return sum(f.rows for f in self.files)

    @property
    def md5(self) -> str:
        """One hash for the whole dataset: changes when any file, or the order of files, changes."""
        digest = hashlib.md5(usedforsecurity=False)
        for f in self.files:
            digest.update(f"{Path(f.path).name}:{f.md5}\n".encode())
        return digest.hexdigest()

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-serialisable form (small enough for XCom and MLflow tags)."""
        return {
            "files": [f.as_dict() for f in self.files],
            "total_rows": self.total_rows,
            "md5": self.md5,
        }


def repo_root(start: Path | str | None = None) -> Path:
    """Return the DVC repository containing ``start`` (default: the working directory).

    Walks up from ``start`` to the first folder holding a ``.dvc/`` directory.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DVC_DIR).is_dir():
            return folder
    raise DataError(f"{here} is not inside a DVC repository (no {DVC_DIR}/ folder in it or above it)")


def dvc_executable() -> str:
    """Path of the ``dvc`` command: the one installed next to this Python, else the first on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("dvc")
    if found is None:
        raise DataError(f"the dvc command was not found next to {sys.executable} nor on PATH")
    return found


@contextmanager
def dvc_lock(settings: Settings | None = None, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[Path]:
    """Hold lifeboat's DVC lock (an ``fcntl`` lock on a file in the state folder) for the block.

    Not re-entrant: a second acquisition, even in the same process, waits for the first to end.
    """
    settings = settings or get_settings()
    path = settings.state_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise DataError(
                        f"another lifeboat process has held the DVC lock {path} for over {timeout:g} s"
                    ) from exc
                time.sleep(0.1)
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _dvc(args: Sequence[str], root: Path, timeout: float = DEFAULT_DVC_TIMEOUT) -> str:
    """Run one DVC command in ``root`` (the caller holds the lock); return stdout, raise on failure."""
    command = [dvc_executable(), *args]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    logger.info("running %s in %s", " ".join(command[1:]), root)
    try:
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DataError(f"dvc {' '.join(args)} did not finish within {timeout:g} s (in {root})") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or "(no output)"
        raise DataError(f"dvc {' '.join(args)} failed with exit code {done.returncode} in {root}:\n{detail}")
    return done.stdout


def _relative_to_root(path: Path, root: Path) -> str:
    """``path`` as DVC wants it: relative to the repository root, which must contain it."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(root))
    except ValueError as exc:
        raise DataError(f"{path} is outside the DVC repository {root}") from exc


def pull(
    targets: Iterable[Path | str] | None = None,
    root: Path | None = None,
    settings: Settings | None = None,
) -> None:
    """Fetch DVC-tracked data from the default remote into the workspace.

    ``targets`` are data files or their ``.dvc`` pointers (relative paths are relative to the working
    directory); None pulls everything the repository tracks.
    Raises :class:`DataError` with DVC's own message (which names the files it could not check out) when,
    for example, the remote is unreachable or misses an object.
    """
    root = root or repo_root()
    names = [_relative_to_root(Path(t), root) for t in targets or ()]
    with dvc_lock(settings):
        try:
            _dvc(["pull", *names], root)
        except DataError as exc:
            what = ", ".join(names) if names else f"the data tracked in {root}"
            raise DataError(f"failed to pull {what} from the DVC remote: {exc}") from exc
    logger.info("pulled %s", ", ".join(names) if names else f"all DVC-tracked data in {root}")


def pointer_path(path: Path) -> Path:
    """The ``.dvc`` pointer file that tracks ``path``."""
    return path.with_name(path.name + POINTER_SUFFIX)


def _add_and_push_locked(path: Path, root: Path) -> Path:
    """``dvc add`` + ``dvc push`` of one file; undo the add if the push fails. Caller holds the lock."""
    name = _relative_to_root(path, root)
    pointer = pointer_path(path)
    previous = pointer.read_bytes() if pointer.is_file() else None
    _dvc(["add", name], root)
    try:
        _dvc(["push", name + POINTER_SUFFIX], root)
    except DataError as push_error:
        try:
            if previous is None:
                _dvc(["remove", name + POINTER_SUFFIX], root)
            else:
                pointer.write_bytes(previous)
        except (DataError, OSError) as undo_error:
            raise DataError(
                f"{path} was added to DVC but pushing it to the remote failed, and undoing the add failed "
                f"too ({undo_error}); fix the remote and run `dvc push {name}{POINTER_SUFFIX}`, or "
                f"`dvc remove {name}{POINTER_SUFFIX}`. Push error: {push_error}"
            ) from push_error
        raise DataError(
            f"pushing {path} to the DVC remote failed, so the add was undone ({name} is tracked as "
            f"before): {push_error}"
        ) from push_error
    logger.info("added %s to DVC and pushed it", name)
    return pointer


def add_and_push(path: Path | str, root: Path | None = None, settings: Settings | None = None) -> Path:
    """Track ``path`` with DVC and push it to the default remote; return its ``.dvc`` pointer.

    Never leaves a half-added file: if the push fails, the add is undone (the pointer is removed, or
    restored to its previous content) and :class:`DataError` says so.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file to add to DVC")
    root = root or repo_root(path.resolve().parent)
    with dvc_lock(settings):
        return _add_and_push_locked(path, root)


def training_files(settings: Settings | None = None) -> list[Path]:
    """The files a training run reads: the raw CSV, then every incoming batch (``*.csv``) sorted by name."""
    settings = settings or get_settings()
    batches = sorted(settings.incoming_dir.glob("*.csv"), key=lambda p: p.name)
    return [settings.raw_data, *(b for b in batches if b.is_file())]


def file_md5(path: Path) -> str:
    """MD5 of the file's bytes: the value DVC 3 records as ``md5:`` in the file's ``.dvc`` pointer."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def count_rows(path: Path) -> int:
    """Number of CSV records after the header (quoted newlines inside a cell do not start a row)."""
    with path.open(newline="", encoding="utf-8") as handle:
        records = sum(1 for record in csv.reader(handle) if record)
    return max(records - 1, 0)


def pointer_md5(path: Path) -> str | None:
    """The md5 that ``path``'s ``.dvc`` pointer records, or None when the file is not tracked."""
    pointer = pointer_path(path)
    if not pointer.is_file():
        return None
    match = _POINTER_MD5.search(pointer.read_text(encoding="utf-8"))
    if match is None:
        raise DataError(f"{pointer}: no md5 recorded in this DVC pointer file")
    return match.group(1)


def fingerprint(paths: Iterable[Path | str]) -> DatasetFingerprint:
    """Fingerprint data files: per file md5 (comparable with the ``.dvc`` pointer), size and rows."""
    files = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise DataError(f"{path}: file not found (run `lifeboat pull` to fetch DVC-tracked data)")
        try:
            rows = count_rows(path)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: not a readable UTF-8 CSV file ({exc})") from exc
        files.append(
            FileFingerprint(
                path=str(path),
                md5=file_md5(path),
                size=path.stat().st_size,
                rows=rows,
                pointer_md5=pointer_md5(path),
            )
        )
    return DatasetFingerprint(tuple(files))


def batch_name(now: datetime | None = None) -> str:
    """Default file name of a new batch: ``batch-<UTC timestamp>.csv``, which sorts chronologically."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"batch-{moment:%Y%m%dT%H%M%S.%f}Z.csv"


def batch_file_name(name: str | None) -> str:
    """Check a batch file name given by the user (no folders, no hidden files) and give it ``.csv``."""
    if name is None:
        return batch_name()
    chosen = name if name.endswith(".csv") else f"{name}.csv"
    if not _BATCH_NAME.match(chosen):
        raise DataError(
            f"invalid batch name {name!r}: use letters, digits, '.', '_' and '-' only, without folders"
        )
    return chosen


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so that no reader ever sees a partial ``target``."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, _HASH_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_batch(
    csv_path: Path | str,
    name: str | None = None,
    settings: Settings | None = None,
    root: Path | None = None,
) -> Path:
    """Add a new labelled batch to the training data and version it; return its path in the incoming folder.

    The CSV is validated first (a :class:`~lifeboat.dataset.schema.DataValidationError` propagates
    unchanged and
    nothing is copied), then copied atomically into the incoming folder as ``name`` (default
    ``batch-<UTC timestamp>.csv``), then tracked with DVC and pushed. If DVC fails, the copy is removed
    again and :class:`DataError` explains why.
    """
    source = Path(csv_path)
    settings = settings or get_settings()
    summary = validate_csv(spec_of(settings), source, require_label=True)
    target_name = batch_file_name(name)
    incoming = settings.incoming_dir
    root = root or repo_root(incoming.resolve())
    with dvc_lock(settings):
        incoming.mkdir(parents=True, exist_ok=True)
        target = incoming / target_name
        if target.exists() or pointer_path(target).exists():
            raise DataError(f"{target} already exists: choose another batch name")
        _copy_atomically(source, target)
        try:
            _add_and_push_locked(target, root)
        except DataError as exc:
            target.unlink(missing_ok=True)
            raise DataError(f"batch {source} was not added (the copy {target} was removed): {exc}") from exc
    logger.info("added batch %s (%d rows) as %s", source, summary.rows, target)
    return target


def next_training_id(id_column: str | None, files: list[Path]) -> int | None:
    """The first id after every id of the training files (raw data and incoming batches), so a new batch
    never collides with them; None for a dataset without an id column."""
    if id_column is None:
        return None
    import pandas as pd  # not at module level: DVC commands do not need it

    largest = 0
    for path in files:
        ids = pd.to_numeric(pd.read_csv(path, usecols=[id_column])[id_column], errors="coerce")
        if ids.notna().any():
            largest = max(largest, int(ids.max()))
    return largest + 1
