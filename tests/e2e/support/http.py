"""HTTP requests to a server on 127.0.0.1 (access tokens in answers are recorded),
raw exchanges, and Prometheus metrics parsing."""
import base64
import http.client
import json
import re
import socket
import time
import urllib.parse

from support.registry import remember_token

class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.header_list = headers                      # [(name, value)] as received
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.elapsed = elapsed

    def header_all(self, name):
        return [v for k, v in self.header_list if k.lower() == name.lower()]

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"response body is not JSON: {self.body[:300]!r}")

    def __repr__(self):
        return f"<HTTP {self.status} {self.header_list} {self.body[:400]!r}>"


def basic(client_id, secret, encode=True):
    """An Authorization: Basic value, with RFC 6749 §2.3.1 form-encoding of id and secret."""
    if encode:
        client_id = urllib.parse.quote_plus(client_id)
        secret = urllib.parse.quote_plus(secret)
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def http_request(port, method, path, body=None, headers=None, timeout=10.0, conn=None):
    """One HTTP/1.1 request to 127.0.0.1:port; returns Resp. `body` str or bytes."""
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if isinstance(body, str):
        body = body.encode()
    t0 = time.monotonic()
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        resp = Resp(r.status, r.getheaders(), data, time.monotonic() - t0)
    finally:
        if own:
            c.close()
    if resp.status == 200 and b"access_token" in data:
        try:
            remember_token(json.loads(data).get("access_token"))
        except ValueError:
            pass
    return resp


FORM = "application/x-www-form-urlencoded"


def token_request(port, form=None, *, auth=None, headers=None, raw_body=None, timeout=10.0, conn=None):
    """POST /oauth2/token. `form`: dict or list of pairs (urlencoded); `auth`: (id, secret) for Basic."""
    h = {"Content-Type": FORM}
    if auth is not None:
        h["Authorization"] = basic(*auth)
    h.update(headers or {})
    body = raw_body if raw_body is not None else urllib.parse.urlencode(
        form if form is not None else {"grant_type": "client_credentials"})
    return http_request(port, "POST", "/oauth2/token", body, h, timeout=timeout, conn=conn)


def raw_exchange(port, data, timeout=5.0, read_until_close=True):
    """Send raw bytes; return (bytes received, closed_by_server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            chunks.append(b)
            if not read_until_close:
                break
        return b"".join(chunks), closed
    finally:
        s.close()


def parse_raw_responses(data):
    """Split raw bytes into [(status, {headers lowercased}, body)] for Content-Length framed responses."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        data = rest[n:]
    return out


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels)): float}; also checks the format."""
    vals = {}
    types = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            m = re.match(r"# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$", line)
            assert m, f"bad metrics comment line: {line!r}"
            if m.group(1) == "TYPE":
                assert m.group(3) in ("counter", "gauge", "histogram", "summary", "untyped"), line
                types[m.group(2)] = m.group(3)
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ([-+0-9.eE]+|\+Inf|NaN)$', line)
        assert m, f"bad metrics sample line: {line!r}"
        labels = frozenset()
        if m.group(3):
            pairs = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3))
            labels = frozenset(pairs)
        vals[(m.group(1), labels)] = float(m.group(4))
    vals["__types__"] = types
    return vals


def metric(vals, name, **labels):
    return vals.get((name, frozenset(labels.items())), 0.0)
