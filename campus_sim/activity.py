"""三会一课 and 主题党日 with attendance (智慧党建 app), and the online learning platform.

Branches hold their meetings on schedule; a few "lax" branches skip some. Attendance lists the
members of the branch (or committee, or 党小组) on the meeting date.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from campus_sim import codes
from campus_sim.campus import Campus, Frame, Plan, concat, take
from campus_sim.fmt import join, numbered
from campus_sim.party import ACTIVE, ACTIVIST, CANDIDATE, FULL, IN_POST, MEMBER_STAGES, RETIREE, Party

MONTHLY = ("主题党日", "支委会")
GROUP_MEETING = "党小组会"
ASSEMBLY, LECTURE, LIFE = "支部党员大会", "党课", "组织生活会"
LAX_SHARE, LAX_SKIP = 0.12, 0.2
START_TIMES = np.array([14 * 60 + 30, 15 * 60, 16 * 60, 19 * 60 + 30])
SECOND = np.timedelta64(1, "s")


@dataclass
class Activities:
    meetings: Frame
    attendance: Frame
    # (kind, person row, first month "YYYY-MM", detail): members built to break a rule (a conflict)
    conflicts: list[tuple[str, int, str, str]] = field(default_factory=list)


def _schedule(plan: Plan, rng: np.random.Generator, org: int, types: list[str], lax: bool) -> Frame:
    """Meetings of one organisation over the simulated window."""
    months = np.arange(plan.window_start.astype("datetime64[M]"), plan.today.astype("datetime64[M]") + 1)
    moy = months.astype(np.int64) % 12  # 0 = January
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    pieces = []
    for kind in types:
        if kind in (*MONTHLY, GROUP_MEETING):
            held = np.ones(months.size, dtype=bool)
        elif kind == ASSEMBLY:
            held = np.isin(moy, [2, 5, 8, 11])
        elif kind == LECTURE:
            held = np.isin(moy, [0, 3, 6, 9])
        else:  # 组织生活会 each January, for the year before
            held = (moy == 0) & (year > plan.year0 - 3)
        if lax:
            held &= rng.random(months.size) >= LAX_SKIP
        m = months[held]
        day = m.astype("datetime64[D]") + rng.integers(0, 28, m.size)
        minute = START_TIMES[rng.integers(0, START_TIMES.size, m.size)]
        length = {LIFE: (150, 181), LECTURE: (80, 121)}.get(kind, (50, 121))
        start = day.astype("datetime64[s]") + minute * 60 * SECOND
        pieces.append(
            {
                "org": np.full(m.size, org),
                "type": np.full(m.size, kind),
                "start": start,
                "end": start + rng.integers(*length, m.size) * 60 * SECOND,
            }
        )
    out = concat(pieces)
    return take(out, np.flatnonzero(out["start"].astype("datetime64[D]") <= plan.today))


def _titles(rng: np.random.Generator, meetings: Frame) -> np.ndarray:
    """Meeting titles as the app shows them (``2024年3月主题党日：…``)."""
    start = meetings["start"]
    year = (start.astype("datetime64[Y]").astype(np.int64) + 1970).astype(str)
    month = (start.astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(str)
    quarter = ((start.astype("datetime64[M]").astype(np.int64) % 12) // 3 + 1).astype(str)
    last_year = (start.astype("datetime64[Y]").astype(np.int64) + 1969).astype(str)
    n = start.size
    theme = np.array(codes.THEME_DAY_TOPICS)[rng.integers(0, len(codes.THEME_DAY_TOPICS), n)]
    lecture = np.array(codes.PARTY_LECTURE_TOPICS)[rng.integers(0, len(codes.PARTY_LECTURE_TOPICS), n)]
    ym = join(year, "年", month, "月")
    kind = meetings["type"]
    return np.select(
        [kind == "主题党日", kind == "支委会", kind == GROUP_MEETING, kind == ASSEMBLY, kind == LECTURE],
        [
            join(ym, "主题党日：", theme),
            join(ym, "支委会"),
            join(ym, "党小组会"),
            join(year, "年第", quarter, "季度支部党员大会"),
            join("党课：", lecture),
        ],
        join(last_year, "年度组织生活会"),
    )


def build_activities(plan: Plan, campus: Campus, party: Party) -> Activities:
    """Every organisation's meetings (党小组会 for 党小组), numbered in time order, and attendance."""
    rng = plan.rng("activity")
    orgs, pp = party.orgs, party.people
    branches = np.flatnonzero(orgs["kind"] == "党支部")
    n_lax = max(1, round(LAX_SHARE * branches.size)) if branches.size >= 3 else 0
    lax = set(rng.permutation(branches)[:n_lax].tolist())
    frames = []
    for b in branches.tolist():
        types = ["主题党日", ASSEMBLY, LECTURE, LIFE] + (["支委会"] if orgs["committee_size"][b] > 0 else [])
        frames.append(_schedule(plan, rng, b, types, b in lax))
    for g in np.flatnonzero(orgs["kind"] == "党小组").tolist():
        frames.append(_schedule(plan, rng, g, [GROUP_MEETING], orgs["parent"][g] in lax))
    meetings = concat(frames)
    order = np.lexsort((meetings["type"], orgs["code"][meetings["org"]], meetings["start"]))
    meetings = take(meetings, order)
    n = meetings["org"].size
    meetings["meeting_id"] = numbered("MT", n, 7)
    meetings["title"] = _titles(rng, meetings)
    meetings["place"] = np.array(codes.MEETING_PLACES)[rng.integers(0, len(codes.MEETING_PLACES), n)]
    # 党课 are given by the branch secretary, or now and then by another full staff member.
    lecture = meetings["type"] == LECTURE
    secretaries = orgs["secretary"][meetings["org"]]
    staff_full = pp["pidx"][(pp["stage"] == "正式党员") & (pp["category"] != "学生")]
    guest = staff_full[rng.integers(0, staff_full.size, n)]
    lecturer_pidx = np.where((rng.random(n) < 0.7) & (secretaries >= 0), secretaries, guest)
    meetings["lecturer"] = np.where(lecture, campus.persons["name"][lecturer_pidx], "")
    latest = plan.today.astype("datetime64[s]") + 86399 * SECOND
    meetings["updated"] = np.minimum(meetings["end"] + rng.integers(600, 3 * 86400, n) * SECOND, latest)
    attendance = _attendance(plan, rng, party, meetings)
    return Activities(meetings, attendance, _no_organisation_life(plan, party, meetings, attendance))


GAP_MONTHS = 7


def _no_organisation_life(plan: Plan, party: Party, meetings: Frame, att: Frame) -> list[tuple[str, int, str, str]]:
    """A member absent from every meeting for seven months running, from March of last year (党章 第九条:
    six months without organisation life): a conflict. Attended the month before and the month after."""
    rng = plan.rng("organisation-life")
    pp = party.people
    first = np.datetime64(f"{plan.year0 - 1}-03", "M")
    after = first + GAP_MONTHS
    month = meetings["start"][att["meeting"]].astype("datetime64[M]")
    present = att["status"] == "出席"
    attended = lambda m: set(att["row"][present & (month == m)].tolist())  # noqa: E731
    ok = ((pp["stage"] == FULL) & (pp["status"] == ACTIVE) & (pp["category"] == IN_POST)
          & (pp["start"] < (first - 2).astype("datetime64[D]")))
    around = attended(first - 1) & attended(after)
    pool = [r for r in rng.permutation(np.flatnonzero(ok)).tolist() if r in around]
    if not pool:
        return []
    row = pool[0]
    gap = (att["row"] == row) & (month >= first) & (month < after)
    att["status"][gap] = "缺席"
    att["checkin"][gap] = np.datetime64("NaT", "s")
    months = np.arange(first, after).astype(str)
    return [("organisation_life_gap", row, str(first),
             f"{GAP_MONTHS}个月未参加组织生活（{months[0]}至{months[-1]}）")]


def _attendance(plan: Plan, rng: np.random.Generator, party: Party, meetings: Frame) -> Frame:
    """One row per member expected at each meeting (committee only for 支委会), with a status."""
    orgs, pp = party.orgs, party.people
    member = np.isin(pp["stage"], MEMBER_STAGES)
    far_future = np.datetime64("2100-01-01", "D")
    end = np.where(np.isnat(pp["out"]), far_future, pp["out"])
    frames = []
    for org in np.unique(meetings["org"]).tolist():
        rows = np.flatnonzero(meetings["org"] == org)
        if orgs["kind"][org] == "党小组":
            people = np.flatnonzero(member & (pp["group"] == org))
        else:
            people = np.flatnonzero(member & (pp["org"] == org))
        if not people.size:
            continue
        day = meetings["start"][rows].astype("datetime64[D]")
        present = (pp["start"][people][None, :] <= day[:, None]) & (day[:, None] < end[people][None, :])
        committee_only = meetings["type"][rows] == "支委会"
        present &= ~committee_only[:, None] | pp["committee"][people][None, :]
        m_idx, p_idx = np.nonzero(present)
        frames.append({"meeting": rows[m_idx], "row": people[p_idx]})
    att = concat(frames)
    n = att["row"].size
    retired = pp["category"][att["row"]] == RETIREE
    u = rng.random(n)
    status = np.where(
        u < np.where(retired, 0.80, 0.92), "出席", np.where(u < np.where(retired, 0.95, 0.98), "请假", "缺席")
    )
    # Graduates still on the books no longer come.
    gone = meetings["start"][att["meeting"]].astype("datetime64[D]") > pp["gone"][att["row"]]
    status = np.where(gone, "缺席", status)
    checkin = meetings["start"][att["meeting"]] - rng.integers(0, 900, n) * SECOND
    att["status"] = status
    att["checkin"] = np.where(status == "出席", checkin, np.datetime64("NaT", "s"))
    att["updated"] = meetings["updated"][att["meeting"]]
    order = np.lexsort((pp["person_no"][att["row"]], att["meeting"]))
    return take(att, order)


# ----------------------------------------------------------------------------------------------
# Online learning


def build_learning(plan: Plan, party: Party) -> tuple[Frame, Frame]:
    """Course catalogue and study records of members and activists."""
    rng = plan.rng("learning")
    today = plan.today
    n_courses = min(600, plan.count(120, minimum=9))
    kinds = np.array(["在线课程", "微党课", "网络讲座"])
    kind = kinds[rng.choice(3, n_courses, p=[0.5, 0.3, 0.2])]
    kind[:3] = kinds
    topics = np.array(codes.LEARNING_TOPICS)[rng.integers(0, len(codes.LEARNING_TOPICS), n_courses)]
    prefix = np.select([kind == "微党课", kind == "网络讲座"], ["微党课：", "专题讲座："], "")
    base_title = join(prefix, topics)
    order = np.lexsort((np.arange(n_courses), base_title))
    sorted_title = base_title[order]
    starts = np.r_[0, np.flatnonzero(sorted_title[1:] != sorted_title[:-1]) + 1]
    lecture_no = np.empty(n_courses, dtype=np.int64)
    lecture_no[order] = np.arange(n_courses) - np.repeat(starts, np.diff(np.r_[starts, n_courses])) + 1
    title = np.where(
        lecture_no > 1,
        join(base_title, "（第", lecture_no.astype(str), "讲）"),
        base_title,
    )
    hours = np.select(
        [kind == "在线课程", kind == "微党课"],
        [
            np.array([1, 1.5, 2, 3, 4, 6])[rng.integers(0, 6, n_courses)],
            np.array([0.25, 0.5])[rng.integers(0, 2, n_courses)],
        ],
        np.array([1, 1.5, 2, 2.5])[rng.integers(0, 4, n_courses)],
    )
    first = (plan.window_start - 365).astype("datetime64[s]")
    span = int((today - 7 - (plan.window_start - 365)).astype(np.int64)) * 86400
    published = np.sort(first + rng.integers(0, span, n_courses) * SECOND)
    courses = {
        "course_id": numbered("LC", n_courses, 5),
        "title": title,
        "kind": kind,
        "hours": hours,
        "published": published,
    }

    pp = party.people
    member = np.isin(pp["stage"], MEMBER_STAGES)
    users = np.flatnonzero(member | np.isin(pp["stage"], [ACTIVIST, CANDIDATE]))
    window = plan.window_start
    begin = np.where(member[users], pp["start"][users], pp["activist"][users])
    begin = np.maximum(begin, window)
    end = np.where(np.isnat(pp["out"][users]), today, pp["out"][users])
    gone = pp["gone"][users]
    end = np.where(np.isnat(gone), end, np.minimum(end, gone))
    share = np.clip((end - begin).astype(np.int64) / (today - window).astype(np.int64), 0, 1)
    rate = np.select([pp["category"][users] == RETIREE, pp["category"][users] == "学生"], [10.0, 20.0], 30.0)
    rate = np.where(member[users], rate, 12.0)
    k = rng.poisson(rate * share)
    user = np.repeat(users, k)
    u_begin = np.repeat(begin, k).astype("datetime64[s]")
    u_end = np.repeat(end, k).astype("datetime64[s]") + 20 * 3600 * SECOND
    course = rng.integers(0, n_courses, user.size)
    lower = np.maximum(u_begin, published[course])
    ok = lower < u_end
    user, course, lower, u_end = user[ok], course[ok], lower[ok], u_end[ok]
    _, first_pair = np.unique(user.astype(np.int64) * n_courses + course, return_index=True)
    keep = np.sort(first_pair)
    user, course, lower, u_end = user[keep], course[keep], lower[keep], u_end[keep]
    n = user.size
    room = (u_end - lower).astype(np.int64)
    started = lower + np.floor(rng.random(n) * room).astype(np.int64) * SECOND
    completed = rng.random(n) < 0.65
    progress = np.where(completed, 100, rng.integers(5, 96, n))
    minutes = np.maximum(1, np.round(hours[course] * 60 * progress / 100 * rng.uniform(0.85, 1.3, n))).astype(
        np.int64
    )
    active_room = np.minimum((u_end - started).astype(np.int64), 14 * 86400)
    last_active = (
        started + np.maximum(minutes * 60, np.floor(rng.random(n) * active_room).astype(np.int64)) * SECOND
    )
    last_active = np.minimum(last_active, u_end)
    last_active = np.maximum(last_active, started)
    quiz = np.where(
        completed & (kind[course] != "网络讲座"), np.clip(np.round(rng.normal(86, 8, n)), 40, 100), -1
    ).astype(np.int64)
    order = np.lexsort((pp["person_no"][user], started))
    records = {
        "row": user[order],
        "course": course[order],
        "started": started[order],
        "last_active": last_active[order],
        "minutes": minutes[order],
        "progress": progress[order].astype(np.int64),
        "quiz": quiz[order],
        "completed": completed[order],
    }
    records["record_id"] = numbered("SR", n, 8)
    return courses, records
