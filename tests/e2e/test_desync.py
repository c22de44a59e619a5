"""Issue 10, finding 4: HTTP desync shapes, HEAD responses, oversized headers.

Every malformed request is sent over a raw socket followed by a second,
well-formed request on the same connection. The answer must be exactly one
400 (or 431) with `Connection: close`, the connection closed, and the second
request never answered: "what the next request on this connection sees" is
nothing. SECURITY.md rows A5, A6.
"""
import re
import socket
import time

import pytest

from support.http import metric, parse_raw_responses, raw_exchange

pytestmark = pytest.mark.binary

NEXT = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"     # 404 if it were ever run
STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3}) [A-Z]")


@pytest.fixture(scope="module")
def srv(module_tokend, module_start_server):
    module_tokend.account("acme")
    return module_start_server(module_tokend, header_timeout="3s", body_timeout="3s", idle_timeout="3s")


def statuses(data):
    return [int(s) for s in STATUS_RE.findall(data)]


def refused(port, req, status=400):
    """Send `req` + NEXT; assert one `status` answer with Connection: close, then the close."""
    data, closed = raw_exchange(port, req + NEXT)
    assert statuses(data) == [status], f"{req!r} got {data!r}"
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert b"\r\nconnection: close" in head, data
    assert closed, f"{req!r}: the connection stayed open"
    return data


def read_until_close(s):
    """Every byte the server sends until it closes the socket (a reset ends it too)."""
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except ConnectionResetError:
        pass
    s.close()
    return data


def smuggle(n):
    """A body of n bytes that is itself a request (the shape a desync relies on)."""
    inner = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    return inner + b"x" * (n - len(inner)) if n >= len(inner) else inner[:n]


@pytest.mark.parametrize("method", ["HEAD", "GET", "DELETE", "OPTIONS", "TRACE"])
def test_body_on_bodiless_method_refused(srv, method):
    """HEAD with Content-Length: evhttp never reads a HEAD body, so it was run
    as the next request. Any body on a method that carries none: 400 + close."""
    body = smuggle(35)
    req = f"{method} /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\n\r\n".encode() + body
    data = refused(srv.port, req)
    assert b"body" in data
    # Content-Length: 0 is no body: served.
    data, _ = raw_exchange(srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                           b"Connection: close\r\n\r\n")
    assert statuses(data) == [200], data


SHAPES = {
    "te_space_before_colon": b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n"
                             b"0\r\n\r\n",
    "cl_space_before_colon": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 34\r\n\r\n",
    "cl_tab_before_colon": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length\t: 34\r\n\r\n",
    "cl_plus": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
    "cl_minus_zero": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n",
    "cl_list": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
    "cl_inner_space": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\nabc",
    "cl_hex": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc",
    "cl_empty": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
    "cl_huge": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "nul_in_value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "ctl_in_value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "del_in_value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
    "bare_cr_in_value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "space_in_name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n",
    "nontoken_name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n",
    "empty_name": b"GET /healthz HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n",
    "no_colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nGarbage\r\n\r\n",
    "nul_in_name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-\x00A: b\r\n\r\n",
    "line_double_space": b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "line_extra_part": b"GET /healthz HTTP/1.1 x\r\nHost: x\r\n\r\n",
    "line_no_version": b"GET /healthz\r\nHost: x\r\n\r\n",
    "line_bad_version": b"GET /healthz HTTP/1.1x\r\nHost: x\r\n\r\n",
    "line_ctl_in_target": b"GET /heal\x01thz HTTP/1.1\r\nHost: x\r\n\r\n",
    "line_nul_in_target": b"GET /healthz\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "line_bad_method": b"G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "te_chunked_get": b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_malformed_request_refused_and_closed(srv, name):
    refused(srv.port, SHAPES[name])


def test_space_before_colon_cannot_smuggle_a_request(srv):
    """The issue's shape: `Content-Length : 34` was ignored by evhttp, so the body
    34 bytes were run as a request of their own."""
    req = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 34\r\n\r\n" + smuggle(34)
    data = refused(srv.port, req)
    assert b"/smuggled" not in data


def test_refused_in_a_pipeline(srv):
    """Pipelined: a good request, then a bad one, then a good one, all in one
    packet, then split across reads: the first is answered, the second refused,
    the third never run."""
    good = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    bad = SHAPES["cl_space_before_colon"] + smuggle(34)
    data, closed = raw_exchange(srv.port, good + bad + good)
    assert statuses(data) == [200, 400], data
    assert closed
    # The same bytes trickled in pieces that cut lines (and the CRLF) in two.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    whole = good + good + bad + good
    for i in range(0, len(whole), 7):
        try:
            s.sendall(whole[i:i + 7])
        except OSError:
            break
        time.sleep(0.01)
    data = read_until_close(s)
    assert statuses(data) == [200, 200, 400], data


def test_admin_endpoint_refuses_too(srv):
    req = b"DELETE /admin/v1/keys/tk_x HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\n\r\n" + smuggle(35)
    refused(srv.port, req)


def test_metrics_count_refusals(srv):
    before = metric(srv.metrics(), "tokend_requests_malformed_total")
    refused(srv.port, SHAPES["nul_in_value"])
    assert metric(srv.metrics(), "tokend_requests_malformed_total") == before + 1


@pytest.mark.parametrize("path", ["/healthz", "/.well-known/jwks.json", "/.well-known/oauth-authorization-server",
                                  "/metrics", "/nowhere", "/oauth2/token", "/admin/v1/account"])
def test_head_has_no_body(srv, path):
    """A HEAD answer is headers only (with the Content-Length a GET would have,
    or none): the bytes after it are exactly the pipelined GET's answer."""
    req = (f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
           f"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()
    data, closed = raw_exchange(srv.port, req)
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 "), data
    assert rest.startswith(b"HTTP/1.1 200 "), f"HEAD {path} sent body bytes: {data!r}"
    get = parse_raw_responses(rest)
    assert len(get) == 1, rest
    assert len(rest.partition(b"\r\n\r\n")[2]) == int(get[0][1]["content-length"]), rest
    # The Content-Length, when there is one, is the GET's.
    hdrs = {ln.split(b":", 1)[0].strip().lower(): ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")[1:]}
    if path in ("/healthz", "/.well-known/jwks.json") and b"content-length" in hdrs:
        g, _ = raw_exchange(srv.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert int(hdrs[b"content-length"]) == len(parse_raw_responses(g)[0][2])


def test_oversized_headers_answer_431(srv):
    # The head limit is max_header_size, never below 10,240 bytes (any token fits).
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 12000 + b"\r\n\r\n"
    data = refused(srv.port, req, 431)
    assert b"<html" not in data.lower()
    assert b"Request Header Fields Too Large" in data
    # Many small header lines adding up, and a huge request line.
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 60) for i in range(200))
    refused(srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", 431)
    refused(srv.port, b"GET /" + b"a" * 12000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431)
    # Headers sent without their end yet (no blank line): answered as soon as
    # they pass the limit, not at the header deadline.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    t0 = time.monotonic()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 12000)
    data = read_until_close(s)
    assert statuses(data) == [431] and time.monotonic() - t0 < 2, data
