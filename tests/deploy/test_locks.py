"""The hashed lock files (``make lock``) against their inputs: every pin hashed, constraints.txt's versions,
test and lint tools only in the dev lock, and the Dockerfiles installing from a lock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lifeboat.stack.bootstrap import LOCKS, lock_pins
from tests.deploy.conftest import AIRFLOW_DOCKERFILE, REPO_ROOT, SERVING_DOCKERFILE

pytestmark = pytest.mark.unit

LOCK_FILES = [REPO_ROOT / lock for lock, _ in LOCKS]
# The versions the platform was checked with (docs/stack-notes.md): the locks must not drift from
# constraints.txt.
KEY_PACKAGES = (
    "pyspark",
    "apache-airflow",
    "mlflow",
    "dvc",
    "evidently",
    "fastapi",
    "onnxruntime",
    "pandas",
    "numpy",
    "scikit-learn",
)


def lock_entries(path: Path) -> list[str]:
    """Each requirement of a lock with its continuation lines (hashes), comments left out."""
    entries: list[str] = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith(" ") and entries:
            entries[-1] += "\n" + line
        else:
            entries.append(line)
    return entries


@pytest.mark.parametrize("lock", LOCK_FILES, ids=lambda p: p.name)
def test_every_pin_of_every_lock_is_exact_and_hashed(lock: Path) -> None:
    entries = lock_entries(lock)
    assert entries
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+", entry), entry.splitlines()[0]
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"no hash: {entry.splitlines()[0]}"
    assert len(lock_pins(lock)) == len(entries)


@pytest.mark.parametrize("lock", LOCK_FILES, ids=lambda p: p.name)
def test_every_direct_requirement_is_locked_at_its_pin(lock: Path) -> None:
    inputs = dict(LOCKS)[lock.name]
    pins = lock_pins(lock)
    for source in inputs:
        lines = [
            line for line in (REPO_ROOT / source).read_text().splitlines() if line.split("#", 1)[0].strip()
        ]
        assert len(lock_pins(REPO_ROOT / source)) == len(lines), (
            f"{source}: every requirement is name==version"
        )
        for name, version in lock_pins(REPO_ROOT / source).items():
            assert pins.get(name) == version, f"{lock.name}: {name} {pins.get(name)} != {source}'s {version}"


@pytest.mark.parametrize("lock", LOCK_FILES[:3], ids=lambda p: p.name)
def test_the_locks_keep_the_versions_of_the_constraints(lock: Path) -> None:
    constraints = lock_pins(REPO_ROOT / "constraints.txt")
    pins = lock_pins(lock)
    differ = {n: (v, constraints[n]) for n, v in pins.items() if n in constraints and constraints[n] != v}
    assert differ == {}
    if lock.name != "requirements-serving.lock":
        assert {n: pins[n] for n in KEY_PACKAGES} == {n: constraints[n] for n in KEY_PACKAGES}


def test_the_dev_set_is_only_in_the_dev_lock() -> None:
    dev = lock_pins(REPO_ROOT / "requirements-dev.txt")
    runtime = lock_pins(REPO_ROOT / "requirements.lock")
    dev_lock = lock_pins(REPO_ROOT / "requirements-dev.lock")
    assert {"pytest", "pytest-timeout", "ruff", "mypy"} <= set(dev)
    assert not set(dev) & set(runtime), "test and lint tools leaked into the runtime lock"
    assert not set(dev) & set(lock_pins(REPO_ROOT / "requirements.txt"))
    # The dev lock is the runtime lock plus the tools, at the same versions.
    assert {n: dev_lock.get(n) for n in runtime} == runtime


def test_the_tools_lock_pins_uv() -> None:
    assert set(lock_pins(REPO_ROOT / "requirements-tools.lock")) == {"uv"}


@pytest.mark.parametrize(
    ("dockerfile", "lock"),
    [(AIRFLOW_DOCKERFILE, "requirements.lock"), (SERVING_DOCKERFILE, "requirements-serving.lock")],
    ids=lambda v: getattr(v, "name", v),
)
def test_the_images_install_their_runtime_lock_with_hashes(dockerfile: Path, lock: str) -> None:
    text = dockerfile.read_text()
    install = re.search(r"pip install ([^\n\\]*)", text)
    assert install is not None
    assert "--require-hashes" in install.group(1)
    assert "--no-deps" in install.group(1)
    assert re.search(rf"-r \S*{re.escape(lock)}\b", install.group(1))
    instructions = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "requirements-dev" not in instructions
    assert not re.search(r"constraints\.txt|requirements(-serving)?\.txt", instructions)
