"""Real git + DVC repositories in temporary folders, with a local remote folder inside (like the project's
bundled ``data/remote``), so DVC tests touch neither the project's repository nor the network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DVC = str(Path(sys.executable).parent / "dvc")
GIT_IDENTITY = ["-c", "user.name=lifeboat tests", "-c", "user.email=tests@lifeboat.invalid"]


def run(args: list[str], cwd: Path) -> str:
    """Run a command in ``cwd``; fail the test with its output unless it succeeds; return its stdout."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def remote_object(remote: Path, md5: str) -> Path:
    """Where a DVC 3 local remote keeps the object of a file with this md5."""
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def init_repo(root: Path) -> Path:
    """Make ``root`` a git + DVC repository whose default remote is the folder ``remote/`` inside it."""
    root.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q"], root)
    run([DVC, "init", "-q"], root)
    # What `dvc config` / `dvc remote add -d bundled remote` would write, without four more DVC runs.
    (root / ".dvc" / "config").write_text(
        "[core]\n    analytics = false\n    check_update = false\n    autostage = false\n"
        "    remote = bundled\n['remote \"bundled\"']\n    url = ../remote\n"
    )
    return root
