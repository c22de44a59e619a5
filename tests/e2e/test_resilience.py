"""
End-to-end tests of revocation across instances and of faults (issue 3,
points 6 and 7).

  * After `tokend key disable|revoke|delete` returns, no instance issues a token
    for that key one second later (two tokend processes on one database, both
    with the key cached).
  * PostgreSQL stopped (fast and immediate) under load: 503
    temporarily_unavailable with Retry-After, never a hang, never a token for a
    key disabled just before; 200 again within 2 s of PostgreSQL being back.
  * Backends killed with pg_terminate_backend; the LISTEN connection killed
    (cache bypassed, a key disabled meanwhile refused within 1 s).
  * Slow and idle connections are closed.

The PostgreSQL cluster is the session's (conftest `pg`); every test that stops
it starts it again, even when it fails.

SECURITY.md rows: D1, D3, E1, E2, E3, E5, F4/F5 (timeouts, smoke level).
"""
import http.client
import threading
import time

import psycopg2
import pytest

from support.http import metric
from support.registry import note_timing, remember_token
from support.server import Load, fmt, new_key
from support.util import wait_until

pytestmark = pytest.mark.binary


def warm(srv, key, times=2):
    """Ask `times` times, so that the key is cached; check that the repeats hit the cache.

    One more request than that is made: the key's creation notification
    (NOTIFY tokend_keys) may reach the listener only after the first request
    cached the key, and drop it once (harmless: one more database lookup), which
    a loaded machine shows now and then."""
    m0 = srv.metrics()
    for _ in range(times + 1):
        r = srv.token(key)
        assert r.status == 200, r
        remember_token(r.json()["access_token"])
    m1 = srv.metrics()
    hits = metric(m1, "tokend_key_cache_hits_total") - metric(m0, "tokend_key_cache_hits_total")
    assert hits >= times - 1, f"the key was not served from the cache (hits +{hits})"


# ===========================================================================
# Point 6: disable / revoke / delete -> no token anywhere 1 s after the command returns
# ===========================================================================
@pytest.mark.parametrize("action", ["disable", "revoke", "delete"])
@pytest.mark.slow
def test_revocation_reaches_every_instance_within_1s(tokend, start_server, action):
    tokend.account("acme", "--key-limit", "20")
    tokend.scopes("read")
    a = start_server(tokend, cache_ttl="1h")
    b = start_server(tokend, cache_ttl="1h")
    key = new_key(tokend, "acme", f"to-{action}", "read")
    other = new_key(tokend, "acme", "bystander", "read")
    for srv in (a, b):
        warm(srv, key)
        warm(srv, other)
    loads = [Load(a, key, "A"), Load(b, key, "B")]
    for ld in loads:
        ld.start()
    for ld in loads:
        ld.wait_for(lambda r: r.status == 200, 5, f"a first token from {ld.who}")
    args = {"disable": ["key", "disable", key["client_id"]],
            "revoke": ["key", "revoke", key["client_id"], "--reason", "e2e revocation"],
            # used seconds ago: --force (issue 10, finding 7)
            "delete": ["key", "delete", key["client_id"], "--force"]}[action]
    t_cmd = time.monotonic()
    tokend.run(*args, check=0)
    t_ret = time.monotonic()
    # Keep asking until well past the bound, then once more on each instance, fresh.
    wait_until(lambda: time.monotonic() > t_ret + 1.6, timeout=5, interval=0.01)
    recs = [r for ld in loads for r in ld.stop()]
    late = [r for r in recs if r.t_send >= t_ret + 1.0]
    assert late and {r.who for r in late} == {"A", "B"}, "no requests were made after the bound"
    bad = [r for r in late if r.status != 401]
    assert not bad, f"{action}: answers other than 401 later than 1 s after the command returned: {fmt(bad)}"
    for srv in (a, b):
        r = srv.token(key)
        assert r.status == 401 and r.json()["error"] == "invalid_client", r
        # The bystander key is untouched.
        assert srv.token(other).status == 200
    # How fast did it flip? (relative to the command's return; negative = before it returned)
    flips = []
    for who in ("A", "B"):
        mine = sorted((r for r in recs if r.who == who), key=lambda r: r.t_send)
        ok = [r for r in mine if r.status == 200]
        last_ok = max((r.t_recv for r in ok), default=None)
        assert ok and ok[0].t_send < t_cmd, f"{who}: no token before the command: the test proves nothing"
        flips.append(f"{who}: last 200 at {(last_ok - t_ret) * 1000:+.0f} ms")
        assert all(r.status in (200, 401) for r in mine), fmt([r for r in mine if r.status not in (200, 401)])
    note_timing(f"key {action} propagation (2 instances)",
                f"command took {(t_ret - t_cmd) * 1000:.0f} ms; " + "; ".join(flips) + " (relative to return)")


# ===========================================================================
# Point 7: PostgreSQL stops and comes back under load
# ===========================================================================
@pytest.mark.parametrize("mode", ["fast", "immediate"])
@pytest.mark.slow
def test_postgres_outage_under_load(tokend, start_server, pg_restarter, mode):
    pg = pg_restarter
    tokend.account("acme", "--key-limit", "20")
    tokend.scopes("read")
    srv = start_server(tokend, db_timeout="1s")
    k_ok = new_key(tokend, "acme", "steady", "read")
    k_dis = new_key(tokend, "acme", "disabled-before-outage", "read")
    warm(srv, k_ok)
    warm(srv, k_dis)
    m0 = srv.metrics()
    load = Load(srv, k_ok, "ok", threads=3).start()
    dload = Load(srv, k_dis, "dis", threads=1).start()
    ready = []   # (t, status) of /readyz during the run
    ready_stop = threading.Event()

    def poll_ready():
        while not ready_stop.is_set():
            t0 = time.monotonic()
            try:
                ready.append((t0, srv.get("/readyz", timeout=5).status))
            except Exception as e:
                ready.append((t0, f"{type(e).__name__}"))
            time.sleep(0.05)
    rth = threading.Thread(target=poll_ready, daemon=True)
    rth.start()
    try:
        t_begin = time.monotonic()
        load.wait_for(lambda r: r.status == 200 and r.t_send > t_begin, 5, "tokens before the outage")
        tokend.run("key", "disable", k_dis["client_id"], check=0)
        t_dis = time.monotonic()
        pg.stop(mode)
        t_down = time.monotonic()
        load.wait_for(lambda r: r.status == 503 and r.t_send > t_down, 5, "503 during the outage")
        wait_until(lambda: time.monotonic() > t_down + 1.2, timeout=5, interval=0.01)
        t_up_begin = time.monotonic()
        pg.start()
        t_up = time.monotonic()
        first = load.wait_for(lambda r: r.status == 200 and r.t_send >= t_up, 10, "a token after PostgreSQL returned")
        recovery = first.t_recv - t_up
        wait_until(lambda: time.monotonic() > first.t_recv + 0.5, timeout=5, interval=0.01)
    finally:
        ready_stop.set()
        recs = load.stop() + dload.stop()
        rth.join(10)
        if not pg.running:
            pg.start()
    ok = [r for r in recs if r.who == "ok"]
    dis = [r for r in recs if r.who == "dis"]
    # Never a hang: every request answered in under 3 s, none failed at the HTTP level.
    slow = [r for r in recs if r.took >= 3.0 or r.exc]
    assert not slow, f"requests that hung or broke: {fmt(slow)}"
    # During the outage (PostgreSQL down, from shortly after stop to start): 503 + Retry-After.
    outage = [r for r in ok if t_down + 0.25 <= r.t_send and r.t_recv <= t_up_begin]
    assert len(outage) >= 3, f"too few requests during the outage: {fmt(outage)}"
    wrong = [r for r in outage if r.status != 503 or r.error != "temporarily_unavailable"]
    assert not wrong, f"answers during the outage other than 503 temporarily_unavailable: {fmt(wrong)}"
    no_retry = [r for r in outage if not (r.retry_after or "").strip().isdigit()]
    assert not no_retry, f"503 without a Retry-After (delta-seconds): {fmt(no_retry)}"
    # The key disabled just before the stop: never a token from the stop on, nor 1 s after disable.
    leaked = [r for r in dis if r.status == 200 and (r.t_send >= t_down or r.t_send >= t_dis + 1.0)]
    assert not leaked, f"a token for a key disabled before the outage: {fmt(leaked)}"
    after = [r for r in dis if r.t_send >= first.t_recv]
    assert after and all(r.status == 401 for r in after), f"disabled key after recovery: {fmt(after)}"
    # Recovery: 200 within 2 s of `pg_ctl start` returning, and from then on only 200.
    note_timing(f"PostgreSQL {mode} stop: recovery", f"first token {recovery * 1000:.0f} ms after start returned; "
                f"{len(outage)} requests answered 503 during the outage")
    assert recovery <= 2.0, f"service returned {recovery:.2f} s after PostgreSQL was back"
    later = [r for r in ok if r.t_send >= first.t_recv]
    assert later and all(r.status == 200 for r in later), f"after recovery: {fmt([r for r in later if r.status != 200])}"
    # Operations: readyz went 503 during the outage and is 200 again; db errors counted.
    down_ready = [s for t, s in ready if t_down + 0.25 <= t <= t_up_begin]
    assert 503 in down_ready, f"/readyz during the outage: {down_ready}"
    wait_until(lambda: srv.get("/readyz").status == 200, timeout=3, what="/readyz 200 after recovery")
    m1 = srv.metrics()
    assert metric(m1, "tokend_db_errors_total") > metric(m0, "tokend_db_errors_total")
    assert metric(m1, "tokend_http_requests_total", endpoint="token", code="503") >= len(outage)
    assert srv.alive()


def test_readyz_without_traffic(tokend, start_server, pg_restarter):
    """/readyz says 503 when PostgreSQL is gone even if no request has touched the pool since."""
    pg = pg_restarter
    srv = start_server(tokend)
    assert srv.get("/readyz").status == 200
    pg.stop("fast")
    t_down = time.monotonic()
    try:
        seen = []

        def not_ready():
            r = srv.get("/readyz", timeout=5)
            seen.append(r.status)
            return r.status == 503
        try:
            wait_until(not_ready, timeout=4, interval=0.05, what="/readyz 503 with PostgreSQL stopped")
        except AssertionError:
            raise AssertionError(f"/readyz kept answering {sorted(set(seen))} for 4 s with PostgreSQL stopped "
                                 f"(no token traffic); last body: {srv.get('/readyz').body!r}")
        took = time.monotonic() - t_down
        note_timing("readyz without traffic", f"503 {took * 1000:.0f} ms after PostgreSQL stopped")
        r = srv.get("/readyz")
        assert r.headers.get("retry-after"), r
    finally:
        pg.start()
    wait_until(lambda: srv.get("/readyz").status == 200, timeout=3, what="/readyz 200 again")
    assert srv.get("/healthz").status == 200


# ===========================================================================
# Point 7: backend connections killed
# ===========================================================================
def pg_query(pg, sql):
    """One statement on the cluster's `postgres` database."""
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _backend_pids(tokend, apps):
    rows = tokend.query("SELECT pid, application_name FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = ANY(%s)", (list(apps),))
    return rows


@pytest.mark.slow
def test_all_tokend_backends_terminated(tokend, start_server):
    tokend.account("acme", "--key-limit", "20")
    tokend.scopes("read")
    srv = start_server(tokend, db_pool_size="4")
    key = new_key(tokend, "acme", "steady", "read")
    warm(srv, key)
    load = Load(srv, key, "ok", threads=3).start()
    try:
        load.wait_for(lambda r: r.status == 200, 5, "tokens before the kill")
        rows = _backend_pids(tokend, ("tokend", "tokend-listener"))
        apps = [a for _, a in rows]
        assert "tokend-listener" in apps and apps.count("tokend") >= 1, rows
        t_kill = time.monotonic()
        killed = tokend.query("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND application_name IN ('tokend', 'tokend-listener')")
        nkilled = killed[0][0]
        wait_until(lambda: time.monotonic() > t_kill + 2.5, timeout=5, interval=0.01)
    finally:
        recs = load.stop()
    after = sorted((r for r in recs if r.t_send >= t_kill), key=lambda r: r.t_send)
    failed = [r for r in after if r.status != 200]
    assert not [r for r in recs if r.exc or r.took >= 3.0], fmt([r for r in recs if r.exc or r.took >= 3.0])
    note_timing("pg_terminate_backend of all tokend connections",
                f"{nkilled} killed, {len(failed)} failed request(s) of {len(after)} after the kill")
    assert len(failed) <= nkilled, (f"{len(failed)} failed requests after killing {nkilled} connections "
                                    f"(at most one per connection): {fmt(failed)}")
    assert all(r.status == 503 for r in failed), fmt(failed)
    tail = [r for r in after if r.t_send >= t_kill + 2.0]
    assert tail and all(r.status == 200 for r in tail), f"not 200 again 2 s after the kill: {fmt(tail)}"
    # The server reconnected everything, the listener too.
    wait_until(lambda: srv.get("/readyz").json().get("notifications") is True, timeout=3,
               what="the LISTEN connection back")
    assert srv.log_lines("listener.lost")
    assert len(_backend_pids(tokend, ("tokend",))) >= 1


@pytest.mark.slow
def test_listener_killed_then_key_disabled(tokend, start_server):
    """Kill only the LISTEN connection, disable a cached key right after: refused within 1 s."""
    tokend.account("acme", "--key-limit", "20")
    tokend.scopes("read")
    srv = start_server(tokend, cache_ttl="1h")
    key = new_key(tokend, "acme", "victim", "read")
    warm(srv, key)
    load = Load(srv, key, "k").start()
    try:
        load.wait_for(lambda r: r.status == 200, 5, "tokens before the kill")
        t_kill = time.monotonic()
        n = tokend.query("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND application_name = 'tokend-listener'")[0][0]
        assert n == 1, n
        tokend.run("key", "disable", key["client_id"], check=0)
        t_ret = time.monotonic()
        wait_until(lambda: time.monotonic() > t_ret + 1.5, timeout=5, interval=0.01)
    finally:
        recs = load.stop()
    late = [r for r in recs if r.t_send >= t_ret + 1.0]
    assert late and all(r.status == 401 for r in late), fmt([r for r in late if r.status != 401])
    assert srv.token(key).status == 401
    last_ok = max((r.t_recv for r in recs if r.status == 200), default=t_kill)
    note_timing("listener killed, then key disabled",
                f"last 200 at {(last_ok - t_ret) * 1000:+.0f} ms relative to `key disable` returning")
    wait_until(lambda: srv.log_lines("listener.lost"), timeout=3, what="event=listener.lost in the log")
    assert any("bypass" in l for l in srv.log_lines("listener.lost")), srv.log_lines("listener.lost")
    wait_until(lambda: len(srv.log_lines("listener.up")) >= 2, timeout=3, what="the listener back up")


def test_cache_bypassed_while_listener_cannot_reconnect(tokend, start_server, pg):
    """While the LISTEN connection is down the cache is bypassed: a key changed meanwhile
    (no NOTIFY can arrive) is refused on the next request; the cache returns with LISTEN."""
    tokend.account("acme", "--key-limit", "20")
    tokend.scopes("read")
    srv = start_server(tokend, cache_ttl="1h")
    key = new_key(tokend, "acme", "victim", "read")
    warm(srv, key)
    dbname = tokend.query("SELECT current_database()")[0][0]
    # An admin connection opened before new connections are forbidden.
    admin = psycopg2.connect(tokend.db_url, connect_timeout=10)
    admin.autocommit = True
    try:
        pg_query(pg, f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = 'tokend-listener'")
        wait_until(lambda: metric(srv.metrics(), "tokend_key_cache_bypassed") == 1, timeout=3,
                   what="tokend_key_cache_bypassed 1")
        r = srv.get("/readyz").json()
        assert r.get("notifications") is False, r
        # Bypassed: every lookup goes to PostgreSQL (the pool's connections are still open).
        m0 = srv.metrics()
        for _ in range(3):
            assert srv.token(key).status == 200
        m1 = srv.metrics()
        assert metric(m1, "tokend_key_cache_hits_total") == metric(m0, "tokend_key_cache_hits_total")
        assert metric(m1, "tokend_key_cache_misses_total") - metric(m0, "tokend_key_cache_misses_total") == 3
        # Disable the key behind tokend's back (the same UPDATE the CLI does): refused at once.
        with admin.cursor() as cur:
            cur.execute("UPDATE api_keys SET disabled_at = now() WHERE id = %s", (key["client_id"],))
        t_dis = time.monotonic()
        r = srv.token(key)
        assert r.status == 401, f"disabled key while the cache is bypassed: {r}"
        note_timing("cache bypass", f"disabled key refused {(time.monotonic() - t_dis) * 1000:.0f} ms after the UPDATE")
        with admin.cursor() as cur:
            cur.execute("UPDATE api_keys SET disabled_at = NULL WHERE id = %s", (key["client_id"],))
    finally:
        pg_query(pg, f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        admin.close()
    wait_until(lambda: metric(srv.metrics(), "tokend_key_cache_bypassed") == 0, timeout=3,
               what="tokend_key_cache_bypassed back to 0")
    assert srv.get("/readyz").json().get("notifications") is True
    assert srv.token(key).status == 200
    m0 = srv.metrics()
    assert srv.token(key).status == 200
    assert metric(srv.metrics(), "tokend_key_cache_hits_total") > metric(m0, "tokend_key_cache_hits_total")


# ===========================================================================
# Point 7: slow and idle connections
# ===========================================================================
def _closed_after(port, data, limit):
    """Send `data`, then wait for the server to close; returns seconds until closed (or None)."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=limit)
    try:
        if data:
            s.sendall(data)
        t0 = time.monotonic()
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    return time.monotonic() - t0
        except socket.timeout:
            return None
        except ConnectionResetError:
            return time.monotonic() - t0
    finally:
        s.close()


@pytest.mark.slow
def test_slow_and_idle_connections_closed(tokend, start_server):
    tokend.account("acme")
    tokend.scopes("read")
    srv = start_server(tokend, header_timeout="1s", body_timeout="1s", idle_timeout="2s")
    key = new_key(tokend, "acme", "k", "read")
    cases = {
        "partial headers": b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n",
        "partial body": (b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type="),
        "nothing sent": b"",
    }
    results = {}
    threads = []

    def run(name, data):
        results[name] = _closed_after(srv.port, data, 8)
    for name, data in cases.items():
        th = threading.Thread(target=run, args=(name, data))
        th.start()
        threads.append(th)
    # A legitimate client is served meanwhile.
    t0 = time.monotonic()
    r = srv.token(key)
    assert r.status == 200 and time.monotonic() - t0 < 2, r
    remember_token(r.json()["access_token"])
    for th in threads:
        th.join(15)
    for name, took in results.items():
        assert took is not None, f"{name}: connection still open after 8 s"
        assert took <= 6, f"{name}: closed only after {took:.1f} s"
    # An idle keep-alive connection is closed too.
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    r = srv.token(key, conn=conn)
    assert r.status == 200
    remember_token(r.json()["access_token"])
    sock = conn.sock
    sock.settimeout(8)
    t0 = time.monotonic()
    try:
        b = sock.recv(1)
    except (ConnectionResetError, OSError):
        b = b""
    took = time.monotonic() - t0
    conn.close()
    assert b == b"" and took <= 6, f"idle keep-alive connection not closed ({took:.1f} s)"
    note_timing("slow/idle connections", ", ".join(f"{k}: {v:.1f} s" for k, v in results.items())
                + f", idle keep-alive: {took:.1f} s")
    assert srv.get("/healthz").status == 200


# ===========================================================================
# Shutdown: SIGTERM while tokens are being issued
# ===========================================================================
@pytest.mark.slow
def test_sigterm_under_load_exits_cleanly(tokend, start_server):
    """SIGTERM with requests in flight and last-used marks pending: exit 0, no sanitizer
    report. Repeated at several offsets, so that the last-used flush timer (1 s) falls
    inside the shutdown in some of them."""
    tokend.account("acme")
    tokend.scopes("read")
    key = new_key(tokend, "acme", "k", "read")
    for offset in (0.15, 0.45, 0.75, 1.05):
        srv = start_server(tokend, last_used_flush_interval="1s")
        load = Load(srv, key, "k", threads=2, timeout=10).start()
        first = load.wait_for(lambda r: r.status == 200, 10, "a first token")
        wait_until(lambda: time.monotonic() > first.t_recv + offset, timeout=5, interval=0.01)
        t_term = time.monotonic()
        try:
            srv.stop()      # SIGTERM; asserts exit 0, server.stopped, no sanitizer report
        finally:
            recs = load.stop()
        answered = [r for r in recs if r.status is not None]
        assert answered and all(r.status == 200 for r in answered), \
            fmt([r for r in answered if r.status != 200])
        assert time.monotonic() - t_term < 15
