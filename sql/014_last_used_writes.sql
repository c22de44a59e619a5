-- tokend schema, version 14: a last-used write runs no PL/pgSQL.
--
-- tokend's batched last-used UPDATE sets last_used_at and nothing else, yet
-- every row trigger of api_keys ran for it (five PL/pgSQL calls a key) and
-- found nothing to do: about 6 us of the database's CPU a key, a fifth of the
-- write (1M keys, 20,480 random ones written in batches of 4,096: 29 us a key
-- with the triggers, 23 without).
--
-- Each UPDATE trigger now names the columns it checks (UPDATE OF: it fires
-- when the statement sets one of them). No BEFORE trigger changes any of those
-- columns, so a change to one is always checked, as before. last_used_at's own
-- rule (it only moves forward) is a trigger whose WHEN clause, evaluated
-- without a function call, holds only for a write that would move it back or
-- clear it. test_schema.py checks that every column of api_keys stays watched
-- by some BEFORE UPDATE trigger.

DROP TRIGGER api_keys_before_update ON api_keys;
CREATE TRIGGER api_keys_before_update
    BEFORE UPDATE OF id, account_id, name, secret_hash, pepper_id, secret_hint, scopes, audiences, subject,
                     token_lifetime, created_at, created_by, expires_at, disabled_at, revoked_at, revoked_by,
                     revoke_reason, deleted_at
    ON api_keys FOR EACH ROW EXECUTE FUNCTION api_keys_before_update();

CREATE FUNCTION api_keys_last_used_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_used_at := OLD.last_used_at;   -- only forward; never cleared
    RETURN NEW;
END $$;
CREATE TRIGGER api_keys_last_used_forward BEFORE UPDATE OF last_used_at ON api_keys
    FOR EACH ROW WHEN (NEW.last_used_at IS NULL OR NEW.last_used_at < OLD.last_used_at)
    EXECUTE FUNCTION api_keys_last_used_forward();

-- Audit rows and NOTIFY tokend_keys: for these four only (the function's branches).
DROP TRIGGER api_keys_after_change ON api_keys;
CREATE TRIGGER api_keys_after_change AFTER INSERT OR UPDATE OF name, disabled_at, revoked_at, deleted_at
    ON api_keys FOR EACH ROW EXECUTE FUNCTION api_keys_after_change();

DROP TRIGGER api_keys_model_rules ON api_keys;
CREATE TRIGGER api_keys_model_rules BEFORE INSERT OR UPDATE OF role, member_id, environment, claims, disabled_at
    ON api_keys FOR EACH ROW EXECUTE FUNCTION api_keys_model_rules();

DROP TRIGGER api_keys_publishable_rules ON api_keys;
CREATE TRIGGER api_keys_publishable_rules BEFORE INSERT OR UPDATE OF publishable, allowed_origins
    ON api_keys FOR EACH ROW EXECUTE FUNCTION api_keys_publishable_rules();

DROP TRIGGER api_keys_status_idx_guard ON api_keys;
CREATE TRIGGER api_keys_status_idx_guard BEFORE INSERT OR UPDATE OF status_idx
    ON api_keys FOR EACH ROW EXECUTE FUNCTION api_keys_status_idx_guard();
