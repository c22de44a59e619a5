-- tokend schema, version 10: publishable browser keys (issue 14, points 1-2).
--
--   * scopes.public: a scope the catalogue marks public (tokend scope add NAME
--     --public; the admin API's scope "public"). Set when the scope is added,
--     never changed here (tokend_app may only insert scopes); existing scopes
--     are not public.
--   * a publishable key (api_keys.publishable): no secret (secret_hash and
--     secret_hint are NULL, and only then), an account key (no member, no
--     subject: tokens' sub is the key ID), only public scopes, and 1-20 exact
--     allowed browser origins (api_keys.allowed_origins), fixed at creation
--     like its scopes. Its ID is the whole credential: it stays readable in
--     listings. Its secret never rotates (it has none).
--   * an origin is scheme://host[:port] as browsers send it in Origin:
--     http or https, a lowercase DNS name, IPv4 address or [IPv6] address, a
--     port only when it is not the scheme's default (1-65535, no leading
--     zero), nothing else (no path, query, fragment, userinfo, wildcard or
--     trailing slash); at most 255 bytes.
-- Refusal HINTs added: scope_not_public (400, scopes), invalid_origins (400,
-- allowed_origins).

ALTER TABLE scopes ADD COLUMN public boolean NOT NULL DEFAULT false;

-- NULL when `o` is an acceptable origin, else why not.
CREATE FUNCTION tokend_origin_problem(o text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    m text[];
BEGIN
    IF o IS NULL OR o = '' THEN
        RETURN 'an origin must not be empty';
    END IF;
    IF octet_length(o) > 255 THEN
        RETURN format('origin %s: at most 255 bytes', to_json(left(o, 40)));
    END IF;
    m := regexp_match(o, '^(https?)://([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]{2,45}\])(:([1-9][0-9]{0,4}))?$');
    IF m IS NULL THEN
        RETURN format('origin %s must be exactly scheme://host[:port]: http or https, a lowercase host, '
                      'no path, query, fragment, userinfo, wildcard or trailing slash', to_json(o));
    END IF;
    IF m[7] IS NOT NULL THEN
        IF m[7]::integer > 65535 THEN
            RETURN format('origin %s: the port must be 1-65535', to_json(o));
        END IF;
        IF (m[1] = 'http' AND m[7] = '80') OR (m[1] = 'https' AND m[7] = '443') THEN
            RETURN format('origin %s: leave out the default port (browsers send %s)', to_json(o),
                          to_json(m[1] || '://' || m[2]));
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- NULL when `os` is an acceptable list of allowed origins (1-20, each valid,
-- no duplicates), else why not.
CREATE FUNCTION tokend_origins_problem(os text[]) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    o text;
    why text;
BEGIN
    IF os IS NULL OR cardinality(os) = 0 THEN
        RETURN 'a publishable key needs at least one allowed origin';
    END IF;
    IF cardinality(os) > 20 THEN
        RETURN 'a publishable key has at most 20 allowed origins';
    END IF;
    FOREACH o IN ARRAY os LOOP
        why := tokend_origin_problem(o);
        IF why IS NOT NULL THEN
            RETURN why;
        END IF;
    END LOOP;
    IF (SELECT count(DISTINCT x) FROM unnest(os) x) <> cardinality(os) THEN
        RETURN 'an allowed origin is given twice';
    END IF;
    RETURN NULL;
END $$;

ALTER TABLE api_keys
    ALTER COLUMN secret_hash DROP NOT NULL,
    ALTER COLUMN secret_hint DROP NOT NULL,
    ADD COLUMN publishable boolean NOT NULL DEFAULT false,
    ADD COLUMN allowed_origins text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT api_keys_publishable_check CHECK (CASE WHEN publishable
        THEN secret_hash IS NULL AND secret_hint IS NULL AND member_id IS NULL AND subject IS NULL
        ELSE secret_hash IS NOT NULL AND secret_hint IS NOT NULL AND cardinality(allowed_origins) = 0 END),
    ADD CONSTRAINT api_keys_allowed_origins_check CHECK (NOT publishable OR tokend_origins_problem(allowed_origins) IS NULL);
-- The preflight's question: is this origin allowed by any usable publishable key?
CREATE INDEX api_keys_allowed_origins_idx ON api_keys USING gin (allowed_origins) WHERE publishable;

-- A publishable key holds only public scopes; kind and origins never change.
CREATE FUNCTION api_keys_publishable_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.publishable IS DISTINCT FROM OLD.publishable OR NEW.allowed_origins IS DISTINCT FROM OLD.allowed_origins THEN
            RAISE EXCEPTION 'key %: kind and allowed origins never change; create a new key instead', OLD.id
                USING ERRCODE = 'check_violation', HINT = 'tokend_immutable';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.publishable THEN
        SELECT s INTO bad FROM unnest(NEW.scopes) AS s
         WHERE NOT EXISTS (SELECT 1 FROM scopes c WHERE c.name = s AND c.public) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'scope "%" is not public: a publishable key may hold only scopes the catalogue marks public', bad
                USING ERRCODE = 'check_violation', HINT = 'tokend_scope_not_public';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_keys_publishable_rules BEFORE INSERT OR UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_publishable_rules();

-- A publishable key has no secret: nothing to rotate.
CREATE FUNCTION api_key_secrets_not_publishable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM api_keys k WHERE k.id = NEW.key_id AND k.publishable) THEN
        RAISE EXCEPTION 'key % is publishable: it has no secret to rotate', NEW.key_id
            USING ERRCODE = 'check_violation', HINT = 'tokend_publishable';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_key_secrets_not_publishable BEFORE INSERT OR UPDATE ON api_key_secrets
    FOR EACH ROW EXECUTE FUNCTION api_key_secrets_not_publishable();

-- The key object: kind publishable, allowed origins (the previous definition
-- is kept as tokend_key_json_model and wrapped, as sql/008 does).
ALTER FUNCTION tokend_key_json_core(api_keys) RENAME TO tokend_key_json_model;
CREATE FUNCTION tokend_key_json_core(k api_keys) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT tokend_key_json_model(k) || jsonb_build_object(
        'kind', CASE WHEN k.publishable THEN 'publishable' WHEN k.member_id IS NULL THEN 'account' ELSE 'member' END,
        'allowed_origins', to_jsonb(k.allowed_origins))
$$;

-- The one way keys are created, now with publishable keys and their origins.
DROP FUNCTION tokend_admin_create_key(text, text, text, text, text, bytea, text, text[], text[], text,
                                      timestamptz, integer, text, text, integer, boolean, text[], timestamptz,
                                      text, text, text, jsonb);

CREATE FUNCTION tokend_admin_create_key(
    p_actor text, p_address text, p_account text, p_id text, p_name text, p_hash bytea,
    p_hint text, p_scopes text[], p_audiences text[], p_subject text, p_expires_at timestamptz,
    p_lifetime integer, p_idem text, p_fingerprint text, p_rate_limit integer,
    p_operator boolean, p_caller_scopes text[], p_caller_expires timestamptz,
    p_role text, p_member text, p_environment text, p_claims jsonb,
    p_publishable boolean, p_origins text[])
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
    -- A publishable key: no secret, exact allowed origins, an account key
    -- (sub = the key ID); its scopes are checked public by the insert trigger.
    IF coalesce(p_publishable, false) THEN
        IF p_hash IS NOT NULL OR p_hint IS NOT NULL THEN
            RAISE EXCEPTION 'a publishable key has no secret' USING HINT = 'invalid';
        END IF;
        IF p_member IS NOT NULL OR p_subject IS NOT NULL THEN
            RAISE EXCEPTION 'a publishable key is an account key: no member or subject' USING HINT = 'invalid';
        END IF;
        why := tokend_origins_problem(p_origins);
        IF why IS NOT NULL THEN
            RAISE EXCEPTION '%', why USING HINT = 'invalid_origins';
        END IF;
    ELSIF coalesce(cardinality(p_origins), 0) > 0 THEN
        RAISE EXCEPTION 'allowed origins are for publishable keys only' USING HINT = 'invalid_origins';
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
                              role, member_id, environment, claims, publishable, allowed_origins)
        VALUES (p_id, p_account, p_name, p_hash, p_hint, p_scopes, p_audiences, p_subject,
                p_expires_at, p_lifetime, p_actor,
                p_role, p_member, coalesce(p_environment, 'live'), coalesce(p_claims, '{}'),
                coalesce(p_publishable, false), coalesce(p_origins, '{}'))
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
            WHEN 'tokend_scope_not_public' THEN 'scope_not_public'
            WHEN 'tokend_invalid_origins' THEN 'invalid_origins'
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


-- "origin" is now a tokend claim (a publishable key's tokens): no key may set it.
CREATE OR REPLACE FUNCTION tokend_reserved_claim(n text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT n = ANY (ARRAY['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti',
        'client_id', 'scope', 'acct', 'env', 'role', 'roles', 'groups', 'entitlements',
        'auth_time', 'acr', 'amr', 'azp', 'nonce', 'sid', 'at_hash', 'c_hash',
        'cnf', 'act', 'may_act', 'active', 'token_type', 'username', 'status', 'typ', 'kid', 'alg',
        'member', 'kind', 'name', 'email', 'txn', 'events', 'toe', 'ath', 'htm', 'htu', 'origin'])
        OR n LIKE 'tokend%'
$$;
