"""
Last-used times kept to a precision (last_used_precision, default 60 s).

A use less than the precision after the key's last recorded use - by this
instance or by another, whose write it loaded - is not written: a key in
steady use costs PostgreSQL one row update per precision, not one per flush
interval on every instance. These tests count the row updates of the key
(a row trigger in the test database), read the database's last_used_at and the
two metrics (tokend_last_used_recorded_total, tokend_last_used_written_total),
and check that the deletion guard widens its 24 hours by the precision.

The servers flush every second (support.server's default for the suite).
"""
import contextlib
import http.client
import time

import pytest

from support.admin import create, env, ok, pair, refused, send   # noqa: F401 (env: the module's fixture)
from support.http import metric
from support.server import get_token
from support.util import wait_until

pytestmark = pytest.mark.binary


@contextlib.contextmanager
def row_updates(t, key_id):
    """Count the UPDATEs of `key_id`'s row from now on: yields a function that reads the count."""
    t.query("CREATE TABLE IF NOT EXISTS e2e_row_upd (key_id text NOT NULL, at timestamptz DEFAULT clock_timestamp())")
    t.query("GRANT INSERT ON e2e_row_upd TO tokend_app")
    t.query("""CREATE OR REPLACE FUNCTION e2e_count_row_upd() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO e2e_row_upd (key_id) VALUES (NEW.id); RETURN NULL; END $$""")
    t.query("DROP TRIGGER IF EXISTS e2e_count_row_upd ON api_keys")
    t.query("CREATE TRIGGER e2e_count_row_upd AFTER UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION e2e_count_row_upd()")
    try:
        yield lambda: t.query("SELECT count(*) FROM e2e_row_upd WHERE key_id = %s", (key_id,))[0][0]
    finally:
        t.query("DROP TRIGGER IF EXISTS e2e_count_row_upd ON api_keys")


def db_last_used(t, key_id):
    """The database's last_used_at of the key, epoch seconds (0: never)."""
    return t.query("SELECT coalesce(extract(epoch FROM last_used_at), 0)::float FROM api_keys WHERE id = %s",
                   (key_id,))[0][0]


def counters(srvs):
    """tokend_last_used_recorded_total and _written_total, summed over servers."""
    rec = wri = 0
    for s in srvs:
        m = s.metrics()
        rec += metric(m, "tokend_last_used_recorded_total")
        wri += metric(m, "tokend_last_used_written_total")
    return rec, wri


def server_and_key(env, start_server, prefix, **settings):
    """A server on the module's database with `settings`, and a new key of a new account."""
    srv = start_server(env.t, issuer=env.srv.issuer, **settings)
    acct, adm = pair(env, prefix)
    return srv, create(adm, {"name": prefix, "scopes": ["read"]})


def first_use(t, srv, k):
    """A token for key `k` from `srv`; the key's first use, written at once: its recorded second."""
    get_token(srv, k)
    return wait_until(lambda: db_last_used(t, k["client_id"]), timeout=5, what="the first use to be written")


def sleep_until(when):
    while time.time() < when:
        time.sleep(0.05)


def tokens_on_new_connections(srv, key, n):
    """n tokens, each on a new connection (SO_REUSEPORT spreads them over the workers)."""
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        try:
            r = srv.token(key, conn=conn)
            assert r.status == 200, r
        finally:
            conn.close()


def test_uses_within_the_precision_are_not_written(env, start_server):
    """The default precision (60 s): the first use is written at once; the next 40, over
    two workers and two instances, change nothing in the database and are not recorded."""
    t = env.t
    a = start_server(t, issuer=env.srv.issuer)
    b = start_server(t, issuer=env.srv.issuer)
    acct, adm = pair(env, "lu-precise")
    k = create(adm, {"name": "steady", "scopes": ["read"]})
    kid = k["client_id"]
    with row_updates(t, kid) as updates:
        rec0, wri0 = counters([a, b])
        t1 = first_use(t, a, k)
        time.sleep(1.1)                       # the next uses are in a later second
        tokens_on_new_connections(a, k, 20)
        tokens_on_new_connections(b, k, 20)   # b loads the key with a's write
        time.sleep(2.5)                       # two flush intervals and more
        assert db_last_used(t, kid) == t1
        assert updates() == 1
        rec1, wri1 = counters([a, b])
        assert (rec1 - rec0, wri1 - wri0) == (1, 1)
    # What the admin API shows is the recorded use.
    shown = ok(adm.get(f"keys/{kid}"))["last_used_at"]
    assert shown and time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t1)) in shown, (shown, t1)


def test_a_use_past_the_precision_is_written(env, start_server):
    """Precision 2 s: a use 1 s after the recorded one is not written; one 2 s after it is."""
    t = env.t
    srv, k = server_and_key(env, start_server, "lu-two", last_used_precision="2s")
    kid = k["client_id"]
    with row_updates(t, kid) as updates:
        t1 = first_use(t, srv, k)
        sleep_until(t1 + 1.05)            # within the precision: the recorded second is t1
        if time.time() < t1 + 1.9:
            get_token(srv, k)
            time.sleep(1.3)
            assert db_last_used(t, kid) == t1 and updates() == 1
        sleep_until(t1 + 2.05)            # past it
        get_token(srv, k)
        t2 = wait_until(lambda: db_last_used(t, kid) > t1 and db_last_used(t, kid), timeout=5,
                        what="the use past the precision to be written")
        assert t2 >= t1 + 2
        assert updates() == 2


def test_precision_zero_writes_every_second(env, start_server):
    """last_used_precision = 0: a use in a later second is written (once per flush interval)."""
    t = env.t
    srv, k = server_and_key(env, start_server, "lu-zero", last_used_precision="0")
    kid = k["client_id"]
    t1 = first_use(t, srv, k)
    sleep_until(t1 + 1.05)
    get_token(srv, k)
    wait_until(lambda: db_last_used(t, kid) > t1, timeout=5, what="the second use to be written")


def test_precision_out_of_range_is_refused(env):
    t = env.t
    for bad in ("2h", "-1s", "soon"):
        conf = t.write_config([f"database_url = {t.app_url}", f"pepper_file = {t.pepper_file}",
                               f"last_used_precision = {bad}"], name="lu-bad.conf")
        r = t.run("config", config=conf, check=None)
        assert r.returncode != 0 and "last_used_precision" in (r.stdout + r.stderr), (bad, r)


def test_delete_guard_widens_by_the_precision(env, start_server):
    """A key whose last recorded use is 24 h 20 s old may have been used, unrecorded, up to a
    precision (60 s by default) later. Every way of deleting it asks for confirmation: the
    instance holding it in its cache, an instance without it (the database's guard, sql/015),
    the CLI, and SQL called without the setting (the largest precision, 1 h). At precision 0
    the same key is deleted without one."""
    t = env.t
    acct, adm = pair(env, "lu-guard")

    def old_key(name):
        k = create(adm, {"name": name, "scopes": ["read"]})
        t.query("UPDATE api_keys SET last_used_at = now() - interval '24 hours 20 seconds' WHERE id = %s",
                (k["client_id"],))
        return k

    def gone(kid):
        return t.query("SELECT deleted_at IS NOT NULL FROM api_keys WHERE id = %s", (kid,)) == [(True,)]

    # The instance holding the key: a scope the key lacks is refused after the key is read
    # (cached, no use recorded).
    held = start_server(t, issuer=env.srv.issuer)
    k = old_key("held")
    r = held.token(k, scope="nope")
    assert r.status == 400 and r.json()["error"] == "invalid_scope", r
    body = refused(send(held.port, "DELETE", f"keys/{k['client_id']}", token=adm.token), 409, "recently_used")
    assert "24 hours" in body["error_description"]
    # An instance that never read the key: the database's guard.
    other = start_server(t, issuer=env.srv.issuer)
    k = old_key("elsewhere")
    refused(send(other.port, "DELETE", f"keys/{k['client_id']}", token=adm.token), 409, "recently_used")
    assert not gone(k["client_id"])
    # The CLI, and SQL without the setting.
    r = t.run("key", "delete", k["client_id"], check=None)
    assert r.returncode != 0 and "24 hours" in (r.stdout + r.stderr), r
    with pytest.raises(Exception, match="24 hours"):
        t.query("SELECT tokend_admin_key_action('sql:test', NULL, NULL, %s, 'delete', NULL, false, true)",
                (k["client_id"],))
    assert not gone(k["client_id"])
    # Confirmed, it goes.
    assert ok(send(other.port, "DELETE", f"keys/{k['client_id']}?confirm=1", token=adm.token))["state"] == "deleted"
    # Precision 0: the server and the CLI delete such a key without confirmation.
    zero = start_server(t, issuer=env.srv.issuer, last_used_precision="0")
    k = old_key("zero")
    r = zero.token(k, scope="nope")
    assert r.status == 400, r
    assert ok(send(zero.port, "DELETE", f"keys/{k['client_id']}", token=adm.token))["state"] == "deleted"
    k = old_key("zero cli")
    conf = t.write_config(t.config.read_text() + "last_used_precision = 0\n", name="lu-zero.conf")
    t.run("key", "delete", k["client_id"], config=conf, check=0)
    assert gone(k["client_id"])
