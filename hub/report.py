"""The party-work report: one self-contained HTML page of charts over the marts.

``build_report(con, out_dir)`` reads the ``marts`` schema and writes ``out_dir/index.html`` — by default
``var/report/index.html`` (:func:`report_dir`; ``HUB_VAR_DIR`` moves ``var``). Every chart is inline SVG
drawn here with plain string templates: no script, no stylesheet or font from the network, nothing to
install, so the page reads the same offline, from a file share or attached to a mail. Text uses a CJK font
stack (Noto Sans CJK SC, Source Han Sans SC, PingFang SC, Microsoft YaHei, WenQuanYi …) and falls back to the
system's sans-serif, so Chinese shows with whatever CJK font the reader's machine has.

Sections: key figures; member structure; the development funnel; 三会一课 and 主题党日 compliance as a heat
map by branch and month; the 党员考核 distribution; learning completion per course and per term; and short
lists of what needs attention (organisation warnings, overdue development steps, dues arrears, students
flagged by the screen).
"""

from __future__ import annotations

import math
import os
from datetime import date
from html import escape
from pathlib import Path

import duckdb

from hub.neutralise import neutralise
from hub.settings import Settings

FONT_STACK = ('"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "PingFang SC", '
              '"Hiragino Sans GB", "Microsoft YaHei", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", '
              '"Droid Sans Fallback", "Noto Sans", Arial, sans-serif')
RED, GOLD, INK, MUTED, GRID = "#c8102e", "#e0a100", "#1f2933", "#6b7785", "#e4e7eb"
PALETTE = ("#c8102e", "#e0a100", "#2f6f9f", "#3a9d5d", "#8e5ea2", "#e07b39", "#5f7d8c", "#b5525c", "#7a9a3a")
STAGE_COLORS = {"applicant": "#f4c7a1", "activist": "#efa26a", "candidate": "#e07b39", "probationary": "#d9473b",
                "full": "#b0101f"}
RATING_COLORS = {"excellent": "#b0101f", "good": "#e07b39", "qualified": "#f2c14e", "unqualified": "#5f6b7a",
                 "not_assessed": "#d5dae0"}


def report_dir(settings: Settings | None = None) -> Path:
    """Where the report goes by default: ``<var>/report``."""
    return (settings or Settings.from_env()).var_dir / "report"


# ----------------------------------------------------------------------------------------- helpers


def _t(value: object) -> str:
    """Text for the page: HTML-escaped, and neutralised if a spreadsheet would run it as a formula
    (the report is opened in Excel/WPS too; hub/neutralise.py)."""
    return escape("" if value is None else str(neutralise(value)))


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = ?",
                       [table]).fetchone()[0] > 0


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{_t(label)}">{body}</svg>')


def _text(x: float, y: float, s: object, *, size: int = 12, anchor: str = "start", color: str = INK,
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{color}" '
            f'font-weight="{weight}">{_t(s)}</text>')


def _empty(message: str = "暂无数据") -> str:
    return f'<p class="empty">{_t(message)}</p>'


# ----------------------------------------------------------------------------------------- charts


def hbar_chart(items: list[tuple[str, float, str]], *, width: int = 400, color: str = RED,
               label_width: int = 96, note_width: int = 70, title: str = "") -> str:
    """Horizontal bars: (label, value, text shown after the bar)."""
    if not items:
        return _empty()
    bar_h, gap, top = 18, 8, 4
    height = top + len(items) * (bar_h + gap)
    top_value = max(v for _, v, _ in items) or 1
    span = width - label_width - note_width
    body = []
    for i, (label, value, note) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = max(1.5, span * value / top_value) if value else 0
        body.append(_text(label_width - 8, y + 13, label, anchor="end", size=12))
        body.append(f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3" fill="{color}">'
                    f'<title>{_t(label)}: {_t(note)}</title></rect>')
        body.append(_text(label_width + w + 6, y + 13, note, size=11, color=MUTED))
    return _svg(width, height, "".join(body), title)


def donut_chart(items: list[tuple[str, float]], *, size: int = 170, title: str = "",
                colors: tuple[str, ...] = PALETTE) -> str:
    """A donut with a legend to its right; shares are of the sum of the values."""
    total = sum(v for _, v in items)
    if not total:
        return _empty()
    cx = cy = size / 2
    r_out, r_in = size / 2 - 4, size / 2 - 34
    body, angle = [], -math.pi / 2
    for i, (label, value) in enumerate(items):
        sweep = 2 * math.pi * value / total
        color = colors[i % len(colors)]
        if sweep >= 2 * math.pi - 1e-9:
            body.append(f'<circle cx="{cx}" cy="{cy}" r="{(r_out + r_in) / 2}" fill="none" stroke="{color}" '
                        f'stroke-width="{r_out - r_in}"><title>{_t(label)}: {_num(value)}</title></circle>')
        elif sweep > 0:
            a0, a1 = angle, angle + sweep
            large = 1 if sweep > math.pi else 0
            pts = [(cx + r_out * math.cos(a0), cy + r_out * math.sin(a0)),
                   (cx + r_out * math.cos(a1), cy + r_out * math.sin(a1)),
                   (cx + r_in * math.cos(a1), cy + r_in * math.sin(a1)),
                   (cx + r_in * math.cos(a0), cy + r_in * math.sin(a0))]
            d = (f"M{pts[0][0]:.2f},{pts[0][1]:.2f} A{r_out},{r_out} 0 {large} 1 {pts[1][0]:.2f},{pts[1][1]:.2f} "
                 f"L{pts[2][0]:.2f},{pts[2][1]:.2f} A{r_in},{r_in} 0 {large} 0 {pts[3][0]:.2f},{pts[3][1]:.2f} Z")
            body.append(f'<path d="{d}" fill="{color}" stroke="#fff" stroke-width="1.5">'
                        f'<title>{_t(label)}: {_num(value)} ({_pct(value / total, 1)})</title></path>')
        angle += sweep
    body.append(_text(cx, cy - 2, _num(total), size=22, anchor="middle", weight="bold"))
    body.append(_text(cx, cy + 16, "人", size=11, anchor="middle", color=MUTED))
    legend_x = size + 14
    for i, (label, value) in enumerate(items):
        y = 18 + i * 22
        body.append(f'<rect x="{legend_x}" y="{y - 10}" width="12" height="12" rx="2" '
                    f'fill="{colors[i % len(colors)]}"/>')
        body.append(_text(legend_x + 18, y, f"{label}  {_num(value)} · {_pct(value / total)}", size=12))
    height = max(size, 18 + len(items) * 22)
    return _svg(size + 190, height, "".join(body), title)


def funnel_chart(stages: list[tuple[str, str, int, int]], *, width: int = 560, title: str = "") -> str:
    """Centred bars narrowing from the first stage: (code, label, people, overdue)."""
    if not stages:
        return _empty()
    bar_h, gap = 40, 8
    top_value = max(p for _, _, p, _ in stages) or 1
    span = width - 240
    body = []
    for i, (code, label, people, overdue) in enumerate(stages):
        y = i * (bar_h + gap)
        w = max(24, span * people / top_value)
        x = 110 + (span - w) / 2
        body.append(_text(100, y + 25, label, anchor="end", size=13, weight="bold"))
        body.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="4" '
                    f'fill="{STAGE_COLORS.get(code, RED)}"><title>{_t(label)}: {people}</title></rect>')
        body.append(_text(110 + span / 2, y + 26, _num(people), anchor="middle", size=15, weight="bold",
                          color="#fff" if code in ("candidate", "probationary", "full") else INK))
        if overdue:
            body.append(_text(width - 120, y + 25, f"⚠ 逾期 {overdue}", size=12, color=RED, weight="bold"))
    return _svg(width, len(stages) * (bar_h + gap), "".join(body), title)


def _heat_color(value: float | None) -> str:
    """0 red → 0.5 amber → 1 green; None grey."""
    if value is None:
        return "#eef0f3"
    stops = ((0.0, (215, 48, 39)), (0.5, (253, 204, 92)), (1.0, (35, 139, 69)))
    for (v0, c0), (v1, c1) in zip(stops, stops[1:], strict=False):
        if value <= v1:
            f = (value - v0) / (v1 - v0)
            r, g, b = (round(a + (b_ - a) * f) for a, b_ in zip(c0, c1, strict=True))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#238b45"


def heatmap(rows: list[str], cols: list[str], cells: dict[tuple[str, str], tuple[float | None, str]], *,
            label_width: int = 200, cell: int = 22, title: str = "") -> str:
    """rows × cols grid; cells[(row, col)] = (value 0..1 or None, tooltip)."""
    if not rows or not cols:
        return _empty()
    top = 46
    width = label_width + len(cols) * (cell + 2) + 10
    height = top + len(rows) * (cell + 2) + 34
    body = []
    for j, col in enumerate(cols):
        x = label_width + j * (cell + 2) + cell / 2
        if col.endswith("-01") or j == 0:   # a year label at January (and at the start)
            body.append(_text(x - cell / 2, 14, col[:4], size=11, color=INK, weight="bold"))
        body.append(_text(x, 36, str(int(col[5:7])), size=10, anchor="middle", color=MUTED))
    for i, row in enumerate(rows):
        y = top + i * (cell + 2)
        body.append(_text(label_width - 8, y + cell / 2 + 4, row, anchor="end", size=12))
        for j, col in enumerate(cols):
            value, tip = cells.get((row, col), (None, "无要求"))
            x = label_width + j * (cell + 2)
            body.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="3" fill="{_heat_color(value)}">'
                        f'<title>{_t(row)} {_t(col)}: {_t(tip)}</title></rect>')
    ly = top + len(rows) * (cell + 2) + 14
    for k, (v, label) in enumerate(((0.0, "未达标"), (0.5, "部分达标"), (1.0, "全部达标"), (None, "无要求/未到期"))):
        x = label_width + k * 110
        body.append(f'<rect x="{x}" y="{ly}" width="14" height="14" rx="2" fill="{_heat_color(v)}"/>')
        body.append(_text(x + 20, ly + 12, label, size=11, color=MUTED))
    return _svg(width, height, "".join(body), title)


def stacked_bars(rows: list[tuple[str, list[tuple[str, str, float]]]], *, width: int = 560,
                 colors: dict[str, str] = RATING_COLORS, label_width: int = 150, title: str = "") -> str:
    """100% stacked horizontal bars: (row label, [(code, name, value)]); a legend below."""
    if not rows:
        return _empty()
    bar_h, gap = 22, 10
    span = width - label_width - 20
    body, legend = [], {}
    for i, (label, parts) in enumerate(rows):
        y = i * (bar_h + gap)
        total = sum(v for _, _, v in parts) or 1
        body.append(_text(label_width - 8, y + 15, label, anchor="end", size=12))
        x = float(label_width)
        for code, name, value in parts:
            w = span * value / total
            legend[code] = name
            if w <= 0:
                continue
            color = colors.get(code, PALETTE[len(legend) % len(PALETTE)])
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}">'
                        f'<title>{_t(label)} {_t(name)}: {_num(value)} ({_pct(value / total)})</title></rect>')
            if w > 30:
                body.append(_text(x + w / 2, y + 15, _pct(value / total), anchor="middle", size=11,
                                  color="#fff" if code in ("excellent", "good", "unqualified") else INK))
            x += w
    ly = len(rows) * (bar_h + gap) + 6
    for k, (code, name) in enumerate(legend.items()):
        x = label_width + k * 92
        body.append(f'<rect x="{x}" y="{ly}" width="12" height="12" rx="2" fill="{colors.get(code, MUTED)}"/>')
        body.append(_text(x + 17, ly + 11, name, size=11, color=MUTED))
    return _svg(width, ly + 22, "".join(body), title)


def line_chart(x_labels: list[str], series: list[tuple[str, list[float | None], str]], *, width: int = 560,
               height: int = 230, y_max: float = 1.0, percent: bool = True, title: str = "") -> str:
    """Lines over categorical x; values 0..y_max."""
    if not x_labels or not series:
        return _empty()
    left, right, top, bottom = 64, 16, 34, 64
    pw, ph = width - left - right, height - top - bottom
    step = pw / max(1, len(x_labels) - 1)
    body = []
    for k in range(5):
        v = y_max * k / 4
        y = top + ph - ph * k / 4
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y + 4, _pct(v) if percent else _num(v), anchor="end", size=10, color=MUTED))
    for i, label in enumerate(x_labels):
        x = left + i * step
        body.append(f'<text x="{x:.1f}" y="{top + ph + 14}" font-size="10" fill="{MUTED}" text-anchor="end" '
                    f'transform="rotate(-35 {x:.1f} {top + ph + 14})">{_t(label)}</text>')
    for name, values, color in series:
        pts = [(left + i * step, top + ph - ph * min(v, y_max) / y_max) for i, v in enumerate(values) if v is not None]
        if len(pts) > 1:
            body.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}" fill="none" '
                        f'stroke="{color}" stroke-width="2.5" stroke-linejoin="round"/>')
        for (x, y), v in zip(pts, [v for v in values if v is not None], strict=True):
            tip = _pct(v, 1) if percent else _num(v, 1)
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"><title>{_t(name)}: {tip}'
                        f'</title></circle>')
    for k, (name, _, color) in enumerate(series):
        x = left + k * 160
        body.append(f'<rect x="{x}" y="8" width="14" height="4" fill="{color}"/>')
        body.append(_text(x + 19, 14, name, size=11, color=MUTED))
    return _svg(width, height, "".join(body), title)


# ----------------------------------------------------------------------------------------- page


def _card(title: str, body: str, *, wide: bool = False, note: str = "") -> str:
    cls = "card wide" if wide else "card"
    note_html = f'<p class="note">{_t(note)}</p>' if note else ""
    return f'<section class="{cls}"><h2>{_t(title)}</h2>{body}{note_html}</section>'


def _table(headers: list[str], rows: list[list[object]], *, limit: int = 8) -> str:
    if not rows:
        return '<p class="ok">✓ 无</p>'
    head = "".join(f"<th>{_t(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_t(c)}</td>" for c in r) + "</tr>" for r in rows[:limit])
    more = f'<p class="note">另有 {len(rows) - limit} 条，见对应数据集。</p>' if len(rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _kpis(items: list[tuple[str, str, str]]) -> str:
    cells = "".join(f'<div class="kpi"><div class="kpi-value">{_t(v)}</div><div class="kpi-label">{_t(label)}</div>'
                    f'<div class="kpi-note">{_t(note)}</div></div>' for label, v, note in items)
    return f'<div class="kpis">{cells}</div>'


def _structure_section(con: duckdb.DuckDBPyConnection, root: str | None) -> str:
    if root is None or not _has(con, "mart_member_structure"):
        return _card("党员结构", _empty(), wide=True)
    rows = _rows(con, """SELECT dimension, value, value_name, value_order, members, share
                         FROM marts.mart_member_structure WHERE org_code = ? ORDER BY dimension, value_order, value""",
                 [root])
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["dimension"], []).append(r)

    def bars(dimension: str, color: str, top: int | None = None) -> str:
        items = by.get(dimension, [])
        if top is not None and len(items) > top:
            items = sorted(items, key=lambda r: -r["members"])
            rest = items[top - 1:]
            items = items[:top - 1] + [{"value_name": "其他", "members": sum(r["members"] for r in rest),
                                        "share": sum(r["share"] for r in rest)}]
        return hbar_chart([(r["value_name"], r["members"], f"{r['members']} · {_pct(r['share'])}") for r in items],
                          width=390, color=color, title=dimension)

    def donut(dimension: str) -> str:
        return donut_chart([(r["value_name"], r["members"]) for r in by.get(dimension, [])], title=dimension)

    branch = _rows(con, """SELECT coalesce(org_name, org_code || '（编码不存在）') AS org, stage, count(*) AS n
                           FROM marts.mart_member_roster GROUP BY ALL ORDER BY org""")
    per_branch: dict[str, list[tuple[str, str, float]]] = {}
    for r in branch:
        per_branch.setdefault(r["org"], []).append(
            (r["stage"], "正式" if r["stage"] == "full" else "预备", r["n"]))
    branch_chart = hbar_chart(
        [(org, sum(v for *_, v in parts),
          " ".join(f"{name}{int(v)}" for _, name, v in sorted(parts))) for org, parts in per_branch.items()],
        width=470, color="#d9473b", label_width=200, note_width=96, title="members per branch")
    grid = (f'<div class="grid3">'
            f'<div><h3>人员类别</h3>{donut("category")}</div>'
            f'<div><h3>性别</h3>{donut("gender")}</div>'
            f'<div><h3>正式 / 预备</h3>{donut("stage")}</div>'
            f'<div><h3>年龄</h3>{bars("age_band", "#2f6f9f")}</div>'
            f'<div><h3>民族</h3>{bars("ethnicity", "#3a9d5d", top=7)}</div>'
            f'<div><h3>党龄</h3>{bars("party_standing", RED)}</div>'
            f'<div><h3>学历</h3>{bars("education", "#8e5ea2")}</div>'
            f'<div><h3>职称（教职工）</h3>{bars("title_level", GOLD)}</div>'
            f'<div><h3>各支部党员数</h3>{branch_chart}</div>'
            f'</div>')
    return _card("党员结构", grid, wide=True, note="在册党员（正式、预备），截至统计日。")


def _funnel_section(con: duckdb.DuckDBPyConnection) -> str:
    if not _has(con, "mart_development_funnel"):
        return _card("发展党员漏斗", _empty())
    stages = _rows(con, """SELECT stage, any_value(stage_name) AS stage_name, min(stage_order) AS o,
                                  sum(people)::BIGINT AS people, sum(overdue)::BIGINT AS overdue,
                                  sum(entered_last_12_months)::BIGINT AS entered
                           FROM marts.mart_development_funnel GROUP BY stage ORDER BY o""")
    chart = funnel_chart([(s["stage"], s["stage_name"], s["people"], s["overdue"]) for s in stages],
                         title="development funnel")
    flow = " · ".join(f"{s['stage_name']} 近12个月新增 {s['entered']}" for s in stages if s["stage"] != "full")
    return _card("发展党员漏斗", chart, note=flow)


def _compliance_section(con: duckdb.DuckDBPyConnection) -> str:
    if not _has(con, "mart_meeting_compliance"):
        return _card("三会一课合规热力图", _empty(), wide=True)
    cells = _rows(con, """
        SELECT branch_name, strftime(period_start, '%Y-%m') AS month,
               count(*) FILTER (WHERE status <> 'pending') AS judged,
               count(*) FILTER (WHERE status = 'met') AS met,
               string_agg(meeting_type_name || CASE status WHEN 'met' THEN '✓' WHEN 'missed' THEN '✗' ELSE '…' END,
                          ' ' ORDER BY meeting_type) AS detail
        FROM marts.mart_meeting_compliance WHERE period_kind = 'month'
        GROUP BY ALL ORDER BY branch_name, month""")
    rows = sorted({c["branch_name"] for c in cells if c["branch_name"]})
    cols = sorted({c["month"] for c in cells})
    grid = {(c["branch_name"], c["month"]): ((c["met"] / c["judged"]) if c["judged"] else None,
                                             f"{c['met']}/{c['judged']} 达标 — {c['detail']}") for c in cells}
    quarterly = _rows(con, """
        SELECT meeting_type_name, count(*) FILTER (WHERE status = 'met') AS met,
               count(*) FILTER (WHERE status <> 'pending') AS judged
        FROM marts.mart_meeting_compliance GROUP BY ALL ORDER BY meeting_type_name""")
    summary = " · ".join(f"{q['meeting_type_name']} {_pct(q['met'] / q['judged']) if q['judged'] else '–'}"
                         for q in quarterly)
    chart = heatmap(rows, cols, grid, title="meeting compliance heat map")
    return _card("三会一课 · 主题党日 合规热力图（按支部、按月）", f'<div class="scroll">{chart}</div>', wide=True,
                 note="每格为当月按月要求（主题党日、支委会、党小组会）的达标比例；季度（支部党员大会、党课）与年度"
                      f"（组织生活会）要求见数据集。全期达标率：{summary}")


def _assessment_section(con: duckdb.DuckDBPyConnection, root: str | None) -> str:
    if root is None or not _has(con, "mart_assessment_distribution"):
        return _card("党员考核分布", _empty())
    rows = _rows(con, """SELECT year, year_complete, value, value_name, members FROM marts.mart_assessment_distribution
                         WHERE org_code = ? AND scale = 'rating' ORDER BY year, value_order""", [root])
    years: dict[str, list[tuple[str, str, float]]] = {}
    for r in rows:
        label = f"{r['year']}年" + ("" if r["year_complete"] else "（至统计日）")
        years.setdefault(label, []).append((r["value"], r["value_name"], r["members"]))
    by_year = stacked_bars(list(years.items()), title="assessment by year")
    latest = con.execute("""SELECT max(year) FROM marts.mart_assessment_distribution
                            WHERE year_complete AND scale = 'rating'""").fetchone()[0]
    branches = _rows(con, """SELECT coalesce(org_name, org_code) AS org, value, value_name, members
                             FROM marts.mart_assessment_distribution
                             WHERE year = ? AND scale = 'rating' AND org_type = '党支部'
                             ORDER BY org, value_order""", [latest])
    per: dict[str, list[tuple[str, str, float]]] = {}
    for r in branches:
        per.setdefault(r["org"], []).append((r["value"], r["value_name"], r["members"]))
    by_branch = stacked_bars(list(per.items()), label_width=190, title="assessment by branch")
    body = f"<h3>全校 · 各年度</h3>{by_year}<h3>各支部 · {_t(latest)}年</h3>{by_branch}"
    return _card("党员考核分布", body, note="得分 = 可评项得分率 × 100 − 扣分；标准见 models/assessment_standards.yaml。")


def _learning_section(con: duckdb.DuckDBPyConnection) -> str:
    if not _has(con, "mart_learning_course"):
        return _card("学习成效", _empty(), wide=True)
    courses = _rows(con, """SELECT course_title, sum(completed_records) AS done, sum(records) AS n,
                                   sum(completed_records) / sum(records) AS rate
                            FROM marts.mart_learning_course GROUP BY course_title ORDER BY rate DESC""")
    course_chart = hbar_chart([(c["course_title"], c["rate"], f"{_pct(c['rate'])} ({int(c['done'])}/{int(c['n'])})")
                               for c in courses], width=560, label_width=210, color="#2f6f9f",
                              title="completion per course")
    terms = _rows(con, """SELECT term, sum(completed_records) / sum(records) AS completion,
                                 sum(avg_quiz_score * quiz_takers) / nullif(sum(quiz_takers), 0) / 100 AS quiz
                          FROM marts.mart_learning_course GROUP BY term ORDER BY term""")
    participation = {r["term"]: r["p"] for r in _rows(con, """
        SELECT term, sum(member_learners) / nullif(sum(members_on_roll), 0) AS p
        FROM marts.mart_learning_branch GROUP BY term""")}
    trend = line_chart([t["term"] for t in terms],
                       [("完成率", [t["completion"] for t in terms], "#2f6f9f"),
                        ("平均测验成绩（/100）", [t["quiz"] for t in terms], GOLD),
                        ("党员参学率", [participation.get(t["term"]) for t in terms], RED)],
                       title="learning trend per term")
    shortfall = 0
    if _has(con, "mart_learning_shortfall"):
        shortfall = con.execute("""SELECT count(*) FROM marts.mart_learning_shortfall
                                   WHERE year = (SELECT year(as_of) FROM marts.mart_parameters)""").fetchone()[0]
    body = (f'<div class="grid2"><div><h3>各课程完成率</h3>{course_chart}</div>'
            f'<div><h3>按学期趋势</h3>{trend}</div></div>')
    return _card("学习成效", body, wide=True,
                 note=f"本年度学时未达要求的党员：{shortfall} 人（要求见 assessment_standards.yaml 的 learning）。")


WARNING_WORDS = {"term_expired": "已届满未换届", "term_ending_soon": "即将届满", "committee_missing": "未设委员会",
                 "committee_size_out_of_range": "委员人数不合规", "no_secretary": "未配书记"}


def _warning_words(warnings: str | None) -> str:
    words = []
    for w in (warnings or "").split(", "):
        if w.startswith("fewer_than_"):
            words.append(f"正式党员不足{w.split('_')[2]}名")
        elif w.startswith("more_than_"):
            words.append(f"党员超过{w.split('_')[2]}名")
        elif w:
            words.append(WARNING_WORDS.get(w, w))
    return "、".join(words)


def _attention_section(con: duckdb.DuckDBPyConnection) -> str:
    parts = []
    if _has(con, "mart_org_tree"):
        orgs = _rows(con, "SELECT name, warnings, term_end FROM marts.mart_org_tree WHERE warning_count > 0 "
                          "ORDER BY path")
        parts.append(_card("组织预警", _table(["组织", "预警", "届满日期"],
                                          [[o["name"], _warning_words(o["warnings"]), o["term_end"]] for o in orgs])))
    if _has(con, "mart_development_pipeline"):
        due = _rows(con, """SELECT name, org_name, stage_name, next_action_name, next_action_due, days_overdue
                            FROM marts.mart_development_pipeline WHERE overdue ORDER BY days_overdue DESC""")
        parts.append(_card("发展党员逾期事项", _table(["姓名", "支部", "阶段", "待办", "应于", "逾期天数"],
                                                [[r[k] for k in r] for r in due])))
    if _has(con, "mart_dues_arrears"):
        arrears = _rows(con, """SELECT name, org_name, months_unpaid, unpaid_months, arrears_estimate
                                FROM marts.mart_dues_arrears WHERE months_unpaid > 0 ORDER BY months_unpaid DESC""")
        parts.append(_card("党费欠缴", _table(["姓名", "支部", "欠缴月数", "月份", "估算金额"],
                                          [[r[k] for k in r] for r in arrears])))
    if _has(con, "mart_student_standing"):
        flagged = _rows(con, """SELECT name, org_name, stage_name, printf('%.2f', gpa) AS gpa, printf('%.2f', cohort_avg_gpa) AS cohort_gpa,
                                       failed_courses
                                FROM marts.mart_student_standing WHERE screen_flag
                                ORDER BY failed_courses DESC, gpa""")
        parts.append(_card("学业预警（积极分子、发展对象）",
                           _table(["姓名", "支部", "阶段", "GPA", "同年级均值", "不及格门数"],
                                  [[r[k] for k in r] for r in flagged])))
    return "".join(parts)


CSS = """
* { box-sizing: border-box; }
body { margin: 0; background: #f5f6f8; color: #1f2933; font-family: __FONT__; font-size: 14px; }
header { background: linear-gradient(90deg, #a50d22, #c8102e 60%, #d8452f); color: #fff; padding: 22px 36px; }
header h1 { margin: 0; font-size: 26px; letter-spacing: 1px; }
header p { margin: 6px 0 0; opacity: .9; }
main { padding: 20px 28px 40px; display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 18px; }
.card { background: #fff; border-radius: 10px; padding: 16px 20px; box-shadow: 0 1px 3px rgba(16,24,40,.08); }
.card.wide { grid-column: 1 / -1; }
h2 { margin: 0 0 12px; font-size: 18px; color: #a50d22; border-left: 4px solid #e0a100; padding-left: 10px; }
h3 { margin: 8px 0 6px; font-size: 13px; color: #52606d; font-weight: 600; }
.kpis { grid-column: 1 / -1; display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.kpi { background: #fff; border-radius: 10px; padding: 14px 16px; box-shadow: 0 1px 3px rgba(16,24,40,.08);
       border-top: 3px solid #c8102e; }
.kpi-value { font-size: 28px; font-weight: 700; color: #a50d22; }
.kpi-label { font-size: 13px; color: #1f2933; margin-top: 2px; }
.kpi-note { font-size: 11px; color: #7b8794; margin-top: 2px; }
.grid3 { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 6px 18px; }
.grid2 { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 6px 18px; }
.scroll { overflow-x: auto; }
svg { max-width: 100%; height: auto; font-family: __FONT__; }
.note { color: #7b8794; font-size: 12px; margin: 8px 0 0; }
.empty { color: #9aa5b1; font-style: italic; }
.ok { color: #238b45; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e4e7eb; }
th { color: #52606d; font-weight: 600; background: #fafbfc; }
footer { color: #9aa5b1; font-size: 11px; padding: 0 28px 24px; }
""".replace("__FONT__", FONT_STACK)


def render_report(con: duckdb.DuckDBPyConnection) -> str:
    """The report page as a string (see the module docstring)."""
    params = _rows(con, "SELECT as_of, as_of_source, standards_sha256 FROM marts.mart_parameters") \
        if _has(con, "mart_parameters") else []
    as_of = params[0]["as_of"] if params else None
    as_of_text = (f"统计日 {as_of:%Y-%m-%d}（{'HUB_AS_OF' if params[0]['as_of_source'] == 'HUB_AS_OF' else '数据最新日期'}）"
                  if isinstance(as_of, date) else "统计日未知")
    root = None
    college = "党建数据看板"
    if _has(con, "mart_org_tree"):
        top = _rows(con, "SELECT org_code, name FROM marts.mart_org_tree WHERE depth = 0 ORDER BY org_code LIMIT 1")
        if top:
            root, college = top[0]["org_code"], top[0]["name"]

    kpis: list[tuple[str, str, str]] = []
    if _has(con, "mart_member_roster"):
        full, prob = con.execute("SELECT count(*) FILTER (WHERE stage = 'full'), "
                                 "count(*) FILTER (WHERE stage = 'probationary') FROM marts.mart_member_roster"
                                 ).fetchone()
        kpis.append(("在册党员", _num(full + prob), f"正式 {full} · 预备 {prob}"))
    if _has(con, "mart_development_pipeline"):
        a, b, c, overdue = con.execute("""SELECT count(*) FILTER (WHERE stage = 'applicant'),
            count(*) FILTER (WHERE stage = 'activist'), count(*) FILTER (WHERE stage = 'candidate'),
            count(*) FILTER (WHERE overdue) FROM marts.mart_development_pipeline""").fetchone()
        kpis.append(("发展对象 · 积极分子", f"{c} · {b}", f"入党申请人 {a}"))
        kpis.append(("发展逾期事项", _num(overdue), "谈话、转正超期"))
    if _has(con, "mart_org_tree"):
        branches, warned = con.execute("SELECT count(*) FILTER (WHERE org_type = '党支部'), "
                                       "count(*) FILTER (WHERE warning_count > 0) FROM marts.mart_org_tree").fetchone()
        kpis.append(("党支部", _num(branches), f"有预警的组织 {warned}"))
    if _has(con, "mart_meeting_compliance"):
        met, judged = con.execute("""SELECT count(*) FILTER (WHERE status = 'met'), count(*) FILTER (WHERE status <> 'pending')
            FROM marts.mart_meeting_compliance
            WHERE period_end > (SELECT as_of FROM marts.mart_parameters) - INTERVAL 12 MONTH""").fetchone()
        kpis.append(("三会一课达标率", _pct(met / judged) if judged else "–", "近12个月"))
    if _has(con, "mart_dues_arrears"):
        owing, late = con.execute("SELECT count(*) FILTER (WHERE months_unpaid > 0), "
                                  "count(*) FILTER (WHERE months_paid_late > 0) FROM marts.mart_dues_arrears "
                                  "WHERE on_roll").fetchone()
        kpis.append(("党费欠缴", _num(owing), f"有逾期缴纳 {late} 人"))
    if _has(con, "mart_learning_course"):
        rate = con.execute("SELECT sum(completed_records) / nullif(sum(records), 0) FROM marts.mart_learning_course"
                           ).fetchone()[0]
        kpis.append(("学习完成率", _pct(rate), "全部课程"))

    body = "".join([
        _kpis(kpis),
        _structure_section(con, root),
        _funnel_section(con),
        _assessment_section(con, root),
        _compliance_section(con),
        _learning_section(con),
        _attention_section(con),
    ])
    sha = params[0]["standards_sha256"][:12] if params and params[0]["standards_sha256"] else "–"
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_t(college)} · 党建数据看板</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{_t(college)} · 党建数据看板</h1>
<p>{_t(as_of_text)} · 数据来自数据中台 marts 层</p></header>
<main>{body}</main>
<footer>Campus Data Hub · 标准文件 models/assessment_standards.yaml (sha256 {_t(sha)}…) ·
本页离线可读：图表为内嵌 SVG，不加载任何网络资源。</footer>
</body>
</html>
"""


def build_report(con: duckdb.DuckDBPyConnection, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``index.html`` into ``out_dir`` (created if needed), atomically, and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = render_report(con)
    path = out / "index.html"
    tmp = out / f".index.html.tmp-{os.getpid()}"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
