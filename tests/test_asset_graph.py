"""The asset graph tells the truth about the SQL: dependencies from a real parser, declared side writes,
code versions, table names and column schemas (issue 16, points 1, 2 and 5)."""

from __future__ import annotations

import textwrap

import dagster as dg
import duckdb
import pytest

from models import build, sqlrefs
from models.build import LAYERS, asset_of, model_of


@pytest.fixture(scope="module")
def defs():
    from hub.factory import build_definitions

    return build_definitions()


@pytest.fixture(scope="module")
def graph(defs):
    return defs.get_repository_def().asset_graph


def test_the_parser_reads_every_schema_and_skips_comments_ctes_and_temporary_tables():
    refs = sqlrefs.table_refs("""
        -- warehouse.only_in_a_comment is not read
        CREATE OR REPLACE TEMP TABLE _t AS
        WITH known AS (SELECT record_key FROM quality.quarantine WHERE entity = 'orgs')
        SELECT o.*, 'marts.not_a_table' AS text FROM staging.stg_party_orgs o
        WHERE o.org_code NOT IN (SELECT record_key FROM known)
          AND o.org_code IN (SELECT org_code FROM read_csv('x.csv'));
        CREATE OR REPLACE TABLE warehouse.result AS SELECT * FROM _t JOIN "raw"."party__orgs" r USING (org_code);
        DELETE FROM quality.reconciliation_issue WHERE model = 'result';
        INSERT INTO quality.reconciliation_issue (kind, model) SELECT 'x', 'result' FROM meta.source_cursor;
        UPDATE warehouse.result SET name = upper(name);
    """)
    assert refs.reads == {("quality", "quarantine"), ("staging", "stg_party_orgs"), ("raw", "party__orgs"),
                          ("meta", "source_cursor")}
    assert refs.writes == {("warehouse", "result"), ("quality", "reconciliation_issue")}
    assert refs.unresolved == frozenset()
    assert sqlrefs.table_refs("SELECT * FROM current JOIN somewhere USING (k)").unresolved == {"current", "somewhere"}


def test_a_sql_text_the_parser_cannot_read_is_named():
    with pytest.raises(sqlrefs.SqlRefError, match=r"models/sql/x\.sql: the SQL parser cannot read it"):
        sqlrefs.table_refs("SELECT FROM WHERE ((", where="models/sql/x.sql")


def _model_file(tmp_path, header: str, body: str):
    path = tmp_path / "warehouse" / "fact_x.sql"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"-- ---\n-- description: A test model.\n{header}-- ---\n{textwrap.dedent(body)}", encoding="utf-8")
    return path


SIDE_WRITE = """\
    CREATE OR REPLACE TABLE warehouse.fact_x AS SELECT 1 AS x FROM staging.stg_party_orgs;
    INSERT INTO quality.reconciliation_issue (kind, model) SELECT 'k', 'fact_x' FROM quality.quarantine;
"""


def test_a_model_that_writes_a_table_its_header_does_not_declare_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"fact_x\.sql: the SQL writes \['quality\.reconciliation_issue'\].*"
                                         r"header declares writes: \[\]"):
        build._parse(_model_file(tmp_path, "-- materialize: script\n", SIDE_WRITE))
    with pytest.raises(ValueError, match=r"header declares writes: \['warehouse\.other'\]"):
        build._parse(_model_file(tmp_path, "-- materialize: script\n-- writes: [warehouse.other]\n", SIDE_WRITE))
    model = build._parse(_model_file(
        tmp_path, "-- materialize: script\n-- writes: [quality.reconciliation_issue]\n", SIDE_WRITE))
    assert model.writes == {("warehouse", "fact_x"), ("quality", "reconciliation_issue")}
    assert model.reads == [("quality", "quarantine"), ("staging", "stg_party_orgs")]


def test_a_model_that_reads_a_table_without_its_schema_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"fact_x\.sql: reads \['stg_party_orgs'\] without a schema"):
        build._parse(_model_file(tmp_path, "", "SELECT * FROM stg_party_orgs\n"))


def test_every_sql_model_asset_declares_exactly_the_tables_its_sql_reads_and_writes(graph):
    """Issue 16 point 1: an asset whose deps miss a table its SQL reads, or a table written that no asset
    owns, fails here. The SQL is parsed afresh, independently of the Model properties the assets use."""
    checked = 0
    for layer, models in LAYERS.items():
        for name, model in models.items():
            refs = sqlrefs.table_refs(model.sql)
            node = graph.get(dg.AssetKey([layer, name]))
            expected = {dg.AssetKey(list(asset_of(*t))) for t in refs.reads - refs.writes} - {node.key}
            undeclared = expected - set(node.parent_keys)
            assert not undeclared, f"{layer}/{name} reads {sorted(map(str, undeclared))} but its asset does not declare it"
            for schema, table in refs.writes - {(layer, name)}:
                if schema in build.LAYER_NAMES:  # another table of the model layers: its own asset, built here
                    assert model_of(schema, table) == (layer, name), f"{layer}/{name} writes {schema}.{table}"
                    side = graph.get(dg.AssetKey([schema, table]))
                    assert graph.assets_def_for_key(side.key).keys == graph.assets_def_for_key(node.key).keys
                else:  # a side table: declared in the header
                    assert f"{schema}.{table}" in model.side_writes, f"{layer}/{name} writes {schema}.{table}"
            checked += 1
    assert checked == sum(len(m) for m in LAYERS.values()) > 40


def test_the_quarantine_reads_of_the_facts_are_in_the_graph(graph):
    """The old regex saw only staging/warehouse/marts: 9 fact models read quality.quarantine unseen. The facts
    now judge persons and organisations by the shared known_person / known_org models, which read it."""
    readers = [name for name, m in LAYERS["warehouse"].items() if ("quality", "quarantine") in m.reads]
    assert {"known_person", "known_org", "fact_course_grade"} <= set(readers)
    for name in readers:
        assert dg.AssetKey(["quality", "quarantine"]) in graph.get(dg.AssetKey(["warehouse", name])).parent_keys
    quarantine = dg.AssetKey(["quality", "quarantine"])
    through_shared = [name for name, m in LAYERS["warehouse"].items()
                      if {("warehouse", "known_person"), ("warehouse", "known_org")} & set(m.reads)]
    assert len(through_shared) >= 7
    for name in through_shared:
        assert quarantine in graph.upstream_key_iterator(dg.AssetKey(["warehouse", name])), name


def test_no_fact_copies_the_known_person_or_known_org_sql():
    """Issue 16 point 9: the facts read the shared models and report orphans through the shared macros."""
    for name, model in LAYERS["warehouse"].items():
        if not name.startswith("fact_"):
            continue
        assert "known_person AS (" not in model.sql and "known_org AS (" not in model.sql, name
        assert "which neither HR nor the student system holds'" not in model.sql, name
        assert "which is not a party organisation'" not in model.sql, name
    assert {"orphan_person", "orphan_org"} <= set(sqlrefs.macro_calls(LAYERS["warehouse"]["fact_dues_payment"].sql))


def test_published_datasets_depend_on_what_their_query_reads(graph):
    from pipelines.gate import rule_inputs
    from pipelines.publish import DATASETS

    for spec in DATASETS:
        parents = set(graph.get(dg.AssetKey(["publish", spec.name])).parent_keys)
        reads = {dg.AssetKey(list(asset_of(*t))) for t in sqlrefs.table_refs(spec.query).reads}
        if dg.AssetKey(["quality", "rule_violation"]) in reads:  # and what the rule checks writing it read
            reads |= rule_inputs()
        assert parents == reads, spec.name
    # the transfer table reads the student register and the held-back records: both are now in the graph
    transfer = set(graph.get(dg.AssetKey(["publish", "zt_dyzzgxzysj"])).parent_keys)
    assert dg.AssetKey(["staging", "stg_students"]) in transfer
    assert dg.AssetKey(["quality", "rule_violation"]) in graph.get(dg.AssetKey(["publish", "zt_dyfzsj"])).parent_keys


def test_code_version_follows_the_sql_and_the_macros_it_uses(graph, monkeypatch):
    staff = LAYERS["staging"]["stg_hr_staff"]
    # id_normalize -> id_upgrade15 -> id_check_char: macros called through other macros count too
    assert {"id_normalize", "id_upgrade15", "id_check_char"} <= set(sqlrefs.macro_calls(staff.sql))
    for layer, models in LAYERS.items():
        for name, model in models.items():
            assert graph.get(dg.AssetKey([layer, name])).code_version == model.code_version
    before = sqlrefs.code_version(staff.sql)
    assert sqlrefs.code_version(staff.sql + "\n-- a comment\n") != before
    unchanged = sqlrefs.code_version(LAYERS["warehouse"]["fact_assessment"].sql)  # calls no ID macro
    changed = dict(sqlrefs.macro_definitions())
    changed["id_check_char"] = changed["id_check_char"].replace("'10X98765432'", "'10X98765433'")
    monkeypatch.setattr(sqlrefs, "macro_definitions", lambda path=None: changed)
    assert sqlrefs.code_version(staff.sql) != before
    assert sqlrefs.code_version(LAYERS["warehouse"]["fact_assessment"].sql) == unchanged


def test_table_assets_carry_table_names_and_column_schemas(graph):
    from pipelines.publish import DATASETS

    for layer, models in LAYERS.items():
        for name in models:
            assert graph.get(dg.AssetKey([layer, name])).metadata["dagster/table_name"] == f"{layer}.{name}"
    roster = graph.get(dg.AssetKey(["marts", "mart_member_roster"])).metadata["dagster/column_schema"]
    assert {c.name: c.tags.get("sensitivity") for c in roster.columns}["person_key"] == "internal"
    assert all(c.description for c in roster.columns)
    for spec in DATASETS:
        schema = graph.get(dg.AssetKey(["publish", spec.name])).metadata["dagster/column_schema"]
        assert [(c.name, c.description, c.tags["sensitivity"]) for c in schema.columns] == \
            [(c.name, c.description, c.sensitivity) for c in spec.columns]
    registry = graph.get(dg.AssetKey(["publish", "person_registry_restricted"])).metadata["dagster/column_schema"]
    assert {c.name for c in registry.columns if c.tags["sensitivity"] == "restricted"} == \
        {"id_number", "birth_date", "phone"}


def test_a_materialised_table_reports_its_types_with_the_descriptions_of_the_specs():
    from pipelines.asset_metadata import materialized_column_schema

    con = duckdb.connect()
    con.execute("CREATE SCHEMA warehouse; CREATE SCHEMA staging")
    con.execute("CREATE TABLE warehouse.dim_person (person_key VARCHAR, id_number VARCHAR, name VARCHAR, "
                "birth_date DATE, source_systems VARCHAR[], undocumented INTEGER)")
    con.execute("CREATE TABLE staging.stg_students (student_no VARCHAR, phone VARCHAR)")
    cols = {c.name: c for c in materialized_column_schema(con, "warehouse", "dim_person").columns}
    assert list(cols) == ["person_key", "id_number", "name", "birth_date", "source_systems", "undocumented"]
    assert cols["birth_date"].type == "DATE" and cols["source_systems"].type == "VARCHAR[]"
    # the register publishes id_number in clear (restricted), the directory only masked: the stricter wins
    assert cols["id_number"].tags == {"sensitivity": "restricted"}
    assert cols["birth_date"].tags == {"sensitivity": "restricted"}
    assert cols["name"].tags == {"sensitivity": "internal"} and cols["name"].description.startswith("Name, normalised")
    assert cols["undocumented"].description is None and cols["undocumented"].tags == {"sensitivity": "internal"}
    # a column the model header describes: its text, and the header's sensitivity
    assert cols["source_systems"].description.startswith("Registers holding a record")
    staging = {c.name: c for c in materialized_column_schema(con, "staging", "stg_students").columns}
    assert staging["phone"].tags == {"sensitivity": "restricted"}  # a column every preview masks


def test_every_model_table_asset_carries_its_columns_described_once_with_a_sensitivity(graph):
    """Issue 16 point 5: the staging, warehouse and mart assets show their columns at definition time, each
    with a description from one place (the model header, or the published spec that selects it as it is: an
    entry with text in both is a second list) and a sensitivity tag; a restricted column is one the analysts'
    snapshot masks or leaves out."""
    from pipelines.asset_metadata import described_columns
    from pipelines.snapshot import restricted_columns

    published = described_columns()
    restricted = set(restricted_columns())
    tables = 0
    for models in LAYERS.values():
        for model in models.values():
            for (schema, table), columns in model.column_docs.items():
                for column, (description, _) in columns.items():
                    spec = published.get((schema, table), {}).get(column)
                    assert bool(description) != bool(spec), \
                        f"{schema}.{table}.{column}: described {'twice' if spec else 'nowhere'}"
            for schema, table in model.creates:
                if asset_of(schema, table) != (schema, table):
                    continue
                schema_md = graph.get(dg.AssetKey([schema, table])).metadata["dagster/column_schema"]
                assert schema_md.columns, f"{schema}.{table}"
                for c in schema_md.columns:
                    assert c.description and c.tags["sensitivity"] in build.SENSITIVITIES, f"{schema}.{table}.{c.name}"
                    if c.tags["sensitivity"] == "restricted":
                        assert c.name in restricted, f"{schema}.{table}.{c.name} is restricted but not masked"
                tables += 1
    assert tables == sum(len(m) for m in LAYERS.values()) + 3
    staff = {c.name: c for c in graph.get(dg.AssetKey(["staging", "stg_hr_staff"])).metadata[
        "dagster/column_schema"].columns}
    assert staff["birth_date"].tags == {"sensitivity": "restricted"} and staff["staff_no"].tags == {
        "sensitivity": "internal"}


@pytest.mark.parametrize(("block", "needle"), [
    ("--   name: The name.\n--  bad: two spaces\n", r"line 5: expected '--   column: description'"),
    ("--   name: [secret] The name.\n", r"sensitivity \[secret\] is not one of"),
    ("--   warehouse.other:\n--     x: An x.\n", r"describes warehouse.other, which the model does not create"),
    ("--     x: Indented four under no table.\n", r"line 4: expected"),
    ("--   name: The name.\n--   name: Again.\n", r"line 5: column name of warehouse.fact_x is described twice"),
])
def test_a_columns_block_that_does_not_parse_is_named_with_its_line(tmp_path, block, needle):
    with pytest.raises(ValueError, match=needle):
        build._parse(_model_file(tmp_path, f"-- columns:\n{block}", "SELECT 1 AS name FROM staging.stg_party_orgs\n"))
    model = build._parse(_model_file(tmp_path, "-- columns:\n--   name: [restricted] The name.\n--   x:\n",
                                     "SELECT 1 AS name FROM staging.stg_party_orgs\n"))
    assert model.column_docs == {("warehouse", "fact_x"): {"name": ("The name.", "restricted"), "x": (None, None)}}


def test_the_quality_tables_are_assets_with_the_columns_bookkeeping_creates(graph):
    from models import sql_dir

    con = duckdb.connect()
    con.execute("CREATE SCHEMA IF NOT EXISTS quality; CREATE SCHEMA IF NOT EXISTS meta")
    con.execute((sql_dir / "bookkeeping.sql").read_text(encoding="utf-8"))
    tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = 'quality' ORDER BY 1").fetchall()]
    assert {"quarantine", "reconciliation_issue", "rule_violation", "load_audit", "check_result"} <= set(tables)
    for table in tables:
        node = graph.get(dg.AssetKey(["quality", table]))
        assert node.group_name == "quality" and node.description and not node.is_materializable
        assert node.metadata["dagster/table_name"] == f"quality.{table}"
        real = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                           "'quality' AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
        declared = [(c.name, c.type) for c in node.metadata["dagster/column_schema"].columns]
        assert declared == [(c, t) for c, t in real], table
    writers = graph.get(dg.AssetKey(["quality", "reconciliation_issue"])).metadata["written_by"].data
    assert "warehouse/dim_person" in writers and "warehouse/fact_dues_payment" in writers
    assert "staging/stg_party_orgs" in graph.get(dg.AssetKey(["quality", "quarantine"])).metadata["written_by"].data


def test_every_quality_table_something_reads_is_a_declared_asset_not_a_stub(graph):
    read = {k for node in graph.asset_nodes for k in node.parent_keys if k.path[0] == "quality"}
    assert {dg.AssetKey(["quality", "quarantine"]), dg.AssetKey(["quality", "rule_violation"]),
            dg.AssetKey(["quality", "load_audit"])} <= read
    for key in read:
        assert graph.get(key).group_name == "quality", key  # an undeclared dep would land in 'default'


def test_the_campus_systems_are_external_assets_upstream_of_their_raw_assets(defs, graph):
    """Issue 16 point 1: one AssetSpec per source of sources.yaml (kind rest/sql/files, its description and
    owner), upstream of every raw asset of the source, never materialised: the jobs over every asset resolve
    without them."""
    from connectors import load_sources
    from hub.settings import PROJECT_ROOT
    from pipelines.raw import raw_key

    sources = load_sources(PROJECT_ROOT / "sources.yaml")
    specs = [n for n in graph.asset_nodes if n.key.path[0] == "source"]
    assert {n.key for n in specs} == {dg.AssetKey(["source", name]) for name in sources}
    assert {s.kind for s in sources.values()} == {"rest", "sql", "files"}
    for name, source in sources.items():
        node = graph.get(dg.AssetKey(["source", name]))
        assert node.group_name == "sources" and not node.is_materializable and not node.is_executable
        assert source.kind in node.kinds and node.description == source.description and source.description
        assert list(node.owners) == [source.owner]
        assert node.metadata["entities"].data == sorted(source.entities)
        for entity in source.entities.values():
            assert graph.get(raw_key(entity)).parent_keys == {node.key}
        assert set(node.child_keys) == {raw_key(e) for e in source.entities.values()}

    dg.Definitions.validate_loadable(defs)
    main = defs.resolve_job_def("campus_main_job")
    selected = main.asset_layer.selected_asset_keys
    assert not {n.key for n in specs} & selected
    assert {raw_key(e) for s in sources.values() for e in s.entities.values()} <= selected
    assert dg.AssetKey(["warehouse", "known_person"]) in selected
    api_sql = defs.resolve_job_def("api_sql_refresh_job").asset_layer.selected_asset_keys
    assert dg.AssetKey(["raw", "hr__staff"]) in api_sql and not {n.key for n in specs} & api_sql


def test_every_rule_check_waits_for_the_facts_its_as_of_date_is_read_from():
    """A rule judged at the data's latest date reads it from the facts (AS_OF_SOURCES): the check must run
    after them, or a run that builds dim_party_member first finds no date and fails."""
    from pipelines.rules import rule_checks
    from quality.business_rules import AS_OF_SOURCES

    sources = {dg.AssetKey(table.split(".")) for table, _ in AS_OF_SOURCES}
    assert sources == {dg.AssetKey(["warehouse", "fact_org_activity"]), dg.AssetKey(["warehouse", "fact_dues_payment"])}
    assert rule_checks
    for checks in rule_checks:
        for spec in checks.check_specs:
            deps = {d.asset_key for d in spec.additional_deps}
            assert sources - {spec.asset_key} <= deps, spec.name
