-- ---
-- description: Every 党组织编码 of a party organisation the party system exports, in staging or quarantined there for a row-level defect (the organisation exists; the record is what is wrong). The facts keep a record only when its organisation is in this table and report the others in quality.reconciliation_issue as orphan_reference; built once here so that every fact uses the same definition.
-- columns:
--   org_code: A 党组织编码 the party system exports, in staging or quarantined there.
-- ---
SELECT org_code FROM staging.stg_party_orgs
UNION
SELECT trim(record_key) FROM quality.quarantine WHERE stage = 'staging' AND source = 'party' AND entity = 'orgs'
