"""The college's people: the scaled plan, units, staff (in post and retired) and students.

Tables are plain dicts of equal-length numpy arrays ("frames"); one row per staff member or student,
with ``pidx`` pointing into the persons frame that both share.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from campus_sim import codes, people
from campus_sim.fmt import numbered

Frame = dict[str, np.ndarray]
NAT = np.datetime64("NaT", "D")


def take(frame: Frame, index: np.ndarray) -> Frame:
    """Rows ``index`` of a frame."""
    return {k: v[index] for k, v in frame.items()}


def concat(frames: list[Frame]) -> Frame:
    """Row-wise concatenation of frames with the same columns."""
    return {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}


def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """``0..k-1`` for each ``k`` in ``counts``, concatenated."""
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


def split_evenly(total: int, parts: int) -> np.ndarray:
    """``total`` split into ``parts`` near-equal integers (larger parts first)."""
    base = np.full(parts, total // parts, dtype=np.int64)
    base[: total % parts] += 1
    return base


@dataclass(frozen=True)
class Plan:
    """Sizes and calendar of one simulated college at a given scale, seed and as-of date."""

    scale: float
    seed: int
    as_of: dt.date
    n_schools: int = field(init=False)
    teacher_branches: int = field(init=False)
    student_branches: int = field(init=False)
    jiguan_branches: int = field(init=False)
    retiree_branches: int = field(init=False)

    def __post_init__(self) -> None:
        s = self.scale
        n_schools = min(len(codes.SCHOOLS), max(1, round(12 * s)))
        per_school = 12 * s / n_schools
        object.__setattr__(self, "n_schools", n_schools)
        object.__setattr__(self, "teacher_branches", max(1, round(per_school)))
        object.__setattr__(self, "student_branches", max(3, round(3 * per_school)))
        object.__setattr__(self, "jiguan_branches", max(1, round(6 * s)))
        object.__setattr__(self, "retiree_branches", max(1, round(4 * s)))

    def count(self, base: float, minimum: int = 1) -> int:
        """A scale-1 count at this scale, at least ``minimum``."""
        return max(minimum, round(base * self.scale))

    def rng(self, stream: str) -> np.random.Generator:
        """An independent generator for one named part of the simulation."""
        return np.random.default_rng([self.seed, zlib.crc32(stream.encode())])

    @property
    def today(self) -> np.datetime64:
        return np.datetime64(self.as_of, "D")

    @property
    def year0(self) -> int:
        """Start year of the school year that contains ``as_of`` (the newest cohort)."""
        return self.as_of.year if self.as_of.month >= 9 else self.as_of.year - 1

    @property
    def cohorts(self) -> tuple[int, int, int, int]:
        """Graduated cohort, then the three current cohorts."""
        y = self.year0
        return (y - 3, y - 2, y - 1, y)

    @property
    def window_start(self) -> np.datetime64:
        """First day of the simulated history (start of the graduated cohort's first year)."""
        return np.datetime64(f"{self.year0 - 3}-09-01", "D")

    @property
    def graduation(self) -> np.datetime64:
        return np.datetime64(f"{self.year0}-06-30", "D")

    @property
    def stamp(self) -> dt.datetime:
        """Fixed document time for exports."""
        return dt.datetime(self.as_of.year, self.as_of.month, self.as_of.day)


@dataclass
class Campus:
    """Everyone at the college; ``persons`` is the shared identity table."""

    plan: Plan
    units: Frame  # code, name, kind ('school'/'admin')
    persons: Frame
    staff: Frame
    students: Frame
    counselor_branch: np.ndarray  # per staff row: local student-branch index, -1 if not a counselor


def _units(plan: Plan) -> Frame:
    schools = codes.SCHOOLS[: plan.n_schools]
    code = [c for c, _, _ in schools] + [c for c, _, _, _ in codes.ADMIN_UNITS]
    name = [n for _, n, _ in schools] + [n for _, n, _, _ in codes.ADMIN_UNITS]
    kind = ["school"] * len(schools) + ["admin"] * len(codes.ADMIN_UNITS)
    return {"code": np.array(code), "name": np.array(name), "kind": np.array(kind)}


def _persons(
    rng: np.random.Generator, birth: np.ndarray, male: np.ndarray, single_share: np.ndarray
) -> Frame:
    n = birth.size
    dotted = rng.random(n) < 0.002
    ethnicity = people.ethnicities(rng, n)
    ethnicity[dotted] = codes.DOTTED_ETHNICITY[0]
    return {
        "name": people.names(rng, male, single_share, dotted),
        "gender": np.where(male, "1", "2"),
        "birth": birth,
        "ethnicity": ethnicity,
        "id18": people.id_numbers(rng, birth, male),
        "phone": people.mobiles(rng, n),
    }


def _titles(
    rng: np.random.Generator, category: np.ndarray, unit: np.ndarray, age: np.ndarray, counselor: np.ndarray
) -> np.ndarray:
    """GB/T 8561 title codes ('' = none) by category, unit and age."""
    n = category.size
    u = rng.random(n)
    title = np.full(n, "", dtype="U3")
    teacher = category == codes.CAT_TEACHER
    title[teacher] = np.select(
        [age[teacher] < 30, age[teacher] < 38, age[teacher] < 48],
        [
            np.where(u[teacher] < 0.7, "014", ""),
            np.where(u[teacher] < 0.8, "013", np.where(u[teacher] < 0.9, "012", "014")),
            np.where(u[teacher] < 0.5, "013", np.where(u[teacher] < 0.95, "012", "011")),
        ],
        np.where(u[teacher] < 0.15, "013", np.where(u[teacher] < 0.75, "012", "011")),
    )
    support = category == codes.CAT_SUPPORT
    title[support] = np.select(
        [age[support] < 32, age[support] < 45], ["074", "073"], np.where(u[support] < 0.6, "072", "073")
    )
    admin = (category == codes.CAT_ADMIN) & ~counselor
    finance = admin & (unit == "206")
    title[finance] = np.select([age[finance] < 32, age[finance] < 45], ["134", "133"], "132")
    other_admin = admin & ~finance
    title[other_admin] = np.where(u[other_admin] < 0.4, "", np.where(age[other_admin] < 32, "014", "013"))
    title[counselor] = np.where(age[counselor] < 30, "014", np.where(u[counselor] < 0.85, "013", "012"))
    worker = category == codes.CAT_WORKER
    title[worker] = np.where(u[worker] < 0.3, "085", np.where(u[worker] < 0.4, "084", ""))
    return title


def _education(
    rng: np.random.Generator, category: np.ndarray, age: np.ndarray, counselor: np.ndarray
) -> np.ndarray:
    n = category.size
    u = rng.random(n)
    older = age >= 50
    edu = np.select(
        [
            category == codes.CAT_TEACHER,
            category == codes.CAT_SUPPORT,
            counselor,
            category == codes.CAT_ADMIN,
        ],
        [
            np.where(
                u < np.where(older, 0.03, 0.10), "11", np.where(u < np.where(older, 0.35, 0.68), "14", "21")
            ),
            np.where(u < 0.2, "14", np.where(u < 0.8, "21", "31")),
            np.where(u < 0.5, "14", "21"),
            np.where(u < 0.4, "14", np.where(u < 0.95, "21", "31")),
        ],
        np.where(u < 0.4, "31", np.where(u < 0.7, "41", "61")),
    )
    return edu.astype("U2")


def _monthly_income(
    rng: np.random.Generator, title: np.ndarray, category: np.ndarray, retired: np.ndarray
) -> np.ndarray:
    """Monthly after-tax salary (in post) or pension (retired), in cents, for the first simulated year."""
    senior = np.isin(title, ["011", "012", "072", "132"])
    top = title == "011"
    middle = np.isin(title, ["013", "073", "133", "083"])
    worker_plain = (category == codes.CAT_WORKER) & (title == "")
    lo = np.select([top, senior, middle, worker_plain], [12000, 9000, 6500, 2600], 4500)
    hi = np.select([top, senior, middle, worker_plain], [15500, 12000, 9000, 4200], 6500)
    p_lo = np.select([top | senior, middle, worker_plain], [6000, 4500, 2600], 3200)
    p_hi = np.select([top | senior, middle, worker_plain], [8800, 6500, 3400], 4800)
    lo = np.where(retired, p_lo, lo)
    hi = np.where(retired, p_hi, hi)
    return (rng.uniform(lo, hi) * 100).astype(np.int64)


def _staff_numbers(rng: np.random.Generator, hire: np.ndarray) -> np.ndarray:
    """工号: hire year and a 4-digit sequence within that year."""
    year = hire.astype("datetime64[Y]").astype(np.int64) + 1970
    order = np.lexsort((rng.random(year.size), year))
    seq = np.empty(year.size, dtype=np.int64)
    sorted_year = year[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_year)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, year.size]))
    # Numbering starts at a small random offset, as if some numbers had gone to people since left.
    seq[order] = np.arange(year.size) - run_start + 1 + rng.integers(0, 20)
    return (year * 10000 + seq).astype(str)


def build_staff(plan: Plan, units: Frame) -> tuple[Frame, Frame, np.ndarray]:
    """Staff rows and their persons; third value: counselor's local student branch (or -1)."""
    rng = plan.rng("staff")
    school_codes = units["code"][units["kind"] == "school"]
    admin_units = codes.ADMIN_UNITS
    sb = plan.student_branches
    n_counselors = 3 * sb * plan.n_schools
    n_teachers = plan.count(380, minimum=6 * plan.teacher_branches * plan.n_schools)
    n_support = plan.count(50)
    n_admin = plan.count(145, minimum=len(admin_units))
    n_worker = plan.count(37)
    n_retired = plan.count(180, minimum=10)

    # Category, unit and counselor flag for every in-post staff member, then retirees.
    counselor_school = np.repeat(school_codes, 3 * sb)
    counselor_branch = np.tile(np.arange(3 * sb) % sb, plan.n_schools)
    admin_w = np.array([w for *_, w in admin_units])
    admin_alloc = np.maximum(1, np.round(admin_w / admin_w.sum() * n_admin)).astype(np.int64)
    unit = np.concatenate(
        [
            counselor_school,
            school_codes[np.arange(n_teachers) % plan.n_schools],
            school_codes[np.arange(n_support) % plan.n_schools],
            np.repeat([c for c, *_ in admin_units], admin_alloc),
            np.full(n_worker, codes.WORKER_UNIT),
        ]
    )
    category = np.repeat(
        [codes.CAT_ADMIN, codes.CAT_TEACHER, codes.CAT_SUPPORT, codes.CAT_ADMIN, codes.CAT_WORKER],
        [n_counselors, n_teachers, n_support, int(admin_alloc.sum()), n_worker],
    )
    n_post = unit.size
    is_counselor = np.zeros(n_post, dtype=bool)
    is_counselor[:n_counselors] = True
    branch_of_counselor = np.full(n_post, -1)
    branch_of_counselor[:n_counselors] = counselor_branch

    # Ages: counsellors young, others spread over a working life; a few over 60 are extended (延聘).
    age_post = np.where(
        is_counselor, np.clip(rng.normal(33, 5, n_post), 26, 50), np.clip(rng.normal(42, 9, n_post), 26, 59.9)
    )
    extended = ~is_counselor & (rng.random(n_post) < 0.02)
    age_post[extended] = rng.uniform(60, 68, int(extended.sum()))
    age_ret = rng.uniform(60.2, 76.5, n_retired)
    age = np.concatenate([age_post, age_ret])
    today = plan.today
    birth = today - np.round(age * 365.25).astype(np.int64)
    ret_cat = rng.choice(
        [codes.CAT_TEACHER, codes.CAT_ADMIN, codes.CAT_SUPPORT, codes.CAT_WORKER],
        n_retired,
        p=[0.6, 0.25, 0.08, 0.07],
    )
    ret_unit = np.where(
        ret_cat == codes.CAT_WORKER,
        codes.WORKER_UNIT,
        np.where(
            rng.random(n_retired) < 0.7,
            school_codes[rng.integers(0, school_codes.size, n_retired)],
            np.array([c for c, *_ in admin_units])[rng.integers(0, len(admin_units), n_retired)],
        ),
    )
    category = np.concatenate([category, ret_cat])
    unit = np.concatenate([unit, ret_unit])
    retired = np.r_[np.zeros(n_post, dtype=bool), np.ones(n_retired, dtype=bool)]
    is_counselor = np.r_[is_counselor, np.zeros(n_retired, dtype=bool)]
    branch_of_counselor = np.r_[branch_of_counselor, np.full(n_retired, -1)]
    n = unit.size

    male_share = np.where(category == codes.CAT_WORKER, 0.7, 0.5)
    male = rng.random(n) < male_share
    persons = _persons(rng, birth, male, np.full(n, 0.25))

    hire_age = np.where(retired, rng.uniform(21, 30, n), rng.uniform(22, 32, n))
    hire = birth + np.round(hire_age * 365.25).astype(np.int64)
    hire = np.minimum(hire, today - rng.integers(30, 400, n))
    hire = np.maximum(hire, birth + 20 * 366)
    status = np.where(retired, codes.STATUS_RETIRED, codes.STATUS_IN_POST)
    status[:n_post][extended] = codes.STATUS_EXTENDED
    sick = (~retired) & (rng.random(n) < 0.005)
    status[sick] = codes.STATUS_SICK_LEAVE
    title_age = np.where(retired, 55.0, age)
    title = _titles(rng, category, unit, title_age, is_counselor)
    unit_names = dict(zip(units["code"].tolist(), units["name"].tolist(), strict=True))
    staff = {
        "pidx": np.arange(n),
        "staff_no": _staff_numbers(rng, hire),
        "unit": unit,
        "unit_name": np.array([unit_names[u] for u in unit.tolist()]),
        "category": category,
        "status": status,
        "counselor": is_counselor,
        "retired": retired,
        "title": title,
        "education": _education(rng, category, title_age, is_counselor),
        "hire": hire,
        "income": _monthly_income(rng, title, category, retired),
        "political": np.full(n, "13", dtype="U2"),
    }
    return staff, persons, branch_of_counselor


def build_students(
    plan: Plan, staff: Frame, counselor_branch: np.ndarray, first_pidx: int
) -> tuple[Frame, Frame]:
    """Students of the four cohorts (classes of at most 45) and their persons."""
    rng = plan.rng("students")
    schools = codes.SCHOOLS[: plan.n_schools]
    sb = plan.student_branches
    rows: list[Frame] = []
    for c_idx, cohort in enumerate(plan.cohorts):
        per_school = split_evenly(plan.count(5000, minimum=100), plan.n_schools)
        for s_idx, (school, _, majors) in enumerate(schools):
            enrol = np.datetime64(f"{cohort}-09-01", "D") + int(rng.integers(2, 8))
            per_major = split_evenly(int(per_school[s_idx]), len(majors))
            # Classes of this school and cohort, numbered across majors, feed branches round-robin.
            counselors = np.flatnonzero(staff["counselor"] & (staff["unit"] == school))
            school_class = 0
            for m_idx, n_major in enumerate(per_major.tolist()):
                n_classes = max(1, math.ceil(n_major / 45))
                sizes = split_evenly(n_major, n_classes)
                for k, size in enumerate(sizes.tolist()):
                    branch = (school_class + c_idx) % sb
                    pool = counselors[counselor_branch[counselors] == branch]
                    counselor = pool[(school_class // sb + c_idx) % pool.size]
                    prefix = f"{cohort}{school[-2:]}{m_idx + 1:02d}{k + 1:02d}"
                    rows.append(
                        {
                            "student_no": numbered(prefix, size, 2),
                            "school": np.full(size, school),
                            "school_idx": np.full(size, s_idx),
                            "major_idx": np.full(size, m_idx),
                            "major": np.full(size, majors[m_idx][0]),
                            "class_name": np.full(size, f"{majors[m_idx][1]}{cohort % 100:02d}{k + 1:02d}班"),
                            "cohort": np.full(size, cohort),
                            "branch_local": np.full(size, branch),
                            "counselor_sidx": np.full(size, counselor),
                            "enrol": np.full(size, enrol),
                        }
                    )
                    school_class += 1
    st = concat(rows)
    n = st["student_no"].size
    enrol = st["enrol"]
    male_share = np.array([codes.SCHOOL_MALE_SHARE[code] for code, _, _ in schools])[st["school_idx"]]
    male = rng.random(n) < male_share
    age = np.clip(17.6 + rng.gamma(2.0, 0.45, n), 17.5, 20.4)
    birth = enrol - np.round(age * 365.25).astype(np.int64)
    persons = _persons(rng, birth, male, np.full(n, 0.12))

    graduated = st["cohort"] == plan.cohorts[0]
    freshmen = st["cohort"] == plan.cohorts[-1]
    u = rng.random(n)
    status = np.where(
        graduated,
        np.where(u < 0.96, "毕业", "退学"),
        np.where(
            freshmen,
            np.where(u < 0.997, "在读", "退学"),
            np.select([u < 0.965, u < 0.98], ["在读", "休学"], "退学"),
        ),
    )
    terms = np.minimum(6, 2 * (plan.year0 - st["cohort"]))
    done = np.select(
        [status == "退学", status == "休学"],
        [np.floor(rng.random(n) * terms).astype(np.int64), np.maximum(terms - 1, 0)],
        terms,
    )
    st.update(
        {
            "pidx": first_pidx + np.arange(n),
            "status": status,
            "graduate": np.where(status == "毕业", plan.graduation, NAT),
            "terms_done": done,
            "counselor_no": staff["staff_no"][st["counselor_sidx"]],
            "political": np.where(rng.random(n) < 0.8, "03", "13").astype("U2"),
            "prior_education": rng.choice(["61", "41", "44"], n, p=[0.7, 0.2, 0.1]),
        }
    )
    return st, persons


def build_campus(plan: Plan) -> Campus:
    """Units, staff and students with a shared persons table (staff first, then students)."""
    units = _units(plan)
    staff, staff_persons, counselor_branch = build_staff(plan, units)
    students, student_persons = build_students(plan, staff, counselor_branch, staff["pidx"].size)
    persons = concat([staff_persons, student_persons])
    n = persons["name"].size
    persons["person_id"] = numbered("P", n, 6)
    persons["staff_no"] = np.full(n, "", dtype="U8")
    persons["staff_no"][staff["pidx"]] = staff["staff_no"]
    persons["student_no"] = np.full(n, "", dtype="U12")
    persons["student_no"][students["pidx"]] = students["student_no"]
    return Campus(plan, units, persons, staff, students, counselor_branch)
