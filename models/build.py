"""Builds the staging and warehouse models in DuckDB, set-based. The Dagster assets call these, and the
asset graph alone decides what is built and in which order (tests build through it: tests/campus_graph.py).

A staging model is a SQL file of a fixed shape: it selects from ``current`` (the latest version of each
key in a raw table, with ``_duplicate`` set on extra copies within one load) and returns its columns
plus ``_reject_rule``, ``_reject_detail``, ``_record_key`` and ``_row_number``. Rows with a rule go to
``quality.quarantine`` with the original raw row; the rest become the staging table. Both happen in one
transaction and replace the model's previous quarantine rows, so a rebuild never adds duplicates.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path

import duckdb
import yaml

from connectors.raw_zone import q
from models import codesets_dir, delta, row_rules, sql_dir, sqlrefs
from models.plausibility import Check, apply_plausibility

LAYER_NAMES = ("staging", "warehouse", "marts")


@dataclass(frozen=True)
class Model:
    """A SQL model file: ``models/sql/<layer>/<name>.sql`` with a YAML header in ``-- ---`` comments.

    Staging headers name the raw ``source`` (``system.entity``) and its ``key``; every header has a
    ``description``. Dependencies are read from the SQL itself by a SQL parser (models/sqlrefs.py: every
    schema-qualified table, quality.* included), so they cannot go stale. ``materialize: script`` runs the
    file as statements that create the table themselves; a script's header declares in ``writes`` every
    table it writes besides its own (``[warehouse.person_number, quality.reconciliation_issue]``), and a
    header that does not match what the SQL writes is refused.
    """

    layer: str
    name: str
    description: str
    sql: str
    source: str | None = None
    entity: str | None = None
    primary_key: tuple[str, ...] = ()
    materialize: str = "table"
    snapshot: bool = False   # each load is the whole entity: current = the latest load only
    history: bool = False    # also build <name>_history: every version, with when it was seen
    # source columns an older export may lack (added to the export later): NULL when the raw table has none
    optional_columns: tuple[str, ...] = ()
    side_writes: tuple[str, ...] = ()  # header ``writes``: tables written besides its own, schema.table
    # header ``columns``: (schema, table, column, description or None, sensitivity or None), in header order
    columns: tuple[tuple[str, str, str, str | None, str | None], ...] = ()

    @property
    def column_docs(self) -> dict[tuple[str, str], dict[str, tuple[str | None, str | None]]]:
        """(schema, table) -> column -> (description, sensitivity) from the header's ``columns`` block: the
        model's own table, and each other table it creates under its ``schema.table:`` line."""
        out: dict[tuple[str, str], dict[str, tuple[str | None, str | None]]] = {}
        for schema, table, name, description, sensitivity in self.columns:
            out.setdefault((schema, table), {})[name] = (description, sensitivity)
        return out

    @property
    def raw_table(self) -> str:
        return f"{self.source}__{self.entity}"

    @cached_property
    def refs(self) -> sqlrefs.Refs:
        return sqlrefs.table_refs(self.sql, where=f"models/sql/{self.layer}/{self.name}.sql")

    @property
    def runner_writes(self) -> set[tuple[str, str]]:
        """What the runner writes for the model: its table, and for staging the quarantine and history."""
        out = {(self.layer, self.name)}
        if self.layer == "staging":
            out.add(("quality", "quarantine"))
            if self.history:
                out |= {("staging", f"{self.name}_history"), ("staging", f"{self.name}_loads")}
        return out

    @property
    def writes(self) -> set[tuple[str, str]]:
        """Every table building this model writes, in any schema (quality.* included)."""
        return self.runner_writes | set(self.refs.writes)

    @property
    def creates(self) -> set[tuple[str, str]]:
        """Tables of the model layers this model writes: its own, and a script's other tables."""
        return {(s, t) for s, t in self.writes if s in LAYER_NAMES}

    @property
    def reads(self) -> list[tuple[str, str]]:
        """(schema, table) this model reads, from its parsed SQL (its own tables left out), sorted."""
        return sorted(set(self.refs.reads) - self.writes)

    @cached_property
    def code_version(self) -> str:
        """Hash of the model's SQL and of the macros it uses (models/sqlrefs.code_version)."""
        return sqlrefs.code_version(self.sql, where=f"models/sql/{self.layer}/{self.name}.sql")


def model_of(layer: str, table: str) -> tuple[str, str]:
    """The model (layer, name) that builds a table: itself, the script that creates it, the staging
    model whose history/loads table it is, or ``staging/code_sets`` for a code set. A table outside the
    model layers (quality.*) is its own."""
    if layer == "staging" and (table == "code_map" or table.startswith("cs_")):
        return "staging", "code_sets"
    for model in (*STAGING_MODELS.values(), *WAREHOUSE_MODELS.values(), *MART_MODELS.values()):
        if (layer, table) in model.creates:
            return model.layer, model.name
    for suffix in ("_history", "_loads"):
        if layer == "staging" and table.endswith(suffix) and table.removesuffix(suffix) in STAGING_MODELS:
            return layer, table.removesuffix(suffix)
    return layer, table


def asset_of(layer: str, table: str) -> tuple[str, str]:
    """The asset (key path) a table belongs to: its own for every table a model writes, the side tables
    of a script included (a multi-asset builds them together); ``staging/code_sets`` for a code set; the
    staging model for its history and loads tables; itself otherwise (quality.*)."""
    owner = model_of(layer, table)
    if owner == ("staging", "code_sets") or (layer == "staging" and owner != (layer, table)):
        return owner
    return layer, table


SENSITIVITIES = ("public", "internal", "restricted")


def _header_columns(path: Path, layer: str, name: str, lines: list[tuple[int, str]]
                    ) -> list[tuple[str, str, str, str | None, str | None]]:
    """The ``-- columns:`` block: ``--   column: description`` per column of the model's table (indented two
    spaces), and for another table the script creates ``--   schema.table:`` with its columns indented four.
    A description may start with ``[public]``, ``[internal]`` or ``[restricted]`` (its sensitivity); an empty
    one (``--   name:``) says that a published dataset spec describes the column."""
    out = []
    table = (layer, name)
    for number, line in lines:
        body = line.removeprefix("--")
        body = body[1:] if body.startswith(" ") else body
        indent = len(body) - len(body.lstrip(" "))
        key, sep, value = body.strip().partition(":")
        if not sep or indent not in (2, 4) or (indent == 4 and table == (layer, name)):
            raise ValueError(f"{path} line {number}: expected '--   column: description' in the columns block, "
                             f"got {line!r}")
        value = value.strip()
        if indent == 2 and "." in key and not value:
            schema, _, other = key.partition(".")
            table = (schema, other)
            continue
        if indent == 2:
            table = (layer, name)
        if not key.isidentifier():
            raise ValueError(f"{path} line {number}: {key!r} is not a column name")
        sensitivity = None
        if value.startswith("["):
            tag, _, value = value[1:].partition("]")
            if tag not in SENSITIVITIES:
                raise ValueError(f"{path} line {number}: sensitivity [{tag}] is not one of {list(SENSITIVITIES)}")
            sensitivity, value = tag, value.strip()
        if any(c[:3] == (*table, key) for c in out):
            raise ValueError(f"{path} line {number}: column {key} of {'.'.join(table)} is described twice")
        out.append((table[0], table[1], key, value or None, sensitivity))
    return out


def _parse(path: Path) -> Model:
    """Read a model's header: ``-- key: value`` lines between two ``-- ---`` lines. A value is taken as
    written (a description may hold colons); a value in brackets is a YAML list. ``-- columns:`` opens the
    indented block that describes the columns (:func:`_header_columns`)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "-- ---":
        raise ValueError(f"{path}: a model starts with a '-- ---' header line")
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "-- ---")
    except StopIteration:
        raise ValueError(f"{path}: the header has no closing '-- ---' line") from None
    header: dict[str, object] = {}
    column_lines: list[tuple[int, str]] = []
    for number, line in enumerate(lines[1:end], 2):
        if column_lines or line.rstrip() == "-- columns:":
            if line.startswith("--  ") or not column_lines:  # indented: a line of the block
                column_lines.append((number, line))
                continue
        key, sep, value = line.removeprefix("--").strip().partition(": ")
        if not sep or not key.isidentifier():
            raise ValueError(f"{path} line {number}: expected '-- key: value', got {line!r}")
        value = value.strip()
        header[key] = yaml.safe_load(value) if value.startswith("[") or value in ("true", "false") else value
    if "description" not in header:
        raise ValueError(f"{path}: the header needs a description")
    source, _, entity = str(header.get("source", "")).partition(".")
    declared = tuple(header.get("writes", ()))
    model = Model(layer=path.parent.name, name=path.stem, description=str(header["description"]), sql=text,
                 source=source or None, entity=entity or None,
                 primary_key=tuple(header.get("key", ())), materialize=str(header.get("materialize", "table")),
                 snapshot=header.get("snapshot") is True, history=header.get("history") is True,
                 optional_columns=tuple(header.get("optional_columns", ())), side_writes=declared,
                 columns=tuple(_header_columns(path, path.parent.name, path.stem, column_lines[1:])))
    try:
        side = {f"{s}.{t}" for s, t in model.writes - model.runner_writes}
    except sqlrefs.SqlRefError as exc:
        raise ValueError(str(exc)) from None
    if side != set(declared):
        raise ValueError(f"{path}: the SQL writes {sorted(side) or 'no other table'} besides its own table but the "
                         f"header declares writes: {sorted(declared) or '[]'}; make the '-- writes:' line match")
    strange = sorted({(c[0], c[1]) for c in model.columns} - model.creates)
    if strange:
        raise ValueError(f"{path}: the columns block describes {'.'.join(strange[0])}, which the model does not create")
    unknown = model.refs.unresolved - ({"current"} if model.layer == "staging" else set())
    if unknown:
        raise ValueError(f"{path}: reads {sorted(unknown)} without a schema (not a CTE or a temporary table it "
                         "makes); name the schema, e.g. warehouse.<table>")
    return model


def discover(layer: str) -> dict[str, Model]:
    return {p.stem: _parse(p) for p in sorted((sql_dir / layer).glob("*.sql"))}


STAGING_MODELS = discover("staging")
WAREHOUSE_MODELS = discover("warehouse")
MART_MODELS = discover("marts")
LAYERS = {"staging": STAGING_MODELS, "warehouse": WAREHOUSE_MODELS, "marts": MART_MODELS}


def load_code_sets(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Code sets (``<name>.csv`` -> ``staging.cs_<name>``) and per-source value mappings (every
    ``map_*.csv``, columns system, field, source_value, code -> ``staging.code_map``)."""
    counts = {}
    maps = sorted(str(p) for p in codesets_dir.glob("map_*.csv"))
    con.execute("CREATE OR REPLACE TABLE staging.code_map AS SELECT DISTINCT system, field, source_value, code "
                "FROM read_csv(?, header = true, all_varchar = true, union_by_name = true)", [maps])
    counts["code_map"] = con.execute("SELECT count(*) FROM staging.code_map").fetchone()[0]
    for path in sorted(codesets_dir.glob("*.csv")):
        if path.name.startswith("map_"):
            continue
        table = f"cs_{path.stem}"
        con.execute(f"CREATE OR REPLACE TABLE staging.{table} AS "
                    "SELECT * FROM read_csv(?, header = true, all_varchar = true)", [str(path)])
        counts[table] = con.execute(f"SELECT count(*) FROM staging.{table}").fetchone()[0]
    return counts


def raw_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
                       "AND table_name = ?", [table]).fetchone()[0] > 0


def _raw_with_optional(con: duckdb.DuckDBPyConnection, m: Model) -> str:
    """The raw table, with a NULL column for each optional column it does not have."""
    raw = f"raw.{q(m.raw_table)}"
    have = {c for (c,) in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' "
                                      "AND table_name = ?", [m.raw_table]).fetchall()}
    missing = [c for c in m.optional_columns if c not in have]
    if not missing:
        return raw
    return f"(SELECT *, {', '.join(f'NULL::VARCHAR AS {q(c)}' for c in missing)} FROM {raw})"


def build_staging(con: duckdb.DuckDBPyConnection, name: str, *,
                  checks: dict[str, list[Check]] | None = None, as_of: date | None = None) -> dict:
    """Build ``staging.<name>`` whole. ``checks`` and ``as_of``: the run's plausibility checks and as-of
    date (models/plausibility.py: apply_plausibility's defaults when None)."""
    m = STAGING_MODELS[name]
    if not raw_exists(con, m.raw_table):
        raise RuntimeError(f"raw.{m.raw_table} does not exist yet: materialise raw/{m.raw_table} first")
    pk = ", ".join(q(k) for k in m.primary_key)
    raw = _raw_with_optional(con, m)
    con.execute("BEGIN TRANSACTION")
    try:
        superseded = stage_model(con, m, raw, checks=checks, as_of=as_of)
        con.execute("DELETE FROM quality.quarantine WHERE stage = 'staging' AND source = ? AND entity = ?",
                    [m.source, m.entity])
        insert_quarantine(con, m)
        con.execute(f"""CREATE OR REPLACE TABLE staging.{name} AS
            SELECT * EXCLUDE (_reject_rule, _reject_detail, _record_key, _row_number)
            FROM _model WHERE _reject_rule IS NULL""")
        stats = model_outcome(con)
        if m.history:
            _build_history(con, m, pk, raw)
        delta.record(con, name, f"staging.{q(name)}")  # whole: a model built on it rebuilds whole too
        con.execute("DROP TABLE _model")
        con.execute("DROP VIEW current")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    accepted = stats.pop("accepted", 0)
    return {"rows_in": accepted + sum(stats.values()), "rows_accepted": accepted,
            "rows_rejected": sum(stats.values()), "rejected_by_rule": stats, "rows_superseded": superseded}


def stage_model(con: duckdb.DuckDBPyConnection, m: Model, relation: str, *, replace_all: bool = True,
                checks: dict[str, list[Check]] | None = None, as_of: date | None = None) -> int:
    """The steps of a staging build before it writes quarantine and staging, over the raw rows in
    ``relation`` (the raw table, or some keys' raw rows in every load: models/incremental.py): ``current``
    (each key's latest version, keys normalised, older versions in one load superseded), the model's SQL
    into the temp table ``_model``, the row rules and the plausibility checks marking its rows, the
    superseded versions and the findings written. ``replace_all`` deletes the model's earlier rows of
    quality.superseded, value_finding and reconciliation_issue first; the incremental build deletes only
    the rebuilt keys' rows itself and passes False. Returns the number of superseded rows written."""
    row_rules.create_current(con, m, relation)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _model AS {m.sql}")
    superseded = row_rules.apply_row_rules(con, m, replace_all=replace_all)
    # quality/plausibility.yaml: implausible values quarantined or flagged
    apply_plausibility(con, m, checks, as_of=as_of, replace_all=replace_all)
    return superseded


def insert_quarantine(con: duckdb.DuckDBPyConnection, m: Model) -> None:
    """The rows of ``_model`` with a rule, into quality.quarantine with their original raw row."""
    con.execute(f"""INSERT INTO quality.quarantine
            (stage, source, entity, load_id, rule, record_key, detail, original_row)
        SELECT 'staging', ?, ?, m.load_id, m._reject_rule, m._record_key, m._reject_detail,
               to_json(r) FROM _model m
        JOIN raw.{q(m.raw_table)} r ON r._load_id = m.load_id AND r._row_number = m._row_number
        WHERE m._reject_rule IS NOT NULL""", [m.source, m.entity])


def model_outcome(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of ``_model`` per rule, 'accepted' for the rows without one."""
    return dict(con.execute("""SELECT coalesce(_reject_rule, 'accepted'), count(*) FROM _model
                               GROUP BY ALL""").fetchall())


def _build_history(con: duckdb.DuckDBPyConnection, m: Model, pk: str, raw: str) -> None:
    """Every version of every key, one per load it was seen in, normalised by the same SQL; rejected
    versions are left out (their current one is in quarantine already)."""
    row_rules.history_current(con, m)
    con.execute(f"""CREATE OR REPLACE TABLE staging.{m.name}_history AS
        SELECT h.* EXCLUDE (_reject_rule, _reject_detail, _record_key, _row_number), r._extracted_at AS seen_at
        FROM ({m.sql}) h JOIN {raw} r ON r._load_id = h.load_id AND r._row_number = h._row_number
        WHERE h._reject_rule IS NULL""")
    # loads of a snapshot entity, so that absence from a later export can close a version
    con.execute(f"""CREATE OR REPLACE TABLE staging.{m.name}_loads AS
        SELECT DISTINCT _load_id AS load_id, _extracted_at AS seen_at FROM {raw}""")


def hmac_pads(secret: str) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys (RFC 2104). With them DuckDB computes an HMAC set-based, in
    SQL: ``sha256($hmac_opad || unhex(sha256($hmac_ipad || encode(message))))`` equals
    ``hmac.new(secret, message, sha256).hexdigest()``."""
    key = secret.encode("utf-8")
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _key_params(sql: str, secret: str) -> dict:
    """The bound parameters a model's SQL names: the HMAC pads of the person key (never the key itself)."""
    if "$hmac_" not in sql:
        return {}
    ipad, opad = hmac_pads(secret)
    return {"hmac_ipad": ipad, "hmac_opad": opad}


def build_warehouse(con: duckdb.DuckDBPyConnection, name: str, *, secret: str, layer: str = "warehouse") -> int:
    """Build a warehouse (or marts) model: a SELECT becomes <layer>.<name>; a script runs as written."""
    m = LAYERS[layer][name]
    params = _key_params(m.sql, secret)
    con.execute("BEGIN TRANSACTION")
    try:
        if m.materialize == "script":
            for statement in _statements(m.sql):
                con.execute(statement, _key_params(statement, secret))
        else:
            con.execute(f"CREATE OR REPLACE TABLE {layer}.{name} AS {m.sql}", params)
        delta.record(con, name, f"{layer}.{q(name)}")  # whole (models/delta.py)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return con.execute(f"SELECT count(*) FROM {layer}.{name}").fetchall()[0][0]


def _statements(sql: str) -> list[str]:
    """Split a script on semicolons at the end of a line (model scripts keep one statement per ';')."""
    return [s.strip() for s in re.split(r";\s*$", sql, flags=re.MULTILINE) if s.strip().strip("-").strip()
            and not all(line.strip().startswith("--") or not line.strip() for line in s.splitlines())]
