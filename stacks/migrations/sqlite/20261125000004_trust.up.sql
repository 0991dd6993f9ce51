-- Where the tenant's trust stack is (the customer chooses the region; the stack name
-- defaults to the quick-create link's) and what its last verification found.
ALTER TABLE tenants ADD COLUMN trust_stack_name TEXT NOT NULL DEFAULT 'byoc-trust';
-- NULL: the workers' default region.
ALTER TABLE tenants ADD COLUMN trust_region TEXT;
ALTER TABLE tenants ADD COLUMN trust_template_version TEXT;
ALTER TABLE tenants ADD COLUMN verified_at INTEGER;
