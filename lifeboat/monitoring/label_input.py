"""Labels as clients send them: a JSON body ``{"labels": [{"request_id": ..., "label": ...}]}`` or a CSV with
the columns ``request_id`` and ``label``.

Parsing only reads the shape (an error names the JSON position or the CSV line); whether a value is a label
of the dataset is judged by :func:`lifeboat.monitoring.feedback.ingest_labels`, which names the row (and, for
a CSV, the line) of each bad value.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from lifeboat.monitoring.feedback import FeedbackInvalid, LabelIn, LabelProblem

__all__ = ["CSV_COLUMNS", "labels_from_csv", "labels_from_file", "labels_from_json"]

#: The columns of a labels CSV (in any order).
CSV_COLUMNS = ("request_id", "label")
_KEYS = frozenset(CSV_COLUMNS)


def _body_problem(summary: str, msg: str, line: int | None = None) -> FeedbackInvalid:
    return FeedbackInvalid(summary, [LabelProblem(None, None, None, msg, line)])


def labels_from_json(data: bytes | str) -> list[LabelIn]:
    """The labels of a JSON body ``{"labels": [{"request_id": "...", "label": ...}, ...]}``.

    Raises :class:`FeedbackInvalid` for invalid JSON (naming the line and column), another shape, or items
    that are not objects with exactly the keys ``request_id`` and ``label`` (naming each such item).
    """
    if not data.strip():
        raise _body_problem("the body is empty", 'expected {"labels": [...]}')
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise _body_problem(
            "the body is not valid JSON", f"{exc.msg} (column {exc.colno})", exc.lineno
        ) from exc
    except (ValueError, RecursionError) as exc:  # not UTF-8, or nested too deep
        raise _body_problem("the body is not valid JSON", str(exc)) from exc
    items = payload.get("labels") if isinstance(payload, dict) else None
    if not isinstance(items, list) or set(payload) != {"labels"}:
        raise _body_problem(
            'the body must be a JSON object {"labels": [...]}',
            'expected an object whose only key is "labels", a list of {"request_id", "label"} objects',
        )
    labels: list[LabelIn] = []
    problems: list[LabelProblem] = []
    for row, item in enumerate(items):
        if not isinstance(item, dict) or item.keys() != _KEYS:
            got = sorted(item) if isinstance(item, dict) else type(item).__name__
            problems.append(
                LabelProblem(
                    row, None, None, f'expected an object with the keys "request_id" and "label", got {got}'
                )
            )
            continue
        labels.append(LabelIn(item["request_id"], item["label"], row))
    if problems:
        raise FeedbackInvalid(
            f"{len(problems)} of {len(items)} label(s) are malformed; nothing was stored", problems
        )
    return labels


def labels_from_csv(data: bytes | str) -> list[LabelIn]:
    """The labels of a CSV with a header naming ``request_id`` and ``label`` (blank lines are skipped).

    Raises :class:`FeedbackInvalid` naming the line of a malformed row and the columns of a bad header.
    """
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise _body_problem("the CSV is not UTF-8 text", str(exc)) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    labels: list[LabelIn] = []
    problems: list[LabelProblem] = []
    try:
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            raise _body_problem("the CSV is empty", "a header row request_id,label is required", 1)
        if sorted(header) != sorted(CSV_COLUMNS):
            raise _body_problem(
                "the CSV header is invalid; nothing was stored",
                f"expected the columns request_id and label, got {','.join(header)}",
                1,
            )
        rid_at, label_at = header.index("request_id"), header.index("label")
        for line in reader:
            if not any(cell.strip() for cell in line):
                continue
            row = len(labels) + len(problems)
            if len(line) != len(header):
                problems.append(
                    LabelProblem(
                        row,
                        None,
                        None,
                        f"the row has {len(line)} cells, the header {len(header)}",
                        reader.line_num,
                    )
                )
                continue
            labels.append(LabelIn(line[rid_at].strip(), line[label_at].strip(), row, reader.line_num))
    except csv.Error as exc:
        raise _body_problem("the CSV cannot be parsed", str(exc), reader.line_num) from exc
    if problems:
        total = len(labels) + len(problems)
        raise FeedbackInvalid(
            f"{len(problems)} of {total} CSV row(s) are malformed; nothing was stored", problems
        )
    return labels


def labels_from_file(path: Path) -> list[LabelIn]:
    """The labels of a file: JSON when it ends in ``.json``, else CSV."""
    data = path.read_bytes()
    return labels_from_json(data) if path.suffix.lower() == ".json" else labels_from_csv(data)
