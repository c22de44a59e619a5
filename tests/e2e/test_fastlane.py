"""Issue 16: the HTTP fast lane for POST /oauth2/token (server/http/conn.c,
fastlane.c, req.c).

A token request whose head and body arrive together, HTTP/1.1, is read and
answered by the connection layer without evhttp, through the same handler as
every other request. These tests hold it to evhttp's behaviour: the same
answer header fields (an HTTP/1.0 request still goes through evhttp), order
kept over pipelined requests (fast lane and evhttp mixed), requests split at
any byte, a slow reader (partial writes), a client gone while a database
lookup is pending, empty lines before a request (ignored on every path, no
deadline moved), and the counter that says which lane served a request.
Once a connection has had a fast-lane answer, conn.c reads its socket itself
(no ioctl(FIONREAD) per request): the same turns, one step per send, and the
system calls counted by strace.
"""
import base64
import re
import socket
import time
import urllib.parse
from types import SimpleNamespace as NS

import pytest

from support.http import metric, parse_raw_responses, raw_exchange
from support.registry import remember_token
from support.server import OpenConnections, new_key
from support.util import strace_calls

pytestmark = pytest.mark.binary

FAST = "tokend_requests_fast_lane_total"


@pytest.fixture(scope="module")
def env(module_tokend, module_start_server):
    t = module_tokend
    t.account("acme", "--key-limit", "100")
    t.scopes("read")
    srv = module_start_server(t, header_timeout="3s", body_timeout="3s", idle_timeout="5s")
    key = new_key(t, "acme", "main", "read")
    return NS(t=t, srv=srv, port=srv.port, key=key)


def token_bytes(key, version="HTTP/1.1", extra=b"", body=None):
    """A raw token request (client_secret_basic)."""
    cred = base64.b64encode(f"{urllib.parse.quote_plus(key['client_id'])}:"
                            f"{urllib.parse.quote_plus(key['client_secret'])}".encode())
    if body is None:
        body = b"grant_type=client_credentials"
    return (f"POST /oauth2/token {version}\r\nHost: x\r\n".encode() + b"Authorization: Basic " + cred +
            b"\r\nContent-Type: application/x-www-form-urlencoded\r\n" + extra +
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def fast_count(srv):
    return metric(srv.metrics(), FAST)


def recv_responses(s, n, timeout=10.0):
    """Read from `s` until `n` complete Content-Length framed answers arrived."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = parse_raw_responses(data)
        if len(got) >= n and all(len(b) == int(h.get("content-length", "0")) for _, h, b in got):
            return got, data
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        if not b:
            break
        data += b
    return parse_raw_responses(data), data


def keep_tokens(answers):
    """The answers' bodies (token responses) go to the session's leak scan."""
    for b in answers:
        remember_token(b.decode())


def head_fields(data):
    """[(name, value)] of the first answer's header, in order."""
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return head[0], [tuple(x.strip() for x in line.split(":", 1)) for line in head[1:]]


def test_same_header_fields_as_evhttp(env):
    """The fast lane's token answer carries the header fields evhttp writes,
    in the same order (Date, Content-Length, Content-Type after ours). An
    HTTP/1.0 keep-alive request goes through evhttp: compared field by field
    but for Date and X-Request-Id (and the Connection evhttp adds for 1.0)."""
    before = fast_count(env.srv)
    fast, _ = raw_exchange(env.port, token_bytes(env.key, extra=b"X-Request-Id: fast-1\r\n"),
                           read_until_close=False)
    assert fast_count(env.srv) == before + 1
    slow, _ = raw_exchange(env.port, token_bytes(env.key, "HTTP/1.0", b"Connection: keep-alive\r\n"
                                                 b"X-Request-Id: slow-1\r\n"), read_until_close=False)
    assert fast_count(env.srv) == before + 1, "an HTTP/1.0 request is evhttp's"
    for d in (fast, slow):
        remember_token(parse_raw_responses(d)[0][2].decode())
    fl, ff = head_fields(fast)
    sl, sf = head_fields(slow)
    assert fl == "HTTP/1.1 200 OK" and sl == "HTTP/1.0 200 OK"
    skip = {"x-request-id", "date", "connection"}
    assert [f for f in ff if f[0].lower() not in skip] == [f for f in sf if f[0].lower() not in skip]
    assert ("X-Request-Id", "fast-1") in ff
    names = [n for n, _ in ff]
    assert names == ["Cache-Control", "Pragma", "X-Content-Type-Options", "X-Request-Id", "Content-Type",
                     "Date", "Content-Length"], ff
    date = dict(ff)["Date"]
    assert time.strptime(date, "%a, %d %b %Y %H:%M:%S GMT")


def test_pipelined_in_order(env):
    """Three token requests and a JWKS GET in one send: four answers, in order
    (the GET is evhttp's; the token request after it too, once evhttp is done)."""
    before = fast_count(env.srv)
    reqs = [token_bytes(env.key, extra=b"X-Request-Id: p-1\r\n"),
            token_bytes(env.key, extra=b"X-Request-Id: p-2\r\n"),
            b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nX-Request-Id: p-3\r\n\r\n",
            token_bytes(env.key, extra=b"X-Request-Id: p-4\r\n")]
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    try:
        s.sendall(b"".join(reqs))
        got, data = recv_responses(s, 4)
    finally:
        s.close()
    assert [st for st, _, _ in got] == [200, 200, 200, 200], data[:2000]
    assert [h["x-request-id"] for _, h, _ in got] == ["p-1", "p-2", "p-3", "p-4"]
    assert b'"keys"' in got[2][2] and b"access_token" in got[3][2]
    for _, _, b in got[:2] + got[3:]:
        remember_token(b.decode())
    assert fast_count(env.srv) == before + 2, "the two before the GET took the fast lane"


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_empty_lines_before_a_request_are_ignored(env):
    """RFC 9112 section 2.2: empty lines (CRLF, or a bare LF) before a request
    line are ignored, on every path a request takes: before the first request
    of a connection, after a POST body in the same send as the next request
    (fast lane, then fast lane again), alone between requests (the connection
    stays idle and open), behind an evhttp answer, and trickled a byte at a
    time. (evhttp 2.1 answered each of these 400 and closed.)"""
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tokens = []
    try:
        (st, _, _), = exchange(s, b"\r\n\n" + HEALTHZ)                      # evhttp's, first on the connection
        assert st == 200
        before = fast_count(env.srv)
        got = exchange(s, token_bytes(env.key, extra=b"X-Request-Id: e-1\r\n") + b"\r\n" +
                       token_bytes(env.key, extra=b"X-Request-Id: e-2\r\n") + b"\r\n", n=2)
        assert [(st, h["x-request-id"]) for st, h, _ in got] == [(200, "e-1"), (200, "e-2")]
        tokens += [b for _, _, b in got]
        assert fast_count(env.srv) == before + 2, "both on the fast lane, the CRLFs dropped"
        s.sendall(b"\r\n")                                                  # alone, on an idle connection
        time.sleep(0.2)
        (st, h, b), = exchange(s, token_bytes(env.key, extra=b"X-Request-Id: e-3\r\n"))
        assert st == 200 and h["x-request-id"] == "e-3"
        tokens.append(b)
        assert fast_count(env.srv) == before + 3
        got = exchange(s, HEALTHZ + b"\r\n\r\n" + HEALTHZ, n=2)              # behind an evhttp answer
        assert [st for st, _, _ in got] == [200, 200]
        for piece in (b"\r", b"\n", b"\n", b"\r", b"\n"):                    # trickled, a CR split from its LF
            s.sendall(piece)
            time.sleep(0.05)
        (st, h, b), = exchange(s, token_bytes(env.key, extra=b"X-Request-Id: e-4\r\n"))
        assert st == 200 and h["x-request-id"] == "e-4"
        tokens.append(b)
        assert fast_count(env.srv) == before + 4, "after a CR and its LF in two reads: the fast lane still"
        (st, _, _), = exchange(s, b"\n" + b"\r\n" * 6000 + HEALTHZ)     # 12 KB of them: more than a head may be
        assert st == 200
        (st, h, b), = exchange(s, token_bytes(env.key, extra=b"X-Request-Id: e-5\r\n") + b"\r")
        assert st == 200 and h["x-request-id"] == "e-5"                    # a CR behind the answer...
        tokens.append(b)
        (st, _, _), = exchange(s, b"\n" + HEALTHZ)                            # ... and its LF in the next send
        assert st == 200
    finally:
        s.close()
        keep_tokens(tokens)
    assert all(b"access_token" in b for b in tokens)


def test_a_cr_without_its_lf_before_a_request_is_refused(env):
    """Only whole empty lines are ignored: a CR followed by anything but LF is
    refused (400 and the close), as anywhere in a head."""
    for bad in (b"\r", b"\r\r\n", b"\r\n\r"):
        data, closed = raw_exchange(env.port, bad + HEALTHZ)
        assert data.startswith(b"HTTP/1.1 400 "), (bad, data)
        assert b"CR must be followed by LF" in data and closed


def test_empty_lines_extend_no_deadline(env, module_start_server):
    """Empty lines trickled on an idle connection, or on a new one, start no
    request and move no deadline: the connection is closed at its idle or
    header deadline (1 s here) however many come."""
    srv = module_start_server(env.t, header_timeout="1s", idle_timeout="1s")
    for first, pieces in ((token_bytes(env.key), [b"\r\n"]), (None, [b"\r\n"]),
                          (token_bytes(env.key), [b"\r", b"\n"])):   # a CR and its LF in turn
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if first:
                (st, _, b), = exchange(s, first)
                assert st == 200
                remember_token(b.decode())
            t0 = time.monotonic()
            closed_after = None
            answered = b""
            sent = 0
            while time.monotonic() - t0 < 4:
                try:
                    s.sendall(pieces[sent % len(pieces)])
                    sent += 1
                    s.settimeout(0.2)
                    got = s.recv(4096)
                    answered += got
                    if got == b"":
                        closed_after = time.monotonic() - t0
                        break
                except socket.timeout:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    closed_after = time.monotonic() - t0
                    break
        finally:
            s.close()
        what = "idle" if first else "header"
        assert closed_after is not None, f"empty lines every 0.2 s kept the connection open past its {what} deadline"
        assert answered == b"", f"empty lines were answered: {answered[:200]!r}"
        assert 0.8 < closed_after < 2.5, f"closed {closed_after:.2f} s after the {what} phase began"


def test_split_byte_by_byte(env):
    """A token request sent one byte per segment is answered (by evhttp: the
    head was never whole in the input), and so is the next on the connection."""
    req = token_bytes(env.key, extra=b"X-Request-Id: split-1\r\n")
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for i in range(len(req)):
            s.sendall(req[i:i + 1])
            time.sleep(0.001)
        got, data = recv_responses(s, 1)
        assert [st for st, _, _ in got] == [200], data
        assert got[0][1]["x-request-id"] == "split-1"
        remember_token(got[0][2].decode())
        before = fast_count(env.srv)
        s.sendall(token_bytes(env.key, extra=b"X-Request-Id: split-2\r\n"))
        got, data = recv_responses(s, 1)
        assert [st for st, _, _ in got] == [200], data
        remember_token(got[0][2].decode())
        assert fast_count(env.srv) == before + 1, "the next request, whole, takes the fast lane"
    finally:
        s.close()


def test_body_after_head(env):
    """The head first, the body later: served (by evhttp), the same answer."""
    req = token_bytes(env.key)
    head, _, body = req.partition(b"\r\n\r\n")
    before = fast_count(env.srv)
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    try:
        s.sendall(head + b"\r\n\r\n")
        time.sleep(0.3)
        s.sendall(body)
        got, data = recv_responses(s, 1)
    finally:
        s.close()
    assert [st for st, _, _ in got] == [200], data
    remember_token(got[0][2].decode())
    assert fast_count(env.srv) == before


def test_slow_reader_gets_every_answer(env):
    """Hundreds of pipelined token requests from a client that reads nothing
    for a while, then reads them all: every answer arrives, whole and in order.
    (300 answers fit in loopback's socket buffers, and most of these requests
    straddle a read and go to evhttp; the fast lane's own partial writes are
    test_fastlane_turns.py's: thousands of 512-byte requests.)"""
    n = 300
    reqs = b"".join(token_bytes(env.key, extra=f"X-Request-Id: s-{i}\r\n".encode()) for i in range(n))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", env.port))
    s.settimeout(20)
    import threading
    sender = threading.Thread(target=s.sendall, args=(reqs,))
    sender.start()
    try:
        time.sleep(1.0)                    # nothing read: the server's writes stall
        got, data = recv_responses(s, n, timeout=30)
        sender.join(10)
    finally:
        s.close()
    assert len(got) == n, f"{len(got)} answers of {n}"
    assert all(st == 200 for st, _, _ in got)
    assert [h["x-request-id"] for _, h, _ in got] == [f"s-{i}" for i in range(n)]
    for _, _, b in got:
        remember_token(b.decode())


def locked_keys(t):
    """A transaction holding api_keys: key lookups wait (the answer is pending)."""
    import psycopg2
    conn = psycopg2.connect(t.db_url)
    conn.cursor().execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
    return conn


def test_pending_answer_keeps_order(env):
    """A cache miss (a new key: database lookup) followed, in the same send, by
    a JWKS GET and a token request: nothing is answered before the lookup,
    then all three in order."""
    fresh = new_key(env.t, "acme", "fresh-order", "read")
    lock = locked_keys(env.t)
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    try:
        s.sendall(token_bytes(fresh, extra=b"X-Request-Id: q-1\r\n") +
                  b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nX-Request-Id: q-2\r\n\r\n" +
                  token_bytes(env.key, extra=b"X-Request-Id: q-3\r\n"))
        got, data = recv_responses(s, 1, timeout=0.5)
        assert data == b"", "answered before the pending lookup"
        lock.rollback()
        got, data = recv_responses(s, 3)
    finally:
        lock.rollback()
        lock.close()
        s.close()
    assert [st for st, _, _ in got] == [200, 200, 200], data[:2000]
    assert [h["x-request-id"] for _, h, _ in got] == ["q-1", "q-2", "q-3"]
    remember_token(got[0][2].decode())
    remember_token(got[2][2].decode())


def test_client_gone_while_pending(env):
    """Clients that close while their cache-miss lookup is pending: no answer
    to send, no crash, no connection left open; the server goes on."""
    keys = [new_key(env.t, "acme", f"gone-{i}", "read") for i in range(5)]
    with OpenConnections(env.srv) as open_now:
        open_before = open_now()
        lock = locked_keys(env.t)
        try:
            for k in keys:
                s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
                s.sendall(token_bytes(k) + token_bytes(env.key))
                s.close()
            time.sleep(0.3)
        finally:
            lock.rollback()
            lock.close()
        assert open_now.settle(open_before) <= open_before
    data, _ = raw_exchange(env.port, token_bytes(env.key), read_until_close=False)
    assert parse_raw_responses(data)[0][0] == 200
    remember_token(parse_raw_responses(data)[0][2].decode())
    assert env.srv.alive()


def test_connection_close_asked(env):
    """Connection: close on a fast-lane request: the answer says so and the
    connection closes; a request behind it is never served."""
    before = fast_count(env.srv)
    data, closed = raw_exchange(env.port, token_bytes(env.key, extra=b"Connection: close\r\n") +
                                token_bytes(env.key))
    got = parse_raw_responses(data)
    assert [st for st, _, _ in got] == [200], data
    assert got[0][1]["connection"] == "close"
    assert closed
    remember_token(got[0][2].decode())
    assert fast_count(env.srv) == before + 1


def test_expect_and_http10_go_to_evhttp(env):
    """Expect: 100-continue and HTTP/1.0 are evhttp's; a query string too (400)."""
    before = fast_count(env.srv)
    data, _ = raw_exchange(env.port, token_bytes(env.key, extra=b"Expect: 100-continue\r\n"),
                           read_until_close=False, timeout=2)
    got = parse_raw_responses(data)
    assert got and got[-1][0] == 200, data
    remember_token(got[-1][2].decode())
    data, _ = raw_exchange(env.port, token_bytes(env.key).replace(b"/oauth2/token", b"/oauth2/token?a=b", 1))
    assert parse_raw_responses(data)[0][0] == 400 and b"not the URI" in data
    assert fast_count(env.srv) == before


def test_duplicate_fields_as_evhttp(env):
    """Repeated fields are judged as with evhttp: two Authorization fields are
    refused, a repeated X-Request-Id is replaced by a generated one."""
    before = fast_count(env.srv)
    data, _ = raw_exchange(env.port, token_bytes(env.key, extra=b"Authorization: Basic eDp5\r\n"),
                           read_until_close=False)
    st, h, b = parse_raw_responses(data)[0]
    assert st == 400 and b"more than one Authorization" in b
    data, _ = raw_exchange(env.port, token_bytes(env.key, extra=b"X-Request-Id: a\r\nX-Request-Id: b\r\n"),
                           read_until_close=False)
    st, h, b = parse_raw_responses(data)[0]
    assert st == 200 and h["x-request-id"] not in ("a", "b")
    remember_token(b.decode())
    assert fast_count(env.srv) == before + 2


@pytest.mark.parametrize("shape", [
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 29\r\n",
    b"Content-Length : 29\r\n",
])
def test_smuggling_shapes_refused(env, shape):
    """Framing shapes on the token path are refused (400, closed) by the scanner
    before the fast lane or evhttp reads the request."""
    before = fast_count(env.srv)
    data, closed = raw_exchange(env.port, token_bytes(env.key, extra=shape) +
                                b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [st for st, _, _ in parse_raw_responses(data)] == [400], data
    assert closed
    assert fast_count(env.srv) == before


def test_fast_lane_off(env, module_start_server):
    """http_fast_lane = off: the same requests are all evhttp's (the counter
    stays 0) and get the same answer: status, header field names in order."""
    srv = module_start_server(env.t, http_fast_lane="off")
    on, _ = raw_exchange(env.port, token_bytes(env.key), read_until_close=False)
    off, _ = raw_exchange(srv.port, token_bytes(env.key), read_until_close=False)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(token_bytes(env.key) + token_bytes(env.key))
        got, data = recv_responses(s, 2)
    finally:
        s.close()
    assert [st for st, _, _ in got] == [200, 200], data[:2000]
    for d in (on, off):
        remember_token(parse_raw_responses(d)[0][2].decode())
    for _, _, b in got:
        remember_token(b.decode())
    assert fast_count(srv) == 0
    assert fast_count(env.srv) > 0
    (ol, of), (fl, ff) = head_fields(on), head_fields(off)
    assert ol == fl == "HTTP/1.1 200 OK"
    assert [n for n, _ in of] == [n for n, _ in ff]


# ---- own reading (conn.c, "who reads the socket") ----
#
# After a fast-lane answer, an idle connection's socket is read by conn.c itself
# (one recv, no ioctl(FIONREAD) before it), until evhttp must read: each step
# below is sent alone, after the previous answer, so that each is read that way.

def exchange(s, data, n=1, timeout=10.0):
    s.sendall(data)
    got, raw = recv_responses(s, n, timeout=timeout)
    assert len(got) == n, raw[:2000]
    return got


def test_own_reading_through_every_turn(env):
    """One keep-alive connection: fast-lane requests read by conn.c, a GET handed
    to evhttp, a head without its body, a head in two pieces, a pipelined pair,
    a malformed request (400 and the close): every answer right and in order."""
    jwks = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nX-Request-Id: o-get\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tokens = []
    try:
        before = fast_count(env.srv)
        for i in range(3):                                  # the first by libevent, then ours
            (st, h, b), = exchange(s, token_bytes(env.key, extra=f"X-Request-Id: o-{i}\r\n".encode()))
            assert st == 200 and h["x-request-id"] == f"o-{i}"
            tokens.append(b)
        assert fast_count(env.srv) == before + 3
        (st, h, b), = exchange(s, jwks)                     # evhttp's, from our read
        assert st == 200 and h["x-request-id"] == "o-get" and b'"keys"' in b
        (st, h, b), = exchange(s, token_bytes(env.key, extra=b"X-Request-Id: o-3\r\n"))
        assert st == 200 and h["x-request-id"] == "o-3"     # back to the fast lane
        tokens.append(b)
        assert fast_count(env.srv) == before + 4
        head, _, body = token_bytes(env.key, extra=b"X-Request-Id: o-4\r\n").partition(b"\r\n\r\n")
        s.sendall(head + b"\r\n\r\n")                       # the head alone: evhttp waits for the body
        time.sleep(0.2)
        (st, h, b), = exchange(s, body)
        assert st == 200 and h["x-request-id"] == "o-4"
        tokens.append(b)
        (st, h, b), = exchange(s, token_bytes(env.key, extra=b"X-Request-Id: o-5\r\n"))
        tokens.append(b)
        req = token_bytes(env.key, extra=b"X-Request-Id: o-6\r\n")
        s.sendall(req[:40])                                 # a head in two pieces
        time.sleep(0.2)
        (st, h, b), = exchange(s, req[40:])
        assert st == 200 and h["x-request-id"] == "o-6"
        tokens.append(b)
        (st, h, b), = exchange(s, token_bytes(env.key, extra=b"X-Request-Id: o-7\r\n"))
        tokens.append(b)
        got = exchange(s, token_bytes(env.key, extra=b"X-Request-Id: o-8\r\n") + jwks, n=2)
        assert [(st, h["x-request-id"]) for st, h, _ in got] == [(200, "o-8"), (200, "o-get")]
        tokens.append(got[0][2])
        (st, h, b), = exchange(s, token_bytes(env.key, extra=b"X-Request-Id: o-9\r\n"))
        tokens.append(b)
        s.sendall(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        got, raw = recv_responses(s, 1)
        assert [st for st, _, _ in got] == [400], raw
        s.settimeout(5)
        rest = b""
        while True:                                         # then the server closes
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        assert rest == b"", rest
    finally:
        s.close()
        keep_tokens(tokens)
    assert all(b"access_token" in b for b in tokens)


def test_own_reading_sees_the_client_close(env):
    """A client that shuts its sending side after a fast-lane answer: the
    server closes too (the end of the stream reaches evhttp), and no
    connection is left open."""
    socks = []
    with OpenConnections(env.srv) as open_now:
        open_before = open_now()
        try:
            for i in range(5):
                s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
                for _ in range(2):                              # the second read by conn.c
                    (st, _, b), = exchange(s, token_bytes(env.key))
                    assert st == 200
                    remember_token(b.decode())
                s.shutdown(socket.SHUT_WR)
                socks.append(s)
            for s in socks:
                s.settimeout(5)
                assert s.recv(4096) == b"", "the server did not close after the client's end"
        finally:
            for s in socks:
                s.close()
        assert open_now.settle(open_before) <= open_before


def test_own_reading_waits_behind_a_pending_lookup(env):
    """Read by conn.c: a cache miss (database lookup held by a lock), then a
    request sent while it is pending: nothing is answered before the lookup,
    then both, in order; the connection goes on."""
    fresh = new_key(env.t, "acme", "fresh-own", "read")
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    tokens = []
    try:
        (st, _, b), = exchange(s, token_bytes(env.key))
        tokens.append(b)
        lock = locked_keys(env.t)
        try:
            s.sendall(token_bytes(fresh, extra=b"X-Request-Id: w-1\r\n"))
            time.sleep(0.2)
            s.sendall(token_bytes(env.key, extra=b"X-Request-Id: w-2\r\n"))
            got, data = recv_responses(s, 1, timeout=0.5)
            assert data == b"", "answered before the pending lookup"
        finally:
            lock.rollback()
            lock.close()
        got, data = recv_responses(s, 2)
        assert [(st, h["x-request-id"]) for st, h, _ in got] == [(200, "w-1"), (200, "w-2")], data[:2000]
        tokens += [b for _, _, b in got]
        (st, _, b), = exchange(s, token_bytes(env.key))
        assert st == 200
        tokens.append(b)
    finally:
        s.close()
        keep_tokens(tokens)


def test_no_fionread_per_request(env):
    """System calls, seen by strace: once a keep-alive connection has had a
    fast-lane answer, each next request costs one recv, with no
    ioctl(FIONREAD) before it (libevent asks FIONREAD before every read), no
    getpid for the signature's nonce, and no epoll_ctl: reading is not stopped
    and resumed around an answer owed until the end of the loop's pass
    (send_batch = 8 here; stopping it there cost an epoll_ctl per request)."""
    n = 40
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    tokens = []

    def requests():
        for _ in range(n):
            (st, _, b), = exchange(s, token_bytes(env.key))
            assert st == 200
            tokens.append(b)
    try:
        (st, _, b), = exchange(s, token_bytes(env.key))
        tokens.append(b)
        before = fast_count(env.srv)                        # (a connection of its own: not traced)
        text = strace_calls(env.srv.proc.pid, "ioctl,recvfrom,read,readv,getpid,epoll_ctl",
                            env.t.tmp / "fionread.strace", requests)
        assert fast_count(env.srv) == before + n
    finally:
        s.close()
        keep_tokens(tokens)
    fionread = text.count("FIONREAD")
    reads = len(re.findall(r"\b(?:recvfrom|readv|read)\(", text))
    assert reads >= n, f"{reads} reads for {n} requests (strace saw nothing?)"
    assert fionread == 0, f"{fionread} ioctl(FIONREAD) calls for {n} requests: " + \
        " | ".join(line for line in text.splitlines() if "FIONREAD" in line)[:2000]
    # OpenSSL's fork check on each ECDSA nonce asks getpid(): answered from memory
    # (server/pidcache.c), no system call.
    getpids = len(re.findall(r"\bgetpid\(", text))
    assert getpids == 0, f"{getpids} getpid system calls for {n} tokens"
    ctls = [line for line in text.splitlines() if "epoll_ctl(" in line]
    assert len(ctls) <= 4, f"{len(ctls)} epoll_ctl calls for {n} requests: " + " | ".join(ctls)[:2000]
