"""The campus systems' files: HR and student JSON Lines, party exports, activity app, learning platform.

Each ``write_*`` function writes one system's files in that system's conventions, injects the
system's format defects, logs them together with the rule conflicts that the system shows, and
returns the number of rows written per file (relative path -> rows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from campus_sim import codes, defects, fmt
from campus_sim.activity import Activities
from campus_sim.campus import Campus, Frame, Plan
from campus_sim.defects import DefectLog, person_defects
from campus_sim.party import ACTIVE, ACTIVIST, CANDIDATE, MEMBER_STAGES, PROBATIONARY, Party
from campus_sim.people import ascii_to_str, date_parts
from campus_sim.writers import write_csv, write_jsonl, write_xlsx, xlsx_dates


def lookup(mapping: dict[str, str], keys: np.ndarray) -> np.ndarray:
    """Vectorised ``mapping[key]`` for every key (all keys must be in the mapping)."""
    table_keys = np.array(list(mapping))
    values = np.array(list(mapping.values()))
    order = np.argsort(table_keys)
    return values[order][np.searchsorted(table_keys[order], keys)]


def _conflicts(party: Party, entity: str) -> list[tuple[str, int, str]]:
    return [(kind, row, detail) for kind, ent, row, detail in party.conflicts if ent == entity]


# ----------------------------------------------------------------------------------------------
# HR and student systems


def write_hr(plan: Plan, campus: Campus, party: Party, out: Path, log: DefectLog) -> dict[str, int]:
    """``hr/staff.jsonl``: codes for gender and status, ISO dates, all values strings."""
    rng = plan.rng("export-hr")
    st, ps = campus.staff, campus.persons
    order = np.argsort(st["staff_no"], kind="stable")
    pidx = st["pidx"][order]
    keys = st["staff_no"][order]
    pid = ps["person_id"][pidx]
    birth_year = date_parts(ps["birth"][pidx])[0]
    damaged = person_defects(
        rng,
        log,
        "hr",
        "staff",
        keys,
        pid,
        ps["name"][pidx],
        ps["id18"][pidx],
        lower_all_x=False,
        legacy_birth_years=birth_year,
    )
    for kind, row, detail in _conflicts(party, "staff"):
        log.add(
            "hr", "staff", kind, np.array([st["staff_no"][row]]), ps["person_id"][st["pidx"][row]], detail
        )
    dup = defects.duplicates(rng, damaged.touched, defects.DUPLICATE_RATE)
    log.add("hr", "staff", "duplicate_row", keys[dup], pid[dup], "同一人员记录重复出现两次")
    rows = defects.with_duplicates(keys.size, dup)
    title = st["title"][order]
    cols = {
        "gh": keys,
        "xm": damaged.names,
        "xbm": ps["gender"][pidx],
        "csrq": fmt.iso_date(ps["birth"][pidx]),
        "mz": np.strings.add(lookup(codes.ETHNIC_NAMES, ps["ethnicity"][pidx]), "族"),
        "sfzjh": damaged.ids,
        "zzmm": lookup(codes.POLITICAL_TEXT, st["political"][order]),
        "xl": st["education"][order],
        "zc": fmt.nullable(lookup(codes.TITLES | {"": ""}, title)),
        "zcdm": fmt.nullable(title),
        "dwh": st["unit"][order],
        "dwmc": st["unit_name"][order],
        "jzglb": st["category"][order],
        "dqzt": st["status"][order],
        "rzrq": fmt.iso_date(st["hire"][order]),
        "sjhm": ps["phone"][pidx],
        "updated_at": fmt.iso_time(st["updated"][order]),
    }
    write_jsonl(
        out / "staff.jsonl",
        {k: (v.take(pa.array(rows)) if isinstance(v, pa.Array) else v[rows]) for k, v in cols.items()},
    )
    return {"hr/staff.jsonl": rows.size}


def write_students(plan: Plan, campus: Campus, out: Path, log: DefectLog) -> dict[str, int]:
    """``student/students.jsonl``: 男/女, ``YYYY/M/D`` dates, letter codes, every X written as x."""
    rng = plan.rng("export-students")
    st, ps = campus.students, campus.persons
    pidx = st["pidx"]
    keys = st["student_no"]
    pid = ps["person_id"][pidx]
    damaged = person_defects(
        rng, log, "student", "students", keys, pid, ps["name"][pidx], ps["id18"][pidx], lower_all_x=True
    )
    dup = defects.duplicates(rng, damaged.touched, defects.DUPLICATE_RATE)
    log.add("student", "students", "duplicate_row", keys[dup], pid[dup], "同一学生记录重复出现两次")
    rows = defects.with_duplicates(keys.size, dup)
    school_names = dict(zip(campus.units["code"].tolist(), campus.units["name"].tolist(), strict=True))
    cols = {
        "studentNo": keys,
        "name": damaged.names,
        "idCard": damaged.ids,
        "gender": np.where(ps["gender"][pidx] == "1", "男", "女"),
        "birthDate": fmt.slash_date(ps["birth"][pidx]),
        "nation": lookup(codes.ETHNIC_NAMES, ps["ethnicity"][pidx]),
        "politicalStatus": lookup(codes.POLITICAL_LETTER, st["political"]),
        "collegeCode": st["school"],
        "collegeName": lookup(school_names, st["school"]),
        "major": st["major"],
        "className": st["class_name"],
        "grade": st["cohort"].astype(str),
        "status": st["status"],
        "enrolDate": fmt.slash_date(st["enrol"]),
        "graduateDate": fmt.nullable(fmt.slash_date(st["graduate"])),
        "counselorNo": st["counselor_no"],
        "mobile": ps["phone"][pidx],
        "updatedAt": fmt.space_time(st["updated"]),
    }
    write_jsonl(
        out / "students.jsonl",
        {k: (v.take(pa.array(rows)) if isinstance(v, pa.Array) else v[rows]) for k, v in cols.items()},
    )
    return {"student/students.jsonl": rows.size}


# ----------------------------------------------------------------------------------------------
# Party system exports


def _person_no(campus: Campus, pidx: np.ndarray) -> np.ndarray:
    ps = campus.persons
    return np.where(ps["staff_no"][pidx] != "", ps["staff_no"][pidx], ps["student_no"][pidx])


def _rows(columns: list[list[object] | np.ndarray]) -> list[list[object]]:
    lists = [c if isinstance(c, list) else c.tolist() for c in columns]
    return [list(r) for r in zip(*lists, strict=True)]


def _xlsx(path: Path, plan: Plan, header: list[str], columns: list[list[object] | np.ndarray]) -> int:
    rows = _rows(columns)
    write_xlsx(path, path.stem, header, rows, plan.stamp)
    return len(rows)


def write_party(plan: Plan, campus: Campus, party: Party, out: Path, log: DefectLog) -> dict[str, int]:
    """The party system's XLSX and GBK CSV exports in ``party/exports``."""
    rng = plan.rng("export-party")
    counts: dict[str, int] = {}
    orgs, pp, ps = party.orgs, party.people, campus.persons
    org_order = np.argsort(orgs["code"], kind="stable")
    o = org_order
    secretary = orgs["secretary"][o]
    has_sec = secretary >= 0
    sec_name = np.where(has_sec, ps["name"][np.maximum(secretary, 0)], "")
    sec_no = np.where(has_sec, _person_no(campus, np.maximum(secretary, 0)), "")
    parent = orgs["parent"][o]
    counts["party/exports/党组织信息.xlsx"] = _xlsx(
        out / "党组织信息.xlsx",
        plan,
        [
            "党组织编码",
            "党组织名称",
            "党组织类别",
            "上级党组织编码",
            "支部类型",
            "所属单位",
            "书记姓名",
            "书记人员编号",
            "成立日期",
            "换届日期",
            "届满日期",
            "委员人数",
        ],
        [
            orgs["code"][o],
            orgs["name"][o],
            orgs["kind"][o],
            np.where(parent >= 0, orgs["code"][np.maximum(parent, 0)], ""),
            orgs["branch_type"][o],
            orgs["unit"][o],
            sec_name,
            sec_no,
            xlsx_dates(rng, orgs["founded"][o]),
            xlsx_dates(rng, orgs["elected"][o]),
            xlsx_dates(rng, orgs["expiry"][o]),
            orgs["committee_size"][o],
        ],
    )
    for kind, row, detail in _conflicts(party, "orgs"):
        log.add("party", "orgs", kind, np.array([orgs["code"][row]]), "", detail)

    counts |= _members(plan, rng, campus, party, out, log)
    counts |= _development(plan, rng, campus, party, out, log)
    counts |= _dues(plan, rng, campus, party, out, log)
    t = party.transfers
    counts["party/exports/组织关系转接.xlsx"] = _xlsx(
        out / "组织关系转接.xlsx",
        plan,
        [
            "人员编号",
            "姓名",
            "公民身份号码",
            "转出党组织编码",
            "转入党组织名称",
            "转接类型",
            "转出日期",
            "介绍信编号",
            "回执日期",
        ],
        [
            pp["person_no"][t["row"]],
            ps["name"][pp["pidx"][t["row"]]],
            ascii_to_str(ps["id18"][pp["pidx"][t["row"]]]),
            orgs["code"][t["from_org"]],
            t["to_org_name"],
            t["kind"],
            xlsx_dates(rng, t["out"]),
            t["letter_no"],
            xlsx_dates(rng, t["receipt"]),
        ],
    )
    for kind, row, detail in _conflicts(party, "assessments"):  # the key is 人员编号|评议年度
        log.add("party", "assessments", kind, np.array([f"{pp['person_no'][row]}|{detail[:4]}"]),
                ps["person_id"][pp["pidx"][row]], detail)
    a = party.assessments
    for year in np.unique(a["year"]).tolist():
        sel = a["year"] == year
        rows = a["row"][sel]
        counts[f"party/exports/民主评议_{year}.xlsx"] = _xlsx(
            out / f"民主评议_{year}.xlsx",
            plan,
            ["人员编号", "姓名", "党组织编码", "评议年度", "评议等次"],
            [
                pp["person_no"][rows],
                ps["name"][pp["pidx"][rows]],
                orgs["code"][a["org"][sel]],
                a["year"][sel],
                a["grade"][sel],
            ],
        )
    return counts


def _members(
    plan: Plan, rng: np.random.Generator, campus: Campus, party: Party, out: Path, log: DefectLog
) -> dict[str, int]:
    """党员信息.xlsx: current members (正常) of the college's organisations."""
    orgs, pp, ps = party.orgs, party.people, campus.persons
    rows = np.flatnonzero(np.isin(pp["stage"], MEMBER_STAGES) & (pp["status"] == ACTIVE))
    rows = rows[np.lexsort((pp["person_no"][rows], orgs["code"][pp["org"][rows]]))]
    pidx = pp["pidx"][rows]
    keys = pp["person_no"][rows]
    pid = ps["person_id"][pidx]
    damaged = person_defects(
        rng, log, "party", "members", keys, pid, ps["name"][pidx], ps["id18"][pidx], lower_all_x=False
    )
    position = {int(r): i for i, r in enumerate(rows.tolist())}
    conflict_rows = []
    for kind, row, detail in _conflicts(party, "members"):
        i = position[row]
        conflict_rows.append(i)
        log.add("party", "members", kind, keys[i : i + 1], pid[i], detail)
    org_code = orgs["code"][pp["org"][rows]].astype("U12")
    # Orphans among probationary members only, so that no branch loses a full member in the file.
    free = ~damaged.touched & (pp["stage"][rows] == PROBATIONARY)
    free[conflict_rows] = False
    orphan = np.sort(
        rng.permutation(np.flatnonzero(free))[: defects.how_many(defects.ORPHAN_RATE, rows.size)]
    )
    org_code[orphan] = np.strings.add(np.strings.slice(org_code[orphan], 0, 7), "99900")
    log.add(
        "party",
        "members",
        "orphan_reference",
        keys[orphan],
        pid[orphan],
        fmt.join("党组织编码", org_code[orphan], "不存在"),
    )
    st = campus.staff
    is_staff = pp["category"][rows] != "学生"
    education = np.where(
        is_staff,
        st["education"][np.where(is_staff, pp["src"][rows], 0)],
        np.where(
            campus.students["status"][np.where(is_staff, 0, pp["src"][rows])] == "毕业",
            "31",
            campus.students["prior_education"][np.where(is_staff, 0, pp["src"][rows])],
        ),
    )
    return {
        "party/exports/党员信息.xlsx": _xlsx(
            out / "党员信息.xlsx",
            plan,
            [
                "人员编号",
                "姓名",
                "性别",
                "民族",
                "公民身份号码",
                "出生日期",
                "学历",
                "人员类别",
                "党组织编码",
                "所在党支部",
                "党员类型",
                "申请入党日期",
                "列为积极分子日期",
                "列为发展对象日期",
                "入党日期",
                "转正日期",
                "延长预备期",
                "党籍状态",
                "联系电话",
            ],
            [
                keys,
                damaged.names,
                np.where(ps["gender"][pidx] == "1", "男", "女"),
                np.strings.add(lookup(codes.ETHNIC_NAMES, ps["ethnicity"][pidx]), "族"),
                damaged.ids,
                xlsx_dates(rng, ps["birth"][pidx]),
                lookup(codes.EDUCATION_TEXT, education),
                pp["category"][rows],
                org_code,
                orgs["name"][pp["org"][rows]],
                pp["stage"][rows],
                xlsx_dates(rng, pp["apply"][rows]),
                xlsx_dates(rng, pp["activist"][rows]),
                xlsx_dates(rng, pp["candidate"][rows]),
                xlsx_dates(rng, pp["admit"][rows]),
                xlsx_dates(rng, pp["full"][rows]),
                np.where(pp["extension"][rows] > 0, pp["extension"][rows].astype(str), ""),
                pp["status"][rows],
                ps["phone"][pidx],
            ],
        )
    }


def _development(
    plan: Plan, rng: np.random.Generator, campus: Campus, party: Party, out: Path, log: DefectLog
) -> dict[str, int]:
    """发展党员.csv (GBK): applicants, activists and 发展对象."""
    orgs, pp, ps = party.orgs, party.people, campus.persons
    rows = np.flatnonzero(~np.isin(pp["stage"], MEMBER_STAGES))
    stage_rank = np.select([pp["stage"][rows] == CANDIDATE, pp["stage"][rows] == ACTIVIST], [0, 1], 2)
    rows = rows[np.lexsort((pp["person_no"][rows], stage_rank, orgs["code"][pp["org"][rows]]))]
    pidx = pp["pidx"][rows]
    keys = pp["person_no"][rows]
    pid = ps["person_id"][pidx]
    damaged = person_defects(
        rng, log, "party", "development", keys, pid, ps["name"][pidx], ps["id18"][pidx], lower_all_x=False
    )
    position = {int(r): i for i, r in enumerate(rows.tolist())}
    for kind, row, detail in _conflicts(party, "development"):
        i = position[row]
        log.add("party", "development", kind, keys[i : i + 1], pid[i], detail)
    contact = pp["contact"][rows]
    write_csv(
        out / "发展党员.csv",
        {
            "人员编号": keys,
            "姓名": damaged.names,
            "性别": np.where(ps["gender"][pidx] == "1", "男", "女"),
            "公民身份号码": damaged.ids,
            "党组织编码": orgs["code"][pp["org"][rows]],
            "发展阶段": pp["stage"][rows],
            "申请入党日期": fmt.compact_date(pp["apply"][rows]),
            "谈话日期": fmt.compact_date(pp["talk"][rows]),
            "列为积极分子日期": fmt.compact_date(pp["activist"][rows]),
            "列为发展对象日期": fmt.compact_date(pp["candidate"][rows]),
            "培养联系人": np.where(contact >= 0, ps["name"][np.maximum(contact, 0)], ""),
        },
    )
    return {"party/exports/发展党员.csv": rows.size}


def _dues(
    plan: Plan, rng: np.random.Generator, campus: Campus, party: Party, out: Path, log: DefectLog
) -> dict[str, int]:
    """党费缴纳_<year>.csv (GBK), one per calendar year."""
    orgs, pp, ps = party.orgs, party.people, campus.persons
    d = party.dues
    month = np.datetime_as_string(d["month"], unit="M")
    keys = fmt.join(pp["person_no"][d["row"]], "|", month)
    pid = ps["person_id"][pp["pidx"][d["row"]]]
    touched = np.zeros(keys.size, dtype=bool)
    for kind, row, detail in _conflicts(party, "dues"):
        touched[row] = True
        log.add("party", "dues", kind, keys[row : row + 1], pid[row], detail)
    dup = defects.duplicates(rng, touched, defects.DUES_DUPLICATE_RATE)
    log.add("party", "dues", "duplicate_row", keys[dup], pid[dup], "同一缴费记录重复出现两次")
    rows = defects.with_duplicates(keys.size, dup)
    year = d["month"].astype("datetime64[Y]").astype(np.int64) + 1970
    counts = {}
    for y in np.unique(year).tolist():
        r = rows[year[rows] == y]
        write_csv(
            out / f"党费缴纳_{y}.csv",
            {
                "人员编号": pp["person_no"][d["row"][r]],
                "姓名": ps["name"][pp["pidx"][d["row"][r]]],
                "党组织编码": orgs["code"][pp["org"][d["row"][r]]],
                "缴费月份": month[r],
                "缴费基数": np.where(d["has_base"][r], fmt.money(d["base"][r]), ""),
                "应缴金额": fmt.money(d["due"][r]),
                "实缴金额": fmt.money(d["paid"][r]),
                "缴费日期": fmt.compact_date(d["paid_on"][r]),
            },
        )
        counts[f"party/exports/党费缴纳_{y}.csv"] = r.size
    return counts


# ----------------------------------------------------------------------------------------------
# Activity app and learning platform


def write_activity(
    plan: Plan, campus: Campus, party: Party, acts: Activities, out: Path, log: DefectLog
) -> dict[str, int]:
    """``activity/*.jsonl``: meetings, and attendance with duplicate and unknown-person rows."""
    rng = plan.rng("export-activity")
    m, a, pp = acts.meetings, acts.attendance, party.people
    write_jsonl(
        out / "meetings.jsonl",
        {
            "meeting_id": m["meeting_id"],
            "org_code": party.orgs["code"][m["org"]],
            "type": m["type"],
            "title": m["title"],
            "start_time": fmt.iso_time(m["start"]),
            "end_time": fmt.iso_time(m["end"]),
            "place": m["place"],
            "lecturer": fmt.nullable(m["lecturer"]),
            "updated_at": fmt.iso_time(m["updated"]),
        },
    )
    meeting_id = m["meeting_id"][a["meeting"]]
    person_no = pp["person_no"][a["row"]]
    pid = campus.persons["person_id"][pp["pidx"][a["row"]]]
    n = meeting_id.size
    dup = defects.duplicates(rng, np.zeros(n, dtype=bool), defects.DUPLICATE_RATE)
    # Unknown people signed in to some meetings (orphans), placed after a random row.
    k = defects.how_many(defects.ORPHAN_RATE, n)
    after = np.sort(rng.permutation(n)[:k])
    hire_year = rng.integers(1990, plan.as_of.year, k)
    unknown = np.strings.add(hire_year.astype(str), (9000 + rng.integers(0, 1000, k)).astype(str))
    source = np.r_[np.arange(n), dup, after]
    kind = np.r_[np.zeros(n, dtype=np.int64), np.ones(dup.size, dtype=np.int64), np.full(k, 2)]
    order = np.lexsort((kind, source))
    source, kind = source[order], kind[order]
    who = person_no[source]
    who[kind == 2] = unknown
    keys = fmt.join(meeting_id[source], "|", who)
    log.add(
        "activity",
        "attendance",
        "duplicate_row",
        keys[kind == 1],
        pid[source[kind == 1]],
        "同一签到记录重复出现两次",
    )
    log.add(
        "activity",
        "attendance",
        "orphan_reference",
        keys[kind == 2],
        "",
        "签到人员编号在人事和学工系统中都不存在",
    )
    for kind, row, first_month, detail in acts.conflicts:  # the key is 人员编号|first month missed
        log.add("activity", "attendance", kind, np.array([f"{pp['person_no'][row]}|{first_month}"]),
                campus.persons["person_id"][pp["pidx"][row]], detail)
    checkin = fmt.iso_time(a["checkin"][source])
    write_jsonl(
        out / "attendance.jsonl",
        {
            "meeting_id": meeting_id[source],
            "person_no": who,
            "status": a["status"][source],
            "checkin_time": fmt.nullable(checkin),
            "updated_at": fmt.iso_time(a["updated"][source]),
        },
    )
    return {"activity/meetings.jsonl": m["meeting_id"].size, "activity/attendance.jsonl": source.size}


def write_learning(courses: Frame, records: Frame, party: Party, out: Path) -> dict[str, int]:
    """``learning/*.jsonl``, times as epoch milliseconds."""
    write_jsonl(
        out / "courses.jsonl",
        {
            "course_id": courses["course_id"],
            "title": courses["title"],
            "kind": courses["kind"],
            "hours": courses["hours"],
            "published_at": fmt.epoch_ms(courses["published"]),
        },
    )
    r = records
    write_jsonl(
        out / "study_records.jsonl",
        {
            "record_id": r["record_id"],
            "user_no": party.people["person_no"][r["row"]],
            "course_id": courses["course_id"][r["course"]],
            "started_at": fmt.epoch_ms(r["started"]),
            "last_active_at": fmt.epoch_ms(r["last_active"]),
            "minutes": r["minutes"],
            "progress": r["progress"],
            "quiz_score": pa.array(r["quiz"], mask=r["quiz"] < 0),
            "completed": r["completed"],
            "updated_at": fmt.epoch_ms(r["last_active"]),
        },
    )
    return {
        "learning/courses.jsonl": courses["course_id"].size,
        "learning/study_records.jsonl": r["record_id"].size,
    }
