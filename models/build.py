"""Builds the staging and warehouse models in DuckDB, set-based. Dagster assets call these; so do tests.

A staging model is a SQL file of a fixed shape: it selects from ``current`` (the latest version of each
key in a raw table, with ``_duplicate`` set on extra copies within one load) and returns its columns
plus ``_reject_rule``, ``_reject_detail``, ``_record_key`` and ``_row_number``. Rows with a rule go to
``quality.quarantine`` with the original raw row; the rest become the staging table. Both happen in one
transaction and replace the model's previous quarantine rows, so a rebuild never adds duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from connectors.raw_zone import q
from models import codesets_dir, sql_dir


@dataclass(frozen=True)
class StagingModel:
    name: str
    source: str
    entity: str
    primary_key: tuple[str, ...]
    description: str

    @property
    def raw_table(self) -> str:
        return f"{self.source}__{self.entity}"


STAGING_MODELS = {m.name: m for m in (
    StagingModel("stg_hr_staff", "hr", "staff", ("gh",), "HR staff, one row per 工号, normalised and coded."),
    StagingModel("stg_students", "student", "students", ("studentNo",),
                 "Students, one row per 学号, normalised and coded."),
    StagingModel("stg_party_members", "party", "members", ("人员编号",),
                 "Party member register, one row per 人员编号, normalised and coded."),
    StagingModel("stg_party_orgs", "party", "orgs", ("党组织编码",),
                 "Party organisations, one row per 党组织编码."),
)}

WAREHOUSE_MODELS = {
    "dim_person": "One row per real person across HR, student and party systems; person_key is a keyed hash.",
    "dim_party_org": "The party organisation tree (党委/党总支/党支部/党小组) with member counts.",
}


def load_code_sets(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Code sets and per-source mappings from the CSV files in models/codesets into ``staging``."""
    counts = {}
    for path in sorted(codesets_dir.glob("*.csv")):
        table = "code_map" if path.stem == "source_value_map" else f"cs_{path.stem}"
        con.execute(f"CREATE OR REPLACE TABLE staging.{table} AS "
                    "SELECT * FROM read_csv(?, header = true, all_varchar = true)", [str(path)])
        counts[table] = con.execute(f"SELECT count(*) FROM staging.{table}").fetchone()[0]
    return counts


def raw_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
                       "AND table_name = ?", [table]).fetchone()[0] > 0


def build_staging(con: duckdb.DuckDBPyConnection, name: str) -> dict:
    m = STAGING_MODELS[name]
    if not raw_exists(con, m.raw_table):
        raise RuntimeError(f"raw.{m.raw_table} does not exist yet: materialise raw/{m.raw_table} first")
    pk = ", ".join(q(k) for k in m.primary_key)
    sql = (sql_dir / "staging" / f"{name}.sql").read_text(encoding="utf-8")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"""CREATE OR REPLACE TEMP VIEW current AS
            SELECT * EXCLUDE (_rank), _rank > 1 AS _duplicate FROM (
                SELECT r.*, row_number() OVER (PARTITION BY {pk} ORDER BY _row_number) AS _rank
                FROM raw.{q(m.raw_table)} r
                QUALIFY _extracted_at = max(_extracted_at) OVER (PARTITION BY {pk}))""")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _model AS {sql}")
        con.execute("DELETE FROM quality.quarantine WHERE stage = 'staging' AND source = ? AND entity = ?",
                    [m.source, m.entity])
        con.execute(f"""INSERT INTO quality.quarantine
                (stage, source, entity, load_id, rule, record_key, detail, original_row)
            SELECT 'staging', ?, ?, m.load_id, m._reject_rule, m._record_key, m._reject_detail,
                   to_json(r) FROM _model m
            JOIN raw.{q(m.raw_table)} r ON r._load_id = m.load_id AND r._row_number = m._row_number
            WHERE m._reject_rule IS NOT NULL""", [m.source, m.entity])
        con.execute(f"""CREATE OR REPLACE TABLE staging.{name} AS
            SELECT * EXCLUDE (_reject_rule, _reject_detail, _record_key, _row_number)
            FROM _model WHERE _reject_rule IS NULL""")
        stats = dict(con.execute("""SELECT coalesce(_reject_rule, 'accepted'), count(*) FROM _model
                                    GROUP BY ALL""").fetchall())
        con.execute("DROP TABLE _model")
        con.execute("DROP VIEW current")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    accepted = stats.pop("accepted", 0)
    return {"rows_in": accepted + sum(stats.values()), "rows_accepted": accepted,
            "rows_rejected": sum(stats.values()), "rejected_by_rule": stats}


def build_warehouse(con: duckdb.DuckDBPyConnection, name: str, *, secret: str) -> int:
    sql = (sql_dir / "warehouse" / f"{name}.sql").read_text(encoding="utf-8")
    params = {"secret": secret} if "$secret" in sql else {}
    con.execute(f"CREATE OR REPLACE TABLE warehouse.{name} AS {sql}", params)
    return con.execute(f"SELECT count(*) FROM warehouse.{name}").fetchone()[0]
