"""Issue 16: fast-lane answers sent together (server/http/conn.c, "Answers sent
together"; config send_batch).

The answers a worker builds in one pass of its event loop (the requests one
epoll_wait found ready) are sent together after the pass, send_batch at most
per group, so that a client asleep in epoll_wait is woken once for the lot.
The tests make a pass hold many requests at once: tokend is stopped (SIGSTOP)
while every connection sends its request, then continued, so that its one
worker finds them all ready in one epoll_wait. They check that every answer
still goes to its own connection, in order behind pipelined requests, that
groups never exceed send_batch, that send_batch = 1 sends each answer as soon
as it is built (no group), that a connection reset while its answer is owed
costs nothing but its own answer, that a client's FIN behind its request does
not lose the answer, that an answer owed after the loop has stopped (a lookup
drained from the mailbox at shutdown) is still sent, and that the setting is
checked at load.

A group of two or more answers goes to the kernel in one io_uring_enter
(send_uring, default on; conn.c "A group in one system call"). The tests below
run with it (the default), and check that strace sees one io_uring_enter per
group and no send(2) for its answers, that sockets filling up inside a group's
call lose no byte and keep each connection's order, and that where io_uring is
refused (at setup, as Docker's default seccomp profile does, or later at each
call) the answers go one send(2) each, with the same groups.
"""
import os
import signal
import socket
import time

import pytest

from support.http import metric, parse_raw_responses
from support.registry import remember_token
from support.server import new_key
from support.util import strace_calls, wait_until

from test_fastlane import recv_responses, token_bytes

pytestmark = pytest.mark.binary

BATCHES = "tokend_send_batches_total"
BATCHED = "tokend_send_batched_answers_total"
URING_CALLS = "tokend_send_uring_calls_total"
URING_SHORT = "tokend_send_uring_short_total"
CONNS = 24


@pytest.fixture(scope="module")
def keyed(module_tokend):
    t = module_tokend
    t.account("acme", "--key-limit", "100")
    t.scopes("read")
    return t


def start(keyed, start_server, batch, **kw):
    srv = start_server(keyed, workers="1", send_batch=str(batch), **kw)
    return srv


def cached_key(keyed, srv, name):
    """A new key, used once on a connection of its own: cached, so that the
    requests of a test are answered in the pass that reads them (a key
    looked up in the database is answered when its lookup comes back)."""
    key = new_key(keyed, "acme", name, "read")
    s = socket.create_connection(("127.0.0.1", srv.port))
    try:
        s.sendall(token_bytes(key))
        got, _ = recv_responses(s, 1)
        assert len(got) == 1 and got[0][0] == 200
        remember_token(got[0][2].decode())
    finally:
        s.close()
    return key


def connect(port, n):
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(s)
    return conns


def stop(srv):
    """SIGSTOP, and wait until every thread has stopped (the signal takes
    effect on each thread a moment later: a worker still running would read
    the first requests in a pass of their own)."""
    os.kill(srv.proc.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    task = f"/proc/{srv.proc.pid}/task"
    while time.monotonic() < deadline:
        states = []
        for t in os.listdir(task):
            try:
                with open(f"{task}/{t}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                pass
        if states and all(st in ("T", "t") for st in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"tokend's threads did not all stop: {states}")


def all_at_once(srv, conns, payloads):
    """Send payloads[i] on conns[i] while tokend is stopped, then continue it:
    its worker finds every request ready in one pass."""
    stop(srv)
    try:
        for s, p in zip(conns, payloads):
            s.sendall(p)
        time.sleep(0.2)          # every byte in tokend's receive queues
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)


def counts(srv):
    m = srv.metrics()
    return metric(m, BATCHES), metric(m, BATCHED)


def uring_calls(srv):
    m = srv.metrics()
    return metric(m, URING_CALLS), metric(m, URING_SHORT)


@pytest.mark.parametrize("uring", ["on", "off"])
def test_a_pass_of_requests_answered_in_groups(keyed, start_server, uring):
    srv = start(keyed, start_server, 8, send_uring=uring)
    if uring == "on":
        require_uring(srv)
    key = cached_key(keyed, srv, "batch-a")
    conns = connect(srv.port, CONNS)
    try:
        b0, a0 = counts(srv)
        u0, _ = uring_calls(srv)
        payloads = [token_bytes(key, extra=f"X-Request-Id: c-{i:02d}\r\n".encode()) for i in range(CONNS)]
        all_at_once(srv, conns, payloads)
        for i, s in enumerate(conns):
            got, _ = recv_responses(s, 1)
            assert len(got) == 1, f"connection {i}: no answer"
            (status, head, body) = got[0]
            assert status == 200, (i, status, body)
            assert head.get("x-request-id") == f"c-{i:02d}", "an answer went to another connection"
            remember_token(body.decode())
        b1, a1 = counts(srv)
        groups, answers = b1 - b0, a1 - a0
        # One pass read all 24: a group at each 8th answer owed, none left at its end.
        assert (answers, groups) == (CONNS, CONNS // 8), f"{answers} answers in {groups} groups"
        # Each group in one io_uring_enter, or none with send_uring = off.
        assert uring_calls(srv)[0] - u0 == (groups if uring == "on" else 0)
        states = [e.get("state") for e in srv.log_events("send.uring")]
        assert states == (["on"] if uring == "on" else []), states
    finally:
        for s in conns:
            s.close()


def test_pipelined_requests_stay_in_order(keyed, start_server):
    """Three requests pipelined on each of 12 connections: each connection's
    answers in its own order, whatever groups they were sent in."""
    srv = start(keyed, start_server, 4)
    key = cached_key(keyed, srv, "batch-p")
    conns = connect(srv.port, 12)
    try:
        payloads = [b"".join(token_bytes(key, extra=f"X-Request-Id: p-{i:02d}-{j}\r\n".encode())
                             for j in range(3)) for i in range(12)]
        all_at_once(srv, conns, payloads)
        for i, s in enumerate(conns):
            got, _ = recv_responses(s, 3)
            assert [h.get("x-request-id") for _, h, _ in got] == [f"p-{i:02d}-{j}" for j in range(3)]
            assert all(st == 200 for st, _, _ in got)
            for _, _, body in got:
                remember_token(body.decode())
    finally:
        for s in conns:
            s.close()


def test_one_sends_each_answer_at_once(keyed, start_server):
    srv = start(keyed, start_server, 1)
    key = cached_key(keyed, srv, "batch-1")
    conns = connect(srv.port, CONNS)
    try:
        all_at_once(srv, conns, [token_bytes(key)] * CONNS)
        for s in conns:
            got, _ = recv_responses(s, 1)
            assert len(got) == 1 and got[0][0] == 200
            remember_token(got[0][2].decode())
        assert counts(srv) == (0, 0), "send_batch = 1 grouped answers"
    finally:
        for s in conns:
            s.close()


def test_a_reset_connection_in_a_group(keyed, start_server):
    """Every other connection resets (SO_LINGER 0) right after sending, while
    tokend is stopped: tokend reads each request, then meets the reset when
    the group holding its answer is sent. That failed send closes only its own
    connection: the rest of the group is sent (the other connections are all
    answered) and tokend goes on serving."""
    srv = start(keyed, start_server, 8)
    key = cached_key(keyed, srv, "batch-c")
    conns = connect(srv.port, CONNS)
    try:
        b0, a0 = counts(srv)
        stop(srv)
        try:
            for i, s in enumerate(conns):
                s.sendall(token_bytes(key, extra=f"X-Request-Id: k-{i:02d}\r\n".encode()))
                if i % 2:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()
            time.sleep(0.2)
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        for i in range(0, CONNS, 2):
            got, _ = recv_responses(conns[i], 1)
            assert len(got) == 1 and got[0][0] == 200, f"connection {i}: {got}"
            assert got[0][1].get("x-request-id") == f"k-{i:02d}"
            remember_token(got[0][2].decode())
        b1, a1 = counts(srv)
        # The live connections' answers all went in groups (a reset one's too,
        # when its reset reached the socket only after the send).
        assert CONNS // 2 <= a1 - a0 <= CONNS, f"{a1 - a0} answers sent in groups"
        # Still serving, on a new connection.
        s = connect(srv.port, 1)[0]
        s.sendall(token_bytes(key))
        got, _ = recv_responses(s, 1)
        assert len(got) == 1 and got[0][0] == 200
        remember_token(got[0][2].decode())
        s.close()
        assert srv.proc.poll() is None
    finally:
        for s in conns:
            s.close()


@pytest.mark.parametrize("first", [True, False], ids=["first-request", "later-request"])
def test_half_closed_after_its_request_still_answered(keyed, start_server, first):
    """A client sends its request and shuts its sending side (FIN) at once,
    tokend stopped meanwhile, so that the request and the end of the stream
    wait together: the answer is owed, reading is left on, and the end of the
    stream must not close the connection before the answer goes. On a new
    connection libevent reads the first request; after a fast-lane answer,
    conn.c reads the socket itself. Twelve connections make the pass a group."""
    srv = start(keyed, start_server, 8)
    key = cached_key(keyed, srv, "batch-h-" + ("1" if first else "2"))
    conns = connect(srv.port, 12)
    try:
        if not first:
            for s in conns:                      # one answer each: conn.c reads them now
                s.sendall(token_bytes(key))
                got, _ = recv_responses(s, 1)
                assert len(got) == 1 and got[0][0] == 200
                remember_token(got[0][2].decode())
        stop(srv)
        try:
            for i, s in enumerate(conns):
                s.sendall(token_bytes(key, extra=f"X-Request-Id: h-{i:02d}\r\n".encode()))
                s.shutdown(socket.SHUT_WR)
            time.sleep(0.2)
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        for i, s in enumerate(conns):
            got, _ = recv_responses(s, 1)
            assert len(got) == 1, f"connection {i}: no answer after its FIN"
            assert got[0][0] == 200 and got[0][1].get("x-request-id") == f"h-{i:02d}"
            remember_token(got[0][2].decode())
    finally:
        for s in conns:
            s.close()


@pytest.mark.parametrize("value", ["0", "257", "-1", "eight", "8x"])
def test_bad_values_refused_at_load(keyed, value):
    cfg = keyed.write_config([f"send_batch = {value}", f"pepper_file = {keyed.pepper_file}"])
    r = keyed.run("config", config=cfg, check=1)
    assert "send_batch" in r.stderr, r.stderr


def test_default_and_a_value_shown(keyed):
    import json
    r = keyed.run("--json", "config", config=False, check=0)
    settings = json.loads(r.stdout)["settings"]
    assert settings["send_batch"]["value"] == 8
    assert settings["send_uring"]["value"] is True
    cfg = keyed.write_config(["send_batch = 1", "send_uring = off", f"pepper_file = {keyed.pepper_file}"])
    out = keyed.run("config", config=cfg, check=0).stdout
    assert "send_batch = 1" in out and "send_uring = no" in out, out


def test_answer_owed_after_the_loop_stopped_is_sent(tokend, start_server):
    """A token request waits for its key's lookup (api_keys locked) when
    SIGTERM comes; the loop stops at shutdown_timeout (1 s) with the request
    under way; the lock goes at 1.5 s and the lookup's result is drained from
    the mailbox after the loop: its answer is owed to a pass that will never
    end, and must still be sent before the connections are closed."""
    import psycopg2
    tokend.account("acme")
    tokend.scopes("read")
    srv = start_server(tokend, workers="1", db_timeout="5s", shutdown_timeout="1s", check_exit=False)
    key = new_key(tokend, "acme", "late", "read")          # not cached: a lookup
    lock = psycopg2.connect(tokend.db_url)
    s = None
    try:
        lock.cursor().execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(token_bytes(key))
        time.sleep(0.3)                                    # the lookup waits on the lock
        os.kill(srv.proc.pid, signal.SIGTERM)
        time.sleep(1.5)                                    # the loop has stopped
    finally:
        lock.rollback()
        lock.close()
    got, data = recv_responses(s, 1, timeout=15)
    s.close()
    assert len(got) == 1, f"no answer, only {data[:200]!r}"
    status, head, body = got[0]
    assert status in (200, 503), (status, body[:300])
    assert head.get("connection", "").lower() == "close"
    if status == 200:
        remember_token(body.decode())
    assert wait_until(lambda: srv.proc.poll() is not None, timeout=10), "tokend did not exit"


# -- a group in one system call (send_uring) -------------------------------------------

def traced(srv, tmp_path, fn):
    """The answers tokend sent with sendto (not its database connections'
    messages: only those starting "HTTP/1.1 ") and its io_uring_enter calls
    (only the workers make them) during fn()."""
    import re
    text = strace_calls(srv.proc.pid, "sendto,io_uring_enter", tmp_path / "group.strace", fn)
    return len(re.findall(r'sendto\(\d+, "HTTP/1\.1 ', text)), text.count("io_uring_enter(")


def require_uring(srv):
    """Skip where this machine refuses io_uring (the start log says so)."""
    states = [e.get("state") for e in srv.log_events("send.uring")]
    if states and states[0] != "on":
        pytest.skip(f"io_uring is not available here: {srv.log_events('send.uring')[0].get('reason')}")


@pytest.mark.parametrize("uring", ["on", "off"])
def test_a_group_is_one_system_call(keyed, start_server, tmp_path, uring):
    """Seen by strace: the three groups of a pass of 24 answers are three
    io_uring_enter calls and no send(2) at all (send_uring = on); with it off,
    24 sends and no io_uring_enter."""
    srv = start(keyed, start_server, 8, send_uring=uring)
    if uring == "on":
        require_uring(srv)
    key = cached_key(keyed, srv, "batch-s-" + uring)
    conns = connect(srv.port, CONNS)
    tokens = []

    def group():
        all_at_once(srv, conns, [token_bytes(key)] * CONNS)
        for i, s in enumerate(conns):
            got, _ = recv_responses(s, 1)
            assert len(got) == 1 and got[0][0] == 200, f"connection {i}: {got}"
            tokens.append(got[0][2].decode())
    try:
        sends, enters = traced(srv, tmp_path, group)
    finally:
        for s in conns:
            s.close()
        for t in tokens:
            remember_token(t)
    assert len(tokens) == CONNS
    if uring == "on":
        assert (sends, enters) == (0, CONNS // 8), f"{sends} sendto, {enters} io_uring_enter"
    else:
        assert (sends, enters) == (CONNS, 0), f"{sends} sendto, {enters} io_uring_enter"


def fill_and_drain(srv, n, nconn, rnd):
    """One round: nconn connections (4 KiB receive buffers) pipeline n fillers
    each and read nothing until tokend stops answering (every connection's
    answers stalled: the buffers are full), then each reads everything. Checks
    that every answer arrived, whole and in its connection's order; returns the
    (calls, short) counters' growth up to the stall."""
    import threading
    from test_fastlane_turns import filler, read_all, small_rcvbuf_conn
    conns = [small_rcvbuf_conn(srv.port) for _ in range(nconn)]
    for s in conns:
        s.settimeout(60)
    payloads = [[b"".join(filler(i, f"q{rnd}{c}-{i:05d}") for i in range(b, b + 8)) for b in range(0, n, 8)]
                for c in range(nconn)]

    def pipeline(c):
        try:
            for chunk in payloads[c]:
                conns[c].sendall(chunk)
        except OSError:
            pass                                        # checked by the answers
    senders = [threading.Thread(target=pipeline, args=(c,), daemon=True) for c in range(nconn)]
    u0 = uring_calls(srv)
    f0 = metric(srv.metrics(), "tokend_requests_fast_lane_total")
    results = [None] * nconn
    try:
        for t in senders:
            t.start()
        last, still = -1, 0
        deadline = time.monotonic() + 60
        while still < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            now = metric(srv.metrics(), "tokend_requests_fast_lane_total")
            still = still + 1 if now == last else 0
            last = now
        stalled = uring_calls(srv)
        assert last - f0 < n * nconn, "every answer went out at once: the buffers never filled"

        def reader(c):
            results[c] = parse_raw_responses(read_all(conns[c]))
        readers = [threading.Thread(target=reader, args=(c,), daemon=True) for c in range(nconn)]
        for t in readers:
            t.start()
        for t in readers + senders:
            t.join(90)
    finally:
        for s in conns:
            s.close()
    for c in range(nconn):
        got = results[c]
        assert got is not None and len(got) == n, f"round {rnd}, connection {c}: {len(got or [])} answers of {n}"
        assert all(st == 400 for st, _, _ in got)
        ids = [h.get("x-request-id") for _, h, _ in got]
        assert ids == [f"q{rnd}{c}-{i:05d}" for i in range(n)], f"round {rnd}, connection {c}: out of order"
    return stalled[0] - u0[0], stalled[1] - u0[1]


@pytest.mark.slow
@pytest.mark.parametrize("uring", ["on", "off"])
def test_sockets_full_inside_a_group(keyed, start_server, uring):
    """Four connections pipeline thousands of cheap fast-lane requests
    (test_fastlane_turns' fillers: 400s, no signature) and read nothing until
    tokend's sends stall: the answers several of them owe in one pass go out
    together, and a group's call meets full sockets (short counts, EAGAIN).
    Then each reads everything: every answer arrives, whole and in its
    connection's order. With send_uring on, the counter of answers a group's
    call left unsent shows that the ring met that case; whether the answer
    that fills a socket was sent in a group or alone is the scheduler's, so up
    to four rounds are run until one shows it (each round checks every answer)."""
    srv = start(keyed, start_server, 8, send_uring=uring)
    if uring == "on":
        require_uring(srv)
    calls = short = 0
    for rnd in range(4 if uring == "on" else 1):
        c, sh = fill_and_drain(srv, 16000, 4, rnd)     # ~5 MB of answers each: more than the buffers hold
        calls, short = calls + c, short + sh
        if short:
            break
    print(f"send_uring {uring}: {rnd + 1} round(s), {calls:.0f} io_uring calls, "
          f"{short:.0f} answers left partly or wholly unsent by one")
    if uring == "on":
        assert calls > 0 and short > 0, f"{calls} io_uring calls, {short} answers left unsent in them"
    else:
        assert (calls, short) == (0, 0)
    assert srv.proc.poll() is None


def denysys():
    from test_worker_cpus import DENYSYS
    if not DENYSYS.is_file():
        pytest.skip(f"{DENYSYS} not built")
    return str(DENYSYS)


@pytest.mark.parametrize("refused", ["io_uring_setup", "io_uring_enter"])
def test_io_uring_refused(keyed, start_server, refused):
    """io_uring refused by a seccomp filter (build/denysys): at setup, as
    Docker's default profile refuses it, tokend says so at start and sends
    each answer with send(2); at each call, after a ring was set up, the first
    group's call fails, tokend says so once and sends that group and every
    later one with send(2). Either way every answer goes to its own
    connection, in the same groups, and no io_uring call is counted."""
    srv = start(keyed, start_server, 8, wrap=[denysys(), refused])
    events = srv.log_events("send.uring")
    if refused == "io_uring_setup":
        assert [e.get("state") for e in events] == ["unavailable: each answer sent with send(2)"], events
        assert "Operation not permitted" in events[0].get("reason", ""), events
    else:
        require_uring(srv)
        assert [e.get("state") for e in events] == ["on"], events
    key = cached_key(keyed, srv, "batch-d-" + refused)
    for rnd in range(2):
        conns = connect(srv.port, CONNS)
        try:
            b0, a0 = counts(srv)
            all_at_once(srv, conns, [token_bytes(key, extra=f"X-Request-Id: d{rnd}-{i:02d}\r\n".encode())
                                     for i in range(CONNS)])
            for i, s in enumerate(conns):
                got, _ = recv_responses(s, 1)
                assert len(got) == 1 and got[0][0] == 200, f"round {rnd}, connection {i}: {got}"
                assert got[0][1].get("x-request-id") == f"d{rnd}-{i:02d}"
                remember_token(got[0][2].decode())
            b1, a1 = counts(srv)
            assert (a1 - a0, b1 - b0) == (CONNS, CONNS // 8)
        finally:
            for s in conns:
                s.close()
    assert uring_calls(srv) == (0, 0)
    off = srv.log_events("send.uring_off")
    assert len(off) == (1 if refused == "io_uring_enter" else 0), off
    if off:
        assert off[0].get("reason") == "io_uring_enter: Operation not permitted", off
    assert srv.proc.poll() is None


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_send_uring_bad_values_refused(keyed, value):
    cfg = keyed.write_config([f"send_uring = {value}", f"pepper_file = {keyed.pepper_file}"])
    r = keyed.run("config", config=cfg, check=1)
    assert "send_uring" in r.stderr, r.stderr
