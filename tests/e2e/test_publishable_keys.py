"""Issue 14, points 1 and 2: publishable browser keys bound to exact origins, and CORS
on the token endpoint; over the admin API, the local CLI and plain HTTP (curl-level:
no browser here, see test_browser_cors.py for the browser's side).

The rules live in the database (sql/010_publishable_keys.sql): every refusal checks
that nothing changed (support.admin.snapshot covers keys, audit rows and scopes).
"""
import time

import jwt
import psycopg2
import pytest

from support.admin import A, Admin, WRITE, env, ok, refused, snapshot  # noqa: F401 (env: fixture)
from support.http import http_request, token_request

pytestmark = pytest.mark.binary

GOOD = "https://app.example"
OTHER = "https://evil.example"
CORS = ("access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers",
        "access-control-max-age", "access-control-allow-credentials", "access-control-expose-headers")


def cors_headers(r):
    return {h: r.headers[h] for h in CORS if h in r.headers}


@pytest.fixture(scope="module")
def pub(env, module_start_server):
    """An account `web` with public scope widgets:read and non-public widgets:write granted,
    an admin of it, and `psrv`: a server on the same database whose failed-authentication
    limits stay out of the way of the many refusals asked for here."""
    t = env.t
    env.psrv = module_start_server(t, auth_failures_per_address=0, auth_failures_per_key=0)
    r = t.json("scope", "add", "widgets:read", "--public", "--description", "Read widgets")
    assert r["public"] is True, r
    assert t.json("scope", "add", "widgets:write")["public"] is False
    t.account("web", "--key-limit", "50")
    t.grant_scopes("web", "widgets:read", "widgets:write", "read")
    env.web = Admin(env, "web", WRITE)
    return env


def make(admin, origins=(GOOD,), scopes=("widgets:read",), status=201, **extra):
    body = {"name": "widget", "scopes": list(scopes), "publishable": True, "allowed_origins": list(origins), **extra}
    r = admin.post("keys", body)
    k = ok(r, status)
    return k


def pk_token(srv, key_id, origin=GOOD, extra_headers=None, **form):
    h = dict(extra_headers or {})
    if origin is not None:
        h["Origin"] = origin
    return token_request(srv.port, {"grant_type": "client_credentials", "client_id": key_id, **form}, headers=h)


def preflight(srv, origin=GOOD, method="POST", headers=None):
    h = {"Access-Control-Request-Method": method}
    if origin is not None:
        h["Origin"] = origin
    if headers is not None:
        h["Access-Control-Request-Headers"] = headers
    return http_request(srv.port, "OPTIONS", "/oauth2/token", None, h)


# ---------------------------------------------------------------------------
# The scope catalogue's public flag
# ---------------------------------------------------------------------------
def test_scope_public_flag_cli_and_api(pub):
    t, op = pub.t, pub.op
    listed = {s["name"]: s for s in t.json("scope", "list")}
    assert listed["widgets:read"]["public"] is True and listed["widgets:write"]["public"] is False
    assert listed["read"]["public"] is False           # scopes from before default to not public
    table = t.run("scope", "list", check=0).stdout
    assert "PUBLIC" in table.splitlines()[0]
    s = ok(op.post("scopes", {"name": "gadgets:read", "public": True}), 201)
    assert s["public"] is True, s
    got = {x["name"]: x for x in ok(op.get("scopes"))["scopes"]}
    assert got["gadgets:read"]["public"] is True and got["read"]["public"] is False
    before = snapshot(t)
    refused(op.post("scopes", {"name": "gadgets:x", "public": "yes"}), 400, "invalid_request", "public")
    t.usage_error("scope", "add", "gadgets:y", "--public=yes")
    assert snapshot(t) == before


# ---------------------------------------------------------------------------
# Point 1: a publishable key's life
# ---------------------------------------------------------------------------
def test_create_over_api_listed_in_full(pub):
    web = pub.web
    r = web.post("keys", {"name": "widget", "scopes": ["widgets:read"], "publishable": True,
                          "allowed_origins": [GOOD, "http://127.0.0.1:8081"]})
    k = ok(r, 201)
    assert k["client_id"].startswith("tk_pk_") and len(k["client_id"]) == 6 + 28, k
    assert k["client_secret"] is None and k["hint"] is None and k["masked"] is None, k
    assert k["kind"] == "publishable" and k["allowed_origins"] == [GOOD, "http://127.0.0.1:8081"], k
    assert k["subject"] is None and k["scopes"] == ["widgets:read"] and k["state"] == "enabled"
    assert r.headers["location"] == f"{A}/keys/{k['client_id']}"
    # Listed and shown in full, again and again (an embed snippet can be recovered).
    got = ok(web.get(f"keys/{k['client_id']}"))
    assert got["client_id"] == k["client_id"] and got["allowed_origins"] == k["allowed_origins"]
    listed = ok(web.get("keys?kind=publishable"))["keys"]
    assert [x["client_id"] for x in listed if x["client_id"] == k["client_id"]] == [k["client_id"]]
    assert all(x["kind"] == "publishable" for x in listed)
    assert all(x["kind"] != "publishable" for x in ok(web.get("keys?kind=account"))["keys"])
    # The test environment has its own prefix.
    kt = make(web, environment="test")
    assert kt["client_id"].startswith("tk_pk_test_") and kt["environment"] == "test", kt
    # The audit row names the key; the database holds no secret for it.
    row = pub.t.dicts("SELECT secret_hash, secret_hint, publishable, allowed_origins FROM api_keys WHERE id = %s",
                      (k["client_id"],))[0]
    assert row["secret_hash"] is None and row["secret_hint"] is None and row["publishable"] is True


BAD_ORIGINS = [
    ["https://app.example/"], ["https://app.example/path"], ["https://*.app.example"], ["*"],
    ["https://App.example"], ["https://app.example:443"], ["http://app.example:80"], ["ftp://app.example"],
    ["https://user@app.example"], ["https://app.example?x=1"], ["https://app.example#f"], [""], ["null"],
    ["app.example"], ["https://app.example:0"], ["https://app.example:65536"], ["https://app.example:08080"],
    [GOOD, GOOD], ["https://a b.example"], ["https://app.example."],
]


@pytest.mark.parametrize("origins", BAD_ORIGINS, ids=[repr(o)[:40] for o in BAD_ORIGINS])
def test_bad_origins_refused_change_nothing(pub, origins):
    before = snapshot(pub.t)
    body = refused(pub.web.post("keys", {"name": "w", "scopes": ["widgets:read"], "publishable": True,
                                         "allowed_origins": origins}), 400, "invalid_request", "allowed_origins")
    assert "origin" in body["error_description"]
    assert snapshot(pub.t) == before


def test_other_refusals_change_nothing(pub):
    web, t = pub.web, pub.t
    before = snapshot(t)
    # Only public scopes.
    body = refused(web.post("keys", {"name": "w", "scopes": ["widgets:read", "widgets:write"], "publishable": True,
                                     "allowed_origins": [GOOD]}), 400, "invalid_scope", "scopes")
    assert "widgets:write" in body["error_description"] and "public" in body["error_description"]
    refused(web.post("keys", {"name": "w", "scopes": ["read"], "publishable": True, "allowed_origins": [GOOD]}),
            400, "invalid_scope", "scopes")
    # Origins are required, and only for publishable keys; at most 20.
    refused(web.post("keys", {"name": "w", "scopes": ["widgets:read"], "publishable": True}),
            400, "invalid_request", "allowed_origins")
    refused(web.post("keys", {"name": "w", "scopes": ["read"], "allowed_origins": [GOOD]}),
            400, "invalid_request", "allowed_origins")
    refused(web.post("keys", {"name": "w", "scopes": ["widgets:read"], "publishable": True,
                              "allowed_origins": [f"https://a{i}.example" for i in range(21)]}),
            400, "invalid_request", "allowed_origins")
    refused(web.post("keys", {"name": "w", "scopes": ["widgets:read"], "publishable": True,
                              "allowed_origins": GOOD}), 400, "invalid_request", "allowed_origins")
    refused(web.post("keys", {"name": "w", "scopes": ["widgets:read"], "publishable": "yes",
                              "allowed_origins": [GOOD]}), 400, "invalid_request", "publishable")
    # An account key: no subject.
    refused(web.post("keys", {"name": "w", "scopes": ["widgets:read"], "publishable": True,
                              "allowed_origins": [GOOD], "subject": "jane"}), 400, "invalid_request")
    # A custom claim may not forge the origin claim.
    refused(web.post("keys", {"name": "w", "scopes": ["read"], "claims": {"origin": GOOD}}),
            400, "invalid_request", "claims")
    assert snapshot(t) == before


def test_cli_create_list_and_refusals(pub):
    t = pub.t
    k = t.json("key", "create", "--account", "web", "--name", "cli widget", "--publishable",
               "--origin", GOOD, "--origin", "http://localhost:3000", "--scopes", "widgets:read")
    assert k["kind"] == "publishable" and k["client_secret"] is None, k
    assert k["client_id"].startswith("tk_pk_") and k["allowed_origins"] == [GOOD, "http://localhost:3000"]
    text = t.run("key", "show", k["client_id"], check=0).stdout
    assert "Origins:        https://app.example http://localhost:3000" in text, text
    assert "tks_..." not in text and "(none: a publishable key" in text, text
    table = t.run("key", "list", "--account", "web", "--kind", "publishable", check=0).stdout
    line = [x for x in table.splitlines() if k["client_id"] in x]
    assert len(line) == 1 and "publishable" in line[0], table
    out = t.run("key", "create", "--account", "web", "--name", "cli widget 2", "--publishable",
                "--origin", GOOD, "--scopes", "widgets:read", check=0).stdout
    assert "Created publishable key tk_pk_" in out and "client_secret" not in out, out
    before = snapshot(t)
    t.usage_error("key", "create", "--account", "web", "--name", "w", "--publishable", "--scopes", "widgets:read",
                  match="--origin")
    t.usage_error("key", "create", "--account", "web", "--name", "w", "--origin", GOOD, "--scopes", "read",
                  match="publishable")
    t.usage_error("key", "create", "--account", "web", "--name", "w", "--publishable", "--origin", GOOD,
                  "--scopes", "widgets:read", "--subject", "jane", match="account key")
    t.refused("key", "create", "--account", "web", "--name", "w", "--publishable", "--origin", GOOD,
              "--scopes", "widgets:write", match="not public")
    t.refused("key", "create", "--account", "web", "--name", "w", "--publishable", "--origin", GOOD + "/",
              "--scopes", "widgets:read", match="scheme://host")
    assert snapshot(t) == before


def test_remote_cli_create(pub):
    """The remote CLI (admin API) makes the same publishable key, and prints no secret."""
    t, web = pub.t, pub.web
    e = {"TOKEND_URL": pub.srv.base, "TOKEND_CLIENT_ID": web.key["client_id"],
         "TOKEND_CLIENT_SECRET": web.key["client_secret"], "TOKEND_TOKEN_URL": None}
    k = t.json("key", "create", "--name", "remote widget", "--publishable", "--origin", GOOD,
               "--scopes", "widgets:read", env=e)
    assert k["kind"] == "publishable" and k["client_secret"] is None and k["allowed_origins"] == [GOOD], k
    assert k["client_id"].startswith("tk_pk_") and k["account"] == "web"
    r = t.run("key", "create", "--name", "remote widget 2", "--publishable", "--origin", GOOD,
              "--scopes", "widgets:read", env=e, check=0)
    assert "Created publishable key tk_pk_" in r.stdout and "client_secret" not in r.stdout, r.stdout
    before = snapshot(t)
    t.refused("key", "create", "--name", "w", "--publishable", "--origin", "https://*.example",
              "--scopes", "widgets:read", env=e, match="scheme://host")
    t.refused("key", "create", "--name", "w", "--publishable", "--origin", GOOD,
              "--scopes", "widgets:write", env=e, match="not public")
    assert snapshot(t) == before


def test_disable_enable_revoke_and_fixed_fields(pub):
    web, srv, t = pub.web, pub.psrv, pub.t
    k = make(web)
    kid = k["client_id"]
    assert pk_token(srv, kid).status == 200
    ok(web.post(f"keys/{kid}/disable"))
    deadline = time.monotonic() + 5
    while pk_token(srv, kid).status != 401 and time.monotonic() < deadline:
        time.sleep(0.05)
    r = pk_token(srv, kid)
    assert r.status == 401 and not cors_headers(r), r
    ok(web.post(f"keys/{kid}/enable"))
    deadline = time.monotonic() + 5
    while pk_token(srv, kid).status != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pk_token(srv, kid).status == 200
    # No secret to rotate.
    before = snapshot(t)
    body = refused(web.post(f"keys/{kid}/rotate-secret", {"overlap_seconds": 0}), 400, "invalid_request")
    assert "publishable" in body["error_description"]
    t.refused("key", "rotate-secret", kid, "--overlap", "0", match="publishable")
    assert snapshot(t) == before
    # Kind and origins never change, even for the schema owner.
    for sql in ("UPDATE api_keys SET allowed_origins = '{https://evil.example}' WHERE id = %s",
                "UPDATE api_keys SET publishable = false WHERE id = %s"):
        with pytest.raises(psycopg2.Error, match="never change|violates check constraint"):
            t.query(sql, (kid,))
    assert t.query("SELECT allowed_origins FROM api_keys WHERE id = %s", (kid,))[0][0] == [GOOD]
    # Revoked: no token, no preflight from this key any more.
    ok(web.post(f"keys/{kid}/revoke", {"reason": "test"}))
    deadline = time.monotonic() + 5
    while pk_token(srv, kid).status != 401 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pk_token(srv, kid).status == 401
    listed = ok(web.get(f"keys/{kid}"))
    assert listed["state"] == "revoked" and listed["client_id"] == kid


# ---------------------------------------------------------------------------
# Point 2: tokens for browsers, at the HTTP level
# ---------------------------------------------------------------------------
def test_token_from_allowed_origin(pub):
    srv = pub.psrv
    k = make(pub.web, origins=(GOOD, "http://127.0.0.1:9"))
    r = pk_token(srv, k["client_id"])
    assert r.status == 200, r
    assert cors_headers(r) == {"access-control-allow-origin": GOOD}, r
    assert r.headers["vary"] == "Origin" and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["expires_in"] == 300 and body["scope"] == "widgets:read", body
    c = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert c["origin"] == GOOD and c["sub"] == k["client_id"] and c["client_id"] == k["client_id"], c
    assert c["exp"] - c["iat"] == 300 and c["scope"] == "widgets:read" and c["env"] == "live", c
    # The other allowed origin gets its own answer and claim.
    r = pk_token(srv, k["client_id"], origin="http://127.0.0.1:9")
    assert r.status == 200 and r.headers["access-control-allow-origin"] == "http://127.0.0.1:9", r
    # A refusal after the origin check (an unknown scope) still lets the page read it.
    r = pk_token(srv, k["client_id"], scope="widgets:write")
    assert r.status == 400 and r.json()["error"] == "invalid_scope", r
    assert r.headers["access-control-allow-origin"] == GOOD


def test_no_or_wrong_origin_gets_no_token_and_no_cors(pub):
    srv = pub.psrv
    k = make(pub.web)
    kid = k["client_id"]
    for origin in (None, OTHER, GOOD + "/", "https://APP.example", "null", GOOD + ":443", "http://app.example", ""):
        r = pk_token(srv, kid, origin=origin)
        assert r.status == 401 and r.json()["error"] == "invalid_client", (origin, r)
        assert not cors_headers(r), (origin, r)
        assert "access_token" not in r.body.decode()
    # Two Origin headers: neither counts.
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    body = f"grant_type=client_credentials&client_id={kid}"
    c.putrequest("POST", "/oauth2/token")
    for name, value in (("Content-Type", "application/x-www-form-urlencoded"), ("Origin", GOOD), ("Origin", GOOD),
                        ("Content-Length", str(len(body)))):
        c.putheader(name, value)
    c.endheaders(body.encode())
    resp = c.getresponse()
    assert resp.status == 401 and resp.getheader("Access-Control-Allow-Origin") is None
    resp.read()
    c.close()
    # A publishable key with a (well-formed) secret, by Basic or in the body: invalid_client.
    fake = "tks_" + "A" * 49
    r = token_request(srv.port, {"grant_type": "client_credentials", "client_id": kid, "client_secret": fake},
                      headers={"Origin": GOOD})
    assert r.status == 401 and not cors_headers(r), r
    r = token_request(srv.port, auth=(kid, fake), headers={"Origin": GOOD})
    assert r.status == 401 and not cors_headers(r), r
    # A malformed ID (bad checksum) is refused before any lookup, without CORS.
    bad = kid[:-1] + ("A" if kid[-1] != "A" else "B")
    r = pk_token(srv, bad)
    assert r.status == 401 and not cors_headers(r), r
    # The ID alone works at the token endpoint only.
    r = http_request(srv.port, "POST", "/oauth2/introspect", f"client_id={kid}&token=x",
                     {"Content-Type": "application/x-www-form-urlencoded", "Origin": GOOD})
    assert r.status == 401 and not cors_headers(r), r


def test_secret_keys_never_get_cors(pub):
    srv, t = pub.psrv, pub.t
    sk = t.create_key("web", "secret key", "read")
    r = srv.token(sk, headers={"Origin": GOOD})
    assert r.status == 200 and not cors_headers(r) and "vary" not in r.headers, r
    r = srv.token(sk, how="post", headers={"Origin": GOOD})
    assert r.status == 200 and not cors_headers(r), r
    # A secret key's ID alone, even from an allowed origin: invalid_client.
    make(pub.web)
    r = pk_token(srv, sk["client_id"])
    assert r.status == 401 and r.json()["error"] == "invalid_client" and not cors_headers(r), r


def test_preflight_exact_headers(pub):
    srv = pub.psrv
    origin = "https://preflight.example"
    r = preflight(srv, origin)
    assert r.status == 403 and not cors_headers(r), r          # no key allows it yet
    k = make(pub.web, origins=(origin,))
    r = preflight(srv, origin)
    assert r.status == 204 and r.body == b"", r
    assert cors_headers(r) == {"access-control-allow-origin": origin, "access-control-allow-methods": "POST",
                               "access-control-allow-headers": "Content-Type", "access-control-max-age": "600"}, r
    assert r.header_all("vary") == ["Origin"], r
    assert preflight(srv, origin, headers="content-type").status == 204
    assert preflight(srv, origin, headers="Content-Type, content-type").status == 204
    for bad in (dict(origin=OTHER), dict(origin=None), dict(origin=origin + "/"), dict(method="GET"),
                dict(method="PUT"), dict(headers="Authorization"), dict(headers="content-type, x-secret"),
                dict(origin="null")):
        r = preflight(srv, **{"origin": origin, **bad})
        assert r.status == 403 and not cors_headers(r), (bad, r)
    # Disabled: the preflight stops too (read from the database each time).
    ok(pub.web.post(f"keys/{k['client_id']}/disable"))
    r = preflight(srv, origin)
    assert r.status == 403 and not cors_headers(r), r


def test_jwks_and_metadata_answer_simple_cors(pub):
    srv = pub.psrv
    for path in ("/.well-known/jwks.json", "/.well-known/oauth-authorization-server"):
        r = http_request(srv.port, "GET", path, None, {"Origin": OTHER})
        assert r.status == 200 and r.headers["access-control-allow-origin"] == "*", r
        assert "access-control-allow-credentials" not in r.headers


def test_rate_limits_and_lifetime(pub, module_start_server):
    """publishable_tokens_per_key, publishable_tokens_per_address, publishable_token_lifetime."""
    t = pub.t
    srv = module_start_server(t, publishable_tokens_per_key=3, publishable_tokens_per_address=100,
                              publishable_token_lifetime="90s")
    k = make(pub.web)
    got = [pk_token(srv, k["client_id"]) for _ in range(4)]
    assert [r.status for r in got] == [200, 200, 200, 429], got
    last = got[-1]
    assert last.json()["error"] == "too_many_requests" and int(last.headers["retry-after"]) >= 1
    assert last.headers["access-control-allow-origin"] == GOOD       # the page can read why
    c = jwt.decode(got[0].json()["access_token"], options={"verify_signature": False})
    assert c["exp"] - c["iat"] == 90, c
    # Another key is not limited by the first one's count...
    k2 = make(pub.web)
    assert pk_token(srv, k2["client_id"]).status == 200
    # ...but the address is, on a server that limits it (preflights count too).
    srv2 = module_start_server(t, publishable_tokens_per_address=2)
    assert [pk_token(srv2, k2["client_id"]).status for _ in range(2)] == [200, 200]
    r = pk_token(srv2, k2["client_id"])
    assert r.status == 429, r
    r = preflight(srv2, GOOD)
    assert r.status == 429 and not cors_headers(r), r
    # Secret keys are not counted against these limits.
    sk = t.create_key("web", "secret again", "read")
    assert [srv2.token(sk).status for _ in range(3)] == [200, 200, 200]
