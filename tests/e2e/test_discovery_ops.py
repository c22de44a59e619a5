"""
End-to-end tests of discovery and operations endpoints (issue 3, points 3, 4,
6 (last-used batching) and 8): /.well-known/jwks.json,
/.well-known/oauth-authorization-server (RFC 8414), /healthz, /readyz, /metrics,
and the structured logs.

SECURITY.md rows: G3 (JWKS content, Cache-Control, ETag), A9.
"""
import json
import time

import pytest

from support.http import http_request, metric
from support.keys import public_jwk_of, thumbprint
from support.registry import note_timing, remember_token
from support.server import new_key
from support.util import parse_ts, wait_until

pytestmark = pytest.mark.binary

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
KEYS = ("es256", "es256b", "ed25519", "rs256")


class NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.fixture(scope="module")
def env(module_tokend, module_start_server, signing_keys):
    t = module_tokend
    t.account("acme", "--key-limit", "50")
    t.scopes("read", "write")
    active = thumbprint(signing_keys["es256b"])
    srv = module_start_server(t, keys=KEYS, signing_key_active=active, jwks_max_age="7m")
    key = new_key(t, "acme", "ops", "read write")
    return NS(t=t, srv=srv, key=key, active=active, signing_keys=signing_keys)


def catalogue(t):
    """The scope catalogue as stored (names only)."""
    return {n for (n,) in t.query("SELECT name FROM scopes")}


# ===========================================================================
# JWKS (points 3, 4)
# ===========================================================================
def test_jwks_publishes_every_key_public_parts_only(env):
    r = env.srv.get("/.well-known/jwks.json")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").split(";")[0] in ("application/json", "application/jwk-set+json")
    jwks = r.json()
    assert set(jwks) == {"keys"}, jwks
    keys = jwks["keys"]
    assert len(keys) == len(KEYS)
    want = {thumbprint(env.signing_keys[k]): (k, public_jwk_of(env.signing_keys[k])) for k in KEYS}
    seen = set()
    for jwk in keys:
        leaked = PRIVATE_MEMBERS & set(jwk)
        assert not leaked, f"JWKS publishes private members {sorted(leaked)}"
        assert jwk["kid"] in want, f"unexpected kid {jwk['kid']}"
        name, pub = want[jwk["kid"]]
        for member, value in pub.items():
            assert jwk.get(member) == value, (name, member, jwk)
        assert jwk.get("use") == "sig", jwk
        assert jwk.get("alg") == {"EC": "ES256", "OKP": "EdDSA", "RSA": "RS256"}[pub["kty"]], jwk
        if pub["kty"] == "EC":
            assert jwk["crv"] == "P-256"
        seen.add(jwk["kid"])
    assert seen == set(want)


def test_jwks_caching_headers(env):
    r = env.srv.get("/.well-known/jwks.json")
    cc = [p.strip() for p in r.headers.get("cache-control", "").split(",")]
    assert "max-age=420" in cc, r.headers       # jwks_max_age = 7m
    assert "no-store" not in cc
    etag = r.headers.get("etag")
    assert etag and etag.startswith('"') and etag.endswith('"'), r.headers
    # A conditional GET with the current ETag: 304, no body, same validators.
    r2 = env.srv.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert r2.status == 304, r2
    assert r2.body == b""
    assert r2.headers.get("etag") == etag
    # Several tags, one matching; and a stale tag.
    assert env.srv.get("/.well-known/jwks.json", headers={"If-None-Match": f'"x", {etag}'}).status == 304
    r3 = env.srv.get("/.well-known/jwks.json", headers={"If-None-Match": '"stale"'})
    assert r3.status == 200 and r3.body == r.body
    # The same document and tag on every request (any worker).
    for _ in range(6):
        r4 = env.srv.get("/.well-known/jwks.json")
        assert r4.body == r.body and r4.headers.get("etag") == etag
    # Not a POST endpoint.
    r5 = http_request(env.srv.port, "POST", "/.well-known/jwks.json", "x=1",
                      {"Content-Type": "application/x-www-form-urlencoded"})
    assert r5.status == 405 and "GET" in r5.headers.get("allow", ""), r5


def test_tokens_signed_by_active_key_verify_with_jwks(env):
    import jwt
    tok = env.srv.token(env.key).json()["access_token"]
    remember_token(tok)
    h = jwt.get_unverified_header(tok)
    assert h["kid"] == env.active and h["alg"] == "ES256"
    key = jwt.PyJWKClient(env.srv.base + "/.well-known/jwks.json").get_signing_key_from_jwt(tok)
    jwt.decode(tok, key.key, algorithms=["ES256"], issuer=env.srv.issuer, audience=env.srv.issuer)


# ===========================================================================
# RFC 8414 metadata (point 4)
# ===========================================================================
def test_authorization_server_metadata(env):
    srv = env.srv
    r = srv.get("/.well-known/oauth-authorization-server")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("application/json")
    m = r.json()
    assert m["issuer"] == srv.issuer
    assert m["token_endpoint"] == srv.issuer + "/oauth2/token"
    assert m["jwks_uri"] == srv.issuer + "/.well-known/jwks.json"
    assert m["grant_types_supported"] == ["client_credentials"]
    assert set(m["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    assert set(m["scopes_supported"]) == catalogue(env.t)
    assert {"read", "write"} <= set(m["scopes_supported"])
    assert set(m["access_token_signing_alg_values_supported"]) == {"ES256", "EdDSA", "RS256"}
    assert "none" not in m["access_token_signing_alg_values_supported"]
    # The advertised URLs work.
    jw = http_request(srv.port, "GET", m["jwks_uri"][len(srv.base):])
    assert jw.status == 200 and jw.json()["keys"]
    assert srv.token(env.key).status == 200


def test_metadata_follows_scope_catalogue(env):
    srv = env.srv
    srv.get("/.well-known/oauth-authorization-server")   # the cached document exists
    env.t.run("scope", "add", "reports:export", "--description", "Export reports", check=0)
    returned = time.monotonic()

    def has_scope():
        return "reports:export" in srv.get("/.well-known/oauth-authorization-server").json()["scopes_supported"]
    wait_until(has_scope, timeout=5, interval=0.02, what="the new scope in the metadata")
    took = time.monotonic() - returned
    note_timing("metadata scope catalogue refresh", f"{took * 1000:.0f} ms after `scope add` returned")
    assert took <= 1.0, f"a new scope appeared in the metadata only after {took:.2f} s"
    m = srv.get("/.well-known/oauth-authorization-server").json()
    assert set(m["scopes_supported"]) == catalogue(env.t)
    assert {"read", "write", "reports:export"} <= set(m["scopes_supported"])


# ===========================================================================
# /healthz, /readyz, /metrics (point 8)
# ===========================================================================
def test_healthz_readyz(env):
    r = env.srv.get("/healthz")
    assert r.status == 200, r
    r = env.srv.get("/readyz")
    assert r.status == 200, r
    body = r.json()
    assert body.get("database") is True and body.get("signing_key") is True, body
    # Unknown paths: 404 JSON; no stack, no echo.
    r = env.srv.get("/nope/../etc/passwd")
    assert r.status == 404, r


def test_metrics_prometheus(env):
    srv = env.srv
    k = new_key(env.t, "acme", "metrics", "read")
    m0 = srv.metrics()
    types = m0["__types__"]
    assert types.get("tokend_http_requests_total") == "counter"
    assert types.get("tokend_token_request_duration_seconds") == "histogram"
    assert types.get("tokend_key_cache_hits_total") == "counter"
    assert types.get("tokend_key_cache_misses_total") == "counter"
    assert types.get("tokend_db_errors_total") == "counter"
    n = 7
    for _ in range(n):
        r = srv.token(k)
        assert r.status == 200, r
        remember_token(r.json()["access_token"])
    for _ in range(3):
        assert srv.token(k, scope="admin").status == 400
    m1 = srv.metrics()

    def delta(name, **labels):
        return metric(m1, name, **labels) - metric(m0, name, **labels)
    assert delta("tokend_http_requests_total", endpoint="token", code="200") == n
    assert delta("tokend_http_requests_total", endpoint="token", code="400") == 3
    assert delta("tokend_token_request_duration_seconds_count") == n + 3
    assert delta("tokend_token_request_duration_seconds_sum") > 0
    # Histogram buckets: cumulative, ending with +Inf == count.
    buckets = sorted(((float(dict(lbl)["le"]), v) for (name, lbl), v in
                      ((k_, v_) for k_, v_ in m1.items() if k_ != "__types__")
                      if name == "tokend_token_request_duration_seconds_bucket"), key=lambda x: x[0])
    assert len(buckets) >= 5 and buckets[-1][0] == float("inf")
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    assert buckets[-1][1] == metric(m1, "tokend_token_request_duration_seconds_count")
    # The key was new: the first lookup missed the cache, the later ones hit it.
    assert delta("tokend_key_cache_misses_total") >= 1
    assert delta("tokend_key_cache_hits_total") >= n + 3 - 2
    assert delta("tokend_key_cache_misses_total") <= 2
    assert metric(m1, "tokend_key_cache_bypassed") == 0
    # Other endpoints are counted too.
    srv.get("/.well-known/jwks.json")
    m2 = srv.metrics()
    assert metric(m2, "tokend_http_requests_total", endpoint="jwks", code="200") >= 1
    # The metrics page never shows credentials.
    text = srv.get("/metrics").body.decode()
    assert k["client_id"] not in text and k["client_secret"] not in text


def test_last_used_is_batched(env):
    """last_used_at is written by one statement per flush interval (1 s here), never per request."""
    t, srv = env.t, env.srv
    k = new_key(t, "acme", "batched", "read")
    assert t.json("key", "show", k["client_id"])["last_used_at"] is None
    # Count UPDATE statements on api_keys from now on (a statement-level trigger in this test database).
    t.query("CREATE TABLE IF NOT EXISTS e2e_upd (at timestamptz NOT NULL DEFAULT clock_timestamp(), app text)")
    # The trigger runs as tokend's role (tokend_app), which has no privilege on tables it was not granted.
    t.query("GRANT INSERT ON e2e_upd TO tokend_app")
    t.query("""CREATE OR REPLACE FUNCTION e2e_count_upd() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO e2e_upd (app) VALUES (current_setting('application_name')); RETURN NULL; END $$""")
    t.query("DROP TRIGGER IF EXISTS e2e_count_upd ON api_keys")
    t.query("CREATE TRIGGER e2e_count_upd AFTER UPDATE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION e2e_count_upd()")
    try:
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        t0 = time.monotonic()
        first_at = time.time()
        for _ in range(50):
            r = srv.token(k, conn=conn)
            assert r.status == 200, r
            remember_token(r.json()["access_token"])
        conn.close()
        sent = time.monotonic() - t0

        def shown():
            return t.json("key", "show", k["client_id"])["last_used_at"]
        last = wait_until(shown, timeout=8, interval=0.1, what="last_used_at to be written")
        took = time.monotonic() - t0
        assert parse_ts(last).timestamp() >= int(first_at) - 1
        # flush interval 1 s + slack
        assert took <= sent + 1 + 3, f"last_used_at appeared {took:.1f} s after the first request"
        time.sleep(1.2)   # let any flush still pending run
        ups = t.query("SELECT app FROM e2e_upd")
        elapsed = time.monotonic() - t0
        workers = 2
        bound = workers * (int(elapsed) + 2)
        note_timing("last_used batching", f"50 requests in {sent:.2f} s -> {len(ups)} UPDATE statement(s); "
                    f"last_used_at visible after {took:.2f} s")
        assert 1 <= len(ups) <= bound, f"{len(ups)} UPDATE statements for 50 requests in {elapsed:.1f} s"
        assert len(ups) < 50 / 5
        assert all(a == "tokend" for (a,) in ups), ups
    finally:
        t.query("DROP TRIGGER IF EXISTS e2e_count_upd ON api_keys")


# ===========================================================================
# Logs (point 8)
# ===========================================================================
def test_access_log_lines(env):
    srv = env.srv
    r = srv.token(env.key)
    assert r.status == 200
    remember_token(r.json()["access_token"])
    srv.token(env.key, scope="nope")
    lines = srv.log_events("http.request")
    mine = [e for e in lines if e.get("client_id") == env.key["client_id"] and e.get("path") == "/oauth2/token"]
    assert any(e.get("status") == "200" for e in mine), lines[-5:]
    assert any(e.get("status") == "400" for e in mine), lines[-5:]
    for e in mine:
        assert e.get("method") == "POST" and e.get("endpoint") == "token"
    started = srv.log_events("server.started")
    assert started and started[0].get("signing_kid") == env.active, started
    # getpid from the wipe-on-fork page (server/pidcache.c): no system call per signature.
    assert started[0].get("pid_cache") == "on", started
    # One line per event: every line starts with a timestamp and a level, then event=.
    for line in srv.log_lines():
        assert line.split(" ")[2].startswith("event="), line


def test_json_log_format(env, start_server):
    srv = start_server(env.t, log_format="json")
    r = srv.token(env.key)
    assert r.status == 200
    remember_token(r.json()["access_token"])
    srv.token(env.key, scope="nope")
    lines = [l for l in srv.stderr_text().splitlines() if l.strip()]
    assert lines
    events = [json.loads(l) for l in lines]   # every line one JSON object
    # Typed values: the status is a JSON number (issue 17).
    assert any(e.get("event") == "http.request" and e.get("status") == 200 for e in events), events[-3:]
    assert any(e.get("event") == "token.refused" or (e.get("event") == "http.request" and e.get("status") == 400)
               for e in events)
