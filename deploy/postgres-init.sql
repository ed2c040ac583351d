-- A second database in the same server for the province's Iceberg catalog (HUB_ICEBERG_CATALOG_URI);
-- the Dagster instance has its own (POSTGRES_DB=dagster).
CREATE DATABASE iceberg OWNER dagster;
