-- tokend schema, version 4: an optional issuance rate limit per key.
--
-- rate_limit: tokens a key may obtain per minute from each tokend instance
-- (a bucket of that size draining at rate_limit / 60 per second); NULL: no
-- limit. Unlike the scopes it may change over a key's life (an operational
-- setting, not a grant): every change is audited and notified, so that every
-- instance's key cache picks it up at once. A deleted key's limit is frozen
-- like the rest of it.

ALTER TABLE api_keys ADD COLUMN rate_limit integer CHECK (rate_limit BETWEEN 1 AND 1000000);

CREATE OR REPLACE FUNCTION tokend_key_json(k api_keys) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'client_id', k.id, 'account', k.account_id, 'name', k.name,
        'hint', k.secret_hint, 'masked', 'tks_...' || k.secret_hint,
        'scopes', to_jsonb(k.scopes), 'audiences', to_jsonb(k.audiences),
        'subject', k.subject, 'state', tokend_key_state(k),
        'created_at', tokend_ts(k.created_at), 'created_by', k.created_by,
        'expires_at', tokend_ts(k.expires_at), 'last_used_at', tokend_ts(k.last_used_at),
        'disabled_at', tokend_ts(k.disabled_at), 'revoked_at', tokend_ts(k.revoked_at),
        'revoked_by', k.revoked_by, 'revoke_reason', k.revoke_reason,
        'token_lifetime', k.token_lifetime, 'rate_limit', k.rate_limit)
$$;

-- A deleted key's rate limit is frozen with the rest of the row.
CREATE FUNCTION api_keys_rate_limit_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deleted_at IS NOT NULL AND NEW.rate_limit IS DISTINCT FROM OLD.rate_limit THEN
        RAISE EXCEPTION 'key % is deleted', OLD.id USING ERRCODE = 'check_violation', HINT = 'tokend_deleted';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_keys_rate_limit_frozen BEFORE UPDATE OF rate_limit ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_rate_limit_frozen();

-- Audited and notified like any other change of a key (audit rows are never
-- updated, so a key created with a limit gets its own row after key.create).
CREATE FUNCTION api_keys_rate_limit_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'INSERT' AND NEW.rate_limit IS NOT NULL)
       OR (TG_OP = 'UPDATE' AND NEW.rate_limit IS DISTINCT FROM OLD.rate_limit) THEN
        INSERT INTO audit_log (actor, action, account_id, key_id, address, detail)
        VALUES (tokend_actor(), 'key.set_rate_limit', NEW.account_id, NEW.id, tokend_address(),
                jsonb_build_object('from', CASE WHEN TG_OP = 'UPDATE' THEN OLD.rate_limit END,
                                   'to', NEW.rate_limit));
        IF TG_OP = 'UPDATE' THEN
            PERFORM pg_notify('tokend_keys', NEW.id);
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_rate_limit_audit AFTER INSERT OR UPDATE OF rate_limit ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_rate_limit_audit();

-- The admin API: create with a limit (one transaction: the key, then its
-- limit; an idempotent replay changes nothing), and set or clear it.
CREATE FUNCTION tokend_admin_create_key(
    p_actor text, p_address text, p_account text, p_id text, p_name text, p_hash bytea,
    p_hint text, p_scopes text[], p_audiences text[], p_subject text, p_expires_at timestamptz,
    p_lifetime integer, p_idem text, p_fingerprint text, p_allow_operator boolean,
    p_rate_limit integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
    k api_keys%ROWTYPE;
BEGIN
    r := tokend_admin_create_key(p_actor, p_address, p_account, p_id, p_name, p_hash, p_hint,
                                 p_scopes, p_audiences, p_subject, p_expires_at, p_lifetime,
                                 p_idem, p_fingerprint, p_allow_operator);
    IF p_rate_limit IS NOT NULL AND NOT (r->>'replayed')::boolean THEN
        UPDATE api_keys SET rate_limit = p_rate_limit WHERE id = p_id RETURNING * INTO k;
        r := jsonb_set(r, '{key}', tokend_key_json(k));
    END IF;
    RETURN r;
END $$;

CREATE FUNCTION tokend_admin_set_rate_limit(
    p_actor text, p_address text, p_account text, p_id text, p_limit integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    SELECT * INTO k FROM api_keys WHERE id = p_id AND (p_account IS NULL OR account_id = p_account) FOR UPDATE;
    IF NOT FOUND OR k.deleted_at IS NOT NULL THEN
        RAISE EXCEPTION 'no key %', p_id USING HINT = 'not_found';
    END IF;
    IF p_limit IS NOT NULL AND (p_limit < 1 OR p_limit > 1000000) THEN
        RAISE EXCEPTION 'rate_limit must be between 1 and 1000000 tokens per minute' USING HINT = 'invalid';
    END IF;
    UPDATE api_keys SET rate_limit = p_limit WHERE id = p_id RETURNING * INTO k;
    RETURN tokend_key_json(k);
END $$;

-- PATCH /admin/v1/keys/{id}: the name and/or the rate limit (p_set_rate:
-- whether the request named rate_limit at all; p_rate NULL then removes it).
CREATE FUNCTION tokend_admin_patch_key(
    p_actor text, p_address text, p_account text, p_id text, p_name text,
    p_set_rate boolean, p_rate integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
BEGIN
    IF p_name IS NOT NULL THEN
        r := tokend_admin_key_action(p_actor, p_address, p_account, p_id, 'rename', p_name, false);
    END IF;
    IF p_set_rate THEN
        r := tokend_admin_set_rate_limit(p_actor, p_address, p_account, p_id, p_rate);
    END IF;
    IF r IS NULL THEN
        RAISE EXCEPTION 'nothing to change: give name or rate_limit' USING HINT = 'invalid';
    END IF;
    RETURN r;
END $$;
