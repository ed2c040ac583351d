"""Where things stand, for an operator: ``hub status``, ``hub cursor reset``, ``hub inbox retry``.

``hub status`` reads the Dagster instance (runs), the warehouse (cursors, load audit, checks; the analyst
snapshot when a run holds the warehouse's write lock), the inboxes and the published catalog. It clears
dead runs first (hub/recovery.py), so what it shows as in progress is alive.

The two operator commands change what the next load does, so each writes a line to
``meta.operator_log`` (who, what, before, after) in the same transaction as its change where there is one,
and shows in the UI as an observation (metadata) on the raw asset it changes.
"""

from __future__ import annotations

import getpass
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from hub.publisher import read_catalog
from hub.settings import Settings
from hub.warehouse import connect

JOBS = ("campus_main_job", "api_sql_refresh_job", "inbox_load_job")
IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
RECOVERERS = ("hub demo", "hub load", "hub recover", "hub status", "dead_run_sweeper", "party_inbox_sensor")
_STORED = re.compile(r"^[0-9a-f]{12}_(?P<name>.+)$")


@dataclass
class Status:
    runs_last: list[tuple] = field(default_factory=list)        # job, run id, status, ended
    runs_active: list[tuple] = field(default_factory=list)      # job, run id, status, started
    runs_cleared: list[tuple] = field(default_factory=list)     # job, run id, by, message
    entities: list[tuple] = field(default_factory=list)         # source.entity, cursor, last load, audit line
    inbox: list[tuple] = field(default_factory=list)            # where, file, entity or reason
    failing_checks: list[tuple] = field(default_factory=list)   # severity, asset, check, unexpected
    published: list[tuple] = field(default_factory=list)        # dataset, version, rows, updated
    operator_log: list[tuple] = field(default_factory=list)     # at, by, action, target, before, after
    notes: list[str] = field(default_factory=list)


def _fmt_time(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value).astimezone()
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _runs(status: Status, instance) -> None:
    from dagster import DagsterRunStatus, RunsFilter

    from hub.recovery import RECOVERED_TAG, recover_dead_runs

    recover_dead_runs(instance, by="hub status")
    for job in JOBS:
        records = instance.get_run_records(RunsFilter(job_name=job), limit=1)
        if records:
            r = records[0]
            status.runs_last.append((job, r.dagster_run.run_id[:8], r.dagster_run.status.value,
                                     _fmt_time(r.end_time or r.start_time or r.create_timestamp)))
        else:
            status.runs_last.append((job, "—", "never run", "—"))
    for r in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus[s] for s in IN_FLIGHT])):
        status.runs_active.append((r.dagster_run.job_name, r.dagster_run.run_id[:8], r.dagster_run.status.value,
                                   _fmt_time(r.start_time or r.create_timestamp)))
    for r in instance.get_run_records(RunsFilter(tags={RECOVERED_TAG: list(RECOVERERS)}), limit=20):
        from dagster._core.events import DagsterEventType

        events = instance.all_logs(r.dagster_run.run_id, of_type=DagsterEventType.PIPELINE_FAILURE)
        message = events[-1].dagster_event.message if events else ""
        status.runs_cleared.append((r.dagster_run.job_name, r.dagster_run.run_id[:8],
                                    r.dagster_run.tags.get(RECOVERED_TAG, ""), message or ""))


def _open_for_reading(settings: Settings, status: Status):
    """The warehouse read-only; the snapshot while a run writes; None if neither can be read."""
    for path, note in ((settings.warehouse_path, None),
                       (settings.snapshot_path, "the warehouse is being written by a run: cursors, audit and "
                                                "checks below are from the analyst snapshot")):
        if not path.exists():
            continue
        try:
            con = connect(path, read_only=True)
            if note:
                status.notes.append(note)
            return con
        except duckdb.Error:
            continue
    status.notes.append(f"no readable warehouse at {settings.warehouse_path}: nothing loaded yet")
    return None


def gather(settings: Settings, instance=None) -> Status:
    from connectors import load_sources
    from connectors.files import FileExtractor

    status = Status()
    if instance is not None:
        _runs(status, instance)
    sources = load_sources(settings.sources_file)
    con = _open_for_reading(settings, status)
    try:
        cursors, audits, loads = {}, {}, {}
        if con is not None:
            cursors = {(s, e): (v, t) for s, e, v, t in con.execute(
                "SELECT source, entity, cursor_value, updated_at FROM meta.source_cursor").fetchall()}
            for s, e, st, fin, status_, read, landed, skipped, rejected, msg in con.execute("""
                    SELECT source, entity, started_at, finished_at, status, rows_read, rows_landed, rows_skipped,
                           rows_rejected, message
                    FROM quality.load_audit
                    QUALIFY row_number() OVER (PARTITION BY source, entity ORDER BY started_at DESC) = 1""").fetchall():
                audits[(s, e)] = (f"{status_}: read {read or 0:,}, landed {landed or 0:,}, skipped {skipped or 0:,}, "
                                  f"rejected {rejected or 0:,}" + (f" — {msg}" if msg else ""))
                loads[(s, e)] = fin or st
            status.failing_checks = con.execute("""
                SELECT severity, asset, check_name, unexpected FROM quality.check_result
                QUALIFY row_number() OVER (PARTITION BY asset, check_name ORDER BY checked_at DESC) = 1
                    AND NOT passed
                ORDER BY severity, asset, check_name""").fetchall()
            if _has_table(con, "meta", "operator_log"):
                status.operator_log = [(_fmt_time(r[0]), *r[1:]) for r in con.execute(
                    "SELECT logged_at, by_user, action, target, before, after FROM meta.operator_log "
                    "ORDER BY logged_at DESC LIMIT 10").fetchall()]
        for source in sources.values():
            for entity in source.entities.values():
                key = (source.name, entity.name)
                cursor = cursors.get(key, (None, None))[0]
                if cursor is None:
                    cursor = "(files: by content hash)" if source.kind == "files" else \
                        ("(none: reads from the start)" if entity.cursor_field else "(full load)")
                status.entities.append((f"{source.name}.{entity.name}", cursor, _fmt_time(loads.get(key)),
                                        audits.get(key, "never loaded")))
    finally:
        if con is not None:
            con.close()
    for source in sources.values():
        if source.kind != "files":
            continue
        seen_rejected = set()
        for entity in source.entities.values():
            extractor = FileExtractor(source, entity)
            for item in extractor.pending():
                status.inbox.append(("inbox", item.path.name, f"waiting: {source.name}.{entity.name}"))
            folder = extractor.rejected
            if folder in seen_rejected or not folder.is_dir():
                continue
            seen_rejected.add(folder)
            for path in sorted(folder.iterdir()):
                if path.name.endswith(".reason.txt") or path.name.startswith("."):
                    continue
                reason_file = path.with_name(path.name + ".reason.txt")
                reason = reason_file.read_text(encoding="utf-8").strip() if reason_file.exists() else "no reason recorded"
                status.inbox.append(("_rejected", path.name, reason))
    catalog = read_catalog(settings.published_root_url)
    for name, entry in sorted(catalog.get("datasets", {}).items()):
        status.published.append((name, entry["current_version"], f"{entry['row_count']:,}",
                                 entry.get("updated_at", "")[:19].replace("T", " ")))
    return status


def _has_table(con, schema: str, table: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                       [schema, table]).fetchone()[0] > 0


def print_status(status: Status, console) -> None:
    from rich.table import Table

    def table(title: str, columns: tuple[str, ...], rows: list[tuple], empty: str) -> None:
        if not rows:
            console.print(f"[bold]{title}:[/] {empty}", highlight=False)
            return
        t = Table(title=title, title_justify="left")
        for c in columns:
            t.add_column(c, overflow="fold")
        for row in rows:
            t.add_row(*["—" if v is None else str(v) for v in row])
        console.print(t)

    for note in status.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    table("Last run of each job", ("job", "run", "result", "at"), status.runs_last, "none")
    table("Runs in progress or queued", ("job", "run", "status", "since"), status.runs_active, "none")
    table("Runs found dead and cleared", ("job", "run", "cleared by", "message"), status.runs_cleared, "none")
    table("Sources", ("source.entity", "cursor", "last load", "last audit line"), status.entities, "none declared")
    table("Inbox", ("where", "file", "entity / reason"), status.inbox, "no file waiting, none set aside")
    table("Failing checks (latest result of each)", ("severity", "asset", "check", "unexpected"),
          status.failing_checks, "none")
    table("Published datasets", ("dataset", "current version", "rows", "updated"), status.published,
          "nothing published yet")
    table("Operator actions (latest 10)", ("at", "by", "action", "target", "before", "after"),
          status.operator_log, "none")


# ---- operator commands ---------------------------------------------------------------------------

def _log(con, action: str, target: str, before: str | None, after: str | None, detail: str = "") -> None:
    con.execute("INSERT INTO meta.operator_log VALUES (?, current_timestamp, ?, ?, ?, ?, ?, ?)",
                [str(uuid.uuid4()), _user(), action, target, before, after, detail])


def _observe(settings: Settings, table: str, metadata: dict[str, str]) -> None:
    """Show an operator action in the UI: an observation on the raw asset it changes (if the instance exists)."""
    from hub.recovery import instance_used

    if not instance_used(settings.dagster_home):
        return
    import dagster as dg

    from hub.settings import export

    export("DAGSTER_HOME", str(settings.dagster_home), overwrite=False)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        instance.report_runless_asset_event(dg.AssetObservation(
            asset_key=dg.AssetKey(["raw", table]), metadata={**metadata, "by": _user()}))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: still audited, as unknown
        return "unknown"


@contextmanager
def _writable(settings: Settings):
    try:
        con = connect(settings.warehouse_path)
    except duckdb.IOException:
        raise ValueError(f"{settings.warehouse_path} is being written by a run (DuckDB allows one writer): "
                         "try again when it has finished (`hub status` shows runs in progress)") from None
    try:
        yield con
    finally:
        con.close()


def reset_cursor(settings: Settings, target: str, to: str | None) -> str:
    """Delete (or set) SOURCE.ENTITY's cursor, audited; returns the line to print."""
    from connectors import load_sources

    sources = load_sources(settings.sources_file)
    name, _, entity_name = target.partition(".")
    if name not in sources or entity_name not in sources[name].entities:
        choices = sorted(f"{s}.{e}" for s in sources for e, ent in sources[s].entities.items() if ent.cursor_field)
        raise ValueError(f"{target!r} is not a SOURCE.ENTITY in {settings.sources_file}; entities with a cursor: "
                         f"{', '.join(choices)}")
    entity = sources[name].entities[entity_name]
    if not entity.cursor_field:
        raise ValueError(f"{target}: has no cursor (cursor_field) in {settings.sources_file}: every load reads it "
                         "whole" if sources[name].kind != "files" else
                         f"{target}: files are tracked by content hash, not by a cursor; use `hub inbox retry`")
    if to is not None and entity.cursor_type in ("int", "epoch_ms", "epoch_s") and not re.fullmatch(r"-?\d+", to):
        raise ValueError(f"--to {to!r}: {target}'s cursor is of type {entity.cursor_type}: give a whole number")
    with _writable(settings) as con:
        con.execute("BEGIN")
        row = con.execute("SELECT cursor_value FROM meta.source_cursor WHERE source = ? AND entity = ?",
                          [name, entity_name]).fetchone()
        before = row[0] if row else None
        if to is None:
            con.execute("DELETE FROM meta.source_cursor WHERE source = ? AND entity = ?", [name, entity_name])
        else:
            con.execute("INSERT OR REPLACE INTO meta.source_cursor VALUES (?, ?, ?, ?, current_timestamp)",
                        [name, entity_name, to, f"operator-{uuid.uuid4()}"])
        _log(con, "cursor reset", target, before, to)
        con.execute("COMMIT")
    after = "the start (no cursor)" if to is None else repr(to)
    _observe(settings, entity.table, {"operator action": "cursor reset", "cursor before": str(before),
                                      "cursor after": str(to)})
    return (f"{target}: cursor {before!r} → {after}; the next load reads from there "
            f"(rows already in raw are skipped, not duplicated)")


def tables_for(file_name: str, sources) -> list[str]:
    """The file entities whose pattern matches a file name."""
    from fnmatch import fnmatch

    return [e.table for s in sources.values() if s.kind == "files" for e in s.entities.values()
            if fnmatch(file_name, e.options["pattern"])]


def retry_inbox_file(settings: Settings, file: str) -> str:
    """Move a (fixed) file back from _rejected/ into its inbox, audited; returns the line to print."""
    from connectors import load_sources
    from connectors.files import FileExtractor

    sources = load_sources(settings.sources_file)
    folders = {}
    for source in sources.values():
        if source.kind == "files":
            for entity in source.entities.values():
                ex = FileExtractor(source, entity)
                folders[ex.rejected] = ex.inbox
    wanted = Path(file).name
    matches = []
    for rejected, inbox in folders.items():
        if not rejected.is_dir():
            continue
        for path in rejected.iterdir():
            if path.name.endswith(".reason.txt") or path.name.startswith("."):
                continue
            m = _STORED.match(path.name)
            original = m.group("name") if m else path.name
            if wanted in (path.name, original):
                matches.append((path, inbox, original))
    if not matches:
        raise FileNotFoundError(f"{file}: not in any _rejected/ folder ({', '.join(map(str, folders)) or 'none'}); "
                                "`hub status` lists the files set aside")
    if len(matches) > 1:
        raise ValueError(f"{file}: {len(matches)} files set aside under that name: name one of "
                         f"{', '.join(p.name for p, _, _ in matches)}")
    path, inbox, original = matches[0]
    dest = inbox / original
    if dest.exists():
        raise ValueError(f"{dest} already exists in the inbox: move or remove it first")
    reason_file = path.with_name(path.name + ".reason.txt")
    reason = reason_file.read_text(encoding="utf-8").strip() if reason_file.exists() else ""
    with _writable(settings) as con:
        inbox.mkdir(parents=True, exist_ok=True)
        partial = inbox / f".{original}.partial"  # the sensor and loads never see a half-moved file
        shutil.move(str(path), partial)
        partial.rename(dest)
        reason_file.unlink(missing_ok=True)
        _log(con, "inbox retry", str(dest), str(path), str(dest), detail=f"was rejected: {reason}")
    for table in tables_for(original, sources):
        _observe(settings, table, {"operator action": "inbox retry", "file": original,
                                   "was rejected": reason or "no reason recorded"})
    return f"{original}: moved back to {inbox} (it had been set aside: {reason or 'no reason recorded'})"
