"""Incremental warehouse facts: rebuild only the rows whose inputs changed since the fact's last build.

A fact listed in :data:`INCREMENTAL_FACTS` is driven by one *source* table (``staging.stg_academic_grades``
for ``fact_course_grade``): each of its rows (and each reconciliation issue it writes) comes from the source
rows of one key, joined to small *lookups* (known students and courses, the course catalogue,
``warehouse.person_number``) and to code sets. Its model SQL stays the one definition of the logic; the
incremental path runs the same statements with the source replaced by the source's touched rows:

1. *Whole or not*: a whole build runs on the first build, when asked (``full=True``: the launchpad's
   ``run_settings.full_rebuild``, ``HUB_FULL_REBUILD=1``), when the fingerprint (the model's SQL, this
   module's description of it and the content of the code sets the SQL reads: a grade-point scale change
   moves every grade) differs from the last build's, when the source's change log (models/delta.py) cannot
   say what changed (the source rebuilt whole, a gap, pruned keys, rows written outside the log), or when
   an existing reconciliation issue's record_key does not split into the key columns.
2. *Touched keys*: the source's keys its builds since the fact's position in the change log touched, and
   the keys of the lookups whose slice changed: each lookup's rows, per key, are hashed (only the columns
   the fact takes from it) and compared with the hashes the last build kept in ``meta.fact_lookup``. A
   student who appears, is quarantined or maps to another person_key touches that 学号; a course whose
   name, category or credits change touches that 课程号. Other columns of the lookups (a student's mobile)
   touch nothing.
3. *Recompute*: the source rows matching a touched key (by the key, or by a lookup's column) become the
   temporary table ``_fact_source``; the model's statements run with the source replaced by it, the
   model's table written to ``_fact_new`` instead, and its reconciliation issues' blanket delete left out.
   The fact's rows and the model's ``quality.reconciliation_issue`` rows matching the same predicate are
   deleted and ``_fact_new`` inserted: one transaction, with the new lookup hashes, the position and the
   fact's own change log entry (the ``emits`` columns of every row deleted or inserted), so that a fact
   built on it (``fact_student_term_gpa`` on ``fact_course_grade``, by (student_no, term)) recomputes
   only those groups.
4. Nothing touched and no source build since the last: skipped, nothing written, the data version kept.

tests/test_incremental_facts.py compares both paths table by table after a sequence of changes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import duckdb

from connectors.raw_zone import q
from models import delta
from models.build import WAREHOUSE_MODELS, _key_params, _statements
from models.incremental import code_set_digest

FINGERPRINT_VERSION = "2"  # 2: lookup rows hashed as JSON


@dataclass(frozen=True)
class Lookup:
    """A table the fact looks values up in by one of its columns: ``relation`` (a table, or a temporary
    table the model's script makes before it reads the source) by ``key``, taking ``values`` (none: only
    whether the key is there); ``where``: which of its rows."""

    column: str
    relation: str
    key: str  # a column of the relation, or an expression over it (trim(record_key))
    values: tuple[str, ...] = ()
    where: str = ""  # the relation's rows that are the lookup (quarantined records of one entity)


@dataclass(frozen=True)
class IncrementalFact:
    """How a fact is built from its source. ``key``: the source's change-log key, columns both the source
    and the fact carry. ``issues``: the model writes reconciliation issues whose record_key is the key's
    columns joined with '|'; ``record_key``: where a part is not the column as text, an expression per key
    column (``{}`` the column) giving the part as the model writes it (缴费月份 as 2025-01, not 2025-01-01).
    ``emits``: the key of the fact's own change log."""

    source: str
    producer: str
    key: tuple[str, ...]
    lookups: tuple[Lookup, ...] = ()
    issues: bool = False
    record_key: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()

    def issue_part(self, i: int, column: str) -> str:
        """The record_key part of key column ``i`` from ``column`` (an expression over a key value)."""
        return (self.record_key[i] if self.record_key else "{}").format(f"CAST({column} AS VARCHAR)")


def _catalogue_and_people(column: str, catalogue: str, values: tuple[str, ...], source: str,
                          entity: str) -> tuple[Lookup, ...]:
    """The lookups of a fact that keeps out records of an unknown person or catalogue entry: the catalogue
    (the values it takes), the catalogue's quarantined records (known too), known_person, person_number."""
    return (Lookup(column, catalogue, column, values),
            Lookup(column, "quality.quarantine", "trim(record_key)",
                   where=f"stage = 'staging' AND source = '{source}' AND entity = '{entity}'"),
            Lookup("person_no", "warehouse.known_person", "person_no"),
            Lookup("person_no", "warehouse.person_number", "person_no", ("person_key",)))


INCREMENTAL_FACTS: dict[str, IncrementalFact] = {
    "fact_course_grade": IncrementalFact(
        source="staging.stg_academic_grades", producer="stg_academic_grades", key=("student_no", "course_code", "term", "exam_type_name"),
        lookups=(Lookup("student_no", "_known_student", "student_no"),
                 Lookup("student_no", "warehouse.person_number", "person_no", ("person_key",)),
                 Lookup("course_code", "_known_course", "course_code"),
                 Lookup("course_code", "staging.stg_academic_courses", "course_code",
                        ("course_name", "course_category", "credits"))),
        issues=True, emits=("student_no", "term")),
    "fact_activity_attendance": IncrementalFact(
        source="staging.stg_activity_attendance", producer="stg_activity_attendance", key=("meeting_id", "person_no"),
        lookups=_catalogue_and_people("meeting_id", "staging.stg_activity_meetings",
                                      ("org_code", "meeting_type", "meeting_date"), "activity", "meetings"),
        issues=True),
    "fact_study_record": IncrementalFact(
        source="staging.stg_learning_study_records", producer="stg_learning_study_records", key=("record_id",),
        lookups=_catalogue_and_people("course_id", "staging.stg_learning_courses",
                                      ("kind", "kind_name", "title", "hours"), "learning", "courses"),
        issues=True),
    "fact_dues_payment": IncrementalFact(
        source="staging.stg_party_dues", producer="stg_party_dues", key=("person_no", "month"),
        # the member category's three sources (HR status, the party register's 人员类别, a student), the
        # known people and organisations, the person_key; the rate bands are a code set (the fingerprint)
        lookups=(Lookup("person_no", "staging.stg_hr_staff", "staff_no", ("staff_status",)),
                 Lookup("person_no", "staging.stg_party_members", "person_no", ("category",)),
                 Lookup("person_no", "staging.stg_students", "student_no"),
                 Lookup("person_no", "warehouse.known_person", "person_no"),
                 Lookup("person_no", "warehouse.person_number", "person_no", ("person_key",)),
                 Lookup("org_code", "warehouse.known_org", "org_code")),
        issues=True, record_key=("{}", "strftime(CAST({} AS DATE), '%Y-%m')")),
    "fact_student_term_gpa": IncrementalFact(
        source="warehouse.fact_course_grade", producer="fact_course_grade", key=("student_no", "term"),
        emits=("student_no", "term")),
}


def ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    delta.ensure_log(con)
    con.execute("CREATE TABLE IF NOT EXISTS meta.fact_state (model VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL)")
    con.execute("CREATE TABLE IF NOT EXISTS meta.fact_lookup (model VARCHAR NOT NULL, lookup INTEGER NOT NULL, "
                "k VARCHAR NOT NULL, fp VARCHAR NOT NULL)")


def model_fingerprint(con: duckdb.DuckDBPyConnection, name: str, spec: object, version: str) -> str:
    """A warehouse model's SQL, the description of its incremental build and the code sets it reads."""
    m = WAREHOUSE_MODELS[name]
    text = f"{version}\n{m.sql}\n{spec!r}\n{code_set_digest(con, m.sql)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def fingerprint(con: duckdb.DuckDBPyConnection, name: str) -> str:
    return model_fingerprint(con, name, INCREMENTAL_FACTS[name], FINGERPRINT_VERSION)


def data_version(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The fact's version: its fingerprint and its last logged build (a skipped build keeps it)."""
    seq, _ = delta.latest(con, name)
    return hashlib.sha256(f"{fingerprint(con, name)}:{seq}".encode()).hexdigest()[:32]


def table_pattern(source: str) -> re.Pattern:
    return re.compile(r"(?<![\w.])" + re.escape(source) + r"(?![\w])")


def _plan(name: str) -> tuple[list[str], list[str]]:
    """The model's statements, split where the script first reads the source or writes its table: the
    preamble (its lookups' temporary tables) and the rest."""
    m = WAREHOUSE_MODELS[name]
    if m.materialize != "script":
        return [], [m.sql]
    statements = _statements(m.sql)
    own = own_table(name)
    src = table_pattern(INCREMENTAL_FACTS[name].source)
    first = next((i for i, s in enumerate(statements) if src.search(s) or own.search(s)), None)
    if first is None:
        raise RuntimeError(f"models/sql/warehouse/{name}.sql reads neither {INCREMENTAL_FACTS[name].source} nor "
                           f"writes warehouse.{name}: models/incremental_facts.py describes another model")
    return statements[:first], statements[first:]


def own_table(name: str) -> re.Pattern:
    return re.compile(rf"^\s*CREATE\s+OR\s+REPLACE\s+TABLE\s+warehouse\.{name}\s+AS\b", re.I | re.M)


def _issue_delete(name: str) -> re.Pattern:
    return re.compile(rf"^\s*DELETE\s+FROM\s+quality\.reconciliation_issue\s+WHERE\s+model\s*=\s*'{name}'\s*$",
                      re.I | re.M)


def lookup_hashes(con: duckdb.DuckDBPyConnection, spec) -> None:
    """``_lookup_now``: per lookup and key, a hash of the values the fact takes from it."""
    parts = []
    for i, lk in enumerate(spec.lookups):
        values = ", ".join(f"CAST({q(v)} AS VARCHAR)" for v in lk.values)
        row = f"CAST(to_json([{values}]) AS VARCHAR)"  # JSON: a NULL and the text 'NULL' differ
        fp = f"md5(string_agg({row}, '|' ORDER BY {row}))" if lk.values else "''"
        where = f" AND ({lk.where})" if lk.where else ""
        parts.append(f"SELECT {i} AS lookup, CAST({lk.key} AS VARCHAR) AS k, {fp} AS fp FROM {lk.relation} "
                     f"WHERE {lk.key} IS NOT NULL{where} GROUP BY ALL")
    con.execute("CREATE OR REPLACE TEMP TABLE _lookup_now AS "
                + (" UNION ALL ".join(parts) or "SELECT 0 AS lookup, '' AS k, '' AS fp WHERE false"))


def lookup_changes(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """``_lookup_changed``: the (lookup, key) whose slice differs between ``_lookup_now`` and the model's last
    build (``meta.fact_lookup``)."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _lookup_changed AS
        SELECT DISTINCT lookup, k FROM (
            (SELECT lookup, k, fp FROM _lookup_now EXCEPT SELECT lookup, k, fp FROM meta.fact_lookup WHERE model = ?)
            UNION ALL
            (SELECT lookup, k, fp FROM meta.fact_lookup WHERE model = ? EXCEPT SELECT lookup, k, fp FROM _lookup_now))""",
                [name, name])


def save_lookups(con: duckdb.DuckDBPyConnection, name: str, *, whole: bool) -> None:
    """Keep ``_lookup_now`` as the model's lookup hashes: all of them, or those of ``_lookup_changed``."""
    if whole:
        con.execute("DELETE FROM meta.fact_lookup WHERE model = ?", [name])
        con.execute("INSERT INTO meta.fact_lookup SELECT ?, lookup, k, fp FROM _lookup_now", [name])
        return
    con.execute("""DELETE FROM meta.fact_lookup l WHERE l.model = ?
        AND EXISTS (SELECT 1 FROM _lookup_changed c WHERE c.lookup = l.lookup AND c.k = l.k)""", [name])
    con.execute("""INSERT INTO meta.fact_lookup SELECT ?, n.lookup, n.k, n.fp FROM _lookup_now n
        SEMI JOIN _lookup_changed c ON c.lookup = n.lookup AND c.k = n.k""", [name])
    con.execute("DROP TABLE _lookup_changed")


def _matches(spec: IncrementalFact, alias: str) -> str:
    """The predicate: a row (of the source, the fact or the issues' split record keys) of a touched key."""
    on = " AND ".join(f"t.{q(c)} = CAST({alias}.{q(c)} AS VARCHAR)" for c in spec.key)
    out = [f"EXISTS (SELECT 1 FROM _touched_key t WHERE {on})"]
    for column in sorted({lk.column for lk in spec.lookups}):
        out.append(f"CAST({alias}.{q(column)} AS VARCHAR) IN (SELECT k FROM _touched_{column})")
    return "(" + " OR ".join(out) + ")"


def build_fact(con: duckdb.DuckDBPyConnection, name: str, *, secret: str, full: bool = False) -> dict:
    """Bring ``warehouse.<name>`` (and the model's reconciliation issues) up to date: see the module
    docstring. Returns ``mode`` (full, incremental or skipped), ``reason``, ``keys_touched`` (per kind),
    ``rows_deleted``, ``rows_inserted``, ``issues_deleted``, ``issues_inserted`` and ``table_rows``."""
    spec = INCREMENTAL_FACTS[name]
    ensure_state(con)
    preamble, rest = _plan(name)
    fp = fingerprint(con, name)
    con.execute("BEGIN TRANSACTION")
    try:
        for statement in preamble:
            con.execute(statement, _key_params(statement, secret))
        lookup_hashes(con, spec)
        producer = spec.source.split(".", 1)
        reason, newest = delta.changes_since(con, name, spec.producer, f"{producer[0]}.{q(producer[1])}",
                                             spec.key, "_touched_key")
        state = con.execute("SELECT fingerprint FROM meta.fact_state WHERE model = ?", [name]).fetchone()
        if full:
            reason = "full rebuild requested"
        elif not con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                             "AND schema_name = 'warehouse' AND table_name = ? AND NOT temporary", [name]).fetchone()[0]:
            reason = "first build"
        elif state is None:
            reason = "no state of an earlier incremental build"
        elif state[0] != fp:
            reason = "model SQL or the code sets it reads changed"
        elif reason is None and spec.issues:
            (bad,) = con.execute("SELECT count(*) FROM quality.reconciliation_issue WHERE model = ? AND "
                                 "(record_key IS NULL OR len(string_split(record_key, '|')) <> ?)",
                                 [name, len(spec.key)]).fetchone()
            if bad:
                reason = f"{bad} reconciliation issue(s) whose record_key does not split into {spec.key}"
        if reason is None:
            stats = _incremental(con, name, spec, rest, secret, newest)
        else:
            stats = _full(con, name, spec, preamble, rest, secret, newest, reason)
        if stats["mode"] == "skipped":
            con.execute("ROLLBACK")
        else:
            con.execute("DELETE FROM meta.fact_state WHERE model = ?", [name])
            con.execute("INSERT INTO meta.fact_state VALUES (?, ?)", [name, fp])
            con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    for table in ("_lookup_now", "_touched_key", *(f"_touched_{c}" for c in {lk.column for lk in spec.lookups}),
                  "_fact_source", "_fact_new", "_fact_emit"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    stats["table_rows"] = con.execute(f"SELECT count(*) FROM warehouse.{q(name)}").fetchone()[0]
    return stats


def _issue_count(con: duckdb.DuckDBPyConnection, name: str) -> int:
    return con.execute("SELECT count(*) FROM quality.reconciliation_issue WHERE model = ?", [name]).fetchone()[0]


def _full(con, name: str, spec: IncrementalFact, preamble: list[str], rest: list[str], secret: str,
          newest: int, reason: str) -> dict:
    """The model's statements as written (the preamble ran already), the lookup hashes kept whole."""
    m = WAREHOUSE_MODELS[name]
    issues_before = _issue_count(con, name)
    if m.materialize == "script":
        for statement in rest:
            con.execute(statement, _key_params(statement, secret))
    else:
        con.execute(f"CREATE OR REPLACE TABLE warehouse.{q(name)} AS {m.sql}", _key_params(m.sql, secret))
    save_lookups(con, name, whole=True)
    delta.set_position(con, name, spec.producer, newest)
    seq = delta.record(con, name, f"warehouse.{q(name)}")
    rows = con.execute(f"SELECT count(*) FROM warehouse.{q(name)}").fetchone()[0]
    return {"mode": "full", "reason": reason, "keys_touched": None, "build": seq, "rows_deleted": None,
            "rows_inserted": rows, "issues_deleted": issues_before, "issues_inserted": _issue_count(con, name)}


def _incremental(con, name: str, spec: IncrementalFact, rest: list[str], secret: str, newest: int) -> dict:
    m = WAREHOUSE_MODELS[name]
    columns = sorted({lk.column for lk in spec.lookups})
    lookup_changes(con, name)
    touched = {f"{spec.producer} keys": con.execute("SELECT count(*) FROM _touched_key").fetchone()[0]}
    for column in columns:
        ids = [i for i, lk in enumerate(spec.lookups) if lk.column == column]
        con.execute(f"CREATE OR REPLACE TEMP TABLE _touched_{column} AS SELECT DISTINCT k FROM _lookup_changed "
                    f"WHERE lookup IN ({', '.join(map(str, ids))})")
        touched[column] = con.execute(f"SELECT count(*) FROM _touched_{column}").fetchone()[0]
    seq, built_at = delta.latest(con, name)
    if not any(touched.values()) and newest == con.execute(
            "SELECT seq FROM meta.delta_consumer WHERE consumer = ? AND producer = ?", [name, spec.producer]).fetchone()[0]:
        con.execute("DROP TABLE _lookup_changed")
        return {"mode": "skipped", "reason": f"no change since build {seq} ({built_at})", "keys_touched": touched,
                "build": seq, "rows_deleted": 0, "rows_inserted": 0, "issues_deleted": 0, "issues_inserted": 0}
    con.execute(f"CREATE OR REPLACE TEMP TABLE _fact_source AS SELECT * FROM {spec.source} s WHERE {_matches(spec, 's')}")
    src = table_pattern(spec.source)
    own = own_table(name)
    blanket = _issue_delete(name)
    issues_deleted = 0
    if spec.issues:
        # the issues of the rows recomputed (a key in _fact_source) and of the rows gone (a touched key no
        # longer in the source), found by their record_key's parts
        parts = ", ".join(f"split_part(record_key, '|', {i}) AS {q(c)}" for i, c in enumerate(spec.key, 1))
        keys = ", ".join(f"{spec.issue_part(i, q(c))} AS {q(c)}" for i, c in enumerate(spec.key))
        con.execute(f"CREATE OR REPLACE TEMP TABLE _issue_keys AS SELECT {keys} FROM _touched_key "
                    f"UNION SELECT {keys} FROM _fact_source")
        on = " AND ".join(f"t.{q(c)} = p.{q(c)}" for c in spec.key)
        (issues_deleted,) = con.execute(f"""DELETE FROM quality.reconciliation_issue r WHERE r.model = ? AND r.record_key IN (
            SELECT record_key FROM (SELECT record_key, {parts} FROM quality.reconciliation_issue WHERE model = ?) p
            WHERE EXISTS (SELECT 1 FROM _issue_keys t WHERE {on}))""", [name, name]).fetchone()
        con.execute("DROP TABLE _issue_keys")
    issues_before = _issue_count(con, name)
    if m.materialize == "script":
        wrote = False
        for statement in rest:
            if blanket.search(statement):
                continue
            if own.search(statement):
                statement, wrote = own.sub("CREATE OR REPLACE TEMP TABLE _fact_new AS", statement, count=1), True
            statement = src.sub("_fact_source", statement)
            con.execute(statement, _key_params(statement, secret))
        if not wrote:
            raise RuntimeError(f"models/sql/warehouse/{name}.sql: no 'CREATE OR REPLACE TABLE warehouse.{name} AS' "
                               "statement for the incremental build to redirect")
    else:
        sql = src.sub("_fact_source", m.sql)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _fact_new AS {sql}", _key_params(sql, secret))
    if spec.emits:
        emits = ", ".join(q(c) for c in spec.emits)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _fact_emit AS SELECT {emits} FROM warehouse.{q(name)} f "
                    f"WHERE {_matches(spec, 'f')} UNION SELECT {emits} FROM _fact_new")
    else:  # nothing is built on it incrementally: an empty key list
        con.execute("CREATE OR REPLACE TEMP TABLE _fact_emit AS SELECT 1 AS x WHERE false")
    (deleted,) = con.execute(f"DELETE FROM warehouse.{q(name)} f WHERE {_matches(spec, 'f')}").fetchone()
    (inserted,) = con.execute(f"INSERT INTO warehouse.{q(name)} BY NAME SELECT * FROM _fact_new").fetchone()
    save_lookups(con, name, whole=False)
    delta.set_position(con, name, spec.producer, newest)
    seq = delta.record(con, name, f"warehouse.{q(name)}", keys="_fact_emit", key_columns=spec.emits)
    return {"mode": "incremental", "keys_touched": touched, "build": seq, "rows_deleted": deleted,
            "rows_inserted": inserted, "issues_deleted": issues_deleted,
            "issues_inserted": _issue_count(con, name) - issues_before,
            "reason": ", ".join(f"{n:,} {k}" for k, n in touched.items() if n) + " touched" if any(touched.values())
            else f"{spec.producer} rebuilt keys that touch nothing here"}

