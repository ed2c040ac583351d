"""The declarative source configuration (``sources.yaml``): load, interpolate, validate.

Values may use ``${VAR}`` or ``${VAR:-default}``; interpolation happens when a source is used, so
secrets stay in the environment and never sit in a parsed config that could be logged. A bad file gets
one :class:`ConfigError` line naming the key path and what is wrong with it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A configuration problem, stated in one line that names the file and key."""


def interpolate(value: str, env: dict[str, str] | None = None, *, where: str = "") -> str:
    env = os.environ if env is None else env

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


def load_sources(path: str | Path) -> dict[str, Source]:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    _require(isinstance(doc, dict) and isinstance(doc.get("sources"), dict), f"{path}", "needs a 'sources' mapping")
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
    _validate_options(kind, options, where)
    entities = {e: _entity(where, name, kind, e, espec) for e, espec in spec["entities"].items()}
    return Source(name, kind, str(spec.get("description", "")), str(spec.get("owner", "team:data-platform")),
                  options, entities)


_KIND_OPTIONS = {
    "rest": {"base_url", "auth", "timeout", "verify_tls", "max_retries", "headers"},
    "sql": {"url", "chunk_rows"},
    "files": {"inbox", "archive", "rejected"},
}
_ENTITY_OPTIONS = {
    "rest": {"path", "params", "records_path", "paginator"},
    "sql": {"table", "query"},
    "files": {"pattern", "format", "sheet", "header_row", "skip_rows", "header_rows", "header_separator",
              "footer"},
}
_PAGINATORS = {
    "page_number": {"type", "page_param", "size_param", "page_size", "total_pages_path", "start"},
    "offset": {"type", "offset_param", "limit_param", "limit", "next_url_path", "total_path"},
    "cursor": {"type", "cursor_param", "limit_param", "limit", "next_cursor_path"},
    "link_header": {"type", "page_param", "size_param", "page_size"},
}


def _validate_options(kind: str, options: dict[str, Any], where: str) -> None:
    unknown = set(options) - _KIND_OPTIONS[kind]
    _require(not unknown, where, f"unknown key(s) {sorted(unknown)} for a {kind} source")
    if kind == "rest":
        _require(isinstance(options.get("base_url"), str), f"{where}.base_url", "is required")
        auth = options.get("auth", {"type": "none"})
        _require(isinstance(auth, dict) and auth.get("type") in {"none", "bearer", "api_key", "basic"},
                 f"{where}.auth.type", "must be one of none, bearer, api_key, basic")
    elif kind == "sql":
        _require(isinstance(options.get("url"), str), f"{where}.url", "is required")
    else:
        _require(isinstance(options.get("inbox"), str), f"{where}.inbox", "is required")


def _entity(where: str, source: str, kind: str, name: str, spec: Any) -> Entity:
    ewhere = f"{where}.entities.{name}"
    _require(isinstance(spec, dict), ewhere, "must be a mapping")
    opts = {k: v for k, v in spec.items() if k not in _ENTITY_KEYS}
    unknown = set(opts) - _ENTITY_OPTIONS[kind]
    _require(not unknown, ewhere, f"unknown key(s) {sorted(unknown)} for a {kind} entity")
    pk = spec.get("primary_key")
    if isinstance(pk, str):
        pk = [pk]
    _require(isinstance(pk, list) and pk and all(isinstance(c, str) for c in pk), f"{ewhere}.primary_key",
             "is required: a column name or a list of them")
    if kind == "rest":
        _require(isinstance(opts.get("path"), str), f"{ewhere}.path", "is required")
        pag = opts.get("paginator")
        _require(isinstance(pag, dict) and pag.get("type") in _PAGINATORS, f"{ewhere}.paginator.type",
                 f"must be one of {sorted(_PAGINATORS)}")
        bad = set(pag) - _PAGINATORS[pag["type"]]
        _require(not bad, f"{ewhere}.paginator", f"unknown key(s) {sorted(bad)} for {pag['type']}")
    elif kind == "sql":
        _require(("table" in opts) != ("query" in opts), ewhere, "needs exactly one of 'table' or 'query'")
    else:
        _require(isinstance(opts.get("pattern"), str), f"{ewhere}.pattern", "is required")
        pattern = opts["pattern"]
        _require(not Path(pattern).is_absolute() and ".." not in Path(pattern).parts, f"{ewhere}.pattern",
                 f"{pattern!r} would leave the inbox")
        _require(opts.get("format", _guess_format(pattern)) in {"csv", "xlsx"}, f"{ewhere}.format",
                 "must be csv or xlsx")
        _validate_file_layout(opts, ewhere)
    inc = spec.get("incremental")
    cursor_field = cursor_param = None
    cursor_type = "string"
    if inc is not None:
        _require(isinstance(inc, dict) and isinstance(inc.get("cursor_field"), str), f"{ewhere}.incremental.cursor_field",
                 "is required when incremental is set")
        from connectors.cursor import CURSOR_TYPES, parse_tolerance

        unknown = set(inc) - {"cursor_field", "param", "type", "future_tolerance"}
        _require(not unknown, f"{ewhere}.incremental", f"unknown key(s) {sorted(unknown)}")
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


def _validate_file_layout(opts: dict[str, Any], ewhere: str) -> None:
    """header_row / skip_rows, header_rows, header_separator and footer of a files entity."""
    def count(key: str, least: int) -> None:
        if key in opts:
            v = opts[key]
            _require(isinstance(v, int) and not isinstance(v, bool) and v >= least, f"{ewhere}.{key}",
                     f"must be a whole number >= {least}, got {v!r}")

    count("header_row", 1)
    count("skip_rows", 0)
    count("header_rows", 1)
    _require(not ("header_row" in opts and "skip_rows" in opts), ewhere,
             "give header_row or skip_rows, not both (header_row = skip_rows + 1)")
    _require(isinstance(opts.get("header_separator", "_"), str), f"{ewhere}.header_separator", "must be text")
    if "footer" not in opts:
        return
    footer = opts["footer"]
    if footer is False or footer == "none":
        return
    _require(isinstance(footer, dict), f"{ewhere}.footer",
             f"must be none or a mapping with first_cell and/or last_rows, got {footer!r}")
    unknown = set(footer) - {"first_cell", "last_rows"}
    _require(not unknown, f"{ewhere}.footer", f"unknown key(s) {sorted(unknown)}")
    cells = footer.get("first_cell", [])
    _require(isinstance(cells, list) and all(isinstance(c, str) and c.strip() for c in cells),
             f"{ewhere}.footer.first_cell", f"must be a list of words, got {cells!r}")
    last = footer.get("last_rows", 0)
    _require(isinstance(last, int) and not isinstance(last, bool) and last >= 0, f"{ewhere}.footer.last_rows",
             f"must be a whole number >= 0, got {last!r}")


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
