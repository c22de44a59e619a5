"""
The database enforces what must never change, whoever writes to it.

The schema is installed by `tokend migrate` and keys are made with the CLI;
then these tests attack the rows with raw SQL through psycopg2 (as the
PostgreSQL superuser, the strongest ordinary client) and check that every
forbidden change is rejected and leaves the row exactly as it was.
"""
import concurrent.futures
import hashlib
import os
import threading

import psycopg2
import pytest

from support.keys import make_key_id
from support.pg import db_dicts, listen, poll_notifies
from support.util import SQL_DIR

pytestmark = pytest.mark.binary


@pytest.fixture
def keyed(tokend):
    """tokend with accounts acme (limit 10) and beta, three scopes, and one full key."""
    tokend.account("acme", "--key-limit", "10")
    tokend.account("beta")
    tokend.seed_scopes("read", "write", "admin")
    k = tokend.create_key("acme", "victim", "read write",
                          "--audience", "https://api.example.com", "--subject", "member-1",
                          "--expires-at", "2031-06-01T00:00:00Z", "--token-lifetime", "5m")
    tokend.key = k
    tokend.kid = k["client_id"]
    return tokend


def key_row(tk, kid):
    rows = db_dicts(tk.db_url, "SELECT * FROM api_keys WHERE id = %s", (kid,))
    assert len(rows) == 1
    return rows[0]


def rejected(url, sql, params=None):
    """Run `sql` in its own transaction; assert PostgreSQL refuses it. Returns the error."""
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(sql, params)
                conn.commit()
            except psycopg2.Error as e:
                conn.rollback()
                return e
        raise AssertionError(f"PostgreSQL accepted: {sql} {params or ''}")
    finally:
        conn.close()


def accepted(url, sql, params=None):
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount
    finally:
        conn.close()


def audit_count(tk):
    return tk.query("SELECT count(*) FROM audit_log")[0][0]


# ===========================================================================
# Schema as installed by `tokend migrate`
# ===========================================================================
def test_migrations_table(tokend):
    cols = {c for (c,) in tokend.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'tokend_migrations'")}
    assert {"version", "name", "checksum", "applied_at"} <= cols, cols
    rows = tokend.dicts("SELECT * FROM tokend_migrations ORDER BY version")
    files = sorted(SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))
    assert [(r["version"], r["name"]) for r in rows] == [(int(p.name[:3]), p.stem) for p in files]
    assert all(r["checksum"] and r["applied_at"] for r in rows)
    assert len({r["checksum"] for r in rows}) == len(rows)
    tables = {t for (t,) in tokend.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"accounts", "scopes", "api_keys", "audit_log", "tokend_migrations"} <= tables


# ===========================================================================
# Immutable key columns
# ===========================================================================
IMMUTABLE_UPDATES = {
    "add scope": "scopes = array_append(scopes, 'admin')",
    "replace scopes": "scopes = ARRAY['admin']",
    "clear audiences": "audiences = '{}'",
    "add audience": "audiences = array_append(audiences, 'https://evil.example')",
    "secret hash": "secret_hash = sha256('attacker'::bytea)",
    "id": "id = %(new_id)s",
    "subject": "subject = 'member-2'",
    "drop subject": "subject = NULL",
    "extend expiry": "expires_at = expires_at + interval '10 years'",
    "drop expiry": "expires_at = NULL",
    "account": "account_id = 'beta'",
    "token lifetime": "token_lifetime = 3600",
    "created_at": "created_at = created_at - interval '1 year'",
    "created_by": "created_by = 'someone else'",
    "hint": "secret_hint = 'AAAA'",
    "pepper id": "pepper_id = 2",
}


@pytest.mark.parametrize("assignment", list(IMMUTABLE_UPDATES.values()), ids=list(IMMUTABLE_UPDATES))
def test_immutable_columns(keyed, assignment):
    before = key_row(keyed, keyed.kid)
    n_audit = audit_count(keyed)
    rejected(keyed.db_url, f"UPDATE api_keys SET {assignment} WHERE id = %(id)s",
             {"id": keyed.kid, "new_id": make_key_id()})
    assert key_row(keyed, keyed.kid) == before
    assert audit_count(keyed) == n_audit
    assert keyed.json("key", "show", keyed.kid)["state"] == "enabled"


def test_allowed_update_is_audited(keyed):
    """The triggers are not a blanket ban: a rename through SQL works, and is audited."""
    assert accepted(keyed.db_url, "UPDATE api_keys SET name = 'via sql' WHERE id = %s", (keyed.kid,)) == 1
    assert keyed.json("key", "show", keyed.kid)["name"] == "via sql"
    last = keyed.dicts("SELECT actor, action, key_id FROM audit_log ORDER BY id DESC LIMIT 1")[0]
    assert (last["action"], last["key_id"]) == ("key.rename", keyed.kid)
    assert last["actor"] == "sql:postgres"


def test_last_used_only_moves_forward(keyed):
    accepted(keyed.db_url, "UPDATE api_keys SET last_used_at = '2030-01-01T00:00:00Z' WHERE id = %s", (keyed.kid,))
    accepted(keyed.db_url, "UPDATE api_keys SET last_used_at = '2029-01-01T00:00:00Z' WHERE id = %s", (keyed.kid,))
    accepted(keyed.db_url, "UPDATE api_keys SET last_used_at = NULL WHERE id = %s", (keyed.kid,))
    assert key_row(keyed, keyed.kid)["last_used_at"].year == 2030
    assert keyed.json("key", "show", keyed.kid)["last_used_at"].startswith("2030-01-01")


def test_every_key_column_is_watched_on_update(keyed):
    """sql/014: each UPDATE trigger of api_keys names the columns it checks (UPDATE OF), so
    that tokend's last-used writes run none of them. A column added later and named by no
    BEFORE UPDATE trigger would be changeable unchecked: every column must stay watched."""
    cols = {n for (n,) in keyed.query(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'api_keys'::regclass AND attnum > 0 AND NOT attisdropped")}
    watched, everything = set(), False
    # tgtype bits: 1 row, 2 before, 16 update.
    for (attrs,) in keyed.query(
            "SELECT coalesce((SELECT array_agg(a.attname::text) FROM unnest(t.tgattr) AS n"
            "                   JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = n), '{}')"
            "  FROM pg_trigger t WHERE t.tgrelid = 'api_keys'::regclass AND NOT t.tgisinternal"
            "   AND t.tgtype & 19 = 19"):
        if not attrs:
            everything = True
        watched |= set(attrs)
    assert everything or cols <= watched, f"columns no BEFORE UPDATE trigger checks: {sorted(cols - watched)}"
    assert "last_used_at" in watched


def test_last_used_write_runs_no_trigger_function(keyed):
    """tokend's batched write (the statement of server/db/dbjobs.c) calls no PL/pgSQL; a
    write that would move last_used_at back calls only the function that keeps it."""
    conn = psycopg2.connect(keyed.db_url, connect_timeout=10)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL track_functions = 'pl'")
            cur.execute("UPDATE api_keys k SET last_used_at = to_timestamp(v.t)"
                        "  FROM unnest(%s::text[], %s::bigint[]) AS v(id, t)"
                        " WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < to_timestamp(v.t))",
                        ([keyed.kid], [1900000000]))
            assert cur.rowcount == 1
            cur.execute("SELECT funcname, calls FROM pg_stat_xact_user_functions ORDER BY funcname")
            assert cur.fetchall() == []
            cur.execute("UPDATE api_keys SET last_used_at = to_timestamp(1800000000) WHERE id = %s", (keyed.kid,))
            cur.execute("SELECT funcname, calls FROM pg_stat_xact_user_functions ORDER BY funcname")
            assert cur.fetchall() == [("api_keys_last_used_forward", 1)]
            cur.execute("UPDATE api_keys SET name = 'watched' WHERE id = %s", (keyed.kid,))
            cur.execute("SELECT funcname FROM pg_stat_xact_user_functions ORDER BY funcname")
            called = {f for (f,) in cur.fetchall()}
            assert {"api_keys_before_update", "api_keys_after_change"} <= called, called
    finally:
        conn.close()
    assert key_row(keyed, keyed.kid)["last_used_at"].timestamp() == 1900000000


# ===========================================================================
# Revocation is permanent; deletion is final; rows are never removed
# ===========================================================================
REVOKED_ATTACKS = {
    "un-revoke": "revoked_at = NULL",
    "un-revoke fully": "revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL",
    "re-enable": "disabled_at = CASE WHEN disabled_at IS NULL THEN now() ELSE NULL END",
    "clear disabled_at": "disabled_at = NULL",
    "move revoked_at": "revoked_at = revoked_at + interval '1 day'",
    "rewrite reason": "revoke_reason = 'nothing happened'",
    "rewrite revoker": "revoked_by = 'someone else'",
}


@pytest.mark.parametrize("assignment", list(REVOKED_ATTACKS.values()), ids=list(REVOKED_ATTACKS))
def test_revoked_key_stays_revoked(keyed, assignment):
    keyed.run("key", "disable", keyed.kid, check=0)
    keyed.run("key", "revoke", keyed.kid, "--reason", "compromised", check=0)
    before = key_row(keyed, keyed.kid)
    assert before["revoked_at"] is not None
    if assignment == "disabled_at = NULL" and before["disabled_at"] is None:
        pytest.fail("`key revoke` cleared disabled_at of a disabled key")
    rejected(keyed.db_url, f"UPDATE api_keys SET {assignment} WHERE id = %s", (keyed.kid,))
    assert key_row(keyed, keyed.kid) == before
    shown = keyed.json("key", "show", keyed.kid)
    assert shown["state"] == "revoked" and shown["revoke_reason"] == "compromised"


DELETED_ATTACKS = {
    "undelete": "deleted_at = NULL",
    "rename": "name = 'back again'",
    "toggle disabled": "disabled_at = CASE WHEN disabled_at IS NULL THEN now() ELSE NULL END",
    "revoke": "revoked_at = now(), revoked_by = 'x'",
}


@pytest.mark.parametrize("assignment", list(DELETED_ATTACKS.values()), ids=list(DELETED_ATTACKS))
def test_deleted_key_stays_deleted(keyed, assignment):
    keyed.run("key", "delete", keyed.kid, check=0)
    before = key_row(keyed, keyed.kid)
    rejected(keyed.db_url, f"UPDATE api_keys SET {assignment} WHERE id = %s", (keyed.kid,))
    assert key_row(keyed, keyed.kid) == before
    keyed.refused("key", "show", keyed.kid)


@pytest.mark.parametrize("sql", [
    "DELETE FROM api_keys WHERE id = %(id)s",
    "DELETE FROM api_keys",
    "TRUNCATE api_keys",
    "TRUNCATE api_keys, audit_log",
    "DELETE FROM accounts WHERE id = 'acme'",
    "DELETE FROM accounts WHERE id = 'beta'",
    "TRUNCATE accounts CASCADE",
    "DELETE FROM scopes WHERE name = 'admin'",
    "TRUNCATE scopes",
], ids=["delete key", "delete all keys", "truncate keys", "truncate keys+audit", "delete account",
        "delete empty account", "truncate accounts cascade", "delete scope", "truncate scopes"])
def test_rows_are_never_removed(keyed, sql):
    counts = keyed.query("SELECT (SELECT count(*) FROM api_keys), (SELECT count(*) FROM accounts), "
                         "(SELECT count(*) FROM scopes), (SELECT count(*) FROM audit_log)")[0]
    rejected(keyed.db_url, sql, {"id": keyed.kid})
    assert keyed.query("SELECT (SELECT count(*) FROM api_keys), (SELECT count(*) FROM accounts), "
                       "(SELECT count(*) FROM scopes), (SELECT count(*) FROM audit_log)")[0] == counts


# ===========================================================================
# The audit log is append-only
# ===========================================================================
@pytest.mark.parametrize("sql", [
    "UPDATE audit_log SET actor = 'nobody'",
    "UPDATE audit_log SET detail = '{}' WHERE action = 'key.create'",
    "DELETE FROM audit_log",
    "DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)",
    "TRUNCATE audit_log",
], ids=["update actor", "update detail", "delete all", "delete last", "truncate"])
def test_audit_log_append_only(keyed, sql):
    before = keyed.dicts("SELECT * FROM audit_log ORDER BY id")
    assert before
    rejected(keyed.db_url, sql)
    assert keyed.dicts("SELECT * FROM audit_log ORDER BY id") == before


def test_audit_log_accepts_appends(keyed):
    accepted(keyed.db_url, "INSERT INTO audit_log (actor, action) VALUES ('ops', 'note')")
    assert keyed.query("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1")[0][0] == "note"


# ===========================================================================
# Raw INSERTs go through the same rules as the CLI
# ===========================================================================
def raw_insert_sql(extra_cols="", extra_vals=""):
    return ("INSERT INTO api_keys (id, account_id, name, secret_hash, secret_hint, scopes" + extra_cols + ") "
            "VALUES (%(id)s, %(account)s, 'raw', %(hash)s, 'abcd', %(scopes)s" + extra_vals + ")")


def raw_params(account, scopes=("read",)):
    return {"id": make_key_id(), "account": account, "hash": hashlib.sha256(os.urandom(16)).digest(),
            "scopes": list(scopes)}


@pytest.mark.parametrize("case", ["unknown scope", "duplicate scopes", "unknown account",
                                  "starts revoked", "starts deleted", "starts used"])
def test_raw_insert_rejected(keyed, case):
    sql, p = raw_insert_sql(), raw_params("acme")
    if case == "unknown scope":
        p["scopes"] = ["read", "nope"]
    elif case == "duplicate scopes":
        p["scopes"] = ["read", "read"]
    elif case == "unknown account":
        p["account"] = "nosuch"
    elif case == "starts revoked":
        sql = raw_insert_sql(", revoked_at, revoked_by", ", now(), 'x'")
    elif case == "starts deleted":
        sql = raw_insert_sql(", deleted_at", ", now()")
    elif case == "starts used":
        sql = raw_insert_sql(", last_used_at", ", now()")
    n = keyed.query("SELECT count(*) FROM api_keys")[0][0]
    rejected(keyed.db_url, sql, p)
    assert keyed.query("SELECT count(*) FROM api_keys")[0][0] == n


def test_raw_insert_accepted(keyed):
    """The rejections above are for the stated reason: a plain raw INSERT works."""
    accepted(keyed.db_url, raw_insert_sql(), raw_params("acme"))
    assert keyed.query("SELECT count(*) FROM api_keys")[0][0] == 2


def test_raw_insert_limit_holds_under_race(keyed):
    """The database alone holds the limit: 30 concurrent raw INSERTs, limit 3."""
    keyed.account("racer")
    keyed.grant_scopes("racer", "read")
    n = 30
    barrier = threading.Barrier(n)

    def one(_):
        conn = psycopg2.connect(keyed.db_url, connect_timeout=10)
        try:
            barrier.wait()
            with conn, conn.cursor() as cur:
                cur.execute(raw_insert_sql(), raw_params("racer"))
            return None
        except psycopg2.Error as e:
            return e
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        results = list(ex.map(one, range(n)))
    errors = [e for e in results if e is not None]
    assert len(errors) == n - 3, [str(e) for e in errors][:3]
    assert all("limit" in str(e) for e in errors), {str(e).splitlines()[0] for e in errors}
    assert keyed.query("SELECT count(*) FROM api_keys WHERE account_id = 'racer'")[0][0] == 3


# ===========================================================================
# NOTIFY on every key change
# ===========================================================================
def test_notify_on_every_key_change(keyed):
    conn = listen(keyed.db_url, "tokend_keys")
    try:
        kid = keyed.kid
        keyed.run("key", "disable", kid, check=0)
        assert poll_notifies(conn, 1) == [("tokend_keys", kid)], "disable must NOTIFY tokend_keys with the key ID"
        for args in (["key", "enable", kid], ["key", "rename", kid, "renamed"],
                     ["key", "revoke", kid, "--reason", "x"], ["key", "delete", kid]):
            keyed.run(*args, check=0)
            assert poll_notifies(conn, 1) == [("tokend_keys", kid)], f"no NOTIFY for {args}"
        k2 = keyed.create_key("acme", "second")
        assert poll_notifies(conn, 1) == [("tokend_keys", k2["client_id"])], "no NOTIFY for key create"
        # Refused changes and reads notify nothing.
        keyed.refused("key", "enable", kid)
        keyed.run("key", "list", check=0)
        keyed.run("key", "show", k2["client_id"], check=0)
        assert poll_notifies(conn, 1, timeout=0.5) == []
    finally:
        conn.close()


def test_notify_on_account_change(keyed):
    conn = listen(keyed.db_url, "tokend_accounts")
    try:
        keyed.run("account", "set-limit", "acme", "4", check=0)
        assert poll_notifies(conn, 1) == [("tokend_accounts", "acme")]
    finally:
        conn.close()
