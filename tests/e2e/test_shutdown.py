"""Graceful stop: SIGTERM closes the listening socket and the connections that
are between requests, answers the requests under way (Connection: close), and
exits as soon as none is left, or at shutdown_timeout. A request that reached
the server before the signal is answered, even if its body comes after it.
"""
import http.client
import json
import os
import signal
import socket
import time

import pytest

from support.http import basic
from support.registry import remember_token
from support.server import new_key
from support.util import wait_until

pytestmark = pytest.mark.binary


def _closed_within(s, seconds):
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _read_response(s, timeout=10):
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        data += b
    return data


def test_sigterm_finishes_requests_under_way(tokend, start_server):
    tokend.account("acme")
    tokend.scopes("read")
    srv = start_server(tokend, workers="1", header_timeout="30s", body_timeout="30s", idle_timeout="60s",
                       shutdown_timeout="20s")
    key = new_key(tokend, "acme")
    # A: a keep-alive connection between requests.
    a = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    r = srv.token(key, conn=a)
    assert r.status == 200
    remember_token(r.json()["access_token"])
    # B: a token request whose body has not been sent yet.
    body = b"grant_type=client_credentials"
    b = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    b.sendall(("POST /oauth2/token HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\n"
               f"Authorization: {basic(key['client_id'], key['client_secret'])}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode())
    # C: connected, nothing sent.
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    time.sleep(0.3)

    os.kill(srv.proc.pid, signal.SIGTERM)
    t0 = time.monotonic()
    assert _closed_within(a.sock, 2), "a connection between requests was not closed at once"
    assert _closed_within(c, 2), "a silent connection was not closed at once"

    def refused():
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True
    assert wait_until(refused, timeout=2), "the listening socket stayed open"
    assert srv.proc.poll() is None, "exited with a request under way"

    # B completes its request after the signal and still gets its token.
    time.sleep(0.5)
    b.sendall(body)
    data = _read_response(b)
    b.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:300]
    assert b"connection: close" in head.lower(), head
    tok = json.loads(rest)["access_token"]
    remember_token(tok)
    assert wait_until(lambda: srv.proc.poll() is not None, timeout=3), "still running with nothing open"
    took = time.monotonic() - t0
    srv.stop()   # exit 0, server.stopped, no sanitizer report
    print(f"\ngraceful stop: idle connections closed at once, the request under way answered, "
          f"exit {took:.2f} s after SIGTERM")


def test_shutdown_timeout_bounds_the_drain(tokend, start_server):
    tokend.account("acme")
    srv = start_server(tokend, workers="1", header_timeout="60s", shutdown_timeout="1s")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n")   # never finished
    time.sleep(0.3)
    os.kill(srv.proc.pid, signal.SIGTERM)
    t0 = time.monotonic()
    assert wait_until(lambda: srv.proc.poll() is not None, timeout=5), "did not exit at shutdown_timeout"
    took = time.monotonic() - t0
    s.close()
    srv.stop()
    assert 0.8 <= took <= 3, took
    assert srv.log_lines("server.drain_timeout"), "the abandoned connection is not logged"
