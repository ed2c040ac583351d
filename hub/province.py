"""The province's tables: the six national 院校中台 tables of every college as Apache Iceberg tables.

Each college publishes its national datasets (pipelines/national.py) under its own published root,
versioned and switched atomically (hub/publisher.py). This module takes a college's *current published
version* of each table and makes it that college's partition of the province's Iceberg table:

* catalog: pyiceberg's SQL catalog, the JDBC catalog's schema (``iceberg_tables``), in SQLite by
  default (``var/province/catalog.sqlite``) or PostgreSQL (``HUB_ICEBERG_CATALOG_URI``,
  ``postgresql+psycopg://…``), which Trino's and Spark's JDBC catalogs read (docs/scale-out.md);
* warehouse: a local folder or an object store (``HUB_ICEBERG_WAREHOUSE``, ``s3://…``);
* namespace ``national``, one table per dataset (``national.zt_dzzqkjcsj`` …), partitioned by
  ``identity(xxdm)``;
* a college's partition is replaced in ONE commit (``overwrite`` filtered on its xxdm, plus the table
  property ``hub.source.<xxdm>`` naming the published version it came from): a reader sees the college's
  previous rows or its new rows, never both and never none; other colleges' data files are not touched.
  Two colleges committing at once: the loser's commit fails on the catalog's compare-and-swap and is
  retried on the new metadata.

What enters is checked: every file's sha256 against the college's manifest, the row count against the
manifest, and every row's xxdm against the college. Republishing the same version commits nothing.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hub.object_store import filesystem, is_url
from hub.publisher import PublishError, read_manifest
from hub.settings import Settings, environ

NAMESPACE = "national"
CATALOG_NAME = "province"
SOURCE_PROPERTY = "hub.source.{xxdm}"  # table property: the college's published version in the table
ENV_CATALOG_URI = "HUB_ICEBERG_CATALOG_URI"
ENV_WAREHOUSE = "HUB_ICEBERG_WAREHOUSE"

# DuckDB types of the national datasets (their manifests) -> Iceberg primitive types
_TYPES = {"VARCHAR": "string", "INTEGER": "int", "BIGINT": "long", "DATE": "date", "DOUBLE": "double",
          "BOOLEAN": "boolean"}


def national_datasets() -> tuple[str, ...]:
    from pipelines.national import NATIONAL_TABLES

    return tuple(t.dataset for t in NATIONAL_TABLES)


def catalog_properties(settings: Settings | None = None, env: dict[str, str] | None = None) -> dict[str, str]:
    """The SQL catalog's properties from the environment (defaults under ``var/province``)."""
    env = environ() if env is None else dict(env)
    settings = settings or Settings.from_env(env)
    province = settings.var_dir / "province"
    uri = env.get(ENV_CATALOG_URI) or f"sqlite:///{province / 'catalog.sqlite'}"
    warehouse = env.get(ENV_WAREHOUSE) or str(province / "warehouse")
    if not is_url(warehouse):
        Path(warehouse).mkdir(parents=True, exist_ok=True)
        warehouse = Path(warehouse).resolve().as_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    props = {"uri": uri, "warehouse": warehouse}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if warehouse.startswith("s3://"):
        # pyiceberg's FileIO does not read botocore's variables: hand them over (never logged)
        props |= {k: v for k, v in {
            "s3.endpoint": endpoint, "s3.region": env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION"),
            "s3.access-key-id": env.get("AWS_ACCESS_KEY_ID"),
            "s3.secret-access-key": env.get("AWS_SECRET_ACCESS_KEY")}.items() if v}
    return props


def open_catalog(properties: dict[str, str] | None = None):
    """The province's catalog (pyiceberg ``SqlCatalog``), its ``national`` namespace created if absent."""
    try:
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError:  # pragma: no cover - the extra is missing
        raise PublishError("the province's Iceberg tables need pyiceberg: pip install 'campus-data-hub[scale]'") \
            from None
    catalog = SqlCatalog(CATALOG_NAME, **(properties or catalog_properties()))
    catalog.create_namespace_if_not_exists(NAMESPACE)
    return catalog


def _iceberg_schema(columns: list[dict[str, Any]]):
    from pyiceberg.schema import Schema
    from pyiceberg.types import (
        BooleanType,
        DateType,
        DoubleType,
        IntegerType,
        LongType,
        NestedField,
        PrimitiveType,
        StringType,
    )

    kinds: dict[str, PrimitiveType] = {"string": StringType(), "int": IntegerType(), "long": LongType(),
                                       "date": DateType(), "double": DoubleType(), "boolean": BooleanType()}
    fields = []
    for i, c in enumerate(columns, 1):
        kind = _TYPES.get(str(c["type"]).upper())
        if kind is None:
            raise PublishError(f"column {c['name']}: type {c['type']} has no Iceberg type here")
        fields.append(NestedField(i, c["name"], kinds[kind], required=False, doc=c.get("description")))
    return Schema(*fields)


def _table(catalog, dataset: str, manifest: dict[str, Any], xxdm_column: str):
    from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    identifier = f"{NAMESPACE}.{dataset}"
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    schema = _iceberg_schema(manifest["schema"]["columns"])
    source = schema.find_field(xxdm_column)
    spec = PartitionSpec(PartitionField(source_id=source.field_id, field_id=1000, transform=IdentityTransform(),
                                        name=xxdm_column))
    try:
        return catalog.create_table(identifier, schema=schema, partition_spec=spec, properties={
            "comment": manifest.get("description", ""), "format-version": "2",
            "write.parquet.compression-codec": "zstd"})
    except TableAlreadyExistsError:  # another college's run created it first
        return catalog.load_table(identifier)


def read_published(published_root: str, dataset: str) -> tuple[dict[str, Any], pa.Table]:
    """A college's current version of ``dataset`` (manifest, rows), every file checked against its sha256."""
    manifest = read_manifest(published_root, dataset)
    fs, base = filesystem(published_root)
    tables = []
    for f in manifest["files"]:
        path = f"{base}/{dataset}/{manifest['version']}/{f['path']}"
        data = fs.cat_file(path)
        if hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise PublishError(f"{published_root}: {dataset} {manifest['version']} {f['path']}: sha256 differs "
                               "from its manifest")
        tables.append(pq.read_table(pa.BufferReader(data)))
    table = pa.concat_tables(tables) if tables else pa.table({})
    if table.num_rows != manifest["row_count"]:
        raise PublishError(f"{published_root}: {dataset} {manifest['version']}: {table.num_rows} rows, the "
                           f"manifest says {manifest['row_count']}")
    return manifest, table


@dataclass
class Commit:
    dataset: str
    xxdm: str
    version: str
    rows: int
    changed: bool
    snapshot_id: int | None
    seconds: float
    attempts: int = 1


def publish_college(catalog, xxdm: str, published_root: str, *, datasets: tuple[str, ...] | None = None,
                    attempts: int = 20) -> list[Commit]:
    """Make ``xxdm``'s partition of each national table its current published version (one commit each)."""
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.expressions import EqualTo

    from pipelines.national import NATIONAL

    if not (xxdm.isdigit() and len(xxdm) == 10):
        raise PublishError(f"xxdm must be the college's 10-digit 学校代码, got {xxdm!r}")
    commits = []
    for dataset in datasets or national_datasets():
        xxdm_column = NATIONAL.published_names[dataset]["xxdm"]
        manifest, rows = read_published(published_root, dataset)
        codes = set(rows.column(xxdm_column).to_pylist()) if rows.num_rows else {xxdm}
        if codes != {xxdm}:
            raise PublishError(f"{published_root}: {dataset} {manifest['version']} holds xxdm {sorted(map(str, codes))}"
                               f", not only {xxdm}: not written to the province's table")
        started = time.perf_counter()
        key = SOURCE_PROPERTY.format(xxdm=xxdm)
        for attempt in range(1, attempts + 1):
            table = _table(catalog, dataset, manifest, xxdm_column)
            if table.properties.get(key) == manifest["version"]:
                commits.append(Commit(dataset, xxdm, manifest["version"], rows.num_rows, False,
                                      table.metadata.current_snapshot_id, time.perf_counter() - started, attempt))
                break
            if set(rows.column_names) - set(table.schema().column_names):  # a field added to the standard
                with table.update_schema() as update:
                    update.union_by_name(rows.schema)
                table = catalog.load_table(f"{NAMESPACE}.{dataset}")
            try:
                with warnings.catch_warnings(), table.transaction() as tx:
                    # a college's first commit deletes nothing; pyiceberg warns of that
                    warnings.filterwarnings("ignore", "Delete operation did not match any records")
                    tx.overwrite(rows, overwrite_filter=EqualTo(xxdm_column, xxdm),
                                 snapshot_properties={"hub.xxdm": xxdm, "hub.version": manifest["version"]})
                    tx.set_properties({key: manifest["version"]})
            except CommitFailedException:  # another college committed first: again, on its metadata
                time.sleep(0.02 * attempt)
                continue
            table = catalog.load_table(f"{NAMESPACE}.{dataset}")
            commits.append(Commit(dataset, xxdm, manifest["version"], rows.num_rows, True,
                                  table.metadata.current_snapshot_id, time.perf_counter() - started, attempt))
            break
        else:
            raise PublishError(f"{NAMESPACE}.{dataset}: xxdm {xxdm} not committed after {attempts} conflicting "
                               "commits")
    return commits


def read_college(catalog, dataset: str, xxdm: str) -> pa.Table:
    """A college's rows of a province table, read through the catalog (pyiceberg scan)."""
    from pyiceberg.expressions import EqualTo

    from pipelines.national import NATIONAL

    table = catalog.load_table(f"{NAMESPACE}.{dataset}")
    return table.scan(row_filter=EqualTo(NATIONAL.published_names[dataset]["xxdm"], xxdm)).to_arrow()


def data_files(catalog, dataset: str) -> list[str]:
    """The data files of a province table's current snapshot (for engines that read Parquet directly)."""
    table = catalog.load_table(f"{NAMESPACE}.{dataset}")
    return [task.file.file_path for task in table.scan().plan_files()]
