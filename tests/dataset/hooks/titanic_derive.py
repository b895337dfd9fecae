"""A ``derive`` hook for the tests: the family size computed in Python instead of by the ``sum`` built-in."""

from __future__ import annotations

from typing import Any

import numpy as np


def family(columns: dict[str, Any]) -> dict[str, Any]:
    """``SibSp + Parch + 1`` and whether the passenger's cabin deck is known (its first letter)."""
    size = (
        np.asarray(columns["SibSp"], dtype=np.float64) + np.asarray(columns["Parch"], dtype=np.float64) + 1.0
    )
    decks = [c[0] if c else None for c in columns["Cabin"]]
    return {"hook_family": size, "hook_deck": decks}


def broken(columns: dict[str, Any]) -> dict[str, Any]:
    """Forgets its output."""
    return {}
