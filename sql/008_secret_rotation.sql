-- tokend schema, version 8: secret rotation with an overlap (issue 13, point 5).
--
-- A key may change its secret (the only change of credentials a key allows):
-- a new secret for the same key ID, shown once; the previous one keeps
-- working until the overlap ends (at most 30 days, never past the key's
-- expiry), then stops. Only the current and the immediately previous secret
-- ever work: a second rotation during an overlap ends the older one at once.
--
-- Where it lives: api_key_secrets, one row per key that has rotated (the
-- api_keys row and its immutability triggers stay as they are: its
-- secret_hash/secret_hint are the key's first secret, and a row here, when
-- present, supersedes them). Readers take coalesce(s.secret_hash, k.secret_hash).
-- The database enforces, whoever writes:
--   * a row is never deleted (the first secret would come back);
--   * a rotation moves the current secret to previous (nothing else may be
--     written there): previous_hash is always the secret that was current;
--   * previous_until lies between now and now + 30 days and not after the
--     key's expiry; only an active key (not revoked, deleted or expired)
--     rotates; the key row is locked, so two rotations serialise;
--   * every rotation writes one audit row (key.rotate_secret) that records
--     when the previous secret stops (previous_until) and, when it cut an
--     earlier overlap short, which secret that ended and when it was due:
--     the end of an overlap is recorded in the rotation row, not as a row of
--     its own (nothing happens in the database when the time passes);
--   * every rotation sends NOTIFY tokend_keys with the key ID, so that every
--     instance drops its cached record (which carries both digests and the
--     end time, compared at each token request).
-- tokend_key_json (the admin API's key object) is wrapped, not rewritten: the
-- previous definition is kept as tokend_key_json_core and the rotation's
-- fields are added to what it returns (hint and masked become the current
-- secret's). A later migration that redefines the key object redefines
-- tokend_key_json_core.
-- Refusal HINTs added: expired (409), overlap (400, field overlap_seconds).

CREATE TABLE api_key_secrets (
    key_id          text PRIMARY KEY REFERENCES api_keys (id),
    secret_hash     bytea NOT NULL CHECK (length(secret_hash) = 32),
    secret_hint     text NOT NULL CHECK (secret_hint ~ '^[0-9A-Za-z]{4}$'),
    previous_hash   bytea NOT NULL CHECK (length(previous_hash) = 32),
    previous_hint   text NOT NULL CHECK (previous_hint ~ '^[0-9A-Za-z]{4}$'),
    previous_until  timestamptz NOT NULL,
    rotated_at      timestamptz NOT NULL DEFAULT now(),
    rotated_by      text NOT NULL DEFAULT '',
    rotations       integer NOT NULL DEFAULT 1 CHECK (rotations >= 1),
    CHECK (secret_hash <> previous_hash)
);

CREATE FUNCTION api_key_secrets_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
BEGIN
    SELECT * INTO k FROM api_keys WHERE id = NEW.key_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no key %', NEW.key_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NOT tokend_key_is_active(k) THEN
        RAISE EXCEPTION 'key % is %: its secret cannot rotate', k.id, tokend_key_state(k)
            USING ERRCODE = 'check_violation', HINT = 'tokend_inactive';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.previous_hash IS DISTINCT FROM k.secret_hash OR NEW.previous_hint IS DISTINCT FROM k.secret_hint THEN
            RAISE EXCEPTION 'a rotation keeps the current secret as the previous one'
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.rotations := 1;
    ELSE
        IF NEW.key_id IS DISTINCT FROM OLD.key_id OR NEW.previous_hash IS DISTINCT FROM OLD.secret_hash
           OR NEW.previous_hint IS DISTINCT FROM OLD.secret_hint OR NEW.secret_hash = OLD.secret_hash THEN
            RAISE EXCEPTION 'a rotation replaces the secret and keeps the current one as the previous one'
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.rotations := OLD.rotations + 1;
    END IF;
    IF NEW.previous_until < now() OR NEW.previous_until > now() + interval '30 days' THEN
        RAISE EXCEPTION 'the overlap must end between now and 30 days from now'
            USING ERRCODE = 'check_violation', HINT = 'tokend_overlap';
    END IF;
    IF k.expires_at IS NOT NULL AND NEW.previous_until > k.expires_at THEN
        RAISE EXCEPTION 'the overlap would end after the key expires (%)', tokend_ts(k.expires_at)
            USING ERRCODE = 'check_violation', HINT = 'tokend_overlap';
    END IF;
    NEW.rotated_at := now();
    NEW.rotated_by := tokend_actor();
    RETURN NEW;
END $$;
CREATE TRIGGER api_key_secrets_rules BEFORE INSERT OR UPDATE ON api_key_secrets
    FOR EACH ROW EXECUTE FUNCTION api_key_secrets_rules();

CREATE FUNCTION api_key_secrets_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    det jsonb;
BEGIN
    det := jsonb_build_object('hint', NEW.secret_hint, 'previous_hint', NEW.previous_hint,
                              'previous_until', tokend_ts(NEW.previous_until),
                              'overlap_seconds', floor(extract(epoch FROM NEW.previous_until - NEW.rotated_at))::bigint,
                              'rotation', NEW.rotations);
    IF TG_OP = 'UPDATE' AND OLD.previous_until > now() THEN
        -- An overlap still running ends now: its secret stops at once.
        det := det || jsonb_build_object('ended_early', jsonb_build_object(
            'hint', OLD.previous_hint, 'was_until', tokend_ts(OLD.previous_until)));
    END IF;
    INSERT INTO audit_log (actor, action, account_id, key_id, address, detail)
    SELECT tokend_actor(), 'key.rotate_secret', k.account_id, k.id, tokend_address(), det
      FROM api_keys k WHERE k.id = NEW.key_id;
    PERFORM pg_notify('tokend_keys', NEW.key_id);
    RETURN NULL;
END $$;
CREATE TRIGGER api_key_secrets_audit AFTER INSERT OR UPDATE ON api_key_secrets
    FOR EACH ROW EXECUTE FUNCTION api_key_secrets_audit();
CREATE TRIGGER api_key_secrets_no_delete BEFORE DELETE ON api_key_secrets
    FOR EACH ROW EXECUTE FUNCTION tokend_no_delete();
CREATE TRIGGER api_key_secrets_no_truncate BEFORE TRUNCATE ON api_key_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION tokend_no_delete();

-- The key object: the previous definition plus the rotation's fields.
ALTER FUNCTION tokend_key_json(api_keys) RENAME TO tokend_key_json_core;
CREATE FUNCTION tokend_key_json(k api_keys) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s.key_id IS NULL THEN
               c || jsonb_build_object('secret_rotated_at', NULL, 'previous_hint', NULL, 'previous_secret_until', NULL)
           ELSE c || jsonb_build_object(
               'hint', s.secret_hint,
               'masked', regexp_replace(c->>'masked', '[0-9A-Za-z]{4}$', s.secret_hint),
               'secret_rotated_at', tokend_ts(s.rotated_at),
               'previous_hint', CASE WHEN s.previous_until > now() THEN s.previous_hint END,
               'previous_secret_until', CASE WHEN s.previous_until > now() THEN tokend_ts(s.previous_until) END)
           END
      FROM (SELECT tokend_key_json_core(k) AS c) base
      LEFT JOIN api_key_secrets s ON s.key_id = k.id
$$;

-- POST /admin/v1/keys/{id}/rotate-secret and `tokend key rotate-secret`: the
-- new secret's digest and hint (made by the caller, which shows the secret
-- once); p_overlap: seconds the current secret keeps working (0: stops now).
CREATE FUNCTION tokend_admin_rotate_secret(
    p_actor text, p_address text, p_account text, p_id text, p_hash bytea, p_hint text,
    p_overlap integer, p_operator boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
    st text;
    until timestamptz;
    msg text;
    hint text;
BEGIN
    PERFORM tokend_admin_begin(p_actor, p_address);
    k := tokend_admin_lock_key(p_account, p_id, p_operator);
    st := tokend_key_state(k);
    IF st = 'revoked' THEN
        RAISE EXCEPTION 'key % is revoked: its secret cannot rotate', p_id USING HINT = 'revoked';
    ELSIF st = 'expired' THEN
        RAISE EXCEPTION 'key % has expired: its secret cannot rotate', p_id USING HINT = 'expired';
    END IF;
    IF p_overlap IS NULL OR p_overlap < 0 OR p_overlap > 2592000 THEN
        RAISE EXCEPTION 'overlap_seconds must be a whole number from 0 to 2592000 (30 days)' USING HINT = 'overlap';
    END IF;
    until := now() + make_interval(secs => p_overlap);
    IF k.expires_at IS NOT NULL AND until > k.expires_at THEN
        RAISE EXCEPTION 'the overlap would end after the key expires (%): give a shorter overlap', tokend_ts(k.expires_at)
            USING HINT = 'overlap';
    END IF;
    BEGIN
        INSERT INTO api_key_secrets AS s (key_id, secret_hash, secret_hint, previous_hash, previous_hint, previous_until)
        VALUES (k.id, p_hash, p_hint, k.secret_hash, k.secret_hint, until)
        ON CONFLICT (key_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, secret_hint = EXCLUDED.secret_hint,
            previous_hash = s.secret_hash, previous_hint = s.secret_hint, previous_until = EXCLUDED.previous_until;
    EXCEPTION WHEN check_violation THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
        RAISE EXCEPTION '%', msg USING HINT = CASE hint WHEN 'tokend_overlap' THEN 'overlap' ELSE 'invalid' END;
    END;
    RETURN tokend_key_json(k);
END $$;
