-- tokend schema, version 3: the admin API's operations, each one atomic call.
--
-- The API layer authenticates and authorises; these functions do the work in
-- one transaction with the actor and address recorded by the audit triggers.
-- Refusals raise with a HINT naming the API error:
--   not_found (404), revoked (409), deleted (404), recently_used (409),
--   key_limit (409), unknown_scope (400), forbidden_scope (403),
--   idempotency_mismatch (422), invalid (400).

CREATE TABLE idempotency_keys (
    account_id   text NOT NULL REFERENCES accounts (id),
    idem_key     text NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    fingerprint  text NOT NULL,
    key_id       text NOT NULL REFERENCES api_keys (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, idem_key)
);

-- The masked view of a key: never the hash.
CREATE FUNCTION tokend_key_json(k api_keys) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'client_id', k.id, 'account', k.account_id, 'name', k.name,
        'hint', k.secret_hint, 'masked', 'tks_...' || k.secret_hint,
        'scopes', to_jsonb(k.scopes), 'audiences', to_jsonb(k.audiences),
        'subject', k.subject, 'state', tokend_key_state(k),
        'created_at', tokend_ts(k.created_at), 'created_by', k.created_by,
        'expires_at', tokend_ts(k.expires_at), 'last_used_at', tokend_ts(k.last_used_at),
        'disabled_at', tokend_ts(k.disabled_at), 'revoked_at', tokend_ts(k.revoked_at),
        'revoked_by', k.revoked_by, 'revoke_reason', k.revoke_reason,
        'token_lifetime', k.token_lifetime)
$$;

CREATE FUNCTION tokend_account_json(a accounts) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', a.id, 'name', a.name, 'key_limit', a.key_limit,
        'active_keys', (SELECT count(*) FROM api_keys k WHERE k.account_id = a.id AND tokend_key_is_active(k)),
        'created_at', tokend_ts(a.created_at), 'disabled_at', tokend_ts(a.disabled_at))
$$;

CREATE FUNCTION tokend_admin_begin(p_actor text, p_address text) RETURNS void LANGUAGE sql AS $$
    SELECT set_config('tokend.actor', p_actor, true), set_config('tokend.address', coalesce(p_address, ''), true);
$$;

CREATE FUNCTION tokend_admin_create_key(
    p_actor text, p_address text, p_account text, p_id text, p_name text, p_hash bytea,
    p_hint text, p_scopes text[], p_audiences text[], p_subject text, p_expires_at timestamptz,
    p_lifetime integer, p_idem text, p_fingerprint text, p_allow_operator boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    prior idempotency_keys%ROWTYPE;
    k api_keys%ROWTYPE;
    msg text;
    hint text;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
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
    IF 'tokend:operator' = ANY (p_scopes) AND NOT p_allow_operator THEN
        RAISE EXCEPTION 'the scope tokend:operator can only be granted by an operator'
            USING HINT = 'forbidden_scope';
    END IF;
    BEGIN
        INSERT INTO api_keys (id, account_id, name, secret_hash, secret_hint, scopes, audiences,
                              subject, expires_at, token_lifetime, created_by)
        VALUES (p_id, p_account, p_name, p_hash, p_hint, p_scopes, p_audiences, p_subject,
                p_expires_at, p_lifetime, p_actor)
        RETURNING * INTO k;
    EXCEPTION WHEN check_violation THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
        RAISE EXCEPTION '%', msg USING HINT = CASE hint
            WHEN 'tokend_key_limit' THEN 'key_limit' WHEN 'tokend_unknown_scope' THEN 'unknown_scope'
            ELSE 'invalid' END;
    END;
    IF p_idem IS NOT NULL THEN
        INSERT INTO idempotency_keys (account_id, idem_key, fingerprint, key_id)
        VALUES (p_account, p_idem, p_fingerprint, k.id);
    END IF;
    RETURN jsonb_build_object('replayed', false, 'key', tokend_key_json(k));
END $$;

-- rename | disable | enable | revoke | delete, on a key of p_account (NULL: any account).
CREATE FUNCTION tokend_admin_key_action(
    p_actor text, p_address text, p_account text, p_id text, p_action text, p_arg text,
    p_confirm boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
    st text;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    SELECT * INTO k FROM api_keys WHERE id = p_id AND (p_account IS NULL OR account_id = p_account) FOR UPDATE;
    IF NOT FOUND OR k.deleted_at IS NOT NULL THEN
        RAISE EXCEPTION 'no key %', p_id USING HINT = 'not_found';
    END IF;
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
