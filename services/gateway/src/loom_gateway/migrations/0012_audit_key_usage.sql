-- What a workspace's audit log records beyond console changes (always recorded): API key usage
-- (once per key and minute) can be turned off per workspace (the setup wizard's audit step).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS audit_key_usage boolean NOT NULL DEFAULT true;
