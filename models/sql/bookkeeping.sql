-- Tables the hub keeps about its own work. Idempotent: run on every read-write connection.

-- Where each incremental source entity has got to. Advanced in the same transaction as the data.
CREATE TABLE IF NOT EXISTS meta.source_cursor (
    source        VARCHAR NOT NULL,
    entity        VARCHAR NOT NULL,
    cursor_value  VARCHAR,
    load_id       VARCHAR NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, entity)
);

-- Every file taken from an inbox, by content hash: the same file is never loaded twice.
CREATE TABLE IF NOT EXISTS meta.loaded_file (
    sha256     VARCHAR PRIMARY KEY,
    source     VARCHAR NOT NULL,
    entity     VARCHAR NOT NULL,
    file_name  VARCHAR NOT NULL,
    encoding   VARCHAR,
    rows       BIGINT,
    load_id    VARCHAR NOT NULL,
    loaded_at  TIMESTAMPTZ NOT NULL
);

-- One row per load of one source entity. Conservation: rows_read = rows_landed + rows_skipped + rows_rejected
-- (skipped = already in the raw zone from an earlier load, identical).
CREATE TABLE IF NOT EXISTS quality.load_audit (
    load_id        VARCHAR PRIMARY KEY,
    source         VARCHAR NOT NULL,
    entity         VARCHAR NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ,
    duration_s     DOUBLE,
    status         VARCHAR NOT NULL,
    rows_read      BIGINT,
    rows_landed    BIGINT,
    rows_skipped   BIGINT,
    rows_rejected  BIGINT,
    pages          INTEGER,
    files          INTEGER,
    retries        INTEGER,
    cursor_before  VARCHAR,
    cursor_after   VARCHAR,
    encoding       VARCHAR,
    message        VARCHAR
);

-- Rows kept out, with the reason. stage 'raw' rows come from a load; stage 'staging' rows are rebuilt
-- with their staging model, so a rerun replaces them rather than adding to them.
CREATE TABLE IF NOT EXISTS quality.quarantine (
    stage          VARCHAR NOT NULL,
    source         VARCHAR NOT NULL,
    entity         VARCHAR NOT NULL,
    load_id        VARCHAR,
    rule           VARCHAR NOT NULL,
    record_key     VARCHAR,
    detail         VARCHAR,
    original_row   JSON,
    quarantined_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- Versions that lost to a newer one of the same key in the same load (the later source timestamp wins):
-- not errors, kept with the original row. Rebuilt with their staging model, like its quarantine rows.
CREATE TABLE IF NOT EXISTS quality.superseded (
    stage           VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,
    entity          VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    load_id         VARCHAR,
    record_key      VARCHAR,
    winner_load_id  VARCHAR,
    reason          VARCHAR NOT NULL,
    detail          VARCHAR,
    original_row    JSON,
    superseded_at   TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- What a load noticed about rows it landed (a cursor value in the future, ...): written with the load.
CREATE TABLE IF NOT EXISTS quality.load_finding (
    load_id     VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    entity      VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    record_key  VARCHAR,
    field       VARCHAR,
    value       VARCHAR,
    detail      VARCHAR,
    found_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- Values a staging model kept but flagged as implausible (quality/plausibility.yaml, severity flag): a
-- date after the as-of date, control characters stripped from a name, ... Rebuilt with the model (its rows
-- are replaced), so a rerun never duplicates them. column_name and value are the raw column and the value as sent.
CREATE TABLE IF NOT EXISTS quality.value_finding (
    model        VARCHAR NOT NULL,
    source       VARCHAR NOT NULL,
    entity       VARCHAR NOT NULL,
    load_id      VARCHAR,
    row_number   BIGINT,
    record_key   VARCHAR,
    rule         VARCHAR NOT NULL,
    column_name  VARCHAR NOT NULL,
    value        VARCHAR,
    detail       VARCHAR,
    found_at     TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- The type family each source column arrived as (raw keeps text, so a change is reported, never coerced).
CREATE TABLE IF NOT EXISTS meta.source_schema (
    source         VARCHAR NOT NULL,
    entity         VARCHAR NOT NULL,
    column_name    VARCHAR NOT NULL,
    source_type    VARCHAR NOT NULL,
    first_load_id  VARCHAR NOT NULL,
    last_load_id   VARCHAR NOT NULL,
    PRIMARY KEY (source, entity, column_name)
);

-- What reconciling the systems found: conflicting values, identity candidates for review, and
-- cross-system conflicts. Each warehouse model replaces its own rows (column model) when it rebuilds.
CREATE TABLE IF NOT EXISTS quality.reconciliation_issue (
    kind         VARCHAR NOT NULL,
    person_key   VARCHAR,
    systems      VARCHAR,
    record_key   VARCHAR,
    detail       VARCHAR,
    "values"     JSON,
    model        VARCHAR,
    found_at     TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- Party business rules: the rows that break a rule now (each rule replaces its own rows when it runs).
CREATE TABLE IF NOT EXISTS quality.rule_violation (
    rule        VARCHAR NOT NULL,
    severity    VARCHAR NOT NULL,      -- error (blocks publishing) or warning (reported)
    entity      VARCHAR NOT NULL,      -- what the rule looks at, e.g. party.members, warehouse.dim_party_org
    record_key  VARCHAR,               -- that entity's key as the source writes it (人员编号, 党组织编码, ...)
    person_key  VARCHAR,
    org_code    VARCHAR,
    detail      VARCHAR,
    checked_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- Every check run, kept as history: expectation suites and SQL checks alike.
CREATE TABLE IF NOT EXISTS quality.check_result (
    check_name  VARCHAR NOT NULL,
    asset       VARCHAR NOT NULL,      -- Dagster asset key, e.g. raw/hr__staff, warehouse/dim_person
    engine      VARCHAR NOT NULL,      -- great_expectations or sql
    severity    VARCHAR NOT NULL,
    passed      BOOLEAN NOT NULL,
    evaluated   BIGINT,
    unexpected  BIGINT,
    detail      JSON,
    run_id      VARCHAR,
    checked_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- What operators did by hand that changes what the next load does (hub cursor reset, hub inbox retry).
CREATE TABLE IF NOT EXISTS meta.operator_log (
    id        VARCHAR PRIMARY KEY,
    logged_at TIMESTAMPTZ NOT NULL,
    by_user   VARCHAR NOT NULL,
    action    VARCHAR NOT NULL,
    target    VARCHAR NOT NULL,
    before    VARCHAR,
    after     VARCHAR,
    detail    VARCHAR
);
