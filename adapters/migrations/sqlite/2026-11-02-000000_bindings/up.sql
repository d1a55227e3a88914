-- Local side: a member bound to an account of the enterprise system (BindingStore).
-- One binding per user; (tenant_id, external_id) is unique, '' meaning "no tenant".
CREATE TABLE bindings (
    user_id     TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    tenant_id   TEXT NOT NULL DEFAULT '',  -- '' = no tenant
    updated_at  INTEGER NOT NULL,
    CONSTRAINT bindings_tenant_external_key UNIQUE (tenant_id, external_id)
);
