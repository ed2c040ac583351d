"""The ``quality.*`` tables as assets (group ``quality``): visible in the graph with their columns and writers.

The tables are made by ``models/sql/bookkeeping.sql`` and written on the side by loads, staging and warehouse
models and checks; models and published datasets that read them depend on them (their SQL is parsed,
models/sqlrefs.py). Each is an :class:`~dagster.AssetSpec` — Dagster does not materialise it: its writers
do — with the description and columns of its ``CREATE TABLE`` in bookkeeping.sql (the comments read by the
SQL parser, the columns and types by running the file in an empty DuckDB: there is no second list) and the assets and checks that write it in the ``written_by`` metadata.

The writers are not graph dependencies of these specs: a job selecting what is downstream of a raw asset
would then run through ``quality/quarantine`` into every fact that reads it, and a declarative condition
would wait on tables Dagster never materialises. ``tests/test_asset_graph.py`` holds the specs to the SQL.
"""

from __future__ import annotations

import re
from functools import cache

import dagster as dg
import duckdb
import sqlglot
import sqlglot.expressions as exp

from models import sql_dir
from models.build import LAYERS
from pipelines.common import OWNER

BOOKKEEPING = sql_dir / "bookkeeping.sql"
_COLUMN_COMMENT = re.compile(r'^\s*"?([A-Za-z_][A-Za-z0-9_]*)"?\s+[A-Z].*--\s*(.+?)\s*$')


@cache
def quality_tables() -> dict[str, tuple[str, list[tuple[str, str, str | None]]]]:
    """table -> (description, [(column, type, comment)]) of every ``quality.*`` table in bookkeeping.sql."""
    text = BOOKKEEPING.read_text(encoding="utf-8")
    out = {}
    for statement in sqlglot.parse(text, read="duckdb"):
        if not (isinstance(statement, exp.Create) and str(statement.args.get("kind")).upper() == "TABLE"):
            continue
        table = statement.this.this
        if table.db != "quality":
            continue
        description = " ".join(c.strip() for c in (statement.comments or [])[-2:]
                               if "Idempotent" not in c)
        out[table.name] = (description, [])
    # the columns and their types as DuckDB makes them: run the file in an empty in-memory database
    con = duckdb.connect()
    con.execute("CREATE SCHEMA IF NOT EXISTS quality; CREATE SCHEMA IF NOT EXISTS meta")
    con.execute(text)
    for name, (description, _) in out.items():
        out[name] = (description, [(c, t, None) for c, t in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'quality' "
            "AND table_name = ? ORDER BY ordinal_position", [name]).fetchall()])
    con.close()
    # inline comments (`severity VARCHAR NOT NULL, -- error ...`) describe their column, per table block
    for name, (description, columns) in out.items():
        block = text[text.index(f"quality.{name} ("):]
        block = block[: block.index(");")]
        notes = {m.group(1): m.group(2) for m in map(_COLUMN_COMMENT.match, block.splitlines()) if m}
        out[name] = (description, [(c, t, notes.get(c)) for c, t, _ in columns])
    return out


def writers(table: str, raw_keys: list[dg.AssetKey]) -> list[str]:
    """The assets and checks that write ``quality.<table>``, as user strings."""
    out: list[str] = []
    if table in ("load_audit", "load_finding", "quarantine"):
        out += [k.to_user_string() for k in raw_keys]  # every load (rows rejected at landing)
    for layer, models in LAYERS.items():
        for name, model in models.items():
            if ("quality", table) in model.writes:
                out.append(f"{layer}/{name}")
    if table == "rule_violation":
        out.append("the business-rule checks (quality/rules.yaml)")
    if table == "check_result":
        out.append("every asset check")
    return out


def quality_table_specs(raw_keys: list[dg.AssetKey]) -> list[dg.AssetSpec]:
    specs = []
    for name, (description, columns) in sorted(quality_tables().items()):
        schema = dg.TableSchema(columns=[dg.TableColumn(name=c, type=t, description=d) for c, t, d in columns])
        specs.append(dg.AssetSpec(
            key=["quality", name], group_name="quality", kinds={"duckdb"}, owners=[OWNER],
            tags={"layer": "quality"},
            description=f"{description} Written on the side by the assets in written_by; created by "
                        "models/sql/bookkeeping.sql.",
            metadata={"dagster/table_name": f"quality.{name}", "dagster/column_schema": schema,
                      "written_by": dg.MetadataValue.json(writers(name, raw_keys))}))
    return specs
