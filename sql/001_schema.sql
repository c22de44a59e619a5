-- tokend schema, version 1: accounts, scope catalogue, API keys, audit log.
--
-- The database enforces what must never change, whatever client writes to it:
--   * a key's ID, account, secret hash, scopes, audiences, subject, lifetime,
--     expiry and creation record are immutable;
--   * a revoked key is never un-revoked or re-enabled; a deleted key is never
--     undeleted or changed; key rows are never physically deleted (IDs are never reused);
--   * the active-key limit of an account holds even when creations race
--     (the account row is locked for the count);
--   * the audit log is append-only, and every key and account change writes one row;
--   * every key change sends NOTIFY tokend_keys with the key ID as payload.
-- The acting principal is read from the setting tokend.actor (SET LOCAL by tokend).

CREATE TABLE accounts (
    id            text PRIMARY KEY
                  CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name          text NOT NULL DEFAULT ''
                  CHECK (length(name) <= 100 AND name !~ '[[:cntrl:]]'),
    key_limit     integer NOT NULL DEFAULT 3 CHECK (key_limit >= 0 AND key_limit <= 100000),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

CREATE TABLE scopes (
    name          text PRIMARY KEY
                  CHECK (name ~ '^[!#-\[\]-~]{1,128}$'),
    description   text NOT NULL DEFAULT ''
                  CHECK (length(description) <= 500 AND description !~ '[[:cntrl:]]'),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id               text PRIMARY KEY CHECK (id ~ '^tk_[0-9A-Za-z]{28}$'),
    account_id       text NOT NULL REFERENCES accounts (id),
    name             text NOT NULL
                     CHECK (length(name) BETWEEN 1 AND 100 AND name !~ '[[:cntrl:]]'),
    secret_hash      bytea NOT NULL CHECK (length(secret_hash) = 32),
    pepper_id        smallint NOT NULL DEFAULT 1,
    secret_hint      text NOT NULL CHECK (secret_hint ~ '^[0-9A-Za-z]{4}$'),
    scopes           text[] NOT NULL CHECK (cardinality(scopes) <= 32),
    audiences        text[] NOT NULL DEFAULT '{}' CHECK (cardinality(audiences) <= 16),
    subject          text CHECK (length(subject) BETWEEN 1 AND 255 AND subject !~ '[[:cntrl:]]'),
    token_lifetime   integer CHECK (token_lifetime > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL DEFAULT '',
    expires_at       timestamptz,
    disabled_at      timestamptz,
    revoked_at       timestamptz,
    revoked_by       text,
    revoke_reason    text CHECK (length(revoke_reason) <= 500),
    deleted_at       timestamptz,
    last_used_at     timestamptz,
    CHECK (revoked_at IS NOT NULL OR (revoked_by IS NULL AND revoke_reason IS NULL))
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id, created_at);

CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor        text NOT NULL,
    action       text NOT NULL,
    account_id   text,
    key_id       text,
    address      text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_account_idx ON audit_log (account_id, id);
CREATE INDEX audit_log_key_idx ON audit_log (key_id, id);

CREATE FUNCTION tokend_actor() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('tokend.actor', true), ''), 'sql:' || session_user)
$$;

CREATE FUNCTION tokend_address() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('tokend.address', true), '')
$$;

-- A key counts against the limit while it is neither revoked, deleted nor expired.
CREATE FUNCTION tokend_key_is_active(k api_keys) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT k.revoked_at IS NULL AND k.deleted_at IS NULL
           AND (k.expires_at IS NULL OR k.expires_at > now())
$$;

CREATE FUNCTION api_keys_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    acct      accounts%ROWTYPE;
    active    integer;
    missing   text;
BEGIN
    -- Lock the account row: concurrent creations for one account serialise here,
    -- so the count below cannot be raced.
    SELECT * INTO acct FROM accounts WHERE id = NEW.account_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown account "%"', NEW.account_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF acct.disabled_at IS NOT NULL THEN
        RAISE EXCEPTION 'account "%" is disabled', NEW.account_id USING ERRCODE = 'check_violation';
    END IF;
    SELECT count(*) INTO active FROM api_keys k
     WHERE k.account_id = NEW.account_id AND tokend_key_is_active(k);
    IF active >= acct.key_limit THEN
        RAISE EXCEPTION 'account "%" has reached its limit of % active keys', NEW.account_id, acct.key_limit
            USING ERRCODE = 'check_violation', HINT = 'tokend_key_limit';
    END IF;
    SELECT s INTO missing FROM unnest(NEW.scopes) AS s
     WHERE NOT EXISTS (SELECT 1 FROM scopes c WHERE c.name = s) LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'unknown scope "%"', missing USING ERRCODE = 'check_violation', HINT = 'tokend_unknown_scope';
    END IF;
    IF (SELECT count(DISTINCT s) FROM unnest(NEW.scopes) s) <> cardinality(NEW.scopes)
       OR (SELECT count(DISTINCT a) FROM unnest(NEW.audiences) a) <> cardinality(NEW.audiences) THEN
        RAISE EXCEPTION 'duplicate scope or audience' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.revoked_at IS NOT NULL OR NEW.deleted_at IS NOT NULL OR NEW.last_used_at IS NOT NULL THEN
        RAISE EXCEPTION 'a new key cannot start revoked, deleted or used' USING ERRCODE = 'check_violation';
    END IF;
    NEW.created_at := now();
    IF NEW.created_by = '' THEN NEW.created_by := tokend_actor(); END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION api_keys_before_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.account_id IS DISTINCT FROM OLD.account_id
       OR NEW.secret_hash IS DISTINCT FROM OLD.secret_hash OR NEW.pepper_id IS DISTINCT FROM OLD.pepper_id
       OR NEW.secret_hint IS DISTINCT FROM OLD.secret_hint
       OR NEW.scopes IS DISTINCT FROM OLD.scopes OR NEW.audiences IS DISTINCT FROM OLD.audiences
       OR NEW.subject IS DISTINCT FROM OLD.subject OR NEW.token_lifetime IS DISTINCT FROM OLD.token_lifetime
       OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
       OR NEW.created_at IS DISTINCT FROM OLD.created_at OR NEW.created_by IS DISTINCT FROM OLD.created_by THEN
        RAISE EXCEPTION 'key %: ID, account, secret, scopes, audiences, subject, lifetime and expiry never change; create a new key instead', OLD.id
            USING ERRCODE = 'check_violation', HINT = 'tokend_immutable';
    END IF;
    -- last_used_at may only move forward; it is the one column written for any key.
    IF NEW.last_used_at IS DISTINCT FROM OLD.last_used_at THEN
        IF NEW.last_used_at IS NULL OR (OLD.last_used_at IS NOT NULL AND NEW.last_used_at < OLD.last_used_at) THEN
            NEW.last_used_at := OLD.last_used_at;
        END IF;
    END IF;
    IF OLD.deleted_at IS NOT NULL AND (NEW.name IS DISTINCT FROM OLD.name
       OR NEW.disabled_at IS DISTINCT FROM OLD.disabled_at OR NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
       OR NEW.revoked_by IS DISTINCT FROM OLD.revoked_by OR NEW.revoke_reason IS DISTINCT FROM OLD.revoke_reason
       OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at) THEN
        RAISE EXCEPTION 'key % is deleted', OLD.id USING ERRCODE = 'check_violation', HINT = 'tokend_deleted';
    END IF;
    IF OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
       OR NEW.revoked_by IS DISTINCT FROM OLD.revoked_by OR NEW.revoke_reason IS DISTINCT FROM OLD.revoke_reason
       OR NEW.disabled_at IS DISTINCT FROM OLD.disabled_at) THEN
        RAISE EXCEPTION 'key % is revoked: revocation is permanent', OLD.id USING ERRCODE = 'check_violation', HINT = 'tokend_revoked';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION api_keys_after_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    act   text;
    det   jsonb := '{}';
BEGIN
    IF TG_OP = 'INSERT' THEN
        act := 'key.create';
        det := jsonb_build_object('name', NEW.name, 'scopes', to_jsonb(NEW.scopes),
                                  'audiences', to_jsonb(NEW.audiences), 'subject', NEW.subject,
                                  'expires_at', NEW.expires_at, 'token_lifetime', NEW.token_lifetime);
    ELSIF NEW.deleted_at IS DISTINCT FROM OLD.deleted_at THEN
        act := 'key.delete';
    ELSIF NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        act := 'key.revoke';
        det := jsonb_build_object('reason', NEW.revoke_reason);
    ELSIF NEW.disabled_at IS DISTINCT FROM OLD.disabled_at THEN
        act := CASE WHEN NEW.disabled_at IS NULL THEN 'key.enable' ELSE 'key.disable' END;
    ELSIF NEW.name IS DISTINCT FROM OLD.name THEN
        act := 'key.rename';
        det := jsonb_build_object('from', OLD.name, 'to', NEW.name);
    ELSE
        RETURN NULL;   -- only last_used_at moved: no audit row, no notification
    END IF;
    INSERT INTO audit_log (actor, action, account_id, key_id, address, detail)
    VALUES (tokend_actor(), act, NEW.account_id, NEW.id, tokend_address(), det);
    PERFORM pg_notify('tokend_keys', NEW.id);
    RETURN NULL;
END $$;

CREATE FUNCTION tokend_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted (their IDs must never be reused)', TG_TABLE_NAME
        USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER api_keys_before_insert BEFORE INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_before_insert();
CREATE TRIGGER api_keys_before_update BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_before_update();
CREATE TRIGGER api_keys_after_change AFTER INSERT OR UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_after_change();
CREATE TRIGGER api_keys_no_delete BEFORE DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION tokend_no_delete();
CREATE TRIGGER api_keys_no_truncate BEFORE TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tokend_no_delete();

CREATE FUNCTION accounts_after_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One audit row per aspect that changed.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO audit_log (actor, action, account_id, address, detail)
        VALUES (tokend_actor(), 'account.create', NEW.id, tokend_address(),
                jsonb_build_object('name', NEW.name, 'key_limit', NEW.key_limit));
    ELSE
        IF NEW.key_limit IS DISTINCT FROM OLD.key_limit THEN
            INSERT INTO audit_log (actor, action, account_id, address, detail)
            VALUES (tokend_actor(), 'account.set_limit', NEW.id, tokend_address(),
                    jsonb_build_object('from', OLD.key_limit, 'to', NEW.key_limit));
        END IF;
        IF NEW.name IS DISTINCT FROM OLD.name THEN
            INSERT INTO audit_log (actor, action, account_id, address, detail)
            VALUES (tokend_actor(), 'account.rename', NEW.id, tokend_address(),
                    jsonb_build_object('from', OLD.name, 'to', NEW.name));
        END IF;
        IF NEW.disabled_at IS DISTINCT FROM OLD.disabled_at THEN
            INSERT INTO audit_log (actor, action, account_id, address, detail)
            VALUES (tokend_actor(), CASE WHEN NEW.disabled_at IS NULL THEN 'account.enable' ELSE 'account.disable' END,
                    NEW.id, tokend_address(), '{}');
        END IF;
    END IF;
    -- Every cached key of the account depends on the account's state.
    PERFORM pg_notify('tokend_accounts', NEW.id);
    RETURN NULL;
END $$;

CREATE FUNCTION accounts_before_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'account ID and creation time never change' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER accounts_before_update BEFORE UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_before_update();
CREATE TRIGGER accounts_after_change AFTER INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_after_change();
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION tokend_no_delete();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION tokend_no_delete();

CREATE FUNCTION scopes_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (actor, action, address, detail)
    VALUES (tokend_actor(), 'scope.add', tokend_address(), jsonb_build_object('name', NEW.name));
    PERFORM pg_notify('tokend_scopes', NEW.name);
    RETURN NULL;
END $$;
CREATE TRIGGER scopes_after_insert AFTER INSERT ON scopes
    FOR EACH ROW EXECUTE FUNCTION scopes_after_insert();
CREATE TRIGGER scopes_no_delete BEFORE DELETE ON scopes
    FOR EACH ROW EXECUTE FUNCTION tokend_no_delete();
CREATE TRIGGER scopes_no_truncate BEFORE TRUNCATE ON scopes
    FOR EACH STATEMENT EXECUTE FUNCTION tokend_no_delete();

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Helpers for readers (CLI, admin API): the derived state and RFC 3339 times.
CREATE FUNCTION tokend_key_state(k api_keys) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN k.deleted_at IS NOT NULL THEN 'deleted'
                WHEN k.revoked_at IS NOT NULL THEN 'revoked'
                WHEN k.expires_at IS NOT NULL AND k.expires_at <= now() THEN 'expired'
                WHEN k.disabled_at IS NOT NULL THEN 'disabled'
                ELSE 'enabled' END
$$;

CREATE FUNCTION tokend_ts(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;
