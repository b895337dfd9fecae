"""tests/deploy/compose.py: Compose interpolation, env files, services, Dockerfiles and the host mapping."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.deploy.compose import (
    ComposeError,
    HostMapping,
    InterpolationError,
    VariableReference,
    host_process,
    interpolate,
    interpolate_tree,
    load_project,
    load_yaml,
    missing_required,
    parse_env_file,
    read_dockerfile,
    read_env_file,
    references,
    tree_references,
)

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------------------------------- interpolation


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("plain", {}, "plain"),
        ("$A-$B", {"A": "1", "B": "2"}, "1-2"),
        ("${A}x", {"A": "1"}, "1x"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A:-d}", {"A": "v"}, "v"),
        ("${A-d}", {}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A:?m}", {"A": "v"}, "v"),
        ("${A?m}", {"A": ""}, ""),
        ("${A:+alt}", {"A": "v"}, "alt"),
        ("${A:+alt}", {"A": ""}, ""),
        ("${A+alt}", {"A": ""}, "alt"),
        ("${A+alt}", {}, ""),
        ("$$", {}, "$"),
        ("$${HOSTNAME}", {"HOSTNAME": "no"}, "${HOSTNAME}"),
        ("${A:-${B:-x}}", {}, "x"),
        ("${A:-${B:-x}}", {"B": "b"}, "b"),
        ("${A:-a:b/c}", {}, "a:b/c"),
        ("user:${P:?need P}@host:${PORT:-5432}/db", {"P": "pw"}, "user:pw@host:5432/db"),
    ],
)
def test_interpolate_follows_the_compose_rules(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


def test_an_unset_plain_variable_is_blank_unless_strict() -> None:
    assert interpolate("a${NOPE}b", {}) == "ab"
    with pytest.raises(InterpolationError, match="NOPE"):
        interpolate("a${NOPE}b", {}, strict=True)


@pytest.mark.parametrize("env", [{}, {"SECRET": ""}])
def test_a_missing_required_variable_raises_with_the_message(env: dict[str, str]) -> None:
    with pytest.raises(InterpolationError) as caught:
        interpolate("x=${SECRET:?set SECRET in .env, see ${DOC:-.env.example}}", env, where="services.a.env")
    error = caught.value
    assert error.variable == "SECRET"
    assert error.message == "set SECRET in .env, see .env.example"
    assert "required variable SECRET is missing a value: set SECRET in .env" in str(error)
    assert "services.a.env" in str(error)


def test_question_mark_without_colon_accepts_an_empty_value_but_not_an_unset_one() -> None:
    assert interpolate("${A?gone}", {"A": ""}) == ""
    with pytest.raises(InterpolationError, match="gone"):
        interpolate("${A?gone}", {})


@pytest.mark.parametrize("text", ["${A", "${1A}", "${A#x}", "${}", "cost: 5$", "$-x"])
def test_malformed_expressions_are_refused(text: str) -> None:
    with pytest.raises(ComposeError, match="invalid interpolation format"):
        interpolate(text, {"A": "v"})


def test_references_include_nested_ones() -> None:
    found = references("${A:-${B}} $C ${D:?need ${E}} $$F")
    assert [r.name for r in found] == ["A", "B", "C", "D", "E"]
    assert found[0] == VariableReference("A", ":-", "${B}")
    assert found[0].has_default
    assert not found[0].required
    assert found[3].required


def test_interpolate_tree_keeps_keys_and_non_strings_and_names_the_place() -> None:
    tree = {"${KEY}": "${V}", "n": 3, "flag": True, "list": ["$V", {"deep": "${V:-x}"}]}
    assert interpolate_tree(tree, {"V": "v"}) == {
        "${KEY}": "v",
        "n": 3,
        "flag": True,
        "list": ["v", {"deep": "v"}],
    }
    with pytest.raises(InterpolationError) as caught:
        interpolate_tree({"services": {"a": {"command": ["x", "${S:?need S}"]}}}, {})
    assert caught.value.where == "services.a.command[1]"
    places = [where for where, _ in tree_references({"s": {"c": ["${A}", "b"]}})]
    assert places == ["s.c[0]"]


# -------------------------------------------------------------------------------------------------- env files


def test_parse_env_file_reads_what_compose_reads() -> None:
    text = textwrap.dedent(
        """\
        # comment
        A=1
        export B=two words
        C='single $quoted # not a comment'
        D="double\\nline \\"q\\""
        E=value # inline comment
        EMPTY=

        """
    )
    assert parse_env_file(text) == {
        "A": "1",
        "B": "two words",
        "C": "single $quoted # not a comment",
        "D": 'double\nline "q"',
        "E": "value",
        "EMPTY": "",
    }


@pytest.mark.parametrize("line", ["no equals sign", "1BAD=x", "=x"])
def test_parse_env_file_refuses_bad_lines(line: str) -> None:
    with pytest.raises(ComposeError, match="line 2"):
        parse_env_file(f"OK=1\n{line}\n")


def test_read_env_file_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="cannot read the env file"):
        read_env_file(tmp_path / "absent.env")


# --------------------------------------------------------------------------------------------------- services

SMALL_COMPOSE = """\
x-common: &common
  image: base:${TAG:-1.0}
  restart: unless-stopped
services:
  db:
    image: postgres:17
    environment:
      - POSTGRES_PASSWORD=${DB_PASSWORD:?set DB_PASSWORD}
      - FROM_SHELL
      - NOT_IN_ENV
    volumes:
      - db-data:/var/lib/postgresql/data
      - ./init.sh:/docker-entrypoint-initdb.d/init.sh:ro
      - /anonymous
    healthcheck:
      test: pg_isready -h 127.0.0.1
      interval: 5s
      retries: 3
  migrate:
    <<: *common
    command: tool migrate --url "postgresql://u:${DB_PASSWORD:?set DB_PASSWORD}@db:5432/app"
    restart: "no"
    healthcheck:
      disable: true
    depends_on: [db]
  app:
    <<: *common
    build: ./app
    entrypoint: ["/usr/bin/dumb-init", "--"]
    command: ["server", "--host", "0.0.0.0", "--port", "9000"]
    ports:
      - "127.0.0.1:${APP_PORT:-9000}:9000"
      - target: 9100
        published: "9101"
        protocol: udp
      - "9200"
    environment:
      DEBUG: false
      WORKERS: 2
      EMPTY:
    healthcheck:
      test: ["CMD-SHELL", "curl -f http://127.0.0.1:9000/health || exit 1"]
    depends_on:
      migrate:
        condition: service_completed_successfully
      db:
        condition: service_healthy
volumes:
  db-data:
"""


@pytest.fixture
def small_compose(tmp_path: Path) -> Path:
    path = tmp_path / "compose.yml"
    path.write_text(SMALL_COMPOSE)
    return path


def test_load_project_gives_each_service_its_parts(small_compose: Path) -> None:
    project = load_project(small_compose, {"DB_PASSWORD": "pw", "FROM_SHELL": "shell"})
    assert set(project.services) == {"db", "migrate", "app"}
    assert project.volumes == ("db-data",)

    db = project.service("db")
    assert db.environment == {"POSTGRES_PASSWORD": "pw", "FROM_SHELL": "shell"}
    assert [(m.type, m.source, m.target, m.read_only) for m in db.volumes] == [
        ("volume", "db-data", "/var/lib/postgresql/data", False),
        ("bind", "./init.sh", "/docker-entrypoint-initdb.d/init.sh", True),
        ("volume", None, "/anonymous", False),
    ]
    assert db.healthcheck is not None
    assert db.healthcheck.argv == ("/bin/sh", "-c", "pg_isready -h 127.0.0.1")
    assert (db.healthcheck.interval, db.healthcheck.retries) == ("5s", 3)

    migrate = project.service("migrate")
    assert migrate.image == "base:1.0"
    assert migrate.command == ("tool", "migrate", "--url", "postgresql://u:pw@db:5432/app")
    assert migrate.healthcheck is not None
    assert migrate.healthcheck.argv is None
    assert migrate.depends_on == {"db": {"condition": "service_started"}}
    assert migrate.restart == "no"

    app = project.service("app")
    assert app.restart == "unless-stopped"
    assert app.build is not None
    assert app.build.context == small_compose.parent / "app"
    assert app.build.dockerfile == small_compose.parent / "app" / "Dockerfile"
    assert app.entrypoint == ("/usr/bin/dumb-init", "--")
    assert app.environment == {"DEBUG": "false", "WORKERS": "2", "EMPTY": ""}
    assert [(p.host_ip, p.published, p.target, p.protocol) for p in app.ports] == [
        ("127.0.0.1", "9000", 9000, "tcp"),
        (None, "9101", 9100, "udp"),
        (None, None, 9200, "tcp"),
    ]
    assert app.healthcheck is not None
    assert app.healthcheck.argv == ("/bin/sh", "-c", "curl -f http://127.0.0.1:9000/health || exit 1")
    assert project.one_shot_services == frozenset({"migrate"})


def test_load_project_stops_at_a_missing_secret(small_compose: Path) -> None:
    with pytest.raises(InterpolationError, match="set DB_PASSWORD") as caught:
        load_project(small_compose, {})
    assert caught.value.variable == "DB_PASSWORD"
    assert missing_required(small_compose, {}) == {"DB_PASSWORD": "set DB_PASSWORD"}
    assert missing_required(small_compose, {"DB_PASSWORD": "x"}) == {}


def test_unknown_service_and_broken_files_are_reported(small_compose: Path, tmp_path: Path) -> None:
    project = load_project(small_compose, {"DB_PASSWORD": "pw"})
    with pytest.raises(ComposeError, match=r"no service 'web'.*app, db, migrate"):
        project.service("web")
    broken = tmp_path / "broken.yml"
    broken.write_text("services: [unclosed\n")
    with pytest.raises(ComposeError, match="not valid YAML"):
        load_yaml(broken)
    no_services = tmp_path / "empty.yml"
    no_services.write_text("volumes: {}\n")
    with pytest.raises(ComposeError, match="no services"):
        load_yaml(no_services)
    with pytest.raises(ComposeError, match="cannot read"):
        load_yaml(tmp_path / "absent.yml")


# ------------------------------------------------------------------------------------------------ Dockerfiles


def test_read_dockerfile_joins_continuations_and_reads_env(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        textwrap.dedent(
            """\
            # syntax=docker/dockerfile:1
            FROM python:3.11-slim AS base
            ENV A=1 \\
                B="two words" \\
                C=/opt/x
            ENV LEGACY value with spaces
            WORKDIR /tmp
            RUN apt-get update \\
             # a comment inside a continuation
             && true
            WORKDIR /app
            USER 10001
            """
        )
    )
    dockerfile = read_dockerfile(path)
    assert [i.keyword for i in dockerfile.instructions] == [
        "FROM",
        "ENV",
        "ENV",
        "WORKDIR",
        "RUN",
        "WORKDIR",
        "USER",
    ]
    assert dockerfile.of("from")[0].arguments == "python:3.11-slim AS base"
    assert dockerfile.env == {"A": "1", "B": "two words", "C": "/opt/x", "LEGACY": "value with spaces"}
    assert dockerfile.of("RUN")[0].arguments == "apt-get update && true"
    assert dockerfile.of("RUN")[0].line == 8
    assert (dockerfile.workdir, dockerfile.user) == ("/app", "10001")


def test_read_dockerfile_refuses_a_dangling_continuation(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM x:1\nRUN true \\\n")
    with pytest.raises(ComposeError, match="line 2"):
        read_dockerfile(path)


# ---------------------------------------------------------------------------------------------- host mapping


@pytest.fixture
def mapping(tmp_path: Path) -> HostMapping:
    return HostMapping(
        hosts={
            "postgres": "127.0.0.1",
            "mlflow": "127.0.0.1",
            "spark-master": "127.0.0.1",
            "0.0.0.0": "127.0.0.1",
        },
        ports={5000: 15000, 5432: 5432, 7077: 17077, 8090: 18090},
        paths={
            "/opt/lifeboat": tmp_path / "repo",
            "/opt/lifeboat/state": tmp_path / "state",
            "/mlflow/artifacts/": tmp_path / "artifacts",
        },
    )


def test_urls_are_mapped_without_touching_user_names_or_paths(mapping: HostMapping, tmp_path: Path) -> None:
    # The password is made of digits and the user is called like a service: neither may change.
    url = "postgresql+psycopg2://mlflow:5000@postgres:5432/mlflow"
    assert mapping.map_text(url) == "postgresql+psycopg2://mlflow:5000@127.0.0.1:5432/mlflow"
    assert mapping.map_text("http://mlflow:5000") == "http://127.0.0.1:15000"
    assert mapping.map_text("spark://spark-master:7077") == "spark://127.0.0.1:17077"
    assert mapping.map_text("curl http://127.0.0.1:8090/json/") == "curl http://127.0.0.1:18090/json/"
    assert mapping.map_text("http://example.org:5000/x") == "http://example.org:5000/x"
    assert mapping.map_text("mlflow") == "mlflow"
    assert mapping.map_text("postgres:5432") == "127.0.0.1:5432"
    assert mapping.map_text("file:///mlflow/artifacts/1/x") == f"file://{tmp_path / 'artifacts'}/1/x"


def test_paths_take_the_longest_prefix_and_whole_segments(mapping: HostMapping, tmp_path: Path) -> None:
    assert mapping.map_paths("/opt/lifeboat/state/runs") == f"{tmp_path / 'state'}/runs"
    assert mapping.map_paths("/opt/lifeboat/docker/x.sh") == f"{tmp_path / 'repo'}/docker/x.sh"
    assert mapping.map_paths("--conf=/opt/lifeboat") == f"--conf={tmp_path / 'repo'}"
    assert mapping.map_paths("/opt/lifeboatx/y") == "/opt/lifeboatx/y"
    assert mapping.map_paths("/srv/opt/lifeboat") == "/srv/opt/lifeboat"


def test_argv_maps_host_and_port_options_only(mapping: HostMapping) -> None:
    argv = [
        "mlflow",
        "server",
        "--host",
        "0.0.0.0",
        "--port",
        "5000",
        "--workers",
        "5000",
        "--report",
        "5000",
    ]
    assert mapping.map_argv(argv) == [
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        "15000",
        "--workers",
        "5000",
        "--report",
        "5000",
    ]
    assert mapping.map_argv(["x", "--host=spark-master", "--webui-port=8090", "--port", "9999"]) == [
        "x",
        "--host=127.0.0.1",
        "--webui-port=18090",
        "--port",
        "9999",
    ]


def test_environment_maps_ports_hosts_json_and_leaves_names_alone(mapping: HostMapping) -> None:
    env = {
        "MLFLOW_DB_NAME": "mlflow",
        "HEALTH_CHECK_SERVER_PORT": "8090",
        "OTHER_PORT": "1234",
        "SPARK_MASTER_HOST": "spark-master",
        "TRACKING": "http://mlflow:5000",
        "CONN": '{"conn_type": "spark", "host": "spark://spark-master", "port": 7077}',
        "BARE_CONN": '{"host": "postgres", "port": 5432, "schema": "mlflow"}',
        "FOREIGN_CONN": '{"host": "db.example.org", "port": 5000}',
        "NOT_JSON": "{oops",
    }
    mapped = mapping.map_environment(env)
    assert mapped["MLFLOW_DB_NAME"] == "mlflow"
    assert mapped["HEALTH_CHECK_SERVER_PORT"] == "18090"
    assert mapped["OTHER_PORT"] == "1234"
    assert mapped["SPARK_MASTER_HOST"] == "127.0.0.1"
    assert mapped["TRACKING"] == "http://127.0.0.1:15000"
    assert json.loads(mapped["CONN"]) == {"conn_type": "spark", "host": "spark://127.0.0.1", "port": 17077}
    assert json.loads(mapped["BARE_CONN"]) == {"host": "127.0.0.1", "port": 5432, "schema": "mlflow"}
    assert json.loads(mapped["FOREIGN_CONN"]) == {"host": "db.example.org", "port": 5000}
    assert mapped["NOT_JSON"] == "{oops"


def test_host_process_layers_env_drops_init_wrappers_and_maps_healthchecks(
    small_compose: Path, tmp_path: Path
) -> None:
    project = load_project(small_compose, {"DB_PASSWORD": "pw"})
    mapping = HostMapping(
        hosts={"db": "127.0.0.1", "0.0.0.0": "127.0.0.1"},
        ports={9000: 19000, 5432: 15432},
        paths={"/app": tmp_path / "app"},
    )
    proc = host_process(
        project.service("app"),
        mapping,
        base_env={"PATH": "/venv/bin:/usr/bin", "WORKERS": "base"},
        image_env={"HOME_DIR": "/app/home", "WORKERS": "image"},
        image_workdir="/app",
        extra_env={"EXTRA": "1"},
    )
    assert proc.argv == ("server", "--host", "127.0.0.1", "--port", "19000")
    assert proc.env["PATH"] == "/venv/bin:/usr/bin"
    assert proc.env["HOME_DIR"] == str(tmp_path / "app" / "home")
    assert proc.env["WORKERS"] == "2"  # the service's value beats the image's and the base's
    assert proc.env["EXTRA"] == "1"
    assert proc.cwd == tmp_path / "app"
    assert proc.healthcheck == ("/bin/sh", "-c", "curl -f http://127.0.0.1:19000/health || exit 1")

    migrate = host_process(project.service("migrate"), mapping, base_env={})
    assert migrate.argv == ("tool", "migrate", "--url", "postgresql://u:pw@127.0.0.1:15432/app")
    assert migrate.healthcheck is None
    assert migrate.cwd is None


def test_host_process_keeps_a_real_entrypoint_and_needs_a_command(tmp_path: Path) -> None:
    path = tmp_path / "compose.yml"
    path.write_text(
        "services:\n"
        "  wrapped:\n    image: x:1\n    entrypoint: [python, -m]\n    command: [http.server]\n"
        "  bare:\n    image: x:1\n"
    )
    project = load_project(path, {})
    mapping = HostMapping(hosts={}, ports={}, paths={})
    assert host_process(project.service("wrapped"), mapping, base_env={}).argv == (
        "python",
        "-m",
        "http.server",
    )
    with pytest.raises(ComposeError, match="'bare' has no command"):
        host_process(project.service("bare"), mapping, base_env={})
