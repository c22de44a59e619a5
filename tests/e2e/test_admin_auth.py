"""
End-to-end tests of the admin REST API under /admin/v1/ (issue 4, point 1):
authentication and authorisation: bearer tokens of this tokend only (401 with
the Bearer challenge otherwise, crafted and real wrong-audience, expired,
foreign-key, tampered tokens), scopes read < write < operator (403
insufficient_scope naming the scope), a key disabled, revoked or deleted (or its
account disabled, or the token revoked) mid-session is refused on the very next
request; the admin listener of its own.

One database and one server are shared by the module (support/admin.py: the
`env` fixture; max_body_size raised to 1 MiB so that the admin API's own 64 KiB
body limit is what answers). Each test works in accounts of its own, so tests do
not see each other's keys. At the end of the module every admin response it
received and its servers' logs are scanned for secrets, hashes and the pepper.
The admin API tests are test_admin_*.py (one file per section); the OpenAPI
document is test_openapi.py.

SECURITY.md rows: D8 (BOLA/BFLA/BOPLA).
"""
import base64
import json
import os
import time
import urllib.parse

import jwt
import pytest

# env: the module-scoped fixture shared by the admin modules (support/admin.py)
from support.admin import (A, Admin, NOBODY, OPERATOR, READ, WRITE, env, insufficient, new_account, ok, pair,
                           send, snapshot, unauthenticated)
from support.http import http_request, token_request
from support.keys import make_key_id, thumbprint
from support.registry import remember_token
from support.server import get_token, new_key

pytestmark = pytest.mark.binary


# ---------------------------------------------------------------------------
# 1. Authentication and authorisation
# ---------------------------------------------------------------------------
def _b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def resign(env, tok, key_path=None, header=None, drop=(), **claims):
    """The claims of a real token, changed, signed again with the server's signing key (or another)."""
    c = jwt.decode(tok, options={"verify_signature": False})
    c.update(claims)
    for k in drop:
        c.pop(k, None)
    h = {"kid": thumbprint(env.signing), "typ": "at+jwt"}
    h.update(header or {})
    pem = open(key_path or env.signing, "rb").read()
    out = jwt.encode(c, pem, algorithm="ES256", headers=h)
    remember_token(out)
    return out


def test_no_or_bad_bearer_token_is_401(env):
    t = env.t
    acct, adm = pair(env, "authn")
    now = int(time.time())
    good = adm.token
    assert ok(adm.get("account"))["id"] == acct
    # The crafting itself is right: the same claims signed again are accepted.
    assert ok(adm.get("account", token=resign(env, good, jti=_b64u(os.urandom(16)))))["id"] == acct
    wrong_aud_key = new_key(t, acct, "other audience", WRITE, "--audience", "https://other.example")
    wrong_aud = get_token(env.srv, wrong_aud_key)
    assert jwt.decode(wrong_aud, options={"verify_signature": False})["aud"] in ("https://other.example",
                                                                              ["https://other.example"])
    h, p, s = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=="))
    payload["scope"] = "tokend:operator"
    tampered = f"{h}.{_b64u(json.dumps(payload).encode())}.{s}"
    bad = {
        "no header": None,
        "Basic": "Basic " + base64.b64encode(f"{adm.id}:{adm.key['client_secret']}".encode()).decode(),
        "empty bearer": "Bearer ",
        "garbage": "Bearer not-a-token",
        "the key secret as bearer": "Bearer " + adm.key["client_secret"],
        "token of another audience": "Bearer " + wrong_aud,
        "tampered payload": "Bearer " + tampered,
        "truncated signature": "Bearer " + good[:-4],
        "signed by another key": "Bearer " + resign(env, good, key_path=env.other_signing),
        "expired": "Bearer " + resign(env, good, exp=now - 120, iat=now - 720, nbf=now - 720),
        "not yet valid": "Bearer " + resign(env, good, nbf=now + 600, iat=now, exp=now + 900),
        "other issuer": "Bearer " + resign(env, good, iss="https://evil.example"),
        "other audience (crafted)": "Bearer " + resign(env, good, aud="https://api.example"),
        "typ JWT": "Bearer " + resign(env, good, header={"typ": "JWT"}),
        "no acct": "Bearer " + resign(env, good, drop=("acct",)),
        "no jti": "Bearer " + resign(env, good, drop=("jti",)),
        "unknown key": "Bearer " + resign(env, good, client_id=make_key_id(), sub="x"),
        "alg none": "Bearer " + _b64u(b'{"alg":"none","typ":"at+jwt"}') + "." + p + ".",
    }
    before = snapshot(t)
    for what, authz in bad.items():
        for method, path, body in (("GET", "account", NOBODY), ("GET", "keys", NOBODY),
                                   ("POST", "keys", {"name": "x", "scopes": ["read"]})):
            r = send(env.port, method, path, body, headers={"Authorization": authz} if authz else {})
            try:
                unauthenticated(r)
            except AssertionError as e:
                raise AssertionError(f"{what}: {method} {path}: {e}")
    assert snapshot(t) == before
    # "bearer" is case-insensitive (RFC 7235 auth-scheme).
    assert ok(send(env.port, "GET", "account", headers={"Authorization": "bearer " + good}))["id"] == acct


def test_scopes_are_enforced(env):
    t = env.t
    acct = new_account(env, "authz")
    none = Admin(env, acct, "read orders:read")
    rd = Admin(env, acct, READ)
    wr = Admin(env, acct, WRITE)
    target = new_key(t, acct, "target", "read")["client_id"]
    both = new_key(t, acct, "write and orders", f"{WRITE} orders:read")
    before = snapshot(t)
    for path in ("account", "keys", f"keys/{target}", "scopes", "audit", f"accounts/{acct}"):
        insufficient(none.get(path), READ)
        ok(rd.get(path))
    writes = [("POST", "keys", {"name": "x", "scopes": ["read"]}), ("PATCH", f"keys/{target}", {"name": "y"}),
              ("POST", f"keys/{target}/disable", NOBODY), ("POST", f"keys/{target}/enable", NOBODY),
              ("POST", f"keys/{target}/revoke", {"reason": "r"}), ("DELETE", f"keys/{target}", NOBODY)]
    for method, path, body in writes:      # the 403 names the scope the operation needs
        insufficient(none.req(method, path, body), WRITE)
        insufficient(rd.req(method, path, body), WRITE)
    operator_only = [("GET", "accounts", NOBODY), ("POST", "accounts", {"id": "nope"}),
                     ("PATCH", f"accounts/{acct}", {"key_limit": 100}), ("POST", "scopes", {"name": "nope"})]
    for method, path, body in operator_only:
        for who in (none, rd, wr):
            insufficient(who.req(method, path, body), OPERATOR)
    # The token's scopes count, not the key's: a token narrowed to orders:read is no admin token.
    narrow = get_token(env.srv, both, scope="orders:read")
    insufficient(send(env.port, "GET", "account", token=narrow), READ)
    assert snapshot(t) == before
    # Higher scopes imply lower ones.
    ok(wr.get("keys"))
    ok(env.op.get("keys"))


def test_key_unusable_mid_session_is_401_at_once(env):
    """The token's key disabled, revoked or deleted, its account disabled, or the token revoked:
    the very next admin request is 401 (no cache, no delay)."""
    t = env.t
    acct = new_account(env, "midsession")
    adm = Admin(env, acct, WRITE)
    ok(adm.get("account"))
    t.run("key", "disable", adm.id, check=0)
    unauthenticated(adm.get("account"))
    t.run("key", "enable", adm.id, check=0)
    ok(adm.get("account"))
    t.run("account", "disable", acct, check=0)
    unauthenticated(adm.get("account"))
    t.run("account", "enable", acct, check=0)
    ok(adm.get("account"))
    t.run("key", "revoke", adm.id, "--reason", "mid-session", check=0)
    unauthenticated(adm.get("account"))
    unauthenticated(adm.post("keys", {"name": "after revoke", "scopes": ["read"]}))

    adm2 = Admin(env, acct, WRITE)
    ok(adm2.get("keys"))
    t.run("key", "delete", adm2.id, "--force", check=0)
    unauthenticated(adm2.get("keys"))

    # Revoked through the API by an operator (NOTIFY-free path: read on every request).
    adm3 = Admin(env, acct, WRITE)
    ok(adm3.get("keys"))
    ok(env.op.post(f"keys/{adm3.id}/revoke", {"reason": "operator says so"}))
    unauthenticated(adm3.get("keys"))

    # Disabled through the API by a colleague, then re-enabled.
    adm4, adm5 = Admin(env, acct, WRITE), Admin(env, acct, WRITE)
    ok(adm5.post(f"keys/{adm4.id}/disable"))
    unauthenticated(adm4.get("keys"))
    ok(adm5.post(f"keys/{adm4.id}/enable"))
    ok(adm4.get("keys"))

    # The token itself revoked (RFC 7009) by its client: refused; another token of the key is not.
    keep = get_token(env.srv, adm4.key)
    r = env.srv.request("POST", "/oauth2/revoke", urllib.parse.urlencode({"token": adm4.token}),
                        {"Content-Type": "application/x-www-form-urlencoded",
                         "Authorization": "Basic " + base64.b64encode(
                             f"{adm4.id}:{adm4.key['client_secret']}".encode()).decode()})
    assert r.status == 200, r
    unauthenticated(adm4.get("keys"))
    ok(adm4.get("keys", token=keep))


def test_admin_api_on_its_own_listener(env, start_server):
    """admin_listen_port: the admin API (and /healthz) there, 127.0.0.1; no longer on the main port."""
    from support.util import free_port
    aport = free_port()
    srv = start_server(env.t, admin_listen_port=aport)
    acct = new_account(env, "listener")
    k = new_key(env.t, acct, "listener admin", READ)
    tok = get_token(srv, k)
    r = send(srv.port, "GET", "account", token=tok)
    assert r.status == 404, r
    unauthenticated(send(aport, "GET", "account"))
    assert ok(send(aport, "GET", "account", token=tok))["id"] == acct
    r = http_request(aport, "GET", f"{A}/openapi.yaml")
    assert r.status == 200 and r.body.startswith(b"openapi: 3.1"), r
    assert http_request(aport, "GET", "/healthz").status == 200
    # The token endpoint answers there too (the console signs in beside the API):
    # the same checks, so no credentials is a 401 and the key gets its token.
    assert http_request(aport, "POST", "/oauth2/token", "grant_type=client_credentials",
                        {"Content-Type": "application/x-www-form-urlencoded"}).status == 401
    r = token_request(aport, {"grant_type": "client_credentials"}, auth=(k["client_id"], k["client_secret"]))
    assert r.status == 200, r
    atok = r.json()["access_token"]
    remember_token(atok)
    assert ok(send(aport, "GET", "account", token=atok))["id"] == acct
    assert http_request(aport, "POST", "/oauth2/introspect", "token=x",
                        {"Content-Type": "application/x-www-form-urlencoded"}).status == 404
