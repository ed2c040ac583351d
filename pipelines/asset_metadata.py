"""Definition metadata of the table assets: ``dagster/table_name``, ``dagster/column_schema`` and the code version.

Each column is described once, where it is defined:

* the published dataset specs (pipelines/publish.py, pipelines/marts_publish.py, pipelines/national.py)
  describe and classify every published column. A published dataset that selects a column of a table as it
  is (``SELECT name, gender FROM warehouse.dim_person``, or ``"col"`` from a mart) lends that table column
  its description and sensitivity; the SQL parser (sqlglot) reads the spec's query to find them.
* the model header's ``columns`` block (models/build.py) lists every column of a staging or warehouse table
  in order and describes each one no spec describes (an entry with no text is one a spec describes); a
  description may carry a sensitivity (``[restricted] ...``).

The sensitivity tag is the strictest of the header's and the specs'; an ID or phone column every preview
masks (pipelines/common.SENSITIVE_COLUMNS) is ``restricted``; any other column is ``internal``, which is what
the warehouse is (analysts read it; only restricted columns are masked in their copy).

At definition time every staging, warehouse and mart asset and every published dataset carries its column
schema (from the header, or a mart's spec), the types ``unknown until materialised``; each table asset emits
the schema again with its real DuckDB types when it is materialised (:func:`materialized_column_schema`).
tests/test_column_docs.py holds the headers to the tables as built, both ways.
"""

from __future__ import annotations

import hashlib
from functools import cache

import dagster as dg
import duckdb
import sqlglot
import sqlglot.expressions as exp

from hub.publisher import DatasetSpec
from pipelines.common import SENSITIVE_COLUMNS

SENSITIVITY_TAG = "sensitivity"
RANK = {"public": 0, "internal": 1, "restricted": 2}


def table_name(schema: str, table: str) -> str:
    """``dagster/table_name``: the table in the warehouse DuckDB file (``warehouse.dim_person``)."""
    return f"{schema}.{table}"


def _plain_columns(query: str) -> tuple[tuple[str, str] | None, dict[str, str]]:
    """(schema, table) a query reads when it reads one table, and output column -> that table's column for
    every output that is a column as it is (renamed or not)."""
    try:
        tree = sqlglot.parse_one(query, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None, {}
    if not isinstance(tree, exp.Select) or tree.args.get("joins") or tree.args.get("with"):
        return None, {}
    source = tree.args.get("from_") or tree.args.get("from")  # sqlglot renamed the key
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or not table.db:
        return None, {}
    out = {}
    for projection in tree.expressions:
        inner = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(inner, exp.Column) and not inner.table:
            out[projection.alias_or_name] = inner.name
    return (table.db, table.name), out


@cache
def _all_specs() -> tuple[DatasetSpec, ...]:
    from pipelines.publish import DATASETS

    return DATASETS


@cache
def described_columns() -> dict[tuple[str, str], dict[str, tuple[str, str]]]:
    """(schema, table) -> column -> (description, sensitivity), from every published dataset that selects
    the column as it is. A column published by two datasets keeps the stricter sensitivity, and the
    description of a dataset that publishes it under its own name."""
    found: dict[tuple[str, str], dict[str, tuple[str, str, bool]]] = {}
    for spec in _all_specs():
        source, mapping = _plain_columns(spec.query)
        if source is None:
            continue
        for column in spec.columns:
            if column.name not in mapping:
                continue
            name = mapping[column.name]
            same = name == column.name
            old = found.setdefault(source, {}).get(name)
            if old is None:
                found[source][name] = (column.description, column.sensitivity, same)
            else:
                description = old[0] if old[2] or not same else column.description
                sensitivity = max(old[1], column.sensitivity, key=RANK.__getitem__)
                found[source][name] = (description, sensitivity, old[2] or same)
    return {t: {c: v[:2] for c, v in cols.items()} for t, cols in found.items()}


def header_columns(schema: str, table: str) -> dict[str, tuple[str | None, str | None]]:
    """column -> (description, sensitivity) of a table from the header of the model that creates it, in
    header order; empty when the header has no columns block for it."""
    from models.build import LAYERS, model_of

    layer, name = model_of(schema, table)
    model = LAYERS.get(layer, {}).get(name)
    return model.column_docs.get((schema, table), {}) if model is not None else {}


UNTYPED = "unknown until materialised"


def _column(schema: str, table: str, name: str, type_: str) -> dg.TableColumn:
    own, own_sensitivity = header_columns(schema, table).get(name, (None, None))
    published, published_sensitivity = described_columns().get((schema, table), {}).get(name, (None, None))
    found = [s for s in (own_sensitivity, published_sensitivity) if s]
    if name in SENSITIVE_COLUMNS:
        found.append("restricted")
    sensitivity = max(found, key=RANK.__getitem__) if found else "internal"
    return dg.TableColumn(name=name, type=type_, description=own or published,
                          tags={SENSITIVITY_TAG: sensitivity})


def spec_column_schema(spec: DatasetSpec) -> dg.TableSchema:
    """A published dataset's columns as its spec describes them (type as published: see the manifest)."""
    return dg.TableSchema(columns=[
        dg.TableColumn(name=c.name, type="published", description=c.description,
                       tags={SENSITIVITY_TAG: c.sensitivity}) for c in spec.columns])


def spec_code_version(spec: DatasetSpec) -> str:
    """Hash of what defines a published dataset: its query, order and columns."""
    text = "\0".join([spec.query, spec.order_by, spec.audience,
                      *(f"{c.name}|{c.description}|{c.sensitivity}" for c in spec.columns)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def table_metadata(schema: str, table: str) -> dict:
    """Definition metadata of a table asset: its table name and its column schema, the columns listed by
    the model's header or, for a mart (its published dataset reads every column of it), by the spec."""
    from pipelines.marts_publish import MART_DATASETS, MART_SOURCES

    meta: dict = {"dagster/table_name": table_name(schema, table)}
    spec = next((s for s in MART_DATASETS if schema == "marts" and MART_SOURCES[s.name] == table), None)
    names = list(header_columns(schema, table)) or ([c.name for c in spec.columns] if spec is not None else [])
    if names:
        meta["dagster/column_schema"] = dg.TableSchema(columns=[_column(schema, table, n, UNTYPED) for n in names])
    return meta


def materialized_column_schema(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> dg.TableSchema:
    """The table's columns as DuckDB holds them, with the descriptions and sensitivity of the specs."""
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                       [schema, table]).fetchall()
    return dg.TableSchema(columns=[_column(schema, table, name, type_) for name, type_ in rows])


def published_deps(spec: DatasetSpec) -> list[dg.AssetKey]:
    """The assets a published dataset reads, from its query by the SQL parser: the models that build the
    tables it names (quality.* tables included), never a hand-kept list."""
    from models.build import asset_of
    from models.sqlrefs import table_refs

    reads = table_refs(spec.query, where=f"dataset {spec.name}").reads
    return sorted({dg.AssetKey(list(asset_of(schema, table))) for schema, table in reads}, key=str)
