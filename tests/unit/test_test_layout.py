"""The test tree itself: pytest imports test modules by basename (rootdir mode, no packages), so two test
files with the same name in different folders stop the whole run at collection (CI failed this way once)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS_DIR = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_unique_basename() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in TESTS_DIR.rglob("test_*.py"):
        where[path.name].append(str(path.relative_to(TESTS_DIR)))
    clashes = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
