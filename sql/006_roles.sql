-- tokend schema, version 6: the application role.
--
-- Two roles share the work:
--   * the schema owner (the role `tokend migrate` connects as, e.g. tokend_owner)
--     owns every table and function and is the only one that could switch a
--     trigger off or drop something;
--   * the group role tokend_app holds exactly what `tokend serve` and the CLI
--     need; the login role in database_url is a member of it (or is it). It owns
--     nothing, so it cannot disable triggers, drop or replace objects, and it is
--     no superuser, so it cannot set session_replication_role or run programs.
-- tokend_grant_app() (re)writes tokend_app's privileges; `tokend migrate` calls
-- it at the end of every run, so tables added by later migrations are covered.
-- tokend serve refuses to run as a superuser or as a member of the owner.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tokend_app') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            CREATE ROLE tokend_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        ELSE
            RAISE EXCEPTION 'the role tokend_app does not exist and % may not create it', current_user
                USING HINT = 'as a superuser: CREATE ROLE tokend_app NOLOGIN; then make tokend''s login role a member (GRANT tokend_app TO tokend)';
        END IF;
    END IF;
END $$;

-- Privileges of tokend_app on the objects of tokend's schema, revoked and granted
-- again on every call (idempotent; the result does not depend on the past):
--   api_keys          SELECT, INSERT, UPDATE of the columns that may change
--                     (not of ID, account, secret, scopes, audiences, subject, ...)
--   accounts          SELECT, INSERT, UPDATE of name, key_limit, disabled_at
--   scopes            SELECT, INSERT
--   audit_log         SELECT, INSERT (append-only: no UPDATE, DELETE, TRUNCATE)
--   revoked_tokens    SELECT, INSERT, DELETE (the purge of expired rows)
--   idempotency_keys  SELECT, INSERT
--   tokend_migrations SELECT (serve checks the schema version)
--   any other table   SELECT, INSERT, UPDATE, DELETE (a migration adding a table
--                     whose rows must not change lists it here)
-- Never TRUNCATE, REFERENCES or TRIGGER; USAGE and SELECT on the sequences;
-- EXECUTE on the functions. The schema's CREATE is taken from PUBLIC (already
-- so on databases made by PostgreSQL 15) when the caller owns the schema.
-- Refuses when tokend_app is a superuser or a member of the calling (owner) role.
CREATE FUNCTION tokend_grant_app() RETURNS void LANGUAGE plpgsql AS $$
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
            WHEN 'tokend_migrations' THEN 'SELECT'
            ELSE 'SELECT, INSERT, UPDATE, DELETE' END;
        EXECUTE format('GRANT %s ON TABLE %I.%I TO tokend_app', privs, sch, t.relname);
    END LOOP;
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO tokend_app', sch);
END $$;
