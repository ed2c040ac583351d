"""The settings the party-work marts need: the as-of date and the standards file.

- **As-of date.** Every mart that speaks of "overdue", "arrears", "age" or "this year" measures against one
  explicit date, never ``current_date``: the run's ``as_of`` (``YYYY-MM-DD``: the ``run_settings``
  resource's, which ``HUB_AS_OF`` sets and the launchpad overrides) when set, else the latest date in the
  data (the later of the last meeting and the last dues payment), so a rebuild of the same data gives the
  same marts on any day.
- **Standards.** ``models/assessment_standards.yaml`` (or the run's ``run_settings.standards_file``; 党员考核 points, required study hours, meeting
  frequencies, dues deadline, organisation warnings, development deadlines, the student screen), checked
  here so that a typo fails loudly instead of scoring everyone zero.

:func:`bind_mart_settings` hands both to a DuckDB connection as session variables (``hub_as_of``,
``hub_mart_standards``, ``hub_mart_standards_sha256``); ``marts.mart_parameters`` reads them and every other
mart reads that table. Call it on the connection before building the marts.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import yaml

from models import models_dir

STANDARDS_FILE = models_dir / "assessment_standards.yaml"
AS_OF_VARIABLE = "hub_as_of"
STANDARDS_VARIABLE = "hub_mart_standards"
STANDARDS_SHA_VARIABLE = "hub_mart_standards_sha256"
STANDARDS_PATH_VARIABLE = "hub_mart_standards_file"

GRADES = ("excellent", "qualified", "basically_qualified", "unqualified")
MEETING_TYPES = ("branch_assembly", "branch_committee", "group_meeting", "party_lecture", "theme_day",
                 "life_meeting")
STAGES = ("applicant", "activist", "candidate", "probationary", "full")
PERIODS = ("month", "quarter", "year")
APPLIES_TO = ("branch", "branch_with_committee", "group")


class StandardsError(ValueError):
    """The standards file or the as-of date is not usable; the message names the place."""


def as_of_date(value: date | str | None, where: str = "as_of") -> date | None:
    """``value`` as a date, or None when it is empty (the marts then use the latest date in the data)."""
    if isinstance(value, date):
        return value
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise StandardsError(f"{where}={value!r} is not a date YYYY-MM-DD") from None


def _number(doc: Any, path: str, *, minimum: float = 0, maximum: float | None = None) -> float:
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise StandardsError(f"{path}: missing")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise StandardsError(f"{path}: {node!r} is not a number")
    if node < minimum or (maximum is not None and node > maximum):
        raise StandardsError(f"{path}: {node} is outside {minimum}..{maximum if maximum is not None else '∞'}")
    return float(node)


def _list(doc: Any, path: str) -> list:
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise StandardsError(f"{path}: missing")
        node = node[part]
    if not isinstance(node, list) or not node:
        raise StandardsError(f"{path}: expected a non-empty list")
    return node


def _bands(doc: Any, path: str, key: str) -> None:
    items = _list(doc, path)
    uppers = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise StandardsError(f"{path}[{i}]: needs a label")
        uppers.append(_number(item, key))
    if uppers != sorted(set(uppers)):
        raise StandardsError(f"{path}: {key} must increase from one band to the next")


def check_standards(doc: Any) -> dict:
    """Return ``doc`` if it is a complete, consistent standards document; else raise StandardsError."""
    if not isinstance(doc, dict):
        raise StandardsError("the standards file must be a mapping")
    ma = "member_assessment"
    for component in ("meeting_attendance", "study_hours", "dues_on_time", "democratic_review"):
        _number(doc, f"{ma}.{component}.points")
    _number(doc, f"{ma}.meeting_attendance.excused_weight", maximum=1)
    unknown = set(_list(doc, f"{ma}.meeting_attendance.meeting_types")) - set(MEETING_TYPES)
    if unknown:
        raise StandardsError(f"{ma}.meeting_attendance.meeting_types: unknown {sorted(unknown)}; "
                             f"known: {list(MEETING_TYPES)}")
    for grade in GRADES:
        _number(doc, f"{ma}.democratic_review.grades.{grade}")
    for deduction in ("unexcused_absence", "unpaid_dues_month", "payment_below_rate"):
        _number(doc, f"{ma}.deductions.{deduction}.points")
        _number(doc, f"{ma}.deductions.{deduction}.max")
    ratings = _list(doc, f"{ma}.ratings")
    mins = []
    for i, r in enumerate(ratings):
        if not isinstance(r, dict) or not r.get("rating") or not r.get("name"):
            raise StandardsError(f"{ma}.ratings[{i}]: needs rating and name")
        mins.append(_number(r, "min_score", maximum=100))
    if mins != sorted(set(mins), reverse=True) or mins[-1] != 0:
        raise StandardsError(f"{ma}.ratings: min_score must fall from band to band and end at 0")

    _number(doc, "learning.required_hours_per_year")
    _number(doc, "learning.quiz_pass_score", maximum=100)
    _number(doc, "dues.grace_days", maximum=366)
    _number(doc, "dues.arrears_warning_months", minimum=1)
    for i, req in enumerate(_list(doc, "meetings.requirements")):
        where = f"meetings.requirements[{i}]"
        if not isinstance(req, dict):
            raise StandardsError(f"{where}: expected a mapping")
        if req.get("meeting_type") not in MEETING_TYPES:
            raise StandardsError(f"{where}.meeting_type: {req.get('meeting_type')!r} not one of {list(MEETING_TYPES)}")
        if req.get("period") not in PERIODS:
            raise StandardsError(f"{where}.period: {req.get('period')!r} not one of {list(PERIODS)}")
        if req.get("applies_to") not in APPLIES_TO:
            raise StandardsError(f"{where}.applies_to: {req.get('applies_to')!r} not one of {list(APPLIES_TO)}")
        _number(req, "min_meetings", minimum=1)
    for key in ("branch_min_full_members", "branch_max_members", "committee_from_full_members", "committee_min",
                "committee_max", "term_warning_days"):
        _number(doc, f"organisations.{key}")
    for key in ("talk_within_months", "activist_min_months", "probation_months", "probation_grace_months"):
        _number(doc, f"development.{key}")
    stages = set(_list(doc, "student_standing.screened_stages"))
    if not stages <= set(STAGES):
        raise StandardsError(f"student_standing.screened_stages: unknown {sorted(stages - set(STAGES))}")
    _number(doc, "student_standing.max_failed_courses")
    _bands(doc, "structure.age_bands", "upper")
    _bands(doc, "structure.standing_bands", "upper")
    return doc


def load_standards(path: str | Path = STANDARDS_FILE) -> dict:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StandardsError(f"{path}: not valid YAML: {exc}") from None
    try:
        return check_standards(doc)
    except StandardsError as exc:
        raise StandardsError(f"{path}: {exc}") from None


def bind_as_of(con: duckdb.DuckDBPyConnection, as_of: date | str | None = None) -> date | None:
    """Set (or, with none, clear) the ``hub_as_of`` session variable: the run's as-of date; the warehouse's
    own date judgements (``fact_relation_transfer.receipt_overdue``) read it too. Returns the date, or None."""
    as_of = as_of_date(as_of)
    if as_of is None:
        con.execute(f"RESET VARIABLE {AS_OF_VARIABLE}")
    else:
        con.execute(f"SET VARIABLE {AS_OF_VARIABLE} = ?::DATE", [as_of.isoformat()])
    return as_of


def bind_mart_settings(con: duckdb.DuckDBPyConnection, *, as_of: date | str | None = None,
                       standards_path: str | Path = STANDARDS_FILE) -> dict[str, Any]:
    """Set the session variables the marts read (see the module docstring) and return what was set."""
    path = Path(standards_path)
    standards = load_standards(path)
    as_of = as_of_date(as_of)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        shown = str(path.resolve().relative_to(models_dir.parent))
    except ValueError:
        shown = str(path)
    bind_as_of(con, as_of)
    con.execute(f"SET VARIABLE {STANDARDS_VARIABLE} = ?", [json.dumps(standards, ensure_ascii=False)])
    con.execute(f"SET VARIABLE {STANDARDS_SHA_VARIABLE} = ?", [sha])
    con.execute(f"SET VARIABLE {STANDARDS_PATH_VARIABLE} = ?", [shown])
    return {"as_of": as_of, "standards_file": shown, "standards_sha256": sha}
