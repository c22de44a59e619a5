-- tokend schema, version 9: a check value of the pepper.
--
-- A valid but different pepper would start, say ready and answer every client
-- 401 invalid_client. The check value lets tokend refuse that at start: it is
-- HMAC-SHA256(pepper, 'tokend pepper check v1') in lowercase hex, never the
-- pepper itself (a 256-bit HMAC output reveals nothing about its key). One
-- row at most; written by the first `tokend serve`, `tokend migrate` or local
-- `tokend key create` that has a pepper (databases migrated before this
-- version get theirs on their first start). It never changes and is never
-- deleted here: a pepper change is a new deployment (see README).

CREATE TABLE pepper_check (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    check_value text NOT NULL CHECK (check_value ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION pepper_check_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the pepper check value never changes (a new pepper needs a new database, see README)'
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER pepper_check_guard BEFORE UPDATE OR DELETE ON pepper_check
    FOR EACH ROW EXECUTE FUNCTION pepper_check_guard();
CREATE TRIGGER pepper_check_no_truncate BEFORE TRUNCATE ON pepper_check
    FOR EACH STATEMENT EXECUTE FUNCTION pepper_check_guard();
