"""What a SQL text reads and writes, from a real SQL parser (sqlglot, DuckDB dialect), not a pattern.

:func:`table_refs` parses a whole script and returns every schema-qualified table it reads or writes, in any
schema (``raw``, ``staging``, ``warehouse``, ``marts``, ``quality``, ``meta``). Names that a statement defines
itself are left out: common table expressions and the temporary tables and views the script creates. A
table that is written (``CREATE TABLE``, ``INSERT INTO``, ``DELETE FROM``, ``UPDATE``) is a write, not a read,
in the statement that writes it; a table the script both writes and reads elsewhere is in both.
An unqualified name that is none of these is ``unresolved`` (the staging runner's ``current`` view is one).

:func:`macro_calls` names the SQL macros (models/sql/macros.sql) a text calls, with the macros those call;
:func:`macro_definitions` reads that file into one definition text per macro. Both feed a model's
``code_version``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import sqlglot
import sqlglot.expressions as exp

from models import sql_dir

DIALECT = "duckdb"
MACROS_FILE = sql_dir / "macros.sql"


class SqlRefError(ValueError):
    """A SQL text the parser cannot read."""


@dataclass(frozen=True)
class Refs:
    reads: frozenset[tuple[str, str]]    # (schema, table)
    writes: frozenset[tuple[str, str]]   # (schema, table)
    unresolved: frozenset[str]           # unqualified names that are no CTE and no temporary object made here


def _parse(sql: str, where: str) -> list[exp.Expression]:
    try:
        return [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise SqlRefError(f"{where}: the SQL parser cannot read it: {str(exc).splitlines()[0]}") from None


def _target(statement: exp.Expression) -> exp.Table | None:
    """The table a statement writes, if it writes one."""
    if isinstance(statement, exp.Create | exp.Insert | exp.Delete | exp.Update):
        node = statement.this
        if isinstance(node, exp.Schema):
            node = node.this
        return node if isinstance(node, exp.Table) else None
    return None


def _is_temporary(statement: exp.Expression) -> bool:
    props = statement.args.get("properties")
    return bool(props and any(isinstance(p, exp.TemporaryProperty) for p in props.expressions))


def table_refs(sql: str, *, where: str = "SQL") -> Refs:
    """Every schema-qualified table ``sql`` (one statement or a script) reads and writes.

    ``where`` names the text in the error raised when it does not parse (a file path, say)."""
    reads: set[tuple[str, str]] = set()
    writes: set[tuple[str, str]] = set()
    unresolved: set[str] = set()
    local: set[str] = set()  # temporary tables and views made by the script so far
    for statement in _parse(sql, where):
        target = _target(statement)
        if isinstance(statement, exp.Create) and str(statement.args.get("kind", "")).upper() in ("MACRO", "FUNCTION"):
            continue
        if target is not None and isinstance(target.this, exp.Identifier):
            if isinstance(statement, exp.Create) and (_is_temporary(statement) or not target.db):
                local.add(target.name.lower())
            elif target.db:
                writes.add((target.db.lower(), target.name.lower()))
        ctes = {c.alias_or_name.lower() for c in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            if table is target or not isinstance(table.this, exp.Identifier):
                continue  # the written table, or a table function such as read_csv(...)
            name = table.name.lower()
            if table.db:
                reads.add((table.db.lower(), name))
            elif name not in ctes and name not in local:
                unresolved.add(name)
    return Refs(frozenset(reads), frozenset(writes), frozenset(unresolved))


@cache
def macro_definitions(path: Path = MACROS_FILE) -> dict[str, str]:
    """Each macro of the macros file: name -> its ``CREATE MACRO`` statement, as the parser prints it."""
    out = {}
    for statement in _parse(path.read_text(encoding="utf-8"), str(path)):
        if isinstance(statement, exp.Create) and str(statement.args.get("kind", "")).upper() == "MACRO":
            fn = statement.this
            name = fn.this.name if isinstance(fn.this, exp.Table) else fn.name
            out[name.lower()] = statement.sql(dialect=DIALECT)
    return out


def _calls(sql: str, where: str) -> set[str]:
    return {f.name.lower() for s in _parse(sql, where) for f in s.find_all(exp.Anonymous)}


def macro_calls(sql: str, *, where: str = "SQL") -> list[str]:
    """The macros ``sql`` calls, directly or through another macro, sorted."""
    macros = macro_definitions()
    found: set[str] = set()
    todo = [c for c in _calls(sql, where) if c in macros]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(c for c in _calls(macros[name], str(MACROS_FILE)) if c in macros)
    return sorted(found)


def code_version(sql: str, *, where: str = "SQL") -> str:
    """sha256 (first 16 hex digits) of a model's SQL and of every macro it uses: it changes exactly when
    the code that builds the table changes."""
    h = hashlib.sha256(sql.encode("utf-8"))
    macros = macro_definitions()
    for name in macro_calls(sql, where=where):
        h.update(b"\0" + macros[name].encode("utf-8"))
    return h.hexdigest()[:16]
