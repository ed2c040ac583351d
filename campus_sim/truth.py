"""Ground truth as Parquet: what the generator meant, with canonical codes and clean values.

``grades.parquet`` is streamed by :mod:`campus_sim.academic`; ``defects.csv`` by the defect log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from campus_sim import codes, fmt
from campus_sim.activity import Activities
from campus_sim.campus import Campus, Frame
from campus_sim.exports import lookup
from campus_sim.party import ACTIVE, MEMBER_STAGES, Party
from campus_sim.people import ascii_to_str
from campus_sim.writers import write_parquet

EVENTS = (
    ("apply", "申请入党"),
    ("talk", "谈话"),
    ("activist", "列为入党积极分子"),
    ("candidate", "列为发展对象"),
    ("admit", "接收为预备党员"),
    ("full", "转为正式党员"),
    ("out", "组织关系转出"),
)


def _dates(days: np.ndarray) -> pa.Array:
    days = np.asarray(days, dtype="datetime64[D]")
    return pa.array(days, type=pa.date32(), mask=np.isnat(days))


def _text(values: np.ndarray) -> pa.Array:
    """Strings, empty as null."""
    return fmt.nullable(np.asarray(values, dtype=str))


def _yuan(cents: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    values = np.asarray(cents, dtype=np.int64) / 100
    return pa.array(values, type=pa.float64(), mask=None if present is None else ~present)


def write_truth(
    campus: Campus, party: Party, acts: Activities, courses: Frame, records: Frame, out: Path
) -> dict[str, int]:
    """Write every truth table but grades; return rows per file."""
    ps, st, su = campus.persons, campus.staff, campus.students
    orgs, pp = party.orgs, party.people
    pid = ps["person_id"]
    tables: dict[str, dict[str, pa.Array | np.ndarray]] = {}
    tables["persons"] = {
        "person_id": pid,
        "id_number": ascii_to_str(ps["id18"]),
        "name": ps["name"],
        "gender": ps["gender"],
        "birth_date": _dates(ps["birth"]),
        "ethnicity": ps["ethnicity"],
        "staff_no": _text(ps["staff_no"]),
        "student_no": _text(ps["student_no"]),
        "phone": ps["phone"],
    }
    sp = st["pidx"]
    tables["staff"] = {
        "person_id": pid[sp],
        "staff_no": st["staff_no"],
        "name": ps["name"][sp],
        "gender": ps["gender"][sp],
        "birth_date": _dates(ps["birth"][sp]),
        "ethnicity": ps["ethnicity"][sp],
        "id_number": ascii_to_str(ps["id18"][sp]),
        "political_status": st["political"],
        "education": st["education"],
        "title": _text(lookup(codes.TITLES | {"": ""}, st["title"])),
        "title_code": _text(st["title"]),
        "unit_code": st["unit"],
        "unit_name": st["unit_name"],
        "category": st["category"],
        "status": st["status"],
        "counselor": st["counselor"],
        "hire_date": _dates(st["hire"]),
        "phone": ps["phone"][sp],
        "updated_at": fmt.local_timestamps(st["updated"]),
    }
    up = su["pidx"]
    tables["students"] = {
        "person_id": pid[up],
        "student_no": su["student_no"],
        "name": ps["name"][up],
        "gender": ps["gender"][up],
        "birth_date": _dates(ps["birth"][up]),
        "ethnicity": ps["ethnicity"][up],
        "id_number": ascii_to_str(ps["id18"][up]),
        "political_status": su["political"],
        "school_code": su["school"],
        "school_name": np.array([name for _, name, _ in codes.SCHOOLS])[su["school_idx"]],
        "major": su["major"],
        "class_name": su["class_name"],
        "cohort": su["cohort"],
        "status": su["status"],
        "enrol_date": _dates(su["enrol"]),
        "graduate_date": _dates(su["graduate"]),
        "counselor_no": su["counselor_no"],
        "phone": ps["phone"][up],
        "updated_at": fmt.local_timestamps(su["updated"]),
    }
    current = np.isin(pp["stage"], MEMBER_STAGES) & (pp["status"] == ACTIVE)
    n_orgs = orgs["code"].size
    members_of = np.bincount(pp["org"][current], minlength=n_orgs)
    full_of = np.bincount(pp["org"][current & (pp["stage"] == "正式党员")], minlength=n_orgs)
    sec = orgs["secretary"]
    parent = orgs["parent"]
    tables["party_orgs"] = {
        "org_code": orgs["code"],
        "name": orgs["name"],
        "kind": orgs["kind"],
        "parent_code": _text(np.where(parent >= 0, orgs["code"][np.maximum(parent, 0)], "")),
        "branch_type": _text(orgs["branch_type"]),
        "unit_code": orgs["unit"],
        "secretary_person_id": _text(np.where(sec >= 0, pid[np.maximum(sec, 0)], "")),
        "founded": _dates(orgs["founded"]),
        "elected": _dates(orgs["elected"]),
        "term_end": _dates(orgs["expiry"]),
        "committee_size": orgs["committee_size"],
        "members": members_of,
        "full_members": full_of,
    }
    contact = pp["contact"]
    group = pp["group"]
    tables["party_members"] = {
        "person_id": pid[pp["pidx"]],
        "person_no": pp["person_no"],
        "name": ps["name"][pp["pidx"]],
        "category": pp["category"],
        "org_code": orgs["code"][pp["org"]],
        "group_code": _text(np.where(group >= 0, orgs["code"][np.maximum(group, 0)], "")),
        "stage": pp["stage"],
        "status": pp["status"],
        **{f"{k}_date": _dates(pp[k]) for k, _ in EVENTS},
        "left_campus_date": _dates(pp["gone"]),
        "probation_extension_months": pp["extension"],
        "contact_person_id": _text(np.where(contact >= 0, pid[np.maximum(contact, 0)], "")),
        "committee": pp["committee"],
    }
    ev_rows, ev_names, ev_dates = [], [], []
    for col, label in EVENTS:
        rows = np.flatnonzero(~np.isnat(pp[col]))
        ev_rows.append(rows)
        ev_names.append(np.full(rows.size, label))
        ev_dates.append(pp[col][rows])
    rows, names, dates = np.concatenate(ev_rows), np.concatenate(ev_names), np.concatenate(ev_dates)
    order = np.lexsort((names, dates, pp["person_no"][rows]))
    rows, names, dates = rows[order], names[order], dates[order]
    tables["development_events"] = {
        "person_id": pid[pp["pidx"][rows]],
        "person_no": pp["person_no"][rows],
        "org_code": orgs["code"][pp["org"][rows]],
        "event": names,
        "event_date": _dates(dates),
    }
    d = party.dues
    tables["dues"] = {
        "person_id": pid[pp["pidx"][d["row"]]],
        "person_no": pp["person_no"][d["row"]],
        "org_code": orgs["code"][pp["org"][d["row"]]],
        "month": np.datetime_as_string(d["month"], unit="M"),
        "base": _yuan(d["base"], d["has_base"]),
        "rate": pa.array(d["rate"] / 1000, mask=~d["has_base"]),
        "due": _yuan(d["due"]),
        "paid": _yuan(d["paid"]),
        "paid_date": _dates(d["paid_on"]),
    }
    m = acts.meetings
    tables["meetings"] = {
        "meeting_id": m["meeting_id"],
        "org_code": orgs["code"][m["org"]],
        "type": m["type"],
        "title": m["title"],
        "start_time": fmt.local_timestamps(m["start"]),
        "end_time": fmt.local_timestamps(m["end"]),
        "place": m["place"],
        "lecturer": _text(m["lecturer"]),
        "updated_at": fmt.local_timestamps(m["updated"]),
    }
    a = acts.attendance
    tables["attendance"] = {
        "meeting_id": m["meeting_id"][a["meeting"]],
        "person_id": pid[pp["pidx"][a["row"]]],
        "person_no": pp["person_no"][a["row"]],
        "status": a["status"],
        "checkin_time": fmt.local_timestamps(a["checkin"]),
        "updated_at": fmt.local_timestamps(a["updated"]),
    }
    asm = party.assessments
    tables["assessments"] = {
        "person_id": pid[pp["pidx"][asm["row"]]],
        "person_no": pp["person_no"][asm["row"]],
        "org_code": orgs["code"][asm["org"]],
        "year": asm["year"],
        "grade": asm["grade"],
    }
    t = party.transfers
    tables["transfers"] = {
        "letter_no": t["letter_no"],
        "person_id": pid[pp["pidx"][t["row"]]],
        "person_no": pp["person_no"][t["row"]],
        "from_org_code": orgs["code"][t["from_org"]],
        "to_org_name": t["to_org_name"],
        "kind": t["kind"],
        "out_date": _dates(t["out"]),
        "receipt_date": _dates(t["receipt"]),
    }
    r = records
    tables["study_records"] = {
        "record_id": r["record_id"],
        "person_id": pid[pp["pidx"][r["row"]]],
        "user_no": pp["person_no"][r["row"]],
        "course_id": courses["course_id"][r["course"]],
        "started_at": fmt.local_timestamps(r["started"]),
        "last_active_at": fmt.local_timestamps(r["last_active"]),
        "minutes": r["minutes"],
        "progress": r["progress"],
        "quiz_score": pa.array(r["quiz"], mask=r["quiz"] < 0),
        "completed": r["completed"],
        "updated_at": fmt.local_timestamps(r["last_active"]),
    }
    counts = {}
    for name, cols in tables.items():
        path = out / f"{name}.parquet"
        write_parquet(path, cols)
        counts[f"truth/{name}.parquet"] = pq.read_metadata(path).num_rows
    return counts
