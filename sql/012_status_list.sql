-- tokend schema, version 12: an index in the Token Status List for every key
-- (draft-ietf-oauth-status-list).
--
-- Every key gets a status_idx at creation from a sequence: never chosen by the
-- caller, never changed, never reused (key rows are never deleted, and a
-- sequence never hands a value out twice). Existing keys get theirs here.
-- The list itself is not stored: tokend derives it from the key rows (a key's
-- bit is 1 while it is disabled, revoked, deleted or expired), so it cannot
-- disagree with the keys, and a deleted key's bit stays set for ever.
-- Every state change already sends NOTIFY tokend_keys (001), which makes
-- tokend rebuild its list.

CREATE SEQUENCE api_keys_status_idx_seq AS bigint MINVALUE 0 START 0;
ALTER TABLE api_keys ADD COLUMN status_idx bigint;
UPDATE api_keys SET status_idx = nextval('api_keys_status_idx_seq')
 WHERE status_idx IS NULL;
-- No column default: the trigger below assigns the index (a default would
-- take a second value from the sequence for every key).
ALTER TABLE api_keys ALTER COLUMN status_idx SET NOT NULL,
                     ADD CONSTRAINT api_keys_status_idx_key UNIQUE (status_idx),
                     ADD CONSTRAINT api_keys_status_idx_check CHECK (status_idx >= 0);
ALTER SEQUENCE api_keys_status_idx_seq OWNED BY api_keys.status_idx;

-- The index is the sequence's, whatever an INSERT says, and never changes.
CREATE FUNCTION api_keys_status_idx_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.status_idx := nextval('api_keys_status_idx_seq');
    ELSIF NEW.status_idx IS DISTINCT FROM OLD.status_idx THEN
        RAISE EXCEPTION 'key %: the status list index never changes', OLD.id
            USING ERRCODE = 'check_violation', HINT = 'tokend_immutable';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_keys_status_idx_guard BEFORE INSERT OR UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_status_idx_guard();
