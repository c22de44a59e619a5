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
costs nothing but its own answer, and that the setting is checked at load.
"""
import os
import signal
import socket
import time

import pytest

from support.http import metric, parse_raw_responses
from support.registry import remember_token
from support.server import new_key

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


def connect(port, n):
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(s)
    return conns


def all_at_once(srv, conns, payloads):
    """Send payloads[i] on conns[i] while tokend is stopped, then continue it:
    its worker finds every request ready in one pass."""
    os.kill(srv.proc.pid, signal.SIGSTOP)
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
    key = new_key(keyed, "acme", "batch-a", "read")
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
        assert answers == CONNS, f"{answers} answers sent in groups, {CONNS} expected"
        assert groups * 8 >= answers, f"a group over send_batch: {answers} answers in {groups} groups"
        assert groups <= CONNS // 2, f"{answers} answers in {groups} groups: hardly grouped"
    finally:
        for s in conns:
            s.close()


def test_pipelined_requests_stay_in_order(keyed, start_server):
    """Three requests pipelined on each of 12 connections: each connection's
    answers in its own order, whatever groups they were sent in."""
    srv = start(keyed, start_server, 4)
    key = new_key(keyed, "acme", "batch-p", "read")
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
    key = new_key(keyed, "acme", "batch-1", "read")
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
    key = new_key(keyed, "acme", "batch-c", "read")
    conns = connect(srv.port, CONNS)
    try:
        os.kill(srv.proc.pid, signal.SIGSTOP)
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
