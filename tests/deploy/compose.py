"""The production deployment files as data: docker-compose.yml, its ``.env`` and the Dockerfiles.

No Docker engine is needed. :func:`load_project` reads the compose file and interpolates ``$VAR``,
``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``, ``${VAR?message}``,
``${VAR:+alternative}``, ``${VAR+alternative}`` and ``$$`` from a mapping, as Docker Compose does (a missing
required variable raises :class:`InterpolationError` carrying the file's message). Each service then gives its
command (argv), environment, healthcheck, ports, volumes and dependencies.

:func:`host_process` turns a service into a process for this machine: the very same command and
environment, with the service host names mapped to loopback, the container ports to host ports and the
container paths to host folders (:class:`HostMapping`). The integration tests run the production stack
that way (tests/deploy/test_compose_on_host.py).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

#: Interpolation operators of the Compose specification, longest first (the parser tries them in order).
OPERATORS = (":-", ":?", ":+", "-", "?", "+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Image entrypoints that only start (and reap) the real command: on a host the command runs by itself.
#: Airflow's image entrypoint (``/entrypoint``) runs ``airflow ...``, ``bash ...`` and ``python ...`` as is.
INIT_WRAPPERS = frozenset({"/usr/bin/dumb-init", "dumb-init", "/usr/bin/tini", "tini", "/entrypoint", "--"})
#: Options whose value is a host name or a bind address, and options whose value is a port.
_HOST_OPTIONS = frozenset({"--host", "-h", "-H", "--hostname", "--bind", "--ip"})
_PORT_OPTION = re.compile(r"^--?(?:[A-Za-z]+-)*port$")
_HOST_VARIABLE_SUFFIXES = ("HOST", "HOSTNAME", "_IP", "_ADDRESS")
#: Escapes understood inside a double-quoted env file value.
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<netloc>[^/\s'\"?#,;]*)")


class ComposeError(ValueError):
    """The compose file (or a Dockerfile, or an env file) is invalid or lacks what was asked for."""


class InterpolationError(ComposeError):
    """A required variable (``${VAR:?message}``) is unset or empty, or a ``$`` expression is malformed."""

    def __init__(self, variable: str, message: str, where: str = "") -> None:
        self.variable = variable
        self.message = message
        self.where = where
        location = f" (in {where})" if where else ""
        super().__init__(f"required variable {variable} is missing a value: {message}{location}")


@dataclass(frozen=True)
class VariableReference:
    """One ``$`` expression: the variable, its operator (None for a plain reference) and the raw argument."""

    name: str
    operator: str | None = None
    argument: str = ""

    @property
    def required(self) -> bool:
        """Whether an unset (or, with ``:?``, empty) variable is an error."""
        return self.operator in (":?", "?")

    @property
    def has_default(self) -> bool:
        """Whether the expression falls back to a default value."""
        return self.operator in (":-", "-")


# ---------------------------------------------------------------------------------------------- interpolation


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` whose content starts at ``start`` (nested ``${...}`` allowed)."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ComposeError(f"invalid interpolation format: unclosed '${{' in {text!r}")


def _tokens(text: str) -> Iterator[str | VariableReference]:
    """Split a string into literal text and variable references (``$$`` is a literal ``$``)."""
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            literal.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            literal.append("$")
            i += 2
            continue
        if following == "{":
            end = _closing_brace(text, i + 2)
            body = text[i + 2 : end]
            match = _NAME.match(body)
            if match is None:
                raise ComposeError(f"invalid interpolation format: '${{{body}}}' in {text!r}")
            rest = body[match.end() :]
            operator = next((op for op in OPERATORS if rest.startswith(op)), None)
            if rest and operator is None:
                raise ComposeError(f"invalid interpolation format: '${{{body}}}' in {text!r}")
            argument = rest[len(operator) :] if operator else ""
            if literal:
                yield "".join(literal)
                literal = []
            yield VariableReference(match.group(), operator, argument)
            i = end + 1
            continue
        match = _NAME.match(text, i + 1)
        if match is None:
            raise ComposeError(
                f"invalid interpolation format: '$' at position {i} of {text!r} (write '$$' for a '$')"
            )
        if literal:
            yield "".join(literal)
            literal = []
        yield VariableReference(match.group())
        i = match.end()
    if literal:
        yield "".join(literal)


def references(text: str) -> list[VariableReference]:
    """Every variable reference in ``text``, including those nested in defaults and messages."""
    found: list[VariableReference] = []
    for token in _tokens(text):
        if isinstance(token, VariableReference):
            found.append(token)
            if token.argument:
                found.extend(references(token.argument))
    return found


def interpolate(text: str, env: Mapping[str, str], *, strict: bool = False, where: str = "") -> str:
    """Substitute the variables of ``text`` from ``env`` with the Compose specification's rules.

    A plain reference to an unset variable becomes an empty string (with a warning, as Compose does), or
    raises :class:`InterpolationError` when ``strict``. ``where`` names the place in the file for messages.
    """
    parts: list[str] = []
    for token in _tokens(text):
        if isinstance(token, str):
            parts.append(token)
            continue
        value = env.get(token.name)
        is_set = value is not None
        is_filled = bool(value)
        op = token.operator
        if op is None:
            if not is_set:
                if strict:
                    raise InterpolationError(token.name, "the variable is not set", where)
                logger.warning("the %s variable is not set; defaulting to a blank string", token.name)
            parts.append(value or "")
        elif op in (":-", "-"):
            use_value = is_filled if op == ":-" else is_set
            if use_value:
                parts.append(value or "")
            else:
                parts.append(interpolate(token.argument, env, strict=strict, where=where))
        elif op in (":?", "?"):
            present = is_filled if op == ":?" else is_set
            if not present:
                message = interpolate(token.argument, env, strict=False, where=where) or "required"
                raise InterpolationError(token.name, message, where)
            parts.append(value or "")
        else:  # ":+" and "+"
            use_alternative = is_filled if op == ":+" else is_set
            if use_alternative:
                parts.append(interpolate(token.argument, env, strict=strict, where=where))
    return "".join(parts)


def _join(where: str, key: object) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def interpolate_tree(node: Any, env: Mapping[str, str], *, strict: bool = False, where: str = "") -> Any:
    """Interpolate every string value of a parsed YAML tree (mapping keys are left as they are)."""
    if isinstance(node, str):
        return interpolate(node, env, strict=strict, where=where)
    if isinstance(node, Mapping):
        return {k: interpolate_tree(v, env, strict=strict, where=_join(where, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env, strict=strict, where=_join(where, i)) for i, v in enumerate(node)]
    return node


def tree_references(node: Any, where: str = "") -> Iterator[tuple[str, VariableReference]]:
    """Every variable reference of a YAML tree, with the place it occurs (``services.x.command[2]``)."""
    if isinstance(node, str):
        for reference in references(node):
            yield where, reference
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from tree_references(value, _join(where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from tree_references(value, _join(where, index))


# ------------------------------------------------------------------------------------------------ env files


def parse_env_file(text: str) -> dict[str, str]:
    """Parse ``.env`` content as Compose does: ``KEY=VALUE`` lines, ``#`` comments, optional quotes.

    Single-quoted values are literal; double-quoted ones understand ``\\n``, ``\\t``, ``\\"`` and ``\\\\``;
    an unquoted value ends at `` #`` (an inline comment). An optional ``export`` prefix is ignored.
    """
    values: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or _NAME.fullmatch(name) is None:
            raise ComposeError(f"line {number} of the env file is not KEY=VALUE: {raw_line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), value[1:-1])
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        values[name] = value
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """Read and parse an env file (see :func:`parse_env_file`)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ComposeError(f"cannot read the env file {path}: {exc}") from exc
    return parse_env_file(text)


# ------------------------------------------------------------------------------------------------- services


@dataclass(frozen=True)
class Healthcheck:
    """A service's healthcheck; ``argv`` is what the container runs (CMD-SHELL through ``/bin/sh -c``)."""

    test: tuple[str, ...]
    interval: str | None = None
    timeout: str | None = None
    retries: int | None = None
    start_period: str | None = None
    disabled: bool = False

    @property
    def argv(self) -> tuple[str, ...] | None:
        """The check as a command line, or None when disabled."""
        if self.disabled or not self.test or self.test[0] == "NONE":
            return None
        kind, *rest = self.test
        if kind == "CMD":
            return tuple(rest)
        if kind == "CMD-SHELL":
            return ("/bin/sh", "-c", " ".join(rest))
        return ("/bin/sh", "-c", " ".join(self.test))


@dataclass(frozen=True)
class PortMapping:
    """One published port: ``host_ip:published:target/protocol``."""

    target: int
    published: str | None = None
    host_ip: str | None = None
    protocol: str = "tcp"


@dataclass(frozen=True)
class Mount:
    """One volume entry: a named volume, a bind mount of a host path, or an anonymous volume."""

    target: str
    source: str | None = None
    type: str = "volume"
    read_only: bool = False


@dataclass(frozen=True)
class Build:
    """Where a service's image is built from (paths resolved against the compose file's folder)."""

    context: Path
    dockerfile: Path


@dataclass(frozen=True)
class Service:
    """One service of the compose file, after interpolation."""

    name: str
    raw: Mapping[str, Any] = field(repr=False)
    image: str | None
    build: Build | None
    command: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    environment: Mapping[str, str]
    healthcheck: Healthcheck | None
    ports: tuple[PortMapping, ...]
    volumes: tuple[Mount, ...]
    depends_on: Mapping[str, Mapping[str, Any]]
    profiles: tuple[str, ...]
    working_dir: str | None
    user: str | None

    @property
    def restart(self) -> str:
        """The restart policy (Compose's default is ``no``)."""
        return str(self.raw.get("restart", "no"))


@dataclass(frozen=True)
class ComposeProject:
    """A loaded, interpolated compose file."""

    path: Path
    data: Mapping[str, Any] = field(repr=False)
    services: Mapping[str, Service]

    @property
    def directory(self) -> Path:
        """The project folder: relative paths of the file are relative to it."""
        return self.path.parent

    @property
    def volumes(self) -> tuple[str, ...]:
        """The named volumes the file declares."""
        return tuple(self.data.get("volumes") or {})

    @property
    def one_shot_services(self) -> frozenset[str]:
        """Services others wait for to *complete* (``condition: service_completed_successfully``)."""
        return frozenset(
            name
            for service in self.services.values()
            for name, spec in service.depends_on.items()
            if spec.get("condition") == "service_completed_successfully"
        )

    def service(self, name: str) -> Service:
        """The service called ``name``; :class:`ComposeError` names the known ones when it does not exist."""
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services))
            raise ComposeError(f"no service {name!r} in {self.path} (services: {known})") from None


def _argv(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(shlex.split(value))
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    raise ComposeError(f"{where} must be a string or a list, not {type(value).__name__}")


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _environment(value: Any, env: Mapping[str, str], where: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): _scalar(v) for k, v in value.items()}
    if isinstance(value, list):
        result: dict[str, str] = {}
        for item in value:
            name, sep, item_value = str(item).partition("=")
            if sep:
                result[name] = item_value
            elif name in env:  # "KEY" alone: the value comes from the environment of `docker compose`
                result[name] = env[name]
        return result
    raise ComposeError(f"{where} must be a mapping or a list")


def _healthcheck(value: Any, where: str) -> Healthcheck | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ComposeError(f"{where} must be a mapping")
    if value.get("disable"):
        return Healthcheck(test=("NONE",), disabled=True)
    test = value.get("test")
    if isinstance(test, str):
        test_argv: tuple[str, ...] = ("CMD-SHELL", test)
    elif isinstance(test, list) and test:
        test_argv = tuple(str(t) for t in test)
    else:
        raise ComposeError(f"{where}.test must be a string or a non-empty list")
    retries = value.get("retries")
    return Healthcheck(
        test=test_argv,
        interval=value.get("interval"),
        timeout=value.get("timeout"),
        retries=None if retries is None else int(retries),
        start_period=value.get("start_period"),
    )


def _ports(value: Any, where: str) -> tuple[PortMapping, ...]:
    mappings: list[PortMapping] = []
    for item in value or []:
        if isinstance(item, Mapping):
            mappings.append(
                PortMapping(
                    target=int(item["target"]),
                    published=None if item.get("published") is None else str(item["published"]),
                    host_ip=item.get("host_ip"),
                    protocol=str(item.get("protocol", "tcp")),
                )
            )
            continue
        text, _, protocol = str(item).partition("/")
        parts = text.rsplit(":", 2)
        try:
            target = int(parts[-1])
        except ValueError:
            raise ComposeError(f"{where}: cannot read the port {item!r}") from None
        published = parts[-2] if len(parts) >= 2 else None
        host_ip = parts[0] if len(parts) == 3 else None
        mappings.append(PortMapping(target, published, host_ip, protocol or "tcp"))
    return tuple(mappings)


def _volumes(value: Any) -> tuple[Mount, ...]:
    mounts: list[Mount] = []
    for item in value or []:
        if isinstance(item, Mapping):
            mounts.append(
                Mount(
                    target=str(item["target"]),
                    source=item.get("source"),
                    type=str(item.get("type", "volume")),
                    read_only=bool(item.get("read_only", False)),
                )
            )
            continue
        parts = str(item).split(":")
        if len(parts) == 1:
            mounts.append(Mount(target=parts[0], type="volume"))
            continue
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else ""
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append(Mount(target=target, source=source, type=kind, read_only="ro" in mode.split(",")))
    return tuple(mounts)


def _depends_on(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if isinstance(value, list):
        return {str(name): {"condition": "service_started"} for name in value}
    return {str(name): dict(spec or {}) for name, spec in value.items()}


def _build(value: Any, directory: Path) -> Build | None:
    if value is None:
        return None
    if isinstance(value, str):
        context = directory / value
        return Build(context=context, dockerfile=context / "Dockerfile")
    context = directory / str(value.get("context", "."))
    return Build(context=context, dockerfile=context / str(value.get("dockerfile", "Dockerfile")))


def _service(name: str, raw: Mapping[str, Any], env: Mapping[str, str], directory: Path) -> Service:
    where = f"services.{name}"
    return Service(
        name=name,
        raw=raw,
        image=raw.get("image"),
        build=_build(raw.get("build"), directory),
        command=_argv(raw.get("command"), f"{where}.command"),
        entrypoint=_argv(raw.get("entrypoint"), f"{where}.entrypoint"),
        environment=_environment(raw.get("environment"), env, f"{where}.environment"),
        healthcheck=_healthcheck(raw.get("healthcheck"), f"{where}.healthcheck"),
        ports=_ports(raw.get("ports"), f"{where}.ports"),
        volumes=_volumes(raw.get("volumes")),
        depends_on=_depends_on(raw.get("depends_on")),
        profiles=tuple(raw.get("profiles") or ()),
        working_dir=raw.get("working_dir"),
        user=None if raw.get("user") is None else str(raw["user"]),
    )


def load_yaml(path: Path) -> dict[str, Any]:
    """The compose file as parsed YAML (anchors and ``<<`` merge keys resolved, nothing interpolated)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ComposeError(f"cannot read the compose file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ComposeError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ComposeError(f"{path} has no services mapping")
    return data


def load_project(path: Path, env: Mapping[str, str], *, strict: bool = False) -> ComposeProject:
    """Load the compose file at ``path`` with its variables taken from ``env``.

    Raises :class:`InterpolationError` for the first required variable that ``env`` lacks (its message is
    the one written in the file), :class:`ComposeError` for anything else that is not a compose file.
    """
    path = path.resolve()
    data = interpolate_tree(load_yaml(path), env, strict=strict)
    services = {name: _service(name, raw or {}, env, path.parent) for name, raw in data["services"].items()}
    return ComposeProject(path=path, data=data, services=services)


def missing_required(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Every required variable the compose file needs and ``env`` lacks, with the file's message for it."""
    missing: dict[str, str] = {}
    for _, reference in tree_references(load_yaml(path)):
        value = env.get(reference.name)
        absent = (not value) if reference.operator == ":?" else (value is None)
        if reference.required and absent and reference.name not in missing:
            missing[reference.name] = interpolate(reference.argument, env) or "required"
    return missing


def default_compose_path() -> Path:
    """The repository's docker-compose.yml (this file is tests/deploy/compose.py)."""
    return Path(__file__).resolve().parents[2] / "docker-compose.yml"


# ---------------------------------------------------------------------------------------------- Dockerfiles


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction (continuation lines joined) and the line it starts on."""

    keyword: str
    arguments: str
    line: int


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its instructions, in order."""

    path: Path
    instructions: tuple[Instruction, ...]

    def of(self, keyword: str) -> list[Instruction]:
        """The instructions with that keyword (``FROM``, ``COPY``, ...), in order."""
        return [i for i in self.instructions if i.keyword == keyword.upper()]

    @property
    def env(self) -> dict[str, str]:
        """The variables its ``ENV`` instructions set (later ones win), quotes removed."""
        values: dict[str, str] = {}
        for instruction in self.of("ENV"):
            words = shlex.split(instruction.arguments)
            if words and "=" not in words[0]:  # legacy form: ENV NAME value with spaces
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                name, _, value = word.partition("=")
                values[name] = value
        return values

    @property
    def workdir(self) -> str | None:
        """The last ``WORKDIR`` (the working directory of the image's processes)."""
        found = self.of("WORKDIR")
        return found[-1].arguments.strip() if found else None

    @property
    def user(self) -> str | None:
        """The last ``USER`` (who the image's processes run as)."""
        found = self.of("USER")
        return found[-1].arguments.strip() if found else None


def read_dockerfile(path: Path) -> Dockerfile:
    """Parse a Dockerfile's instructions (comments dropped, ``\\`` continuations joined)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ComposeError(f"cannot read the Dockerfile {path}: {exc}") from exc
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        continues = stripped.endswith("\\")
        pending.append(stripped[:-1].rstrip() if continues else stripped)
        if not continues:
            text = " ".join(p for p in pending if p)
            keyword, _, arguments = text.partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
            pending = []
    if pending:
        raise ComposeError(f"{path}: the instruction starting on line {start} ends with a continuation '\\'")
    return Dockerfile(path=path, instructions=tuple(instructions))


# ------------------------------------------------------------------------------------------ host processes


@dataclass(frozen=True)
class HostMapping:
    """How a container's view of the stack translates to this machine.

    ``hosts``: service host names (and bind addresses such as ``0.0.0.0``) to host addresses; ``ports``:
    container ports to host ports; ``paths``: container path prefixes to host folders (the longest prefix
    wins). Host names are mapped in URLs, in ``host:port`` values, after ``--host``-like options, in
    variables named ``*HOST``/``*HOSTNAME``/``*_IP``/``*_ADDRESS`` and in the ``host`` of a JSON connection
    (elsewhere a word such as ``mlflow`` may be a user or database name, so it is left alone). Ports are
    mapped with their host, after ``--...-port`` options, in ``*PORT`` variables and in the ``port`` of a JSON
    connection whose host was mapped. Paths are mapped wherever a container path starts. Inside shell
    command strings only URLs and paths are mapped.
    """

    hosts: Mapping[str, str]
    ports: Mapping[int, int]
    paths: Mapping[str, Path]
    local_hosts: frozenset[str] = frozenset({"localhost", "127.0.0.1", "0.0.0.0"})

    def _host(self, name: str) -> str | None:
        if name in self.hosts:
            return self.hosts[name]
        return name if name in self.local_hosts else None

    def _port(self, port: str | int) -> str:
        return str(self.ports.get(int(port), port))

    def map_paths(self, text: str) -> str:
        """Replace container paths (``/opt/lifeboat/...``) by host paths."""
        prefixes = {prefix.rstrip("/"): str(path) for prefix, path in self.paths.items()}
        if not prefixes:
            return text
        alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
        pattern = re.compile(r"(?<![\w.-])(" + alternatives + r")(?=/|$|[^\w.-])")
        return pattern.sub(lambda m: prefixes[m.group(1)], text)

    def map_urls(self, text: str) -> str:
        """Map the host and port of every URL whose host is a service or a local address."""

        def replace(match: re.Match[str]) -> str:
            netloc = match.group("netloc")
            userinfo, at, hostport = netloc.rpartition("@")
            host, colon, port = hostport.partition(":")
            mapped = self._host(host)
            if mapped is None:
                return match.group(0)
            new_port = self._port(port) if colon and port.isdigit() else port
            return f"{match.group('scheme')}://{userinfo}{at}{mapped}{colon}{new_port}"

        return _URL.sub(replace, text)

    def map_text(self, text: str) -> str:
        """Map the URLs, ``host:port`` values and container paths in ``text``."""
        host, colon, port = text.partition(":")
        mapped = self._host(host)
        if mapped is not None and colon and port.isdigit():
            return f"{mapped}:{self._port(port)}"
        return self.map_paths(self.map_urls(text))

    def map_host(self, text: str) -> str:
        """Map a value that names a host: a bare host name too, else as :meth:`map_text`."""
        mapped = self._host(text)
        return mapped if mapped is not None else self.map_text(text)

    def map_argv(self, argv: tuple[str, ...] | list[str]) -> list[str]:
        """Map a command line: option values of ``--host``/``--port``-like options, URLs and paths."""
        mapped: list[str] = []
        previous = ""
        for word in argv:
            option, equals, value = word.partition("=")
            if previous in _HOST_OPTIONS:
                word = self.map_host(word)
            elif _PORT_OPTION.match(previous) and word.isdigit():
                word = self._port(word)
            elif equals and option in _HOST_OPTIONS:
                word = f"{option}={self.map_host(value)}"
            elif equals and _PORT_OPTION.match(option) and value.isdigit():
                word = f"{option}={self._port(value)}"
            else:
                word = self.map_text(word)
            mapped.append(word)
            previous = word if word.startswith("-") and not equals else ""
        return mapped

    def map_environment(self, environment: Mapping[str, str]) -> dict[str, str]:
        """Map every variable: ports, host names, JSON connections, URLs and paths (see the class)."""
        mapped: dict[str, str] = {}
        for name, value in environment.items():
            upper = name.upper()
            if upper.endswith("PORT") and value.isdigit():
                mapped[name] = self._port(value)
            elif upper.endswith(_HOST_VARIABLE_SUFFIXES):
                mapped[name] = self.map_host(value)
            elif value.lstrip().startswith("{"):
                mapped[name] = self._map_json(value)
            else:
                mapped[name] = self.map_text(value)
        return mapped

    def _map_json(self, value: str) -> str:
        try:
            document = json.loads(value)
        except json.JSONDecodeError:
            return self.map_text(value)
        if not isinstance(document, dict):
            return self.map_text(value)
        result: dict[str, Any] = {}
        for key, item in document.items():
            if isinstance(item, str):
                result[key] = self.map_host(item) if key == "host" else self.map_text(item)
            else:
                result[key] = item
        host = document.get("host")
        port = document.get("port")
        if isinstance(host, str) and result["host"] != host and isinstance(port, int):
            result["port"] = int(self._port(port))
        return json.dumps(result)


@dataclass(frozen=True)
class HostProcess:
    """A compose service as a process of this machine: argv, environment, working directory, healthcheck."""

    service: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    cwd: Path | None
    healthcheck: tuple[str, ...] | None


def host_process(
    service: Service,
    mapping: HostMapping,
    *,
    base_env: Mapping[str, str],
    image_env: Mapping[str, str] | None = None,
    image_workdir: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> HostProcess:
    """The process that runs ``service`` on this machine, its container names, ports and paths mapped.

    The environment is ``base_env`` (for example PATH with the virtualenv first), then the image's ``ENV``
    (``image_env``), then the service's ``environment``, both mapped, then ``extra_env`` as given. The
    working directory is the service's ``working_dir`` or the image's ``WORKDIR``, mapped. An entrypoint
    that is only an init wrapper (dumb-init, Airflow's /entrypoint) is dropped; any other entrypoint is kept
    in front of the command. A service without a command in the file raises :class:`ComposeError` (the
    image's CMD is not known here).
    """
    if service.command is None:
        raise ComposeError(f"service {service.name!r} has no command in the compose file to run on the host")
    entrypoint = list(service.entrypoint or ())
    while entrypoint and entrypoint[0] in INIT_WRAPPERS:
        entrypoint.pop(0)
    argv = tuple(mapping.map_argv([*entrypoint, *service.command]))
    env = dict(base_env)
    env.update(mapping.map_environment(image_env or {}))
    env.update(mapping.map_environment(service.environment))
    env.update(extra_env or {})
    workdir = service.working_dir or image_workdir
    cwd = Path(mapping.map_paths(workdir)) if workdir else None
    check = service.healthcheck.argv if service.healthcheck else None
    healthcheck: tuple[str, ...] | None = None
    if check is not None:
        if check[:2] == ("/bin/sh", "-c"):
            healthcheck = ("/bin/sh", "-c", mapping.map_paths(mapping.map_urls(check[2])))
        else:
            healthcheck = tuple(mapping.map_argv(check))
    return HostProcess(service=service.name, argv=argv, env=env, cwd=cwd, healthcheck=healthcheck)
