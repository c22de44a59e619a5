"""
End-to-end test of tokend behind a transaction-pooling PgBouncer (issue 15, point 5).

A real PgBouncer (Debian's `pgbouncer`, pool_mode = transaction, 4 server connections)
in front of the test database. Two tokend instances reach it with
`database_pool_mode = transaction` (every statement sent with its text: PgBouncer 1.18
carries no named prepared statement from one transaction to the next) and their LISTEN
connection directly (`listen_database_url`). The CLI goes through PgBouncer too.
Asserted: tokens under load from both, through PgBouncer (its log shows tokend's
logins); a key disabled through the CLI refused by both within 1 s (the notification
on the direct connection); `transaction` without `listen_database_url` refused.
"""
import shutil
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from support.pg import PgBouncer
from support.registry import note_timing, remember_token
from support.server import Load, fmt, new_key
from support.util import wait_until

pytestmark = pytest.mark.binary


@pytest.fixture
def bouncer(tokend, pg):
    name = urllib.parse.urlparse(tokend.app_url).path.lstrip("/")
    # Under the cluster's base (searchable by the server's OS user), not the work dir.
    b = PgBouncer(pg, name, Path(pg.base) / f"pgbouncer-{uuid.uuid4().hex[:8]}")
    if not b.BIN.exists():
        pytest.fail("pgbouncer is not installed (scripts/install-deps.sh installs Debian's pgbouncer)",
                    pytrace=False)
    b.start()
    yield b
    b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)


def test_transaction_pooling_with_direct_listen(tokend, start_server, bouncer):
    direct = tokend.app_url
    # The CLI through PgBouncer as well (simple statements, one transaction each).
    tokend.config = tokend.write_config(
        [ln for ln in tokend.config_lines if not ln.startswith("database_url")]
        + [f"database_url = {bouncer.url()}", "database_pool_mode = transaction",
           f"listen_database_url = {direct}"], name="tokend.conf")
    # transaction without a LISTEN connection of its own: refused, saying why.
    tokend.refused("config", env={"TOKEND_LISTEN_DATABASE_URL": None,
                                  "TOKEND_DATABASE_URL": bouncer.url(),
                                  "TOKEND_DATABASE_POOL_MODE": "transaction"},
                   config=False, match="transaction needs listen_database_url")
    tokend.account("acme", "--key-limit", "20")
    tokend.scopes("read")
    settings = dict(database_url=bouncer.url(), database_pool_mode="transaction",
                    listen_database_url=direct, cache_ttl="1h")
    a = start_server(tokend, **settings)
    b = start_server(tokend, **settings)
    key = new_key(tokend, "acme", "victim", "read")
    other = new_key(tokend, "acme", "bystander", "read")
    for srv in (a, b):
        for k in (key, other):
            for _ in range(3):
                r = srv.token(k)
                assert r.status == 200, (r, srv.stderr_text()[-2000:])
                remember_token(r.json()["access_token"])
    logins = bouncer.log_text().count("login attempt: db=")
    assert logins >= 2, f"tokend did not log in through PgBouncer: {bouncer.log_text()[-1500:]}"
    # Under load (each request a database lookup once the key is disabled: a miss).
    loads = [Load(a, other, "A", threads=2), Load(b, other, "B", threads=2)]
    for ld in loads:
        ld.start()
    try:
        time.sleep(0.5)
        tokend.run("key", "disable", key["client_id"], check=0)
        t_ret = time.monotonic()
        seen = {}
        for name, srv in (("A", a), ("B", b)):
            seen[name] = wait_until(lambda: srv.token(key).status == 401 and time.monotonic(), timeout=1.0,
                                    interval=0.005, what=f"{name}: the disabled key refused within 1 s")
        time.sleep(0.5)
    finally:
        recs = [r for ld in loads for r in ld.stop()]
    bad = [r for r in recs if r.status != 200]
    assert len(recs) >= 20 and not bad, f"the load through PgBouncer failed: {fmt(bad)}"
    for srv in (a, b):
        assert srv.token(key).status == 401
        assert not srv.log_events("db.connection_lost"), srv.stderr_text()[-2000:]
    note_timing("behind PgBouncer (transaction pooling, LISTEN direct)",
                f"{len(recs)} load requests, 0 failed; disable refused by A after "
                f"{(seen['A'] - t_ret) * 1000:.0f} ms, B after {(seen['B'] - t_ret) * 1000:.0f} ms")


def test_listen_database_url_and_pool_mode_settings(tokend):
    """listen_database_url is printed with its password masked; database_pool_mode takes
    session or transaction only, and a bad value changes nothing (refused, naming it)."""
    env = {"TOKEND_LISTEN_DATABASE_URL": "postgresql://tokend:hunter2-never@127.0.0.1:5432/tokend",
           "TOKEND_DATABASE_POOL_MODE": "transaction"}
    out = tokend.run("config", env=env, check=0).stdout
    assert "listen_database_url = postgresql://tokend:********@127.0.0.1:5432/tokend" in out, out
    assert "database_pool_mode = transaction" in out and "hunter2-never" not in out
    assert "database_pool_mode = session" in tokend.run("config", check=0).stdout
    r = tokend.refused("config", env={"TOKEND_DATABASE_POOL_MODE": "statement"},
                       match="TOKEND_DATABASE_POOL_MODE: must be one of: session, transaction")
    assert "hunter2" not in r.stderr
