"""
End-to-end tests of the Token Status List (issue 15, point 3;
draft-ietf-oauth-status-list): a real tokend over HTTP, a real PostgreSQL,
the list decoded here in Python (zlib) and its signature checked with PyJWT
against the served JWKS.

  * Every token carries "status":{"status_list":{"idx":N,"uri":...}}; N is the
    key's status_idx, unique, allocated by the database, never reused.
  * GET /oauth2/status-list: a statuslist+jwt signed by a JWKS key, sub = the
    URI, iss, iat, exp, ttl, status_list {bits 1, lst = base64url(ZLIB)};
    application/statuslist+jwt, Cache-Control max-age=ttl, ETag / 304;
    advertised as status_list_uri in the metadata; also on the admin listener.
  * disable sets the key's bit and enable clears it; revoke, delete and expiry
    set it; a deleted key's bit stays set.
  * status_list = off: no claim, 404.
  * The measurement: after `tokend key revoke`, the example resource server
    (refreshing by the list's ttl) refuses the key's already-issued token
    within the refresh interval plus one second (figure printed).
  * `tokend verify` refuses a revoked key's token.
"""
import base64
import json
import time
import zlib

import jwt
import pytest

from support.http import http_request
from support.pg import db_query
from support.server import get_token, new_key
from support.util import wait_until

pytestmark = pytest.mark.binary


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def claims_of(tok):
    return json.loads(b64u_decode(tok.split(".")[1]))


def fetch_list(srv, port=None, headers=None):
    r = http_request(port or srv.port, "GET", "/oauth2/status-list", headers=headers)
    return r


def verified_list(srv):
    """The served list token, its signature checked with the JWKS; (claims, header, resp)."""
    r = fetch_list(srv)
    assert r.status == 200, r
    tok = r.body.decode()
    jwks = http_request(srv.port, "GET", "/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(tok)
    keys = {k["kid"]: k for k in jwks["keys"]}
    assert header["kid"] in keys, header
    key = jwt.PyJWK(keys[header["kid"]])
    # leeway: what verifiers allow (libtokend: 30 s); ttl 1 s lists live 2 s.
    claims = jwt.decode(tok, key=key.key, algorithms=[header["alg"]], leeway=30,
                        options={"verify_aud": False, "require": ["exp", "iat", "sub"]})
    return claims, header, r


def bit(claims, idx):
    raw = zlib.decompress(b64u_decode(claims["status_list"]["lst"]))
    assert idx < len(raw) * 8, (idx, len(raw))
    return (raw[idx // 8] >> (idx % 8)) & 1


def key_idx(t, key_id):
    return int(t.query("SELECT status_idx FROM api_keys WHERE id = %s", (key_id,))[0][0])


def bit_becomes(srv, idx, want, timeout=10):
    def check():
        claims, _, _ = verified_list(srv)
        return bit(claims, idx) == want
    wait_until(check, timeout=timeout, interval=0.1, what=f"bit {idx} == {want}")


@pytest.fixture
def acme(tokend):
    tokend.account("acme", "--key-limit", "50")
    tokend.scopes("orders:read")
    return tokend


def test_claim_list_and_states(acme, start_server):
    t = acme
    srv = start_server(t, status_list_ttl="2s")
    uri = srv.issuer + "/oauth2/status-list"
    a = new_key(t, "acme", "a", "orders:read")
    b = new_key(t, "acme", "b", "orders:read")
    ia, ib = key_idx(t, a["client_id"]), key_idx(t, b["client_id"])
    assert ia != ib

    # Every token names its key's index and the list's URI.
    for key, idx in ((a, ia), (b, ib)):
        st = claims_of(get_token(srv, key))["status"]
        assert st == {"status_list": {"idx": idx, "uri": uri}}, st

    # Metadata advertises the list (non-standard name).
    md = http_request(srv.port, "GET", "/.well-known/oauth-authorization-server").json()
    assert md["status_list_uri"] == uri

    # The list: typ, sub, iss, ttl, exp, bits; media type and caching headers.
    claims, header, r = verified_list(srv)
    assert header["typ"] == "statuslist+jwt", header
    assert r.headers["content-type"] == "application/statuslist+jwt", r.headers
    assert r.headers["cache-control"] == "public, max-age=2", r.headers
    assert claims["sub"] == uri and claims["iss"] == srv.issuer
    assert claims["ttl"] == 2 and claims["exp"] == claims["iat"] + 4, claims
    assert claims["status_list"]["bits"] == 1
    assert bit(claims, ia) == 0 and bit(claims, ib) == 0
    etag = r.headers["etag"]
    r304 = fetch_list(srv, headers={"If-None-Match": etag})
    assert r304.status == 304 and r304.body == b"", r304
    assert http_request(srv.port, "POST", "/oauth2/status-list", body="x").status == 405

    # disable sets, enable clears; the other key untouched.
    t.run("key", "disable", a["client_id"], check=0)
    bit_becomes(srv, ia, 1)
    assert bit(verified_list(srv)[0], ib) == 0
    t.run("key", "enable", a["client_id"], check=0)
    bit_becomes(srv, ia, 0)
    # revoke sets it for good; delete sets it and it stays set.
    t.run("key", "revoke", a["client_id"], "--reason", "test", check=0)
    bit_becomes(srv, ia, 1)
    t.run("key", "delete", b["client_id"], "--force", check=0)
    bit_becomes(srv, ib, 1)
    time.sleep(1.5)
    claims, _, _ = verified_list(srv)
    assert bit(claims, ia) == 1 and bit(claims, ib) == 1

    # A disabled account lists its keys; enabling it clears them.
    c = new_key(t, "acme", "c", "orders:read")
    ic = key_idx(t, c["client_id"])
    t.run("account", "disable", "acme", check=0)
    bit_becomes(srv, ic, 1)
    t.run("account", "enable", "acme", check=0)
    bit_becomes(srv, ic, 0)


def test_expiry_sets_the_bit(acme, start_server):
    t = acme
    srv = start_server(t, status_list_ttl="1s")
    k = new_key(t, "acme", "short", "orders:read", "--expires-in", "3s")
    idx = key_idx(t, k["client_id"])
    assert bit(verified_list(srv)[0], idx) == 0
    # No NOTIFY for an expiry: the list is rebuilt by age.
    bit_becomes(srv, idx, 1, timeout=15)


def test_index_unique_never_reused_and_immutable(acme, start_server):
    t = acme
    keys = [new_key(t, "acme", f"k{i}", "orders:read") for i in range(4)]
    idx = [key_idx(t, k["client_id"]) for k in keys]
    assert len(set(idx)) == 4
    t.run("key", "delete", keys[3]["client_id"], "--force", check=0)
    k5 = new_key(t, "acme", "k5", "orders:read")
    assert key_idx(t, k5["client_id"]) > max(idx)
    # One value of the sequence per key: consecutive keys, consecutive indexes.
    assert idx == list(range(idx[0], idx[0] + 4)), idx
    # An index given at creation is ignored: the sequence assigns it.
    row = t.query("INSERT INTO api_keys (id, account_id, name, secret_hash, secret_hint, scopes,"
                  " status_idx) VALUES ('tk_' || repeat('z', 28), 'acme', 'x',"
                  " decode(repeat('00', 32), 'hex'), 'abcd', '{}', %s) RETURNING status_idx",
                  (idx[0],))
    assert row[0][0] > key_idx(t, k5["client_id"]), row
    # The database never lets an index change, even for its owner.
    with pytest.raises(Exception, match="never changes|permission denied"):
        t.query("UPDATE api_keys SET status_idx = 999999 WHERE id = %s", (keys[0]["client_id"],))
    assert key_idx(t, keys[0]["client_id"]) == idx[0]


def test_admin_listener_and_off(acme, start_server):
    t = acme
    from support.util import free_port
    admin_port = free_port()
    srv = start_server(t, admin_listen_port=admin_port)
    r = fetch_list(srv, port=admin_port)
    assert r.status == 200 and r.headers["content-type"] == "application/statuslist+jwt", r
    srv.stop()
    off = start_server(t, status_list="off")
    k = new_key(t, "acme", "nolist", "orders:read")
    assert "status" not in claims_of(get_token(off, k))
    assert fetch_list(off).status == 404
    md = http_request(off.port, "GET", "/.well-known/oauth-authorization-server").json()
    assert "status_list_uri" not in md


# ---------------------------------------------------------------------------
# Verifiers: the example resource server and `tokend verify`
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_example_rs_refuses_revoked_key_within_refresh(acme, start_server, workdir, capsys):
    from test_example_rs import ResourceServer
    t = acme
    ttl = 2
    srv = start_server(t, status_list_ttl=f"{ttl}s")
    uri = srv.issuer + "/oauth2/status-list"
    jwks = srv.base + "/.well-known/jwks.json"
    k = new_key(t, "acme", "victim", "orders:read")
    other = new_key(t, "acme", "bystander", "orders:read")
    tok, tok_other = get_token(srv, k), get_token(srv, other)
    plain = ResourceServer(workdir, jwks, srv.issuer, audience=srv.issuer)
    # Leeway 1 s (default 30): the fail-closed part below waits for the list's exp + leeway.
    leeway = 1
    rs = ResourceServer(workdir, jwks, srv.issuer, audience=srv.issuer,
                        extra=["--status-list-url", uri, "--status-refresh-min", "1",
                               "--status-refresh-max", "60", "--leeway", str(leeway)])
    try:
        assert rs.hello(tok).status == 200
        assert rs.hello(tok_other).status == 200
        assert plain.hello(tok).status == 200

        t.run("key", "revoke", k["client_id"], "--reason", "stolen", check=0)
        t0 = time.monotonic()
        while True:
            r = rs.hello(tok)
            if r.status == 401:
                break
            assert r.status == 200, r
            assert time.monotonic() - t0 < ttl + 1, \
                f"still accepted {time.monotonic() - t0:.2f} s after the revoke (ttl {ttl} s)"
            time.sleep(0.05)
        took = time.monotonic() - t0
        assert r.json()["error"] == "invalid_token", r
        assert r.json()["error_description"] == "key listed as invalid in the status list", r
        assert rs.hello(tok_other).status == 200
        assert plain.hello(tok).status == 200        # without the list: accepted until exp
        with capsys.disabled():
            print(f"\nstatus list: the example resource server refused a revoked key's token "
                  f"{took:.2f} s after `tokend key revoke` returned (status_list_ttl {ttl} s, "
                  f"bound {ttl + 1} s)")

        # Fail closed: tokend gone, the last list expires (exp = iat + 2 ttl, plus the leeway).
        srv.stop()
        wait_until(lambda: rs.hello(tok_other).status == 401, timeout=2 * ttl + leeway + ttl + 5,
                   interval=0.5, what="the example refuses once its list expired")
        assert rs.hello(tok_other).json()["error_description"] == "token status unknown"
        assert "status list fetch failed" in rs.stderr()
    finally:
        for x in (rs, plain):
            assert x.stop() == 0, x.stderr()


def test_tokend_verify_refuses_revoked(acme, start_server):
    t = acme
    srv = start_server(t, status_list_ttl="1s")
    uri = srv.issuer + "/oauth2/status-list"
    jwks = srv.base + "/.well-known/jwks.json"
    k = new_key(t, "acme", "v", "orders:read")
    tok = get_token(srv, k)
    args = ("verify", "--jwks-url", jwks, "--issuer", srv.issuer, "--status-list-url", uri, "-")
    r = t.run(*args, input=tok + "\n")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"]["status_list"]["uri"] == uri
    # Without --status-list-url the status is not checked, and it says so.
    r = t.run("verify", "--jwks-url", jwks, "--issuer", srv.issuer, "-", input=tok + "\n")
    assert r.returncode == 0 and "not checked" in r.stderr, r.stderr

    t.run("key", "revoke", k["client_id"], "--reason", "gone", check=0)
    bit_becomes(srv, key_idx(t, k["client_id"]), 1)
    r = t.run(*args, input=tok + "\n")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "status list" in r.stderr and r.stdout == "", r.stderr
    assert tok not in r.stderr
    # A list URL that names another document is refused, not trusted (fail closed).
    r = t.run("verify", "--jwks-url", jwks, "--issuer", srv.issuer, "--status-list-url", jwks, "-",
              input=tok + "\n")
    assert r.returncode == 1 and "status list" in r.stderr, r.stderr


# ---------------------------------------------------------------------------
# Figures (printed, never gating): the list for 100,000 keys
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_figures_100k_keys(tokend, start_server, capsys):
    t = tokend
    db_query(t.db_url, "INSERT INTO accounts (id, name, key_limit) SELECT 'bench' || g, 'bench', 200"
             " FROM generate_series(1, 1000) g", fetch=False)
    t0 = time.monotonic()
    db_query(t.db_url,
             "INSERT INTO api_keys (id, account_id, name, secret_hash, secret_hint, scopes)"
             " SELECT 'tk_' || lpad(g::text, 28, '0'), 'bench' || (g % 1000 + 1), 'k',"
             " decode(repeat('00', 32), 'hex'), 'abcd', '{}' FROM generate_series(1, 100000) g",
             fetch=False)
    insert_s = time.monotonic() - t0
    srv = start_server(t, status_list_ttl="60s")
    figures = []
    for label, sql in (("none listed", None),
                       ("1% listed", "UPDATE api_keys SET disabled_at = now() WHERE random() < 0.01"),
                       ("10% listed", "UPDATE api_keys SET disabled_at = now()"
                                      " WHERE disabled_at IS NULL AND random() < 0.0909")):
        if sql:
            db_query(t.db_url, sql, fetch=False)
            time.sleep(1.0)           # the NOTIFYs reach tokend: the next GET builds
        t0 = time.monotonic()
        r = fetch_list(srv)
        took = time.monotonic() - t0
        assert r.status == 200, r
        claims = jwt.decode(r.body.decode(), options={"verify_signature": False})
        raw = zlib.decompress(b64u_decode(claims["status_list"]["lst"]))
        listed = sum(bin(b).count("1") for b in raw)
        figures.append(f"{label}: {listed} of 100000 set, list of {len(raw)} bytes "
                       f"({len(raw) * 8} indexes) -> lst {len(claims['status_list']['lst'])} chars, "
                       f"token {len(r.body)} bytes; GET that built it {took * 1000:.0f} ms")
        t1 = time.monotonic()
        assert fetch_list(srv).status == 200
        figures[-1] += f"; cached GET {(time.monotonic() - t1) * 1000:.1f} ms"
    with capsys.disabled():
        print(f"\nstatus list figures (100,000 keys inserted in {insert_s:.1f} s):")
        for f in figures:
            print("  " + f)
