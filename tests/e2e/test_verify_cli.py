"""
End-to-end tests of `tokend verify` (issue 5, point 3) against a real
`tokend serve`: tokens minted by the server are checked with the JWKS fetched
from it (--jwks-url) or read from a file (--jwks, offline).

Exit status: 0 valid (claims as JSON on stdout), 1 invalid (one line,
`tokend: invalid token: <reason>`, or a JWKS that cannot be obtained),
2 usage error. The token is never printed.

SECURITY.md rows: C1-C5, C7 (through the CLI; the exhaustive tables are in
tests/unit/test_verify.c).
"""
import json
import re

import pytest

from support.http import http_request
from support.keys import b64u, b64u_decode, tamper_payload, thumbprint
from support.server import get_token, new_key
from support.util import NS

pytestmark = pytest.mark.binary


@pytest.fixture(scope="module")
def env(module_tokend, module_start_server):
    t = module_tokend
    t.account("acme", "--name", "Acme", "--key-limit", "20")
    t.scopes("read", "write", "admin")
    srv = module_start_server(t, keys=("es256", "ed25519", "rs256"))
    key = new_key(t, "acme", "main", "read write")
    key_aud = new_key(t, "acme", "aud", "read", "--audience", "https://api.example.test")
    return NS(t=t, srv=srv, key=key, key_aud=key_aud,
              jwks_url=srv.base + "/.well-known/jwks.json")


def run_verify(t, *args, token=None, via="stdin"):
    """`tokend verify ARGS... TOKEN`; the token through stdin ('-') unless via='argv'."""
    if token is None:
        return t.run("verify", *args)
    if via == "argv":
        r = t.run("verify", *args, token)
    else:
        r = t.run("verify", *args, "-", input=token + "\n")
    out = r.stdout + r.stderr
    assert token not in out, "tokend verify printed the token"
    for seg in token.split(".")[1:]:
        if len(seg) >= 16:
            assert seg not in out, "tokend verify printed a token segment"
    return r


def expect_valid(r):
    assert r.returncode == 0, f"expected exit 0, got {r.returncode}: {r.stderr!r}"
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"stdout is not JSON: {r.stdout[:300]!r}")


def expect_invalid(r, match):
    assert r.returncode == 1, f"expected exit 1, got {r.returncode}: {r.stdout!r} {r.stderr!r}"
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, f"the reason must be one line: {err!r}"
    assert err.startswith("tokend: "), err
    assert re.search(match, err, re.I), f"reason should match /{match}/: {err!r}"
    assert r.stdout == "", f"nothing on stdout for a refusal: {r.stdout!r}"
    return err


# ---------------------------------------------------------------------------
# Valid tokens
# ---------------------------------------------------------------------------
def test_fresh_token_via_jwks_url(env):
    tok = get_token(env.srv, env.key)
    claims = expect_valid(run_verify(env.t, "--jwks-url", env.jwks_url, "--issuer", env.srv.issuer,
                                     token=tok))
    assert claims["iss"] == env.srv.issuer
    assert claims["client_id"] == env.key["client_id"]
    assert claims["sub"] == env.key["client_id"]
    assert claims["scope"] == "read write"
    assert claims["aud"] in (env.srv.issuer, [env.srv.issuer])
    assert claims["acct"] == "acme"
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] > claims["iat"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", claims["jti"])
    # The same as the payload the server signed.
    assert claims == json.loads(b64u_decode(tok.split(".")[1]))


def test_token_as_argument(env):
    tok = get_token(env.srv, env.key)
    expect_valid(run_verify(env.t, "--jwks-url", env.jwks_url, "--issuer", env.srv.issuer,
                            token=tok, via="argv"))


def test_audience_and_scopes_accepted(env):
    tok = get_token(env.srv, env.key)
    expect_valid(run_verify(env.t, "--jwks-url", env.jwks_url, "--issuer", env.srv.issuer,
                            "--audience", env.srv.issuer, "--scope", "read", "--scope", "write",
                            token=tok))
    expect_valid(run_verify(env.t, "--jwks-url", env.jwks_url, "--issuer", env.srv.issuer,
                            "--scope", "write read", "--leeway", "0", token=tok))
    tok = get_token(env.srv, env.key_aud)
    claims = expect_valid(run_verify(env.t, "--jwks-url", env.jwks_url, "--issuer", env.srv.issuer,
                                     "--audience", "https://api.example.test", token=tok))
    assert claims["aud"] in ("https://api.example.test", ["https://api.example.test"])


@pytest.mark.parametrize("which", ["ed25519", "rs256"])
def test_eddsa_and_rs256_tokens(env, start_server, signing_keys, which):
    srv = start_server(env.t, keys=("es256", "ed25519", "rs256"),
                       signing_key_active=thumbprint(signing_keys[which]))
    tok = get_token(srv, env.key)
    alg = json.loads(b64u_decode(tok.split(".")[0]))["alg"]
    assert alg == {"ed25519": "EdDSA", "rs256": "RS256"}[which]
    expect_valid(run_verify(env.t, "--jwks-url", srv.base + "/.well-known/jwks.json",
                            "--issuer", srv.issuer, token=tok))


def test_jwks_file_offline(env, start_server, tmp_path):
    """--jwks FILE needs no server: verify after the issuing server has stopped."""
    srv = start_server(env.t, keys=("es256",))
    tok = get_token(srv, env.key)
    r = http_request(srv.port, "GET", "/.well-known/jwks.json")
    assert r.status == 200, r
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(r.body)
    url = srv.base + "/.well-known/jwks.json"
    srv.stop()
    expect_valid(run_verify(env.t, "--jwks", jwks, "--issuer", srv.issuer, token=tok))
    # The URL is gone with the server: refused, with the reason.
    expect_invalid(run_verify(env.t, "--jwks-url", url, "--issuer", srv.issuer, token=tok),
                   r"cannot fetch the JWKS")
    # A JWKS of other keys: the kid is unknown.
    other = start_server(env.t, keys=("es256b",))
    r = http_request(other.port, "GET", "/.well-known/jwks.json")
    (tmp_path / "other.json").write_bytes(r.body)
    expect_invalid(run_verify(env.t, "--jwks", tmp_path / "other.json", "--issuer", srv.issuer,
                              token=tok), r"invalid token: .*kid")
    # Not a JWKS, or one holding a private key: refused before any token work.
    (tmp_path / "bad.json").write_text("{}")
    expect_invalid(run_verify(env.t, "--jwks", tmp_path / "bad.json", "--issuer", srv.issuer,
                              token=tok), r"keys")
    priv = json.loads(jwks.read_text())
    priv["keys"][0]["d"] = b64u(b"\x01" * 32)
    (tmp_path / "priv.json").write_text(json.dumps(priv))
    expect_invalid(run_verify(env.t, "--jwks", tmp_path / "priv.json", "--issuer", srv.issuer,
                              token=tok), r"private")
    expect_invalid(run_verify(env.t, "--jwks", tmp_path / "missing.json", "--issuer", srv.issuer,
                              token=tok), r"cannot open")


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------
def test_tampered_token(env):
    tok = get_token(env.srv, env.key)
    args = ("--jwks-url", env.jwks_url, "--issuer", env.srv.issuer)
    # A payload with more scope, the original signature.
    expect_invalid(run_verify(env.t, *args, token=tamper_payload(tok, scope="read write admin")),
                   r"^tokend: invalid token: .*signature")
    # Another subject.
    expect_invalid(run_verify(env.t, *args, token=tamper_payload(tok, sub="root")),
                   r"invalid token: .*signature")
    # One signature character changed; signature cut short.
    h, p, s = tok.split(".")
    s2 = s[:10] + ("A" if s[10] != "A" else "B") + s[11:]
    expect_invalid(run_verify(env.t, *args, token=".".join([h, p, s2])), r"invalid token: .*signature")
    expect_invalid(run_verify(env.t, *args, token=".".join([h, p, s[:-4]])),
                   r"invalid token: .*signature")
    # alg none, with the signature dropped.
    hdr = json.loads(b64u_decode(h))
    hdr["alg"] = "none"
    none = ".".join([b64u(json.dumps(hdr).encode()), p, ""])
    expect_invalid(run_verify(env.t, *args, token=none), r"invalid token: .*alg")
    # typ JWT instead of at+jwt (re-encoded header: signature no longer matches
    # either, but typ is checked first, before any signature work).
    hdr = json.loads(b64u_decode(h))
    hdr["typ"] = "JWT"
    expect_invalid(run_verify(env.t, *args, token=".".join([b64u(json.dumps(hdr).encode()), p, s])),
                   r"invalid token: .*typ")
    # Non-canonical base64url and structure.
    expect_invalid(run_verify(env.t, *args, token=h + "=." + p + "." + s), r"invalid token: .*base64url")
    expect_invalid(run_verify(env.t, *args, token=h + "." + p), r"invalid token: .*segments")
    expect_invalid(run_verify(env.t, *args, token="x" * 9000), r"invalid token: .*longer than 8192")


def test_wrong_issuer(env):
    tok = get_token(env.srv, env.key)
    for iss in ("https://evil.example", env.srv.issuer + "/", env.srv.issuer.upper()):
        err = expect_invalid(run_verify(env.t, "--jwks-url", env.jwks_url, "--issuer", iss, token=tok),
                             r"^tokend: invalid token: .*issuer")
        assert "evil" not in err


def test_wrong_audience(env):
    tok = get_token(env.srv, env.key)
    expect_invalid(run_verify(env.t, "--jwks-url", env.jwks_url, "--issuer", env.srv.issuer,
                              "--audience", "https://api.example.test", token=tok),
                   r"^tokend: invalid token: .*audience")
    tok = get_token(env.srv, env.key_aud)
    expect_invalid(run_verify(env.t, "--jwks-url", env.jwks_url, "--issuer", env.srv.issuer,
                              "--audience", env.srv.issuer, token=tok),
                   r"^tokend: invalid token: .*audience")


def test_missing_required_scope(env):
    tok = get_token(env.srv, env.key, scope="read")
    args = ("--jwks-url", env.jwks_url, "--issuer", env.srv.issuer)
    expect_valid(run_verify(env.t, *args, "--scope", "read", token=tok))
    err = expect_invalid(run_verify(env.t, *args, "--scope", "write", token=tok),
                         r"^tokend: invalid token: .*scope")
    assert "write" in err
    expect_invalid(run_verify(env.t, *args, "--scope", "read", "--scope", "admin", token=tok),
                   r"invalid token: .*scope")


def test_usage_errors(env):
    tok = get_token(env.srv, env.key)
    t = env.t
    for args in (
        ("--issuer", env.srv.issuer, "-"),                                   # no JWKS
        ("--jwks-url", env.jwks_url, "--jwks", "/dev/null", "--issuer", "x", "-"),
        ("--jwks-url", env.jwks_url, "-"),                                   # no issuer
        ("--jwks-url", env.jwks_url, "--issuer", env.srv.issuer),             # no token
        ("--jwks-url", env.jwks_url, "--issuer", env.srv.issuer, "-", "-"),  # two tokens
        ("--jwks-url", env.jwks_url, "--issuer", env.srv.issuer, "--leeway", "61", "-"),
        ("--jwks-url", env.jwks_url, "--issuer", env.srv.issuer, "--leeway", "x", "-"),
        ("--jwks-url", env.jwks_url, "--issuer", env.srv.issuer, "--scope", "a\"b", "-"),
        ("--jwks-url", "ftp://127.0.0.1/jwks", "--issuer", env.srv.issuer, "-"),
        ("--jwks-url", "not a url", "--issuer", env.srv.issuer, "-"),
        ("--jwks-url", env.jwks_url, "--issuer", env.srv.issuer, "--bogus", "-"),
    ):
        r = t.run("verify", *args, input=tok)
        assert r.returncode == 2, f"{args}: expected exit 2, got {r.returncode}: {r.stderr!r}"
        assert r.stderr.strip(), args
        assert tok not in r.stdout + r.stderr
    r = t.run("verify", "--help")
    assert r.returncode == 0 and "--jwks-url" in r.stdout


def test_jwks_url_failures(env):
    tok = get_token(env.srv, env.key)
    base = env.srv.base
    # 404, and a response that is not a JWKS.
    expect_invalid(run_verify(env.t, "--jwks-url", base + "/no/such/path", "--issuer", env.srv.issuer,
                              token=tok), r"cannot fetch the JWKS: HTTP status 404")
    expect_invalid(run_verify(env.t, "--jwks-url", base + "/.well-known/oauth-authorization-server",
                              "--issuer", env.srv.issuer, token=tok), r"JWKS")


def test_jwks_url_https(env, tmp_path):
    """https: the server certificate must be trusted (system CAs or $SSL_CERT_FILE)
    and match the host (an IP literal against its IP SANs)."""
    import http.server
    import ssl
    import subprocess
    import threading

    cert, key = tmp_path / "srv.crt", tmp_path / "srv.key"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    key.chmod(0o600)
    jwks = http_request(env.srv.port, "GET", "/.well-known/jwks.json").body

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    try:
        port = httpd.server_address[1]
        tok = get_token(env.srv, env.key)
        url = f"https://127.0.0.1:{port}/jwks.json"
        t = env.t
        r = t.run("verify", "--jwks-url", url, "--issuer", env.srv.issuer, "-", input=tok,
                  env={"SSL_CERT_FILE": str(cert)})
        expect_valid(r)
        r = t.run("verify", "--jwks-url", f"https://localhost:{port}/jwks.json", "--issuer",
                  env.srv.issuer, "-", input=tok, env={"SSL_CERT_FILE": str(cert)})
        expect_valid(r)
        # Untrusted certificate: refused, with the reason.
        r = t.run("verify", "--jwks-url", url, "--issuer", env.srv.issuer, "-", input=tok,
                  env={"SSL_CERT_FILE": "/dev/null", "SSL_CERT_DIR": str(tmp_path)})
        expect_invalid(r, r"cannot fetch the JWKS: TLS: server certificate not accepted")
        # https to a plain-http port.
        r = t.run("verify", "--jwks-url", f"https://127.0.0.1:{env.srv.port}/.well-known/jwks.json",
                  "--issuer", env.srv.issuer, "-", input=tok)
        expect_invalid(r, r"cannot fetch the JWKS: TLS")
    finally:
        httpd.shutdown()
        httpd.server_close()
