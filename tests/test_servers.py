"""The simulated campus served for real: HTTP APIs on loopback, the academic SQL copy, the party inbox.

Everything runs against a small data directory these tests write themselves (not the generator).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from campus_sim.inbox import drop_party_exports
from campus_sim.servers import FAULT_KINDS, SYSTEMS, SourceServers
from campus_sim.sqlload import load_academic

REPO = Path(__file__).resolve().parents[1]
SECRET_VARS = (
    "HUB_HR_TOKEN",
    "HUB_XG_API_KEY",
    "HUB_ACTIVITY_USER",
    "HUB_ACTIVITY_PASSWORD",
    "HUB_LEARNING_TOKEN",
)
AUTH = {
    "hr": {"headers": {"Authorization": "Bearer sim-hr-token"}},
    "student": {"headers": {"X-API-Key": "sim-xg-key"}},
    "activity": {"auth": ("hub", "sim-activity")},
    "learning": {"headers": {"Authorization": "Bearer sim-learning-token"}},
}
WRONG_AUTH = {
    "hr": {"headers": {"Authorization": "Bearer sim-learning-token"}},
    "student": {"headers": {"X-API-Key": "sim-hr-token"}},
    "activity": {"auth": ("hub", "wrong")},
    "learning": {"headers": {"Authorization": "Basic aHViOnNpbS1hY3Rpdml0eQ=="}},
}
EXPORTS = {
    "发展党员.csv": "人员编号,姓名,发展阶段\n202410101001,韦小明,入党申请人\n".encode("gbk"),
    "党员信息.xlsx": b"PK\x03\x04" + bytes(random.Random(7).randrange(256) for _ in range(300)),
}


# --------------------------------------------------------------------------- fixture data


@dataclass(frozen=True)
class Endpoint:
    """One served file as the tests see it: where it is served and how it is ordered."""

    system: str
    path: str
    file: str
    key: tuple[str, ...]
    updated: str

    def order(self, record: dict) -> tuple:
        return (record[self.updated], *(record[name] for name in self.key))

    def __str__(self) -> str:
        return self.path.rsplit("/", 1)[-1]


ENDPOINTS = [
    Endpoint("hr", "/api/hr/v1/staff", "hr/staff.jsonl", ("gh",), "updated_at"),
    Endpoint("student", "/api/xg/v1/students", "student/students.jsonl", ("studentNo",), "updatedAt"),
    Endpoint(
        "activity", "/api/activity/v1/meetings", "activity/meetings.jsonl", ("meeting_id",), "updated_at"
    ),
    Endpoint(
        "activity",
        "/api/activity/v1/attendance",
        "activity/attendance.jsonl",
        ("meeting_id", "person_no"),
        "updated_at",
    ),
    Endpoint(
        "learning", "/api/learning/v1/courses", "learning/courses.jsonl", ("course_id",), "published_at"
    ),
    Endpoint(
        "learning",
        "/api/learning/v1/study-records",
        "learning/study_records.jsonl",
        ("record_id",),
        "updated_at",
    ),
]
HR, STUDENT, MEETINGS, ATTENDANCE, COURSES, STUDY = ENDPOINTS


def _staff() -> list[dict]:
    rows = [
        {
            "gh": f"2010{i:04d}",
            "xm": "阿依古丽·韦" if i == 5 else "覃" + "明华丽芳"[i % 4],
            "xbm": "12"[i % 2],
            "csrq": f"19{70 + i % 20}-05-17",
            "mz": "壮族",
            "sfzjh": f"4501021980051700{i % 10}X",
            "zzmm": "中共党员" if i % 3 == 0 else "群众",
            "xl": "11",
            "zc": "副教授",
            "zcdm": "062",
            "dwh": "101",
            "dwmc": "机电工程学院",
            "jzglb": "01",
            "dqzt": "01" if i % 9 == 0 else "11",
            "rzrq": "2010-09-01",
            "sjhm": None,
            "updated_at": f"2026-0{1 + i % 5}-0{1 + i % 3}T08:30:00+08:00",
        }
        for i in range(37)
    ]
    return rows + [rows[4]]  # a duplicate_row defect: the same record twice, served twice


def _students() -> list[dict]:
    return [
        {
            "studentNo": f"2024{1 + i % 3:02d}0101{i:02d}",
            "name": "蓝" + "海燕军"[i % 3],
            "idCard": f"45010220060101{i:03d}x",
            "gender": "男女"[i % 2],
            "birthDate": f"2006/{1 + i % 12}/{1 + i % 28}",
            "nation": "壮",
            "politicalStatus": ["GQTY", "ZGDY", "QZ", "YBDY"][i % 4],
            "collegeCode": "101",
            "collegeName": "机电工程学院",
            "major": "机电一体化技术",
            "className": "机电2401班",
            "grade": "2024",
            "status": "在读",
            "enrolDate": "2024/9/1",
            "graduateDate": None,
            "counselorNo": "20100001",
            "mobile": "13800000000",
            "updatedAt": f"2026-03-0{1 + i % 4} 10:0{i % 2}:00",
        }
        for i in range(41)
    ]


def _meetings() -> list[dict]:
    return [
        {
            "meeting_id": f"M{i:05d}",
            "org_code": f"0101{i % 3:02d}",
            "type": "党课" if i % 4 == 0 else "支部党员大会",
            "title": f"第{i}次会议",
            "start_time": "2026-03-05T15:00:00+08:00",
            "end_time": "2026-03-05T17:00:00+08:00",
            "place": "行政楼301",
            "lecturer": "覃明" if i % 4 == 0 else None,
            "updated_at": f"2026-03-0{1 + i % 3}T18:00:00+08:00",
        }
        for i in range(23)
    ]


def _attendance() -> list[dict]:
    return [
        {
            "meeting_id": f"M{i % 9:05d}",
            "person_no": f"2024010101{i:02d}",
            "status": ["出席", "请假", "缺席"][i % 3],
            "checkin_time": "2026-03-05T14:55:00+08:00" if i % 3 == 0 else None,
            "updated_at": f"2026-03-0{1 + i % 2}T18:00:00+08:00",
        }
        for i in range(45)
    ]


def _courses() -> list[dict]:
    return [
        {
            "course_id": f"C{i:03d}",
            "title": f"微党课{i}",
            "kind": ["在线课程", "微党课", "网络讲座"][i % 3],
            "hours": 1.5,
            "published_at": 1_700_000_000_000 + (i % 4) * 86_400_000,
        }
        for i in range(12)
    ]


def _study_records() -> list[dict]:
    return [
        {
            "record_id": f"R{i:06d}",
            "user_no": f"2024010101{i:02d}",
            "course_id": f"C{i % 12:03d}",
            "started_at": 1_760_000_000_000,
            "last_active_at": 1_760_000_600_000,
            "minutes": 10 + i,
            "progress": 100 if i % 2 else 45,
            "quiz_score": None if i % 5 == 0 else 60 + i,
            "completed": bool(i % 2),
            "updated_at": 1_760_000_000_000 + (i % 6) * 1000,
        }
        for i in range(33)
    ]


ROWS = {
    HR: _staff(),
    STUDENT: _students(),
    MEETINGS: _meetings(),
    ATTENDANCE: _attendance(),
    COURSES: _courses(),
    STUDY: _study_records(),
}


def _write_academic(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE jw_kc(kch TEXT PRIMARY KEY, kcmc TEXT, xf REAL, kclb TEXT, kkdwh TEXT)")
        db.execute(
            "CREATE TABLE jw_cj(id INTEGER PRIMARY KEY, xh TEXT, kch TEXT, xnxq TEXT, cj TEXT, ksxz TEXT,"
            " updated_at TEXT)"
        )
        db.execute("CREATE INDEX ix_jw_cj_updated_at ON jw_cj(updated_at)")
        db.executemany(
            "INSERT INTO jw_kc VALUES (?, ?, ?, ?, ?)",
            [
                (f"KC{i:04d}", f"机械制图{i}", 1.5 + i / 2, "必修" if i % 2 else "考查", "101")
                for i in range(6)
            ],
        )
        grades = ["78", "91.5", "优秀", "不及格", None]
        db.executemany(
            "INSERT INTO jw_cj VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    1000 + i,
                    f"2024010101{i % 40:02d}",
                    f"KC{i % 6:04d}",
                    "2024-2025-1",
                    grades[i % 5],
                    ["正常考试", "补考", "重修"][i % 3],
                    f"2025-01-{1 + i % 28:02d} 09:00:00",
                )
                for i in range(130)
            ],
        )
    db.close()


def _write_campus(root: Path) -> Path:
    """A miniature simulated-campus directory in the contract's layout; lines written shuffled."""
    for endpoint, rows in ROWS.items():
        path = root / endpoint.file
        path.parent.mkdir(parents=True, exist_ok=True)
        shuffled = rows[:]
        random.Random(endpoint.path).shuffle(shuffled)
        path.write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in shuffled), encoding="utf-8"
        )
    _write_academic(root / "academic" / "academic.sqlite")
    exports = root / "party" / "exports"
    exports.mkdir(parents=True)
    for name, content in EXPORTS.items():
        (exports / name).write_bytes(content)
    return root


def _expected(endpoint: Endpoint) -> list[dict]:
    return sorted(ROWS[endpoint], key=endpoint.order)


def _servers(data_dir: Path, **options) -> SourceServers:
    """SourceServers built with the default secrets, whatever the environment says."""
    with pytest.MonkeyPatch.context() as patch:
        for name in SECRET_VARS:
            patch.delenv(name, raising=False)
        return SourceServers(data_dir, **options)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_campus(tmp_path_factory.mktemp("campus"))


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inbox") / "party"


@pytest.fixture(scope="module")
def servers(data_dir: Path, inbox: Path) -> Iterator[SourceServers]:
    with _servers(data_dir, inbox=inbox) as running:
        yield running


# --------------------------------------------------------------------------- clients

Get = Callable[[str, dict | None], requests.Response]


def _plain_get(system: str, timeout: float = 5.0) -> Get:
    def get(url: str, params: dict | None) -> requests.Response:
        response = requests.get(url, params=params, timeout=timeout, **AUTH[system])
        assert response.status_code == 200, response.text
        return response

    return get


def _retrying_get(system: str, timeout: float, attempts: int = 30) -> Get:
    """Retries transient failures; a real client would also sleep Retry-After, pointless on loopback."""

    def get(url: str, params: dict | None) -> requests.Response:
        for _ in range(attempts):
            try:
                response = requests.get(url, params=params, timeout=timeout, **AUTH[system])
            except (requests.ConnectionError, requests.Timeout):
                continue
            if response.status_code not in (429, 500, 503):
                assert response.status_code == 200, response.text
                return response
        raise AssertionError(f"{url}: no answer in {attempts} attempts")

    return get


def _walk_hr(url: str, get: Get, size: int, params: dict) -> list[dict]:
    records, page = [], 1
    while True:
        body = get(url, {**params, "page": page, "page_size": size}).json()
        data = body["data"]
        assert (body["code"], data["page"], data["page_size"]) == (0, page, size)
        records += data["list"]
        if page >= data["pages"]:
            assert data["total"] == len(records)
            assert data["pages"] == -(-data["total"] // size)
            return records
        page += 1


def _walk_student(url: str, get: Get, size: int, params: dict) -> list[dict]:
    """Follows next_cursor; later requests send only the cursor, which must carry the filter."""
    records, query = [], {**params, "limit": size}
    while True:
        body = get(url, query).json()
        assert len(body["items"]) <= size
        records += body["items"]
        if body["next_cursor"] is None:
            return records
        query = {"limit": size, "cursor": body["next_cursor"]}


def _walk_activity(url: str, get: Get, size: int, params: dict) -> list[dict]:
    body = get(url, {**params, "limit": size}).json()
    records, count = [], body["count"]
    while True:
        assert body["count"] == count and len(body["results"]) <= size
        records += body["results"]
        if body["next"] is None:
            assert len(records) == count
            return records
        body = get(body["next"], None).json()


def _walk_learning(url: str, get: Get, size: int, params: dict) -> list[dict]:
    response = get(url, {**params, "per_page": size})
    records = []
    while True:
        assert len(response.json()) <= size
        records += response.json()
        following = response.links.get("next")
        if following is None:
            return records
        response = get(following["url"], None)


WALKERS = {"hr": _walk_hr, "student": _walk_student, "activity": _walk_activity, "learning": _walk_learning}


def _walk(servers: SourceServers, endpoint: Endpoint, get: Get, size: int, **params) -> list[dict]:
    return WALKERS[endpoint.system](servers.urls[endpoint.system] + endpoint.path, get, size, params)


def _outcome(url: str, timeout: float, **kwargs) -> tuple[str, requests.Response | None]:
    """Classify one request: status code as text, 'slow' (read timeout) or 'drop' (connection closed)."""
    try:
        response = requests.get(url, timeout=timeout, **kwargs)
    except requests.ReadTimeout:
        return "slow", None
    except requests.ConnectionError:
        return "drop", None
    return str(response.status_code), response


# --------------------------------------------------------------------------- pagination and filters


@pytest.mark.parametrize("size", [1, 7, 5000])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_paginator_walks_every_record_once_in_updated_key_order(servers, endpoint, size):
    walked = _walk(servers, endpoint, _plain_get(endpoint.system), size)
    assert walked == _expected(endpoint)


def test_records_are_served_exactly_as_stored(servers, data_dir):
    stored = [json.loads(line) for line in (data_dir / HR.file).read_text(encoding="utf-8").splitlines()]
    walked = _walk(servers, HR, _plain_get("hr"), 5000)
    assert Counter(json.dumps(r, sort_keys=True) for r in walked) == Counter(
        json.dumps(r, sort_keys=True) for r in stored
    )
    assert sum(r["gh"] == "20100004" for r in walked) == 2  # the duplicate row is served twice


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_updated_since_is_an_inclusive_lower_bound(servers, endpoint):
    expected = _expected(endpoint)
    distinct = sorted({record[endpoint.updated] for record in expected})
    threshold = distinct[len(distinct) // 2]
    matching = [r for r in expected if r[endpoint.updated] >= threshold]
    assert 0 < len(matching) < len(expected)
    walked = _walk(servers, endpoint, _plain_get(endpoint.system), 4, updated_since=str(threshold))
    assert walked == matching
    assert walked[0][endpoint.updated] == threshold


def test_updated_since_compares_instants_across_time_zones(servers):
    local = "2026-03-02T08:30:00+08:00"
    as_utc = datetime.fromisoformat(local).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = [r for r in _expected(HR) if r["updated_at"] >= local]
    assert _walk(servers, HR, _plain_get("hr"), 10, updated_since=as_utc) == expected
    students = [r for r in _expected(STUDENT) if r["updatedAt"] >= "2026-03-02 10:00:00"]
    naive_is_china_time = _walk(
        servers, STUDENT, _plain_get("student"), 10, updated_since="2026-03-02T02:00:00Z"
    )
    assert naive_is_china_time == students


def test_pages_past_the_end_are_empty_not_errors(servers):
    hr = requests.get(servers.urls["hr"] + HR.path, params={"page": 99}, timeout=5, **AUTH["hr"]).json()
    assert hr["data"]["list"] == [] and hr["data"]["total"] == len(ROWS[HR])
    assert hr["data"]["page_size"] == 500  # the default
    url = servers.urls["activity"] + MEETINGS.path
    activity = requests.get(url, params={"offset": 500}, timeout=5, **AUTH["activity"]).json()
    assert activity == {"count": len(ROWS[MEETINGS]), "next": None, "results": []}
    url = servers.urls["learning"] + COURSES.path
    learning = requests.get(url, params={"page": 9}, timeout=5, **AUTH["learning"])
    assert learning.json() == [] and "next" not in learning.links


# --------------------------------------------------------------------------- auth, health, errors


@pytest.mark.parametrize("system", SYSTEMS)
def test_health_answers_without_auth_and_unknown_paths_are_404(servers, system):
    health = requests.get(servers.urls[system] + "/health", timeout=5)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    missing = requests.get(servers.urls[system] + "/api/nothing/here", timeout=5, **AUTH[system])
    assert missing.status_code == 404 and "error" in missing.json()


@pytest.mark.parametrize("credentials", ["missing", "wrong"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_missing_or_wrong_credentials_get_401_json(servers, endpoint, credentials):
    auth = {} if credentials == "missing" else WRONG_AUTH[endpoint.system]
    response = requests.get(servers.urls[endpoint.system] + endpoint.path, timeout=5, **auth)
    assert response.status_code == 401
    assert set(response.json()) == {"error"}


def test_secrets_are_read_from_the_environment(data_dir, monkeypatch):
    monkeypatch.setenv("HUB_HR_TOKEN", "rotated-token")
    monkeypatch.setenv("HUB_ACTIVITY_PASSWORD", "rotated-password")
    with SourceServers(data_dir) as running:
        monkeypatch.delenv("HUB_HR_TOKEN")  # read at construction: later changes do not matter
        hr = running.urls["hr"] + HR.path
        assert requests.get(hr, timeout=5, **AUTH["hr"]).status_code == 401
        assert (
            requests.get(hr, timeout=5, headers={"Authorization": "Bearer rotated-token"}).status_code == 200
        )
        meetings = running.urls["activity"] + MEETINGS.path
        assert requests.get(meetings, timeout=5, auth=("hub", "rotated-password")).status_code == 200


@pytest.mark.parametrize(
    ("endpoint", "params", "named"),
    [
        (HR, {"page": "0"}, "page"),
        (HR, {"page": "abc"}, "page"),
        (HR, {"page": ["1", "2"]}, "page"),
        (HR, {"page_size": "5001"}, "page_size"),
        (HR, {"updated_since": "yesterday"}, "updated_since"),
        (HR, {"pageSize": "10"}, "pageSize"),
        (STUDENT, {"limit": "0"}, "limit"),
        (STUDENT, {"cursor": "not-a-cursor"}, "cursor"),
        (STUDENT, {"updated_since": "2026-13-01"}, "updated_since"),
        (MEETINGS, {"offset": "-1"}, "offset"),
        (ATTENDANCE, {"limit": "ten"}, "limit"),
        (COURSES, {"per_page": "0"}, "per_page"),
        (COURSES, {"page": ""}, "page"),
        (STUDY, {"updated_since": "2026-01-01T00:00:00+08:00"}, "updated_since"),
    ],
    ids=lambda value: str(value) if isinstance(value, Endpoint) else None,
)
def test_bad_parameters_get_400_naming_the_parameter(servers, endpoint, params, named):
    url = servers.urls[endpoint.system] + endpoint.path
    response = requests.get(url, params=params, timeout=5, **AUTH[endpoint.system])
    assert response.status_code == 400
    assert f"'{named}'" in response.json()["error"]


# --------------------------------------------------------------------------- faults


def test_every_fault_kind_appears_at_rate_one(data_dir):
    with _servers(data_dir, faults=1.0, slow_seconds=0.5, seed=3) as running:
        url = running.urls["hr"] + HR.path
        seen: Counter[str] = Counter()
        for _ in range(100):
            kind, response = _outcome(url, timeout=0.2, **AUTH["hr"])
            seen[kind] += 1
            if kind == "429":
                assert response.headers["Retry-After"] == "1"
            if response is not None:
                assert "error" in response.json()
            if len(seen) == len(FAULT_KINDS):
                break
        assert set(seen) == set(FAULT_KINDS)
        for system in SYSTEMS:
            assert requests.get(running.urls[system] + "/health", timeout=5).status_code == 200
        stats = running.stats
    assert stats["hr"] == {"requests": seen.total() + 1, "faults": {kind: seen[kind] for kind in FAULT_KINDS}}
    assert stats["student"] == {"requests": 1, "faults": dict.fromkeys(FAULT_KINDS, 0)}


def test_a_slow_fault_answers_normally_after_the_delay(data_dir):
    with _servers(data_dir, faults=1.0, slow_seconds=0.3, seed=5) as running:
        url = running.urls["learning"] + COURSES.path
        for _ in range(50):
            started = time.monotonic()
            kind, response = _outcome(url, timeout=5, **AUTH["learning"])
            if kind == "200":
                break
        assert kind == "200", "every request at rate 1.0 fails, so a 200 must be a slow one"
        assert time.monotonic() - started >= 0.3
        assert response.json() == _expected(COURSES)
        assert running.stats["learning"]["faults"]["slow"] == 1


def test_clients_that_retry_get_every_record_once_despite_faults(data_dir):
    with _servers(data_dir, faults=0.3, slow_seconds=0.5, seed=11) as running:
        for endpoint in ENDPOINTS:
            walked = _walk(running, endpoint, _retrying_get(endpoint.system, timeout=0.2), 5)
            assert walked == _expected(endpoint), endpoint
        injected = Counter()
        for counters in running.stats.values():
            injected.update(counters["faults"])
    assert sum(injected.values()) >= 5
    assert sum(1 for count in injected.values() if count) >= 3


def test_stop_is_prompt_while_a_slow_response_and_an_idle_connection_are_open(data_dir):
    before = set(threading.enumerate())
    running = _servers(data_dir, faults=1.0, slow_seconds=30).start()
    url = running.urls["hr"] + HR.path
    idle = requests.Session()
    assert idle.get(running.urls["hr"] + "/health", timeout=5).status_code == 200  # kept alive

    finished = threading.Event()

    def client() -> None:
        while not finished.is_set():
            _outcome(url, timeout=60, **AUTH["hr"])

    caller = threading.Thread(target=client)
    caller.start()
    deadline = time.monotonic() + 5
    while running.stats["hr"]["faults"]["slow"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.stats["hr"]["faults"]["slow"] == 1, "the client should now wait on a 30 s response"

    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 1.0
    finished.set()
    caller.join(timeout=2)
    assert not caller.is_alive(), "the delayed request should have been hung up on"
    idle.close()
    leaked = [thread for thread in threading.enumerate() if thread not in before]
    assert leaked == []
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=1)


def test_serve_forever_prints_one_line_per_system_and_stops_on_sigterm(data_dir, tmp_path):
    code = (
        "import sys; from campus_sim.servers import serve_forever; "
        "serve_forever(sys.argv[1], ports={}, inbox=sys.argv[2])"
    )
    env = {name: value for name, value in os.environ.items() if name not in SECRET_VARS}
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir), str(tmp_path / "inbox")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline().split() for _ in range(len(SYSTEMS) + 1)]
        urls = {line[0]: line[1] for line in lines[: len(SYSTEMS)]}
        assert list(urls) == list(SYSTEMS)
        assert lines[-1][:2] == ["party", str(len(EXPORTS))]
        assert requests.get(urls["hr"] + "/health", timeout=5).json() == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.communicate()
    with pytest.raises(requests.ConnectionError):
        requests.get(urls["hr"] + "/health", timeout=1)


# --------------------------------------------------------------------------- party inbox


def test_start_drops_the_party_exports_into_the_inbox(servers, inbox):
    assert sorted(path.name for path in servers.dropped) == sorted(EXPORTS)
    assert {path.name: path.read_bytes() for path in inbox.iterdir()} == EXPORTS


def test_drop_is_idempotent_by_content_whatever_the_name(tmp_path):
    campus = _write_campus(tmp_path / "campus")
    target = tmp_path / "inbox"
    assert sorted(p.name for p in drop_party_exports(campus, target)) == sorted(EXPORTS)
    assert drop_party_exports(campus, target) == []
    (target / "发展党员.csv").rename(target / "picked-up-and-renamed.csv")
    assert drop_party_exports(campus, target) == []
    (campus / "party" / "exports" / "党员信息.xlsx").write_bytes(b"PK\x03\x04 a newer export")
    assert drop_party_exports(campus, target) == [target / "党员信息.xlsx"]
    assert (target / "党员信息.xlsx").read_bytes() == b"PK\x03\x04 a newer export"
    assert sorted(p.name for p in target.iterdir()) == sorted(["picked-up-and-renamed.csv", "党员信息.xlsx"])


def test_drop_writes_a_complete_hidden_partial_then_renames_it(data_dir, tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace

    def spy(source, destination):
        source, destination = Path(source), Path(destination)
        assert not destination.exists()
        renames.append((source.parent, source.name, destination.name, source.read_bytes()))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", spy)
    target = tmp_path / "inbox"
    drop_party_exports(data_dir, target)
    assert sorted(renames) == sorted(
        (target, f".{name}.partial", name, body) for name, body in EXPORTS.items()
    )


def test_a_failed_drop_leaves_nothing_behind(data_dir, tmp_path, monkeypatch):
    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    target = tmp_path / "inbox"
    with pytest.raises(OSError, match="disk full"):
        drop_party_exports(data_dir, target)
    assert list(target.iterdir()) == []


# --------------------------------------------------------------------------- academic SQL copy


def _sqlite_rows(data_dir: Path, table: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "academic" / "academic.sqlite") as db:
        rows = db.execute(f"SELECT * FROM {table}").fetchall()
    db.close()
    return sorted(rows, key=lambda row: row[0])


def _assert_academic_round_trip(data_dir: Path, url: str) -> None:
    """Load twice over a stale table of the same name; the copy must match SQLite exactly."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE jw_kc (stale INTEGER)"))
        assert load_academic(data_dir, url, chunk_rows=50) == {"jw_kc": 6, "jw_cj": 130}
        assert load_academic(data_dir, url, chunk_rows=7) == {"jw_kc": 6, "jw_cj": 130}
        with engine.connect() as connection:
            for table in ("jw_kc", "jw_cj"):
                copied = [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))]
                assert sorted(copied, key=lambda row: row[0]) == _sqlite_rows(data_dir, table)
            schema = inspect(connection)
            assert [c["name"] for c in schema.get_columns("jw_kc")] == ["kch", "kcmc", "xf", "kclb", "kkdwh"]
            assert schema.get_pk_constraint("jw_kc")["constrained_columns"] == ["kch"]
            assert schema.get_pk_constraint("jw_cj")["constrained_columns"] == ["id"]
            assert ["updated_at"] in [index["column_names"] for index in schema.get_indexes("jw_cj")]
    finally:
        engine.dispose()


def _reachable(url: str) -> SQLAlchemyError | None:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in the local PostgreSQL (as postgres, else root), dropped afterwards."""
    problems = {}
    for user in ("postgres", "root"):
        base = f"postgresql+psycopg://{user}@127.0.0.1:5432/test"
        problems[user] = _reachable(base)
        if problems[user] is None:
            break
    else:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 with trust auth: {problems}")
    schema = f"sim_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh database in the local MariaDB, dropped afterwards."""
    base = "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"
    problem = _reachable(base)
    if problem is not None:
        pytest.skip(f"MariaDB not reachable at 127.0.0.1:3306 as root: {problem}")
    database = f"sim_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE DATABASE {database}"))
    try:
        yield f"mysql+pymysql://root@127.0.0.1:3306/{database}?charset=utf8mb4"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP DATABASE {database}"))
        admin.dispose()


def test_load_academic_into_sqlite(data_dir, tmp_path):
    _assert_academic_round_trip(data_dir, f"sqlite:///{tmp_path / 'target.db'}")


@pytest.mark.postgres
def test_load_academic_into_postgresql(data_dir, postgres_url):
    _assert_academic_round_trip(data_dir, postgres_url)


@pytest.mark.mariadb
def test_load_academic_into_mariadb(data_dir, mariadb_url):
    _assert_academic_round_trip(data_dir, mariadb_url)
