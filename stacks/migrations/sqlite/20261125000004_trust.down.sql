ALTER TABLE tenants DROP COLUMN verified_at;
ALTER TABLE tenants DROP COLUMN trust_template_version;
ALTER TABLE tenants DROP COLUMN trust_region;
ALTER TABLE tenants DROP COLUMN trust_stack_name;
