"""Row-level rules of the staging layer, generic and driven by each staging model's header.

``build_staging`` calls two functions of this module:

* :func:`create_current` makes the temp view ``current`` the model's SQL reads: the latest version of each
  key, with the key *normalised* (surrounding spaces of every kind taken off: ASCII, full-width U+3000,
  no-break, zero-width BOM; upper-cased too when the header says ``key_case_insensitive: true``), so that
  ``'P001　'`` and ``'P001'`` are one key. Within one load, when a key has several versions, the version
  with the latest source timestamp (the column the header names in ``updated_at:``) wins; the older
  versions are left out of ``current`` and recorded in ``quality.superseded`` (not an error).
* :func:`apply_row_rules` runs after the model's SQL filled ``_model`` and marks rows the model let through
  (``UPDATE _model SET _reject_rule = ..., _reject_detail = ... WHERE _reject_rule IS NULL AND ...``):

  ``missing_value``          a required value is NULL or blank: the key columns always, and the source
                             columns the header lists in ``required: [...]``;
  ``wrong_shape``            a JSON list or object (``["张", "三"]``) in a column the model reads as text;
  ``conflicting_duplicate``  one key, several versions in one load that no source timestamp orders
                             (models whose SQL judges conflicts itself keep their own rule).

  It then writes the superseded versions to ``quality.superseded`` and its findings to
  ``quality.reconciliation_issue`` (``model`` = the staging model, replaced on every build):
  ``key_variant`` (a key read after taking off spaces or case) and, for models whose header says
  ``disjoint_loads: true`` (one export per year: a key belongs to one file), ``cross_load_conflict`` when
  two loads hold different values for one key — naming both files and values. The survivor there is the
  version of the latest load (files dropped together load in name order, so 党费缴纳_2025.csv wins over
  党费缴纳_2024.csv), the same rule as for every key.

Every detail names the column, the value and where the row came from: the file and its data row (the
row's position among the data rows of the file), or the load and record number for an API or database.

Rules that run after these (plausibility, models/plausibility.py) use the same contract: mark rows of
``_model`` whose ``_reject_rule`` is still NULL; ``current`` and ``_latest`` are still there, and
:func:`place` spells where a row came from.

Conservation, per staging model (:func:`conservation`): the latest raw versions = staged rows + staging
quarantine rows + superseded rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import yaml

from connectors.raw_zone import META_COLUMNS, q

if TYPE_CHECKING:
    from models.build import Model

# Surrounding white space of every kind: ASCII, every Unicode space (U+3000 ideographic, U+00A0 no-break)
# and the zero-width no-break space (a BOM pasted into a cell).
SPACES = r"^[\s\p{Z}\x{FEFF}]+|[\s\p{Z}\x{FEFF}]+$"
PART = 4294967296  # raw _row_number = part * 2^32 + row in the part (connectors/raw_zone.py)
HELPER_COLUMNS = ("_key_variant", "_source_ts", "_content", "_superseded", "_winner_ts", "_winner_row")
# _winner_ts: the winning version's source timestamp as the source wrote it


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def header_of(m: Model) -> dict[str, object]:
    """The model's header (``-- key: value`` lines between two ``-- ---`` lines), as models.build reads it;
    the ``columns`` block (indented lines) is the model's column docs (``Model.columns``), not a setting."""
    lines = m.sql.splitlines()
    header: dict[str, object] = {}
    for line in lines[1:]:
        if line.strip() == "-- ---":
            break
        if line.startswith("--  ") or line.rstrip() == "-- columns:":
            continue
        key, _, value = line.removeprefix("--").strip().partition(": ")
        value = value.strip()
        header[key] = yaml.safe_load(value) if value.startswith("[") or value in ("true", "false") else value
    return header


@dataclass(frozen=True)
class RowRules:
    """What the header asks of a model, checked against the raw table's columns."""

    keys: tuple[str, ...]
    required: tuple[str, ...]         # source columns that must hold a value (keys first)
    case_insensitive: bool
    updated_at: str | None            # source column with the source's own change time
    disjoint_loads: bool              # a key belongs to one load: another load's other value is a finding
    columns: tuple[str, ...]          # source columns of the raw table
    used: tuple[str, ...]             # those the model's SQL reads
    judges_conflicts: bool            # the model's SQL yields conflicting_duplicate itself
    has_file: bool = True             # the raw table has _file (a hand-made one may not)

    def norm(self, col: str, alias: str = "") -> str:
        expr = f"regexp_replace({alias}{q(col)}, {_sql_str(SPACES)}, '', 'g')"
        return f"upper({expr})" if self.case_insensitive else expr

    @property
    def pk(self) -> str:
        return ", ".join(q(k) for k in self.keys)

    def record_key(self, alias: str) -> str:
        return " || '|' || ".join(f"{alias}.{q(k)}" for k in self.keys)


def rules_of(con: duckdb.DuckDBPyConnection, m: Model, relation: str) -> RowRules:
    header = header_of(m)
    described = [c for (c, *_) in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    columns = tuple(c for c in described if c not in META_COLUMNS and c not in HELPER_COLUMNS)
    where = f"{m.name} (models/sql/staging/{m.name}.sql)"
    required = list(m.primary_key)
    for col in header.get("required") or []:
        if col not in columns:
            raise ValueError(f"{where}: required column {col!r} is not a column of raw.{m.raw_table}")
        if col not in required:
            required.append(col)
    updated_at = header.get("updated_at")
    if updated_at is not None and updated_at not in columns:
        raise ValueError(f"{where}: updated_at column {updated_at!r} is not a column of raw.{m.raw_table}")
    code = "\n".join(line.split("--", 1)[0] for line in m.sql.splitlines())  # comments out

    def read_by_sql(col: str) -> bool:
        if not col.isascii():
            return f'"{col}"' in code
        return re.search(rf'(?<![\w"]){re.escape(col)}(?![\w"])', code) is not None

    return RowRules(keys=tuple(m.primary_key), required=tuple(required),
                    case_insensitive=header.get("key_case_insensitive") is True,
                    updated_at=str(updated_at) if updated_at else None,
                    disjoint_loads=header.get("disjoint_loads") is True, columns=columns,
                    used=tuple(c for c in columns if read_by_sql(c) or c in m.primary_key),
                    judges_conflicts="'conflicting_duplicate'" in code, has_file="_file" in described)


def _timestamp(col: str) -> str:
    """A source timestamp as an instant: ISO 8601 (with or without zone), 'YYYY-MM-DD HH:MM:SS', a date,
    or epoch milliseconds."""
    c = f"trim({q(col)})"
    return (f"CASE WHEN regexp_full_match({c}, '[0-9]{{12,13}}') THEN to_timestamp(CAST({c} AS BIGINT) / 1000.0) "
            f"ELSE coalesce(try_cast({c} AS TIMESTAMPTZ), try_cast(try_strptime({c}, '%Y/%m/%d %H:%M:%S') AS TIMESTAMPTZ)) END")


def place(alias: str = "") -> str:
    """Where a raw row came from, in words: '<file> data row N' or 'load <id> record N'."""
    a = f"{alias}." if alias else ""
    number = (f"CASE WHEN {a}_row_number < {PART} THEN CAST({a}_row_number AS VARCHAR) ELSE "
              f"CAST({a}_row_number // {PART} AS VARCHAR) || ':' || CAST({a}_row_number % {PART} AS VARCHAR) END")
    return (f"CASE WHEN {a}_file IS NOT NULL THEN {a}_file || ' data row ' "
            f"ELSE 'load ' || {a}_load_id || ' record ' END || {number}")


def _shown(expr: str) -> str:
    """A value quoted for a detail, or NULL spelled out."""
    return f"coalesce('''' || {expr} || '''', 'NULL')"


def _latest_filter(m: Model, relation: str) -> str:
    """A snapshot entity's current rows are its latest load only."""
    return f"WHERE _load_id = (SELECT arg_max(_load_id, _extracted_at) FROM {relation})" if m.snapshot else ""


def _normalised_select(r: RowRules, relation: str) -> str:
    replace = ", ".join(f"{r.norm(k, 'r.')} AS {q(k)}" for k in r.keys)
    variant = " OR ".join(f"(r.{q(k)} IS DISTINCT FROM {r.norm(k, 'r.')})" for k in r.keys)
    ts = _timestamp(r.updated_at).replace(q(r.updated_at), f"r.{q(r.updated_at)}") if r.updated_at else \
        "NULL::TIMESTAMPTZ"
    file = "" if r.has_file else ", NULL::VARCHAR AS _file"
    return f"SELECT r.* REPLACE ({replace}), ({variant}) AS _key_variant, {ts} AS _source_ts{file} FROM {relation} r"


def create_current(con: duckdb.DuckDBPyConnection, m: Model, relation: str) -> None:
    """Temp view ``_raw_normalised`` (every raw row, keys normalised), temp table ``_latest`` (each key's
    latest load, with who is superseded there; it lives with the connection, replaced by the next build)
    and view ``current`` (what the model reads: ``_latest`` without the
    superseded rows, ``_duplicate`` on second and later rows of a key in one load)."""
    r = rules_of(con, m, relation)
    pk = r.pk
    content = "hash(" + ", ".join(q(c) for c in r.used) + ")"
    winner_value = q(r.updated_at) if r.updated_at else "NULL::VARCHAR"
    con.execute(f"CREATE OR REPLACE TEMP VIEW _raw_normalised AS {_normalised_select(r, relation)}")
    # One sort: within each key, the latest load first, in it the latest source timestamp, then position.
    # The first row of the key is then the current version; rows of that load with an older timestamp
    # are superseded. (Two loads landed at the same instant count as one.)
    # a table: the row rules read it several times; the window runs once
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _latest AS
        SELECT * EXCLUDE (_latest_at, _winner_at), {content} AS _content,
               coalesce(_source_ts < _winner_at, false) AS _superseded
        FROM (SELECT *, first(_extracted_at) OVER p AS _latest_at, first(_source_ts) OVER p AS _winner_at,
                     first(_row_number) OVER p AS _winner_row, first({winner_value}) OVER p AS _winner_ts
              FROM _raw_normalised {_latest_filter(m, '_raw_normalised')}
              WINDOW p AS (PARTITION BY {pk} ORDER BY _extracted_at DESC, _source_ts DESC NULLS LAST, _row_number))
        WHERE _extracted_at = _latest_at""")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW current AS
        SELECT * EXCLUDE (_rank, {', '.join(HELPER_COLUMNS)}), _rank > 1 AS _duplicate FROM (
            SELECT *, row_number() OVER (PARTITION BY {pk}, _load_id ORDER BY _row_number) AS _rank
            FROM _latest WHERE NOT _superseded)""")


def history_current(con: duckdb.DuckDBPyConnection, m: Model) -> None:
    """``current`` for a model's history: every load's version of each key (keys normalised as above;
    within a load the latest source timestamp, then the first row)."""
    con.execute(f"""CREATE OR REPLACE TEMP VIEW current AS
        SELECT r.* EXCLUDE (_key_variant, _source_ts), false AS _duplicate FROM _raw_normalised r
        QUALIFY row_number() OVER (PARTITION BY {', '.join(q(k) for k in m.primary_key)}, _load_id
                                   ORDER BY _source_ts DESC NULLS LAST, _row_number) = 1""")


def _mark(con: duckdb.DuckDBPyConnection, rule: str, condition: str, detail: str, *,
          also_over: str | None = None) -> None:
    """Mark the rows of ``_model`` the model let through (or, with ``also_over``, marked by that rule)."""
    open_rule = "m._reject_rule IS NULL" + (f" OR m._reject_rule = {_sql_str(also_over)}" if also_over else "")
    con.execute(f"""UPDATE _model m SET _reject_rule = {_sql_str(rule)}, _reject_detail = x.detail
        FROM (SELECT l._load_id, l._row_number, {detail} AS detail FROM _latest l WHERE {condition}) x
        WHERE x._load_id = m.load_id AND x._row_number = m._row_number AND ({open_rule})""")


def apply_row_rules(con: duckdb.DuckDBPyConnection, m: Model, *, replace_all: bool = True) -> int:
    """Mark missing values, wrong shapes and conflicting versions in ``_model``; record the superseded
    versions and the findings (``replace_all``: the model's earlier ones deleted first; the incremental
    build deletes those of the keys it rebuilds itself). Returns the number of superseded rows."""
    r = rules_of(con, m, "_latest")
    where = place("l")
    # the model's own rejects: where the row came from, after what is wrong with it
    con.execute(f"""UPDATE _model m SET _reject_detail = coalesce(m._reject_detail, m._reject_rule) || ' at ' || x.at
        FROM (SELECT l._load_id, l._row_number, {where} AS at FROM _latest l) x
        WHERE x._load_id = m.load_id AND x._row_number = m._row_number AND m._reject_rule IS NOT NULL""")

    # a required value missing: the first such column names the reason
    blank = {c: f"nullif(regexp_replace(l.{q(c)}, {_sql_str(SPACES)}, '', 'g'), '') IS NULL" for c in r.required}
    if blank:
        raw_value = {c: (f"r.{q(c)}" if c in r.keys else f"l.{q(c)}") for c in r.required}
        which = "CASE " + " ".join(
            f"WHEN {cond} THEN {_sql_str(c)} || ' is required but ' || "
            f"CASE WHEN {raw_value[c]} IS NULL THEN 'missing (NULL)' ELSE 'blank (' || {_sql_str(chr(39))} || "
            f"{raw_value[c]} || {_sql_str(chr(39))} || ')' END" for c, cond in blank.items()) + " END"
        # the key as sent (before normalising) comes from the raw row itself
        con.execute(f"""UPDATE _model m SET _reject_rule = 'missing_value', _reject_detail = x.detail
            FROM (SELECT l._load_id, l._row_number, {which} || ' at ' || {where} AS detail
                  FROM _latest l JOIN raw.{q(m.raw_table)} r ON r._load_id = l._load_id AND r._row_number = l._row_number
                  WHERE {' OR '.join(blank.values())}) x
            WHERE x._load_id = m.load_id AND x._row_number = m._row_number AND m._reject_rule IS NULL""")

    # a JSON list or object where text is expected
    # cheap test first (a bracket anywhere), the JSON parser only for those rows
    shaped = {c: f"((contains(l.{q(c)}, '[') OR contains(l.{q(c)}, '{{')) AND regexp_matches(l.{q(c)}, '^\\s*[\\[{{]') "
                 f"AND coalesce(json_valid(trim(l.{q(c)})), false))"
              for c in r.used}
    if shaped:
        which = "CASE " + " ".join(
            f"WHEN {cond} THEN {_sql_str(c)} || ' ' || {_shown(f'l.{q(c)}')} || ' is a JSON ' || "
            f"CASE WHEN starts_with(trim(l.{q(c)}), '[') THEN 'list' ELSE 'object' END || ' where text is expected'"
            for c, cond in shaped.items()) + " END"
        _mark(con, "wrong_shape", " OR ".join(shaped.values()), f"{which} || ' at ' || {where}")

    # versions of one key in one load that no source timestamp orders (the model may judge this itself)
    if not r.judges_conflicts:
        # the groups in conflict first (one distinct count over the hashes), then, over those rows only,
        # which columns differ and what this row says in them
        differs = [f"CASE WHEN count(DISTINCT {q(c)}) OVER g > 1 THEN {_sql_str(c + ' ')} || {_shown(q(c))} END"
                   for c in r.used if c not in r.keys]
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _conflicts AS
            SELECT _load_id, _row_number, _versions, concat_ws(', ', {', '.join(differs) or "NULL"}) AS _says
            FROM (SELECT *, count(DISTINCT _content) OVER (PARTITION BY {r.pk}, _load_id) AS _versions
                  FROM _latest WHERE NOT _superseded)
            WHERE _versions > 1
            WINDOW g AS (PARTITION BY {r.pk}, _load_id)""")
        ts = (f" and the same {r.updated_at}" if r.updated_at else "")
        con.execute(f"""UPDATE _model m SET _reject_rule = 'conflicting_duplicate', _reject_detail = x.detail
            FROM (SELECT l._load_id, l._row_number,
                         {_sql_str('+'.join(r.keys) + ' ')} || {r.record_key('l')} || ' has ' || c._versions
                         || ' different versions{ts} in one load; this one says ' || c._says || ' at ' || {where}
                         || ': none is chosen' AS detail
                  FROM _latest l JOIN _conflicts c USING (_load_id, _row_number)) x
            WHERE x._load_id = m.load_id AND x._row_number = m._row_number
              AND (m._reject_rule IS NULL OR m._reject_rule = 'duplicate_row')""")
        con.execute("DROP TABLE _conflicts")

    superseded = _record_superseded(con, m, r, replace_all)
    _record_findings(con, m, r, replace_all)
    return superseded


def _record_superseded(con: duckdb.DuckDBPyConnection, m: Model, r: RowRules, replace_all: bool = True) -> int:
    if replace_all:
        con.execute("DELETE FROM quality.superseded WHERE stage = 'staging' AND model = ?", [m.name])
    if not r.updated_at:
        return 0
    winner = place("l").replace("_row_number", "_winner_row")
    return con.execute(f"""INSERT INTO quality.superseded
            (stage, source, entity, model, load_id, record_key, winner_load_id, reason, detail, original_row)
        SELECT 'staging', ?, ?, ?, l._load_id, {r.record_key('l')}, l._load_id, 'older_version_in_load',
               {_sql_str(r.updated_at)} || ' ' || {_shown(f'r.{q(r.updated_at)}')} || ' at ' || {place('l')}
               || ' is older than ' || {_shown('l._winner_ts')} || ' of the same key at ' || {winner}
               || ': that version is the current one',
               to_json(r)
        FROM _latest l JOIN raw.{q(m.raw_table)} r ON r._load_id = l._load_id AND r._row_number = l._row_number
        WHERE l._superseded""", [m.source, m.entity, m.name]).fetchone()[0]


def _record_findings(con: duckdb.DuckDBPyConnection, m: Model, r: RowRules, replace_all: bool = True) -> None:
    if replace_all:
        con.execute("DELETE FROM quality.reconciliation_issue WHERE model = ?", [m.name])
    how = "surrounding spaces or case" if r.case_insensitive else "surrounding spaces"
    sent = "concat_ws(', ', " + ", ".join(
        f"CASE WHEN r.{q(k)} IS DISTINCT FROM l.{q(k)} THEN {_sql_str(k + ' ')} || {_shown(f'r.{q(k)}')} END"
        for k in r.keys) + ")"
    values = ", ".join(f"{_sql_str(k)}, json_object('sent', r.{q(k)}, 'read_as', l.{q(k)})" for k in r.keys)
    values = f"json_object({values})"
    con.execute(f"""INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
        SELECT 'key_variant', NULL, ?, {r.record_key('l')},
               {sent} || ' at ' || {place('l')} || ' differs from ' || {_shown(r.record_key('l'))}
               || ' only by {how}: read as that key', {values}, ?
        FROM _latest l JOIN raw.{q(m.raw_table)} r ON r._load_id = l._load_id AND r._row_number = l._row_number
        WHERE l._key_variant""", [m.source, m.name])
    if not r.disjoint_loads:
        return
    compared = [c for c in r.used if c not in r.keys]
    if not compared:
        return
    differs = {c: f"a.{q(c)} IS DISTINCT FROM b.{q(c)}" for c in compared}

    def said(side: str) -> str:
        parts = [f"CASE WHEN {cond} THEN {_sql_str(c + ' ')} || {_shown(f'{side}.{q(c)}')} END"
                 for c, cond in differs.items()]
        return f"concat_ws(', ', {', '.join(parts)})"

    values = ", ".join(f"CASE WHEN {cond} THEN json_object({_sql_str(c)}, json_object(a._where, a.{q(c)}, b._where, b.{q(c)})) END"
                       for c, cond in differs.items())
    con.execute(f"""INSERT INTO quality.reconciliation_issue (kind, person_key, systems, record_key, detail, "values", model)
        WITH per_load AS (
            SELECT *, coalesce(_file, 'load ' || _load_id) AS _where,
                   dense_rank() OVER (PARTITION BY {r.pk} ORDER BY _extracted_at DESC, _load_id DESC) AS _age
            FROM _raw_normalised
            QUALIFY row_number() OVER (PARTITION BY {r.pk}, _load_id ORDER BY _row_number) = 1)
        SELECT 'cross_load_conflict', NULL, ?, {r.record_key('a')},
               {_sql_str('+'.join(r.keys))} || ' ' || {r.record_key('a')} || ': ' || {place('a')} || ' says '
               || {said('a')} || '; ' || {place('b')} || ' says ' || {said('b')}
               || '; kept ' || a._where || ' (the later load)',
               to_json(list_filter([{values}], lambda x: x IS NOT NULL)), ?
        FROM per_load a JOIN per_load b ON {' AND '.join(f'a.{q(k)} = b.{q(k)}' for k in r.keys)}
             AND a._age = 1 AND b._age = 2
        WHERE {' OR '.join(differs.values())}""", [m.source, m.name])


def conservation(con: duckdb.DuckDBPyConnection, m: Model) -> dict[str, int]:
    """Latest raw versions of the model's entity, and where they went: staged, quarantined, superseded."""
    relation = f"raw.{q(m.raw_table)}"
    r = rules_of(con, m, relation)
    latest = con.execute(f"""SELECT count(*) FROM (
        SELECT * FROM ({_normalised_select(r, relation)}) {_latest_filter(m, relation)}
        QUALIFY _extracted_at = max(_extracted_at) OVER (PARTITION BY {r.pk}))""").fetchone()[0]
    staged = con.execute(f"SELECT count(*) FROM staging.{q(m.name)}").fetchone()[0]
    quarantined = con.execute("SELECT count(*) FROM quality.quarantine WHERE stage = 'staging' AND source = ? "
                              "AND entity = ?", [m.source, m.entity]).fetchone()[0]
    superseded = con.execute("SELECT count(*) FROM quality.superseded WHERE stage = 'staging' AND model = ?",
                             [m.name]).fetchone()[0]
    return {"latest_raw_versions": latest, "staged": staged, "quarantined": quarantined, "superseded": superseded}
