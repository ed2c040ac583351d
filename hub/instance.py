"""Which Dagster instance the hub uses: the single college's SQLite one, or PostgreSQL for many colleges.

Without ``HUB_DAGSTER_PG_URL`` nothing changes: ``DAGSTER_HOME`` is the project's ``dagster_home/``
(SQLite, the ``duckdb_warehouse`` pool of one slot). With it set, the instance is ``deploy/dagster.yaml``:
runs, event logs and schedules in PostgreSQL (dagster-postgres), runs queued (``QueuedRunCoordinator``)
and started by the daemon, at most one run per value of the ``college`` tag (:func:`college_tags`) and
8 runs in all. :func:`instance_home` gives the folder to use as ``DAGSTER_HOME`` (``var/dagster_pg``,
holding a copy of deploy/dagster.yaml): ``hub dagster-home`` prints it, so
``DAGSTER_HOME=$(hub dagster-home) dagster dev -w workspace.yaml`` runs on PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

from hub.settings import PROJECT_ROOT, Settings, environ

PG_URL_VAR = "HUB_DAGSTER_PG_URL"
COLLEGE_TAG = "college"  # its value: the college's 学校代码 (xxdm)
PG_INSTANCE_YAML = PROJECT_ROOT / "deploy" / "dagster.yaml"

# The environment of the process that evaluates hub_automation: the code location's server, since the
# sensor runs the hub's own condition there (pipelines/automation.py). Set by Makefile `ui` (dagster dev),
# deploy/docker-compose.yaml, deploy/helm/values.yaml and the benchmarks and tests that start a code
# server; tests/test_deploy.py holds them to this.
# DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS: a tick captures the event log's last id, waits this long for
# transactions in flight, then reads only the events up to that id, so each materialisation falls into
# exactly one tick. With Dagster's default (0) a tick can read an asset record that does not yet show an
# event whose id its cursor already passed; the next tick starts after it, and the update is never seen.
AUTOMATION_ENV = {"DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS": "5"}


class InstanceConfigError(ValueError):
    pass


def uses_postgres(env: dict[str, str] | None = None) -> bool:
    return bool((environ() if env is None else env).get(PG_URL_VAR))


def college_tags(xxdm: str) -> dict[str, str]:
    """The tags a college's run carries: the run queue keeps one run per college at a time."""
    if not (xxdm.isdigit() and len(xxdm) == 10):
        raise InstanceConfigError(f"the college tag is the 10-digit 学校代码, got {xxdm!r}")
    return {COLLEGE_TAG: xxdm}


def instance_home(settings: Settings | None = None, env: dict[str, str] | None = None) -> Path:
    """The DAGSTER_HOME to use. Without HUB_DAGSTER_PG_URL: ``settings.dagster_home`` as today. With it:
    ``<var>/dagster_pg`` with deploy/dagster.yaml as its dagster.yaml (written when it differs)."""
    env = environ() if env is None else env
    settings = settings or Settings.from_env(dict(env))
    if not uses_postgres(env):
        return settings.dagster_home
    _check_url(env[PG_URL_VAR])
    home = settings.var_dir / "dagster_pg"
    home.mkdir(parents=True, exist_ok=True)
    wanted = PG_INSTANCE_YAML.read_bytes()
    target = home / "dagster.yaml"
    if not target.exists() or target.read_bytes() != wanted:
        tmp = target.with_name(f".dagster.yaml.{os.getpid()}")
        tmp.write_bytes(wanted)
        os.replace(tmp, target)
    return home


def _check_url(url: str) -> None:
    """dagster-postgres speaks psycopg2 (its NOTIFY has a psycopg2-style parameter); SQLAlchemy 2.1 maps a
    bare postgresql:// to psycopg 3, so the driver is named in the URL."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "postgresql+psycopg2":
        return
    if scheme in ("postgresql", "postgres"):
        import sqlalchemy as sa

        if sa.engine.make_url(url.replace("postgres://", "postgresql://", 1)).get_dialect().driver == "psycopg2":
            return
        raise InstanceConfigError(f"{PG_URL_VAR}: write postgresql+psycopg2://… (this SQLAlchemy would open "
                                  f"{scheme}:// with another driver than the psycopg2 that dagster-postgres needs)")
    raise InstanceConfigError(f"{PG_URL_VAR} must be a postgresql+psycopg2://user@host:port/database URL, got "
                              f"{scheme or 'no scheme'}://…")


def open_instance(settings: Settings | None = None):
    """The DagsterInstance of :func:`instance_home` (the caller disposes of it)."""
    from dagster import DagsterInstance

    home = instance_home(settings)
    return DagsterInstance.from_config(str(home))


def stop_sensors(instance, workspace: str | Path, names: tuple[str, ...]) -> list[str]:
    """Stop the sensors ``names`` of the workspace's code location in ``instance`` (what ``dagster sensor
    stop`` does, for several at once); the names stopped. Benchmarks and tests that queue runs of their own
    use it so that the automation and inbox sensors launch none beside them."""
    from dagster import __version__
    from dagster._cli.workspace.cli_target import (
        WorkspaceOpts,
        get_code_location_from_workspace,
        get_remote_repository_from_code_location,
        get_workspace_from_cli_opts,
    )

    stopped = []
    with get_workspace_from_cli_opts(instance, version=__version__,
                                     workspace_opts=WorkspaceOpts(workspace=[str(workspace)])) as ws:
        repo = get_remote_repository_from_code_location(get_code_location_from_workspace(ws, None), None)
        for sensor in repo.get_sensors():
            if sensor.name in names:
                instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
                stopped.append(sensor.name)
    return stopped
