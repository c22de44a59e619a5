"""
End-to-end tests of the example resource server (issue 5, point 2):
examples/resource_server.c, built as `resource-server` next to tokend, run
against a live tokend.

  * GET /hello with a valid token: 200 with sub, client_id, scope, acct.
  * Missing, malformed, tampered, alg-none, wrong-issuer or wrong-audience
    tokens: 401 invalid_token with a Bearer challenge; a missing scope: 403
    insufficient_scope.
  * Signing-key rotation: tokend restarted with a new key (listed first, or made
    active with signing_key_active); the example meets the unknown kid, refetches
    the JWKS once (concurrent requests share the fetch) and accepts the token;
    older tokens keep working.
  * The refetch is rate-limited (--refresh-min): inside the window an unknown
    kid (a real new key or a forged kid) is refused 401 without a fetch; after
    the window one fetch is allowed again. Counted from the example's stderr
    ("JWKS loaded").
  * Under the sanitized build the example is sanitized too: its stderr must hold
    no sanitizer report and it must exit 0 on SIGTERM.
"""
import base64
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import jwt
import pytest

from support.http import http_request
from support.keys import thumbprint
from support.registry import SANITIZER_MARKERS, record_output
from support.server import get_token, new_key
from support.tokend import base_env
from support.util import TOKEND_BIN, free_port, wait_until

pytestmark = pytest.mark.binary

RS_BIN = TOKEND_BIN.parent / "resource-server"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def kid_of(tok):
    return jwt.get_unverified_header(tok)["kid"]


def with_header(tok, **changes):
    h, p, s = tok.split(".")
    header = json.loads(b64u_decode(h))
    header.update(changes)
    return ".".join([b64u(json.dumps(header, separators=(",", ":")).encode()), p, s])


def with_claims(tok, **changes):
    h, p, s = tok.split(".")
    claims = json.loads(b64u_decode(p))
    claims.update(changes)
    return ".".join([h, b64u(json.dumps(claims, separators=(",", ":")).encode()), s])


def forged_kid(tok):
    """The token with a kid no JWKS holds (what an attacker sends to make us refetch)."""
    return with_header(tok, kid="forged-" + uuid.uuid4().hex)


# ---------------------------------------------------------------------------
# The example process
# ---------------------------------------------------------------------------
class ResourceServer:
    def __init__(self, tmp, jwks_url, issuer, *, audience=None, scope=None, refresh_min=None, extra=()):
        self.port = free_port()
        self.cmd = [str(RS_BIN), "--port", str(self.port), "--jwks-url", jwks_url, "--issuer", issuer]
        if audience is not None:
            self.cmd += ["--audience", audience]
        if scope is not None:
            self.cmd += ["--scope", scope]
        if refresh_min is not None:
            self.cmd += ["--refresh-min", str(refresh_min)]
        self.cmd += list(extra)
        tag = uuid.uuid4().hex[:8]
        self.err_path = Path(tmp) / f"rs-{tag}.err"
        self.out_path = Path(tmp) / f"rs-{tag}.out"
        self._err = open(self.err_path, "w")
        self._out = open(self.out_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=base_env())
        self.returncode = None
        self.started_at = time.monotonic()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"resource-server exited with {self.proc.returncode}:\n{self.stderr()}")
            return "listening on" in self.stderr()
        wait_until(ready, timeout=30, interval=0.02, what="resource-server listening")

    def stderr(self):
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def loads(self):
        """How many times the example loaded a JWKS (startup included)."""
        return self.stderr().count("JWKS loaded")

    def fetch_failures(self):
        return self.stderr().count("JWKS fetch failed")

    def hello(self, token=None, headers=None, path="/hello"):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        return http_request(self.port, "GET", path, headers=h, timeout=10)

    def stop(self):
        if self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        self._err.close()
        self._out.close()
        # Recorded like tokend's outputs: the e2e guard scans them for sanitizer reports.
        record_output(self.cmd, self.returncode, self.out_path.read_text(errors="replace"), self.stderr(),
                      kind="spawn")
        return self.returncode


@pytest.fixture
def start_rs(workdir):
    if not (RS_BIN.is_file() and os.access(RS_BIN, os.X_OK)):
        pytest.fail(f"the example resource-server is not built next to tokend: {RS_BIN} "
                    f"(scripts/build.sh builds it)", pytrace=False)
    started = []

    def start(srv, **kw):
        kw.setdefault("audience", srv.issuer)
        rs = ResourceServer(workdir, srv.base + "/.well-known/jwks.json", srv.issuer, **kw)
        started.append(rs)
        return rs

    yield start
    problems = []
    for rs in started:
        rc = rs.stop()
        err = rs.stderr()
        for m in SANITIZER_MARKERS:
            if m in err:
                problems.append(f"sanitizer report from resource-server:\n{err[-6000:]}")
                break
        if rc != 0:
            problems.append(f"resource-server did not exit 0 on SIGTERM (exit {rc}):\n{err[-2000:]}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def unauthorized(r, www_prefix="Bearer"):
    assert r.status == 401, r
    assert r.headers.get("www-authenticate", "").startswith(www_prefix), r
    assert r.headers.get("cache-control") == "no-store", r
    return r.json()


def invalid_token(r):
    body = unauthorized(r)
    assert body.get("error") == "invalid_token", r
    assert r.headers.get("www-authenticate") == 'Bearer error="invalid_token"', r
    return body


def restart(start_server, old, tokend, keys, active=None):
    """Stop tokend and start it again on the same port and issuer with other signing keys."""
    old.stop()
    return start_server(tokend, keys=keys, port=old.port, issuer=old.issuer, active=active)


@pytest.fixture
def acme(tokend):
    tokend.account("acme", "--key-limit", "20")
    tokend.scopes("orders:read", "orders:write")
    return tokend


# ===========================================================================
# Valid, invalid, insufficient scope
# ===========================================================================
def test_example_protects_its_route(acme, start_server, start_rs):
    t = acme
    srv = start_server(t)
    full = new_key(t, "acme", "full", "orders:read orders:write", "--subject", "svc-orders")
    narrow = new_key(t, "acme", "narrow", "orders:read")
    rs = start_rs(srv, scope="orders:write")
    assert rs.loads() == 1, rs.stderr()

    tok = get_token(srv, full)
    r = rs.hello(tok)
    assert r.status == 200, r
    assert r.json() == {"hello": "acme:svc-orders", "client_id": full["client_id"],
                        "scope": "orders:read orders:write", "acct": "acme"}, r
    # Without a subject, sub is the key ID.
    rs_any = start_rs(srv)
    r = rs_any.hello(get_token(srv, narrow))
    assert r.status == 200 and r.json()["hello"] == narrow["client_id"], r

    # Missing scope: 403 insufficient_scope.
    r = rs.hello(get_token(srv, narrow))
    assert r.status == 403, r
    assert r.json()["error"] == "insufficient_scope", r
    assert r.headers.get("www-authenticate") == 'Bearer error="insufficient_scope"', r
    # A narrower token of the full key: 403 as well.
    r = rs.hello(get_token(srv, full, scope="orders:read"))
    assert r.status == 403, r

    # No token, another scheme, an empty bearer: 401 with a Bearer challenge.
    assert unauthorized(rs.hello())["error"] == "invalid_token"
    assert unauthorized(rs.hello(headers={"Authorization": "Basic Zm9vOmJhcg=="}))["error"] == "invalid_token"
    unauthorized(rs.hello(""))
    # Tampered, truncated, alg none, forged scope: 401 invalid_token.
    h, p, s = tok.split(".")
    sig = bytearray(b64u_decode(s))
    sig[10] ^= 0x01
    bad = {
        "tampered payload": with_claims(tok, sub="admin"),
        "forged scope": with_claims(get_token(srv, narrow), scope="orders:read orders:write"),
        "tampered signature": ".".join([h, p, b64u(bytes(sig))]),
        "truncated": tok[:-5],
        "alg none": ".".join([with_header(tok, alg="none").split(".")[0], p, ""]),
        "garbage": "garbage",
        "expired-looking exp": with_claims(tok, exp=1),
    }
    for what, b in bad.items():
        body = invalid_token(rs.hello(b))
        assert "error_description" in body, (what, body)
    # 404 elsewhere.
    assert rs.hello(tok, path="/other").status == 404
    # None of those made it refetch (their kid is known).
    assert rs.loads() == 1, rs.stderr()


def test_example_refuses_a_bad_leeway(start_rs):
    # start_rs: fails (never skips) when the example is not built. Refused before any fetch.
    for bad in ("61", "-1", "x", "", "5s", "99999999999999999999"):
        cmd = [str(RS_BIN), "--port", str(free_port()), "--jwks-url", "http://127.0.0.1:1/jwks",
               "--issuer", "http://127.0.0.1:1", "--leeway", bad]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=base_env(),
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert "--leeway must be 0..60 seconds" in r.stderr, (bad, r.stderr)


def test_example_issuer_and_audience(acme, start_server, start_rs):
    t = acme
    srv = start_server(t)
    k = new_key(t, "acme", "aud", "orders:read", "--audience", "https://api.example.com")
    plain = new_key(t, "acme", "plain", "orders:read")
    tok_api = get_token(srv, k)                       # aud https://api.example.com
    tok_default = get_token(srv, plain)               # aud = the issuer
    rs_api = start_rs(srv, audience="https://api.example.com")
    assert rs_api.hello(tok_api).status == 200
    invalid_token(rs_api.hello(tok_default))
    # The example configured for another issuer refuses tokend's tokens.
    rs_iss = ResourceServer(rs_api.err_path.parent, srv.base + "/.well-known/jwks.json",
                            "https://not-this-issuer.example", audience=srv.issuer)
    try:
        invalid_token(rs_iss.hello(tok_default))
    finally:
        rc = rs_iss.stop()
    assert rc == 0, rs_iss.stderr()
    for m in SANITIZER_MARKERS:
        assert m not in rs_iss.stderr(), rs_iss.stderr()


# ===========================================================================
# Key rotation: refetch on an unknown kid
# ===========================================================================
@pytest.mark.slow
def test_example_follows_key_rotation(acme, start_server, start_rs, signing_keys):
    t = acme
    k = new_key(t, "acme", "rotating", "orders:read")
    srv = start_server(t, keys=("es256",))
    rs = start_rs(srv, refresh_min=0)
    assert rs.loads() == 1
    tok_a = get_token(srv, k)
    assert kid_of(tok_a) == thumbprint(signing_keys["es256"])
    assert rs.hello(tok_a).status == 200

    # Rotation 1: a new key listed first (it signs from now on); the old one still published.
    srv = restart(start_server, srv, t, ("es256b", "es256"))
    tok_b = get_token(srv, k)
    assert kid_of(tok_b) == thumbprint(signing_keys["es256b"])
    # Several requests at once with the unknown kid: all accepted after one refetch.
    results = [None] * 8

    def call(i):
        results[i] = rs.hello(tok_b)
    ths = [threading.Thread(target=call, args=(i,)) for i in range(len(results))]
    for th in ths:
        th.start()
    for th in ths:
        th.join(30)
    assert all(r is not None and r.status == 200 for r in results), results
    assert rs.loads() == 2, f"expected exactly one refetch for the new kid:\n{rs.stderr()}"
    # The old token still verifies (its key is still in the JWKS); no further fetch.
    assert rs.hello(tok_a).status == 200
    assert rs.hello(tok_b).status == 200
    assert rs.loads() == 2, rs.stderr()

    # Rotation 2: a third key listed last, made active with signing_key_active.
    kid_c = thumbprint(signing_keys["es256_jwk"])
    srv = restart(start_server, srv, t, ("es256b", "es256", "es256_jwk"), active=kid_c)
    tok_c = get_token(srv, k)
    assert kid_of(tok_c) == kid_c
    r = rs.hello(tok_c)
    assert r.status == 200, r
    assert r.json()["client_id"] == k["client_id"]
    assert rs.loads() == 3, rs.stderr()
    for tok in (tok_a, tok_b, tok_c):
        assert rs.hello(tok).status == 200

    # A key dropped from the JWKS: after a refetch (triggered by a forged kid, with
    # --refresh-min 0 always allowed) tokens of the dropped key are refused.
    srv = restart(start_server, srv, t, ("es256_jwk",))
    invalid_token(rs.hello(forged_kid(tok_c)))
    assert rs.loads() == 4, rs.stderr()
    invalid_token(rs.hello(tok_a))          # its kid is unknown now: refetched, still unknown
    assert rs.hello(tok_c).status == 200
    assert rs.fetch_failures() == 0, rs.stderr()


@pytest.mark.slow
def test_example_refetch_is_rate_limited(acme, start_server, start_rs, signing_keys):
    t = acme
    k = new_key(t, "acme", "rate", "orders:read")
    srv = start_server(t, keys=("es256",))
    window = 2
    rs_short = start_rs(srv, refresh_min=window)
    rs_long = start_rs(srv, refresh_min=300)
    tok_a = get_token(srv, k)
    for rs in (rs_short, rs_long):
        assert rs.hello(tok_a).status == 200 and rs.loads() == 1
    # Inside both windows (the startup fetch counts): forged kids are refused without a fetch.
    for _ in range(5):
        for rs in (rs_short, rs_long):
            invalid_token(rs.hello(forged_kid(tok_a)))
    assert (rs_short.loads(), rs_long.loads()) == (1, 1), rs_short.stderr() + rs_long.stderr()

    # Let the short window pass, then rotate tokend's key.
    wait_until(lambda: time.monotonic() - rs_short.started_at > window + 0.3, timeout=window + 2,
               what="the short refresh window")
    srv = restart(start_server, srv, t, ("es256b", "es256"))
    tok_b = get_token(srv, k)
    assert kid_of(tok_b) == thumbprint(signing_keys["es256b"])
    # --refresh-min 2, window over: one refetch, accepted.
    assert rs_short.hello(tok_b).status == 200
    assert rs_short.loads() == 2, rs_short.stderr()
    # Right after that fetch, a second unknown kid is refused without a fetch.
    t_fetch = time.monotonic()
    for _ in range(5):
        invalid_token(rs_short.hello(forged_kid(tok_b)))
    assert time.monotonic() - t_fetch < window, "the test took too long to be inside the window"
    assert rs_short.loads() == 2, rs_short.stderr()
    # --refresh-min 300: even the real new kid waits for the window (401, no fetch);
    # tokens of the key it knows keep working.
    invalid_token(rs_long.hello(tok_b))
    assert rs_long.hello(tok_a).status == 200
    assert rs_long.loads() == 1, rs_long.stderr()
    # After the short window, an unknown kid may cause one fetch again (and is still refused).
    time.sleep(window + 0.2)
    invalid_token(rs_short.hello(forged_kid(tok_b)))
    assert rs_short.loads() == 3, rs_short.stderr()
    invalid_token(rs_short.hello(forged_kid(tok_b)))
    assert rs_short.loads() == 3, rs_short.stderr()
    assert rs_short.hello(tok_b).status == 200 and rs_short.hello(tok_a).status == 200


# ===========================================================================
# A slow JWKS endpoint: requests wait for the refetch; a client that gives up
# meanwhile does not hurt the example
# ===========================================================================
class SlowJwks:
    """An HTTP server on 127.0.0.1 serving tokend's current JWKS after `delay` seconds."""

    def __init__(self, upstream, delay):
        import http.server
        self.upstream, self.delay, self.hits = upstream, delay, 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                if outer.hits > 1:
                    time.sleep(outer.delay)
                r = http_request(outer.upstream.port, "GET", "/.well-known/jwks.json")
                self.send_response(r.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(r.body)))
                self.end_headers()
                self.wfile.write(r.body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.th = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.th.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_example_waiting_requests_survive_client_disconnect(acme, start_server, start_rs, signing_keys, workdir):
    import socket
    t = acme
    k = new_key(t, "acme", "slow", "orders:read")
    srv = start_server(t, keys=("es256",))
    slow = SlowJwks(srv, delay=1.0)
    rs = ResourceServer(workdir, slow.url, srv.issuer, audience=srv.issuer, refresh_min=0)
    try:
        tok_a = get_token(srv, k)
        assert rs.hello(tok_a).status == 200
        srv = restart(start_server, srv, t, ("es256b", "es256"))
        slow.upstream = srv
        tok_b = get_token(srv, k)
        # A client sends a token with the new kid and goes away while the example refetches.
        s = socket.create_connection(("127.0.0.1", rs.port), timeout=5)
        s.sendall(f"GET /hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok_b}\r\n\r\n".encode())
        time.sleep(0.2)
        s.close()
        # Meanwhile (fetch in flight) another client waits and gets its answer after the fetch.
        t0 = time.monotonic()
        r = rs.hello(tok_b)
        assert r.status == 200, r
        assert 0.4 < time.monotonic() - t0 < 5, "the request should have waited for the slow fetch"
        assert rs.loads() == 2, rs.stderr()
        # Still serving.
        assert rs.hello(tok_a).status == 200
        assert rs.proc.poll() is None, rs.stderr()
    finally:
        rc = rs.stop()
        slow.close()
    err = rs.stderr()
    for m in SANITIZER_MARKERS:
        assert m not in err, err[-6000:]
    assert rc == 0, f"resource-server exit {rc}:\n{err[-3000:]}"
