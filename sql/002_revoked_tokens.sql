-- tokend schema, version 2: access tokens revoked by their client (RFC 7009).
--
-- A revoked token is remembered by its jti until it expires (then purged by
-- tokend); the row names the key and account so that introspection needs one
-- lookup. Inserting sends NOTIFY tokend_tokens with the jti. Rows may be
-- deleted only once expired (the purge); nothing else changes them.

CREATE TABLE revoked_tokens (
    jti          text PRIMARY KEY CHECK (jti ~ '^[A-Za-z0-9_-]{16,64}$'),
    key_id       text NOT NULL REFERENCES api_keys (id),
    account_id   text NOT NULL REFERENCES accounts (id),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);

CREATE FUNCTION revoked_tokens_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'revoked tokens never change' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.expires_at > now() THEN
        RAISE EXCEPTION 'a revoked token is kept until it expires' USING ERRCODE = 'check_violation';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER revoked_tokens_guard BEFORE UPDATE OR DELETE ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION revoked_tokens_guard();

CREATE FUNCTION revoked_tokens_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (actor, action, account_id, key_id, address, detail)
    VALUES (tokend_actor(), 'token.revoke', NEW.account_id, NEW.key_id, tokend_address(),
            jsonb_build_object('jti', NEW.jti, 'expires_at', NEW.expires_at));
    PERFORM pg_notify('tokend_tokens', NEW.jti);
    RETURN NULL;
END $$;
CREATE TRIGGER revoked_tokens_after_insert AFTER INSERT ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION revoked_tokens_after_insert();

-- tokend's own scopes: introspection, and (for the admin API) administration.
-- The audit log records them as the migration's doing.
SELECT set_config('tokend.actor', 'migration:002_revoked_tokens', true);
INSERT INTO scopes (name, description) VALUES
    ('tokend:introspect', 'Introspect access tokens of the own account (RFC 7662)'),
    ('tokend:admin:read', 'Read the own account''s keys, scopes and audit log (admin API)'),
    ('tokend:admin:write', 'Manage the own account''s keys (admin API)'),
    ('tokend:operator', 'Operate every account (admin API); never grantable by an account administrator')
ON CONFLICT (name) DO NOTHING;
