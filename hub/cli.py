"""The ``hub`` command: simulate the campus, serve its systems, run the demo.

Errors a person can fix (bad configuration, an unreachable source, bad input) are printed as one line
naming the file, key or value, with exit status 2; never a traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from hub.settings import DEFAULT_PORTS, Settings

console = Console()
if not console.is_terminal:  # logs and CI: wide enough that the summary tables are not squeezed
    console = Console(width=140)


def _friendly(fn):
    """Turn the hub's own error types into one clear line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from connectors import ConfigError, SourceError
        from connectors.redact import redact
        from hub.publisher import PublishError

        try:
            return fn(*args, **kwargs)
        except (ConfigError, SourceError, PublishError, FileNotFoundError, ValueError) as exc:
            Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {escape(redact(exc))}", highlight=False)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Campus Data Hub: the party-building data middle platform of a higher vocational college."""


@main.command()
@click.option("--scale", type=click.FloatRange(min=0.001, max=100), default=1.0, show_default=True,
              help="Population multiplier (1 = about 15,000 students, 900 staff, 1,800 party members).")
@click.option("--seed", type=int, default=20261, show_default=True, help="Same seed, same campus, byte for byte.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write (default: var/campus).")
@_friendly
def simulate(scale: float, seed: int, out: Path | None) -> None:
    """Write a simulated college: its systems' exports and the ground truth."""
    from campus_sim.generate import generate

    out = out or Settings.from_env().campus_dir
    with console.status(f"Simulating scale {scale}, seed {seed} …"):
        manifest = generate(out, scale=scale, seed=seed)
    console.print(f"Wrote {out} ({manifest['college']}, as of {manifest['as_of']})")
    for name, count in sorted(manifest["rows"].items()):
        console.print(f"  {name}: {count:,} rows")
    console.print(f"  injected defects: {sum(manifest['defects'].values()):,} "
                  f"({len(manifest['defects'])} kinds; ground truth in {out / 'truth'})")


@main.command("serve-sources")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A folder written by `hub simulate` (default: var/campus).")
@click.option("--faults", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of API requests that fail as real servers do (500, 503, 429, slow, dropped).")
@click.option("--slow-seconds", type=float, default=3.0, show_default=True,
              help="How long a 'slow' fault holds a response (longer than the client's timeout).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault sequence.")
@click.option("--inbox", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the party system drops its exports (default: var/inbox/party).")
@click.option("--academic-url", default=None, metavar="URL",
              help="Also copy the academic database into this PostgreSQL/MariaDB SQLAlchemy URL "
                   "(then point the hub at it with HUB_ACADEMIC_URL).")
@click.option("--port", "ports", multiple=True, metavar="SYSTEM=PORT",
              help=f"Override a port, e.g. hr=9001 (defaults {DEFAULT_PORTS}; 0 = any free port).")
@_friendly
def serve_sources(data: Path | None, faults: float, slow_seconds: float, seed: int, inbox: Path | None,
                  academic_url: str | None, ports: tuple[str, ...]) -> None:
    """Serve the simulated campus systems on loopback until interrupted."""
    from campus_sim.servers import serve_forever

    settings = Settings.from_env()
    chosen = dict(DEFAULT_PORTS)
    for item in ports:
        system, _, port = item.partition("=")
        if system not in chosen or not port.isdigit():
            raise click.BadParameter(f"{item!r}: expected SYSTEM=PORT with SYSTEM one of {sorted(chosen)}",
                                     param_hint="--port")
        chosen[system] = int(port)
    data = data or settings.campus_dir
    if not (data / "manifest.json").exists():
        raise FileNotFoundError(f"{data}: no simulated campus here (run `hub simulate --out {data}` first)")
    if academic_url:
        import sqlalchemy as sa

        from campus_sim.sqlload import load_academic

        safe = sa.engine.make_url(academic_url).render_as_string(hide_password=True)
        try:
            counts = load_academic(data, academic_url)
        except sa.exc.SQLAlchemyError as exc:
            raise ValueError(f"cannot load the academic database into {safe}: "
                             f"{str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}") from None
        console.print(f"academic  {safe} ({', '.join(f'{t} {n:,} rows' for t, n in counts.items())}); "
                      "set HUB_ACADEMIC_URL to read it from there")
    serve_forever(data, ports=chosen, faults=faults, slow_seconds=slow_seconds, seed=seed,
                  inbox=inbox or settings.inbox_dir)


@main.command("serve-docs")
@click.option("--port", type=int, default=None, help="Port (default: the one in HUB_DATA_DOCS_URL, 3001).")
@_friendly
def serve_docs(port: int | None) -> None:
    """Serve the Data Docs (<var>/quality/docs) on loopback, where the checks' data_docs links point."""
    import time
    from urllib.parse import urlsplit

    from quality.datadocs import serve
    from quality.expectations import build_docs_index, quality_dir

    settings = Settings.from_env()
    port = port if port is not None else (urlsplit(settings.data_docs_url).port or 80)
    build_docs_index(quality_dir(settings.var_dir))  # up to date with every validation stored so far
    server = serve(quality_dir(settings.var_dir) / "docs", port=port)
    console.print(f"Data Docs on http://127.0.0.1:{server.server_address[1]}/index.html (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


@main.command()
@click.argument("query")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Rows to print.")
@click.option("--csv", "as_csv", is_flag=True, help="Print every row as CSV instead of a table.")
@click.option("--export", "export_to", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Write every row to FILE (.csv or .parquet) instead of printing.")
@_friendly
def sql(query: str, limit: int, as_csv: bool, export_to: Path | None) -> None:
    """Run a query against the latest analyst snapshot (read-only, confined to the snapshot; never waits
    for a running job)."""
    from hub.analyst_sql import export, open_snapshot, run

    snapshot = Settings.from_env().snapshot_path
    if not snapshot.exists():
        raise FileNotFoundError(f"{snapshot}: no snapshot yet (run `make demo`, or materialise "
                                "publish/analyst_snapshot in the UI)")
    con = open_snapshot(snapshot)
    try:
        if export_to is not None:
            rows = export(con, query, export_to)
            console.print(f"Wrote {rows:,} row(s) to {export_to}", highlight=False)
            return
        result = run(con, query)
        names = [d[0] for d in result.description or []]
        try:
            rows = result.fetchall()
        except Exception as exc:  # duckdb.Error: one line
            raise ValueError(f"query failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        con.close()
    if as_csv:
        import csv

        from hub.neutralise import neutralise

        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows([neutralise(v) for v in row] for row in rows)
        return
    from rich.table import Table

    table = Table(caption=f"{len(rows):,} row(s){f', first {limit} shown' if len(rows) > limit else ''} — "
                          f"snapshot {snapshot}")
    for name in names:
        table.add_column(name)
    for row in rows[:limit]:
        table.add_row(*["NULL" if v is None else str(v) for v in row])
    console.print(table)


@main.command()
@click.argument("targets", nargs=-1, metavar="[SOURCE[.ENTITY]]...")
@_friendly
def load(targets: tuple[str, ...]) -> None:
    """Load sources into the raw zone now, without Dagster (all of sources.yaml if none named).

    A failing source or entity is reported in one line (and has its ``failed`` row in
    quality.load_audit) and the others still load; the exit status is 1 if any failed.
    """
    from connectors import SourceError, load_entity, load_sources
    from connectors.redact import redact, register_source_secrets
    from hub.progress import load_progress
    from hub.warehouse import open_warehouse_when_free

    settings = Settings.from_env()
    _recover(settings, "hub load")
    sources = load_sources(settings.sources_file)
    register_source_secrets(sources.values())
    wanted = []
    for target in targets or sources:
        name, _, entity = target.partition(".")
        if name not in sources or (entity and entity not in sources[name].entities):
            raise ValueError(f"{target!r} is not a source (or source.entity) in {settings.sources_file}: "
                             f"sources are {sorted(sources)}")
        wanted += [(sources[name], sources[name].entities[e]) for e in ([entity] if entity else sources[name].entities)]
    failed = 0

    def warehouse():  # open only to read a cursor and to land: never while a source is read
        return open_warehouse_when_free(settings.warehouse_path, memory_limit=settings.duckdb_memory_limit)

    for source, entity in wanted:
        try:
            with load_progress(console, entity.table) as progress:
                results = load_entity(warehouse, settings.raw_root_url or settings.raw_dir, source, entity,
                                      landing_memory=settings.raw_memory_limit, progress=progress,
                                      spool_dir=settings.raw_spool_dir or None)
        except Exception as exc:  # load_entity audits every failure and raises it as a SourceError
            failed += 1
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if not isinstance(exc, SourceError):
                line = f"{type(exc).__name__}: {line}"
            console.print(f"[red]✗[/] {entity.table}: {escape(redact(line))}", highlight=False, soft_wrap=True)
            continue
        for r in results:
            mark = "[green]✓[/]" if r.status == "ok" else "[yellow]✗[/]" if r.status == "rejected" else "·"
            console.print(f"{mark} {entity.table}: {r.status}, read {r.rows_read:,}, landed {r.rows_landed:,},"
                          f" skipped {r.rows_skipped:,}, rejected {r.rows_rejected:,}, retries {r.retries}"
                          + escape(redact("".join(f" — {m}" for m in (r.message, r.drift()) if m))),
                          highlight=False)
        if not results:
            console.print(f"· {entity.table}: nothing new", highlight=False)
    if failed:
        console.print(f"[red]{failed} of {len(wanted)} load(s) failed[/] (reasons in quality.load_audit)",
                      highlight=False)
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--scale", type=click.FloatRange(min=0.001, max=100), default=1.0, show_default=True)
@click.option("--seed", type=int, default=20261, show_default=True)
@click.option("--faults", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Serve the sources with this fraction of requests failing; the result must not change.")
@_friendly
def demo(scale: float, seed: int, faults: float) -> None:
    """Simulate (if absent), serve the sources, run every asset through Dagster, publish, summarise."""
    from hub.demo import demo as run_demo

    result = run_demo(Settings.from_env(), scale=scale, seed=seed, faults=faults, console=console)
    sys.exit(0 if result.success else 1)


def _recover(settings: Settings, by: str) -> list:
    """Clear runs whose process is gone (hub/recovery.py), one line each; never stops the command."""
    from hub.recovery import recover_instance

    try:
        cleared = recover_instance(settings.dagster_home, by=by)
    except Exception as exc:  # an unreadable instance must not stop a load; say so and go on
        console.print(f"[yellow]could not check the Dagster instance for dead runs:[/] {exc}", highlight=False)
        return []
    for item in cleared:
        console.print(f"[yellow]cleared a dead run:[/] {item.line()}", highlight=False)
    return cleared


@main.command()
@_friendly
def recover() -> None:
    """Mark failed the runs whose process is gone and free their warehouse slots (run by `make ui`)."""
    settings = Settings.from_env()
    cleared = _recover(settings, "hub recover")
    if not cleared:
        console.print("No dead runs.")


@main.command()
@_friendly
def status() -> None:
    """Where things stand: runs, dead runs cleared, cursors and loads, inbox, failing checks, published."""
    from hub.status import gather, print_status

    settings = Settings.from_env()
    from hub.recovery import instance_used

    instance = None
    if instance_used(settings.dagster_home):
        from dagster import DagsterInstance

        from hub.settings import export

        export("DAGSTER_HOME", str(settings.dagster_home), overwrite=False)
        instance = DagsterInstance.from_config(str(settings.dagster_home))
    try:
        print_status(gather(settings, instance), console)
    finally:
        if instance is not None:
            instance.dispose()


@main.group()
def cursor() -> None:
    """Incremental cursors of the REST and SQL sources."""


@cursor.command("reset")
@click.argument("target", metavar="SOURCE.ENTITY")
@click.option("--to", "to", default=None, metavar="VALUE", help="Set the cursor to VALUE instead of removing it.")
@_friendly
def cursor_reset(target: str, to: str | None) -> None:
    """Re-read SOURCE.ENTITY from the start (or from VALUE) at its next load; audited in meta.operator_log."""
    from hub.status import reset_cursor

    console.print(reset_cursor(Settings.from_env(), target, to), highlight=False)


@main.group()
def inbox() -> None:
    """The file-drop inboxes."""


@inbox.command("retry")
@click.argument("file")
@_friendly
def inbox_retry(file: str) -> None:
    """Move a fixed FILE back from _rejected/ into its inbox; audited in meta.operator_log."""
    from hub.status import retry_inbox_file

    console.print(retry_inbox_file(Settings.from_env(), file), highlight=False)


@main.command("dagster-home")
@_friendly
def dagster_home() -> None:
    """Print the DAGSTER_HOME to use: dagster_home/ (SQLite), or with HUB_DAGSTER_PG_URL set a folder
    holding deploy/dagster.yaml (PostgreSQL, queued runs, one per college): docs/deploy.md."""
    from hub.instance import instance_home

    click.echo(instance_home(Settings.from_env()))


@main.group()
def province() -> None:
    """The province's Iceberg tables of the six national tables (docs/scale-out.md)."""


@province.command("publish")
@click.option("--college", "colleges", multiple=True, metavar="XXDM=ROOT",
              help="A college's 学校代码 and its published root (path or s3:// URL); repeatable. "
                   "Default: HUB_SCHOOL_CODE and HUB_PUBLISHED_ROOT.")
@_friendly
def province_publish(colleges: tuple[str, ...]) -> None:
    """Make each college's partition of the province's tables its current published national datasets
    (one Iceberg commit per college and table; unchanged versions commit nothing)."""
    from hub import province as prov
    from hub.colleges import colleges_from_env

    settings = Settings.from_env()
    configured = colleges_from_env()  # HUB_COLLEGES_FILE: every college's own published root
    default = [(c, configured.paths(c, settings).published_root) for c in configured.codes] if configured else \
        [(settings.school_code, settings.published_root_url)]
    pairs = [c.partition("=")[::2] for c in colleges] or default
    catalog = prov.open_catalog()
    for xxdm, root in pairs:
        if not root:
            raise ValueError(f"--college {xxdm!r}: expected XXDM=ROOT")
        for c in prov.publish_college(catalog, xxdm, root):
            state = "committed" if c.changed else "unchanged"
            console.print(f"{prov.NAMESPACE}.{c.dataset} xxdm={c.xxdm}: {state} {c.version}, {c.rows:,} rows "
                          f"({c.seconds:.2f} s)", highlight=False)


@main.group()
def college() -> None:
    """The colleges of a hub serving many (HUB_COLLEGES_FILE, docs/scale-out.md)."""


@college.command("add")
@click.argument("xxdm")
@click.option("--name", required=True, help="The college's name.")
@click.option("--sources", required=True, help="Its sources.yaml (relative to colleges.yaml's folder, or absolute).")
@click.option("--schedule", default="0 2 * * *", show_default=True, help="Cron schedule of its daily run.")
@click.option("--timezone", default="Asia/Shanghai", show_default=True)
@click.option("--person-key-var", default=None, help="Variable holding its person_key key (default HUB_PERSON_KEY_SECRET).")
@click.option("--national-key-var", default=None, help="Variable holding its zjsjwyxbs key (default HUB_NATIONAL_KEY_SECRET).")
@click.option("--kms-var", default=None, help="Variable holding its master keys (default HUB_KMS_MASTER_KEYS).")
@click.option("--var-dir", default=None, help="Its folder (default <HUB_VAR_DIR>/colleges/<xxdm>).")
@click.option("--file", "path", default=None, help="colleges.yaml (default: HUB_COLLEGES_FILE).")
@_friendly
def college_add(xxdm: str, name: str, sources: str, schedule: str, timezone: str, person_key_var: str | None,
                national_key_var: str | None, kms_var: str | None, var_dir: str | None, path: str | None) -> None:
    """Validate a college and append it to colleges.yaml. Its partition appears when the code location is
    reloaded (the partitions are the file's colleges: static)."""
    from hub.colleges import COLLEGES_VAR, add_college
    from hub.settings import env_value

    path = path or env_value(COLLEGES_VAR).strip()
    if not path:
        raise ValueError(f"no colleges.yaml: pass --file or set {COLLEGES_VAR}")
    secrets = {k: v for k, v in (("person_key", person_key_var), ("national_key", national_key_var),
                                 ("kms_master_keys", kms_var)) if v}
    added = add_college(path, {"xxdm": xxdm, "name": name, "sources": sources, "schedule": schedule,
                               "timezone": timezone, "secrets": secrets or None, "var_dir": var_dir})
    console.print(f"added college {added.xxdm} ({added.name}) to {Path(path).resolve()}; reload the code "
                  "location to see its partition", highlight=False)


@college.command("list")
@_friendly
def college_list() -> None:
    """The configured colleges and where each one's files are."""
    from hub.colleges import COLLEGES_VAR, colleges_from_env

    configured = colleges_from_env()
    if configured is None:
        console.print(f"one college ({COLLEGES_VAR} is not set): {Settings.from_env().school_code}")
        return
    settings = Settings.from_env()
    for c in configured.colleges:
        p = configured.paths(c.xxdm, settings)
        console.print(f"{c.xxdm}  {c.name}  schedule {c.schedule}  warehouse {p.warehouse_path}  "
                      f"published {p.published_root}", highlight=False)


if __name__ == "__main__":
    main()
