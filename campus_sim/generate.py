"""Deterministic generator of the simulated campus (see ``docs/simulated-campus.md``).

``generate(out_dir, scale, seed, as_of)`` writes every campus system's files, the ground truth and
``manifest.json``, and returns the manifest. The same arguments always give byte-identical files.

Record keys in ``truth/defects.csv`` are the keys as they appear in each system; composite keys are
joined with ``|``: grades ``xh|kch|xnxq|ksxz``, dues ``人员编号|缴费月份``, attendance
``meeting_id|person_no``. Organisation defects use the 党组织编码 and ``hr_member_no_party_record``
the HR 工号.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from campus_sim import codes
from campus_sim.academic import write_academic
from campus_sim.activity import build_activities, build_learning
from campus_sim.campus import Campus, Plan, build_campus
from campus_sim.defects import DefectLog
from campus_sim.exports import write_activity, write_hr, write_learning, write_party, write_students
from campus_sim.party import ACTIVE, MEMBER_STAGES, Party, build_party
from campus_sim.truth import write_truth
from campus_sim.writers import sha256

GENERATOR_VERSION = "1.0.0"
SYSTEM_DIRS = ("hr", "student", "academic", "party", "activity", "learning", "truth")


def _updated_times(plan: Plan, campus: Campus, party: Party) -> None:
    """Last-modified times of HR and student records: after the last change to the record."""
    rng = plan.rng("updated")
    today = plan.today
    pp = party.people
    for frame, kind, since in (
        (campus.staff, "staff", campus.staff["hire"]),
        (campus.students, "student", campus.students["enrol"]),
    ):
        lower = np.maximum(since, today - 700)
        rows = np.flatnonzero(
            np.isin(pp["stage"], MEMBER_STAGES) & ((pp["category"] == "学生") == (kind == "student"))
        )
        changed = np.where(np.isnat(pp["full"][rows]), pp["admit"][rows], pp["full"][rows])
        lower[pp["src"][rows]] = np.maximum(lower[pp["src"][rows]], np.minimum(changed, today))
        if kind == "student":
            graduated = ~np.isnat(frame["graduate"])
            lower[graduated] = np.maximum(lower[graduated], frame["graduate"][graduated])
        lower = np.minimum(lower, today)
        seconds = np.floor(
            rng.random(lower.size) * ((today - lower).astype(np.int64) * 86400 + 86400)
        ).astype(np.int64)
        frame["updated"] = lower.astype("datetime64[s]") + seconds * np.timedelta64(1, "s")


def _population(plan: Plan, campus: Campus, party: Party) -> dict[str, object]:
    st, su, pp, orgs = campus.staff, campus.students, party.people, party.orgs
    member = np.isin(pp["stage"], MEMBER_STAGES)
    return {
        "schools": plan.n_schools,
        "staff_in_post": int((~st["retired"]).sum()),
        "staff_retired": int(st["retired"].sum()),
        "students_current": int((su["cohort"] != plan.cohorts[0]).sum()),
        "students_graduated_cohort": int((su["cohort"] == plan.cohorts[0]).sum()),
        "students_by_status": dict(sorted(Counter(su["status"].tolist()).items())),
        "members_by_category": dict(sorted(Counter(pp["category"][member].tolist()).items())),
        "members_current": int((member & (pp["status"] == ACTIVE)).sum()),
        "members_transferred_out": int((member & (pp["status"] != ACTIVE)).sum()),
        "pipeline_by_stage": dict(sorted(Counter(pp["stage"][~member].tolist()).items())),
        "orgs_by_kind": dict(sorted(Counter(orgs["kind"].tolist()).items())),
        "branches_by_type": dict(
            sorted(Counter(orgs["branch_type"][orgs["kind"] == "党支部"].tolist()).items())
        ),
    }


def generate(
    out_dir: str | Path, scale: float = 1.0, seed: int = 20261, as_of: dt.date = dt.date(2026, 10, 31)
) -> dict:
    """Write the simulated campus under ``out_dir`` and return its manifest (also in manifest.json)."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in SYSTEM_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)
    dirs = {name: out / name for name in SYSTEM_DIRS}
    dirs["party"] = out / "party" / "exports"
    for path in dirs.values():
        path.mkdir(parents=True)

    plan = Plan(scale, seed, as_of)
    log = DefectLog()
    campus = build_campus(plan)
    party = build_party(plan, campus)
    _updated_times(plan, campus, party)
    activities = build_activities(plan, campus, party)
    courses, records = build_learning(plan, party)

    rows: dict[str, int] = {}
    rows |= write_hr(plan, campus, party, dirs["hr"], log)
    rows |= write_students(plan, campus, dirs["student"], log)
    academic = write_academic(plan, campus, dirs["academic"], dirs["truth"], log)
    rows["academic/academic.sqlite:jw_kc"] = academic["jw_kc"]
    rows["academic/academic.sqlite:jw_cj"] = academic["jw_cj"]
    rows["truth/grades.parquet"] = academic["grades"]
    rows |= write_party(plan, campus, party, dirs["party"], log)
    rows |= write_activity(plan, campus, party, activities, dirs["activity"], log)
    rows |= write_learning(courses, records, party, dirs["learning"])
    rows |= write_truth(campus, party, activities, courses, records, dirs["truth"])
    rows["truth/defects.csv"] = log.write(dirs["truth"] / "defects.csv")

    files = sorted(p for p in out.rglob("*") if p.is_file() and p.relative_to(out).parts[0] in SYSTEM_DIRS)
    manifest = {
        "generator": "campus_sim",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "scale": scale,
        "as_of": as_of.isoformat(),
        "college": codes.COLLEGE_NAME,
        "school_code": codes.SCHOOL_CODE,
        "population": _population(plan, campus, party),
        "defects": dict(sorted(Counter(log.table()["kind"].tolist()).items())),
        "rows": dict(sorted(rows.items())),
        "files": {
            p.relative_to(out).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in files
        },
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return manifest
