"""
tokend's database roles: an owner that runs `tokend migrate` and an application
role that `tokend serve` (and the CLI) use, which is neither a superuser nor the
owner of anything, so that it cannot switch off what the schema enforces.

The attacks run over the URL tokend itself is configured with (its
`database_url`): whatever tokend can do, someone holding its credentials can do.
"""
import re

import psycopg2
import pytest

from support.http import http_request
from support.pg import db_query
from support.server import get_token, new_key

pytestmark = pytest.mark.binary

INSUFFICIENT_PRIVILEGE = "42501"


def conf_value(path, key):
    """The last `key = value` of a config file."""
    val = None
    for line in path.read_text().splitlines():
        m = re.match(r"\s*" + re.escape(key) + r"\s*=\s*(.*?)\s*$", line)
        if m:
            val = m.group(1)
    return val


@pytest.fixture
def keyed(tokend):
    tokend.account("acme", "--key-limit", "10")
    tokend.seed_scopes("read", "write", "admin")
    k = new_key(tokend, "acme", "victim", "read")
    tokend.kid = k["client_id"]
    tokend.serve_url = conf_value(tokend.config, "database_url")
    return tokend


def attempt(url, *statements):
    """Run `statements` in one transaction as the role of `url`; the error, or None if all ran."""
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            try:
                for sql in statements:
                    cur.execute(sql)
                conn.commit()
            except psycopg2.Error as e:
                conn.rollback()
                return e
        return None
    finally:
        conn.close()


def snapshot(tk):
    return (tk.query("SELECT id, scopes, name, revoked_at, deleted_at FROM api_keys ORDER BY id"),
            tk.query("SELECT id, action FROM audit_log ORDER BY id"),
            tk.query("SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"),
            tk.query("SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                     " WHERE n.nspname = 'public' ORDER BY proname"),
            tk.query("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                     " WHERE n.nspname = 'public' ORDER BY relname"))


ATTACKS = {
    "disable_all_triggers": ["ALTER TABLE api_keys DISABLE TRIGGER ALL"],
    "disable_one_trigger": ["ALTER TABLE api_keys DISABLE TRIGGER api_keys_before_update"],
    "disable_audit_triggers": ["ALTER TABLE audit_log DISABLE TRIGGER USER"],
    # Triggers do not fire for a replica session: the row would change without an audit row or NOTIFY.
    "replica_then_scopes": ["SET session_replication_role = replica",
                            "UPDATE api_keys SET scopes = '{read,write,admin}'"],
    "replica_local": ["SET LOCAL session_replication_role = replica"],
    "copy_to_program": ["COPY (SELECT 1) TO PROGRAM 'true'"],
    "copy_from_program": ["CREATE TEMP TABLE x (t text)", "COPY x FROM PROGRAM 'id'"],
    "read_server_file": ["SELECT pg_read_file('PG_VERSION')"],
    "update_scopes": ["UPDATE api_keys SET scopes = '{read,write,admin}'"],
    "update_secret_hash": ["UPDATE api_keys SET secret_hash = decode(repeat('00', 32), 'hex')"],
    "delete_audit": ["DELETE FROM audit_log"],
    "update_audit": ["UPDATE audit_log SET actor = 'nobody'"],
    "truncate_audit": ["TRUNCATE audit_log"],
    "truncate_keys": ["TRUNCATE api_keys CASCADE"],
    "drop_table": ["DROP TABLE audit_log CASCADE"],
    "drop_trigger": ["DROP TRIGGER audit_log_no_update ON audit_log"],
    "replace_trigger_function": ["CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger"
                                 " LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$"],
    "create_function": ["CREATE FUNCTION public.evil() RETURNS int LANGUAGE sql AS 'SELECT 1'"],
    "create_table": ["CREATE TABLE public.evil (x int)"],
    "forge_migration": ["UPDATE tokend_migrations SET checksum = 'x'"],
    "become_owner": ["SET ROLE tokend_owner"],
    "become_superuser": ["SET ROLE postgres"],
    "alter_own_role": ["ALTER ROLE CURRENT_USER SUPERUSER"],
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_serving_role_cannot_break_the_schema(keyed, name):
    before = snapshot(keyed)
    err = attempt(keyed.serve_url, *ATTACKS[name])
    assert err is not None, f"{name}: accepted as tokend's database role ({ATTACKS[name]})"
    # Refused for want of the privilege, not by a trigger that a privileged role could switch off.
    assert err.pgcode == INSUFFICIENT_PRIVILEGE, (name, err.pgcode, str(err))
    assert snapshot(keyed) == before


def test_serving_role_is_plain(keyed):
    """Not a superuser, not the owner (nor a member of it), no role or database creation."""
    row = db_query(keyed.serve_url,
                   "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,"
                   " pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'api_keys'::regclass), 'MEMBER'),"
                   " pg_has_role(current_user, 'tokend_app', 'MEMBER'),"
                   " current_user <> (SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database())"
                   " FROM pg_roles r WHERE r.rolname = current_user")[0]
    assert row == (False, False, False, False, False, False, True, True), row


def test_grants_are_exactly_what_tokend_needs(keyed):
    """Table privileges of tokend_app: no TRUNCATE, TRIGGER or REFERENCES anywhere; the
    append-only log and the migration record only readable/appendable; api_keys
    updatable only in the columns that may change."""
    rows = keyed.query("SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type)"
                       " FROM information_schema.role_table_grants"
                       " WHERE grantee = 'tokend_app' GROUP BY table_name")
    grants = dict(rows)
    assert grants["audit_log"] == "INSERT,SELECT", grants
    assert grants["tokend_migrations"] == "SELECT", grants
    assert grants["api_keys"] == "INSERT,SELECT", grants
    assert grants["revoked_tokens"] == "DELETE,INSERT,SELECT", grants
    assert grants["roles"] == grants["members"] == "INSERT,SELECT", grants   # UPDATE: some columns only
    # sql/013: every table named; what is not named is read-only.
    assert grants["api_key_secrets"] == "INSERT,SELECT", grants              # UPDATE: rotation columns
    assert grants["pepper_check"] == "INSERT,SELECT", grants
    assert grants["account_scopes"] == "DELETE,INSERT,SELECT", grants
    assert grants["signing_keys"] == "SELECT", grants                         # 011's functions write
    assert grants["idempotency_keys"] == grants["scopes"] == "INSERT,SELECT", grants
    for table, privs in grants.items():
        for bad in ("TRUNCATE", "TRIGGER", "REFERENCES"):
            assert bad not in privs, (table, privs)
    cols = {c for (c,) in keyed.query(
        "SELECT column_name FROM information_schema.column_privileges"
        " WHERE grantee = 'tokend_app' AND table_name = 'api_keys' AND privilege_type = 'UPDATE'")}
    assert cols == {"name", "disabled_at", "revoked_at", "revoked_by", "revoke_reason",
                    "deleted_at", "last_used_at", "rate_limit"}, cols
    for table, want in (("roles", {"description", "scopes", "updated_at"}), ("members", {"name", "deactivated_at"}),
                        ("api_key_secrets", {"secret_hash", "secret_hint", "previous_hash", "previous_hint",
                                             "previous_until", "rotated_at", "rotated_by", "rotations"})):
        cols = {c for (c,) in keyed.query(
            "SELECT column_name FROM information_schema.column_privileges"
            " WHERE grantee = 'tokend_app' AND table_name = %s AND privilege_type = 'UPDATE'", (table,))}
        assert cols == want, (table, cols)


def test_allowed_changes_still_work_as_the_serving_role(keyed):
    """What tokend does through its role: rename, disable, revoke, append to the audit log."""
    assert attempt(keyed.serve_url,
                   f"UPDATE api_keys SET name = 'renamed' WHERE id = '{keyed.kid}'",
                   f"UPDATE api_keys SET revoked_at = now(), revoke_reason = 'test' WHERE id = '{keyed.kid}'",
                   "INSERT INTO audit_log (actor, action) VALUES ('ops', 'note')") is None
    assert keyed.query("SELECT name, revoked_at IS NOT NULL FROM api_keys WHERE id = %s",
                       (keyed.kid,)) == [("renamed", True)]


def test_serve_works_as_the_application_role(keyed, start_server):
    """Token issuance, the admin API, revocation and the last-used flush, end to end."""
    op = new_key(keyed, "acme", "admin", "tokend:admin:read tokend:admin:write")
    srv = start_server(keyed)
    assert conf_value(srv.config, "database_url") == keyed.serve_url
    tok = get_token(srv, op)
    h = {"Authorization": "Bearer " + tok}
    r = http_request(srv.port, "GET", "/admin/v1/keys", headers=h)
    assert r.status == 200, r
    r = http_request(srv.port, "POST", f"/admin/v1/keys/{keyed.kid}/revoke",
                     '{"reason": "roles test"}', {**h, "Content-Type": "application/json"})
    assert r.status == 200, r
    assert keyed.query("SELECT revoked_by IS NOT NULL FROM api_keys WHERE id = %s", (keyed.kid,)) == [(True,)]


@pytest.mark.parametrize("who", ["superuser", "owner"])
def test_serve_refuses_a_privileged_role(keyed, start_server, who):
    url = keyed.db_url if who == "superuser" else conf_value(keyed.config, "migrate_database_url")
    srv = start_server(keyed, wait=False, check_exit=False, database_url=url)
    srv.proc.wait(timeout=30)
    assert srv.proc.returncode == 1, srv.stderr_text()   # refused
    err = srv.stderr_text()
    assert ("superuser" if who == "superuser" else "owns") in err, err
    assert "allow_privileged_database_role" in err, err


def test_serve_with_the_override_starts_as_superuser(keyed, start_server):
    srv = start_server(keyed, database_url=keyed.db_url, allow_privileged_database_role="yes")
    assert srv.get("/readyz").status == 200
    assert srv.log_lines("db.privileged_role"), srv.stderr_text()[-2000:]


def test_config_masks_database_passwords(tokend):
    cfg = tokend.write_config([
        "database_url = postgresql://tokend:s3cr3t-app@db.example:5432/tokend?sslmode=verify-full",
        "migrate_database_url = host=db.example user=tokend_owner password='s3cr3t owner' dbname=tokend",
        f"pepper_file = {tokend.pepper_file}"])
    r = tokend.run("config", config=cfg, check=0)
    assert "s3cr3t" not in r.stdout + r.stderr, r.stdout
    assert "database_url = postgresql://tokend:********@db.example:5432/tokend?sslmode=verify-full" in r.stdout, r.stdout
    assert "migrate_database_url = host=db.example user=tokend_owner password=******** dbname=tokend" in r.stdout, r.stdout


def test_test_cluster_requires_passwords(pg):
    """No `trust` in the cluster's pg_hba.conf, and a connection without a password is refused."""
    hba = [l.split() for l in (pg.dir / "data" / "pg_hba.conf").read_text().splitlines()
           if l.strip() and not l.lstrip().startswith("#")]
    assert hba and all(l[-1] in ("scram-sha-256", "peer") for l in hba), hba
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?passfile=/dev/null",
                         connect_timeout=10).close()


def test_owner_functions_only_for_tokend_and_never_search_pg_temp_first(keyed):
    """The SECURITY DEFINER functions of sql/011 (signing keys, run as the owner) cannot be
    called by a role that is not tokend's, and find their tables in tokend's schema, not
    in a temporary table the caller made first."""
    rows = keyed.query("SELECT p.oid::regprocedure::text, p.proconfig, has_function_privilege('public', p.oid, 'EXECUTE')"
                       " FROM pg_proc p WHERE p.prosecdef ORDER BY 1")
    names = {r[0].split("(")[0] for r in rows}
    assert names == {"tokend_signing_key_add", "tokend_signing_key_retire", "tokend_signing_key_retire_due",
                     "tokend_signing_key_rewrap"}, rows
    for name, config, public in rows:
        assert not public, name
        assert config and any(c.startswith("search_path=") and c.endswith(", pg_temp") for c in config), (name, config)
    keyed.query("DROP ROLE IF EXISTS outsider")
    keyed.query("CREATE ROLE outsider LOGIN PASSWORD 'outsider-pw'")
    try:
        url = re.sub(r"//[^@/]*@", "//outsider:outsider-pw@", keyed.serve_url)
        e = attempt(url, "SELECT tokend_signing_key_retire_due()")
        assert e is not None and e.pgcode == INSUFFICIENT_PRIVILEGE, e
        # tokend's own role may (the server's rotation step).
        assert attempt(keyed.serve_url, "SELECT tokend_signing_key_retire_due()") is None
    finally:
        keyed.query("DROP ROLE outsider")
