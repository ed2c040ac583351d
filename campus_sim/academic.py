"""教务系统: course catalogue and grades, written to SQLite (and the ground truth) school by school.

Grades are generated and written per teaching school, so memory stays bounded at large scales. Each
chunk gets its share of duplicate rows and of grades for unknown 学号 (orphans).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from campus_sim import codes
from campus_sim.campus import Campus, Frame, Plan, concat, ragged_arange, take
from campus_sim.defects import DUPLICATE_RATE, ORPHAN_RATE, DefectLog
from campus_sim.fmt import join, local_timestamps, space_time

SECOND = np.timedelta64(1, "s")
GRADE_WORDS = np.array(["不及格", "及格", "中等", "良好", "优秀"])
NORMAL, MAKEUP, RETAKE = "正常考试", "补考", "重修"
TRUTH_SCHEMA = pa.schema(
    [
        ("grade_id", pa.int64()),
        ("person_id", pa.string()),
        ("student_no", pa.string()),
        ("course_code", pa.string()),
        ("term", pa.string()),
        ("score", pa.float64()),
        ("result", pa.string()),
        ("exam_type", pa.string()),
        ("updated_at", pa.timestamp("s", tz="+08:00")),
    ]
)


@dataclass
class Catalogue:
    """Courses (jw_kc) and each major's plan: (term, course index) pairs sorted by term."""

    courses: Frame
    plans: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]  # (school idx, major idx) -> terms, courses
    electives: np.ndarray  # course indices of the public electives


def build_catalogue(plan: Plan) -> Catalogue:
    """Public courses and electives, each school's courses, and every major's course plan."""
    rng = plan.rng("catalogue")
    code, name, credit, kind, unit, exam = [], [], [], [], [], []

    def add(c: str, n: str, x: float, k: str, u: str, e: str) -> int:
        code.append(c)
        name.append(n)
        credit.append(x)
        kind.append(k)
        unit.append(u)
        exam.append(e)
        return len(code) - 1

    general_unit = codes.SCHOOLS[0][0]
    public_by_term = {
        t: [
            add(f"GB{t}{i + 1:02d}", n, x, "公共基础课", general_unit, e)
            for i, (n, x, e) in enumerate(courses)
        ]
        for t, courses in codes.PUBLIC_COURSES.items()
    }
    electives = np.array(
        [
            add(f"GX{i + 1:03d}", n, 1.5, "公共选修课", general_unit, "考查")
            for i, n in enumerate(codes.ELECTIVES)
        ]
    )
    plans = {}
    for s_idx, (school, _, majors) in enumerate(codes.SCHOOLS[: plan.n_schools]):
        names = codes.SCHOOL_COURSES[school].split()
        entries = (
            [
                (n, "专业核心课", float(rng.choice([3.0, 4.0])), "考试", 1.0)
                for n in names[: codes.PRACTICAL_COURSES]
            ]
            + [
                (n, "专业基础课", float(rng.choice([2.0, 2.5, 3.0])), "考试", 0.0)
                for n in names[codes.PRACTICAL_COURSES :]
            ]
            + [
                (n + "实训", "实践课", float(rng.choice([1.0, 1.5, 2.0])), "考查", 1.8)
                for n in names[: codes.PRACTICAL_COURSES]
            ]
            + [
                (n, "专业拓展课" if i < 4 else "实践课", 1.5, "考查", 0.5 + i / 5)
                for i, n in enumerate(codes.SCHOOL_GENERIC_COURSES)
            ]
        )
        school_courses = [
            add(f"{school}{i + 1:03d}", n, x, k, school, e) for i, (n, k, x, e, _) in enumerate(entries)
        ]
        rank = np.array([r for *_, r in entries])
        final = [
            add(f"{school}9{j + 1:02d}", n, x, "实践课", school, "考查")
            for j, (n, x) in enumerate(codes.FINAL_TERM_COURSES)
        ]
        slots = np.repeat(np.arange(1, len(codes.MAJOR_SLOTS) + 1), codes.MAJOR_SLOTS)
        for m_idx in range(len(majors)):
            order = np.argsort(rank + rng.uniform(0, 1.5, rank.size), kind="stable")[: slots.size]
            terms = np.r_[slots, [t for t, cs in public_by_term.items() for _ in cs], np.full(len(final), 6)]
            course_idx = np.r_[
                np.array(school_courses)[order], [c for cs in public_by_term.values() for c in cs], final
            ]
            by_term = np.argsort(terms, kind="stable")
            plans[(s_idx, m_idx)] = (terms[by_term], course_idx[by_term])
    courses = {
        "kch": np.array(code),
        "kcmc": np.array(name),
        "xf": np.array(credit),
        "kclb": np.array(kind),
        "kkdwh": np.array(unit),
        "exam": np.array(exam),
        "difficulty": rng.normal(0, 5, len(code)),
    }
    return Catalogue(courses, plans, electives)


def term_name(cohort: np.ndarray, term: np.ndarray) -> np.ndarray:
    """``YYYY-YYYY-S`` for a cohort's n-th term (1-6)."""
    combos, inverse = np.unique(np.asarray(cohort) * 10 + term, return_inverse=True)
    year = combos // 10 + (combos % 10 - 1) // 2
    names = join(year.astype(str), "-", (year + 1).astype(str), "-", ((combos % 10 - 1) % 2 + 1).astype(str))
    return names[inverse]


def _term_end(rng: np.random.Generator, cohort: np.ndarray, term: np.ndarray, makeup: bool) -> np.ndarray:
    """When a term's grades (or its make-up exam grades) are entered."""
    year = cohort + (term - 1) // 2 + 1
    second = term % 2 == 0
    if makeup:
        month, day = np.where(second, 9, 3), np.where(second, 5, 1)
    else:
        month, day = np.where(second, 7, 1), np.where(second, 1, 8)
    base = ((year - 1970) * 12 + month - 1).astype("datetime64[M]").astype("datetime64[D]") + (day - 1)
    days = base + rng.integers(0, 18, year.size)
    return days.astype("datetime64[s]") + rng.integers(8 * 3600, 18 * 3600, year.size) * SECOND


def _school_grades(plan: Plan, rng: np.random.Generator, cat: Catalogue, campus: Campus, s_idx: int) -> Frame:
    """Grades of one school's students for every term they completed, with make-ups and retakes."""
    st = campus.students
    mine = np.flatnonzero((st["school_idx"] == s_idx) & (st["terms_done"] > 0))
    parts = []
    for m_idx in np.unique(st["major_idx"][mine]).tolist():
        rows = mine[st["major_idx"][mine] == m_idx]
        terms, courses = cat.plans[(s_idx, m_idx)]
        per_term_end = np.searchsorted(terms, np.arange(7), side="right")
        count = per_term_end[st["terms_done"][rows]]
        pos = ragged_arange(count)
        parts.append({"student": np.repeat(rows, count), "term": terms[pos], "course": courses[pos]})
    # Public electives: a different one in each elective slot that the student has reached.
    pick = np.argsort(rng.random((mine.size, cat.electives.size)), axis=1)[:, : len(codes.ELECTIVE_TERMS)]
    slot_term = np.tile(codes.ELECTIVE_TERMS, mine.size)
    reached = slot_term <= np.repeat(st["terms_done"][mine], len(codes.ELECTIVE_TERMS))
    parts.append(
        {
            "student": np.repeat(mine, len(codes.ELECTIVE_TERMS))[reached],
            "term": slot_term[reached],
            "course": cat.electives[pick.ravel()][reached],
        }
    )
    g = concat(parts)
    n = g["student"].size
    ability = np.zeros(st["pidx"].size)
    ability[mine] = rng.normal(0, 7, mine.size)
    score = 76 + ability[g["student"]] + cat.courses["difficulty"][g["course"]] + rng.normal(0, 7, n)
    score += np.where(cat.courses["exam"][g["course"]] == "考查", 3, 0)
    no_fail = (g["term"] == 6) | np.strings.startswith(cat.courses["kcmc"][g["course"]], "形势与政策")
    score = np.clip(score, np.where(no_fail, 60, 25), 99)
    score = np.where(rng.random(n) < 0.15, np.floor(score) + 0.5, np.round(score))
    cohort = st["cohort"][g["student"]]
    g.update(
        {
            "score": score,
            "exam_type": np.full(n, NORMAL),
            "xnxq_term": g["term"],
            "updated": _term_end(rng, cohort, g["term"], False),
        }
    )

    failed = np.flatnonzero(score < 60)
    makeup_pass = rng.random(failed.size) < 0.8
    makeup = take(g, failed)
    makeup["score"] = np.where(
        makeup_pass, rng.integers(60, 79, failed.size), rng.integers(35, 60, failed.size)
    ).astype(float)
    makeup["exam_type"] = np.full(failed.size, MAKEUP)
    makeup["updated"] = _term_end(rng, cohort[failed], g["term"][failed], True)
    retake_rows = failed[~makeup_pass]
    retake_rows = retake_rows[g["term"][retake_rows] + 2 <= st["terms_done"][g["student"][retake_rows]]]
    retake = take(g, retake_rows)
    retake["score"] = rng.integers(60, 86, retake_rows.size).astype(float)
    retake["exam_type"] = np.full(retake_rows.size, RETAKE)
    retake["xnxq_term"] = g["term"][retake_rows] + 2
    retake["updated"] = _term_end(rng, cohort[retake_rows], retake["xnxq_term"], False)
    out = concat([g, makeup, retake])
    n = out["student"].size
    corrected = rng.random(n) < 0.02
    out["updated"] = out["updated"] + np.where(corrected, rng.integers(86400, 120 * 86400, n), 0) * SECOND
    out["updated"] = np.minimum(out["updated"], plan.today.astype("datetime64[s]") + 86399 * SECOND)
    words = GRADE_WORDS[np.clip((out["score"] - 50) // 10, 0, 4).astype(np.int64)]
    numeric = np.where(
        out["score"] % 1 == 0, out["score"].astype(np.int64).astype(str), out["score"].astype(str)
    )
    out["cj"] = np.where(cat.courses["exam"][out["course"]] == "考查", words, numeric)
    out["xh"] = st["student_no"][out["student"]]
    out["kch"] = cat.courses["kch"][out["course"]]
    out["xnxq"] = term_name(st["cohort"][out["student"]], out["xnxq_term"])
    order = np.lexsort((out["exam_type"], out["kch"], out["xh"], out["updated"]))
    return take(out, order)


def write_academic(plan: Plan, campus: Campus, out: Path, truth: Path, log: DefectLog) -> dict[str, int]:
    """Write ``academic.sqlite`` and ``truth/grades.parquet``; return row counts."""
    rng = plan.rng("academic")
    cat = build_catalogue(plan)
    db_path = out / "academic.sqlite"
    db_path.unlink(missing_ok=True)
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE TABLE jw_kc(kch TEXT PRIMARY KEY, kcmc TEXT, xf REAL, kclb TEXT, kkdwh TEXT)")
    con.execute(
        "CREATE TABLE jw_cj(id INTEGER PRIMARY KEY, xh TEXT, kch TEXT, xnxq TEXT, cj TEXT, ksxz TEXT, updated_at TEXT)"
    )
    c = cat.courses
    con.executemany(
        "INSERT INTO jw_kc VALUES (?,?,?,?,?)",
        zip(
            c["kch"].tolist(),
            c["kcmc"].tolist(),
            c["xf"].tolist(),
            c["kclb"].tolist(),
            c["kkdwh"].tolist(),
            strict=True,
        ),
    )
    writer = pq.ParquetWriter(truth / "grades.parquet", TRUTH_SCHEMA, compression="zstd")
    next_id, n_truth = 1, 0
    for s_idx in range(plan.n_schools):
        g = _school_grades(plan, rng, cat, campus, s_idx)
        n = g["xh"].size
        first = s_idx == 0
        dup = np.sort(rng.permutation(n)[: max(int(first), round(DUPLICATE_RATE * n))])
        orphan_src = np.sort(rng.permutation(n)[: max(int(first), round(ORPHAN_RATE * n))])
        orphan = take(g, orphan_src)
        # Unknown 学号: the template's cohort, school and major with class numbers from 99 down.
        k = np.arange(orphan_src.size)
        unknown_class = np.strings.zfill((99 - k // 100).astype(str), 2)
        orphan["xh"] = join(
            np.strings.slice(orphan["xh"], 0, 8), unknown_class, np.strings.zfill((k % 100).astype(str), 2)
        )
        # File rows: each truth row, a duplicate right after its original, orphans next to their template.
        source = np.r_[np.arange(n), dup, orphan_src]
        kind = np.r_[
            np.zeros(n, dtype=np.int64), np.ones(dup.size, dtype=np.int64), np.full(orphan_src.size, 2)
        ]
        order = np.lexsort((kind, source))
        source, kind = source[order], kind[order]
        ids = next_id + np.arange(source.size)
        next_id += source.size
        xh = g["xh"][source]
        xh[kind == 2] = orphan["xh"][np.searchsorted(orphan_src, source[kind == 2])]
        cols = [
            xh,
            g["kch"][source],
            g["xnxq"][source],
            g["cj"][source],
            g["exam_type"][source],
            space_time(g["updated"][source]),
        ]
        con.executemany(
            "INSERT INTO jw_cj VALUES (?,?,?,?,?,?,?)",
            zip(ids.tolist(), *(col.tolist() for col in cols), strict=True),
        )
        person = campus.persons["person_id"][campus.students["pidx"][g["student"][source]]]
        for code, defect, detail in (
            (1, "duplicate_row", "同一成绩记录重复出现两次"),
            (2, "orphan_reference", "学号在学工系统中不存在"),
        ):
            rows = np.flatnonzero(kind == code)
            key = join(xh[rows], "|", cols[1][rows], "|", cols[2][rows], "|", cols[4][rows])
            log.add("academic", "grades", defect, key, person[rows] if code == 1 else "", detail)
        truth_rows = kind == 0
        src = source[truth_rows]
        n_truth += src.size
        writer.write_table(
            pa.table(
                {
                    "grade_id": pa.array(ids[truth_rows]),
                    "person_id": pa.array(person[truth_rows], pa.string()),
                    "student_no": pa.array(g["xh"][src], pa.string()),
                    "course_code": pa.array(g["kch"][src], pa.string()),
                    "term": pa.array(g["xnxq"][src], pa.string()),
                    "score": pa.array(g["score"][src]),
                    "result": pa.array(g["cj"][src], pa.string()),
                    "exam_type": pa.array(g["exam_type"][src], pa.string()),
                    "updated_at": local_timestamps(g["updated"][src]),
                },
                schema=TRUTH_SCHEMA,
            )
        )
    writer.close()
    con.execute("CREATE INDEX idx_jw_cj_updated_at ON jw_cj(updated_at)")
    con.commit()
    n_kc = con.execute("SELECT count(*) FROM jw_kc").fetchone()[0]
    n_cj = con.execute("SELECT count(*) FROM jw_cj").fetchone()[0]
    con.close()
    return {"jw_kc": n_kc, "jw_cj": n_cj, "grades": n_truth}
