"""The import rules of the package layout (README, "Layout"), checked on the source.

- only ``lifeboat.orchestration`` imports Airflow;
- only ``lifeboat.training`` imports pyspark;
- ``serving`` imports from lifeboat only the settings, the dataset (schema, encoding), the serving artifact,
  the prediction log and its labels (feedback) — and importing the server loads neither pyspark nor Airflow.

Imports under ``if TYPE_CHECKING:`` are for type checkers only and do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

#: What the server may import from lifeboat (a module, or a package and everything under it).
SERVING_ALLOWED = (
    "lifeboat.settings",
    "lifeboat.dataset",
    "lifeboat.registry.artifact",
    "lifeboat.monitoring.prediction_log",
    "lifeboat.monitoring.feedback",
    "lifeboat.monitoring.label_input",
    "lifeboat.monitoring.live",
)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(path: Path) -> set[str]:
    """Every module a file imports at run time (absolute names; ``from x import y`` gives ``x`` and
    ``x.y``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def _modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def _importers(prefix: str, folder: str = "lifeboat") -> set[str]:
    """Files under ``folder`` importing ``prefix`` or a sub-module of it, relative to the repository."""
    return {
        str(path.relative_to(REPO))
        for path in _modules(folder)
        if any(name == prefix or name.startswith(prefix + ".") for name in _runtime_imports(path))
    }


def test_the_rules_see_imports_inside_functions_and_skip_type_checking_blocks(tmp_path: Path) -> None:
    module = tmp_path / "sample.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import pyspark\n"
        "def job():\n    from airflow.sdk import task\n"
    )
    assert _runtime_imports(module) >= {"airflow.sdk", "airflow.sdk.task"}
    assert "pyspark" not in _runtime_imports(module)


def test_only_orchestration_imports_airflow() -> None:
    offenders = {p for p in _importers("airflow") if not p.startswith("lifeboat/orchestration/")}
    assert offenders == set()


def test_only_training_imports_pyspark() -> None:
    offenders = {p for p in _importers("pyspark") if not p.startswith("lifeboat/training/")}
    assert offenders == set()


def test_serving_imports_only_the_settings_dataset_artifact_and_prediction_log() -> None:
    imported = {name for path in _modules("serving") for name in _runtime_imports(path)}
    from_lifeboat = {
        name for name in imported if name.startswith("lifeboat.") and not name.startswith("lifeboat.dataset.")
    }
    # ``from lifeboat.registry.artifact import X`` also yields ``lifeboat.registry.artifact.X``
    offenders = {
        name
        for name in from_lifeboat
        if not any(name == allowed or name.startswith(allowed + ".") for allowed in SERVING_ALLOWED)
    }
    assert offenders == set()


def test_importing_the_server_loads_neither_pyspark_nor_airflow() -> None:
    code = (
        "import sys, serving.app\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pyspark', 'airflow'})\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""


#: "No module over about 500 lines" (README, "Layout"): the limit leaves a little room, never a second job.
MAX_MODULE_LINES = 550


def test_no_module_of_the_package_is_over_about_500_lines() -> None:
    sizes = {str(path.relative_to(REPO)): len(path.read_text().splitlines()) for path in _modules("lifeboat")}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
