-- tokend's database roles and database, for psql run as a PostgreSQL superuser.
-- Idempotent: run it again to change the passwords or to upgrade a database
-- that was set up without these roles (see README, "Database roles").
--
--   TOKEND_OWNER_PASSWORD_FILE=... TOKEND_APP_PASSWORD_FILE=... \
--   psql -X -v ON_ERROR_STOP=1 -v dbname=tokend -v app_user=tokend -f scripts/db-roles.sql SUPERUSER_URL
--
-- Makes (or updates):
--   tokend_owner  LOGIN, no other attribute: owns the database and every object of
--                 tokend's schema; `tokend migrate` connects as it (migrate_database_url)
--   tokend_app    NOLOGIN group role: the privileges of tokend serve and the CLI,
--                 granted by `tokend migrate` (sql/006_roles.sql)
--   :app_user     LOGIN, member of tokend_app, no other attribute: tokend serve and
--                 the CLI connect as it (database_url)
--   :dbname       the database, owned by tokend_owner; objects of its public schema
--                 owned by another role (a database set up before these roles) are
--                 given to tokend_owner
-- The passwords are read from the files named by the environment (psql's backquote,
-- so they never appear on a command line); PostgreSQL stores them as SCRAM-SHA-256.
\set ON_ERROR_STOP on
\set QUIET on
SET client_min_messages = warning;
\set owner_password `cat "$TOKEND_OWNER_PASSWORD_FILE"`
\set app_password `cat "$TOKEND_APP_PASSWORD_FILE"`
SET password_encryption = 'scram-sha-256';

SELECT 'CREATE ROLE tokend_owner LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tokend_owner') \gexec
ALTER ROLE tokend_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';

SELECT 'CREATE ROLE tokend_app NOLOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tokend_app') \gexec
ALTER ROLE tokend_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

SELECT format('CREATE ROLE %I LOGIN', :'app_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user') \gexec
ALTER ROLE :"app_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'app_password';
GRANT tokend_app TO :"app_user";
-- The application login must not reach the owner through any membership.
SELECT format('REVOKE %I FROM %I', 'tokend_owner', :'app_user')
 WHERE pg_has_role(:'app_user', 'tokend_owner', 'MEMBER') \gexec

-- Without -v dbname: the roles only (a cluster whose databases come later, e.g. tests).
\if :{?dbname}
SELECT format('CREATE DATABASE %I OWNER tokend_owner', :'dbname')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'dbname') \gexec
ALTER DATABASE :"dbname" OWNER TO tokend_owner;

\connect :"dbname"
-- A database migrated before the split: its objects belong to whoever ran
-- `tokend migrate` (often postgres); give them to tokend_owner.
DO $$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT format('ALTER %s %s OWNER TO tokend_owner',
                           CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END,
                           c.oid::regclass) AS stmt
               FROM pg_class c
              WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v')
                AND c.relowner <> 'tokend_owner'::regrole
    LOOP
        EXECUTE o.stmt;   -- a table's owned sequences follow it
    END LOOP;
    FOR o IN SELECT format('ALTER FUNCTION %s OWNER TO tokend_owner', p.oid::regprocedure) AS stmt
               FROM pg_proc p
              WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> 'tokend_owner'::regrole
    LOOP
        EXECUTE o.stmt;
    END LOOP;
    -- PostgreSQL 15 gives public to pg_database_owner (now tokend_owner); an older
    -- cluster's upgrade may have left it to postgres.
    IF (SELECT nspowner <> 'pg_database_owner'::regrole FROM pg_namespace WHERE nspname = 'public') THEN
        ALTER SCHEMA public OWNER TO tokend_owner;
    END IF;
END $$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
\endif
