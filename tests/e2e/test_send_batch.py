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
"""
import os
import signal
import socket
import time

import pytest

from support.http import metric, parse_raw_responses
from support.registry import remember_token
from support.server import new_key
from support.util import wait_until

from test_fastlane import recv_responses, token_bytes

pytestmark = pytest.mark.binary

BATCHES = "tokend_send_batches_total"
BATCHED = "tokend_send_batched_answers_total"
CONNS = 24


@pytest.fixture(scope="module")
def keyed(module_tokend):
    t = module_tokend
    t.account("acme", "--key-limit", "100")
    t.scopes("read")
    return t


def start(keyed, start_server, batch):
    srv = start_server(keyed, workers="1", send_batch=str(batch))
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


def test_a_pass_of_requests_answered_in_groups(keyed, start_server):
    srv = start(keyed, start_server, 8)
    key = cached_key(keyed, srv, "batch-a")
    conns = connect(srv.port, CONNS)
    try:
        b0, a0 = counts(srv)
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
    assert json.loads(r.stdout)["settings"]["send_batch"]["value"] == 8
    cfg = keyed.write_config(["send_batch = 1", f"pepper_file = {keyed.pepper_file}"])
    assert "send_batch = 1" in keyed.run("config", config=cfg, check=0).stdout


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
