"""lifeboat.stack.bootstrap: counting packages from uv and pip output, phase lines, the failure tail, and the
stdlib-only rule (it runs before the virtualenv exists). Installers are faked by small scripts: real
subprocesses, no network."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lifeboat.stack import bootstrap
from lifeboat.stack.bootstrap import Bootstrap, BootstrapError, InstallProgress, Plan, lock_pins

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
PHASE_LINE = re.compile(r"^\[\s*\d+\.\ds\] [a-z]+: .+$")

LOCK = """\
a2wsgi==1.10.10 \\
    --hash=sha256:aaaa
    # via apache-airflow-core
flask-cors==6.0.5 \\
    --hash=sha256:bbbb
pywin32==312 ; sys_platform == 'win32' \\
    --hash=sha256:cccc
zc-lockfile==4.0 \\
    --hash=sha256:dddd
"""

UV_OUTPUT = """\
Resolved 3 packages in 4ms
Prepared 3 packages in 1.20s
Installed 3 packages in 12ms
 + a2wsgi==1.10.10
 + flask-cors==6.0.5
 + zc-lockfile==4.0
"""

PIP_OUTPUT = """\
Ignoring pywin32: markers 'sys_platform == "win32"' don't match your environment
Collecting a2wsgi==1.10.10 (from -r requirements.lock (line 1))
  Downloading a2wsgi-1.10.10-py3-none-any.whl (17 kB)
Collecting Flask_Cors==6.0.5 (from -r requirements.lock (line 4))
Requirement already satisfied: zc.lockfile==4.0 in ./.venv/lib/python3.11/site-packages (4.0)
Installing collected packages: a2wsgi, Flask_Cors
Successfully installed Flask_Cors-6.0.5 a2wsgi-1.10.10
"""


def fake_program(path: Path, output: str, exit_code: int = 0) -> Path:
    """An executable that prints ``output`` (whatever its arguments) and exits with ``exit_code``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdout.write({output!r})\n"
        "if sys.argv[1:2] == ['--version']: sys.exit(0)\n"
        f"sys.exit({exit_code})\n"
    )
    path.chmod(0o755)
    return path


def feed(output: str, total: int) -> InstallProgress:
    """The progress after every line of ``output``."""
    progress = InstallProgress(total=total)
    for line in output.splitlines(keepends=True):
        progress.feed(line)
    return progress


def test_lock_pins_reads_each_requirement_once_with_markers_and_hashes(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    assert lock_pins(lock) == {
        "a2wsgi": "1.10.10",
        "flask-cors": "6.0.5",
        "pywin32": "312",
        "zc-lockfile": "4.0",
    }


def test_uv_output_counts_the_added_packages_against_what_uv_resolved() -> None:
    progress = feed(UV_OUTPUT, total=4)
    assert progress.installed == {"a2wsgi", "flask-cors", "zc-lockfile"}
    assert progress.wanted == 3  # the Windows-only pin is not resolved here
    assert progress.summary() == "3/3 packages (3 installed, 0 already there)"


def test_uv_on_an_up_to_date_environment_counts_the_audit() -> None:
    progress = feed("Resolved 3 packages in 3ms\nAudited 3 packages in 1ms\n", total=4)
    assert progress.done == 3
    assert progress.summary() == "3/3 packages (0 installed, 3 already there)"


def test_pip_output_counts_installed_present_and_skipped_packages() -> None:
    progress = feed(PIP_OUTPUT, total=4)
    assert progress.collected == 2
    assert progress.installed == {"a2wsgi", "flask-cors"}
    assert progress.present == {"zc-lockfile"}
    assert progress.skipped == {"pywin32"}
    assert progress.summary() == "3/3 packages (2 installed, 1 already there)"


def test_only_pips_collecting_lines_count_as_progress_while_it_runs() -> None:
    progress = InstallProgress(total=4)
    moved = [progress.feed(line) for line in (PIP_OUTPUT + UV_OUTPUT).splitlines()]
    assert sum(moved) == 2
    assert progress.running() == "2/3 packages collected"


def test_a_phase_line_shows_the_elapsed_time(tmp_path: Path) -> None:
    out = io.StringIO()
    boot = Bootstrap(tmp_path / "logs" / "install.log", out, started=time.monotonic() - 16.7)
    boot.say("environment", "266/267 packages")
    line = out.getvalue().rstrip("\n")
    assert PHASE_LINE.match(line), line
    assert re.fullmatch(r"\[ 16\.[78]s\] environment: 266/267 packages", line), line
    assert (tmp_path / "logs" / "install.log").exists()


def test_a_failing_command_raises_with_the_last_20_lines_and_the_log_keeps_all(tmp_path: Path) -> None:
    installer = fake_program(
        tmp_path / "installer", "".join(f"line {n}\n" for n in range(1, 31)), exit_code=3
    )
    log = tmp_path / "install.log"
    boot = Bootstrap(log, io.StringIO())
    with pytest.raises(BootstrapError) as raised:
        boot.run("environment", [str(installer)])
    assert raised.value.returncode == 3
    assert raised.value.tail == [f"line {n}" for n in range(11, 31)]
    text = log.read_text()
    assert "line 1\n" in text
    assert "# exit code 3" in text


def test_a_missing_installer_is_a_failed_phase_not_a_traceback(tmp_path: Path) -> None:
    boot = Bootstrap(tmp_path / "install.log", io.StringIO())
    with pytest.raises(BootstrapError) as raised:
        boot.run("environment", [str(tmp_path / "no-such-installer"), "install"])
    assert raised.value.returncode == 127
    assert "no-such-installer" in raised.value.tail[0]


def make_plan(tmp_path: Path, installer: str) -> Plan:
    """A plan whose virtualenv already exists (a fake one), so no real environment is built."""
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    tools_lock = tmp_path / "requirements-tools.lock"
    tools_lock.write_text("uv==0.13.9 \\\n    --hash=sha256:eeee\n")
    venv = tmp_path / "venv"
    fake_program(venv / "bin" / "python", "")
    return Plan(
        venv=venv,
        lock=lock,
        installer=installer,
        python=sys.executable,
        tools_dir=tmp_path / "tools",
        tools_lock=tools_lock,
        project=tmp_path,
    )


def test_install_with_uv_prints_one_line_per_phase_and_a_package_count(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, "uv")
    fake_program(plan.tools_dir / "bin" / "uv", "uv 0.13.9\n" + UV_OUTPUT)
    out = io.StringIO()
    log = tmp_path / "logs" / "install.log"
    assert bootstrap.install(plan, out, log) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(f"(full log: {log})")
    assert all(PHASE_LINE.match(line) for line in lines[1:]), lines
    assert [line.split("] ", 1)[1].split(":")[0] for line in lines[1:]] == [
        "tools",
        "virtualenv",
        "environment",
        "project",
    ]
    assert "environment: 3/3 packages (3 installed, 0 already there)" in out.getvalue()
    assert " + flask-cors==6.0.5" in log.read_text()  # the installer's lines go to the log, not the screen
    assert "+ flask-cors" not in out.getvalue()


def test_install_with_pip_fails_with_the_tail_and_the_log_path(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, "pip")
    fake_program(plan.venv / "bin" / "pip", PIP_OUTPUT + "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES\n", 1)
    out = io.StringIO()
    log = tmp_path / "install.log"
    assert bootstrap.install(plan, out, log) == 1
    text = out.getvalue()
    assert "error: environment failed (exit code 1)" in text
    assert "    ERROR: THESE PACKAGES DO NOT MATCH THE HASHES" in text
    assert text.rstrip().endswith(f"full log: {log}")
    assert "project:" not in text  # nothing runs after the failed phase


def test_the_module_runs_before_the_virtualenv_exists() -> None:
    """Isolated mode and no site-packages, as with a system Python: it imports and loads nothing else."""
    script = (
        "import sys; from lifeboat.stack import bootstrap; "
        "names = sys.stdlib_module_names | {'__main__'}; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] not in names); "
        "print('LOADED', loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); {script}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED ['lifeboat', 'lifeboat.stack', 'lifeboat.stack.bootstrap']" in result.stdout
    usage = subprocess.run(
        [sys.executable, "-S", "-m", "lifeboat.stack.bootstrap", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 0, usage.stderr
    assert "{env,lock}" in usage.stdout


@pytest.mark.parametrize(
    "path",
    ["lifeboat/__init__.py", "lifeboat/stack/__init__.py", "lifeboat/stack/bootstrap.py"],
)
def test_the_bootstrap_and_its_packages_import_only_the_standard_library(path: str) -> None:
    tree = ast.parse((REPO_ROOT / path).read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    outside = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names}
    assert outside == set()
    if path.endswith("__init__.py"):
        assert modules == set(), f"{path} must stay import-free"


def test_the_environment_is_installed_with_bytecode_by_either_installer(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, "uv")
    uv = plan.tools_dir / "bin" / "uv"
    assert bootstrap.compile_option(uv) in bootstrap.install_command(plan, uv, bootstrap.compile_option(uv))
    assert bootstrap.compile_option(uv) == "--compile-bytecode"
    assert bootstrap.compile_option(None) == "--compile"


def test_the_project_phase_compiles_the_projects_packages_even_with_pythondontwritebytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    for name in ("lifeboat", "serving"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text("VALUE = 1\n")
    (project / "notes").mkdir()
    (project / "notes" / "draft.py").write_text("x = 1\n")
    plan = Plan(
        venv=Path(sys.executable).parent.parent,
        lock=tmp_path / "requirements.lock",
        installer="uv",
        python=sys.executable,
        tools_dir=tmp_path / "tools",
        tools_lock=tmp_path / "requirements-tools.lock",
        project=project,
    )
    command = bootstrap.compile_project_command(plan)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    subprocess.run(command, check=True)
    compiled = sorted(p.relative_to(project).parts[0] for p in project.rglob("*.pyc"))
    assert compiled == ["lifeboat", "serving"]  # the project's packages, nothing else


def test_the_environment_this_suite_runs_in_has_bytecode_for_the_heavy_packages() -> None:
    """``make venv``/``venv-dev`` compile at install time (see lifeboat.stack.bootstrap's docstring)."""
    import importlib.util

    missing = []
    for name in ("mlflow", "airflow", "sklearn", "pyspark", "fastapi", "pydantic", "pandas"):
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        assert spec.origin is not None, name
        if not Path(importlib.util.cache_from_source(spec.origin)).is_file():
            missing.append(name)
    assert not missing, f"installed without .pyc files (rebuild the environment with make venv): {missing}"
