-- tokend schema, version 13: tokend_app's privileges named table by table.
--
-- Until now a table that tokend_grant_app() did not name got SELECT, INSERT,
-- UPDATE and DELETE: api_key_secrets (008), pepper_check (009),
-- account_scopes (005) and signing_keys (011) did. Least privilege instead:
--   account_scopes   SELECT, INSERT, DELETE (grants are added and withdrawn)
--   api_key_secrets  SELECT, INSERT, UPDATE of the rotation's columns (the
--                    rotation upserts; rows are never deleted: a trigger)
--   pepper_check     SELECT, INSERT (written once; a trigger refuses changes)
--   signing_keys     SELECT (written only by the SECURITY DEFINER functions
--                    of 011, as the schema owner)
--   anything else    SELECT, unless named here.
-- `tokend migrate` calls tokend_grant_app() at the end of every run.

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
            WHEN 'account_scopes' THEN 'SELECT, INSERT, DELETE'
            WHEN 'api_key_secrets' THEN 'SELECT, INSERT, UPDATE (secret_hash, secret_hint, previous_hash, '
                                        'previous_hint, previous_until, rotated_at, rotated_by, rotations)'
            WHEN 'pepper_check' THEN 'SELECT, INSERT'
            WHEN 'signing_keys' THEN 'SELECT'
            WHEN 'tokend_migrations' THEN 'SELECT'
            -- A table no case names is read-only for tokend_app: a new table's
            -- writes are granted here on purpose, never by default.
            ELSE 'SELECT' END;
        EXECUTE format('GRANT %s ON TABLE %I.%I TO tokend_app', privs, sch, t.relname);
    END LOOP;
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO tokend_app', sch);
END $$;
