"""Publish layer (group ``publish``): versioned Parquet datasets for the smart brain and the 院校中台.

Every column carries a description and a sensitivity; ID and phone numbers leave only masked (or as
the keyed person_key). A publish runs only when Dagster's check storage shows every blocking check on the
assets it is built from passed against their current data, and, for a dataset that leaves out the records
breaking an error-severity business rule, that the rule checks evaluated the current data
(``pipelines/gate.py``).
"""


import dagster as dg

from hub.publisher import Column, DatasetSpec, PublishError, notify_catalogue
from hub.resources import (
    WAREHOUSE_POOL,
    IdentityResource,
    PublisherResource,
    RunSettingsResource,
    WarehouseResource,
)
from pipelines.asset_metadata import published_deps, spec_code_version, spec_column_schema
from pipelines.common import OWNER
from pipelines.gate import check_states, full_asset_graph, rule_checks_needed, rule_inputs, upstream_checks
from pipelines.marts_publish import MART_DATASETS
from pipelines.national import NATIONAL_DATASETS, NATIONAL_SOURCES, bind_national, national_problems

RULE_VIOLATION = dg.AssetKey(["quality", "rule_violation"])

DATASETS = (
    DatasetSpec(
        name="person_directory",
        description="Everyone the campus systems know, one row per person, personal numbers masked.",
        query="""SELECT person_key, name, gender, birth_cohort(birth_date) AS birth_cohort, ethnicity,
                        mask_id(id_number) AS id_number_masked, mask_phone(phone) AS phone_masked,
                        staff_no, student_no, political_status, in_party_system,
                        array_to_string(source_systems, ',') AS source_systems
                 FROM warehouse.dim_person""",
        order_by="person_key",
        columns=(
            Column("person_key", "HMAC-SHA256 of the ID number under the hub's secret key: stable across runs, "
                   "not reversible without the key.", "internal"),
            Column("name", "Name, normalised (half-width, no stray spaces).", "internal"),
            Column("gender", "GB/T 2261.1 gender code.", "internal"),
            Column("birth_cohort", "Five-year band of the year of birth, e.g. 1995-1999 (the year itself is not "
                   "published: beside the masked ID it would narrow the number down).", "internal"),
            Column("ethnicity", "GB 3304 ethnic group code.", "internal"),
            Column("id_number_masked", "ID number with all but its 6-digit area code masked.", "internal"),
            Column("phone_masked", "Mobile number with the middle 4 digits masked.", "internal"),
            Column("staff_no", "工号, for staff.", "internal"),
            Column("student_no", "学号, for students.", "internal"),
            Column("political_status", "GB/T 4762 political status code (survivor across systems).", "internal"),
            Column("in_party_system", "Whether the party system holds a record of this person.", "internal"),
            Column("source_systems", "Systems that hold this person, comma-separated.", "internal"),
        ),
    ),
    DatasetSpec(
        name="party_organisations",
        description="The college's party organisation tree with member counts.",
        query="""SELECT org_code, name, org_type, parent_code, parent_name, branch_kind, unit_code,
                        secretary_name, founded_on, elected_on, term_end, committee_size, full_members,
                        probationary_members
                 FROM warehouse.dim_party_org WHERE is_current AND status = 'active'""",
        order_by="org_code",
        columns=(
            Column("org_code", "党组织编码.", "public"),
            Column("name", "党组织名称.", "public"),
            Column("org_type", "党委 / 党总支 / 党支部 / 党小组.", "public"),
            Column("parent_code", "上级党组织编码.", "public"),
            Column("parent_name", "上级党组织名称.", "public"),
            Column("branch_kind", "教工 / 学生 / 离退休 / 机关 (branches only).", "public"),
            Column("unit_code", "The unit (二级学院 or department) the organisation belongs to.", "public"),
            Column("secretary_name", "书记姓名.", "internal"),
            Column("founded_on", "成立日期.", "public"),
            Column("elected_on", "Date of the last election (换届).", "public"),
            Column("term_end", "届满日期: when the current term ends.", "public"),
            Column("committee_size", "委员人数 (0 = no committee).", "public"),
            Column("full_members", "Full members in good standing.", "internal"),
            Column("probationary_members", "Probationary members in good standing.", "internal"),
        ),
    ),
)

RESTRICTED = (
    DatasetSpec(
        name="person_registry_restricted",
        description="The person register with ID and mobile numbers in clear, for systems entitled to them "
                    "(e.g. the national platform's member records). Encrypted: Parquet modular encryption.",
        query="""SELECT person_key, id_number, name, gender, birth_date, phone, staff_no, student_no
                 FROM warehouse.dim_person WHERE has_valid_id""",
        order_by="person_key",
        columns=(
            Column("person_key", "Keyed hash of the ID number (joins the other datasets).", "internal"),
            Column("id_number", "Citizen ID number (GB 11643), normalised.", "restricted"),
            Column("name", "Name, normalised.", "internal"),
            Column("gender", "GB/T 2261.1 gender code.", "internal"),
            Column("birth_date", "Date of birth.", "restricted"),
            Column("phone", "Mobile number.", "restricted"),
            Column("staff_no", "工号.", "internal"),
            Column("student_no", "学号.", "internal"),
        ),
        audience="restricted",
    ),
)
DATASETS = DATASETS + RESTRICTED + NATIONAL_DATASETS + MART_DATASETS


def _publish_asset(spec: DatasetSpec) -> dg.AssetsDefinition:
    deps = published_deps(spec)  # what its query reads, by the SQL parser
    # A dataset that leaves out the records breaking an error-severity rule needs the rules' verdict on the
    # current data: it also waits for what those rules' checks read, so in a run the checks are ready no
    # later than it is, and go first (pipelines/rules.py PRIORITY).
    reads_rules = RULE_VIOLATION in deps
    if reads_rules:
        deps = sorted(set(deps) | rule_inputs(), key=str)

    @dg.asset(
        key=["publish", spec.name], group_name="publish", kinds={"parquet", "duckdb"}, owners=[OWNER],
        pool=WAREHOUSE_POOL, tags={"layer": "publish", "audience": spec.audience},
        deps=deps,
        description=f"{spec.description} Published as a versioned Parquet dataset ({spec.audience}).",
        code_version=spec_code_version(spec), metadata={"dagster/column_schema": spec_column_schema(spec)},
    )
    def _publish(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 publisher: PublisherResource, identity: IdentityResource,
                 run_settings: RunSettingsResource) -> dg.MaterializeResult:
        # Only the checks on assets this dataset is built from can hold it back; their truth is the
        # evaluations in Dagster's check storage.
        rules = rule_checks_needed(run_settings.rules()) if reads_rules else {}
        states = check_states(context.instance,
                              {**rules, **upstream_checks(full_asset_graph(context), context.asset_key)})
        holding = [s for s in states if s.holds_back]
        if holding:
            raise dg.Failure(
                description=f"{spec.name} not published: {len(holding)} blocking check(s) not passed on the "
                            "current data: " + ", ".join(s.line() for s in holding[:10])
                            + " — the current version stays as it is",
                metadata={"checks_holding_back": dg.MetadataValue.json([s.line() for s in holding])})
        unjudged = [s for s in states if s.key in rules and not s.current]
        if unjudged:
            raise dg.Failure(
                description=f"{spec.name} not published: the business rules have not judged the current data ("
                            + ", ".join(s.line() for s in unjudged)
                            + "); run their checks first — the current version stays as it is",
                metadata={"rule_checks_not_current": dg.MetadataValue.json([s.line() for s in unjudged])})
        with warehouse.connect() as con:
            held_back = 0
            if reads_rules:
                # The records breaking an error-severity rule, as the rule checks wrote them on this data.
                held_back = con.execute("SELECT count(DISTINCT record_key) FROM quality.rule_violation "
                                        "WHERE severity = 'error'").fetchall()[0][0]
            if spec.name in NATIONAL_SOURCES:
                # xxdm and the zjsjwyxbs key: run_settings.school_code (HUB_SCHOOL_CODE), identity's secrets
                bind_national(con, school_code=run_settings.school_code, key_secret=identity.national_secret())
                problems = national_problems(con, spec.name)
                if problems:
                    raise dg.Failure(
                        description=f"{spec.name} not published: {len(problems)} problem(s): "
                                    + "; ".join(problems[:10]) + " — the current version stays as it is",
                        metadata={"problems": dg.MetadataValue.json(problems)})
            lineage = [r[0] for r in con.execute(
                "SELECT DISTINCT load_id FROM quality.load_audit WHERE status = 'ok'").fetchall()]
            manifest = publisher.publisher().publish(
                con, spec, lineage=lineage,
                quality={"status": "passed", "error_checks_failing": 0, "records_held_back": held_back,
                         "checks_from": "dagster check storage",
                         "checks": [s.manifest_entry() for s in states]})
        where = f"{publisher.root}/{spec.name}/{manifest['version']}"
        context.log.info(f"{spec.name} {manifest['version']} "
                         f"{'published' if manifest['changed'] else 'unchanged, still current'}: {where}")
        notified = "not configured"
        if publisher.catalogue_url:
            # Announced on every run (the receiver keys on name + version), so a failed announcement is
            # made good by the next run even when the data did not change.
            try:
                notified = f"HTTP {notify_catalogue(publisher.catalogue_url, manifest, token=publisher.catalogue_token())}"
            except PublishError as exc:
                raise dg.Failure(description=f"{spec.name} {manifest['version']} is published and current, but {exc}",
                                 metadata={"version": manifest["version"]}) from None
        return dg.MaterializeResult(metadata={
            "dagster/row_count": manifest["row_count"], "version": manifest["version"],
            "changed": manifest["changed"], "path": dg.MetadataValue.path(where),
            "files": dg.MetadataValue.json(manifest["files"]), "audience": spec.audience,
            "encrypted": manifest["encrypted"], "catalogue_notified": notified})

    return _publish


publish_assets = [_publish_asset(s) for s in DATASETS]
