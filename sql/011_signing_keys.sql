-- tokend schema, version 11: signing keys in the database (issue 15).
--
-- With signing_key_source = database every tokend instance loads its signing
-- keys from this table at start and again on NOTIFY tokend_signing_keys, and
-- the keys rotate on a schedule (README, Signing key lifecycle). A row is one
-- key: its public JWK in clear, its private JWK encrypted with AES-256-GCM
-- under a key-encryption key (KEK) that never enters the database; kek_id
-- names the KEK (HMAC-SHA256(KEK, 'tokend signing key KEK id v1'), cut to 16
-- bytes, base64url: it identifies the KEK, it reveals nothing of it). The
-- ciphertext's associated data is "kid\0alg", so a ciphertext moved to
-- another row fails to decrypt; tokend also checks that the decrypted key's
-- RFC 7638 thumbprint is the row's kid.
--
-- A key's life is a timeline set when it is added, so that every instance
-- derives the same state from the rows and its clock (activation is a time,
-- not an event):
--   publish_at      in the JWKS from here (the insert);
--   sign_from       may sign from here; tokend itself also refuses a key
--                   published for less than jwks_max_age (except the
--                   initial key of an empty table, which no verifier can
--                   have cached a JWKS without);
--   signing_until   stops signing (the next key's sign_from), NULL: open;
--   retire_after    leaves the JWKS (its last token has expired:
--                   signing_until + token_lifetime_max + margin);
--   retired_at      marked retired; its private key is erased.
-- The one key that signs now is the unretired key with the latest sign_from
-- in the past; at most one key waits to sign (sign_from in the future).
--
-- Writes happen only through the SECURITY DEFINER functions below (a trigger
-- refuses direct DML by any role but the owner), each serialised by a table
-- lock, audited (audit_log, actions signing_key.*) and notified. Rows are
-- never deleted. tokend's rotation steps call them under an advisory lock
-- (one instance per step); a step that dies rolls back whole.

CREATE TABLE signing_keys (
    kid            text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{43}$'),
    alg            text NOT NULL CHECK (alg IN ('ES256', 'EdDSA', 'RS256')),
    public_jwk     text NOT NULL CHECK (length(public_jwk) BETWEEN 2 AND 4096),
    ciphertext     bytea CHECK (length(ciphertext) BETWEEN 1 AND 16384),
    nonce          bytea CHECK (length(nonce) = 12),
    tag            bytea CHECK (length(tag) = 16),
    kek_id         text NOT NULL CHECK (kek_id ~ '^[A-Za-z0-9_-]{22}$'),
    initial        boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL DEFAULT '',
    publish_at     timestamptz NOT NULL DEFAULT now(),
    sign_from      timestamptz NOT NULL,
    signing_until  timestamptz,
    retire_after   timestamptz,
    retired_at     timestamptz,
    CHECK ((ciphertext IS NULL) = (nonce IS NULL) AND (nonce IS NULL) = (tag IS NULL)),
    CHECK (ciphertext IS NOT NULL OR retired_at IS NOT NULL),
    CHECK (sign_from >= publish_at),
    CHECK ((signing_until IS NULL) = (retire_after IS NULL))
);
CREATE INDEX signing_keys_live_idx ON signing_keys (sign_from) WHERE retired_at IS NULL;

-- Direct DML is refused to everyone but the owner (the functions below run as
-- the owner); what never changes is refused to everyone.
CREATE FUNCTION signing_keys_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        RAISE EXCEPTION 'signing keys change only through tokend''s functions (tokend signing-key ...)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'signing keys are never deleted (retire them)' USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.kid, NEW.alg, NEW.public_jwk, NEW.initial, NEW.created_at, NEW.publish_at)
            IS DISTINCT FROM (OLD.kid, OLD.alg, OLD.public_jwk, OLD.initial, OLD.created_at, OLD.publish_at) THEN
        RAISE EXCEPTION 'a signing key''s kid, algorithm, public key and publication time never change'
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.retired_at IS NOT NULL AND NEW IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'signing key % is retired: it never changes again', OLD.kid
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER signing_keys_guard BEFORE INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION signing_keys_guard();
CREATE FUNCTION signing_keys_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'signing keys are never deleted (retire them)' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER signing_keys_no_truncate BEFORE TRUNCATE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION signing_keys_no_truncate();

-- Every change reaches every instance.
CREATE FUNCTION signing_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tokend_signing_keys', NEW.kid);
    RETURN NULL;
END $$;
CREATE TRIGGER signing_keys_notify AFTER INSERT OR UPDATE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION signing_keys_notify();

CREATE FUNCTION tokend_signing_key_json(k signing_keys) RETURNS jsonb LANGUAGE sql VOLATILE AS $$
    SELECT jsonb_build_object(
        'kid', k.kid, 'alg', k.alg, 'initial', k.initial, 'kek_id', k.kek_id,
        'state', CASE WHEN k.retired_at IS NOT NULL THEN 'retired'
                      WHEN k.signing_until IS NOT NULL AND k.signing_until <= clock_timestamp() THEN 'retiring'
                      WHEN k.sign_from <= clock_timestamp() THEN 'active'
                      ELSE 'next' END,
        'created_at', tokend_ts(k.created_at), 'created_by', k.created_by,
        'publish_at', tokend_ts(k.publish_at), 'sign_from', tokend_ts(k.sign_from),
        'signing_until', tokend_ts(k.signing_until), 'retire_after', tokend_ts(k.retire_after),
        'retired_at', tokend_ts(k.retired_at))
$$;

-- Add a key (generated and encrypted by tokend). The first key of a table
-- with no unretired key is the initial key: it signs at once. Any other key
-- is the next key: published now, it signs from
--   greatest(now + p_prepublish, current.sign_from + p_rotation)
-- (p_prepublish: jwks_max_age + margin; p_rotation NULL: manual), and the
-- current key stops signing then and leaves the JWKS p_tail later (the
-- longest token lifetime + margin). Refused while a next key waits.
CREATE FUNCTION tokend_signing_key_add(p_kid text, p_alg text, p_public_jwk text, p_ciphertext bytea,
                                       p_nonce bytea, p_tag bytea, p_kek_id text,
                                       p_prepublish interval, p_rotation interval, p_tail interval)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    cur  signing_keys%ROWTYPE;
    nxt  signing_keys%ROWTYPE;
    k    signing_keys%ROWTYPE;
    t    timestamptz;
    -- The time of the insert, not of the transaction's start: a step that
    -- waited for its lock publishes from when it writes.
    ts   timestamptz := clock_timestamp();
BEGIN
    LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE;
    IF p_prepublish IS NULL OR p_prepublish < interval '1 second' OR p_tail IS NULL
       OR p_tail < interval '1 second' OR (p_rotation IS NOT NULL AND p_rotation <= p_prepublish) THEN
        RAISE EXCEPTION 'pre-publication and tail must be at least 1 second, a rotation longer than the pre-publication'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'invalid';
    END IF;
    SELECT * INTO nxt FROM signing_keys WHERE retired_at IS NULL AND sign_from > ts
        ORDER BY sign_from DESC LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'signing key % is already waiting to sign (from %): retire it first or wait',
            nxt.kid, tokend_ts(nxt.sign_from) USING ERRCODE = 'check_violation', HINT = 'conflict';
    END IF;
    SELECT * INTO cur FROM signing_keys WHERE retired_at IS NULL AND signing_until IS NULL
        ORDER BY sign_from DESC LIMIT 1;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL) THEN
            RAISE EXCEPTION 'no signing key is current but some are still published: wait until they retire'
                USING ERRCODE = 'check_violation', HINT = 'conflict';
        END IF;
        INSERT INTO signing_keys (kid, alg, public_jwk, ciphertext, nonce, tag, kek_id, initial,
                                  created_by, publish_at, sign_from)
            VALUES (p_kid, p_alg, p_public_jwk, p_ciphertext, p_nonce, p_tag, p_kek_id, true,
                    tokend_actor(), ts, ts)
            RETURNING * INTO k;
    ELSE
        t := ts + p_prepublish;
        IF p_rotation IS NOT NULL AND cur.sign_from + p_rotation > t THEN
            t := cur.sign_from + p_rotation;
        END IF;
        INSERT INTO signing_keys (kid, alg, public_jwk, ciphertext, nonce, tag, kek_id, created_by,
                                  publish_at, sign_from)
            VALUES (p_kid, p_alg, p_public_jwk, p_ciphertext, p_nonce, p_tag, p_kek_id, tokend_actor(), ts, t)
            RETURNING * INTO k;
        UPDATE signing_keys SET signing_until = t, retire_after = t + p_tail WHERE kid = cur.kid;
    END IF;
    INSERT INTO audit_log (actor, action, address, detail)
        VALUES (tokend_actor(), 'signing_key.generate', tokend_address(),
                jsonb_build_object('kid', k.kid, 'alg', k.alg, 'initial', k.initial,
                                   'publish_at', tokend_ts(k.publish_at), 'sign_from', tokend_ts(k.sign_from),
                                   'replaces', cur.kid));
    RETURN tokend_signing_key_json(k);
END $$;

-- Retire a key by hand. A next key (never signed) is withdrawn at once and the
-- current key signs on; a retiring key (stopped signing, still published for
-- its tokens) leaves the JWKS at once only with p_now (its unexpired tokens
-- stop verifying: for a compromised key). The key that signs is refused: add
-- the next key, it takes over at its time.
CREATE FUNCTION tokend_signing_key_retire(p_kid text, p_now boolean)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    k signing_keys%ROWTYPE;
BEGIN
    LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO k FROM signing_keys WHERE kid = p_kid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no signing key %', p_kid USING ERRCODE = 'no_data_found', HINT = 'not_found';
    END IF;
    IF k.retired_at IS NOT NULL THEN
        RAISE EXCEPTION 'signing key % is already retired (%)', k.kid, tokend_ts(k.retired_at)
            USING ERRCODE = 'check_violation', HINT = 'conflict';
    END IF;
    IF k.sign_from > now() THEN
        UPDATE signing_keys SET signing_until = NULL, retire_after = NULL
            WHERE retired_at IS NULL AND signing_until = k.sign_from AND kid <> k.kid;
    ELSIF k.signing_until IS NULL OR k.signing_until > now() THEN
        RAISE EXCEPTION 'signing key % signs now%: generate the next key, it takes over after its pre-publication',
            k.kid, CASE WHEN k.signing_until IS NULL THEN ''
                        ELSE ' (until ' || tokend_ts(k.signing_until) || ')' END
            USING ERRCODE = 'check_violation', HINT = 'conflict';
    ELSIF NOT coalesce(p_now, false) THEN
        RAISE EXCEPTION 'signing key % no longer signs and leaves the JWKS at % (its last tokens expire then); --now removes it at once',
            k.kid, tokend_ts(k.retire_after) USING ERRCODE = 'check_violation', HINT = 'conflict';
    END IF;
    UPDATE signing_keys SET retired_at = now(), ciphertext = NULL, nonce = NULL, tag = NULL,
                            signing_until = coalesce(signing_until, now()),
                            retire_after = least(coalesce(retire_after, now()), now())
        WHERE kid = k.kid RETURNING * INTO k;
    INSERT INTO audit_log (actor, action, address, detail)
        VALUES (tokend_actor(), 'signing_key.retire', tokend_address(),
                jsonb_build_object('kid', k.kid, 'by_hand', true, 'early', coalesce(p_now, false)));
    RETURN tokend_signing_key_json(k);
END $$;

-- The rotation's last step: keys whose last token has expired (retire_after
-- passed) are marked retired and their private key erased. Returns how many.
CREATE FUNCTION tokend_signing_key_retire_due()
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    k signing_keys%ROWTYPE;
    n integer := 0;
BEGIN
    LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE;
    FOR k IN UPDATE signing_keys SET retired_at = now(), ciphertext = NULL, nonce = NULL, tag = NULL
               WHERE retired_at IS NULL AND retire_after <= now() RETURNING * LOOP
        INSERT INTO audit_log (actor, action, address, detail)
            VALUES (tokend_actor(), 'signing_key.retire', tokend_address(),
                    jsonb_build_object('kid', k.kid, 'by_hand', false,
                                       'signing_until', tokend_ts(k.signing_until)));
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- A new ciphertext for an unretired key (`tokend signing-key rewrap`: the
-- same private key under another KEK). tokend checks the result decrypts to
-- the key its kid names; this records which KEK now wraps it.
CREATE FUNCTION tokend_signing_key_rewrap(p_kid text, p_ciphertext bytea, p_nonce bytea, p_tag bytea,
                                          p_kek_id text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    old_kek text;
BEGIN
    SELECT kek_id INTO old_kek FROM signing_keys WHERE kid = p_kid AND retired_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no unretired signing key %', p_kid USING ERRCODE = 'no_data_found', HINT = 'not_found';
    END IF;
    UPDATE signing_keys SET ciphertext = p_ciphertext, nonce = p_nonce, tag = p_tag, kek_id = p_kek_id
        WHERE kid = p_kid;
    INSERT INTO audit_log (actor, action, address, detail)
        VALUES (tokend_actor(), 'signing_key.rewrap', tokend_address(),
                jsonb_build_object('kid', p_kid, 'from_kek', old_kek, 'to_kek', p_kek_id));
END $$;

-- The four functions above run as the schema owner: only tokend's own role may
-- call them (tokend_grant_app grants EXECUTE to tokend_app; PUBLIC's default
-- EXECUTE is taken away), and they look up tables only in tokend's schema,
-- never first in the caller's temporary schema (pg_temp last).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'signing_keys'::regclass)
                AND p.prosecdef LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f,
                       (SELECT nspname FROM pg_namespace
                         WHERE oid = (SELECT relnamespace FROM pg_class WHERE oid = 'signing_keys'::regclass)));
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;
