"""Issue 17.2: a wrong pepper is caught at start. The database keeps a check
value of the pepper (HMAC-SHA256(pepper, "tokend pepper check v1"), never the
pepper; sql/009_pepper_check.sql); serve, migrate and a local `key create`
compare theirs with it and store it on a database that has none."""
import hashlib
import hmac
import uuid

import psycopg2
import pytest

from support.server import get_token, new_key
from support.util import role_url, wait_until

pytestmark = pytest.mark.binary

LABEL = b"tokend pepper check v1"


def stored(tk):
    return [r[0] for r in tk.query("SELECT check_value FROM pepper_check")]


def expected(tk):
    return hmac.new(tk.pepper_bytes, LABEL, hashlib.sha256).hexdigest()


def other_pepper(tk, make_tokend):
    """The CLI bound to the same database with a new random pepper."""
    return make_tokend(tk.db_url, migrate=False)


def test_first_start_stores_the_check_value_never_the_pepper(tokend, start_server):
    assert stored(tokend) == []          # the template was migrated without a pepper
    srv = start_server(tokend)
    assert stored(tokend) == [expected(tokend)]
    assert srv.log_lines("db.pepper_check_written"), srv.stderr_text()[-2000:]
    row = repr(tokend.query("SELECT * FROM pepper_check"))
    assert tokend.pepper not in row and tokend.pepper_bytes.hex() not in row
    srv.stop()
    # A second start with the same pepper: matched, nothing written.
    srv2 = start_server(tokend)
    assert srv2.get("/readyz").json()["pepper"] is True
    assert not srv2.log_lines("db.pepper_check_written")
    assert stored(tokend) == [expected(tokend)]


def test_serve_refuses_another_pepper(tokend, make_tokend, start_server):
    tokend.account("acme")
    tokend.seed_scopes("read")
    key = new_key(tokend, "acme")          # the local key create stores the check value
    assert stored(tokend) == [expected(tokend)]
    wrong = other_pepper(tokend, make_tokend)
    srv = start_server(wrong, wait=False, check_exit=False)
    srv.proc.wait(timeout=30)
    err = srv.stderr_text()
    assert srv.proc.returncode == 1, err
    assert "tokend: the pepper does not match the one this database's keys were made with" in err, err
    assert "pepper_file or TOKEND_PEPPER" in err, err
    assert wrong.pepper not in err and tokend.pepper not in err
    assert stored(tokend) == [expected(tokend)]         # changed nothing
    # The right pepper still serves the key.
    srv = start_server(tokend)
    assert get_token(srv, key)


def test_key_create_and_migrate_refuse_another_pepper(tokend, make_tokend):
    tokend.account("acme")
    tokend.seed_scopes("read")
    tokend.grant_scopes("acme", "read")
    tokend.run("migrate", check=0)       # stores the check value (a pepper is configured)
    assert stored(tokend) == [expected(tokend)]
    wrong = other_pepper(tokend, make_tokend)
    before = tokend.query("SELECT count(*) FROM api_keys")
    wrong.refused("key", "create", "--account", "acme", "--name", "k", "--scopes", "read",
                  match="the pepper does not match")
    assert tokend.query("SELECT count(*) FROM api_keys") == before
    wrong.refused("migrate", match="migrations applied .* but: the pepper does not match")
    assert stored(tokend) == [expected(tokend)]


def test_a_first_check_that_waits_for_another_reads_its_value(tokend):
    """Two first contacts at once (CI: fifty `key create` on a database with no check value):
    the one whose insert waits for the other's commit gets no row from its statement (its
    insert does nothing, its read's snapshot predates that commit). It reads again, and
    matches, instead of failing with "no readable check value"."""
    assert stored(tokend) == []
    other = psycopg2.connect(tokend.db_url, connect_timeout=10)
    p = None
    try:
        with other.cursor() as cur:
            cur.execute("INSERT INTO pepper_check (check_value) VALUES (%s)", (expected(tokend),))
        p = tokend.spawn("migrate")
        wait_until(lambda: tokend.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                        " AND wait_event_type = 'Lock'")[0][0] >= 1,
                   timeout=30, what="migrate's insert to wait for the open one")
        other.commit()
        p.proc.wait(timeout=60)
    finally:
        other.close()
        if p:
            p.stop()
    assert p.returncode == 0, p.stderr_text()[-2000:]
    assert "no readable check value" not in p.stderr_text()
    assert stored(tokend) == [expected(tokend)]


def test_the_application_role_cannot_change_or_remove_the_check_value(tokend, start_server):
    start_server(tokend)
    app = role_url(tokend.db_url, "tokend")
    for sql in ("UPDATE pepper_check SET check_value = repeat('a', 64)",
                "DELETE FROM pepper_check", "TRUNCATE pepper_check"):
        conn = psycopg2.connect(app, connect_timeout=10)
        try:
            with conn.cursor() as cur, pytest.raises(psycopg2.Error):
                cur.execute(sql)
        finally:
            conn.close()
    assert stored(tokend) == [expected(tokend)]
    bad = "INSERT INTO pepper_check (id, check_value) VALUES (false, repeat('b', 64))"
    with pytest.raises(psycopg2.Error):
        tokend.query(bad)


@pytest.mark.parametrize("case", ["mismatch", "first"])
def test_running_instance_checks_when_the_database_arrives(pg, template_db, make_tokend,
                                                          start_server, case):
    """The database does not exist at start (tolerated: 503 until it does); when it
    comes, the pepper is checked: another pepper's value keeps /readyz at 503."""
    name = "t_late_" + uuid.uuid4().hex[:12]
    tk = make_tokend(pg.url(name), migrate=False)
    srv = start_server(tk, wait=False)
    try:
        wait_until(lambda: srv.log_lines("server.started"), timeout=30, what="the start")
        assert srv.log_lines("db.unavailable_at_start")
        r = srv.get("/readyz")
        assert r.status == 503 and r.json()["pepper"] is False, r
        pg.create_database(template=template_db, name=name)
        if case == "mismatch":
            tk.query("INSERT INTO pepper_check (check_value) VALUES (%s)", ("c" * 64,))
            wait_until(lambda: srv.log_lines("db.pepper_mismatch"), timeout=30, what="the mismatch")
            r = srv.get("/readyz")
            assert r.status == 503, r
            assert r.json()["pepper"] is False and r.json()["database"] is True, r.json()
            assert stored(tk) == ["c" * 64]
        else:
            srv.wait_ready(timeout=30)
            assert srv.get("/readyz").json()["pepper"] is True
            assert stored(tk) == [expected(tk)]
    finally:
        srv.stop()
        pg.drop_database(name)
