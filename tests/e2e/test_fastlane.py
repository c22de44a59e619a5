"""Issue 16: the HTTP fast lane for POST /oauth2/token (server/http/conn.c,
fastlane.c, req.c).

A token request whose head and body arrive together, HTTP/1.1, is read and
answered by the connection layer without evhttp, through the same handler as
every other request. These tests hold it to evhttp's behaviour: the same
answer header fields (an HTTP/1.0 request still goes through evhttp), order
kept over pipelined requests (fast lane and evhttp mixed), requests split at
any byte, a slow reader (partial writes), a client gone while a database
lookup is pending, and the counter that says which lane served a request.
"""
import base64
import socket
import time
import urllib.parse

import pytest

from support.http import metric, parse_raw_responses, raw_exchange
from support.registry import remember_token
from support.server import new_key

pytestmark = pytest.mark.binary

FAST = "tokend_requests_fast_lane_total"


class NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.fixture(scope="module")
def env(module_tokend, module_start_server):
    t = module_tokend
    t.account("acme")
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
