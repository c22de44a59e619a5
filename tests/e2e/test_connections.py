"""Issue 6, point 2: connection deadlines that traffic does not move, the
connection cap, and framing refused on every endpoint.

Each deadline test keeps the connection busy with a byte every 0.3 s: with an
inactivity timeout (restarted by every byte, as evhttp's own is) the connection
would stay open for as long as the client likes; here it must close at its
phase deadline. Loopback only; each test stops by itself within seconds.
"""
import os
import socket
import threading
import time

import pytest

from support.http import metric, parse_raw_responses, raw_exchange
from support.registry import remember_token
from support.server import OpenConnections, new_key

TRICKLE = 0.3


def _connect(port, timeout=15):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _closed(s):
    """True when the server has closed `s` (EOF or reset); never blocks."""
    s.setblocking(False)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.setblocking(True)


def _trickle_until_closed(s, t0, limit, byte=b"X"):
    """Send `byte` every TRICKLE seconds until the server closes `s` or `limit`
    seconds after t0 pass; return the seconds from t0 to the close, or None."""
    while time.monotonic() - t0 < limit:
        if _closed(s):
            return time.monotonic() - t0
        try:
            s.send(byte)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        time.sleep(TRICKLE)
    return None


@pytest.fixture
def srv(tokend, start_server):
    tokend.account("acme", "--key-limit", "5")
    tokend.scopes("read")
    s = start_server(tokend, header_timeout="2s", body_timeout="2s", idle_timeout="2s",
                     write_timeout="2s", workers="1")
    s.key = new_key(tokend, "acme")
    return s


def test_trickled_headers_closed_at_header_deadline(srv):
    s = _connect(srv.port)
    t0 = time.monotonic()
    s.sendall(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    took = _trickle_until_closed(s, t0, 8)
    s.close()
    assert took is not None, "a connection trickling its headers stayed open 8 s (deadline 2 s)"
    assert 1.5 <= took <= 3.5, f"closed after {took:.2f} s; header deadline is 2 s"
    assert metric(srv.metrics(), "tokend_connections_timed_out_total", phase="header") >= 1


def test_silent_connection_closed_at_header_deadline(tokend, start_server):
    """A connection that sends nothing is held to header_timeout, not idle_timeout."""
    srv = start_server(tokend, header_timeout="1s", idle_timeout="30s", workers="1")
    s = _connect(srv.port)
    t0 = time.monotonic()
    s.settimeout(10)
    try:
        b = s.recv(1)
    except ConnectionResetError:
        b = b""
    took = time.monotonic() - t0
    s.close()
    assert b == b"" and took <= 2.5, f"silent connection closed after {took:.2f} s (header deadline 1 s)"


def test_trickled_body_closed_at_body_deadline(tokend, start_server):
    tokend.account("acme")
    srv = start_server(tokend, header_timeout="30s", body_timeout="2s", idle_timeout="30s", workers="1")
    s = _connect(srv.port)
    s.sendall(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n")
    time.sleep(1.0)   # header time does not count against the body
    s.sendall(b"\r\n")
    t0 = time.monotonic()
    took = _trickle_until_closed(s, t0, 8, b"a")
    s.close()
    assert took is not None, "a connection trickling its body stayed open 8 s (deadline 2 s)"
    assert 1.5 <= took <= 3.5, f"closed {took:.2f} s after its headers; body deadline is 2 s"
    assert metric(srv.metrics(), "tokend_connections_timed_out_total", phase="body") >= 1


@pytest.mark.slow
def test_idle_then_next_request_deadlines(srv):
    """After a response: idle deadline; the next request's first byte starts its
    header deadline (the idle time before it does not count)."""
    s = _connect(srv.port)
    req = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.sendall(req)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    assert data.startswith(b"HTTP/1.1 200"), data
    # Idle for 1.2 s (under the 2 s idle deadline), then a request trickled.
    time.sleep(1.2)
    assert not _closed(s), "closed before the idle deadline"
    s.sendall(b"G")
    t0 = time.monotonic()
    took = _trickle_until_closed(s, t0, 8)
    s.close()
    assert took is not None and 1.5 <= took <= 3.5, f"next request closed after {took} s (header deadline 2 s)"

    # Idle with nothing: closed at the idle deadline.
    s = _connect(srv.port)
    s.sendall(req)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    t0 = time.monotonic()
    s.settimeout(10)
    rest = s.recv(4096)
    took = time.monotonic() - t0
    s.close()
    assert rest == b"" and 1.5 <= took <= 3.5, f"idle keep-alive connection closed after {took:.2f} s"
    assert metric(srv.metrics(), "tokend_connections_timed_out_total", phase="idle") >= 1


@pytest.mark.slow
def test_keepalive_requests_each_get_a_fresh_deadline(srv):
    """Deadlines are per request: a client sending a request every second keeps
    its connection for longer than any single deadline."""
    s = _connect(srv.port)
    t0 = time.monotonic()
    n = 0
    buf = b""
    while time.monotonic() - t0 < 5:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            assert b, f"closed after {n} requests, {time.monotonic() - t0:.1f} s"
            buf += b
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
        while len(buf) < length:
            buf += s.recv(4096)
        buf = buf[length:]
        assert head.startswith(b"HTTP/1.1 200"), head
        n += 1
        time.sleep(1.0)
    s.close()
    assert n >= 5


def test_pipelined_requests(srv):
    """Two requests in one packet: two answers; a third, partial one is held to
    the header deadline from the moment the second answer was sent."""
    s = _connect(srv.port)
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(one + one + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Partial: ")
    t0 = time.monotonic()
    data = b""
    s.settimeout(10)
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            b = b""
        if not b:
            break
        data += b
    took = time.monotonic() - t0
    s.close()
    answers = parse_raw_responses(data)
    assert [a[0] for a in answers] == [200, 200], data
    assert 1.5 <= took <= 3.5, f"partial pipelined request closed after {took:.2f} s"


@pytest.mark.parametrize("path", ["/oauth2/token", "/healthz", "/admin/v1/account", "/nowhere"])
def test_obs_fold_refused_and_closed(srv, path):
    """RFC 9112 5.2: a folded header line in a request is refused (400), on
    every endpoint, and the connection closed (evhttp would join the lines)."""
    for fold in (b" ", b"\t"):
        req = (f"POST {path} HTTP/1.1\r\nHost: x\r\nX-A: one\r\n".encode() + fold +
               b"two\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\n"
               b"grant_type=client_credentials" + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data, closed = raw_exchange(srv.port, req)
        answers = parse_raw_responses(data)
        assert len(answers) == 1 and answers[0][0] == 400, data
        assert b"obs-fold" in answers[0][2]
        assert closed


def test_folded_authorization_cannot_smuggle_credentials(srv):
    k = srv.key
    import base64
    cred = base64.b64encode(f"{k['client_id']}:{k['client_secret']}".encode())
    req = (b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic\r\n " + cred +
           b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\n"
           b"grant_type=client_credentials")
    data, closed = raw_exchange(srv.port, req)
    answers = parse_raw_responses(data)
    assert answers[0][0] == 400 and b"access_token" not in data and closed


@pytest.mark.parametrize("path", ["/healthz", "/admin/v1/account"])
def test_smuggling_shapes_refused_on_every_endpoint(srv, path):
    shapes = [
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Transfer-Encoding: identity\r\n",
    ]
    for extra in shapes:
        req = (f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() + extra + b"\r\n0\r\n\r\n" +
               b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data, closed = raw_exchange(srv.port, req)
        answers = parse_raw_responses(data)
        assert answers and answers[0][0] == 400, (extra, data)
        assert len(answers) == 1, f"a smuggled request was answered: {data!r}"
        assert closed


def _socket_fds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


@pytest.mark.slow
def test_connection_cap(tokend, start_server):
    """max_connections: the server never holds more; the rest wait in the
    kernel's backlog and are served as deadlines free places."""
    tokend.account("acme")
    tokend.scopes("read")
    srv = start_server(tokend, max_connections="20", workers="1", header_timeout="2s",
                       idle_timeout="2s")
    key = new_key(tokend, "acme")
    assert srv.token(key).status == 200
    time.sleep(2.5)   # the connection used above is gone (idle deadline)
    base = _socket_fds(srv.proc.pid)
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], _socket_fds(srv.proc.pid) - base)
            time.sleep(0.02)
    th = threading.Thread(target=watch)
    th.start()
    hogs = []
    try:
        for _ in range(60):
            s = socket.socket()
            s.settimeout(10)
            s.connect(("127.0.0.1", srv.port))   # completes in the kernel, accepted or not
            hogs.append(s)
        time.sleep(0.5)
        held = _socket_fds(srv.proc.pid) - base
        assert held == 20, f"{held} connections held with max_connections = 20"
        # A normal client queues behind them and is served once deadlines free places.
        t0 = time.monotonic()
        r = srv.token(key, timeout=20)
        waited = time.monotonic() - t0
        assert r.status == 200, r
        remember_token(r.json()["access_token"])
    finally:
        stop.set()
        th.join()
        for s in hogs:
            s.close()
    assert peak[0] <= 20, f"peak {peak[0]} connections with max_connections = 20"
    m = srv.metrics()
    assert metric(m, "tokend_connection_cap_reached_total") >= 1
    assert metric(m, "tokend_connections_timed_out_total", phase="header") >= 20
    print(f"\ncap 20: peak {peak[0]} held, a queued client served after {waited:.2f} s")


def test_open_connections_gauge(srv):
    with OpenConnections(srv) as open_now:
        before = open_now()
        socks = [_connect(srv.port) for _ in range(10)]
        time.sleep(0.3)
        during = open_now()
        for s in socks:
            s.close()
        after = open_now.settle(before)
    assert during - before == 10, (before, during)
    assert after == before, (before, after)


def _from(addr, port, timeout=10):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _get_healthz(s):
    """One keep-alive GET /healthz on `s`; returns the status line."""
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        assert b, "closed before an answer"
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
    while len(rest) < n:
        rest += s.recv(4096)
    return head.split(b"\r\n")[0]


def _healthz_from(addr, port, timeout):
    s = _from(addr, port, timeout)
    try:
        return _get_healthz(s)
    finally:
        s.close()


def test_per_address_cap(tokend, start_server):
    """Issue 10, finding 8: connections from one address are capped
    (max_connections_per_address), counted across workers; at the cap a new
    connection from that address is refused at once, other addresses are
    unaffected, and connections that close free their place."""
    srv = start_server(tokend, max_connections="20", max_connections_per_address="5", workers="2",
                       header_timeout="30s", idle_timeout="30s")
    hogs = [_from("127.0.0.3", srv.port) for _ in range(20)]
    try:
        t0 = time.monotonic()
        closed = []
        while time.monotonic() - t0 < 3:
            closed = [s for s in hogs if s in closed or _closed(s)]
            if len(closed) >= 15:
                break
            time.sleep(0.1)
        time.sleep(0.2)
        closed = [s for s in hogs if s in closed or _closed(s)]
        assert len(closed) == 15, f"{len(closed)} of 20 connections from one address refused (cap 5)"
        # Another address is served at once although 127.0.0.3 sits on its connections.
        t0 = time.monotonic()
        assert _healthz_from("127.0.0.2", srv.port, 3).startswith(b"HTTP/1.1 200")
        assert time.monotonic() - t0 < 1.0
        # 127.0.0.3 still at its cap; one of its connections closes: one more admitted.
        s = _from("127.0.0.3", srv.port)
        t0 = time.monotonic()
        while not _closed(s) and time.monotonic() - t0 < 3:
            time.sleep(0.05)
        assert _closed(s), "a sixth connection from 127.0.0.3 was admitted"
        s.close()
        open_ = [s for s in hogs if s not in closed]
        open_[0].close()
        time.sleep(0.3)
        s = _from("127.0.0.3", srv.port)
        assert _get_healthz(s).startswith(b"HTTP/1.1 200")
        s.close()
    finally:
        for s in hogs:
            s.close()
    m = srv.metrics()
    assert metric(m, "tokend_connections_refused_per_address_total") >= 16


def test_idle_connections_reaped_at_the_cap(tokend, start_server):
    """Issue 10, finding 8: max_connections full of idle keep-alive connections
    (the issue's 20 idle connections that starved /healthz for 35 s): a new
    client is admitted at once by closing the oldest idle connection."""
    srv = start_server(tokend, max_connections="20", workers="1", header_timeout="30s",
                       idle_timeout="60s")
    idle = []
    try:
        for _ in range(20):
            s = _from("127.0.0.1", srv.port)
            assert _get_healthz(s).startswith(b"HTTP/1.1 200")
            idle.append(s)
            time.sleep(0.01)
        t0 = time.monotonic()
        other = _from("127.0.0.2", srv.port, 3)
        idle.append(other)   # kept open: now the newest idle connection
        assert _get_healthz(other).startswith(b"HTTP/1.1 200")
        took = time.monotonic() - t0
        assert took < 1.0, f"/healthz waited {took:.2f} s behind idle connections"
        time.sleep(0.2)
        assert _closed(idle[0]), "the oldest idle connection was not the one closed"
        assert not any(_closed(s) for s in idle[2:]), "more idle connections closed than needed"
        # A connection with a request under way (headers started) is never reaped.
        busy = idle[1]
        busy.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.1)
        assert _healthz_from("127.0.0.4", srv.port, 3).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)
        assert not _closed(busy), "a connection in the middle of a request was reaped"
        assert _closed(idle[2]), "the next oldest idle connection should have been closed"
        busy.sendall(b"Host: x\r\n\r\n")
        assert busy.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for s in idle:
            s.close()
    assert metric(srv.metrics(), "tokend_connections_reaped_idle_total") >= 2
