"""Issue 16: who reads a fast-lane connection's socket (server/http/conn.c).

After a fast-lane answer, conn.c reads an idle keep-alive connection itself
(own_read_cb) instead of libevent's bufferevent. Reading changes hands only from
the event loop: a switch made under the bufferevent's read callback, with a
request for evhttp behind the answered one in the same read, once left both
readers armed (evhttp enables the bufferevent's reading again while it serves),
and then:
 - one more byte while evhttp's answer was pending made libevent exit tokend
   ("evhttp_read_cb: illegal connection state"), from one unauthenticated
   connection;
 - a request that arrived as a partly sent answer completed was answered before
   the requests held behind that answer (answers out of order on a pipelined
   connection), or, when it was evhttp's, the held requests were never answered;
 - a client half-closing while an answer was partly sent lost the rest.
Each test below fails that way on that code.

The fillers are cheap fast-lane requests (grant_type=x: a 400 from the token
handler, no key, no signature), each exactly 512 bytes, sent 8 per send (4096
bytes, the size of each read) so that every read holds whole requests and each
takes the fast lane; about 3 MB of answers (~9,400 fillers on loopback, with
the client's receive buffer at 4 KiB) fill the server's send buffer, so that an
answer is partly sent (PH_WRITE) and what follows is held.
"""
import os
import signal
import socket
import time

from support.http import parse_raw_responses, raw_exchange
from support.registry import remember_token

import pytest

from test_fastlane import env, fast_count, recv_responses, token_bytes  # noqa: F401  (fixture)

JWKS = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nX-Request-Id: g\r\n\r\n"
N = 40000           # at most (~330 bytes of answer each); send_fillers stops at the stall
SIZE = 512


def filler(i, rid=None):
    rid = rid or f"r-{i:05d}"
    head = (f"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nX-Request-Id: {rid}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 12\r\nX-Pad: ")
    tail = "\r\n\r\ngrant_type=x"
    return (head + "p" * (SIZE - len(head) - len(tail)) + tail).encode()


def small_rcvbuf_conn(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect(("127.0.0.1", port))
    s.settimeout(10)
    return s


def prime(env, s):
    """A token request and a GET in one send on a new connection: read by the
    bufferevent, the token answered at once by the fast lane, the GET by evhttp
    (the mixed read that once left both readers armed)."""
    data, _ = raw_exchange(env.port, token_bytes(env.key), read_until_close=False)   # key cached
    remember_token(parse_raw_responses(data)[0][2].decode())
    s.sendall(token_bytes(env.key, extra=b"X-Request-Id: f1\r\n") + JWKS)
    got, raw = recv_responses(s, 2)
    assert [st for st, _, _ in got] == [200, 200], raw[:500]
    remember_token(got[0][2].decode())


GROUP = 512


def send_fillers(env, s, per=8):
    """Whole requests, `per` per send (8: 4096 bytes), paced so that tokend reads
    each send alone (each request then takes the fast lane); the client reads
    nothing. Groups of GROUP until the fast-lane counter stops following: an
    answer is then partly sent (PH_WRITE) and the rest of the last group waits
    (held, or still in the kernel). Returns the number of fillers sent."""
    sent = 0
    while sent < N:
        before = fast_count(env.srv)
        for b in range(sent, sent + GROUP, per):
            s.sendall(b"".join(filler(i) for i in range(b, b + per)))
            time.sleep(0.0005 if per > 1 else 0.0002)
        sent += GROUP
        time.sleep(0.15)
        if fast_count(env.srv) - before < GROUP:
            return sent
    raise AssertionError("the answers never filled the socket buffers")


def drain(s, quiet=0.3):
    data = b""
    s.settimeout(quiet)
    while True:
        try:
            b = s.recv(1 << 20)
        except socket.timeout:
            break
        if not b:
            break
        data += b
    s.settimeout(10)
    return data


def read_all(s, quiet=2.0):
    """Everything until the server closes or nothing comes for `quiet` seconds."""
    chunks = []
    s.settimeout(quiet)
    while True:
        try:
            b = s.recv(1 << 20)
        except (socket.timeout, ConnectionResetError):
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def reorder_run(env, late=None):
    s = small_rcvbuf_conn(env.port)
    pid = env.srv.proc.pid
    stopped = False
    try:
        prime(env, s)
        n = send_fillers(env, s)
        os.kill(pid, signal.SIGSTOP)       # tokend frozen in PH_WRITE
        stopped = True
        data = drain(s)                    # the kernel sends what tokend queued: writable again
        s.sendall(late or filler(0, "LATE"))   # ... and readable: both in one epoll_wait
        time.sleep(0.3)
        os.kill(pid, signal.SIGCONT)
        stopped = False
        got = parse_raw_responses(data + read_all(s))
    finally:
        if stopped:
            os.kill(pid, signal.SIGCONT)
        s.close()
    return n, [h.get("x-request-id") for _, h, _ in got]


def check_order(n, ids):
    want = [f"r-{i:05d}" for i in range(n)] + ["LATE"]
    if ids != want:
        late = ids.index("LATE") if "LATE" in ids else None
        raise AssertionError(f"{len(ids)} answers; LATE answered at position {late} of {len(ids)}; "
                             f"around it: {ids[max(0, (late or 0) - 2):(late or 0) + 3]}")


@pytest.mark.slow
def test_answers_stay_in_order_after_a_mixed_read(env):
    """A token request and a GET in one send on a new connection, then fillers
    until an answer is partly sent, then one more request as the socket drains:
    answered last. (The bug: answered before the requests held behind the
    partly sent answer - every later answer to the wrong request.)"""
    check_order(*reorder_run(env))


LATE_GET = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nX-Request-Id: LATE\r\n\r\n"


@pytest.mark.slow
def test_held_requests_answered_when_the_late_one_is_evhttps(env):
    """As above, the late request a GET (evhttp's): every request is answered, in
    order. (The bug: evhttp served the GET first, and the requests held behind
    the partly sent answer were never answered.)"""
    check_order(*reorder_run(env, late=LATE_GET))


def halfclose_run(env):
    s = small_rcvbuf_conn(env.port)
    try:
        prime(env, s)
        n = send_fillers(env, s)
        s.shutdown(socket.SHUT_WR)         # the client is done sending (half-close)
        time.sleep(0.3)
        data = read_all(s)
    finally:
        s.close()
    return n, parse_raw_responses(data), data


@pytest.mark.slow
def test_half_close_after_a_mixed_read_gets_every_answer(env):
    """A client that shuts its sending side while an answer is partly sent gets
    every answer, whole. (The bug: the end of the stream was read meanwhile and
    evhttp closed the connection mid-answer.)"""
    n, got, data = halfclose_run(env)
    assert len(got) == n, f"{len(got)} whole answers of {n}; the last bytes: {data[-120:]!r}"


def test_byte_behind_a_pending_evhttp_request_is_harmless(env, module_start_server):
    """One send on a new connection: a token request the fast lane answers at
    once and an HTTP/1.0 token request (evhttp's) whose key lookup waits on a
    lock; then one more byte. tokend lives on. (The bug: that byte was read by
    conn.c, which handed reading back to evhttp mid-request, and libevent
    exited: "evhttp_read_cb: illegal connection state".)"""
    from support.server import new_key
    from test_fastlane import locked_keys
    srv = module_start_server(env.t)       # a server of its own: this one dies
    data, _ = raw_exchange(srv.port, token_bytes(env.key), read_until_close=False)   # key cached
    remember_token(parse_raw_responses(data)[0][2].decode())
    fresh = new_key(env.t, "acme", "crash", "read")
    lock = locked_keys(env.t)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(token_bytes(env.key, extra=b"X-Request-Id: c-1\r\n") +
                  token_bytes(fresh, "HTTP/1.0", b"Connection: keep-alive\r\nX-Request-Id: c-2\r\n"))
        time.sleep(0.3)                    # c-1 answered; c-2 waits for the database
        s.sendall(b"\r\n")                 # any byte (a stray CRLF, the next request...)
        time.sleep(0.5)
        alive = srv.alive()
    finally:
        lock.rollback()
        lock.close()
        s.close()
    assert alive, "tokend exited: " + srv.stderr_text()[-300:]


def test_byte_behind_a_preflight_is_harmless(env, module_start_server):
    """The same with no credentials and no lock: a fast-lane request refused at
    once (unsupported grant type) and a CORS preflight of the token endpoint
    (evhttp's; its Origin is looked up in the database) in one segment, then two
    bytes right behind, ten times: tokend lives on."""
    srv = module_start_server(env.t)
    fake = {"client_id": "x", "client_secret": "y"}
    preflight = (b"OPTIONS /oauth2/token HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
                 b"Access-Control-Request-Method: POST\r\n\r\n")
    crashed = 0
    for attempt in range(10):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.sendall(token_bytes(fake, body=b"grant_type=x") + preflight)
            time.sleep(0.0002 * attempt)   # let tokend read the first segment alone
            s.sendall(b"\r\n")
            time.sleep(0.2)
        finally:
            s.close()
        if not srv.alive():
            crashed = attempt + 1
            break
    assert not crashed, f"tokend exited at attempt {crashed}: " + srv.stderr_text()[-200:]


@pytest.mark.slow
@pytest.mark.parametrize("per", [8, 1], ids=["held", "unread"])
def test_reaper_leaves_held_requests_alone(env, module_start_server, per):
    """max_connections = 2, one worker. A's answer is partly sent with requests
    behind it; tokend stopped; A's client drains (A writable) and two new
    connections arrive (the listener readable). In one loop pass A's answer
    completes (fast_sent: PH_IDLE, on the idle list, fast_resume_cb queued) and
    the listener accepts twice: over the cap, the oldest idle connection is
    reaped. It must not be A: A's requests are waiting for their answers,
    (held) read with the one partly answered (8 per send: those after it in
    its read), or (unread) still in A's socket, not read while the answer
    waited (1 per send: read one at a time, nothing held). (The bugs: A was
    closed, ~400 requests unanswered; the second once in a sanitized CI run,
    when the partly answered request ended its read.)"""
    from support.util import free_port
    srv = module_start_server(env.t, max_connections="2", workers="1", idle_timeout="30s",
                              ops_listen_port=free_port())
    e2 = type(env)(t=env.t, srv=srv, port=srv.port, key=env.key)
    s = small_rcvbuf_conn(srv.port)
    pid = srv.proc.pid
    stopped = False
    others = []
    try:
        prime(e2, s)
        n = send_fillers(e2, s, per)
        os.kill(pid, signal.SIGSTOP)
        stopped = True
        data = drain(s)                    # A writable again
        for _ in range(2):                 # the listener readable, two accepts in one pass
            o = socket.socket()
            o.setblocking(False)
            try:
                o.connect(("127.0.0.1", srv.port))
            except BlockingIOError:
                pass
            others.append(o)
        time.sleep(0.3)
        os.kill(pid, signal.SIGCONT)
        stopped = False
        data += read_all(s)
        got = parse_raw_responses(data)
    finally:
        if stopped:
            os.kill(pid, signal.SIGCONT)
        s.close()
        for o in others:
            o.close()
    assert len(got) == n, f"{len(got)} answers of {n}; the last bytes: {data[-120:]!r}"
