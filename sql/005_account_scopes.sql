-- tokend schema, version 5: who may grant what (issue 10, findings 1, 6b, 9; issue 11).
--
--   * account_scopes: the scopes an operator allowed an account to hold. Every
--     new key's scopes must be in its account's list, whoever creates it (an
--     operator grants first). Removing a scope stops new keys only: existing
--     keys keep their scopes (they never change). The migration grants every
--     account the scopes its live keys hold, so nothing that works breaks.
--   * tokend_admin_create_key takes the caller's own token scopes, its key's
--     expiry and an explicit operator flag, and refuses: tokend:operator unless
--     operator; any other tokend:* scope the caller's token does not hold
--     (tokend:admin:write counts as holding tokend:admin:read); an expiry later
--     than the caller's key's (or none when the caller's key expires).
--   * tokend_admin_key_action / _patch_key / _set_rate_limit take p_operator:
--     a NULL account means "any account" only when p_operator is true; a NULL
--     account otherwise, or a NULL flag, refuses. A non-operator may not change
--     a key holding tokend:operator.
--   * a subject never starts with tk_ or tks_ (key IDs and secrets); the joined
--     scope string fits the 1024 bytes a token carries; names, subjects and
--     revocation reasons (and account names) hold no bidi control, zero-width
--     or other invisible format character.
-- Refusal HINTs added: scope_not_granted (403), forbidden (403),
-- outlives_creator (400, field expires_at), subject_reserved (400, subject),
-- scopes_too_long (400, scopes).

CREATE TABLE account_scopes (
    account_id   text NOT NULL REFERENCES accounts (id),
    scope        text NOT NULL REFERENCES scopes (name),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    granted_by   text NOT NULL DEFAULT '',
    PRIMARY KEY (account_id, scope)
);

-- Display text: no bidi controls (U+061C, U+200E-U+200F, U+202A-U+202E,
-- U+2066-U+2069), zero-width and invisible characters (U+00AD, U+180E,
-- U+200B-U+200D, U+2060-U+2064, U+206A-U+206F, U+FEFF, U+FFF9-U+FFFB, tags
-- U+E0000-U+E007F), line and paragraph separators (U+2028, U+2029), nor
-- control characters. NULL is safe (the column's own CHECKs decide).
CREATE FUNCTION tokend_text_is_safe(t text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT t IS NULL OR t !~ ('[[:cntrl:]\u0080-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e'
                              '\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]')
$$;

CREATE FUNCTION tokend_scope_string_fits(s text[]) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(octet_length(array_to_string(s, ' ')), 0) <= 1024
$$;

-- Checked on insert and whenever the column changes (old rows with such text
-- stay usable: their last-used time still moves).
CREATE FUNCTION api_keys_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    IF (TG_OP = 'INSERT' OR NEW.name IS DISTINCT FROM OLD.name) AND NOT tokend_text_is_safe(NEW.name) THEN
        RAISE EXCEPTION 'name must not contain invisible, bidi or control characters'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'api_keys_name_check';
    END IF;
    IF (TG_OP = 'INSERT' OR NEW.revoke_reason IS DISTINCT FROM OLD.revoke_reason)
       AND NOT tokend_text_is_safe(NEW.revoke_reason) THEN
        RAISE EXCEPTION 'reason must not contain invisible, bidi or control characters'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'api_keys_revoke_reason_check';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        RETURN NEW;
    END IF;
    IF NOT tokend_text_is_safe(NEW.subject) THEN
        RAISE EXCEPTION 'subject must not contain invisible, bidi or control characters'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'api_keys_subject_check';
    END IF;
    IF NEW.subject LIKE 'tk\_%' OR NEW.subject LIKE 'tks\_%' THEN
        RAISE EXCEPTION 'subject must not start with tk_ or tks_ (reserved for key IDs and secrets)'
            USING ERRCODE = 'check_violation', HINT = 'tokend_subject_reserved';
    END IF;
    IF NOT tokend_scope_string_fits(NEW.scopes) THEN
        RAISE EXCEPTION 'scopes joined by spaces must be at most 1024 bytes (the scope string of a token)'
            USING ERRCODE = 'check_violation', HINT = 'tokend_scopes_too_long';
    END IF;
    SELECT s INTO missing FROM unnest(NEW.scopes) AS s
     WHERE EXISTS (SELECT 1 FROM scopes c WHERE c.name = s)
       AND NOT EXISTS (SELECT 1 FROM account_scopes g WHERE g.account_id = NEW.account_id AND g.scope = s)
     LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'scope "%" is not granted to account "%" (an operator grants it: tokend account grant-scopes)',
            missing, NEW.account_id USING ERRCODE = 'check_violation', HINT = 'tokend_scope_not_granted';
    END IF;
    RETURN NEW;
END $$;
-- Named to fire after api_keys_before_insert (unknown scopes, limits) on insert.
CREATE TRIGGER api_keys_rules BEFORE INSERT OR UPDATE OF name, revoke_reason ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_rules();

CREATE FUNCTION accounts_rules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'INSERT' OR NEW.name IS DISTINCT FROM OLD.name) AND NOT tokend_text_is_safe(NEW.name) THEN
        RAISE EXCEPTION 'name must not contain invisible, bidi or control characters'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_name_check';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_rules BEFORE INSERT OR UPDATE OF name ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_rules();

-- Every grant and removal is audited.
CREATE FUNCTION account_scopes_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO audit_log (actor, action, account_id, address, detail)
        VALUES (tokend_actor(), 'account.grant_scope', NEW.account_id, tokend_address(),
                jsonb_build_object('scope', NEW.scope));
        RETURN NULL;
    END IF;
    INSERT INTO audit_log (actor, action, account_id, address, detail)
    VALUES (tokend_actor(), 'account.revoke_scope', OLD.account_id, tokend_address(),
            jsonb_build_object('scope', OLD.scope));
    RETURN NULL;
END $$;
CREATE TRIGGER account_scopes_audit AFTER INSERT OR DELETE ON account_scopes
    FOR EACH ROW EXECUTE FUNCTION account_scopes_audit();

-- Existing databases: each account holds what its live keys hold.
INSERT INTO account_scopes (account_id, scope, granted_by)
SELECT DISTINCT k.account_id, s, 'migration:005'
  FROM api_keys k, unnest(k.scopes) AS s
 WHERE k.revoked_at IS NULL AND k.deleted_at IS NULL;

CREATE OR REPLACE FUNCTION tokend_account_json(a accounts) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', a.id, 'name', a.name, 'key_limit', a.key_limit,
        'active_keys', (SELECT count(*) FROM api_keys k WHERE k.account_id = a.id AND tokend_key_is_active(k)),
        'scopes', coalesce((SELECT jsonb_agg(g.scope ORDER BY g.scope) FROM account_scopes g
                            WHERE g.account_id = a.id), '[]'::jsonb),
        'created_at', tokend_ts(a.created_at), 'disabled_at', tokend_ts(a.disabled_at))
$$;

-- Grant and remove scopes of an account (operator only: the CLI, or the API's
-- operator route). Unknown accounts and scopes refuse; granting a granted
-- scope changes nothing; removing one not granted refuses.
CREATE FUNCTION tokend_account_scopes(
    p_actor text, p_address text, p_account text, p_grant text[], p_revoke text[])
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a accounts%ROWTYPE;
    bad text;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    SELECT * INTO a FROM accounts WHERE id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no account "%"', p_account USING HINT = 'not_found';
    END IF;
    SELECT s INTO bad FROM unnest(coalesce(p_grant, '{}') || coalesce(p_revoke, '{}')) AS s
     WHERE s IS NULL OR NOT EXISTS (SELECT 1 FROM scopes c WHERE c.name = s) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown scope "%"', bad USING HINT = 'unknown_scope';
    END IF;
    SELECT s INTO bad FROM unnest(coalesce(p_revoke, '{}')) AS s
     WHERE NOT EXISTS (SELECT 1 FROM account_scopes g WHERE g.account_id = p_account AND g.scope = s) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'scope "%" is not granted to account "%"', bad, p_account USING HINT = 'invalid';
    END IF;
    DELETE FROM account_scopes WHERE account_id = p_account AND scope = ANY (coalesce(p_revoke, '{}'));
    INSERT INTO account_scopes (account_id, scope, granted_by)
    SELECT DISTINCT p_account, s, p_actor FROM unnest(coalesce(p_grant, '{}')) AS s
    ON CONFLICT DO NOTHING;
    RETURN tokend_account_json(a);
END $$;

-- PUT /admin/v1/accounts/{id}/scopes: the list becomes exactly p_scopes.
CREATE FUNCTION tokend_account_set_scopes(p_actor text, p_address text, p_account text, p_scopes text[])
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF p_scopes IS NULL THEN
        RAISE EXCEPTION 'scopes is required' USING HINT = 'invalid';
    END IF;
    RETURN tokend_account_scopes(p_actor, p_address, p_account,
        ARRAY(SELECT DISTINCT s FROM unnest(p_scopes) s),
        ARRAY(SELECT g.scope FROM account_scopes g WHERE g.account_id = p_account AND g.scope <> ALL (p_scopes)));
END $$;

-- The one way keys are created (admin API and local CLI alike).
DROP FUNCTION tokend_admin_create_key(text, text, text, text, text, bytea, text, text[], text[], text,
                                      timestamptz, integer, text, text, boolean, integer);
DROP FUNCTION tokend_admin_create_key(text, text, text, text, text, bytea, text, text[], text[], text,
                                      timestamptz, integer, text, text, boolean);

CREATE FUNCTION tokend_admin_create_key(
    p_actor text, p_address text, p_account text, p_id text, p_name text, p_hash bytea,
    p_hint text, p_scopes text[], p_audiences text[], p_subject text, p_expires_at timestamptz,
    p_lifetime integer, p_idem text, p_fingerprint text, p_rate_limit integer,
    p_operator boolean, p_caller_scopes text[], p_caller_expires timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    prior idempotency_keys%ROWTYPE;
    k api_keys%ROWTYPE;
    msg text;
    hint text;
    cons text;
    bad text;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    IF p_operator IS NULL OR p_account IS NULL OR (NOT p_operator AND p_caller_scopes IS NULL) THEN
        RAISE EXCEPTION 'the caller is not identified (account, operator flag and scopes are required)'
            USING HINT = 'forbidden';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM accounts WHERE id = p_account) THEN
        RAISE EXCEPTION 'no account "%"', p_account USING HINT = 'not_found';
    END IF;
    IF p_idem IS NOT NULL THEN
        -- Serialise retries of one idempotency key: the first one wins.
        PERFORM pg_advisory_xact_lock(hashtext(p_account || '/' || p_idem));
        SELECT * INTO prior FROM idempotency_keys WHERE account_id = p_account AND idem_key = p_idem;
        IF FOUND THEN
            IF prior.fingerprint <> p_fingerprint THEN
                RAISE EXCEPTION 'this Idempotency-Key was used with a different request'
                    USING HINT = 'idempotency_mismatch';
            END IF;
            SELECT * INTO k FROM api_keys WHERE id = prior.key_id;
            RETURN jsonb_build_object('replayed', true, 'key', tokend_key_json(k));
        END IF;
    END IF;
    -- Delegation: tokend:operator only from an operator; another tokend:* scope
    -- only from a caller whose token holds it (write implies read).
    IF 'tokend:operator' = ANY (p_scopes) AND NOT p_operator THEN
        RAISE EXCEPTION 'the scope tokend:operator can only be granted by an operator'
            USING HINT = 'forbidden_scope';
    END IF;
    IF NOT p_operator THEN
        SELECT s INTO bad FROM unnest(p_scopes) AS s
         WHERE s LIKE 'tokend:%' AND s <> ALL (p_caller_scopes)
           AND NOT (s = 'tokend:admin:read' AND 'tokend:admin:write' = ANY (p_caller_scopes))
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'the scope % can only be granted by a caller whose token holds it', bad
                USING HINT = 'forbidden_scope';
        END IF;
    END IF;
    -- A key never outlives the key that created it.
    IF p_caller_expires IS NOT NULL AND (p_expires_at IS NULL OR p_expires_at > p_caller_expires) THEN
        RAISE EXCEPTION 'expires_at must be set and no later than the expiry of your own key (%)',
            tokend_ts(p_caller_expires) USING HINT = 'outlives_creator';
    END IF;
    BEGIN
        INSERT INTO api_keys (id, account_id, name, secret_hash, secret_hint, scopes, audiences,
                              subject, expires_at, token_lifetime, created_by)
        VALUES (p_id, p_account, p_name, p_hash, p_hint, p_scopes, p_audiences, p_subject,
                p_expires_at, p_lifetime, p_actor)
        RETURNING * INTO k;
    EXCEPTION WHEN check_violation THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT, cons = CONSTRAINT_NAME;
        IF cons <> '' THEN   -- a column's rule: the API names the field
            RAISE EXCEPTION '%', msg USING ERRCODE = 'check_violation', CONSTRAINT = cons;
        END IF;
        RAISE EXCEPTION '%', msg USING HINT = CASE hint
            WHEN 'tokend_key_limit' THEN 'key_limit' WHEN 'tokend_unknown_scope' THEN 'unknown_scope'
            WHEN 'tokend_scope_not_granted' THEN 'scope_not_granted'
            WHEN 'tokend_subject_reserved' THEN 'subject_reserved'
            WHEN 'tokend_scopes_too_long' THEN 'scopes_too_long'
            ELSE 'invalid' END;
    END;
    IF p_rate_limit IS NOT NULL THEN
        UPDATE api_keys SET rate_limit = p_rate_limit WHERE id = p_id RETURNING * INTO k;
    END IF;
    IF p_idem IS NOT NULL THEN
        INSERT INTO idempotency_keys (account_id, idem_key, fingerprint, key_id)
        VALUES (p_account, p_idem, p_fingerprint, k.id);
    END IF;
    RETURN jsonb_build_object('replayed', false, 'key', tokend_key_json(k));
END $$;

-- Key changes: p_account NULL means every account only for an operator.
DROP FUNCTION tokend_admin_patch_key(text, text, text, text, text, boolean, integer);
DROP FUNCTION tokend_admin_set_rate_limit(text, text, text, text, integer);
DROP FUNCTION tokend_admin_key_action(text, text, text, text, text, text, boolean);

-- The key a caller may change, locked; refuses what the caller may not touch.
CREATE FUNCTION tokend_admin_lock_key(p_account text, p_id text, p_operator boolean)
RETURNS api_keys LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
BEGIN
    IF p_operator IS NULL OR (NOT p_operator AND p_account IS NULL) THEN
        RAISE EXCEPTION 'the caller''s account is required' USING HINT = 'forbidden';
    END IF;
    SELECT * INTO k FROM api_keys
     WHERE id = p_id AND (p_operator AND p_account IS NULL OR account_id = p_account) FOR UPDATE;
    IF NOT FOUND OR k.deleted_at IS NOT NULL THEN
        RAISE EXCEPTION 'no key %', p_id USING HINT = 'not_found';
    END IF;
    IF NOT p_operator AND 'tokend:operator' = ANY (k.scopes) THEN
        RAISE EXCEPTION 'key % holds tokend:operator: only an operator changes it', p_id USING HINT = 'forbidden';
    END IF;
    RETURN k;
END $$;

-- rename | disable | enable | revoke | delete.
CREATE FUNCTION tokend_admin_key_action(
    p_actor text, p_address text, p_account text, p_id text, p_action text, p_arg text,
    p_confirm boolean, p_operator boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
    st text;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    k := tokend_admin_lock_key(p_account, p_id, p_operator);
    st := tokend_key_state(k);
    IF p_action = 'rename' THEN
        UPDATE api_keys SET name = p_arg WHERE id = p_id RETURNING * INTO k;
    ELSIF p_action IN ('disable', 'enable') THEN
        IF st = 'revoked' THEN
            RAISE EXCEPTION 'key % is revoked: revocation is permanent', p_id USING HINT = 'revoked';
        END IF;
        UPDATE api_keys SET disabled_at = CASE WHEN p_action = 'disable' THEN coalesce(disabled_at, now()) END
         WHERE id = p_id RETURNING * INTO k;
    ELSIF p_action = 'revoke' THEN
        IF st = 'revoked' THEN
            RAISE EXCEPTION 'key % is already revoked', p_id USING HINT = 'revoked';
        END IF;
        UPDATE api_keys SET revoked_at = now(), revoked_by = p_actor, revoke_reason = p_arg
         WHERE id = p_id RETURNING * INTO k;
    ELSIF p_action = 'delete' THEN
        IF NOT p_confirm AND k.last_used_at IS NOT NULL AND k.last_used_at > now() - interval '24 hours' THEN
            RAISE EXCEPTION 'key % was used in the last 24 hours (last used %); confirm to delete it',
                p_id, tokend_ts(k.last_used_at) USING HINT = 'recently_used';
        END IF;
        UPDATE api_keys SET deleted_at = now() WHERE id = p_id RETURNING * INTO k;
    ELSE
        RAISE EXCEPTION 'unknown action %', p_action USING HINT = 'invalid';
    END IF;
    RETURN tokend_key_json(k);
END $$;

CREATE FUNCTION tokend_admin_set_rate_limit(
    p_actor text, p_address text, p_account text, p_id text, p_limit integer, p_operator boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    k := tokend_admin_lock_key(p_account, p_id, p_operator);
    IF p_limit IS NOT NULL AND (p_limit < 1 OR p_limit > 1000000) THEN
        RAISE EXCEPTION 'rate_limit must be between 1 and 1000000 tokens per minute' USING HINT = 'invalid';
    END IF;
    UPDATE api_keys SET rate_limit = p_limit WHERE id = p_id RETURNING * INTO k;
    RETURN tokend_key_json(k);
END $$;

CREATE FUNCTION tokend_admin_patch_key(
    p_actor text, p_address text, p_account text, p_id text, p_name text,
    p_set_rate boolean, p_rate integer, p_operator boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
BEGIN
    IF p_name IS NOT NULL THEN
        r := tokend_admin_key_action(p_actor, p_address, p_account, p_id, 'rename', p_name, false, p_operator);
    END IF;
    IF p_set_rate THEN
        r := tokend_admin_set_rate_limit(p_actor, p_address, p_account, p_id, p_rate, p_operator);
    END IF;
    IF r IS NULL THEN
        RAISE EXCEPTION 'nothing to change: give name or rate_limit' USING HINT = 'invalid';
    END IF;
    RETURN r;
END $$;
