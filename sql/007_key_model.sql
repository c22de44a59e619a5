-- tokend schema, version 7: roles, members and member keys, environments,
-- custom claims (issue 13, points 1-4).
--
--   * roles: a global catalogue of named scope sets, like the scope catalogue
--     (an operator defines "developer" once for every tenant; each account's
--     allow-list still bounds what a key of the role may hold). A key created
--     with a role gets the role's scopes copied at creation and keeps the
--     role's name; later changes of the role never touch existing keys.
--   * members: the people of an account (account_id, id). A member key
--     (api_keys.member_id) has subject = the member's ID, so its tokens carry
--     sub "<account>:<member>" (the existing participant rule: one account can
--     never name another's member or key). Deactivating a member disables its
--     keys in the same transaction (one key.disable audit row each); a key of
--     an inactive member can be neither created nor enabled.
--   * environment: live or test, chosen at creation (default live), immutable,
--     carried in every token as the claim "env".
--   * claims: an immutable JSON object of custom claims every token of the key
--     carries: strings, numbers, booleans and arrays of strings; at most 1024
--     bytes as stored text; no name of a registered JWT claim or of tokend's.
--   * key IDs may carry any operator-configured prefix (tokend.conf
--     key_id_prefix_live / key_id_prefix_test; the secret's is secret_prefix):
--     keys made under an earlier prefix keep working.
-- Refusal HINTs added: unknown_role (400, role), role_and_scopes (400, role),
-- unknown_member (400, member), member_inactive (409), invalid_claims (400,
-- claims), invalid_environment (400, environment), conflict (409).

CREATE TABLE roles (
    name          text PRIMARY KEY
                  CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    description   text NOT NULL DEFAULT ''
                  CHECK (length(description) <= 500 AND tokend_text_is_safe(description)),
    scopes        text[] NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    account_id     text NOT NULL REFERENCES accounts (id),
    id             text NOT NULL
                   CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$' AND id !~ '^tks?_'),
    name           text NOT NULL
                   CHECK (length(name) BETWEEN 1 AND 100 AND tokend_text_is_safe(name)),
    created_at     timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz,
    PRIMARY KEY (account_id, id)
);

ALTER TABLE api_keys
    ADD COLUMN role text REFERENCES roles (name),
    ADD COLUMN member_id text,
    ADD COLUMN environment text NOT NULL DEFAULT 'live' CHECK (environment IN ('live', 'test')),
    ADD COLUMN claims jsonb NOT NULL DEFAULT '{}',
    ADD FOREIGN KEY (account_id, member_id) REFERENCES members (account_id, id);
-- Key IDs under any operator-configured prefix (lib keyfmt.h: 2-16 characters
-- [a-z0-9_], a letter first, '_' last; then 22 random and 6 checksum base62).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_id_check,
    ADD CONSTRAINT api_keys_id_check CHECK (id ~ '^[a-z][a-z0-9_]{0,14}_[0-9A-Za-z]{28}$');
CREATE INDEX api_keys_member_idx ON api_keys (account_id, member_id) WHERE member_id IS NOT NULL;

-- Claim names a key may not set: the registered JWT claims (RFC 7519), the
-- access-token and introspection claims (RFC 9068, 7662, 8693, 8705, 9449,
-- OpenID Connect Core, the token status list) and tokend's own.
CREATE FUNCTION tokend_reserved_claim(n text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT n = ANY (ARRAY['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti',
        'client_id', 'scope', 'acct', 'env', 'role', 'roles', 'groups', 'entitlements',
        'auth_time', 'acr', 'amr', 'azp', 'nonce', 'sid', 'at_hash', 'c_hash',
        'cnf', 'act', 'may_act', 'active', 'token_type', 'username', 'status', 'typ', 'kid', 'alg',
        'member', 'kind', 'name', 'email', 'txn', 'events', 'toe', 'ath', 'htm', 'htu'])
        OR n LIKE 'tokend%'
$$;

-- NULL when `c` is acceptable custom claims, else why not.
CREATE FUNCTION tokend_claims_problem(c jsonb) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    e record;
BEGIN
    IF c IS NULL THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(c) <> 'object' THEN
        RETURN 'claims must be a JSON object';
    END IF;
    IF octet_length(c::text) > 1024 THEN
        RETURN 'claims must be at most 1024 bytes of JSON';
    END IF;
    FOR e IN SELECT key, value FROM jsonb_each(c) LOOP
        IF e.key !~ '^[A-Za-z][A-Za-z0-9_.:-]{0,63}$' THEN
            RETURN format('claim name %s must be 1-64 characters [A-Za-z0-9_.:-] starting with a letter', to_json(e.key));
        END IF;
        IF tokend_reserved_claim(e.key) THEN
            RETURN format('claim %s is a registered or tokend claim and cannot be set', e.key);
        END IF;
        IF jsonb_typeof(e.value) = 'array' THEN
            IF EXISTS (SELECT 1 FROM jsonb_array_elements(e.value) x WHERE jsonb_typeof(x) <> 'string') THEN
                RETURN format('claim %s: an array may hold only strings', e.key);
            END IF;
        ELSIF jsonb_typeof(e.value) NOT IN ('string', 'number', 'boolean') THEN
            RETURN format('claim %s: a value must be a string, number, boolean or array of strings (not %s)',
                          e.key, jsonb_typeof(e.value));
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

-- Role, member, environment and claims never change; a member key's subject is
-- its member; a key of an inactive member is neither created nor enabled.
CREATE FUNCTION api_keys_model_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m members%ROWTYPE;
    why text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.role IS DISTINCT FROM OLD.role OR NEW.member_id IS DISTINCT FROM OLD.member_id
           OR NEW.environment IS DISTINCT FROM OLD.environment OR NEW.claims IS DISTINCT FROM OLD.claims THEN
            RAISE EXCEPTION 'key %: role, member, environment and claims never change; create a new key instead', OLD.id
                USING ERRCODE = 'check_violation', HINT = 'tokend_immutable';
        END IF;
        IF NEW.member_id IS NOT NULL AND OLD.disabled_at IS NOT NULL AND NEW.disabled_at IS NULL THEN
            SELECT * INTO m FROM members WHERE account_id = NEW.account_id AND id = NEW.member_id FOR SHARE;
            IF m.deactivated_at IS NOT NULL THEN
                RAISE EXCEPTION 'key % belongs to member % who is deactivated', NEW.id, NEW.member_id
                    USING ERRCODE = 'check_violation', HINT = 'tokend_member_inactive';
            END IF;
        END IF;
        RETURN NEW;
    END IF;
    why := tokend_claims_problem(NEW.claims);
    IF why IS NOT NULL THEN
        RAISE EXCEPTION '%', why USING ERRCODE = 'check_violation', HINT = 'tokend_invalid_claims';
    END IF;
    IF NEW.member_id IS NOT NULL THEN
        SELECT * INTO m FROM members WHERE account_id = NEW.account_id AND id = NEW.member_id FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'account "%" has no member "%"', NEW.account_id, NEW.member_id
                USING ERRCODE = 'check_violation', HINT = 'tokend_unknown_member';
        END IF;
        IF m.deactivated_at IS NOT NULL THEN
            RAISE EXCEPTION 'member "%" is deactivated: no new keys', NEW.member_id
                USING ERRCODE = 'check_violation', HINT = 'tokend_member_inactive';
        END IF;
        IF NEW.subject IS NOT NULL AND NEW.subject <> NEW.member_id THEN
            RAISE EXCEPTION 'a member key''s subject is its member: give member or subject, not both'
                USING ERRCODE = 'check_violation', HINT = 'tokend_member_and_subject';
        END IF;
        NEW.subject := NEW.member_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_keys_model_rules BEFORE INSERT OR UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_model_rules();

-- Roles: the scopes exist in the catalogue; every add and change audited.
CREATE FUNCTION roles_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.name IS DISTINCT FROM OLD.name OR NEW.created_at IS DISTINCT FROM OLD.created_at) THEN
        RAISE EXCEPTION 'a role''s name never changes' USING ERRCODE = 'check_violation';
    END IF;
    SELECT s INTO missing FROM unnest(NEW.scopes) AS s
     WHERE s IS NULL OR NOT EXISTS (SELECT 1 FROM scopes c WHERE c.name = s) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown scope "%"', missing USING ERRCODE = 'check_violation', HINT = 'tokend_unknown_scope';
    END IF;
    IF (SELECT count(DISTINCT s) FROM unnest(NEW.scopes) s) <> cardinality(NEW.scopes) THEN
        RAISE EXCEPTION 'duplicate scope' USING ERRCODE = 'check_violation';
    END IF;
    IF NOT tokend_scope_string_fits(NEW.scopes) THEN
        RAISE EXCEPTION 'scopes joined by spaces must be at most 1024 bytes' USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.created_at := now();
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER roles_rules BEFORE INSERT OR UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION roles_rules();

CREATE FUNCTION roles_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (actor, action, address, detail)
    VALUES (tokend_actor(), CASE WHEN TG_OP = 'INSERT' THEN 'role.add' ELSE 'role.update' END, tokend_address(),
            jsonb_build_object('name', NEW.name, 'scopes', to_jsonb(NEW.scopes), 'description', NEW.description)
            || CASE WHEN TG_OP = 'UPDATE' THEN jsonb_build_object('from_scopes', to_jsonb(OLD.scopes),
                                                                  'from_description', OLD.description)
                    ELSE '{}'::jsonb END);
    RETURN NULL;
END $$;
CREATE TRIGGER roles_audit AFTER INSERT OR UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION roles_audit();
CREATE TRIGGER roles_no_delete BEFORE DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION tokend_no_delete();
CREATE TRIGGER roles_no_truncate BEFORE TRUNCATE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION tokend_no_delete();

CREATE FUNCTION members_rules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM accounts WHERE id = NEW.account_id) THEN
            RAISE EXCEPTION 'no account "%"', NEW.account_id USING ERRCODE = 'check_violation', HINT = 'tokend_not_found';
        END IF;
        IF NEW.deactivated_at IS NOT NULL THEN
            RAISE EXCEPTION 'a new member starts active' USING ERRCODE = 'check_violation';
        END IF;
        NEW.created_at := now();
        RETURN NEW;
    END IF;
    IF NEW.account_id IS DISTINCT FROM OLD.account_id OR NEW.id IS DISTINCT FROM OLD.id
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'a member''s account, ID and creation time never change' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.deactivated_at IS NOT NULL AND NEW.deactivated_at IS DISTINCT FROM OLD.deactivated_at THEN
        RAISE EXCEPTION 'member % is deactivated: deactivation is permanent', OLD.id
            USING ERRCODE = 'check_violation', HINT = 'tokend_member_inactive';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER members_rules BEFORE INSERT OR UPDATE ON members
    FOR EACH ROW EXECUTE FUNCTION members_rules();

CREATE FUNCTION members_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO audit_log (actor, action, account_id, address, detail)
        VALUES (tokend_actor(), 'member.add', NEW.account_id, tokend_address(),
                jsonb_build_object('member', NEW.id, 'name', NEW.name));
    ELSIF NEW.deactivated_at IS DISTINCT FROM OLD.deactivated_at THEN
        INSERT INTO audit_log (actor, action, account_id, address, detail)
        VALUES (tokend_actor(), 'member.deactivate', NEW.account_id, tokend_address(),
                jsonb_build_object('member', NEW.id));
    ELSIF NEW.name IS DISTINCT FROM OLD.name THEN
        INSERT INTO audit_log (actor, action, account_id, address, detail)
        VALUES (tokend_actor(), 'member.rename', NEW.account_id, tokend_address(),
                jsonb_build_object('member', NEW.id, 'from', OLD.name, 'to', NEW.name));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER members_audit AFTER INSERT OR UPDATE ON members
    FOR EACH ROW EXECUTE FUNCTION members_audit();
CREATE TRIGGER members_no_delete BEFORE DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION tokend_no_delete();
CREATE TRIGGER members_no_truncate BEFORE TRUNCATE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION tokend_no_delete();

-- The key object: kind, role, member (with its name), environment, claims.
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
        'token_lifetime', k.token_lifetime, 'rate_limit', k.rate_limit,
        'kind', CASE WHEN k.member_id IS NULL THEN 'account' ELSE 'member' END,
        'role', k.role, 'member', k.member_id,
        'member_name', (SELECT m.name FROM members m WHERE m.account_id = k.account_id AND m.id = k.member_id),
        'environment', k.environment, 'claims', k.claims)
$$;

CREATE FUNCTION tokend_role_json(r roles) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('name', r.name, 'description', r.description, 'scopes', to_jsonb(r.scopes),
                              'created_at', tokend_ts(r.created_at), 'updated_at', tokend_ts(r.updated_at))
$$;

CREATE FUNCTION tokend_member_json(m members) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', m.id, 'account', m.account_id, 'name', m.name,
        'state', CASE WHEN m.deactivated_at IS NULL THEN 'active' ELSE 'deactivated' END,
        'created_at', tokend_ts(m.created_at), 'deactivated_at', tokend_ts(m.deactivated_at),
        'active_keys', (SELECT count(*) FROM api_keys k WHERE k.account_id = m.account_id
                         AND k.member_id = m.id AND tokend_key_is_active(k) AND k.disabled_at IS NULL))
$$;

-- Add a role (p_create) or change an existing one's description and/or scopes
-- (NULL: unchanged). Operator only (the CLI, or the API's operator routes).
CREATE FUNCTION tokend_role_put(p_actor text, p_address text, p_name text, p_description text,
                                p_scopes text[], p_create boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r roles%ROWTYPE;
    msg text;
    hint text;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    IF p_name IS NULL OR p_name !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' THEN
        RAISE EXCEPTION 'a role name is 1-63 characters [a-z0-9_.-] starting with a letter or digit'
            USING HINT = 'invalid';
    END IF;
    IF p_description IS NOT NULL AND (length(p_description) > 500 OR NOT tokend_text_is_safe(p_description)) THEN
        RAISE EXCEPTION 'description must be at most 500 printable characters' USING HINT = 'invalid';
    END IF;
    IF p_scopes IS NOT NULL AND cardinality(p_scopes) = 0 THEN
        RAISE EXCEPTION 'a role holds at least one scope' USING HINT = 'invalid';
    END IF;
    BEGIN
        IF p_create THEN
            IF p_scopes IS NULL THEN
                RAISE EXCEPTION 'a role holds at least one scope' USING HINT = 'invalid';
            END IF;
            IF EXISTS (SELECT 1 FROM roles WHERE name = p_name) THEN
                RAISE EXCEPTION 'role "%" exists', p_name USING HINT = 'conflict';
            END IF;
            INSERT INTO roles (name, description, scopes)
            VALUES (p_name, coalesce(p_description, ''), p_scopes) RETURNING * INTO r;
        ELSE
            IF p_scopes IS NULL AND p_description IS NULL THEN
                RAISE EXCEPTION 'nothing to change: give scopes or description' USING HINT = 'invalid';
            END IF;
            UPDATE roles SET scopes = coalesce(p_scopes, scopes), description = coalesce(p_description, description)
             WHERE name = p_name RETURNING * INTO r;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'no role "%"', p_name USING HINT = 'not_found';
            END IF;
        END IF;
    EXCEPTION WHEN check_violation THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
        RAISE EXCEPTION '%', msg USING HINT = CASE hint WHEN 'tokend_unknown_scope' THEN 'unknown_scope' ELSE 'invalid' END;
    END;
    RETURN tokend_role_json(r);
END $$;

-- Add a member to an account (p_operator, or the caller's own account).
CREATE FUNCTION tokend_member_add(p_actor text, p_address text, p_account text, p_id text, p_name text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    m members%ROWTYPE;
    msg text;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    IF p_account IS NULL THEN
        RAISE EXCEPTION 'the account is required' USING HINT = 'forbidden';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM accounts WHERE id = p_account) THEN
        RAISE EXCEPTION 'no account "%"', p_account USING HINT = 'not_found';
    END IF;
    IF p_id IS NULL OR p_id !~ '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$' OR p_id ~ '^tks?_' THEN
        RAISE EXCEPTION 'a member ID is 1-128 characters [A-Za-z0-9._@+-] starting with a letter or digit, not tk_ or tks_'
            USING HINT = 'invalid';
    END IF;
    IF p_name IS NULL OR length(p_name) NOT BETWEEN 1 AND 100 OR NOT tokend_text_is_safe(p_name) THEN
        RAISE EXCEPTION 'a member''s name is 1-100 printable characters' USING HINT = 'invalid';
    END IF;
    IF EXISTS (SELECT 1 FROM members WHERE account_id = p_account AND id = p_id) THEN
        RAISE EXCEPTION 'account "%" already has a member "%"', p_account, p_id USING HINT = 'conflict';
    END IF;
    BEGIN
        INSERT INTO members (account_id, id, name) VALUES (p_account, p_id, p_name) RETURNING * INTO m;
    EXCEPTION WHEN check_violation THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        RAISE EXCEPTION '%', msg USING HINT = 'invalid';
    END;
    RETURN tokend_member_json(m);
END $$;

-- Deactivate a member and, in the same transaction, disable its keys (one
-- key.disable audit row each; NOTIFY drops them from every cache).
CREATE FUNCTION tokend_member_deactivate(p_actor text, p_address text, p_account text, p_id text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    m members%ROWTYPE;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    IF p_account IS NULL THEN
        RAISE EXCEPTION 'the account is required' USING HINT = 'forbidden';
    END IF;
    SELECT * INTO m FROM members WHERE account_id = p_account AND id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account "%" has no member "%"', p_account, p_id USING HINT = 'not_found';
    END IF;
    IF m.deactivated_at IS NOT NULL THEN
        RAISE EXCEPTION 'member "%" is already deactivated', p_id USING HINT = 'member_inactive';
    END IF;
    UPDATE members SET deactivated_at = now() WHERE account_id = p_account AND id = p_id RETURNING * INTO m;
    UPDATE api_keys SET disabled_at = now()
     WHERE account_id = p_account AND member_id = p_id AND disabled_at IS NULL
       AND revoked_at IS NULL AND deleted_at IS NULL;
    RETURN tokend_member_json(m);
END $$;

-- The one way keys are created, now with role, member, environment and claims.
DROP FUNCTION tokend_admin_create_key(text, text, text, text, text, bytea, text, text[], text[], text,
                                      timestamptz, integer, text, text, integer, boolean, text[], timestamptz);

CREATE FUNCTION tokend_admin_create_key(
    p_actor text, p_address text, p_account text, p_id text, p_name text, p_hash bytea,
    p_hint text, p_scopes text[], p_audiences text[], p_subject text, p_expires_at timestamptz,
    p_lifetime integer, p_idem text, p_fingerprint text, p_rate_limit integer,
    p_operator boolean, p_caller_scopes text[], p_caller_expires timestamptz,
    p_role text, p_member text, p_environment text, p_claims jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    prior idempotency_keys%ROWTYPE;
    k api_keys%ROWTYPE;
    msg text;
    hint text;
    cons text;
    bad text;
    why text;
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
    -- A role or an explicit scope list, never both; the role's scopes are copied.
    IF p_role IS NOT NULL THEN
        IF coalesce(cardinality(p_scopes), 0) > 0 THEN
            RAISE EXCEPTION 'give a role or scopes, not both' USING HINT = 'role_and_scopes';
        END IF;
        SELECT r.scopes INTO p_scopes FROM roles r WHERE r.name = p_role;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown role "%"', p_role USING HINT = 'unknown_role';
        END IF;
    ELSIF coalesce(cardinality(p_scopes), 0) = 0 THEN
        RAISE EXCEPTION 'give scopes or a role' USING HINT = 'invalid';
    END IF;
    IF p_environment IS NOT NULL AND p_environment NOT IN ('live', 'test') THEN
        RAISE EXCEPTION 'environment must be live or test' USING HINT = 'invalid_environment';
    END IF;
    IF p_member IS NOT NULL AND p_subject IS NOT NULL THEN
        RAISE EXCEPTION 'a member key''s subject is its member: give member or subject, not both'
            USING HINT = 'invalid';
    END IF;
    why := tokend_claims_problem(p_claims);
    IF why IS NOT NULL THEN
        RAISE EXCEPTION '%', why USING HINT = 'invalid_claims';
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
                              subject, expires_at, token_lifetime, created_by,
                              role, member_id, environment, claims)
        VALUES (p_id, p_account, p_name, p_hash, p_hint, p_scopes, p_audiences, p_subject,
                p_expires_at, p_lifetime, p_actor,
                p_role, p_member, coalesce(p_environment, 'live'), coalesce(p_claims, '{}'))
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
            WHEN 'tokend_unknown_member' THEN 'unknown_member'
            WHEN 'tokend_member_inactive' THEN 'member_inactive'
            WHEN 'tokend_invalid_claims' THEN 'invalid_claims'
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

-- enable of a member key whose member is deactivated: the trigger's refusal
-- becomes the API's 409 member_inactive.
CREATE OR REPLACE FUNCTION tokend_admin_key_action(
    p_actor text, p_address text, p_account text, p_id text, p_action text, p_arg text,
    p_confirm boolean, p_operator boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
    st text;
    msg text;
    hint text;
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
        BEGIN
            UPDATE api_keys SET disabled_at = CASE WHEN p_action = 'disable' THEN coalesce(disabled_at, now()) END
             WHERE id = p_id RETURNING * INTO k;
        EXCEPTION WHEN check_violation THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
            IF hint = 'tokend_member_inactive' THEN
                RAISE EXCEPTION '%', msg USING HINT = 'member_inactive';
            END IF;
            RAISE;
        END;
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

-- tokend_app's privileges (sql/006_roles.sql), now with the new tables: roles
-- and members are never deleted, and only their changeable columns update.
CREATE OR REPLACE FUNCTION tokend_grant_app() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    nsp   oid := (SELECT relnamespace FROM pg_class WHERE oid = 'api_keys'::regclass);
    sch   text := (SELECT nspname FROM pg_namespace WHERE oid = nsp);
    t     record;
    privs text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tokend_app') THEN
        RAISE EXCEPTION 'the role tokend_app does not exist'
            USING HINT = 'as a superuser: CREATE ROLE tokend_app NOLOGIN';
    END IF;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = 'tokend_app')
       OR pg_has_role('tokend_app', current_user, 'MEMBER') THEN
        RAISE EXCEPTION 'tokend_app must be neither a superuser nor a member of the schema owner %', current_user;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO tokend_app', sch);
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM tokend_app', sch);
    IF pg_has_role(current_user, (SELECT nspowner FROM pg_namespace WHERE oid = nsp), 'USAGE') THEN
        EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', sch);
    END IF;
    FOR t IN SELECT c.relname, c.relkind FROM pg_class c
              WHERE c.relnamespace = nsp AND c.relkind IN ('r', 'p', 'v', 'S')
                AND pg_has_role(current_user, c.relowner, 'USAGE')
              ORDER BY c.relname LOOP
        IF t.relkind = 'S' THEN
            EXECUTE format('REVOKE ALL ON SEQUENCE %I.%I FROM tokend_app', sch, t.relname);
            EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %I.%I TO tokend_app', sch, t.relname);
            CONTINUE;
        END IF;
        -- Also revokes the column privileges.
        EXECUTE format('REVOKE ALL ON TABLE %I.%I FROM tokend_app', sch, t.relname);
        privs := CASE t.relname
            WHEN 'api_keys' THEN 'SELECT, INSERT, UPDATE (name, disabled_at, revoked_at, revoked_by, '
                                 'revoke_reason, deleted_at, last_used_at, rate_limit)'
            WHEN 'accounts' THEN 'SELECT, INSERT, UPDATE (name, key_limit, disabled_at)'
            WHEN 'scopes' THEN 'SELECT, INSERT'
            WHEN 'audit_log' THEN 'SELECT, INSERT'
            WHEN 'revoked_tokens' THEN 'SELECT, INSERT, DELETE'
            WHEN 'idempotency_keys' THEN 'SELECT, INSERT'
            WHEN 'roles' THEN 'SELECT, INSERT, UPDATE (description, scopes, updated_at)'
            WHEN 'members' THEN 'SELECT, INSERT, UPDATE (name, deactivated_at)'
            WHEN 'tokend_migrations' THEN 'SELECT'
            ELSE 'SELECT, INSERT, UPDATE, DELETE' END;
        EXECUTE format('GRANT %s ON TABLE %I.%I TO tokend_app', privs, sch, t.relname);
    END LOOP;
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO tokend_app', sch);
END $$;
