"""The party: organisations, members and the development pipeline, transfers, dues and assessments.

Everything here is the ground truth. The rule conflicts of the contract (probation overdue, a branch
with fewer than three full members, ...) are built into this truth on purpose and listed in
``Party.conflicts``; format defects are added later, when the exports are written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from campus_sim import codes
from campus_sim.campus import NAT, Campus, Frame, Plan, concat, ragged_arange, take
from campus_sim.fmt import join
from campus_sim.people import add_months, add_years, random_dates

IN_POST, STUDENT, RETIREE = "在职教职工", "学生", "离退休人员"
APPLICANT, ACTIVIST, CANDIDATE, PROBATIONARY, FULL = (
    "入党申请人",
    "入党积极分子",
    "发展对象",
    "预备党员",
    "正式党员",
)
MEMBER_STAGES = (PROBATIONARY, FULL)
ACTIVE, TRANSFERRED = "正常", "已转出"

# Scale-1 sizes from the contract.
STUDENT_MEMBERS = {0: 600, 1: 600}  # by cohort position: graduated cohort, then the oldest current
STUDENT_PIPELINE = {
    1: ((CANDIDATE, 190), (ACTIVIST, 130), (APPLICANT, 100)),
    2: ((ACTIVIST, 450), (APPLICANT, 650)),
    3: ((APPLICANT, 700),),
}
STAFF_PIPELINE = ((CANDIDATE, 10), (ACTIVIST, 20), (APPLICANT, 50))
STAFF_MEMBER_SHARE = {
    codes.CAT_TEACHER: 0.6,
    codes.CAT_SUPPORT: 0.5,
    codes.CAT_ADMIN: 0.6,
    codes.CAT_WORKER: 0.3,
}
RETIREE_MEMBER_SHARE = 0.78
CONFLICT_COUNTS = {
    "hr_member_no_party_record": 5,
    "retiree_in_inservice_branch": 3,
    "probation_overdue": 4,
    "activist_under_one_year": 3,
    "applicant_under_18": 2,
    "full_date_inconsistent": 2,
}

_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """1..999 in Chinese numerals (十一, 二十, 一百零五)."""
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    out = f"{_DIGITS[hundreds]}百" if hundreds else ""
    if tens:
        out += ("" if tens == 1 and not hundreds else _DIGITS[tens]) + "十"
    elif hundreds and ones:
        out += "零"
    if ones:
        out += _DIGITS[ones]
    return out


@dataclass
class Party:
    """Ground truth of the party system plus the conflicts built into it."""

    orgs: Frame
    people: Frame
    transfers: Frame
    dues: Frame
    assessments: Frame
    conflicts: list[tuple[str, str, int, str]] = field(default_factory=list)  # kind, entity, row, detail


# ----------------------------------------------------------------------------------------------
# Organisations


@dataclass
class Branches:
    """Row indices of the 党支部 in the organisations frame, by kind."""

    teacher: np.ndarray  # (school, local teacher branch number)
    student: np.ndarray  # (school, local student branch number)
    jiguan: np.ndarray
    retiree: np.ndarray
    under3: int  # the branch that is built with fewer than three full members


def _org_code(zongzhi: int, branch: int = 0, group: int = 0) -> str:
    return f"45100{zongzhi:02d}{branch:03d}{group:02d}"


def build_orgs(plan: Plan) -> tuple[Frame, Branches]:
    """党委, 党总支 and 党支部 (党小组 are added once members are known)."""
    rows: list[tuple[str, str, str, int, str, str]] = []  # code, name, kind, parent, branch type, unit

    def add(code: str, name: str, kind: str, parent: int, btype: str, unit: str) -> int:
        rows.append((code, name, kind, parent, btype, unit))
        return len(rows) - 1

    committee = add(_org_code(0), f"中共{codes.COLLEGE_NAME}委员会", "党委", -1, "", codes.ADMIN_UNITS[0][0])
    teacher: list[list[int]] = []
    student: list[list[int]] = []
    tb, sb = plan.teacher_branches, plan.student_branches
    for s_idx, (school, name, _) in enumerate(codes.SCHOOLS[: plan.n_schools]):
        z = s_idx + 1
        zz = add(_org_code(z), f"{name}党总支", "党总支", committee, "", school)
        teacher.append(
            [
                add(
                    _org_code(z, j + 1),
                    f"{name}教工{'' if tb == 1 else '第' + chinese_number(j + 1)}党支部",
                    "党支部",
                    zz,
                    "教工",
                    school,
                )
                for j in range(tb)
            ]
        )
        student.append(
            [
                add(
                    _org_code(z, tb + j + 1),
                    f"{name}学生第{chinese_number(j + 1)}党支部",
                    "党支部",
                    zz,
                    "学生",
                    school,
                )
                for j in range(sb)
            ]
        )
    z_jg, z_rt = len(codes.SCHOOLS) + 1, len(codes.SCHOOLS) + 2
    jg = add(_org_code(z_jg), "机关党总支", "党总支", committee, "", codes.ADMIN_UNITS[0][0])
    nj = plan.jiguan_branches
    group_unit = {g: next(c for c, _, gg, _ in codes.ADMIN_UNITS if gg == g) for g in range(6)}
    jiguan = []
    for b in range(nj):
        group = b * 6 // nj if nj >= 6 else min(5, b * 6 // nj)
        name = f"{codes.JIGUAN_GROUP_NAMES[b]}党支部" if nj == 6 else f"机关第{chinese_number(b + 1)}党支部"
        jiguan.append(add(_org_code(z_jg, b + 1), name, "党支部", jg, "机关", group_unit[group]))
    rt = add(_org_code(z_rt), "离退休党总支", "党总支", committee, "", codes.RETIREE_UNIT)
    retiree = [
        add(
            _org_code(z_rt, b + 1),
            f"离退休第{chinese_number(b + 1)}党支部",
            "党支部",
            rt,
            "离退休",
            codes.RETIREE_UNIT,
        )
        for b in range(plan.retiree_branches)
    ]
    orgs = {
        "code": np.array([r[0] for r in rows]),
        "name": np.array([r[1] for r in rows]),
        "kind": np.array([r[2] for r in rows]),
        "parent": np.array([r[3] for r in rows]),
        "branch_type": np.array([r[4] for r in rows]),
        "unit": np.array([r[5] for r in rows]),
    }
    branches = Branches(
        teacher=np.array(teacher),
        student=np.array(student),
        jiguan=np.array(jiguan),
        retiree=np.array(retiree),
        under3=jiguan[-1],
    )
    return orgs, branches


def _jiguan_branch(unit: np.ndarray, nj: int, jiguan: np.ndarray) -> np.ndarray:
    """机关 branch of staff in administrative units; units of one group share (round-robin) branches."""
    group_of = {c: g for c, _, g, _ in codes.ADMIN_UNITS}
    group = np.array([group_of[u] for u in unit.tolist()], dtype=np.int64)
    if nj < 6:
        return jiguan[group * nj // 6]
    branch = np.empty(unit.size, dtype=np.int64)
    for g in range(6):
        options = jiguan[[b for b in range(nj) if b * 6 // nj == g]]
        rows = np.flatnonzero(group == g)
        branch[rows] = options[np.arange(rows.size) % options.size]
    return branch


def _staff_branch(plan: Plan, campus: Campus, branches: Branches) -> np.ndarray:
    """Party branch each staff member would belong to."""
    st = campus.staff
    in_post = ~st["retired"]
    branch = np.full(st["pidx"].size, -1, dtype=np.int64)
    for s, (code, _, _) in enumerate(codes.SCHOOLS[: plan.n_schools]):
        here = in_post & (st["unit"] == code)
        counselors = np.flatnonzero(here & st["counselor"])
        branch[counselors] = branches.student[s][campus.counselor_branch[counselors]]
        others = np.flatnonzero(here & ~st["counselor"])
        branch[others] = branches.teacher[s][np.arange(others.size) % plan.teacher_branches]
    admin = np.flatnonzero(in_post & (branch < 0))
    branch[admin] = _jiguan_branch(st["unit"][admin], plan.jiguan_branches, branches.jiguan)
    retired = np.flatnonzero(st["retired"])
    branch[retired] = branches.retiree[np.arange(retired.size) % plan.retiree_branches]
    return branch


# ----------------------------------------------------------------------------------------------
# Development timelines


def _chain(
    rng: np.random.Generator, lower: np.ndarray, deadline: np.ndarray, gaps: list[tuple[int, int]]
) -> np.ndarray:
    """Dates of successive steps after ``lower``: each step a gap in ``gaps`` (days) after the previous
    one, the flexible part of the gaps shrunk where needed so that the last step is on or before
    ``deadline``. Returns an ``(n, len(gaps))`` date array. Callers ensure feasibility."""
    n = lower.size
    lo = np.array([g[0] for g in gaps], dtype=np.int64)
    flex = rng.random((n, len(gaps))) * np.array([g[1] - g[0] for g in gaps])
    room = (deadline - lower).astype(np.int64) - lo.sum()
    factor = np.clip(room / np.maximum(flex.sum(axis=1), 1e-9), 0, 1)
    steps = lo + np.floor(flex * factor[:, None]).astype(np.int64)
    return lower[:, None] + np.cumsum(steps, axis=1)


def _backward_chain(rng: np.random.Generator, admit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply, activist and candidate dates leading to ``admit`` (for long-standing members)."""
    n = admit.size
    candidate = admit - rng.integers(30, 121, n)
    activist = candidate - rng.integers(366, 701, n)
    apply = activist - rng.integers(30, 366, n)
    return apply, activist, candidate


STUDENT_GAPS = [(3, 55), (60, 200), (366, 450), (30, 120)]
GRADUATE_GAPS = [(3, 40), (60, 150), (366, 420), (30, 90)]
STAFF_GAPS = [(0, 700), (60, 300), (366, 500)]


def _frame(n: int) -> Frame:
    return {
        "pidx": np.zeros(n, dtype=np.int64),
        "person_no": np.full(n, "", dtype="U12"),
        "category": np.full(n, "", dtype="U5"),
        "src": np.zeros(n, dtype=np.int64),
        "org": np.zeros(n, dtype=np.int64),
        "stage": np.full(n, "", dtype="U6"),
        "status": np.full(n, ACTIVE, dtype="U3"),
        # start: joined this college's organisation; out: transferred out; gone: left campus
        # without a transfer (a graduate still on the books).
        **{
            k: np.full(n, NAT)
            for k in ("apply", "talk", "activist", "candidate", "admit", "full", "out", "start", "gone")
        },
        # 延长预备期 in months (6-12) when the branch extended the probation and recorded it; 0: none
        "extension": np.zeros(n, dtype=np.int64),
    }


def _finish_dates(rng: np.random.Generator, f: Frame, today: np.datetime64) -> None:
    """Talk within a month of applying (not after today); full membership a year after admission."""
    n = f["pidx"].size
    f["talk"] = np.minimum(f["apply"] + rng.integers(3, 29, n), today)
    f["talk"] = np.maximum(f["talk"], f["apply"])
    member = np.isin(f["stage"], MEMBER_STAGES)
    full = add_years(f["admit"], 1)
    limit = np.where(np.isnat(f["out"]), today, f["out"])
    f["full"] = np.where(member & (full <= limit), full, NAT)
    f["stage"] = np.where(member, np.where(np.isnat(f["full"]), PROBATIONARY, FULL), f["stage"])


def _staff_people(plan: Plan, campus: Campus, branch: np.ndarray, under3: int) -> tuple[Frame, np.ndarray]:
    """Staff members (in post and retired) and staff in the pipeline; also the HR-only '党员' pool."""
    rng = plan.rng("party-staff")
    st, persons = campus.staff, campus.persons
    today = plan.today
    n = st["pidx"].size
    member = np.zeros(n, dtype=bool)
    member[st["counselor"]] = True
    for cat, share in STAFF_MEMBER_SHARE.items():
        pool = np.flatnonzero(
            ~st["retired"] & ~st["counselor"] & (st["category"] == cat) & (branch != under3)
        )
        member[rng.permutation(pool)[: round(share * pool.size)]] = True
    ret = np.flatnonzero(st["retired"])
    member[rng.permutation(ret)[: round(RETIREE_MEMBER_SHARE * ret.size)]] = True
    # The under-3 branch: exactly two full members and one probationary member.
    u3_pool = rng.permutation(np.flatnonzero(branch == under3))
    if u3_pool.size < 3:
        raise ValueError("the under-3 branch needs at least three staff")
    u3_members = u3_pool[:3]
    member[u3_members] = True

    idx = np.flatnonzero(member)
    birth = persons["birth"][st["pidx"][idx]]
    f = _frame(idx.size)
    f["pidx"] = st["pidx"][idx]
    f["person_no"] = st["staff_no"][idx]
    f["src"] = idx
    f["org"] = branch[idx]
    f["category"] = np.where(st["retired"][idx], RETIREE, IN_POST)
    # Long-standing members joined aged 22-40, full a year later; 5% of the in-post are probationary.
    age = rng.uniform(22, 40, idx.size)
    admit = birth + np.round(age * 365.25).astype(np.int64)
    admit = np.minimum(admit, today - rng.integers(400, 900, idx.size))
    probationary = (~st["retired"][idx] & ~st["counselor"][idx] & (rng.random(idx.size) < 0.05)) | np.isin(
        idx, u3_members[2:3]
    )
    probationary &= ~np.isin(idx, u3_members[:2])
    admit = np.where(probationary, today - rng.integers(20, 360, idx.size), admit)
    f["admit"] = admit
    f["apply"], f["activist"], f["candidate"] = _backward_chain(rng, admit)
    f["stage"][:] = FULL
    f["start"] = np.maximum(admit, st["hire"][idx])

    # Pipeline: young in-post non-members (not counsellors).
    age_now = (today - persons["birth"][st["pidx"]]).astype(np.int64) / 365.25
    free = ~member & ~st["retired"] & (age_now < 40)
    pool = rng.permutation(np.flatnonzero(free))
    pipe_frames = []
    taken = np.zeros(pool.size, dtype=bool)
    pool_lower = np.maximum.reduce([st["hire"][pool], add_years(persons["birth"][st["pidx"][pool]], 18),
                                    np.full(pool.size, today - 1100)])
    for stage, base in STAFF_PIPELINE:
        steps = {APPLICANT: 1, ACTIVIST: 2, CANDIDATE: 3}[stage]
        # Only staff who can have gone through the steps by today (a 发展对象 needs a year as activist
        # after applying, so not someone hired last month): _chain needs a feasible deadline.
        feasible = ~taken & (pool_lower + sum(g[0] for g in STAFF_GAPS[:steps]) <= today)
        pick = np.flatnonzero(feasible)[: plan.count(base)]
        taken[pick] = True
        chosen, lower, k = pool[pick], pool_lower[pick], pick.size
        dates = _chain(rng, lower, np.full(k, today), STAFF_GAPS[:steps])
        p = _frame(k)
        p["pidx"], p["person_no"], p["src"] = st["pidx"][chosen], st["staff_no"][chosen], chosen
        p["org"] = branch[chosen]
        p["category"][:], p["stage"][:] = IN_POST, stage
        for j, col in enumerate(("apply", "activist", "candidate")[:steps]):
            p[col] = dates[:, j]
        pipe_frames.append(p)
    # Staff whom HR will list as 中共党员 although they have no party record: any other non-member.
    in_pipeline = np.zeros(n, dtype=bool)
    in_pipeline[pool[taken]] = True
    hr_only_pool = rng.permutation(np.flatnonzero(~member & ~st["retired"] & ~in_pipeline))
    return concat([f, *pipe_frames]), hr_only_pool


def _student_people(plan: Plan, campus: Campus, branches: Branches) -> Frame:
    """Student members (graduated cohort and oldest current cohort) and the student pipeline."""
    rng = plan.rng("party-students")
    st, persons = campus.students, campus.persons
    today = plan.today
    birth18 = add_years(persons["birth"][st["pidx"]], 18)
    lower_all = np.maximum(st["enrol"], birth18)
    branch = branches.student[st["school_idx"], st["branch_local"]]
    taken = np.zeros(st["pidx"].size, dtype=bool)
    frames: list[Frame] = []

    def pick(
        c_pos: int, stage: str, base: int, deadline: np.ndarray, gaps: list[tuple[int, int]], steps: int
    ) -> None:
        ok = (st["cohort"] == plan.cohorts[c_pos]) & ~taken & np.isin(st["status"], ["在读", "毕业"])
        ok &= lower_all + sum(g[0] for g in gaps[:steps]) <= deadline
        chosen = rng.permutation(np.flatnonzero(ok))[: plan.count(base)]
        taken[chosen] = True
        dates = _chain(rng, lower_all[chosen], np.full(chosen.size, deadline), gaps[:steps])
        f = _frame(chosen.size)
        f["pidx"], f["person_no"], f["src"] = st["pidx"][chosen], st["student_no"][chosen], chosen
        f["org"] = branch[chosen]
        f["category"][:], f["stage"][:] = STUDENT, stage
        for j, col in enumerate(("apply", "activist", "candidate", "admit")[:steps]):
            f[col] = dates[:, j]
        if stage == PROBATIONARY:
            f["start"] = f["admit"]
        frames.append(f)

    grad = plan.graduation
    pick(0, PROBATIONARY, STUDENT_MEMBERS[0], grad - 40, GRADUATE_GAPS, 4)
    pick(1, PROBATIONARY, STUDENT_MEMBERS[1], today, STUDENT_GAPS, 4)
    for c_pos, stages in STUDENT_PIPELINE.items():
        for stage, base in stages:
            steps = {APPLICANT: 1, ACTIVIST: 2, CANDIDATE: 3}[stage]
            pick(c_pos, stage, base, today, STUDENT_GAPS, steps)
    out = concat(frames)
    # Graduates leave in June: their relationship is transferred out (a few are not: a conflict).
    grads = np.flatnonzero(st["cohort"][out["src"]] == plan.cohorts[0])
    out["out"][grads] = grad - rng.integers(0, 26, grads.size)
    out["status"][grads] = TRANSFERRED
    return out


# ----------------------------------------------------------------------------------------------


def build_party(plan: Plan, campus: Campus) -> Party:
    """Organisations, people, conflicts, groups and committees, transfers, dues and assessments."""
    rng = plan.rng("party")
    today = plan.today
    orgs, branches = build_orgs(plan)
    under3 = branches.under3
    staff_branch = _staff_branch(plan, campus, branches)
    staff_people, hr_only_pool = _staff_people(plan, campus, staff_branch, under3)
    people = concat([staff_people, _student_people(plan, campus, branches)])
    conflicts: list[tuple[str, str, int, str]] = []
    st = campus.staff
    is_staff = np.isin(people["category"], [IN_POST, RETIREE])
    member = np.isin(people["stage"], MEMBER_STAGES)

    # Graduated members still 正常 in their student branch (2%).
    grads = np.flatnonzero(people["status"] == TRANSFERRED)
    stay = rng.permutation(grads)[: max(1, round(0.02 * grads.size))]
    people["out"][stay] = NAT
    people["status"][stay] = ACTIVE
    people["gone"][stay] = plan.graduation
    for i in stay:
        conflicts.append(
            (
                "graduated_in_student_branch",
                "members",
                int(i),
                f"毕业于{plan.graduation}，仍在学生党支部{orgs['code'][people['org'][i]]}，党籍状态正常",
            )
        )

    # Probationary members kept on probation for more than a year.
    pool = np.flatnonzero(
        is_staff
        & member
        & (people["category"] == IN_POST)
        & (people["org"] != under3)
        & ~st["counselor"][np.where(is_staff, people["src"], 0)]
    )
    # Past the year of probation and the three months the higher committee has to approve 转正 (细则).
    overdue = rng.permutation(pool)[: plan.count(CONFLICT_COUNTS["probation_overdue"])]
    people["admit"][overdue] = today - rng.integers(480, 680, overdue.size)
    people["apply"][overdue], people["activist"][overdue], people["candidate"][overdue] = _backward_chain(
        rng, people["admit"][overdue]
    )
    people["stage"][overdue] = PROBATIONARY
    people["start"][overdue] = np.maximum(people["admit"][overdue], st["hire"][people["src"][overdue]])
    _finish_dates(rng, people, today)
    people["full"][overdue] = NAT
    people["stage"][overdue] = PROBATIONARY
    for i in overdue:
        conflicts.append(
            ("probation_overdue", "members", int(i), f"入党日期{people['admit'][i]}，至{today}仍为预备党员")
        )

    # Probation extended by the branch and recorded (延长预备期): full members whose 转正 came at the end of
    # the extension, and one member still within it (not overdue). Not conflicts: the rules must accept them.
    # And full members whose 转正日期 is not 入党 + one year with no extension recorded (a conflict).
    pool = rng.permutation(np.flatnonzero(
        is_staff & (people["stage"] == FULL) & (people["category"] == IN_POST) & (people["org"] != under3)
        & ~np.isin(np.arange(people["pidx"].size), overdue) & (people["admit"] < today - 800)
    ))
    n_ext, n_bad = plan.count(CONFLICT_COUNTS["full_date_inconsistent"] + 1), plan.count(
        CONFLICT_COUNTS["full_date_inconsistent"]
    )
    # the one still in an extended probation comes from a branch that keeps 3 full members without them
    full_here = np.bincount(people["org"][(people["stage"] == FULL) & (people["status"] == ACTIVE)],
                            minlength=int(people["org"].max()) + 1)
    roomy = pool[full_here[people["org"][pool]] >= 6]
    still = roomy[-1:]
    pool = pool[~np.isin(pool, still)]
    extended, inconsistent = pool[:n_ext], pool[n_ext : n_ext + n_bad]
    people["extension"][extended] = rng.choice([6, 12], extended.size)
    people["full"][extended] = add_months(people["admit"][extended], 12 + people["extension"][extended])
    people["admit"][still] = today - rng.integers(460, 540, still.size)  # past a year, within 1.5 years
    people["apply"][still], people["activist"][still], people["candidate"][still] = _backward_chain(
        rng, people["admit"][still]
    )
    people["start"][still] = np.maximum(people["admit"][still], st["hire"][people["src"][still]])
    people["extension"][still] = 12
    people["full"][still] = NAT
    people["stage"][still] = PROBATIONARY
    people["full"][inconsistent] = add_years(people["admit"][inconsistent], 1) + rng.integers(40, 200, n_bad)
    for i in inconsistent:
        conflicts.append(
            (
                "full_date_inconsistent",
                "members",
                int(i),
                f"入党日期{people['admit'][i]}，转正日期{people['full'][i]}，非预备期满之日且无延长预备期记录",
            )
        )

    # Recently retired members still in a 教工 branch.
    school_idx = {c: i for i, (c, _, _) in enumerate(codes.SCHOOLS)}
    ret_units = st["unit"][np.where(is_staff, people["src"], 0)]
    pool = np.flatnonzero(
        is_staff & member & (people["category"] == RETIREE) & np.isin(ret_units, list(school_idx))
    )
    pool = pool[np.argsort(-campus.persons["birth"][people["pidx"][pool]].astype(np.int64), kind="stable")]
    for i in pool[: plan.count(CONFLICT_COUNTS["retiree_in_inservice_branch"])]:
        people["org"][i] = branches.teacher[school_idx[ret_units[i]]][0]
        conflicts.append(
            (
                "retiree_in_inservice_branch",
                "members",
                int(i),
                f"人事系统状态退休，所在党支部{orgs['code'][people['org'][i]]}为教工党支部",
            )
        )

    # 发展对象 named less than a year after becoming activists. The short gap never reaches past today: a
    # recent activist's date moves back instead (still after applying), so that the record is
    # wrong in one way only, the one the conflict names, and no milestone lies in the future.
    pool = np.flatnonzero((people["stage"] == CANDIDATE) & (people["category"] == STUDENT))
    for i in rng.permutation(pool)[: plan.count(CONFLICT_COUNTS["activist_under_one_year"])]:
        gap = int(rng.integers(200, 331))
        people["activist"][i] = max(min(people["activist"][i], today - gap), people["apply"][i])
        people["candidate"][i] = min(people["activist"][i] + gap, today)
        conflicts.append(
            (
                "activist_under_one_year",
                "development",
                int(i),
                f"列为积极分子{people['activist'][i]}，列为发展对象{people['candidate'][i]}，不足一年",
            )
        )

    # Applicants younger than 18 on the application date (freshmen).
    people = _add_underage_applicants(plan, campus, branches, people, conflicts)

    # Staff that HR lists as 中共党员 with no party record.
    hr_only = hr_only_pool[: plan.count(CONFLICT_COUNTS["hr_member_no_party_record"])]

    _set_political_status(plan, campus, people, hr_only)
    _contacts(rng, people)
    orgs, people = _groups_and_committees(plan, orgs, people, branches)
    conflicts.append(("branch_under_3_full", "orgs", under3, f"党支部{orgs['code'][under3]}正式党员不足3人"))
    conflicts += _org_conflicts(plan, orgs, people, under3)
    for s in hr_only:
        conflicts.append(
            ("hr_member_no_party_record", "staff", int(s), "人事系统政治面貌为中共党员，党建系统无此人")
        )
    transfers = _transfers(plan, people)
    dues, below = _dues(plan, campus, people)
    for i in below:
        conflicts.append(
            (
                "dues_below_rate",
                "dues",
                int(i),
                f"实缴{dues['paid'][i] / 100:.2f}低于应缴{dues['due'][i] / 100:.2f}（基数{dues['base'][i] / 100:.2f}）",
            )
        )
    assessments = _assessments(plan, people)
    assessments, missing = _drop_assessment(plan, people, assessments)
    conflicts += missing
    return Party(orgs, people, transfers, dues, assessments, conflicts)


def _org_conflicts(plan: Plan, orgs: Frame, people: Frame, under3: int) -> list[tuple[str, str, int, str]]:
    """Organisation records that break the rules: a 党支部 whose 届满日期 was entered two years after its
    换届 (its term is three), a 支委会 of an even size (four) and a 党支部 with no secretary recorded."""
    rng = plan.rng("org-conflicts")
    full = np.isin(people["stage"], [FULL]) & (people["status"] == ACTIVE)
    n_full = np.bincount(people["org"][full], minlength=orgs["code"].size)
    branch = (orgs["kind"] == "党支部") & (np.arange(orgs["code"].size) != under3)
    committee = rng.permutation(np.flatnonzero(branch & (orgs["committee_size"] > 0) & (n_full >= 7)))[0]
    rest = rng.permutation(np.flatnonzero(branch & (np.arange(branch.size) != committee)))
    term, nosec = rest[0], rest[1]
    orgs["expiry"][term] = add_years(orgs["elected"][term : term + 1], 2)[0]
    mine = np.flatnonzero(full & (people["org"] == committee))
    people["committee"][mine] = False
    people["committee"][mine[:4]] = True
    orgs["committee_size"][committee] = 4
    orgs["secretary"][nosec] = -1
    code = orgs["code"]
    return [
        ("org_term_length", "orgs", int(term), f"党支部{code[term]}换届{orgs['elected'][term]}，届满{orgs['expiry'][term]}，任期两年"),
        ("committee_size_invalid", "orgs", int(committee), f"党支部{code[committee]}委员人数4，为偶数"),
        ("secretary_missing", "orgs", int(nosec), f"党支部{code[nosec]}未登记书记"),
    ]


def _drop_assessment(plan: Plan, people: Frame, a: Frame) -> tuple[Frame, list[tuple[str, str, int, str]]]:
    """One member in good standing with no 民主评议 result for a completed year (a conflict)."""
    rng = plan.rng("assessment-missing")
    current = (people["status"][a["row"]] == ACTIVE) & (a["year"] == plan.year0 - 2)
    drop = rng.permutation(np.flatnonzero(current))[:1]
    keep = ~np.isin(np.arange(a["row"].size), drop)
    conflicts = [("assessment_missing", "assessments", int(a["row"][i]), f"{a['year'][i]}年度无民主评议结果")
                 for i in drop]
    return take(a, np.flatnonzero(keep)), conflicts


def _add_underage_applicants(
    plan: Plan, campus: Campus, branches: Branches, people: Frame, conflicts: list[tuple[str, str, int, str]]
) -> Frame:
    """Freshmen who applied before turning 18 (a conflict), appended to the party people."""
    rng = plan.rng("party-underage")
    st, today = campus.students, plan.today
    birth18 = add_years(campus.persons["birth"][st["pidx"]], 18)
    listed = np.zeros(st["pidx"].size, dtype=bool)
    listed[people["src"][people["category"] == STUDENT]] = True
    ok = (
        (st["cohort"] == plan.cohorts[-1]) & (st["status"] == "在读") & ~listed & (birth18 > st["enrol"] + 10)
    )
    chosen = rng.permutation(np.flatnonzero(ok))[: plan.count(CONFLICT_COUNTS["applicant_under_18"])]
    f = _frame(chosen.size)
    f["pidx"], f["person_no"], f["src"] = st["pidx"][chosen], st["student_no"][chosen], chosen
    f["org"] = branches.student[st["school_idx"][chosen], st["branch_local"][chosen]]
    f["category"][:], f["stage"][:] = STUDENT, APPLICANT
    latest = np.minimum(birth18[chosen] - 1, today)
    f["apply"] = random_dates(rng, st["enrol"][chosen] + 1, np.maximum(latest, st["enrol"][chosen] + 1))
    f["talk"] = np.minimum(f["apply"] + rng.integers(3, 29, chosen.size), today)
    first = people["pidx"].size
    people = concat([people, f])
    for k in range(chosen.size):
        i = first + k
        conflicts.append(
            (
                "applicant_under_18",
                "development",
                i,
                f"出生日期{campus.persons['birth'][people['pidx'][i]]}，申请入党日期{people['apply'][i]}，未满18岁",
            )
        )
    return people


def _set_political_status(plan: Plan, campus: Campus, people: Frame, hr_only: np.ndarray) -> None:
    """GB/T 4762 status in HR and student records, consistent with the party stage."""
    rng = plan.rng("political")
    st, students = campus.staff, campus.students
    n = st["pidx"].size
    age = (plan.today - campus.persons["birth"][st["pidx"]]).astype(np.int64) / 365.25
    u = rng.random(n)
    st["political"] = np.select(
        [age < 28, u < 0.015, u < 0.03, u < 0.04, u < 0.05, u < 0.06],
        [np.where(u < 0.6, "03", "13"), "05", "10", "07", "08", "12"],
        "13",
    ).astype("U2")
    status = np.where(people["stage"] == FULL, "01", "02")
    member = np.isin(people["stage"], MEMBER_STAGES)
    staff_rows = member & np.isin(people["category"], [IN_POST, RETIREE])
    st["political"][people["src"][staff_rows]] = status[staff_rows]
    st["political"][hr_only] = "01"
    student_rows = member & (people["category"] == STUDENT)
    students["political"][people["src"][student_rows]] = status[student_rows]
    pipeline_students = ~member & (people["category"] == STUDENT)
    students["political"][people["src"][pipeline_students]] = "03"


def _contacts(rng: np.random.Generator, people: Frame) -> None:
    """培养联系人: a full member of the same branch, for activists and 发展对象."""
    n = people["pidx"].size
    people["contact"] = np.full(n, -1, dtype=np.int64)
    full = (people["stage"] == FULL) & (people["status"] == ACTIVE)
    needs = np.isin(people["stage"], [ACTIVIST, CANDIDATE])
    for org in np.unique(people["org"][needs]):
        pool = people["pidx"][full & (people["org"] == org)]
        rows = np.flatnonzero(needs & (people["org"] == org))
        if pool.size:
            people["contact"][rows] = pool[rng.integers(0, pool.size, rows.size)]


def _groups_and_committees(plan: Plan, orgs: Frame, people: Frame, branches: Branches) -> tuple[Frame, Frame]:
    """Secretaries, committees and 党小组 of each branch; 总支 and 党委 leadership; org dates."""
    rng = plan.rng("orgs")
    today = plan.today
    n_orgs = orgs["code"].size
    secretary = np.full(n_orgs, -1, dtype=np.int64)
    committee_size = np.zeros(n_orgs, dtype=np.int64)
    people["committee"] = np.zeros(people["pidx"].size, dtype=bool)
    people["group"] = np.full(people["pidx"].size, -1, dtype=np.int64)
    current = np.isin(people["stage"], MEMBER_STAGES) & (people["status"] == ACTIVE)
    full = current & (people["stage"] == FULL)
    branch_rows = np.flatnonzero(orgs["kind"] == "党支部")
    sizes = np.bincount(people["org"][current], minlength=n_orgs)[branch_rows]
    staff_type = np.isin(orgs["branch_type"][branch_rows], ["教工", "机关", "离退休"]) & (
        branch_rows != branches.under3
    )
    grouped = branch_rows[staff_type & (sizes >= 30)]
    if grouped.size == 0:
        grouped = branch_rows[staff_type][np.argmax(sizes[staff_type])][None]
    group_rows: list[tuple[str, str, int, str, str, int]] = []
    for b in branch_rows.tolist():
        rows_full = rng.permutation(np.flatnonzero(full & (people["org"] == b)))
        if orgs["branch_type"][b] == "学生":
            # Student branches are led by a counsellor.
            staff_full = rows_full[people["category"][rows_full] == IN_POST]
            rows_full = np.r_[staff_full, rows_full[people["category"][rows_full] != IN_POST]]
        if rows_full.size == 0:
            rows_full = np.flatnonzero(current & (people["org"] == b))
        secretary[b] = people["pidx"][rows_full[0]] if rows_full.size else -1
        if rows_full.size >= 7:
            committee_size[b] = int(rng.choice([3, 5]))  # an odd number, so that a vote decides
            people["committee"][rows_full[: committee_size[b]]] = True
        if b in grouped:
            members = rng.permutation(np.flatnonzero(current & (people["org"] == b)))
            n_groups = 2 if members.size < 45 else 3
            for g in range(n_groups):
                mine = members[g::n_groups]
                people["group"][mine] = n_orgs + len(group_rows)
                leaders = np.r_[mine[people["stage"][mine] == FULL], mine]
                code = orgs["code"][b][:-2] + f"{g + 1:02d}"
                group_rows.append(
                    (
                        code,
                        f"{orgs['name'][b]}第{chinese_number(g + 1)}党小组",
                        b,
                        orgs["branch_type"][b],
                        orgs["unit"][b],
                        int(people["pidx"][leaders[0]]),
                    )
                )
    # 总支 and 党委 secretaries: a full staff member from the branches below.
    for z in np.flatnonzero(orgs["kind"] == "党总支").tolist():
        children = np.flatnonzero(orgs["parent"] == z)
        staff_full = full & np.isin(people["org"], children) & np.isin(people["category"], [IN_POST, RETIREE])
        secretary[z] = people["pidx"][rng.choice(np.flatnonzero(staff_full))]
        committee_size[z] = 5 if staff_full.sum() >= 15 else 3
    top = np.flatnonzero(orgs["kind"] == "党委")[0]
    jiguan = np.flatnonzero(full & np.isin(people["org"], branches.jiguan) & (people["category"] == IN_POST))
    secretary[top] = people["pidx"][rng.choice(jiguan)]
    committee_size[top] = 9
    if group_rows:
        orgs = {
            "code": np.r_[orgs["code"], [r[0] for r in group_rows]],
            "name": np.r_[orgs["name"], [r[1] for r in group_rows]],
            "kind": np.r_[orgs["kind"], ["党小组"] * len(group_rows)],
            "parent": np.r_[orgs["parent"], [r[2] for r in group_rows]],
            "branch_type": np.r_[orgs["branch_type"], [r[3] for r in group_rows]],
            "unit": np.r_[orgs["unit"], [r[4] for r in group_rows]],
        }
        secretary = np.r_[secretary, [r[5] for r in group_rows]]
        committee_size = np.r_[committee_size, np.zeros(len(group_rows), dtype=np.int64)]
    n_all = orgs["code"].size
    kind = orgs["kind"]
    founded = np.where(
        kind == "党委", np.datetime64("2002-03-18"), today - rng.integers(5 * 365, 20 * 365, n_all)
    )
    founded = np.where(
        kind == "党小组", founded[np.maximum(orgs["parent"], 0)] + rng.integers(30, 900, n_all), founded
    )
    term_years = np.where(kind == "党委", 5, 3)
    elected = today - rng.integers(20, 3 * 365 - 40, n_all)
    elected = np.where(kind == "党委", today - rng.integers(200, 4 * 365, n_all), elected)
    elected = np.maximum(elected, founded)
    expiry = np.where(term_years == 5, add_years(elected, 5), add_years(elected, 3))
    no_term = kind == "党小组"
    orgs.update(
        {
            "secretary": secretary,
            "committee_size": committee_size,
            "founded": founded,
            "elected": np.where(no_term, NAT, elected),
            "expiry": np.where(no_term, NAT, expiry),
        }
    )
    return orgs, people


def _transfers(plan: Plan, people: Frame) -> Frame:
    """组织关系转接 of graduates who left in June."""
    rng = plan.rng("transfers")
    rows = np.flatnonzero(people["status"] == TRANSFERRED)
    rows = rows[np.lexsort((people["person_no"][rows], people["out"][rows]))]
    n = rows.size
    inside = rng.random(n) < 0.85
    dest = np.where(
        inside,
        np.array(codes.TRANSFER_IN_PROVINCE)[rng.integers(0, len(codes.TRANSFER_IN_PROVINCE), n)],
        np.array(codes.TRANSFER_OUT_OF_PROVINCE)[rng.integers(0, len(codes.TRANSFER_OUT_OF_PROVINCE), n)],
    )
    year = people["out"][rows].astype("datetime64[Y]").astype(np.int64) + 1970
    return {
        "letter_no": join("ZJ", year.astype(str), np.strings.zfill((np.arange(n) + 1).astype(str), 4)),
        "row": rows,
        "from_org": people["org"][rows],
        "to_org_name": dest,
        "kind": np.where(inside, "省内", "跨省"),
        "out": people["out"][rows],
        "receipt": np.minimum(people["out"][rows] + rng.integers(5, 31, n), plan.today),
    }


RATE_IN_POST = ((300000, 5), (500000, 10), (1000000, 15))  # (upper bound in cents, per mille); above: 20
RATE_RETIRED = ((500000, 5),)  # above: 10


def dues_rate(base_cents: np.ndarray, retired: np.ndarray) -> np.ndarray:
    """Dues rate in per mille of the monthly base (bands include their upper bound)."""
    in_post = np.select([base_cents <= b for b, _ in RATE_IN_POST], [r for _, r in RATE_IN_POST], 20)
    pension = np.where(base_cents <= RATE_RETIRED[0][0], 5, 10)
    return np.where(retired, pension, in_post)


def _dues(plan: Plan, campus: Campus, people: Frame) -> tuple[Frame, np.ndarray]:
    """One row per member per month of membership; students pay 0.20 yuan."""
    rng = plan.rng("dues")
    today = plan.today
    member = np.flatnonzero(np.isin(people["stage"], MEMBER_STAGES))
    first_month = plan.window_start.astype("datetime64[M]")
    last_month = today.astype("datetime64[M]")
    start = np.maximum(people["start"][member].astype("datetime64[M]"), first_month)
    end = np.where(np.isnat(people["out"][member]), last_month, people["out"][member].astype("datetime64[M]"))
    # Graduates who stayed on the books stopped paying when they left campus.
    gone = people["gone"][member]
    end = np.where(np.isnat(gone), end, np.minimum(end, gone.astype("datetime64[M]")))
    count = np.maximum((end - start).astype(np.int64) + 1, 0)
    row = np.repeat(member, count)
    month = np.repeat(start, count) + ragged_arange(count)
    staff = np.isin(people["category"][row], [IN_POST, RETIREE])
    retired = people["category"][row] == RETIREE
    src = np.where(staff, people["src"][row], 0)
    years = month.astype("datetime64[Y]").astype(np.int64) + 1970 - (plan.year0 - 3)
    growth = np.where(retired, 1.02, 1.03) ** years
    base = np.where(staff, np.round(campus.staff["income"][src] * growth).astype(np.int64), 0)
    rate = dues_rate(base, retired)
    base = np.where(staff & (base * rate % 1000 == 500), base + 1, base)  # avoid half-cent ties
    due = np.where(staff, (base * rate + 500) // 1000, 20)
    paid = due.copy()
    n = row.size
    day = month.astype("datetime64[D]") + rng.integers(0, 28, n)
    late = rng.random(n) < 0.12
    paid_on = np.minimum(np.where(late, day + rng.integers(28, 76, n), day), today)
    below = np.flatnonzero(staff)
    below = np.sort(rng.permutation(below)[: max(1, round(0.01 * below.size))])
    paid[below] = np.floor(due[below] * rng.uniform(0.4, 0.8, below.size)).astype(np.int64)
    order = np.lexsort((people["person_no"][row], people["org"][row], month))
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    dues = {
        "row": row[order],
        "month": month[order],
        "base": base[order],
        "has_base": staff[order],
        "rate": rate[order],
        "due": due[order],
        "paid": paid[order],
        "paid_on": paid_on[order],
    }
    return dues, np.sort(inverse[below])


def _assessments(plan: Plan, people: Frame) -> Frame:
    """民主评议 each year: at most a third 优秀 per branch, a few 基本合格 and 不合格."""
    rng = plan.rng("assessments")
    frames = []
    member = np.isin(people["stage"], MEMBER_STAGES)
    for year in range(plan.year0 - 3, plan.year0):
        held = np.datetime64(f"{year + 1}-01-15", "D")
        ok = member & (people["admit"] <= np.datetime64(f"{year}-12-31")) & (people["start"] <= held)
        ok &= np.isnat(people["out"]) | (people["out"] > held)
        rows = np.flatnonzero(ok)
        org = people["org"][rows]
        order = np.lexsort((rng.random(rows.size), org))
        rows, org = rows[order], org[order]
        starts = np.r_[0, np.flatnonzero(np.diff(org)) + 1]
        sizes = np.diff(np.r_[starts, rows.size])
        rank = np.arange(rows.size) - np.repeat(starts, sizes)
        size = np.repeat(sizes, sizes)
        share = np.repeat(rng.uniform(0.15, 1 / 3, sizes.size), sizes)
        excellent = rank < np.floor(size * share)
        u = rng.random(rows.size)
        grade = np.where(
            excellent, "优秀", np.where(u < 0.003, "不合格", np.where(u < 0.018, "基本合格", "合格"))
        )
        frames.append({"row": rows, "year": np.full(rows.size, year), "org": org, "grade": grade})
    out = concat(frames)
    order = np.lexsort((people["person_no"][out["row"]], out["org"], out["year"]))
    return take(out, order)
