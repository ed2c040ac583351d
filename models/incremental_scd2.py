"""The party members' SCD2 dimension (``warehouse.dim_party_member``), compared only for the people whose
records changed.

The model's SQL compares every version of every person (windows over ``stg_party_*_history``, which holds
one row per person per export), so a whole build grows with people × exports. Each person's versions depend
only on that person's rows of the two registers' histories and of the transfers, on the list of exports
(an export without the person closes their version), and on lookups by 人员编号 (HR and student records,
the party records' person in ``bridge_person_record``, ``person_number``). So a build after new exports:

1. *Whole or not*: whole on the first build, when asked (``full=True``: ``run_settings.full_rebuild``,
   ``HUB_FULL_REBUILD=1``), when the model's SQL, this description or a code set it reads changed (or the
   SQL, code sets or checks of a staging model writing its histories, or the as-of date their past_date
   checks judge every export's rows at), when an export taken in before is
   gone from the loads, or when a new export is not later than every export of its register taken in (the
   versions before it would change).
2. *Touched people*: per new export, its rows are compared with the rows of the export before it in the
   same register (every column but the load and its time): a person whose row differs, or who is in one of
   the two only, is touched; the people whose lookup slice changed (hashed per 人员编号 as for the
   incremental facts, ``meta.fact_lookup``) are touched too. A person whose row is the same in the new
   export gets no new version, so nothing of theirs changes: that comparison is the whole cost for them.
3. *Recompute*: the model's statements run with the histories and the transfers narrowed to the touched
   people, the dimension written to ``_dim_new``; their rows in the dimension are replaced by it, and the
   rest of the script (the cross-system findings, which read the current versions of everyone) runs as
   written. One transaction, with the exports taken in (``meta.scd2_load``).
4. Nothing new and no lookup changed: skipped, nothing written.

``dim_party_org`` stays whole: its versions carry member counts per organisation, so a member's change
touches their organisations, and it is small (one row per organisation per change).
tests/test_incremental_scd2.py compares both paths table by table after a sequence of exports.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from connectors.raw_zone import q
from models.build import WAREHOUSE_MODELS, _key_params, _statements
from models.incremental import fingerprint as staging_fingerprint
from models.incremental_facts import (
    Lookup,
    ensure_state,
    lookup_changes,
    lookup_hashes,
    model_fingerprint,
    own_table,
    save_lookups,
    table_pattern,
)
from models.plausibility import load_checks, staging_as_of

FINGERPRINT_VERSION = "1"


@dataclass(frozen=True)
class Register:
    name: str
    history: str  # one row per key per export
    loads: str    # the exports: load_id, seen_at


@dataclass(frozen=True)
class IncrementalScd2:
    key: str
    registers: tuple[Register, ...]
    narrowed: tuple[str, ...]  # other tables the versions read per key (narrowed with the histories)
    lookups: tuple[Lookup, ...]
    producers: tuple[str, ...]  # the staging models writing the histories: another of their SQL, whole


INCREMENTAL_SCD2: dict[str, IncrementalScd2] = {
    "dim_party_member": IncrementalScd2(
        key="person_no",
        registers=(Register("member", "staging.stg_party_members_history", "staging.stg_party_members_loads"),
                   Register("development", "staging.stg_party_development_history",
                            "staging.stg_party_development_loads")),
        narrowed=("staging.stg_party_transfers",),
        lookups=(Lookup("person_no", "staging.stg_hr_staff", "staff_no",
                        ("staff_status", "unit_code", "political_status")),
                 Lookup("person_no", "staging.stg_students", "student_no",
                        ("enrolment_status", "school_code", "political_status")),
                 Lookup("person_no", "staging.stg_party_transfers", "person_no",
                        ("letter_no", "from_org_code", "load_id", "seen_at")),
                 Lookup("person_no", "warehouse.bridge_person_record", "record_key", ("person_key",),
                        where="system IN ('party', 'development')"),
                 Lookup("person_no", "warehouse.person_number", "person_no", ("person_key",))),
        producers=("stg_party_members", "stg_party_development", "stg_party_transfers")),
}


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    ensure_state(con)
    con.execute("CREATE TABLE IF NOT EXISTS meta.scd2_state (model VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL)")
    con.execute("CREATE TABLE IF NOT EXISTS meta.scd2_load (model VARCHAR NOT NULL, register VARCHAR NOT NULL, "
                "load_id VARCHAR NOT NULL, seen_at TIMESTAMPTZ)")


def fingerprint(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The model's (models.incremental_facts.model_fingerprint) and that of each staging model writing its
    histories (its SQL, macros, code sets and checks: models.incremental.fingerprint), since those rewrite
    every export's rows when they change."""
    spec = INCREMENTAL_SCD2[name]
    checks = load_checks()  # the plausibility file, read once for every producer
    producers = ",".join(staging_fingerprint(con, p, checks=checks) for p in spec.producers)
    # their past_date checks judge every export's rows at the as-of date: when it moves, so may any version
    as_of = staging_as_of(con) if any(c.kind == "past_date" for p in spec.producers
                                      for c in checks.get(p, [])) else None
    return model_fingerprint(con, name, spec, f"{FINGERPRINT_VERSION}:{producers}:{as_of}")


def _plan(name: str) -> tuple[list[str], list[str], list[str]]:
    """The script's statements: before the first that reads a history (run as written), from there to the
    one writing the dimension (narrowed), and after it (run as written, on the whole dimension)."""
    spec = INCREMENTAL_SCD2[name]
    statements = _statements(WAREHOUSE_MODELS[name].sql)
    histories = [table_pattern(r.history) for r in spec.registers]
    first = next((i for i, s in enumerate(statements) if any(h.search(s) for h in histories)), None)
    own = next((i for i, s in enumerate(statements) if own_table(name).search(s)), None)
    if first is None or own is None or own < first:
        raise RuntimeError(f"models/sql/warehouse/{name}.sql does not read its histories before writing "
                           f"warehouse.{name}: models/incremental_scd2.py describes another model")
    return statements[:first], statements[first:own + 1], statements[own + 1:]


def _loads(con: duckdb.DuckDBPyConnection, spec: IncrementalScd2) -> None:
    """``_loads_now``: every register's exports, with the one before each in the register."""
    con.execute("CREATE OR REPLACE TEMP TABLE _loads_now AS " + " UNION ALL ".join(
        f"SELECT '{r.name}' AS register, load_id, seen_at, "
        f"lag(load_id) OVER (ORDER BY seen_at, load_id) AS previous FROM {r.loads}" for r in spec.registers))


def _whole_reason(con: duckdb.DuckDBPyConnection, name: str, fp: str, full: bool) -> str | None:
    if full:
        return "full rebuild requested"
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = 'warehouse' AND table_name = ? AND NOT temporary", [name]).fetchone()[0]:
        return "first build"
    state = con.execute("SELECT fingerprint FROM meta.scd2_state WHERE model = ?", [name]).fetchone()
    if state is None:
        return "no state of an earlier incremental build"
    if state[0] != fp:
        return ("model SQL or the code sets it reads changed, or the SQL, checks or as-of date of the staging "
                "models writing its histories")
    gone = con.execute("""SELECT register, load_id FROM meta.scd2_load t WHERE model = ?
        AND NOT EXISTS (SELECT 1 FROM _loads_now n WHERE n.register = t.register AND n.load_id = t.load_id)
        ORDER BY ALL LIMIT 1""", [name]).fetchone()
    if gone:
        return f"export {gone[1]} of the {gone[0]} register, taken in before, is gone"
    early = con.execute("""SELECT n.register, n.load_id FROM _loads_now n WHERE NOT EXISTS (
            SELECT 1 FROM meta.scd2_load t WHERE t.model = ? AND t.register = n.register AND t.load_id = n.load_id)
        AND n.seen_at <= (SELECT max(seen_at) FROM meta.scd2_load t WHERE t.model = ? AND t.register = n.register)
        ORDER BY ALL LIMIT 1""", [name, name]).fetchone()
    if early:
        return f"export {early[1]} of the {early[0]} register is not later than those taken in"
    return None


def _touched(con: duckdb.DuckDBPyConnection, name: str, spec: IncrementalScd2) -> dict[str, int]:
    """``_touched_key``: the people whose versions may change (see the module docstring, step 2)."""
    key = q(spec.key)
    counts = {}
    for r in spec.registers:
        schema, table = r.history.split(".", 1)
        cols = [c for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? "
            "AND table_name = ? AND column_name NOT IN ('load_id', 'seen_at') ORDER BY column_index",
            [schema, table]).fetchall()]
        row = "md5(CAST(to_json(struct_pack(" + ", ".join(f"{q(c)} := {q(c)}" for c in cols) + ")) AS VARCHAR))"
        con.execute("""CREATE OR REPLACE TEMP TABLE _pairs AS SELECT load_id, previous FROM _loads_now n
            WHERE register = ? AND NOT EXISTS (SELECT 1 FROM meta.scd2_load t WHERE t.model = ?
                                                AND t.register = n.register AND t.load_id = n.load_id)""",
                    [r.name, name])
        counts[f"{r.name} exports"] = con.execute("SELECT count(*) FROM _pairs").fetchone()[0]
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _touched_{r.name} AS SELECT {key} FROM (
            WITH rows AS (SELECT {key}, load_id, {row} AS h FROM {r.history}
                          WHERE load_id IN (SELECT load_id FROM _pairs UNION SELECT previous FROM _pairs)),
                 new AS (SELECT x.{key}, x.h, p.load_id AS pair FROM rows x JOIN _pairs p ON x.load_id = p.load_id),
                 old AS (SELECT x.{key}, x.h, p.load_id AS pair FROM rows x JOIN _pairs p ON x.load_id = p.previous)
            (SELECT * FROM new EXCEPT SELECT * FROM old) UNION ALL (SELECT * FROM old EXCEPT SELECT * FROM new))""")
    lookup_changes(con, name)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _touched_key AS SELECT DISTINCT {key} FROM ("
                + " UNION ALL ".join(f"SELECT {key} FROM _touched_{r.name}" for r in spec.registers)
                + f" UNION ALL SELECT k AS {key} FROM _lookup_changed) WHERE {key} IS NOT NULL")
    for r in spec.registers:
        counts[f"{r.name} keys"] = con.execute(f"SELECT count(DISTINCT {key}) FROM _touched_{r.name}").fetchone()[0]
        con.execute(f"DROP TABLE _touched_{r.name}")
    counts["lookup keys"] = con.execute("SELECT count(DISTINCT k) FROM _lookup_changed").fetchone()[0]
    counts[f"{spec.key} touched"] = con.execute("SELECT count(*) FROM _touched_key").fetchone()[0]
    con.execute("DROP TABLE IF EXISTS _pairs")
    return counts


def build_scd2(con: duckdb.DuckDBPyConnection, name: str, *, secret: str, full: bool = False) -> dict:
    """Bring ``warehouse.<name>`` (and the model's reconciliation issues) up to date: see the module
    docstring. Returns the same statistics as models.incremental_facts.build_fact."""
    spec = INCREMENTAL_SCD2[name]
    _ensure(con)
    before, narrowed, after = _plan(name)
    fp = fingerprint(con, name)
    con.execute("BEGIN TRANSACTION")
    try:
        _loads(con, spec)
        lookup_hashes(con, spec)
        reason = _whole_reason(con, name, fp, full)
        if reason is None:
            stats = _incremental(con, name, spec, before, narrowed, after, secret)
        else:
            issues = _issues(con, name)
            for statement in before + narrowed + after:
                con.execute(statement, _key_params(statement, secret))
            save_lookups(con, name, whole=True)
            rows = con.execute(f"SELECT count(*) FROM warehouse.{q(name)}").fetchone()[0]
            stats = {"mode": "full", "reason": reason, "keys_touched": None, "rows_deleted": None,
                     "rows_inserted": rows, "issues_deleted": issues, "issues_inserted": _issues(con, name)}
        if stats["mode"] == "skipped":
            con.execute("ROLLBACK")
        else:
            con.execute("DELETE FROM meta.scd2_load WHERE model = ?", [name])
            con.execute("INSERT INTO meta.scd2_load SELECT ?, register, load_id, seen_at FROM _loads_now", [name])
            con.execute("DELETE FROM meta.scd2_state WHERE model = ?", [name])
            con.execute("INSERT INTO meta.scd2_state VALUES (?, ?)", [name, fp])
            con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    for table in ("_loads_now", "_lookup_now", "_lookup_changed", "_touched_key", "_dim_new", "_pairs",
                  *(f"_narrowed_{i}" for i in range(len(spec.registers) + len(spec.narrowed)))):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    stats["table_rows"] = con.execute(f"SELECT count(*) FROM warehouse.{q(name)}").fetchone()[0]
    return stats


def _issues(con: duckdb.DuckDBPyConnection, name: str) -> int:
    return con.execute("SELECT count(*) FROM quality.reconciliation_issue WHERE model = ?", [name]).fetchone()[0]


def _incremental(con, name: str, spec: IncrementalScd2, before: list[str], narrowed: list[str],
                 after: list[str], secret: str) -> dict:
    touched = _touched(con, name, spec)
    key = q(spec.key)
    if not touched[f"{spec.key} touched"] and not any(v for k, v in touched.items() if k.endswith("exports")):
        return {"mode": "skipped", "reason": "no new export and no lookup changed", "keys_touched": touched,
                "rows_deleted": 0, "rows_inserted": 0, "issues_deleted": 0, "issues_inserted": 0}
    for statement in before:
        con.execute(statement, _key_params(statement, secret))
    tables = [r.history for r in spec.registers] + list(spec.narrowed)
    for i, table in enumerate(tables):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _narrowed_{i} AS SELECT * FROM {table} s "
                    f"SEMI JOIN _touched_key t ON t.{key} = s.{key}")
    own = own_table(name)
    for statement in narrowed:
        for i, table in enumerate(tables):
            statement = table_pattern(table).sub(f"_narrowed_{i}", statement)
        statement = own.sub("CREATE OR REPLACE TEMP TABLE _dim_new AS", statement, count=1)
        con.execute(statement, _key_params(statement, secret))
    (deleted,) = con.execute(f"DELETE FROM warehouse.{q(name)} WHERE {key} IN (SELECT {key} FROM _touched_key)"
                             ).fetchone()
    (inserted,) = con.execute(f"INSERT INTO warehouse.{q(name)} BY NAME SELECT * FROM _dim_new").fetchone()
    issues = _issues(con, name)
    for statement in after:  # the findings, from everyone's current version
        con.execute(statement, _key_params(statement, secret))
    save_lookups(con, name, whole=False)
    return {"mode": "incremental", "keys_touched": touched, "rows_deleted": deleted, "rows_inserted": inserted,
            "issues_deleted": issues, "issues_inserted": _issues(con, name),
            "reason": f"{touched[f'{spec.key} touched']:,} {spec.key} touched"}
