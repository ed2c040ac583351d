"""Many colleges on one hub: ``colleges.yaml``, and every asset partitioned by college (issue 18 §1).

Without ``HUB_COLLEGES_FILE`` the hub is one college exactly as before: no partitions, the paths and keys
of :class:`hub.settings.Settings`. With it, the file lists the colleges::

    colleges:
      - xxdm: "4145000001"                 # 学校代码, 10 digits; the partition key
        name: 示例职业技术学院
        sources: colleges/4145000001/sources.yaml   # relative to this file
        schedule: "0 2 * * *"              # cron, Asia/Shanghai unless `timezone` says otherwise
        secrets:                           # NAMES of environment variables, never values
          person_key: HUB_4145000001_PERSON_KEY
          national_key: HUB_4145000001_NATIONAL_KEY
          kms_master_keys: HUB_4145000001_KMS_MASTER_KEYS
        var_dir: /data/hub/4145000001      # optional; default <HUB_VAR_DIR>/colleges/<xxdm>

and :func:`partitions_def` is a **static** ``college`` partitions definition with one key per entry.
Static, not dynamic: a college is nothing without its entry (its sources file, keys and paths come from
it), so the file is the one list of colleges. A dynamic definition would keep a second list in the
instance that can name a college the file does not have, or miss one it has. ``hub college add``
validates and appends an entry; reloading the code location (``dagster dev`` watches nothing; reload
the location in the UI, or restart the code server) makes the new partition appear.

A run of one partition gets the college's own resources (:func:`college_resources`): its warehouse file,
raw zone, published root, sources file, keys, school code, report and Data Docs folders. The assets are
the same functions as for one college; only their resources differ. One run = one college = one
writer of that college's DuckDB file: the in-process executor runs a run's steps one after another, and
the instance allows one queued run per partition (``tag_concurrency_limits`` on ``dagster/partition``,
deploy/dagster.yaml). The global ``duckdb_warehouse`` pool, which serialises the one college's writers
across runs, is taken off the ops in this mode (:func:`without_pools`): it would serialise every
college's writers behind one slot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.settings import Settings, environ

COLLEGES_VAR = "HUB_COLLEGES_FILE"
PARTITIONS_NAME = "college"
PARTITION_TAG = "dagster/partition"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class CollegeConfigError(ValueError):
    """A problem with colleges.yaml or a college's run, in one line naming the file, college and field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollegeSecrets(_Model):
    """The names of the environment variables that hold the college's keys (hub/keys.py says what each is)."""

    person_key: str = Field("HUB_PERSON_KEY_SECRET", pattern=_ENV_NAME,
                            description="Variable holding the HMAC key of person_key.")
    national_key: str = Field("HUB_NATIONAL_KEY_SECRET", pattern=_ENV_NAME,
                              description="Variable holding the key of the national tables' zjsjwyxbs.")
    kms_master_keys: str = Field("HUB_KMS_MASTER_KEYS", pattern=_ENV_NAME,
                                 description="Variable holding the master keys of restricted datasets.")


class College(_Model):
    xxdm: str = Field(description="学校代码: the college's 10-digit school code, and its partition key.")
    name: str = Field(min_length=1, description="The college's name.")
    sources: str = Field(min_length=1, description="Its sources.yaml, relative to colleges.yaml's folder.")
    schedule: str = Field("0 2 * * *", description="Cron schedule of its daily run.")
    timezone: str = "Asia/Shanghai"
    secrets: CollegeSecrets = Field(default_factory=CollegeSecrets)
    var_dir: str | None = Field(None, description="Its folder (warehouse, raw zone, published, report); "
                                                  "default <HUB_VAR_DIR>/colleges/<xxdm>.")

    @field_validator("xxdm", mode="before")
    @classmethod
    def _xxdm(cls, value: Any) -> str:
        if not (isinstance(value, str) and re.fullmatch(r"[0-9]{10}", value)):
            raise ValueError(f"must be the 10-digit 学校代码 written as a string (quoted), got {value!r}")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(f"not a cron schedule: {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class CollegesFile(_Model):
    colleges: list[College] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> CollegesFile:
        seen: set[str] = set()
        for c in self.colleges:
            if c.xxdm in seen:
                raise ValueError(f"college {c.xxdm} is listed twice")
            seen.add(c.xxdm)
        return self


@dataclass(frozen=True)
class CollegePaths:
    """Where one college's things are, and what its run is given."""

    college: College
    var_dir: Path
    sources_file: Path
    warehouse_path: Path
    snapshot_path: Path
    restricted_snapshot_path: Path
    raw_root: str  # a path, or <HUB_RAW_DIR URL>/xxdm=<code>/raw
    # where an object-store raw zone spools the college's loads before upload: its own folder, as a load
    # sweeps its entity's uncommitted spool files, which would be another college's load of the same entity
    raw_spool_dir: Path
    inbox_dir: Path
    published_root: str  # a path, or <HUB_PUBLISHED_ROOT URL>/xxdm=<code>/published

    def secret(self, which: str, env: Mapping[str, str] | None = None) -> str:
        env = environ() if env is None else env
        return env.get(getattr(self.college.secrets, which), "")


def key_env(key_vars: Mapping[str, str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment as hub.keys.check_keys reads it, with a college's keys (``key_vars``: CollegeSecrets
    field -> variable name) under the standard names, so a refusal names the standard variable's role."""
    from hub.keys import KMS_VAR, NATIONAL_KEY_VAR, PERSON_KEY_VAR

    env = dict(environ() if env is None else env)
    standard = {"person_key": PERSON_KEY_VAR, "national_key": NATIONAL_KEY_VAR, "kms_master_keys": KMS_VAR}
    return {**env, **{standard[k]: env.get(var, "") for k, var in key_vars.items() if k in standard}}


@dataclass(frozen=True)
class Colleges:
    file: Path
    colleges: tuple[College, ...]

    @property
    def codes(self) -> list[str]:
        return [c.xxdm for c in self.colleges]

    def get(self, xxdm: str) -> College:
        for c in self.colleges:
            if c.xxdm == xxdm:
                return c
        raise CollegeConfigError(f"{self.file}: no college {xxdm!r} (colleges: {', '.join(self.codes)})")

    def paths(self, xxdm: str, settings: Settings) -> CollegePaths:
        college = self.get(xxdm)
        base = self.file.parent
        var = (base / college.var_dir).resolve() if college.var_dir else settings.var_dir / "colleges" / xxdm
        return CollegePaths(
            college=college, var_dir=var, sources_file=(base / college.sources).resolve(),
            warehouse_path=var / "warehouse.duckdb",
            snapshot_path=var / "snapshot" / "analyst.duckdb",
            restricted_snapshot_path=var / "restricted" / "restricted.duckdb",
            raw_spool_dir=Path(settings.raw_spool_dir) / f"xxdm={xxdm}" if settings.raw_spool_dir
            else var / "raw_spool",
            raw_root=_college_url(settings.raw_root_url, xxdm, "raw") if "://" in settings.raw_root_url
            else str(var / "raw"),
            inbox_dir=var / "inbox" / "party",
            published_root=_college_url(settings.published_root_url, xxdm, "published")
            if "://" in settings.published_root_url else str(var / "published"),
        )


def _college_url(root: str, xxdm: str, leaf: str) -> str:
    """A shared object-store root holds one prefix per college (docs/scale-out.md): <root>/xxdm=<code>/<leaf>."""
    from hub.object_store import college_root

    return f"{college_root(root, xxdm)}/{leaf}"


def load_colleges(path: str | Path) -> Colleges:
    """Read and validate colleges.yaml; any problem is one CollegeConfigError line naming file, college, field."""
    path = Path(path).resolve()
    from connectors.config import read_yaml

    doc = read_yaml(path, CollegeConfigError, f" ({COLLEGES_VAR})")
    try:
        parsed = CollegesFile.model_validate(doc if doc is not None else {})
    except ValidationError as exc:
        raise CollegeConfigError(f"{path}: {_message(exc, doc)}") from None
    for c in parsed.colleges:
        sources = (path.parent / c.sources)
        if not sources.is_file():
            raise CollegeConfigError(f"{path}: college {c.xxdm} ({c.name}): sources: file not found: {sources}")
    return Colleges(path, tuple(parsed.colleges))


def _message(exc: ValidationError, doc: Any) -> str:
    e = exc.errors(include_url=False)[0]
    loc = list(e["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "colleges" and isinstance(loc[1], int):
        entry = (doc or {}).get("colleges", [])[loc[1]] if isinstance(doc, dict) else {}
        code = entry.get("xxdm") if isinstance(entry, dict) else None
        where = f"college {code}" if isinstance(code, str) and code else f"colleges[{loc[1]}]"
        loc = loc[2:]
    field = ".".join(str(x) for x in loc)
    message = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        message = "unknown key"
    elif e["type"] not in ("missing", "value_error") and "input" in e:
        message += f", got {e['input']!r}"[:120]
    return ": ".join(p for p in (where, field, message) if p)


def colleges_from_env(env: Mapping[str, str] | None = None) -> Colleges | None:
    """The configured colleges, or None for the single-college hub (HUB_COLLEGES_FILE unset or empty)."""
    value = (environ() if env is None else env).get(COLLEGES_VAR, "").strip()
    return load_colleges(value) if value else None


def add_college(path: str | Path, entry: dict[str, Any]) -> College:
    """Validate ``entry`` and append it to colleges.yaml (created if missing); the whole file is validated
    again with it before anything is written, and written atomically."""
    path = Path(path).resolve()
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    doc = doc if isinstance(doc, dict) else {"colleges": []}
    doc.setdefault("colleges", [])
    entry = {k: v for k, v in entry.items() if v is not None}
    doc["colleges"] = [*doc["colleges"], entry]
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    try:
        colleges = load_colleges(tmp)
    except CollegeConfigError as exc:
        tmp.unlink()
        raise CollegeConfigError(str(exc).replace(str(tmp), str(path), 1)) from None
    os.replace(tmp, path)
    return colleges.colleges[-1]


# -- Dagster -------------------------------------------------------------------------------------------

def partitions_def(colleges: Colleges):
    return dg.StaticPartitionsDefinition(colleges.codes)


def partitioned(assets: list, colleges: Colleges) -> list:
    """Every asset partitioned by college, without its pool (see the module's docstring)."""
    pdef = partitions_def(colleges)
    out = []
    for a in assets:
        if isinstance(a, dg.AssetsDefinition) and a.is_executable:
            a = without_pools(a.map_asset_specs(lambda s: s.replace_attributes(partitions_def=pdef)))
        out.append(a)
    return out


def without_pools(a):
    """The same assets (or checks) with no concurrency pool on their op.

    Dagster has no public way to change an op's pool after it is defined; this rebuilds the op with the
    same compute function, ins, outs, tags and resources (what OpDefinition.with_replaced_properties does,
    with ``pool=None``). tests/test_colleges.py checks the result has no pool and runs."""
    from dagster._core.definitions.op_definition import OpDefinition

    op = a.node_def
    if not isinstance(op, OpDefinition) or not op.pool:
        return a
    new_op = OpDefinition.dagster_internal_init(
        name=op.name, ins={d.name: dg.In.from_definition(d) for d in op.input_defs},
        outs={d.name: dg.Out.from_definition(d) for d in op.output_defs},
        compute_fn=op.compute_fn, config_schema=op.config_schema, description=op.description, tags=op.tags,
        required_resource_keys=op.required_resource_keys, code_version=op._version, retry_policy=op.retry_policy,
        version=None, pool=None)
    return a.__class__.dagster_internal_init(**{**a.get_attributes_dict(), "node_def": new_op})


def college_of_run(colleges: Colleges, run) -> str | None:
    """The college a run is for (its partition key); None outside a run (a sensor's resources)."""
    if run is None:
        return None
    key = run.tags.get(PARTITION_TAG)
    if not key:
        raise CollegeConfigError(f"{colleges.file}: this hub serves {len(colleges.codes)} colleges; run "
                                 f"{run.run_id[:8]} names none (launch it for a partition: a college's 学校代码)")
    colleges.get(key)
    return key


def _college_values(key: str, paths: CollegePaths) -> dict[str, Any]:
    """What each resource of build_definitions becomes for one college."""
    c = paths.college
    return {
        "warehouse": {"path": str(paths.warehouse_path), "snapshot_path": str(paths.snapshot_path),
                      "restricted_snapshot_path": str(paths.restricted_snapshot_path),
                      "var_dir": str(paths.var_dir), "key_vars": c.secrets.model_dump()},
        "campus_sources": {"config_path": str(paths.sources_file), "raw_dir": paths.raw_root,
                           "spool_dir": str(paths.raw_spool_dir)},
        "identity": {"person_key_secret": paths.secret("person_key"),
                     "national_key_secret": paths.secret("national_key") or paths.secret("person_key")},
        "publisher": {"root": paths.published_root, "kms_master_keys": paths.secret("kms_master_keys")},
        "run_settings": {"school_code": c.xxdm},
    }.get(key, {})


def college_resources(resources: dict[str, Any], colleges: Colleges, settings: Settings) -> dict[str, Any]:
    """Each resource as one that, in a run, is the same resource configured for the run's college.

    The wrapped resource is built from the original's values with the college's replaced, then set up
    through its own ``yield_for_execution`` (so its ``setup_for_execution`` runs: key checks, run tags).
    Outside a run (sensors) the original is used."""
    def wrap(key: str, original):
        @dg.resource(description=f"{type(original).__name__}, per college ({colleges.file.name})")
        def _per_college(context: dg.InitResourceContext):
            xxdm = college_of_run(colleges, context.run)
            if xxdm is None:
                yield original
                return
            paths = colleges.paths(xxdm, settings)
            values = {name: _resolved(getattr(original, name)) for name in type(original).model_fields}
            concrete = type(original)(**{**values, **_college_values(key, paths)})
            with concrete.yield_for_execution(context) as value:
                yield value

        return _per_college

    return {key: wrap(key, res) for key, res in resources.items()}


def check_college_keys(key_vars: Mapping[str, str], env: Mapping[str, str] | None = None) -> None:
    """hub.keys.check_keys on a college's own variables; a refusal names the college's variable."""
    from hub.encryption import KeyConfigError
    from hub.keys import KMS_VAR, NATIONAL_KEY_VAR, PERSON_KEY_VAR, check_keys

    try:
        check_keys(key_env(key_vars, env))
    except KeyConfigError as exc:
        text = str(exc)
        for field, standard in (("person_key", PERSON_KEY_VAR), ("national_key", NATIONAL_KEY_VAR),
                                ("kms_master_keys", KMS_VAR)):
            if field in key_vars and key_vars[field] != standard:
                text = text.replace(standard, key_vars[field])
        raise KeyConfigError(text) from None


def _resolved(value: Any) -> Any:
    return value.get_value() if isinstance(value, dg.EnvVar) else value


def college_schedules(colleges: Colleges, job) -> list:
    """One schedule per college, on its own cron, launching ``job`` for its partition."""
    from hub.instance import college_tags

    def make(c: College):
        @dg.schedule(name=f"college_{c.xxdm}_daily", cron_schedule=c.schedule, execution_timezone=c.timezone,
                     job=job, default_status=dg.DefaultScheduleStatus.STOPPED,
                     description=f"{c.name} ({c.xxdm}): its daily run ({c.schedule}, {c.timezone}).")
        def _schedule(context: dg.ScheduleEvaluationContext):
            return dg.RunRequest(partition_key=c.xxdm, tags=college_tags(c.xxdm))

        return _schedule

    return [make(c) for c in colleges.colleges]
