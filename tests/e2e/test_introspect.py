"""
End-to-end tests of introspection (RFC 7662) and revocation (RFC 7009) (issue 5,
points 4, 5 and 6).

  * POST /oauth2/introspect: the caller authenticates with the credentials of a
    key holding tokend:introspect (Basic or body) or with a bearer token carrying
    it; an active token answers its claims; every other token answers exactly
    {"active": false}: garbage, tampered, alg none, expired, another issuer,
    another signing key, another account's, revoked, and any token whose key is
    disabled, revoked, deleted or expired or whose account is disabled, from the
    moment the change is made (the endpoint reads the database every time).
  * The issue's "done when": two instances on one database; `tokend key revoke`
    through the CLI; instance B answers active:false within 1 s of the command
    returning (measured and printed).
  * POST /oauth2/revoke: own tokens (then inactive at once on every instance,
    an audit row, a revoked_tokens row kept until expiry); 200 for invalid,
    garbage and expired tokens; 400 unauthorized_client for another client's
    token; 401 without client credentials.
  * Metadata advertises both endpoints and their authentication methods.
  * PostgreSQL down: 503 temporarily_unavailable for introspection and
    revocation, never active:true for a revoked token, never active:false for a
    valid one.

SECURITY.md rows: D7 (introspection/revocation authz), E5 (outage semantics).
"""
import json
import time
import urllib.parse

import jwt
import pytest

from support.http import FORM, basic
from support.keys import b64u, b64u_decode, make_key_id, make_secret, tamper_payload
from support.registry import note_timing
from support.server import get_token, new_key
from support.util import NS, wait_until

pytestmark = pytest.mark.binary

INTROSPECT = "tokend:introspect"
ACTIVE_FIELDS = {"active", "scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti",
                 "acct", "token_type"}
INACTIVE = {"active": False}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def claims_of(tok):
    return jwt.decode(tok, options={"verify_signature": False})


def post(srv, path, form=None, *, key=None, how="basic", bearer=None, headers=None, raw_body=None):
    """POST a form to `path`, authenticating with `key` (basic|post) or a bearer token."""
    f = dict(form or {})
    h = {"Content-Type": FORM}
    if key is not None:
        if how == "basic":
            h["Authorization"] = basic(key["client_id"], key["client_secret"])
        else:
            f["client_id"] = key["client_id"]
            f["client_secret"] = key["client_secret"]
    if bearer is not None:
        h["Authorization"] = "Bearer " + bearer
    h.update(headers or {})
    body = raw_body if raw_body is not None else urllib.parse.urlencode(f)
    return srv.request("POST", path, body, h)


def introspect(srv, token, caller=None, **kw):
    return post(srv, "/oauth2/introspect", {"token": token}, key=caller, **kw)


def revoke(srv, token, caller=None, hint=None, **kw):
    form = {"token": token}
    if hint:
        form["token_type_hint"] = hint
    return post(srv, "/oauth2/revoke", form, key=caller, **kw)


def no_store(r):
    assert r.headers.get("cache-control") == "no-store", r
    assert r.headers.get("content-type", "").startswith("application/json"), r


def is_active(r):
    """The answer to an introspection that must succeed: True/False (asserts the shape)."""
    assert r.status == 200, r
    no_store(r)
    body = r.json()
    if body.get("active") is True:
        assert set(body) == ACTIVE_FIELDS, f"unexpected members of an active answer: {body}"
        return True
    assert body == INACTIVE, f"an inactive answer must be exactly {{\"active\": false}}: {body}"
    return False


def oauth_error(r, status, error):
    assert r.status == status, r
    no_store(r)
    body = r.json()
    assert body.get("error") == error, r
    assert "active" not in body, r
    return body


def tamper_signature(tok):
    h, p, s = tok.split(".")
    raw = bytearray(b64u_decode(s))
    raw[len(raw) // 3] ^= 0x01                  # r still in range, just the wrong value
    return ".".join([h, p, b64u(bytes(raw))])


def alg_none(tok):
    h, p, _ = tok.split(".")
    header = json.loads(b64u_decode(h))
    header["alg"] = "none"
    return ".".join([b64u(json.dumps(header, separators=(",", ":")).encode()), p, ""])


# ---------------------------------------------------------------------------
# One database, two instances (A and B), shared by the module
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(module_tokend, module_start_server):
    t = module_tokend
    t.account("acme", "--name", "Acme", "--key-limit", "200")
    t.account("other", "--name", "Other", "--key-limit", "20")
    t.scopes("read", "write")
    a = module_start_server(t, token_lifetime="10m", token_lifetime_max="30m", cache_ttl="1h")
    b = module_start_server(t, issuer=a.issuer, token_lifetime="10m", token_lifetime_max="30m",
                            cache_ttl="1h")
    intro = new_key(t, "acme", "introspector", INTROSPECT)
    intro_other = new_key(t, "other", "introspector", INTROSPECT)
    res = new_key(t, "acme", "resource client", "read write", "--subject", "svc-billing")
    res_other = new_key(t, "other", "resource client", "read")
    return NS(t=t, a=a, b=b, intro=intro, intro_other=intro_other, res=res, res_other=res_other)


# ===========================================================================
# Point 6: metadata
# ===========================================================================
def test_metadata_advertises_introspection_and_revocation(env):
    for srv in (env.a, env.b):
        r = srv.get("/.well-known/oauth-authorization-server")
        assert r.status == 200, r
        m = r.json()
        assert m["introspection_endpoint"] == env.a.issuer + "/oauth2/introspect", m
        assert m["revocation_endpoint"] == env.a.issuer + "/oauth2/revoke", m
        im = m.get("introspection_endpoint_auth_methods_supported")
        rm = m.get("revocation_endpoint_auth_methods_supported")
        assert isinstance(im, list) and {"client_secret_basic", "client_secret_post"} <= set(im), m
        assert isinstance(rm, list) and {"client_secret_basic", "client_secret_post"} <= set(rm), m
        # Revocation takes client credentials only: nothing else may be advertised.
        assert set(rm) == {"client_secret_basic", "client_secret_post"}, m
        assert INTROSPECT in m.get("scopes_supported", []), m
    # The advertised endpoints are the ones that answer (405 for GET, not 404).
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        r = env.a.get(path)
        assert r.status == 405 and r.headers.get("allow") == "POST", r


# ===========================================================================
# Point 4: introspection — active tokens
# ===========================================================================
def test_active_token_answers_its_claims(env):
    tok = get_token(env.a, env.res)
    c = claims_of(tok)
    for srv in (env.a, env.b):
        for how in ("basic", "post"):
            r = introspect(srv, tok, env.intro, how=how)
            assert is_active(r), r
            body = r.json()
            assert r.headers.get("pragma") == "no-cache", r
            assert body["token_type"] == "Bearer"
            for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "acct"):
                assert body[k] == c[k], (k, body, c)
            assert body["client_id"] == env.res["client_id"]
            assert body["sub"] == "acme:svc-billing"
            assert body["acct"] == "acme"
            assert body["iss"] == env.a.issuer
            assert set(body["scope"].split()) == {"read", "write"}
            assert isinstance(body["exp"], int) and body["exp"] > time.time()
    # A narrower token says so.
    tok2 = get_token(env.a, env.res, scope="read")
    r = introspect(env.b, tok2, env.intro)
    assert is_active(r) and r.json()["scope"] == "read", r
    # The introspector's own token (tokend:introspect) is introspectable too.
    own = get_token(env.a, env.intro)
    assert is_active(introspect(env.a, own, env.intro))


def test_bearer_caller(env):
    tok = get_token(env.a, env.res)
    bearer = get_token(env.a, env.intro)
    r = introspect(env.b, tok, bearer=bearer)
    assert is_active(r), r
    assert r.json()["client_id"] == env.res["client_id"]
    # Bearer caller of another account: the token is not its business.
    bearer_other = get_token(env.a, env.intro_other)
    assert not is_active(introspect(env.a, tok, bearer=bearer_other))
    # A bearer token without tokend:introspect: 403 insufficient_scope.
    r = introspect(env.a, tok, bearer=tok)
    oauth_error(r, 403, "insufficient_scope")
    www = r.headers.get("www-authenticate", "")
    assert www.startswith("Bearer") and 'error="insufficient_scope"' in www, r
    # Garbage, tampered and alg-none bearer tokens: 401 invalid_token with a Bearer challenge.
    for bad in ("garbage", tamper_payload(bearer, scope=INTROSPECT + " read"), tamper_signature(bearer),
                alg_none(bearer), bearer + "x"):
        r = introspect(env.a, tok, bearer=bad)
        oauth_error(r, 401, "invalid_token")
        assert r.headers.get("www-authenticate") == 'Bearer error="invalid_token"', r
    # A tampered bearer claiming the scope is not an introspector either.
    forged = tamper_payload(tok, scope=INTROSPECT)
    oauth_error(introspect(env.a, tok, bearer=forged), 401, "invalid_token")


def test_bearer_caller_whose_key_is_gone(env):
    """A bearer caller's token dies with its key and with its own revocation."""
    t = env.t
    tok = get_token(env.a, env.res)
    k1 = new_key(t, "acme", "bearer introspector 1", INTROSPECT)
    b1 = get_token(env.a, k1)
    assert is_active(introspect(env.a, tok, bearer=b1))
    t.run("key", "revoke", k1["client_id"], "--reason", "test", check=0)
    for srv in (env.a, env.b):
        r = introspect(srv, tok, bearer=b1)
        oauth_error(r, 401, "invalid_token")
        assert r.headers.get("www-authenticate") == 'Bearer error="invalid_token"', r
    # A bearer token revoked by its own client (RFC 7009) stops working as a credential.
    k2 = new_key(t, "acme", "bearer introspector 2", INTROSPECT)
    b2 = get_token(env.a, k2)
    assert is_active(introspect(env.a, tok, bearer=b2))
    assert revoke(env.a, b2, k2).status == 200
    oauth_error(introspect(env.b, tok, bearer=b2), 401, "invalid_token")


def test_bearer_caller_must_be_a_token_for_tokend(env):
    """Issue 10, finding 5: a token for a resource server (aud without tokend's issuer)
    is not a credential at tokend's own endpoints, whatever scopes it carries."""
    tok = get_token(env.a, env.res)
    k = new_key(env.t, "acme", "billing introspector", INTROSPECT, "--audience", "https://billing.internal")
    foreign = get_token(env.a, k)
    assert claims_of(foreign)["aud"] == "https://billing.internal"
    for srv in (env.a, env.b):
        r = introspect(srv, tok, bearer=foreign)
        oauth_error(r, 401, "invalid_token")
        assert r.headers.get("www-authenticate") == 'Bearer error="invalid_token"', r
    # With the issuer among its audiences, the same kind of key is a bearer caller.
    k2 = new_key(env.t, "acme", "dual introspector", INTROSPECT, "--audience", "https://billing.internal",
                 "--audience", env.a.issuer)
    assert is_active(introspect(env.a, tok, bearer=get_token(env.a, k2)))


def test_token_near_the_size_limit_is_introspected_and_revoked(env):
    """Issue 10, finding 6a: the largest tokens tokend issues (many long audiences, scopes and
    a long subject) are accepted by introspection and revocation, also as a bearer credential,
    with the default body and header limits."""
    t = env.t
    scopes = [f"big{i}:" + "s" * 116 for i in range(7)]
    t.scopes(*scopes)
    auds = [env.a.issuer] + [f"https://aud{i:02d}.example/" + "a" * 229 for i in range(15)]
    extra = []
    for a in auds:
        extra += ["--audience", a]
    big = new_key(t, "acme", "big tokens", " ".join(scopes + [INTROSPECT]), "--subject", "u" * 100, *extra)
    r = env.a.token(big, form=[("grant_type", "client_credentials")] + [("resource", a) for a in auds[1:]])
    assert r.status == 200, r
    tok = r.json()["access_token"]                   # every audience but the issuer
    assert 6000 < len(tok) <= 8192, len(tok)
    mine = get_token(env.a, big)
    assert 6000 < len(mine) <= 8192, len(mine)
    r = introspect(env.a, tok, env.intro)
    assert is_active(r), r
    assert r.json()["aud"] == auds[1:]
    # The big token as the caller's own bearer credential (an Authorization header of ~8 KiB).
    assert is_active(introspect(env.b, tok, bearer=mine))
    # Revoked by its own client, then inactive.
    assert revoke(env.a, tok, big).status == 200
    assert not is_active(introspect(env.b, tok, env.intro))
    # The body parameter is bounded by the same limit: one byte over is refused.
    over = "a" * 8193
    r = introspect(env.a, over, env.intro)
    assert r.status in (400, 413), r


# ===========================================================================
# Point 4: the caller must be authorized
# ===========================================================================
def test_caller_authentication_and_scope(env):
    t = env.t
    tok = get_token(env.a, env.res)
    # No credentials at all: 401 invalid_client with a Basic challenge.
    r = introspect(env.a, tok)
    oauth_error(r, 401, "invalid_client")
    assert r.headers.get("www-authenticate", "").startswith("Basic"), r
    # Wrong secret, unknown key, malformed Basic.
    wrong = dict(env.intro, client_secret=make_secret())
    for caller in (wrong, {"client_id": make_key_id(), "client_secret": make_secret()}):
        for how in ("basic", "post"):
            oauth_error(introspect(env.a, tok, caller, how=how), 401, "invalid_client")
    oauth_error(introspect(env.a, tok, headers={"Authorization": "Basic !!!"}), 401, "invalid_client")
    # A valid client without tokend:introspect: 403 insufficient_scope, never an answer about the token.
    for how in ("basic", "post"):
        oauth_error(introspect(env.a, tok, env.res, how=how), 403, "insufficient_scope")
    # The token parameter is required (with valid credentials): 400 invalid_request.
    oauth_error(post(env.a, "/oauth2/introspect", {}, key=env.intro), 400, "invalid_request")
    oauth_error(post(env.a, "/oauth2/introspect", {"token": ""}, key=env.intro), 400, "invalid_request")
    # Parameters in the query string, or not a form: refused.
    r = env.a.request("POST", "/oauth2/introspect?token=" + tok, "",
                      {"Content-Type": FORM, "Authorization": basic(env.intro["client_id"],
                                                                    env.intro["client_secret"])})
    oauth_error(r, 400, "invalid_request")
    r = post(env.a, "/oauth2/introspect", key=env.intro, headers={"Content-Type": "application/json"},
             raw_body=json.dumps({"token": tok}))
    oauth_error(r, 400, "invalid_request")
    # A disabled introspector key is not a credential any more (on every instance).
    k = new_key(t, "acme", "introspector 3", INTROSPECT)
    assert is_active(introspect(env.b, tok, k))
    t.run("key", "disable", k["client_id"], check=0)
    wait_until(lambda: introspect(env.b, tok, k).status == 401, timeout=1.0,
               what="a disabled introspector key refused on instance B")
    oauth_error(introspect(env.a, tok, k), 401, "invalid_client")


# ===========================================================================
# Point 4: everything else is inactive
# ===========================================================================
def test_invalid_tokens_are_inactive(env):
    tok = get_token(env.a, env.res)
    assert is_active(introspect(env.a, tok, env.intro))
    bad = {
        "garbage": "garbage",
        "empty segments": "..",
        "not a jwt": "eyJhbGciOiJFUzI1NiJ9",
        "tampered payload (scope)": tamper_payload(tok, scope="read write admin"),
        "tampered payload (acct)": tamper_payload(tok, acct="other"),
        "tampered payload (exp)": tamper_payload(tok, exp=claims_of(tok)["exp"] + 3600),
        "tampered signature": tamper_signature(tok),
        "alg none": alg_none(tok),
        "truncated": tok[:-10],
        "padded": tok + "=",
        "a key ID": env.res["client_id"],
    }
    for what, t in bad.items():
        for srv in (env.a, env.b):
            r = introspect(srv, t, env.intro)
            assert not is_active(r), f"{what}: {r}"


def test_other_account_token_is_inactive(env):
    tok = get_token(env.a, env.res_other)
    # It is active for its own account's introspector...
    assert is_active(introspect(env.a, tok, env.intro_other))
    # ...and exactly {"active": false} for anyone else's (no claim leaks).
    for srv in (env.a, env.b):
        assert not is_active(introspect(srv, tok, env.intro))
    mine = get_token(env.a, env.res)
    assert not is_active(introspect(env.a, mine, env.intro_other))


def test_other_issuer_and_other_signing_key_are_inactive(env, start_server):
    """A token of a second tokend (same database and account) that the first did not issue."""
    # Same signing key, another issuer: only the issuer check can tell.
    c = start_server(env.t, issuer="https://other-issuer.example")
    tok_c = get_token(c, env.res)
    assert claims_of(tok_c)["iss"] == "https://other-issuer.example"
    assert is_active(introspect(c, tok_c, env.intro)), "control: the issuing instance says active"
    for srv in (env.a, env.b):
        assert not is_active(introspect(srv, tok_c, env.intro))
    # Same issuer string, another signing key (unknown kid): not ours either.
    d = start_server(env.t, keys=("es256b",), issuer=env.a.issuer)
    tok_d = get_token(d, env.res)
    assert is_active(introspect(d, tok_d, env.intro)), "control: the issuing instance says active"
    for srv in (env.a, env.b):
        assert not is_active(introspect(srv, tok_d, env.intro))
    # And the other way round.
    tok_a = get_token(env.a, env.res)
    assert not is_active(introspect(c, tok_a, env.intro))
    assert not is_active(introspect(d, tok_a, env.intro))


def test_expired_token_is_inactive(env):
    """A token past its exp is inactive: the authorization server judges its own
    tokens on its own clock (no clock-skew leeway in its favour)."""
    k = new_key(env.t, "acme", "short tokens", "read", "--token-lifetime", "1s")
    tok = get_token(env.a, k)
    c = claims_of(tok)
    assert c["exp"] - c["iat"] == 1, c
    # Wait until the token is expired by the server's own clock (exp is in seconds).
    wait_until(lambda: time.time() >= c["exp"] + 1.0, timeout=5, interval=0.05, what="token expiry")
    for srv in (env.a, env.b):
        r = introspect(srv, tok, env.intro)
        assert r.status == 200, r
        assert r.json() == INACTIVE, (
            f"a token that expired at {c['exp']} (now {time.time():.1f}) is still introspected as "
            f"{r.json()} (RFC 7662 §2.2: active means 'not expired')")


# ===========================================================================
# Point 4: the key or account changes, from the moment it is made
# ===========================================================================
@pytest.mark.parametrize("action", ["disable", "revoke", "delete"])
def test_key_state_change_makes_tokens_inactive_at_once(env, action):
    t = env.t
    k = new_key(t, "acme", f"victim {action}", "read")
    toks = [get_token(env.a, k), get_token(env.b, k)]
    for srv in (env.a, env.b):
        for tok in toks:
            assert is_active(introspect(srv, tok, env.intro)), (srv.port, tok)
    if action == "revoke":
        t.run("key", "revoke", k["client_id"], "--reason", "leaked", check=0)
    else:
        # A key used seconds ago needs --force to be deleted (issue 10, finding 7).
        t.run("key", action, k["client_id"], *(["--force"] if action == "delete" else []), check=0)
    t_done = time.monotonic()
    # Immediately: no waiting, on both instances.
    answers = [(srv.port, is_active(introspect(srv, tok, env.intro))) for srv in (env.a, env.b) for tok in toks]
    delay = time.monotonic() - t_done
    assert not any(a for _, a in answers), f"after `key {action}` returned, still active: {answers}"
    note_timing(f"introspection inactive after key {action}", f"4 answers, the last {delay * 1000:.0f} ms "
                f"after the CLI returned (no wait)")
    if action == "disable":
        t.run("key", "enable", k["client_id"], check=0)
        for srv in (env.a, env.b):
            for tok in toks:
                assert is_active(introspect(srv, tok, env.intro)), "re-enabled key: tokens active again"


def test_account_disable_makes_tokens_inactive_at_once(env):
    """Account disabled: none of its tokens is active for anyone, on both instances, at once.

    The account's own introspector is disabled with it, so its Basic credentials get
    401 invalid_client and a bearer token it minted before gets 401 invalid_token;
    another account's introspector gets {"active": false}. Re-enabled: active again."""
    t = env.t
    acct = f"acct-{time.monotonic_ns() % 10**9}"
    t.account(acct, "--key-limit", "5")
    intro = new_key(t, acct, "introspector", INTROSPECT)
    k = new_key(t, acct, "victim", "read")
    toks = [get_token(env.a, k), get_token(env.b, k)]
    bearer = get_token(env.b, intro)
    for srv in (env.a, env.b):
        for tok in toks:
            assert is_active(introspect(srv, tok, intro))
            assert is_active(introspect(srv, tok, bearer=bearer))
    t.run("account", "disable", acct, check=0)
    for srv in (env.a, env.b):
        for tok in toks:
            r = introspect(srv, tok, bearer=bearer)
            oauth_error(r, 401, "invalid_token")
            assert not is_active(introspect(srv, tok, env.intro))
    # The Basic caller: its cached key is dropped by NOTIFY within 1 s on both instances.
    for srv in (env.a, env.b):
        wait_until(lambda: introspect(srv, toks[0], intro).status == 401, timeout=1.0,
                   what="the disabled account's introspector refused")
        oauth_error(introspect(srv, toks[0], intro), 401, "invalid_client")
    t.run("account", "enable", acct, check=0)
    for srv in (env.a, env.b):
        wait_until(lambda: introspect(srv, toks[1], intro).status == 200, timeout=1.0,
                   what="the re-enabled account's introspector accepted")
        for tok in toks:
            assert is_active(introspect(srv, tok, intro))
            assert is_active(introspect(srv, tok, bearer=bearer))


def test_key_expiry_makes_tokens_inactive(env):
    k = new_key(env.t, "acme", "expiring", "read", "--expires-in", "3s")
    tok = get_token(env.a, k)
    exp_key = env.t.json("key", "show", k["client_id"])
    assert is_active(introspect(env.b, tok, env.intro)), exp_key
    t0 = time.monotonic()
    # Within about 3 s both instances say inactive (the key expired; no NOTIFY for that).
    wait_until(lambda: not is_active(introspect(env.b, tok, env.intro)), timeout=6, interval=0.1,
               what="an expired key's token inactive")
    assert not is_active(introspect(env.a, tok, env.intro))
    assert time.monotonic() - t0 <= 4.5


# ===========================================================================
# Done when: CLI revoke, second instance answers inactive within 1 s
# ===========================================================================
def test_cli_revoke_inactive_on_second_instance_within_1s(env):
    t = env.t
    k = new_key(t, "acme", "revoked through the CLI", "read write")
    tok = get_token(env.a, k)
    # Instance B has seen the token (and the introspector is cached there).
    for _ in range(3):
        assert is_active(introspect(env.b, tok, env.intro))
    t.run("key", "revoke", k["client_id"], "--reason", "done-when test", check=0)
    t_returned = time.monotonic()
    seen = []
    while True:
        r = introspect(env.b, tok, env.intro)
        now = time.monotonic()
        seen.append((round((now - t_returned) * 1000, 1), r.status, r.body[:40]))
        if r.status == 200 and r.json() == INACTIVE:
            break
        assert now - t_returned <= 1.0, f"instance B still not inactive 1 s after the CLI returned: {seen}"
        time.sleep(0.01)
    delay = now - t_returned
    msg = (f"{delay * 1000:.1f} ms from `tokend key revoke` returning to instance B answering "
           f"active:false ({len(seen)} request(s))")
    print("\n" + msg)
    note_timing("CLI key revoke -> introspection inactive on instance B", msg)
    assert delay <= 1.0
    # Instance A agrees; the key's state is revoked.
    assert not is_active(introspect(env.a, tok, env.intro))
    assert env.t.json("key", "show", k["client_id"])["state"] == "revoked"


# ===========================================================================
# Point 5: revocation (RFC 7009)
# ===========================================================================
def test_revoke_own_token(env):
    t = env.t
    k = new_key(t, "acme", "self-revoking", "read")
    tok = get_token(env.a, k)
    keep = get_token(env.a, k)
    c = claims_of(tok)
    assert is_active(introspect(env.b, tok, env.intro))
    r = revoke(env.a, tok, k, hint="access_token")
    assert r.status == 200, r
    no_store(r)
    # Inactive at once on both instances; the key's other tokens are untouched.
    for srv in (env.a, env.b):
        assert not is_active(introspect(srv, tok, env.intro))
        assert is_active(introspect(srv, keep, env.intro))
    # The key still gets tokens, and they are active.
    assert is_active(introspect(env.b, get_token(env.b, k), env.intro))
    # Kept by jti until the token expires.
    rows = t.dicts("SELECT jti, key_id, account_id, extract(epoch FROM expires_at)::bigint AS exp "
                   "FROM revoked_tokens WHERE jti = %s", (c["jti"],))
    assert rows == [{"jti": c["jti"], "key_id": k["client_id"], "account_id": "acme", "exp": c["exp"]}], rows
    # Audited: one token.revoke row, by the client.
    audit = t.dicts("SELECT actor, action, account_id, key_id, detail FROM audit_log "
                    "WHERE action = 'token.revoke' AND key_id = %s", (k["client_id"],))
    assert len(audit) == 1, audit
    assert audit[0]["actor"] == f"client:{k['client_id']}", audit
    assert audit[0]["account_id"] == "acme" and audit[0]["detail"]["jti"] == c["jti"], audit
    # Before its expiry the row cannot be removed (the database says so).
    with pytest.raises(Exception, match="kept until it expires"):
        t.query("DELETE FROM revoked_tokens WHERE jti = %s", (c["jti"],))
    # Revoking again (and with client_secret_post, and another hint): still 200, one row.
    for how, hint in (("basic", None), ("post", "refresh_token"), ("post", "access_token")):
        r = revoke(env.b, tok, k, hint=hint, how=how)
        assert r.status == 200, r
    assert t.query("SELECT count(*) FROM revoked_tokens WHERE jti = %s", (c["jti"],))[0][0] == 1
    assert len(t.query("SELECT 1 FROM audit_log WHERE action = 'token.revoke' AND key_id = %s",
                       (k["client_id"],))) == 1
    # Revocation needs no special scope (the client revokes its own token), and works
    # on instance B for a token minted by A.
    tok2 = get_token(env.a, k)
    assert revoke(env.b, tok2, k, how="post").status == 200
    assert not is_active(introspect(env.a, tok2, env.intro))


def test_revoke_invalid_tokens_answer_200(env):
    """RFC 7009 §2.2: an invalid token (garbage, tampered, expired, foreign issuer) is not an error."""
    t = env.t
    k = new_key(t, "acme", "revoker", "read")
    short = new_key(t, "acme", "short-lived", "read", "--token-lifetime", "1s")
    expired = get_token(env.a, short)
    tok = get_token(env.a, k)
    n0 = t.query("SELECT count(*) FROM revoked_tokens")[0][0]
    for bad in ("garbage", "..", tamper_payload(tok, jti="A" * 22), tamper_signature(tok), alg_none(tok),
                env.res["client_id"]):
        r = revoke(env.a, bad, k)
        assert r.status == 200, (bad[:40], r)
        no_store(r)
    assert t.query("SELECT count(*) FROM revoked_tokens")[0][0] == n0, "an invalid token was recorded"
    # An expired token: 200 too (nothing left to revoke).
    c = claims_of(expired)
    wait_until(lambda: time.time() >= c["exp"] + 1.0, timeout=5, what="token expiry")
    r = revoke(env.a, expired, short)
    assert r.status == 200, r
    # The valid token was not affected by any of these.
    assert is_active(introspect(env.a, tok, env.intro))


def test_revoke_foreign_token_refused(env):
    t = env.t
    k1 = new_key(t, "acme", "client one", "read")
    k2 = new_key(t, "acme", "client two", "read")
    tok2 = get_token(env.a, k2)
    tok_other = get_token(env.a, env.res_other)
    n0 = t.query("SELECT count(*) FROM revoked_tokens")[0][0]
    # Another client's token (same account, and another account's): 400 unauthorized_client.
    for tok in (tok2, tok_other):
        for how in ("basic", "post"):
            oauth_error(revoke(env.a, tok, k1, how=how), 400, "unauthorized_client")
    assert t.query("SELECT count(*) FROM revoked_tokens")[0][0] == n0
    assert is_active(introspect(env.b, tok2, env.intro))
    assert is_active(introspect(env.b, tok_other, env.intro_other))
    # No credentials: 401 invalid_client with a Basic challenge; bad ones too.
    r = revoke(env.a, tok2)
    oauth_error(r, 401, "invalid_client")
    assert r.headers.get("www-authenticate", "").startswith("Basic"), r
    oauth_error(revoke(env.a, tok2, dict(k2, client_secret=make_secret())), 401, "invalid_client")
    # Client credentials only: a bearer token is no credential here, even the token's own.
    oauth_error(revoke(env.a, tok2, bearer=tok2), 401, "invalid_client")
    # Missing token: 400 invalid_request.
    oauth_error(post(env.a, "/oauth2/revoke", {}, key=k2), 400, "invalid_request")
    # A disabled client cannot revoke (even its own token).
    t.run("key", "disable", k2["client_id"], check=0)
    wait_until(lambda: revoke(env.a, tok2, k2).status == 401, timeout=1.0, what="disabled client refused")
    assert t.query("SELECT count(*) FROM revoked_tokens")[0][0] == n0


# ===========================================================================
# SECURITY E5: PostgreSQL down
# ===========================================================================
@pytest.mark.slow
def test_introspection_and_revocation_while_postgres_is_down(tokend, start_server, pg_restarter):
    pg = pg_restarter
    t = tokend
    t.account("acme", "--key-limit", "10")
    t.scopes("read")
    intro = new_key(t, "acme", "introspector", INTROSPECT)
    k = new_key(t, "acme", "client", "read")
    srv = start_server(t, db_timeout="1s", cache_ttl="1h")
    valid = get_token(srv, k)
    revoked = get_token(srv, k)
    assert revoke(srv, revoked, k).status == 200
    bearer = get_token(srv, intro)
    # Warm: the introspector's key is cached, both answers known.
    for _ in range(2):
        assert is_active(introspect(srv, valid, intro))
        assert not is_active(introspect(srv, revoked, intro))
    pg.stop("fast")
    try:
        answers = []
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            for name, tok, kw in (("valid", valid, {"caller": intro}), ("revoked", revoked, {"caller": intro}),
                                  ("valid/bearer", valid, {"bearer": bearer}),
                                  ("revoked/bearer", revoked, {"bearer": bearer})):
                r = introspect(srv, tok, **kw)
                answers.append((name, r.status, r.body[:80]))
                assert r.status == 503, f"{name} while PostgreSQL is down: {r} (all: {answers[-8:]})"
                oauth_error(r, 503, "temporarily_unavailable")
                assert r.headers.get("retry-after"), r
                assert r.elapsed < 3.0, f"{name}: answered after {r.elapsed:.1f} s"
            # Revocation cannot be committed: 503, never 200.
            r = revoke(srv, valid, k)
            oauth_error(r, 503, "temporarily_unavailable")
            time.sleep(0.2)
    finally:
        pg.start()
    # Back: within 3 s the answers are right again, and the failed revocation did not happen.
    wait_until(lambda: introspect(srv, valid, intro).status == 200, timeout=5, interval=0.1,
               what="introspection answering after PostgreSQL is back")
    assert is_active(introspect(srv, valid, intro))
    assert not is_active(introspect(srv, revoked, intro))
    assert t.query("SELECT count(*) FROM revoked_tokens")[0][0] == 1
