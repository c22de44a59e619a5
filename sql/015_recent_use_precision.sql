-- tokend schema, version 15: the deletion guard widened by last_used_precision.
--
-- Since version 14's tokend, a key's uses are written to last_used_precision
-- (default 60 s, at most 1 h): a use less than that after the last recorded
-- one is not written, so the recorded time can be that much older than the
-- key's real last use. The guard ("used in the last 24 hours: confirm")
-- therefore looks back 24 hours plus the precision. tokend passes its setting
-- as tokend.last_used_precision (seconds: the admin API per statement, the CLI
-- per session); without it the guard assumes the largest precision there is,
-- so that a missing value never lets a deletion through that it would refuse.

CREATE FUNCTION tokend_recent_use_since() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT now() - interval '24 hours'
           - make_interval(secs => greatest(0, least(3600,
                 coalesce(nullif(current_setting('tokend.last_used_precision', true), '')::integer, 3600))))
$$;

-- As in sql/007, but for the guard's window.
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
        IF NOT p_confirm AND k.last_used_at IS NOT NULL AND k.last_used_at > tokend_recent_use_since() THEN
            RAISE EXCEPTION 'key % was used in the last 24 hours (last used %); confirm to delete it',
                p_id, tokend_ts(k.last_used_at) USING HINT = 'recently_used';
        END IF;
        UPDATE api_keys SET deleted_at = now() WHERE id = p_id RETURNING * INTO k;
    ELSE
        RAISE EXCEPTION 'unknown action %', p_action USING HINT = 'invalid';
    END IF;
    RETURN tokend_key_json(k);
END $$;
