"""The declarative source configuration (``sources.yaml``): load, interpolate, validate.

Values may use ``${VAR}`` or ``${VAR:-default}``; interpolation happens when a source is used, so
secrets stay in the environment and never sit in a parsed config that could be logged. A bad file gets
one :class:`ConfigError` line naming the key path and what is wrong with it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A configuration problem, stated in one line that names the file and key."""


def interpolate(value: str, env: dict[str, str] | None = None, *, where: str = "") -> str:
    if env is None:
        from hub.settings import environ  # the one reader of the process environment

        env = environ()

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set")

    return _VAR.sub(repl, value)


@dataclass(frozen=True)
class Entity:
    source: str
    name: str
    primary_key: tuple[str, ...]
    options: dict[str, Any]
    cursor_field: str | None = None
    cursor_param: str | None = None
    cursor_type: str = "string"  # string (ISO text in order), int (a sequence), epoch_ms, epoch_s
    required: tuple[str, ...] = ()
    future_tolerance: dt.timedelta = dt.timedelta(days=1)  # cursor values beyond now + this never move it

    @property
    def table(self) -> str:
        return f"{self.source}__{self.name}"


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    description: str
    owner: str
    options: dict[str, Any]
    entities: dict[str, Entity] = field(default_factory=dict)

    def setting(self, key: str, default: Any = None, env: dict[str, str] | None = None) -> Any:
        """An option with ``${VAR}`` resolved now (call it where the value is used, not earlier)."""
        value = self.options.get(key, default)
        if isinstance(value, str):
            return interpolate(value, env, where=f"sources.{self.name}.{key}")
        return value


_KINDS = {"rest", "sql", "files"}
_SOURCE_KEYS = {"kind", "description", "owner", "entities"}
_ENTITY_KEYS = {"primary_key", "incremental", "required_columns"}


def _require(cond: bool, path: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: {msg}")


def read_yaml(path: Path, error: type[Exception] | None = None, missing_hint: str = ""):
    """A YAML file's document; a missing file or bad YAML raises ``error`` (default ConfigError) in one line
    naming the file (and the line)."""
    error = error or ConfigError
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found{missing_hint}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise error(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def load_sources(path: str | Path) -> dict[str, Source]:
    path = Path(path)
    doc = read_yaml(path)
    _require(isinstance(doc, dict) and isinstance(doc.get("sources"), dict), f"{path}", "needs a 'sources' mapping")
    from connectors.schema import SourcesFile, ValidationError, validation_message

    try:
        SourcesFile.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {validation_message(exc)}") from None
    sources = {}
    for name, spec in doc["sources"].items():
        sources[name] = _source(path, name, spec)
    return sources


def _source(path: Path, name: str, spec: Any) -> Source:
    where = f"{path}: sources.{name}"
    _require(isinstance(spec, dict), where, "must be a mapping")
    kind = spec.get("kind")
    _require(kind in _KINDS, f"{where}.kind", f"must be one of {sorted(_KINDS)}, got {kind!r}")
    _require(isinstance(spec.get("entities"), dict) and spec["entities"], f"{where}.entities", "needs at least one entity")
    options = {k: v for k, v in spec.items() if k not in _SOURCE_KEYS}
    entities = {e: _entity(where, name, kind, e, espec) for e, espec in spec["entities"].items()}
    return Source(name, kind, str(spec.get("description", "")), str(spec.get("owner", "team:data-platform")),
                  options, entities)


def _entity(where: str, source: str, kind: str, name: str, spec: Any) -> Entity:
    ewhere = f"{where}.entities.{name}"
    _require(isinstance(spec, dict), ewhere, "must be a mapping")
    opts = {k: v for k, v in spec.items() if k not in _ENTITY_KEYS}
    pk = spec.get("primary_key")
    if isinstance(pk, str):
        pk = [pk]
    _require(isinstance(pk, list) and pk and all(isinstance(c, str) for c in pk), f"{ewhere}.primary_key",
             "is required: a column name or a list of them")
    inc = spec.get("incremental")
    cursor_field = cursor_param = None
    cursor_type = "string"
    if inc is not None:
        _require(isinstance(inc, dict) and isinstance(inc.get("cursor_field"), str), f"{ewhere}.incremental.cursor_field",
                 "is required when incremental is set")
        from connectors.cursor import CURSOR_TYPES, parse_tolerance

        cursor_field, cursor_param = inc["cursor_field"], inc.get("param")
        cursor_type = inc.get("type", "string")
        _require(cursor_type in CURSOR_TYPES, f"{ewhere}.incremental.type",
                 f"must be one of {', '.join(CURSOR_TYPES)}, got {cursor_type!r}")
        try:
            tolerance = parse_tolerance(inc.get("future_tolerance", "1d"))
        except ValueError as exc:
            raise ConfigError(f"{ewhere}.incremental.future_tolerance: {exc}") from None
    else:
        tolerance = dt.timedelta(days=1)
    required = tuple(spec.get("required_columns", ()))
    return Entity(source, name, tuple(pk), opts, cursor_field, cursor_param, cursor_type,
                  tuple(dict.fromkeys((*pk, *required))), tolerance)


def _guess_format(pattern: str) -> str:
    return "xlsx" if pattern.lower().endswith((".xlsx", ".xlsm")) else "csv"


def file_format(entity: Entity) -> str:
    return entity.options.get("format", _guess_format(entity.options["pattern"]))


# What DuckDB may hold while a load lands, whatever the warehouse's own limit. Landing streams the
# load's Parquet parts into the raw table; what DuckDB keeps beyond a few row groups is cache, so a low
# limit keeps peak memory flat as sources grow, at no measured cost in time (docs/benchmarks.md).
DEFAULT_LANDING_MEMORY = "128MB"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$", re.IGNORECASE)
_UNIT = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def memory_bytes(text: str) -> int:
    """A DuckDB memory size ('128MB', '2 GiB', '512KB') in bytes; ValueError names the bad value."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a memory size (e.g. 128MB, 1GB, 2GiB)")
    return int(float(m.group(1)) * _UNIT[(m.group(2) or "B").upper()])
