"""Static checks of docker-compose.yml, .env.example, Dockerfile.airflow, Dockerfile.serving and docker/.

No Docker engine: the compose file is validated against the vendored Compose Specification schema and
checked for the rules of docs/deployment.md; `docker compose config` runs too when a Compose v2 CLI exists.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from lifeboat.settings import Settings
from tests.deploy.compose import (
    ComposeProject,
    InterpolationError,
    Service,
    load_project,
    load_yaml,
    missing_required,
    read_dockerfile,
    read_env_file,
    tree_references,
)
from tests.deploy.conftest import (
    AIRFLOW_DOCKERFILE,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    NEW_ENV_SCRIPT,
    REPO_ROOT,
    SERVING_DOCKERFILE,
    generate_env,
)

pytestmark = pytest.mark.unit

SCHEMA_FILE = Path(__file__).with_name("compose-spec.schema.json")
SECRETS = frozenset(
    {
        "POSTGRES_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
        "MLFLOW_DB_PASSWORD",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_ADMIN_PASSWORD",
        "AIRFLOW_FEEDBACK_PASSWORD",
        "LIFEBOAT_RELOAD_TOKEN",
        "LIFEBOAT_FEEDBACK_TOKEN",
    }
)
#: DESIGN.md: "Ports: Airflow 8080, MLflow 5000, serving 8000."
DESIGN_PORTS = {"airflow-apiserver": 8080, "mlflow": 5000, "serving": 8000}
#: The container port of images run with their own default command.
IMAGE_DEFAULT_PORTS = {"postgres": 5432, "redis": 6379}
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
SHARED_AIRFLOW_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW_CONN_SPARK_DEFAULT",
    "LIFEBOAT_RELOAD_TOKEN",
    "LIFEBOAT_STATE_DIR",
)


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, object]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def schema_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def long_running(project: ComposeProject) -> list[Service]:
    return [s for name, s in project.services.items() if name not in project.one_shot_services]


def listening_ports(service: Service) -> set[int]:
    """Ports a service listens on in its container: its command's ``--...port N`` options when it has
    any, else its published/exposed ports and its image's default port."""
    argv = list(service.command or ())
    from_command = {int(v) for k, v in itertools.pairwise(argv) if re.fullmatch(r"--[a-z-]*port", k)}
    if from_command:
        return from_command
    ports = {p.target for p in service.ports}
    ports |= {int(str(p).split("/")[0]) for p in service.raw.get("expose") or []}
    image = (service.image or "").split(":")[0]
    if image in IMAGE_DEFAULT_PORTS:
        ports.add(IMAGE_DEFAULT_PORTS[image])
    return ports


# ---------------------------------------------------------------------------------------------- schema


def test_compose_file_is_valid_against_the_compose_specification(
    raw_compose: dict[str, object],
    compose_project: ComposeProject,
    schema_validator: jsonschema.Draft7Validator,
) -> None:
    for document in (raw_compose, dict(compose_project.data)):
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in schema_validator.iter_errors(document)
        ]
        assert errors == []


def test_the_vendored_schema_rejects_a_broken_service(
    compose_project: ComposeProject, schema_validator: jsonschema.Draft7Validator
) -> None:
    broken = json.loads(json.dumps(compose_project.data))
    broken["services"]["mlflow"]["healthcheck"]["intervall"] = "10s"
    broken["services"]["serving"]["restart"] = 5
    errors = {"/".join(map(str, e.absolute_path)): e.message for e in schema_validator.iter_errors(broken)}
    assert "intervall" in errors["services/mlflow/healthcheck"]
    assert errors["services/serving/restart"] == "5 is not of type 'string'"


# ------------------------------------------------------------------------------------- files and paths


def test_build_contexts_dockerfiles_and_bind_mounts_exist(compose_project: ComposeProject) -> None:
    dockerfiles = set()
    for service in compose_project.services.values():
        assert service.image or service.build, f"{service.name} has neither image nor build"
        if service.build is not None:
            assert service.build.context.is_dir(), service.name
            assert service.build.dockerfile.is_file(), service.name
            dockerfiles.add(service.build.dockerfile.name)
        for mount in service.volumes:
            if mount.type == "bind":
                assert mount.source is not None
                assert (compose_project.directory / mount.source).exists(), f"{service.name}: {mount.source}"
    assert dockerfiles == {"Dockerfile.airflow", "Dockerfile.serving"}


def test_named_volumes_are_declared_and_used(compose_project: ComposeProject) -> None:
    used = {
        m.source
        for s in compose_project.services.values()
        for m in s.volumes
        if m.type == "volume" and m.source
    }
    assert used == set(compose_project.volumes)


def test_repository_files_named_in_the_services_exist(compose_project: ComposeProject) -> None:
    """Every /opt/lifeboat/... script, folder or config a service names is in the repository."""
    image_env = read_dockerfile(AIRFLOW_DOCKERFILE).env
    named: set[str] = set()
    for service in compose_project.services.values():
        words = [*(service.command or ()), *service.environment.values()]
        if service.healthcheck and service.healthcheck.argv:
            words += service.healthcheck.argv
        for word in words:
            named.update(re.findall(r"/opt/lifeboat/[\w./-]+", word))
    named.update(v for v in image_env.values() if v.startswith("/opt/lifeboat/"))
    volumes = (
        "/opt/lifeboat/state",
        "/opt/lifeboat/data/titanic/incoming",
        "/opt/lifeboat/data/adult/incoming",
        "/opt/lifeboat/data/titanic/raw/",
    )
    in_repo = {p for p in named if not p.startswith(volumes)}
    assert "/opt/lifeboat/docker/airflow/init.sh" in in_repo
    assert "/opt/lifeboat/docker/spark/conf" in in_repo
    for path in sorted(in_repo):
        assert (REPO_ROOT / path.removeprefix("/opt/lifeboat/")).exists(), path


def test_shell_scripts_parse_and_are_executable() -> None:
    scripts = sorted((REPO_ROOT / "docker").rglob("*.sh"))
    assert {s.name for s in scripts} >= {"init-databases.sh", "init.sh", "new-env.sh", "spark-env.sh"}
    for script in scripts:
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{script}: {done.stderr}"
        assert os.access(script, os.X_OK), f"{script} is not executable"


# ---------------------------------------------------------------------------------- variables, secrets


def test_every_variable_is_documented_in_env_example(
    raw_compose: dict[str, object], example_env: dict[str, str]
) -> None:
    used = {ref.name for _, ref in tree_references(raw_compose)}
    assert used - set(example_env) == set(), "variables missing from .env.example"
    assert set(example_env) - used == set(), ".env.example documents variables the compose file does not use"


def test_every_secret_is_required_and_has_no_default(
    raw_compose: dict[str, object], example_env: dict[str, str]
) -> None:
    required = {ref.name for _, ref in tree_references(raw_compose) if ref.operator == ":?"}
    assert required == SECRETS
    for where, ref in tree_references(raw_compose):
        if ref.name in SECRETS:
            assert ref.operator == ":?", f"{ref.name} at {where} is not ${{{ref.name}:?...}}"
            assert ref.name in ref.argument, f"{where}: the message must name the variable"
            assert ".env" in ref.argument, f"{where}: the message must say what to set"
    assert {k for k, v in example_env.items() if v == ""} == SECRETS, (
        ".env.example: secrets empty, knobs filled"
    )
    with_defaults = {ref.name for _, ref in tree_references(raw_compose) if ref.has_default}
    assert with_defaults.isdisjoint(SECRETS)
    assert with_defaults == set(example_env) - SECRETS


def test_an_empty_environment_stops_compose_with_every_message() -> None:
    missing = missing_required(COMPOSE_FILE, {})
    assert set(missing) == SECRETS
    for name, message in missing.items():
        assert message == f"set {name} in .env (see .env.example)"
    with pytest.raises(
        InterpolationError, match=r"required variable \w+ is missing a value: set \w+ in \.env"
    ):
        load_project(COMPOSE_FILE, {})


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_each_missing_secret_is_named(secret: str, compose_env: dict[str, str]) -> None:
    for value in (None, ""):
        env = {k: v for k, v in compose_env.items() if k != secret}
        if value is not None:
            env[secret] = value
        with pytest.raises(InterpolationError) as caught:
            load_project(COMPOSE_FILE, env)
        assert caught.value.variable == secret
        assert caught.value.message == f"set {secret} in .env (see .env.example)"


def test_new_env_fills_every_secret_with_values_the_stack_accepts(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    env_file = generate_env(tmp_path)
    env = read_env_file(env_file)
    assert {k for k, v in env.items() if not v} == set()
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    for name in SECRETS - {"AIRFLOW_FERNET_KEY"}:
        assert re.fullmatch(r"[0-9a-f]{64}", env[name]), name
    Fernet(env["AIRFLOW_FERNET_KEY"].encode())  # raises ValueError for a malformed key
    assert len(set(env[name] for name in SECRETS)) == len(SECRETS)
    project = load_project(COMPOSE_FILE, env, strict=True)
    serving = project.service("serving").environment
    Settings(
        environment="production",
        reload_token=serving["LIFEBOAT_RELOAD_TOKEN"],
        feedback_token=serving["LIFEBOAT_FEEDBACK_TOKEN"],
    )

    before = env_file.read_text()
    subprocess.run(["bash", str(NEW_ENV_SCRIPT), str(env_file)], check=True, capture_output=True)
    assert env_file.read_text() == before, "a second run must keep the secrets"
    done = subprocess.run(
        ["bash", str(NEW_ENV_SCRIPT), str(tmp_path / "absent")], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "does not exist" in done.stderr


# ---------------------------------------------------------------------------------- services' contract


def test_long_running_services_have_healthchecks_and_restart(compose_project: ComposeProject) -> None:
    assert compose_project.one_shot_services == {"airflow-init", "mlflow-migrate"}
    for service in long_running(compose_project):
        assert service.healthcheck is not None, f"{service.name}: no healthcheck"
        assert service.healthcheck.argv, f"{service.name}: healthcheck disabled"
        assert service.healthcheck.interval, service.name
        assert service.healthcheck.start_period, service.name
        assert service.restart in ("always", "unless-stopped"), service.name
    for name in compose_project.one_shot_services:
        assert compose_project.service(name).restart == "no"


def test_depends_on_waits_for_health_or_completion(compose_project: ComposeProject) -> None:
    for service in compose_project.services.values():
        for target, spec in service.depends_on.items():
            other = compose_project.service(target)
            condition = spec.get("condition")
            assert condition in ("service_healthy", "service_completed_successfully"), (service.name, target)
            if condition == "service_healthy":
                assert other.healthcheck is not None, (service.name, target)
                assert other.healthcheck.argv, (service.name, target)
            else:
                assert target in compose_project.one_shot_services
            if other.profiles and not set(other.profiles) & set(service.profiles):
                assert spec.get("required") is False, f"{service.name} needs {target} outside its profile"
    scheduler = compose_project.service("airflow-scheduler").depends_on
    assert {"postgres", "airflow-init", "mlflow", "spark-master"} <= set(scheduler)


def test_env_example_shows_the_defaults(raw_compose: dict[str, object], example_env: dict[str, str]) -> None:
    for where, ref in tree_references(raw_compose):
        if ref.has_default:
            assert example_env[ref.name] == ref.argument, f"{ref.name}: .env.example differs from {where}"


def test_ports_agree_with_the_settings_and_the_design(compose_project: ComposeProject) -> None:
    # Only the secrets: every other variable takes the compose file's default.
    compose_project = load_project(COMPOSE_FILE, compose_project_env(compose_project), strict=True)
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    expected = dict(DESIGN_PORTS)
    assert defaults["serving_port"] == expected["serving"]
    if "airflow_port" in defaults:
        assert defaults["airflow_port"] == expected["airflow-apiserver"]
    if "mlflow_port" in defaults:
        assert defaults["mlflow_port"] == expected["mlflow"]
    for name, port in expected.items():
        service = compose_project.service(name)
        assert [(p.target, p.published) for p in service.ports] == [(port, str(port))], name
        assert port in listening_ports(service), name
    for service in compose_project.services.values():
        for port in service.ports:
            assert port.target in listening_ports(service), f"{service.name} publishes {port.target}"
    published = [p for s in compose_project.services.values() for p in s.ports]
    assert all(p.host_ip == "127.0.0.1" for p in published), (
        "ports publish on PUBLISH_ADDRESS, loopback by default"
    )


def test_urls_between_services_use_ports_the_services_listen_on(compose_project: ComposeProject) -> None:
    checked = 0
    for service in compose_project.services.values():
        for value in [*service.environment.values(), *(service.command or ())]:
            for match in re.finditer(r"[a-z+]+://(?:[^@/\s]*@)?([\w.-]+):(\d+)", value):
                host, port = match.group(1), int(match.group(2))
                if host in compose_project.services:
                    target = compose_project.service(host)
                    assert port in listening_ports(target), f"{service.name}: {match.group(0)}"
                    checked += 1
        conn = service.environment.get("AIRFLOW_CONN_SPARK_DEFAULT")
        if conn:
            spec = json.loads(conn)
            assert urlsplit(spec["host"]).hostname == "spark-master"
            assert spec["port"] in listening_ports(compose_project.service("spark-master"))
    assert checked >= 10
    settings_url = compose_project.service("airflow-scheduler").environment["LIFEBOAT_SERVING_URL"]
    assert urlsplit(settings_url).port == Settings.model_fields["serving_port"].default


def test_airflow_services_share_one_configuration(compose_project: ComposeProject) -> None:
    envs = {name: compose_project.service(name).environment for name in AIRFLOW_SERVICES}
    for key in SHARED_AIRFLOW_SETTINGS:
        values = {name: env.get(key) for name, env in envs.items()}
        assert None not in values.values(), f"{key}: {values}"
        assert len(set(values.values())) == 1, f"{key}: {values}"
    env = envs["airflow-scheduler"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/lifeboat/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/lifeboat/plugins"
    assert env["LIFEBOAT_ENVIRONMENT"] == "production"
    assert env["LIFEBOAT_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["LIFEBOAT_SERVING_URL"] == "http://serving:8000"
    assert env["LIFEBOAT_SPARK_MASTER"] == "spark://spark-master:7077"
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"]) == {
        "conn_type": "spark",
        "host": "spark://spark-master",
        "port": 7077,
    }
    assert "AIRFLOW_ADMIN_PASSWORD" in envs["airflow-init"]
    assert all("AIRFLOW_ADMIN_PASSWORD" not in e for n, e in envs.items() if n != "airflow-init")
    # The server's own Airflow user: its password reaches airflow-init (which writes it) and the server only.
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,lifeboat-feedback:op"
    serving = compose_project.service("serving").environment
    assert envs["airflow-init"]["AIRFLOW_FEEDBACK_PASSWORD"] == serving["LIFEBOAT_AIRFLOW_EVENTS_PASSWORD"]
    assert serving["LIFEBOAT_AIRFLOW_EVENTS_URL"] == "http://airflow-apiserver:8080"
    assert serving["LIFEBOAT_AIRFLOW_EVENTS_USER"] == "lifeboat-feedback"
    password = serving["LIFEBOAT_AIRFLOW_EVENTS_PASSWORD"]
    holders = {n for n, e in envs.items() if password in e.values()}
    assert holders == {"airflow-init"}, holders  # among the Airflow services; and the server
    for name in AIRFLOW_SERVICES:
        service = compose_project.service(name)
        # The image's entrypoint runs `airflow ...` and `bash ...` as they are, and so does a host.
        assert service.entrypoint is None
        assert service.command
        assert service.command[0] in ("airflow", "bash")


def test_spark_executors_see_the_paths_of_the_driver(compose_project: ComposeProject) -> None:
    def mounts(name: str) -> dict[str, str | None]:
        return {m.target: m.source for m in compose_project.service(name).volumes}

    shared = {
        "/opt/lifeboat/state": "lifeboat-state",
        "/opt/lifeboat/data/titanic/incoming": "lifeboat-incoming",
        "/opt/lifeboat/data/adult/incoming": "lifeboat-incoming-adult",
    }
    worker, driver = compose_project.service("spark-worker"), compose_project.service("airflow-scheduler")
    for name in ("spark-worker", "airflow-scheduler", "airflow-worker"):
        assert shared.items() <= mounts(name).items(), name
    for key in (
        "LIFEBOAT_STATE_DIR",
        "LIFEBOAT_DATA_ROOT",
        "LIFEBOAT_SPARK_ADVERTISE_IP",
    ):
        assert worker.environment[key] == driver.environment[key], key
    assert worker.user == driver.user == compose_project.service("spark-master").user
    assert worker.image == driver.image == compose_project.service("mlflow").image
    assert worker.command is not None
    assert "spark://spark-master:7077" in worker.command
    master = compose_project.service("spark-master").command
    assert master is not None
    assert master[:2] == ("spark-class", "org.apache.spark.deploy.master.Master")


def test_the_drift_check_reads_the_prediction_log_the_server_writes(compose_project: ComposeProject) -> None:
    """The server logs requests into the Airflow services' state volume, where the DAG's drift check reads."""
    serving = compose_project.service("serving")
    mounts = {m.target: m.source for m in serving.volumes}
    state = serving.environment["LIFEBOAT_STATE_DIR"]
    for name in ("airflow-scheduler", "airflow-worker"):
        driver = compose_project.service(name)
        assert driver.environment["LIFEBOAT_STATE_DIR"] == state
        assert {m.target: m.source for m in driver.volumes}[state] == mounts[state] == "lifeboat-state"
        assert (
            Settings(state_dir=Path(state)).prediction_log_path
            == Settings(state_dir=Path(driver.environment["LIFEBOAT_STATE_DIR"])).prediction_log_path
        )
    # Group 0 like the Airflow containers (AIRFLOW_UID:0), and the serving image's mount point is group 0
    # writable: whichever image populates the new volume, both sides can write it.
    airflow_user = compose_project.service("airflow-scheduler").user
    assert serving.user is not None
    assert airflow_user is not None
    assert serving.user.split(":")[1] == airflow_user.split(":")[1] == "0"
    runs = " ".join(i.arguments for i in read_dockerfile(SERVING_DOCKERFILE).of("RUN"))
    assert f"chown lifeboat:0 {state}" in runs
    assert f"chmod 2775 {state}" in runs
    user_id = serving.user.split(":")[0]
    assert f"--uid {user_id} " in runs, "the compose user must be the serving image's user"


def test_only_the_server_gets_the_feedback_token(
    compose_project: ComposeProject, compose_env: dict[str, str]
) -> None:
    token = compose_project.service("serving").environment["LIFEBOAT_FEEDBACK_TOKEN"]
    assert token == compose_env["LIFEBOAT_FEEDBACK_TOKEN"]
    holders = {
        name for name, service in compose_project.services.items() if token in service.environment.values()
    }
    assert holders == {"serving"}


def test_mlflow_runs_on_postgres_and_answers_the_service_names(
    compose_project: ComposeProject, compose_env: dict[str, str]
) -> None:
    database = compose_env["MLFLOW_DB_NAME"]
    for name in ("mlflow", "mlflow-migrate"):
        argv = compose_project.service(name).command or ()
        assert any(
            a.startswith("postgresql+psycopg2://") and a.endswith(f"@postgres:5432/{database}") for a in argv
        )
    argv = list(compose_project.service("mlflow").command or ())
    allowed = argv[argv.index("--allowed-hosts") + 1].split(",")
    assert {"mlflow", "mlflow:5000", "127.0.0.1:*"} <= set(allowed)
    assert argv[argv.index("--artifacts-destination") + 1] == "/mlflow/artifacts"
    assert "--serve-artifacts" in argv


def test_celery_profile_adds_redis_and_a_worker(
    compose_project: ComposeProject, example_env: dict[str, str]
) -> None:
    profiled = {n: s.profiles for n, s in compose_project.services.items() if s.profiles}
    assert profiled == {"redis": ("celery",), "airflow-worker": ("celery",)}
    worker = compose_project.service("airflow-worker")
    assert worker.command == ("airflow", "celery", "worker")
    assert worker.environment["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert example_env["AIRFLOW_EXECUTOR"] == "LocalExecutor"
    celery = load_project(
        COMPOSE_FILE, {**compose_project_env(compose_project), "AIRFLOW_EXECUTOR": "CeleryExecutor"}
    )
    executors = {celery.service(n).environment["AIRFLOW__CORE__EXECUTOR"] for n in AIRFLOW_SERVICES}
    assert executors == {"CeleryExecutor"}


def compose_project_env(project: ComposeProject) -> dict[str, str]:
    """The secrets a loaded project was made with (read back from its services)."""
    scheduler = project.service("airflow-scheduler").environment
    postgres = project.service("postgres").environment
    return {
        "POSTGRES_PASSWORD": postgres["POSTGRES_PASSWORD"],
        "AIRFLOW_DB_PASSWORD": postgres["AIRFLOW_DB_PASSWORD"],
        "MLFLOW_DB_PASSWORD": postgres["MLFLOW_DB_PASSWORD"],
        "AIRFLOW_JWT_SECRET": scheduler["AIRFLOW__API_AUTH__JWT_SECRET"],
        "AIRFLOW_API_SECRET_KEY": scheduler["AIRFLOW__API__SECRET_KEY"],
        "AIRFLOW_FERNET_KEY": scheduler["AIRFLOW__CORE__FERNET_KEY"],
        "AIRFLOW_ADMIN_PASSWORD": project.service("airflow-init").environment["AIRFLOW_ADMIN_PASSWORD"],
        "AIRFLOW_FEEDBACK_PASSWORD": project.service("airflow-init").environment["AIRFLOW_FEEDBACK_PASSWORD"],
        "LIFEBOAT_RELOAD_TOKEN": scheduler["LIFEBOAT_RELOAD_TOKEN"],
        "LIFEBOAT_FEEDBACK_TOKEN": project.service("serving").environment["LIFEBOAT_FEEDBACK_TOKEN"],
    }


def test_init_script_reads_what_the_postgres_service_gives(compose_project: ComposeProject) -> None:
    script = (REPO_ROOT / "docker" / "postgres" / "init-databases.sh").read_text()
    read = set(re.findall(r"\$\{(\w+)[:?}-]", script))
    given = set(compose_project.service("postgres").environment)
    assert {"AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "AIRFLOW_DB_NAME", "MLFLOW_DB_USER"} <= read
    assert read - {"LIFEBOAT_PG_ADMIN_USER", "LIFEBOAT_PG_ADMIN_DB"} <= given


# ----------------------------------------------------------------------------------------- Dockerfiles


def pinned(image: str) -> bool:
    name, _, tag = image.partition(":")
    return bool(name) and bool(tag) and tag != "latest" and any(ch.isdigit() for ch in tag)


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            result = not negate
    return result


@pytest.mark.parametrize("path", [AIRFLOW_DOCKERFILE, SERVING_DOCKERFILE], ids=lambda p: p.name)
def test_dockerfiles_pin_install_dependencies_first_and_check_health(path: Path) -> None:
    dockerfile = read_dockerfile(path)
    sources = [i.arguments.split()[0] for i in dockerfile.of("FROM")]
    assert sources
    assert all(pinned(s) for s in sources), sources
    assert dockerfile.of("HEALTHCHECK"), "no HEALTHCHECK"
    assert dockerfile.user not in (None, "root", "0", "0:0"), "the image must end as a non-root user"
    keywords = [(i.keyword, i.arguments) for i in dockerfile.instructions]
    install = next(
        n
        for n, (k, a) in enumerate(keywords)
        if k == "RUN" and re.search(r"pip install .*-r \S*requirements\S*\.lock", a)
    )
    code_copies = [
        n for n, (k, a) in enumerate(keywords) if k == "COPY" and re.search(r"(^|\s)(\.|lifeboat)(\s|$)", a)
    ]
    assert code_copies
    assert install < min(code_copies), "dependencies must be installed before the code is copied"
    # Exactly the bytes of the hashed lock: pip checks every wheel and resolves nothing of its own.
    command = keywords[install][1].split("&&")[0]
    assert "--require-hashes" in command
    assert "--no-deps" in command
    assert not re.search(r"(^|\s)-c\s|requirements[^\s]*\.txt", command), command


@pytest.mark.parametrize("path", [AIRFLOW_DOCKERFILE, SERVING_DOCKERFILE], ids=lambda p: p.name)
def test_every_copy_source_exists_and_is_not_ignored(path: Path) -> None:
    patterns = dockerignore_patterns()
    for instruction in read_dockerfile(path).of("COPY"):
        words = [w for w in instruction.arguments.split() if not w.startswith("--")]
        assert len(words) >= 2, instruction
        for source in words[:-1]:
            assert (REPO_ROOT / source).exists(), f"line {instruction.line}: {source}"
            if source != ".":
                assert not ignored(source.rstrip("/"), patterns), f"{source} is excluded by .dockerignore"


def test_the_platform_image_matches_the_pins_and_has_java_17() -> None:
    dockerfile = read_dockerfile(AIRFLOW_DOCKERFILE)
    base = dockerfile.of("FROM")[0].arguments
    requirements = (REPO_ROOT / "requirements.txt").read_text()
    airflow_pin = re.search(r"^apache-airflow==(\S+)$", requirements, re.M)
    assert airflow_pin is not None
    assert base == f"apache/airflow:{airflow_pin.group(1)}-python3.11"
    assert any("openjdk-17-jre-headless" in i.arguments for i in dockerfile.of("ARG") + dockerfile.of("RUN"))
    env = dockerfile.env
    assert env["SPARK_HOME"] == "/opt/spark"
    assert env["JAVA_HOME"] == "/opt/java"
    assert env["SPARK_CONF_DIR"] == "/opt/lifeboat/docker/spark/conf"
    assert dockerfile.workdir == "/opt/lifeboat"
    runs = " ".join(i.arguments for i in dockerfile.of("RUN"))
    assert "pip install --no-deps -e /opt/lifeboat" in runs
    assert "dvc config --local core.no_scm true" in runs
    assert "dvc pull" in runs
    serving = read_dockerfile(SERVING_DOCKERFILE)
    assert serving.of("FROM")[0].arguments.startswith("python:3.11")
    assert not any("java" in i.arguments.lower() for i in serving.of("RUN"))


def test_dockerignore_keeps_state_and_secrets_out_and_the_bundled_remote_in() -> None:
    patterns = dockerignore_patterns()
    for path in (
        ".git",
        ".venv",
        ".lifeboat",
        ".env",
        "bench-results",
        "test-artifacts",
        ".dvc/config.local",
    ):
        assert ignored(path, patterns), path
    for path in (
        "data/remote",
        "data/titanic/raw/train.csv.dvc",
        ".env.example",
        "jobs",
        "dags",
        "plugins",
        "docker",
    ):
        assert not ignored(path, patterns), path
    assert ignored("data/titanic/raw/train.csv", patterns)


def test_compose_images_are_pinned(compose_project: ComposeProject) -> None:
    for service in compose_project.services.values():
        if service.build is None:
            assert service.image is not None, service.name
            assert pinned(service.image), service.name


# ------------------------------------------------------------------------------- docker compose config


def compose_cli() -> list[str] | None:
    """A Docker Compose v2 command line, when one is available offline: the plugin or a named binary."""
    candidates: list[list[str]] = []
    if os.environ.get("LIFEBOAT_TEST_DOCKER_COMPOSE"):
        candidates.append([os.environ["LIFEBOAT_TEST_DOCKER_COMPOSE"]])
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        try:
            done = subprocess.run(
                [*command, "version"], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            continue
        if done.returncode == 0 and re.search(r"version v?2\.", done.stdout):
            return command
    return None


def test_docker_compose_config_accepts_the_filled_env_and_refuses_the_empty_one(tmp_path: Path) -> None:
    command = compose_cli()
    if command is None:
        pytest.skip(
            "no Docker Compose v2 CLI (docker compose plugin, docker-compose, LIFEBOAT_TEST_DOCKER_COMPOSE)"
        )
    env_file = generate_env(tmp_path)
    clean_env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE_")}
    base = [*command, "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE)]
    for profile in ([], ["--profile", "celery"]):
        done = subprocess.run(
            [*base, "--env-file", str(env_file), *profile, "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = subprocess.run(
        [*base, "--env-file", str(empty), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env,
        check=False,
    )
    assert done.returncode != 0
    assert re.search(r"required variable \w+ is missing a value: set \w+ in \.env", done.stderr)
