"""
End-to-end tests of the admin REST API under /admin/v1/ (issue 4, points 1-4
and 7; point 5, the OpenAPI document, is test_openapi.py).

One database and one server are shared by the module (max_body_size raised
to 1 MiB so that the admin API's own 64 KiB body limit is what answers; one
test checks the default configuration). Each test works in accounts of its
own, so tests do not see each other's keys.

  1. authentication and authorisation: bearer tokens of this tokend only (401
     with the Bearer challenge otherwise, crafted and real wrong-audience,
     expired, foreign-key, tampered tokens), scopes read < write < operator
     (403 insufficient_scope naming the scope), a key disabled, revoked or
     deleted (or its account disabled, or the token revoked) mid-session is
     refused on the very next request; the admin listener of its own;
  2. every endpoint: accounts, scopes, the whole key lifecycle (the secret
     once; list with filters and cursor pagination; rename, disable, enable,
     revoke, delete with recently_used), the audit log;
  3. rules: the active-key limit (also 20 concurrent creates against a limit
     of 3), Idempotency-Key (also concurrent retries), the scope catalogue and
     tokend:operator, account administrators confined to their own account;
  4. bad input: a table of malformed, unknown, mistyped, oversized and
     out-of-range inputs -> 400 (413 for the body size) with error,
     error_description and field, and nothing changes in the database;
  7. every change writes one audit row (actor admin:<key ID>, address
     127.0.0.1); no secret, hash or pepper in any admin response except the one
     create response, nor in the server's log.

Tests named test_bug_* are strict xfails recording defects found in the
implementation (see each docstring); they fail (XPASS) once fixed.

SECURITY.md rows: A8 (admin JSON), D5 (key-limit TOCTOU), D8 (BOLA/BFLA/BOPLA).
"""
import base64
import datetime as dt
import json
import os
import re
import threading
import time
import urllib.parse

import jwt
import psycopg2
import pytest

from conftest import SECRET_FIND_RE, SECRET_RE, KEY_ID_RE, make_key_id, parse_ts, utcnow, wait_until
from server import PEPPERS, SERVERS, get_token, http_request, new_key, remember_token, thumbprint

pytestmark = pytest.mark.binary

A = "/admin/v1"
READ, WRITE, OPERATOR = "tokend:admin:read", "tokend:admin:write", "tokend:operator"
KEY_FIELDS = {"client_id", "account", "name", "hint", "masked", "scopes", "audiences", "subject", "state",
              "created_at", "created_by", "expires_at", "last_used_at", "disabled_at", "revoked_at",
              "revoked_by", "revoke_reason", "token_lifetime", "rate_limit"}
ACCOUNT_FIELDS = {"id", "name", "key_limit", "active_keys", "scopes", "created_at", "disabled_at"}
EVENT_FIELDS = {"id", "at", "actor", "action", "account", "key", "address", "detail"}

# Every admin response of the module, for the final secret scan: (label, status, body bytes).
RESPONSES = []
# Secrets the admin API returned (never remembered in the CLI registry: they are
# shown by an HTTP response, not by a command's output).
API_SECRETS = []
NOBODY = object()


class NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def send(port, method, path, body=NOBODY, *, token=None, headers=None):
    """One admin request; dict/list bodies are sent as JSON. Records the response."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    data = None
    if body is not NOBODY:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    r = http_request(port, method, path if path.startswith("/") else f"{A}/{path}", data, h)
    RESPONSES.append((f"{method} {path}", r.status, r.body))
    if r.status == 201 and r.body.startswith(b"{"):
        s = r.json().get("client_secret")
        if s:
            API_SECRETS.append(s)
    return r


class Admin:
    """An admin identity: a key made with the CLI in `account` holding `scopes`, and a token of it."""

    def __init__(self, env, account, scopes, name=None, *extra):
        self.env = env
        self.account = account
        self.key = new_key(env.t, account, name or f"admin {scopes}"[:100], scopes, *extra)
        self.id = self.key["client_id"]
        self.token = get_token(env.srv, self.key)
        self.actor = f"admin:{self.id}"

    def req(self, method, path, body=NOBODY, headers=None, token=None):
        return send(self.env.srv.port, method, path, body, token=token or self.token, headers=headers)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=NOBODY, **kw):
        return self.req("POST", path, body, **kw)

    def patch(self, path, body=NOBODY, **kw):
        return self.req("PATCH", path, body, **kw)

    def put(self, path, body=NOBODY, **kw):
        return self.req("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)


def ok(r, status=200):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    assert r.headers.get("cache-control") == "no-store", r
    return r.json()


def refused(r, status, error, field=NOBODY):
    """An error answer: status, JSON {error, error_description[, field][, scope]}, no-store."""
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    assert r.headers.get("cache-control") == "no-store", r
    body = r.json()
    assert body.get("error") == error, r
    assert isinstance(body.get("error_description"), str) and body["error_description"], r
    assert set(body) <= {"error", "error_description", "field", "scope"}, r
    if field is not NOBODY:
        assert body.get("field") == field, f"expected field {field!r}: {r!r}"
    return body


def unauthenticated(r):
    body = refused(r, 401, "invalid_token")
    assert r.headers["www-authenticate"] == 'Bearer realm="tokend-admin", error="invalid_token"', r
    return body


def insufficient(r, scope):
    body = refused(r, 403, "insufficient_scope")
    assert body["scope"] == scope, r
    assert r.headers["www-authenticate"] == \
        f'Bearer realm="tokend-admin", error="insufficient_scope", scope="{scope}"', r
    return body


def check_key(k, *, secret=False):
    want = KEY_FIELDS | ({"client_secret"} if secret else set())
    assert set(k) == want, sorted(set(k) ^ want)
    assert KEY_ID_RE.match(k["client_id"]), k
    assert re.fullmatch(r"[0-9A-Za-z]{4}", k["hint"]) and k["masked"] == "tks_..." + k["hint"], k
    parse_ts(k["created_at"])
    return k


_CONNS = {}


def snapshot(t):
    """Everything an admin request could change (but last_used_at, which moves by itself)."""
    conn = _CONNS.get(t.db_url)
    if conn is None or conn.closed:
        conn = _CONNS[t.db_url] = psycopg2.connect(t.db_url, connect_timeout=10)
        conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(SNAPSHOT_SQL)
        return cur.fetchone()


SNAPSHOT_SQL = ("""
        SELECT (SELECT count(*) FROM api_keys), (SELECT count(*) FROM audit_log),
               (SELECT count(*) FROM accounts), (SELECT count(*) FROM scopes),
               (SELECT count(*) FROM idempotency_keys), (SELECT count(*) FROM revoked_tokens),
               (SELECT md5(coalesce(string_agg(concat_ws('|', id, account_id, name, scopes, audiences, subject,
                        expires_at, token_lifetime, disabled_at, revoked_at, revoked_by, revoke_reason,
                        deleted_at, rate_limit), ',' ORDER BY id), '')) FROM api_keys),
               (SELECT md5(coalesce(string_agg(concat_ws('|', id, name, key_limit, disabled_at), ','
                        ORDER BY id), '')) FROM accounts),
               (SELECT md5(coalesce(string_agg(concat_ws('|', name, description), ',' ORDER BY name), ''))
                  FROM scopes)""")


def audit_since(t, after_id):
    return t.dicts("SELECT id, actor, action, account_id, key_id, address, detail FROM audit_log "
                   "WHERE id > %s ORDER BY id", (after_id,))


def max_audit(t):
    return t.query("SELECT coalesce(max(id), 0) FROM audit_log")[0][0]


_ACCOUNT_SEQ = [0]


def new_account(env, prefix, limit=20):
    _ACCOUNT_SEQ[0] += 1
    name = f"{prefix}-{_ACCOUNT_SEQ[0]}"
    env.t.account(name, "--key-limit", str(limit))
    env.t.grant_scopes(name, "read", "write", "orders:read")
    return name


def create(admin, body, status=201, headers=None):
    r = admin.post("keys", body, headers=headers)
    k = ok(r, status)
    check_key(k, secret=True)
    if status == 201:
        assert SECRET_RE.match(k["client_secret"]), "bad client_secret format"
        assert k["client_secret"].endswith(k["hint"]), k["hint"]
        assert r.headers["location"] == f"{A}/keys/{k['client_id']}", r
    return k


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(module_tokend, module_start_server, signing_keys):
    t = module_tokend
    t.account("ops", "--name", "Operators", "--key-limit", "100")
    t.scopes("read", "write", "orders:read")
    srv = module_start_server(t, max_body_size=1048576, token_lifetime_max="1h")
    e = NS(t=t, srv=srv, port=srv.port, signing=signing_keys["es256"], other_signing=signing_keys["es256b"])
    e.op = Admin(e, "ops", OPERATOR, "operator")
    yield e
    conn = _CONNS.pop(t.db_url, None)
    if conn is not None:
        conn.close()


def pair(env, prefix, limit=20, scopes=WRITE):
    """A fresh account with an admin of it."""
    acct = new_account(env, prefix, limit)
    return acct, Admin(env, acct, scopes)


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
    from conftest import free_port
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
    assert http_request(aport, "POST", "/oauth2/token", "grant_type=client_credentials",
                        {"Content-Type": "application/x-www-form-urlencoded"}).status == 404


# ---------------------------------------------------------------------------
# 2. Endpoints
# ---------------------------------------------------------------------------
def test_accounts(env):
    t = env.t
    op = env.op
    acct, adm = pair(env, "acct", limit=4, scopes=READ)
    me = ok(adm.get("account"))
    assert set(me) == ACCOUNT_FIELDS, me
    assert me["id"] == acct and me["key_limit"] == 4 and me["active_keys"] == 1 and me["disabled_at"] is None
    assert ok(adm.get(f"accounts/{acct}")) == me
    insufficient(adm.get("accounts/ops"), OPERATOR)
    insufficient(adm.get("accounts/no-such-account"), OPERATOR)   # existence is not revealed

    name = f"globex-{os.getpid()}"
    mark = max_audit(t)
    new = ok(op.post("accounts", {"id": name, "name": "Globex Corp", "key_limit": 7}), 201)
    assert set(new) == ACCOUNT_FIELDS and new["id"] == name and new["name"] == "Globex Corp"
    assert new["key_limit"] == 7 and new["active_keys"] == 0
    dflt = ok(op.post("accounts", {"id": name + "-d"}), 201)
    assert dflt["key_limit"] == 3 and dflt["name"] == ""
    refused(op.post("accounts", {"id": name}), 409, "conflict")
    listed = ok(op.get("accounts"))["accounts"]
    ids = [a["id"] for a in listed]
    assert ids == sorted(ids) and {name, name + "-d", acct, "ops"} <= set(ids)
    assert ok(op.get(f"accounts/{name}")) == new
    refused(op.get("accounts/no-such-account"), 404, "not_found")
    refused(op.patch("accounts/no-such-account", {"key_limit": 5}), 404, "not_found")

    assert ok(op.patch(f"accounts/{name}", {"key_limit": 9}))["key_limit"] == 9
    changed = ok(op.patch(f"accounts/{name}", {"name": "Globex"}))
    assert changed["key_limit"] == 9 and changed["name"] == "Globex"
    assert ok(op.patch(f"accounts/{name}", {})) == changed       # nothing to change
    dis = ok(op.patch(f"accounts/{name}", {"disabled": True}))
    assert parse_ts(dis["disabled_at"])
    assert ok(op.patch(f"accounts/{name}", {"disabled": False}))["disabled_at"] is None
    rows = t.dicts("SELECT id, name, key_limit, disabled_at FROM accounts WHERE id = %s", (name,))
    assert rows == [{"id": name, "name": "Globex", "key_limit": 9, "disabled_at": None}]
    acts = [(e["action"], e["account_id"], e["actor"], e["address"]) for e in audit_since(t, mark)]
    assert acts == [("account.create", name, op.actor, "127.0.0.1"),
                    ("account.create", name + "-d", op.actor, "127.0.0.1"),
                    ("account.set_limit", name, op.actor, "127.0.0.1"),
                    ("account.rename", name, op.actor, "127.0.0.1"),
                    ("account.disable", name, op.actor, "127.0.0.1"),
                    ("account.enable", name, op.actor, "127.0.0.1")], acts

    # A limit set by the operator is the account's limit.
    ok(op.patch(f"accounts/{acct}", {"key_limit": 2}))
    assert ok(adm.get("account"))["key_limit"] == 2
    # Disabling an account makes its keys' tokens unusable, here and at the token endpoint.
    ok(op.patch(f"accounts/{acct}", {"disabled": True}))
    unauthenticated(adm.get("account"))
    wait_until(lambda: env.srv.token(adm.key).status == 401, timeout=2, what="a disabled account's key refused")
    ok(op.patch(f"accounts/{acct}", {"disabled": False}))
    ok(adm.get("account"))
    wait_until(lambda: env.srv.token(adm.key).status == 200, timeout=2, what="a re-enabled account's key")


def test_scopes_catalogue(env):
    op = env.op
    acct, adm = pair(env, "scopes")
    listed = ok(adm.get("scopes"))["scopes"]
    names = [s["name"] for s in listed]
    assert names == sorted(names)
    assert {"tokend:admin:read", "tokend:admin:write", "tokend:operator", "tokend:introspect", "read"} <= set(names)
    for s in listed:
        assert set(s) == {"name", "description", "created_at"}, s
    sname = f"reports:{os.getpid()}"
    # Not in the catalogue yet: a key cannot hold it.
    refused(adm.post("keys", {"name": "reports", "scopes": [sname]}), 400, "invalid_scope")
    new = ok(op.post("scopes", {"name": sname, "description": "Read reports"}), 201)
    assert new["name"] == sname and new["description"] == "Read reports" and parse_ts(new["created_at"])
    assert ok(op.post("scopes", {"name": sname + "x"}), 201)["description"] == ""
    refused(op.post("scopes", {"name": sname}), 409, "conflict")
    assert sname in [s["name"] for s in ok(adm.get("scopes"))["scopes"]]
    # In the catalogue, but not granted to the account: refused until the operator grants it.
    refused(adm.post("keys", {"name": "reports", "scopes": [sname]}), 403, "forbidden_scope", "scopes")
    grant(env, acct, sname)
    k = create(adm, {"name": "reports", "scopes": [sname]})
    assert get_token(env.srv, k)


def test_key_lifecycle(env):
    t = env.t
    acct, adm = pair(env, "life")
    mark = max_audit(t)
    k = create(adm, {"name": "billing job", "scopes": ["read", "write"]})
    kid, secret = k["client_id"], k["client_secret"]
    assert k["account"] == acct and k["name"] == "billing job" and sorted(k["scopes"]) == ["read", "write"]
    assert k["state"] == "enabled" and k["created_by"] == adm.actor and k["audiences"] == []
    assert k["subject"] is None and k["expires_at"] is None and k["token_lifetime"] is None
    assert abs((parse_ts(k["created_at"]) - utcnow()).total_seconds()) < 60
    # The secret works at the token endpoint.
    tok = get_token(env.srv, k)
    assert jwt.decode(tok, options={"verify_signature": False})["client_id"] == kid
    # Read back: the same key, masked, never the secret.
    got = ok(adm.get(f"keys/{kid}"))
    check_key(got)
    assert {f: got[f] for f in KEY_FIELDS - {"last_used_at"}} == {f: k[f] for f in KEY_FIELDS - {"last_used_at"}}
    listed = ok(adm.get("keys"))
    assert kid in [x["client_id"] for x in listed["keys"]] and listed["next_cursor"] is None
    # Rename.
    assert ok(adm.patch(f"keys/{kid}", {"name": "billing job (2026)"}))["name"] == "billing job (2026)"
    # Disable: the token endpoint refuses it (within 1 s); disabling again changes nothing.
    d = ok(adm.post(f"keys/{kid}/disable"))
    assert d["state"] == "disabled" and parse_ts(d["disabled_at"])
    wait_until(lambda: env.srv.token(k).status == 401, timeout=2, what="a disabled key to be refused")
    assert ok(adm.post(f"keys/{kid}/disable", {}))["disabled_at"] == d["disabled_at"]
    # Enable: tokens again.
    e = ok(adm.post(f"keys/{kid}/enable"))
    assert e["state"] == "enabled" and e["disabled_at"] is None
    wait_until(lambda: env.srv.token(k).status == 200, timeout=2, what="a re-enabled key to work")
    # Revoke with a reason: permanent.
    rv = ok(adm.post(f"keys/{kid}/revoke", {"reason": "leaked in CI logs"}))
    assert rv["state"] == "revoked" and rv["revoke_reason"] == "leaked in CI logs"
    assert rv["revoked_by"] == adm.actor and parse_ts(rv["revoked_at"])
    wait_until(lambda: env.srv.token(k).status == 401, timeout=2, what="a revoked key to be refused")
    before = snapshot(t)
    refused(adm.post(f"keys/{kid}/revoke", {"reason": "again"}), 409, "revoked")
    refused(adm.post(f"keys/{kid}/enable"), 409, "revoked")
    refused(adm.post(f"keys/{kid}/disable"), 409, "revoked")
    assert snapshot(t) == before
    # Still listed (for the audit), as revoked; a revoked key's name may still change.
    assert ok(adm.get(f"keys/{kid}"))["state"] == "revoked"
    assert [x["state"] for x in ok(adm.get("keys?state=revoked"))["keys"]] == ["revoked"]
    assert ok(adm.patch(f"keys/{kid}", {"name": "revoked billing job"}))["name"] == "revoked billing job"
    # Delete (used in the last 24 h: confirm), then gone.
    wait_until(lambda: t.query("SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = %s", (kid,))[0][0],
               timeout=5, what="last_used_at to be flushed")
    refused(adm.delete(f"keys/{kid}"), 409, "recently_used")
    gone = ok(adm.delete(f"keys/{kid}?confirm=true"))
    assert gone["state"] == "deleted" and gone["client_id"] == kid
    refused(adm.get(f"keys/{kid}"), 404, "not_found")
    refused(adm.delete(f"keys/{kid}?confirm=true"), 404, "not_found")
    refused(adm.patch(f"keys/{kid}", {"name": "zombie"}), 404, "not_found")
    refused(adm.post(f"keys/{kid}/revoke"), 404, "not_found")
    assert kid not in [x["client_id"] for x in ok(adm.get("keys"))["keys"]]
    assert env.srv.token(k).status == 401
    # The audit trail of the key, newest first, by this admin from 127.0.0.1.
    ev = ok(adm.get(f"audit?key={kid}"))["events"]
    assert [e["action"] for e in ev] == ["key.delete", "key.rename", "key.revoke", "key.enable", "key.disable",
                                         "key.rename", "key.create"], ev
    for e in ev:
        assert set(e) == EVENT_FIELDS and e["actor"] == adm.actor and e["address"] == "127.0.0.1", e
        assert e["key"] == kid and e["account"] == acct
    assert ev[2]["detail"] == {"reason": "leaked in CI logs"}
    assert ev[-2]["detail"] == {"from": "billing job", "to": "billing job (2026)"}
    assert len(audit_since(t, mark)) == 7
    assert secret not in json.dumps(ev)


def test_key_attributes_reach_its_tokens(env):
    acct, adm = pair(env, "attrs")
    exp = (utcnow() + dt.timedelta(days=30)).replace(microsecond=0)
    k = create(adm, {"name": "svc", "scopes": ["read", "write"], "audiences": ["https://api.example.com", "urn:x"],
                     "subject": "svc-billing", "expires_at": exp.isoformat().replace("+00:00", "Z"),
                     "token_lifetime": 300})
    assert k["audiences"] == ["https://api.example.com", "urn:x"] and k["subject"] == "svc-billing"
    assert parse_ts(k["expires_at"]) == exp and k["token_lifetime"] == 300
    c = jwt.decode(get_token(env.srv, k, scope="read", resource="https://api.example.com"),
                   options={"verify_signature": False})
    assert c["sub"] == f"{acct}:svc-billing" and c["scope"] == "read" and c["acct"] == acct
    assert c["aud"] in ("https://api.example.com", ["https://api.example.com"]) and c["exp"] - c["iat"] == 300
    # An offset is accepted and normalised to UTC.
    k2 = create(adm, {"name": "offset", "scopes": ["read"], "expires_at": "2099-01-01T02:00:00+02:00"})
    assert k2["expires_at"] == "2099-01-01T00:00:00Z"
    # The server maximum itself is accepted.
    assert create(adm, {"name": "max", "scopes": ["read"], "token_lifetime": 3600})["token_lifetime"] == 3600


def test_delete_recently_used_needs_confirmation(env):
    t = env.t
    acct, adm = pair(env, "delete")
    unused = create(adm, {"name": "never used", "scopes": ["read"]})
    assert ok(adm.delete(f"keys/{unused['client_id']}"))["state"] == "deleted"
    used = create(adm, {"name": "used", "scopes": ["read"]})
    get_token(env.srv, used)
    wait_until(lambda: t.query("SELECT last_used_at FROM api_keys WHERE id = %s", (used["client_id"],))[0][0],
               timeout=5, what="last_used_at to be flushed")
    assert parse_ts(ok(adm.get(f"keys/{used['client_id']}"))["last_used_at"])
    before = snapshot(t)
    for q in ("", "?confirm=false", "?confirm=0", "?confirm=yes"):
        body = refused(adm.delete(f"keys/{used['client_id']}{q}"), 409, "recently_used")
        assert "24 hours" in body["error_description"] and "confirm" in body["error_description"]
    assert snapshot(t) == before
    assert ok(adm.delete(f"keys/{used['client_id']}?confirm=1"))["state"] == "deleted"
    assert t.query("SELECT deleted_at IS NOT NULL FROM api_keys WHERE id = %s", (used["client_id"],)) == [(True,)]


def test_delete_right_after_first_use_is_recently_used(env, start_server):
    """Issue 10, finding 7: a key used seconds ago is "used in the last 24 hours" although
    the batched last-used marks are flushed later (here every 10 minutes): on the instance
    that issued the token, on another instance, and for the local CLI."""
    t = env.t
    slow = start_server(t, issuer=env.srv.issuer, last_used_flush_interval="10m")
    other = start_server(t, issuer=env.srv.issuer, last_used_flush_interval="10m")
    acct, adm = pair(env, "delete-fresh")
    # The instance that issued the token answers the DELETE.
    k1 = create(adm, {"name": "fresh 1", "scopes": ["read"]})
    get_token(slow, k1)
    r = send(slow.port, "DELETE", f"keys/{k1['client_id']}", token=adm.token)
    refused(r, 409, "recently_used")
    # Another instance (and the database) see the first use within a moment.
    k2 = create(adm, {"name": "fresh 2", "scopes": ["read"]})
    get_token(slow, k2)
    wait_until(lambda: t.query("SELECT last_used_at FROM api_keys WHERE id = %s", (k2["client_id"],))[0][0],
               timeout=2, what="the first use to reach the database")
    refused(send(other.port, "DELETE", f"keys/{k2['client_id']}", token=adm.token), 409, "recently_used")
    r = t.run("key", "delete", k2["client_id"], check=None)
    assert r.returncode != 0 and "24 hours" in (r.stdout + r.stderr), r
    assert t.query("SELECT deleted_at FROM api_keys WHERE id = %s", (k1["client_id"],)) == [(None,)]
    # Confirmed, both go.
    assert ok(send(slow.port, "DELETE", f"keys/{k1['client_id']}?confirm=1", token=adm.token))["state"] == "deleted"
    assert ok(adm.delete(f"keys/{k2['client_id']}?confirm=true"))["state"] == "deleted"


def test_list_filters_and_cursor_pagination(env):
    acct, adm = pair(env, "pages", limit=50)
    made = [create(adm, {"name": f"{'Alpha' if i % 3 == 0 else 'beta'} key {i}", "scopes": ["read"]})
            for i in range(8)]
    ids = [adm.id] + [k["client_id"] for k in made]
    ok(adm.post(f"keys/{ids[2]}/disable"))
    ok(adm.post(f"keys/{ids[3]}/disable"))
    ok(adm.post(f"keys/{ids[4]}/revoke"))
    ok(adm.delete(f"keys/{ids[5]}"))
    live = [i for i in ids if i != ids[5]]
    # All pages of 3, cursor chained: every key once, in creation order; deleted keys absent.
    seen, cursor, pages = [], None, 0
    while True:
        q = "keys?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = ok(adm.get(q))
        assert set(page) == {"keys", "next_cursor"}
        assert len(page["keys"]) <= 3
        for k in page["keys"]:
            check_key(k)
        seen += [k["client_id"] for k in page["keys"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["keys"]) == 3
    assert seen == live and pages == 3, (seen, live)
    created = [parse_ts(k["created_at"]) for k in ok(adm.get("keys"))["keys"]]
    assert created == sorted(created)
    # Filters, alone and with pagination.
    assert [k["client_id"] for k in ok(adm.get("keys?state=disabled"))["keys"]] == [ids[2], ids[3]]
    assert [k["client_id"] for k in ok(adm.get("keys?state=revoked"))["keys"]] == [ids[4]]
    assert ok(adm.get("keys?state=expired"))["keys"] == []
    enabled = [k["client_id"] for k in ok(adm.get("keys?state=enabled"))["keys"]]
    assert enabled == [i for i in live if i not in (ids[2], ids[3], ids[4])]
    alpha = [k["name"] for k in ok(adm.get("keys?name=ALPHA"))["keys"]]
    assert alpha == ["Alpha key 0", "Alpha key 3", "Alpha key 6"], alpha   # case-insensitive, substring
    p1 = ok(adm.get("keys?name=alpha&limit=2"))
    p2 = ok(adm.get(f"keys?name=alpha&limit=2&cursor={p1['next_cursor']}"))
    assert [k["name"] for k in p1["keys"] + p2["keys"]] == alpha and p2["next_cursor"] is None
    assert ok(adm.get("keys?name=" + urllib.parse.quote("%")))["keys"] == []    # not a LIKE pattern
    assert len(ok(adm.get("keys?limit=200"))["keys"]) == len(live)
    assert len(ok(adm.get("keys?limit=1"))["keys"]) == 1


def test_audit_log_endpoint(env):
    acct, adm = pair(env, "audit")
    k = create(adm, {"name": "audited", "scopes": ["read"]})
    for i in range(3):
        ok(adm.patch(f"keys/{k['client_id']}", {"name": f"audited {i}"}))
    ok(adm.post(f"keys/{k['client_id']}/revoke", {"reason": "done"}))
    full = ok(adm.get("audit"))
    assert set(full) == {"events", "next_cursor"} and full["next_cursor"] is None
    ev = full["events"]
    # account.create (CLI), the scopes granted to the account (setup: read, write, orders:read,
    # then the admin's tokend:admin:write), key.create of the admin (CLI), then this test's five,
    # newest first.
    assert [e["action"] for e in ev] == ["key.revoke", "key.rename", "key.rename", "key.rename", "key.create",
                                         "key.create"] + ["account.grant_scope"] * 4 + ["account.create"], ev
    assert sorted(e["detail"]["scope"] for e in ev[6:10]) == sorted(["read", "write", "orders:read", WRITE])
    assert [e["id"] for e in ev] == sorted((e["id"] for e in ev), reverse=True)
    for e in ev:
        assert set(e) == EVENT_FIELDS and e["account"] == acct and parse_ts(e["at"]), e
    assert ev[-1]["actor"].startswith("cli:") and ev[-1]["address"] is None and ev[-1]["key"] is None
    assert ev[5]["key"] == adm.id and ev[5]["detail"]["scopes"] == [WRITE]
    for e in ev[:5]:
        assert e["actor"] == adm.actor and e["address"] == "127.0.0.1" and e["key"] == k["client_id"], e
    # Pages of 2 by cursor: the same events.
    seen, cursor = [], None
    while True:
        page = ok(adm.get("audit?limit=2" + (f"&cursor={cursor}" if cursor else "")))
        seen += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert re.fullmatch(r"[0-9]+", cursor) and len(page["events"]) == 2
    assert seen == ev
    # Filter by key.
    assert [e["action"] for e in ok(adm.get(f"audit?key={adm.id}"))["events"]] == ["key.create"]
    assert ok(adm.get(f"audit?key={make_key_id()}"))["events"] == []
    # The operator reads any account's log with ?account=, and every event
    # (all accounts, and global ones such as scope.add) without it.
    assert ok(env.op.get(f"audit?account={acct}"))["events"] == ev
    everything = ok(env.op.get("audit?limit=200"))["events"]
    assert {e["id"] for e in ev} <= {e["id"] for e in everything}
    assert len({e["account"] for e in everything}) > 1


# ---------------------------------------------------------------------------
# 3. Rules
# ---------------------------------------------------------------------------
def test_active_key_limit(env):
    t = env.t
    acct, adm = pair(env, "limit", limit=3)          # the admin's own key is one of the 3
    a = create(adm, {"name": "a", "scopes": ["read"]})
    create(adm, {"name": "b", "scopes": ["read"]})
    before = snapshot(t)
    body = refused(adm.post("keys", {"name": "c", "scopes": ["read"]}), 409, "key_limit_reached")
    assert "limit of 3 active keys" in body["error_description"], body
    assert snapshot(t) == before
    assert ok(adm.get("account"))["active_keys"] == 3
    # A disabled key still counts; a revoked or deleted one does not.
    ok(adm.post(f"keys/{a['client_id']}/disable"))
    refused(adm.post("keys", {"name": "c", "scopes": ["read"]}), 409, "key_limit_reached")
    ok(adm.post(f"keys/{a['client_id']}/revoke"))
    c = create(adm, {"name": "c", "scopes": ["read"]})
    refused(adm.post("keys", {"name": "d", "scopes": ["read"]}), 409, "key_limit_reached")
    ok(adm.delete(f"keys/{c['client_id']}"))
    create(adm, {"name": "d", "scopes": ["read"]})
    # The operator raises the limit.
    ok(env.op.patch(f"accounts/{acct}", {"key_limit": 4}))
    create(adm, {"name": "e", "scopes": ["read"]})
    assert ok(adm.get("account"))["active_keys"] == 4


def _race(env, admin, body, n=20, headers=None):
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        barrier.wait()
        results[i] = admin.post("keys", dict(body, name=body["name"].replace("{i}", str(i))), headers=headers)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    return results


def test_concurrent_creates_race_the_limit(env):
    """SECURITY.md D5: 20 concurrent creates against a limit of 3: exactly 3 succeed, every trial."""
    t = env.t
    for trial in range(3):
        acct = new_account(env, "race", limit=3)
        mark = max_audit(t)
        results = _race(env, env.op, {"name": "race {i}", "scopes": ["read"], "account": acct})
        statuses = sorted(r.status for r in results)
        assert statuses == [201] * 3 + [409] * 17, statuses
        for r in results:
            if r.status == 409:
                refused(r, 409, "key_limit_reached")
        assert t.query("SELECT count(*) FROM api_keys WHERE account_id = %s", (acct,)) == [(3,)]
        creates = [e for e in audit_since(t, mark) if e["account_id"] == acct]
        assert [e["action"] for e in creates] == ["key.create"] * 3
    # An account administrator racing in its own account (its own key is one of 4).
    acct, adm = pair(env, "race-own", limit=4)
    results = _race(env, adm, {"name": "own {i}", "scopes": ["read"]})
    assert sorted(r.status for r in results) == [201] * 3 + [409] * 17
    assert ok(adm.get("account"))["active_keys"] == 4


def test_idempotent_create(env):
    t = env.t
    acct, adm = pair(env, "idem", limit=3)
    body = {"name": "idempotent", "scopes": ["read"], "token_lifetime": 60}
    first = create(adm, body, headers={"Idempotency-Key": "req-1"})
    before = snapshot(t)
    # Retries: same key, same body (member order and spacing do not matter) -> 200, the same key, no secret.
    for raw in (body, json.dumps(dict(reversed(list(body.items()))), indent=2)):
        r = adm.post("keys", raw, headers={"Idempotency-Key": "req-1"})
        again = ok(r, 200)
        assert r.headers["idempotent-replayed"] == "true" and r.headers["location"] == f"{A}/keys/{first['client_id']}"
        assert again["client_id"] == first["client_id"] and again["client_secret"] is None
        assert "secret" in again["note"] and set(again) == KEY_FIELDS | {"client_secret", "note"}
    assert snapshot(t) == before
    # The same Idempotency-Key with another body: 422, nothing created.
    refused(adm.post("keys", {**body, "name": "something else"}, headers={"Idempotency-Key": "req-1"}),
            422, "idempotency_mismatch")
    assert snapshot(t) == before
    # At the limit, a replay still answers the first result (not 409).
    create(adm, {"name": "fills the limit", "scopes": ["read"]})
    assert ok(adm.post("keys", body, headers={"Idempotency-Key": "req-1"}), 200)["client_id"] == first["client_id"]
    refused(adm.post("keys", body, headers={"Idempotency-Key": "req-2"}), 409, "key_limit_reached")
    # Idempotency keys are per target account: the operator reusing it for this account with another
    # body (it names the account) is a mismatch, not a second key.
    refused(env.op.post("keys", {**body, "account": acct}, headers={"Idempotency-Key": "req-1"}),
            422, "idempotency_mismatch")
    # Concurrent retries of one request: exactly one key.
    acct2, adm2 = pair(env, "idem-race", limit=20)
    results = _race(env, adm2, {"name": "once", "scopes": ["read"]}, n=10, headers={"Idempotency-Key": "boom"})
    statuses = sorted(r.status for r in results)
    assert statuses == [200] * 9 + [201], statuses
    assert len({r.json()["client_id"] for r in results}) == 1
    assert sum(1 for r in results if r.json()["client_secret"]) == 1
    assert t.query("SELECT count(*) FROM api_keys WHERE account_id = %s AND name = 'once'", (acct2,)) == [(1,)]


def test_scope_rules(env):
    t = env.t
    acct, adm = pair(env, "grant")
    before = snapshot(t)
    body = refused(adm.post("keys", {"name": "x", "scopes": ["read", "no:such:scope"]}), 400, "invalid_scope")
    assert "no:such:scope" in body["error_description"]
    body = refused(adm.post("keys", {"name": "x", "scopes": ["read", OPERATOR]}), 403, "forbidden_scope")
    assert "tokend:operator" in body["error_description"]
    assert "www-authenticate" not in adm.post("keys", {"name": "x", "scopes": [OPERATOR]}).headers
    assert snapshot(t) == before
    # Lesser admin scopes may be granted by an account administrator; tokend:operator only by an
    # operator, and (like every scope) once granted to the account.
    grant(env, acct, READ, OPERATOR)
    create(adm, {"name": "reader", "scopes": [READ]})
    k = create(env.op, {"name": "operator made by operator", "scopes": [OPERATOR], "account": acct})
    assert k["scopes"] == [OPERATOR] and k["account"] == acct


def test_account_admin_cannot_reach_another_account(env):
    """SECURITY.md D8 (BOLA): another account's key is 404 exactly like a missing one; ?account= is ignored."""
    t = env.t
    victim = new_account(env, "victim")
    vkey = new_key(t, victim, "victim key", "read")["client_id"]
    Admin(env, victim, WRITE)      # an audit trail in the victim's account
    acct, adm = pair(env, "attacker")
    mine = create(adm, {"name": "mine", "scopes": ["read"]})["client_id"]
    before = snapshot(t)
    missing = make_key_id()
    for method, tmpl, body in (("GET", "keys/{}", NOBODY), ("PATCH", "keys/{}", {"name": "pwned"}),
                               ("DELETE", "keys/{}?confirm=true", NOBODY), ("POST", "keys/{}/disable", NOBODY),
                               ("POST", "keys/{}/enable", NOBODY), ("POST", "keys/{}/revoke", {"reason": "x"})):
        a = refused(adm.req(method, tmpl.format(vkey), body), 404, "not_found")
        b = refused(adm.req(method, tmpl.format(missing), body), 404, "not_found")
        assert a["error_description"].replace(vkey, "ID") == b["error_description"].replace(missing, "ID"), (a, b)
    lst = ok(adm.get(f"keys?account={victim}"))["keys"]
    assert {k["account"] for k in lst} == {acct} and vkey not in [k["client_id"] for k in lst]
    ev = ok(adm.get(f"audit?account={victim}"))["events"]
    assert ev and {e["account"] for e in ev} == {acct}
    assert ok(adm.get(f"audit?key={vkey}"))["events"] == []
    insufficient(adm.post("keys", {"name": "x", "scopes": ["read"], "account": victim}), OPERATOR)
    insufficient(adm.get(f"accounts/{victim}"), OPERATOR)
    insufficient(adm.patch(f"accounts/{victim}", {"key_limit": 100}), OPERATOR)
    insufficient(adm.patch(f"accounts/{acct}", {"key_limit": 100}), OPERATOR)   # not even its own limit
    assert snapshot(t) == before
    # The operator reaches both.
    assert ok(env.op.get(f"keys/{vkey}"))["account"] == victim
    assert {k["client_id"] for k in ok(env.op.get(f"keys?account={victim}"))["keys"]} >= {vkey}
    assert ok(env.op.get(f"keys/{mine}"))["account"] == acct


# ---------------------------------------------------------------------------
# Issue 10, finding 1: an account administrator grants only what it holds
# (each test first replays the attack the red team made, which succeeded
# before the fix: 201 / 200 where these expect 403 / 400)
# ---------------------------------------------------------------------------
def grant(env, acct, *scopes):
    """The operator adds scopes to the account's allow-list (PUT replaces the whole list)."""
    have = ok(env.op.get(f"accounts/{acct}"))["scopes"]
    return ok(env.op.put(f"accounts/{acct}/scopes", {"scopes": sorted(set(have) | set(scopes))}))


def test_attack_scope_not_granted_to_the_account(env):
    t = env.t
    t.scopes("billing:admin")
    acct, adm = pair(env, "nogrant", scopes=f"{READ} {WRITE}")
    before = snapshot(t)
    body = refused(adm.post("keys", {"name": "x", "scopes": ["read", "billing:admin"]}), 403, "forbidden_scope",
                   "scopes")
    assert "billing:admin" in body["error_description"] and acct in body["error_description"], body
    assert snapshot(t) == before
    # Granted by the operator, the account's administrators may use it.
    assert "billing:admin" in grant(env, acct, "billing:admin")["scopes"]
    assert create(adm, {"name": "billing", "scopes": ["read", "billing:admin"]})["scopes"] == ["read", "billing:admin"]
    # The list binds the operator too: grant first.
    other = new_account(env, "nogrant-op")
    refused(env.op.post("keys", {"name": "x", "scopes": ["billing:admin"], "account": other}), 403,
            "forbidden_scope", "scopes")
    # Removing it stops new keys; the existing key keeps its scopes (immutable).
    lst = ok(env.op.put(f"accounts/{acct}/scopes", {"scopes": ["read", READ, WRITE]}))["scopes"]
    assert lst == sorted(["read", READ, WRITE]), lst
    refused(adm.post("keys", {"name": "y", "scopes": ["billing:admin"]}), 403, "forbidden_scope", "scopes")
    # Only operators manage the list; bad lists change nothing.
    insufficient(adm.put(f"accounts/{acct}/scopes", {"scopes": ["billing:admin"]}), OPERATOR)
    before = snapshot(t)
    refused(env.op.put(f"accounts/{acct}/scopes", {"scopes": ["no:such:scope"]}), 400, "invalid_scope", "scopes")
    refused(env.op.put(f"accounts/{acct}/scopes", {"scopes": "read"}), 400, "invalid_request", "scopes")
    refused(env.op.put(f"accounts/{acct}/scopes", {"scopes": ["read"], "x": 1}), 400, "invalid_request", "x")
    refused(env.op.put("accounts/no-such-account/scopes", {"scopes": ["read"]}), 404, "not_found")
    assert snapshot(t) == before


def test_attack_tokend_scopes_follow_the_delegation_rule(env):
    t = env.t
    acct, adm = pair(env, "deleg", scopes=f"{READ} {WRITE}")
    before = snapshot(t)
    for scope in ("tokend:introspect", OPERATOR):
        body = refused(adm.post("keys", {"name": "x", "scopes": ["read", scope]}), 403, "forbidden_scope", "scopes")
        assert scope in body["error_description"], body
    assert snapshot(t) == before
    # Granted to the account, still not delegable by an admin whose token lacks it.
    grant(env, acct, "tokend:introspect", OPERATOR)
    refused(adm.post("keys", {"name": "x", "scopes": ["tokend:introspect"]}), 403, "forbidden_scope", "scopes")
    refused(adm.post("keys", {"name": "x", "scopes": [OPERATOR]}), 403, "forbidden_scope", "scopes")
    # What its token holds it may pass on (write implies read).
    assert create(adm, {"name": "w", "scopes": [WRITE]})["scopes"] == [WRITE]
    assert create(adm, {"name": "r", "scopes": [READ]})["scopes"] == [READ]
    # The token counts, not the key: a token asked for fewer scopes delegates fewer.
    intro = Admin(env, acct, f"{WRITE} tokend:introspect", "intro admin")
    assert create(intro, {"name": "i", "scopes": ["tokend:introspect"]})["scopes"] == ["tokend:introspect"]
    narrow = Admin(env, acct, f"{WRITE} tokend:introspect", "narrow admin")
    narrow.token = get_token(env.srv, narrow.key, scope=WRITE)
    refused(narrow.post("keys", {"name": "n", "scopes": ["tokend:introspect"]}), 403, "forbidden_scope", "scopes")
    # Only the operator grants tokend:operator.
    assert create(env.op, {"name": "op", "scopes": [OPERATOR], "account": acct})["scopes"] == [OPERATOR]


def test_attack_key_outlives_its_creator(env):
    t = env.t
    acct = new_account(env, "outlive")
    adm = Admin(env, acct, f"{READ} {WRITE}", "expiring admin", "--expires-in", "1h")
    before = snapshot(t)
    body = refused(adm.post("keys", {"name": "forever", "scopes": ["read"]}), 400, "invalid_request", "expires_at")
    assert "expires_at" in body["error_description"], body
    later = (utcnow() + dt.timedelta(hours=2)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    refused(adm.post("keys", {"name": "later", "scopes": ["read"], "expires_at": later}), 400, "invalid_request",
            "expires_at")
    assert snapshot(t) == before
    sooner = (utcnow() + dt.timedelta(minutes=30)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert create(adm, {"name": "sooner", "scopes": ["read"], "expires_at": sooner})["expires_at"] == sooner
    # A creator without expiry creates keys without expiry.
    acct2, adm2 = pair(env, "outlive2", scopes=f"{READ} {WRITE}")
    assert create(adm2, {"name": "forever", "scopes": ["read"]})["expires_at"] is None


def test_attack_subject_is_never_another_accounts_identity(env):
    t = env.t
    victim = new_account(env, "subj-victim")
    vkey = new_key(t, victim, "victim key", "read")
    acct, adm = pair(env, "subj", scopes=f"{READ} {WRITE}")
    before = snapshot(t)
    for subject in (vkey["client_id"], make_key_id(), "tk_" + "A" * 28, "tk_x", "tks_" + "a" * 10):
        body = refused(adm.post("keys", {"name": "impostor", "scopes": ["read"], "subject": subject}), 400,
                       "invalid_request", "subject")
        assert "tk_" in body["error_description"], body
    assert snapshot(t) == before
    # A free-text subject is namespaced by the account in tokens; no subject: the key ID.
    k = create(adm, {"name": "member", "scopes": ["read"], "subject": "svc-billing"})
    c = jwt.decode(get_token(env.srv, k), options={"verify_signature": False})
    assert c["sub"] == f"{acct}:svc-billing" and c["acct"] == acct and c["client_id"] == k["client_id"], c
    v = jwt.decode(get_token(env.srv, vkey), options={"verify_signature": False})
    assert v["sub"] == vkey["client_id"], v
    # Two accounts choosing the same subject never share a sub.
    acct2, adm2 = pair(env, "subj2", scopes=f"{READ} {WRITE}")
    k2 = create(adm2, {"name": "member", "scopes": ["read"], "subject": "svc-billing"})
    c2 = jwt.decode(get_token(env.srv, k2), options={"verify_signature": False})
    assert c2["sub"] == f"{acct2}:svc-billing" != c["sub"]


def test_attack_account_admin_cannot_touch_an_operator_key(env):
    t = env.t
    acct = new_account(env, "opkey")
    opkey = new_key(t, acct, "operator in a tenant", OPERATOR)["client_id"]
    adm = Admin(env, acct, f"{READ} {WRITE}")
    before = snapshot(t)
    for method, path, body in (("POST", f"keys/{opkey}/disable", NOBODY),
                               ("POST", f"keys/{opkey}/revoke", {"reason": "mine now"}),
                               ("DELETE", f"keys/{opkey}?confirm=true", NOBODY),
                               ("PATCH", f"keys/{opkey}", {"name": "renamed"})):
        b = refused(adm.req(method, path, body), 403, "forbidden")
        assert OPERATOR in b["error_description"], b
    assert snapshot(t) == before
    assert ok(adm.get(f"keys/{opkey}"))["state"] == "enabled"
    # The operator may.
    assert ok(env.op.post(f"keys/{opkey}/disable"))["state"] == "disabled"
    refused(adm.post(f"keys/{opkey}/enable"), 403, "forbidden")
    assert ok(env.op.post(f"keys/{opkey}/enable"))["state"] == "enabled"


def test_attack_null_account_never_means_every_account(env):
    """Issue 11: a NULL account with operator=false refuses in the database functions."""
    t = env.t
    victim = new_account(env, "null-victim")
    vkey = new_key(t, victim, "victim key", "read")["client_id"]
    # The old signature, where NULL meant "any account", is gone.
    with pytest.raises(psycopg2.Error):
        t.query("SELECT tokend_admin_key_action('attacker', NULL, NULL, %s, 'disable', NULL, false)", (vkey,))
    for operator in ("false", "NULL"):
        with pytest.raises(psycopg2.Error) as e:
            t.query(f"SELECT tokend_admin_key_action('attacker', NULL, NULL, %s, 'disable', NULL, false,"
                    f" {operator})", (vkey,))
        assert "account" in str(e.value), e.value
        with pytest.raises(psycopg2.Error):
            t.query(f"SELECT tokend_admin_patch_key('attacker', NULL, NULL, %s, 'x', false, NULL, {operator})",
                    (vkey,))
    assert t.query("SELECT tokend_key_state(k) FROM api_keys k WHERE id = %s", (vkey,)) == [("enabled",)]


def test_attack_scope_string_longer_than_tokens_carry(env):
    """Finding 6b: a scope set whose joined string exceeds the scope-string limit (1024 bytes) is
    refused at creation, not accepted and then unusable (key_corrupt on every token request)."""
    t = env.t
    names = [f"long{i:02d}:" + "x" * 93 for i in range(11)]     # 11 x 100 bytes + 10 spaces = 1110
    t.seed_scopes(*names)
    acct, adm = pair(env, "longscopes", scopes=f"{READ} {WRITE}")
    before = snapshot(t)
    body = refused(adm.post("keys", {"name": "long", "scopes": names}), 400, "invalid_request", "scopes")
    assert "1024" in body["error_description"], body
    assert snapshot(t) == before
    # At the limit (10 x 100 + 9 spaces = 1009 bytes) it works end to end.
    grant(env, acct, *names[:10])
    k = create(adm, {"name": "long enough", "scopes": names[:10]})
    assert get_token(env.srv, k)


INVISIBLE = ["\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
             "\u2067", "\u2068", "\u2069", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad",
             "\u2028", "\u2029", "\U000e0041"]


def test_attack_invisible_and_bidi_characters_refused(env):
    """Finding 9: bidi controls, zero-width and other invisible format characters in key names,
    subjects and revocation reasons (the console displays them) are refused by the API and the database."""
    t = env.t
    acct, adm = pair(env, "bidi", scopes=f"{READ} {WRITE}")
    kid = create(adm, {"name": "plain", "scopes": ["read"]})["client_id"]
    before = snapshot(t)
    for ch in INVISIBLE:
        refused(adm.post("keys", {"name": f"payroll{ch}cod.exe", "scopes": ["read"]}), 400, "invalid_request", "name")
        refused(adm.post("keys", {"name": "x", "scopes": ["read"], "subject": f"svc{ch}"}), 400, "invalid_request",
                "subject")
        refused(adm.patch(f"keys/{kid}", {"name": f"a{ch}b"}), 400, "invalid_request", "name")
        refused(adm.post(f"keys/{kid}/revoke", {"reason": f"a{ch}b"}), 400, "invalid_request", "reason")
    assert snapshot(t) == before
    # Visible non-ASCII text stays welcome.
    assert ok(adm.patch(f"keys/{kid}", {"name": "Zahlungsdienst – Köln ✓"}))["name"] == "Zahlungsdienst – Köln ✓"
    # The database refuses them whatever client writes.
    for sql in ("UPDATE api_keys SET name = 'a' || chr(8238) || 'b' WHERE id = %s",
                "UPDATE api_keys SET revoked_at = now(), revoke_reason = chr(8203) WHERE id = %s"):
        with pytest.raises(psycopg2.Error):
            t.query(sql, (kid,))


# ---------------------------------------------------------------------------
# 4. Bad input: 400 (413) with error, error_description and field; nothing changes
# ---------------------------------------------------------------------------
def K(**kw):
    """A valid create body, changed."""
    b = {"name": "bad input", "scopes": ["read"]}
    b.update(kw)
    return {k: v for k, v in b.items() if v is not NOBODY}


N33 = '{"name":' + "[" * 32 + "]" * 32 + "}"          # 33 levels
CASES = [
    # (id, who, method, path, body, headers, status, error, field)
    ("malformed-json", "w", "POST", "keys", b'{"name": "a", "scopes": ["read"]', None, 400, "invalid_request", None),
    ("empty-body", "w", "POST", "keys", b"", None, 400, "invalid_request", None),
    ("array", "w", "POST", "keys", b"[]", None, 400, "invalid_request", None),
    ("string", "w", "POST", "keys", b'"name"', None, 400, "invalid_request", None),
    ("null", "w", "POST", "keys", b"null", None, 400, "invalid_request", None),
    ("number", "w", "POST", "keys", b"1", None, 400, "invalid_request", None),
    ("trailing-garbage", "w", "POST", "keys", b'{"name":"a","scopes":["read"]} x', None, 400, "invalid_request", None),
    ("duplicate-members", "w", "POST", "keys", b'{"name":"a","name":"b","scopes":["read"]}', None, 400,
     "invalid_request", None),
    ("nul-in-string", "w", "POST", "keys", b'{"name":"a\\u0000b","scopes":["read"]}', None, 400, "invalid_request", None),
    ("bad-utf8", "w", "POST", "keys", b'{"name":"a\xff","scopes":["read"]}', None, 400, "invalid_request", None),
    ("overlong-utf8", "w", "POST", "keys", b'{"name":"a\xc0\xaf","scopes":["read"]}', None, 400, "invalid_request", None),
    ("lone-surrogate", "w", "POST", "keys", b'{"name":"a\\ud800","scopes":["read"]}', None, 400, "invalid_request", None),
    ("huge-integer", "w", "POST", "keys", b'{"name":"a","scopes":["read"],"token_lifetime":99999999999999999999999}',
     None, 400, "invalid_request", None),
    ("nested-33", "w", "POST", "keys", N33.encode(), None, 400, "invalid_request", None),
    ("nested-20000", "w", "POST", "keys", b"[" * 20000 + b"]" * 20000, None, 400, "invalid_request", None),
    ("5000-members", "w", "POST", "keys", json.dumps({f"k{i}": i for i in range(5000)}, separators=(",", ":")).encode(), None, 400,
     "invalid_request", NOBODY),
    ("unknown-member", "w", "POST", "keys", K(owner="x"), None, 400, "invalid_request", "owner"),
    ("unknown-member-secret", "w", "POST", "keys", K(client_secret="tks_x"), None, 400, "invalid_request", "client_secret"),
    ("name-missing", "w", "POST", "keys", K(name=NOBODY), None, 400, "invalid_request", "name"),
    ("name-null", "w", "POST", "keys", K(name=None), None, 400, "invalid_request", "name"),
    ("name-number", "w", "POST", "keys", K(name=5), None, 400, "invalid_request", "name"),
    ("name-array", "w", "POST", "keys", K(name=["a"]), None, 400, "invalid_request", "name"),
    ("name-empty", "w", "POST", "keys", K(name=""), None, 400, "invalid_request", "name"),
    ("name-101", "w", "POST", "keys", K(name="x" * 101), None, 400, "invalid_request", "name"),
    ("name-newline", "w", "POST", "keys", K(name="a\nb"), None, 400, "invalid_request", "name"),
    ("name-tab", "w", "POST", "keys", K(name="a\tb"), None, 400, "invalid_request", "name"),
    ("name-escape", "w", "POST", "keys", K(name="a\x1b[31mb"), None, 400, "invalid_request", "name"),
    ("name-del", "w", "POST", "keys", K(name="a\x7fb"), None, 400, "invalid_request", "name"),
    ("scopes-missing", "w", "POST", "keys", K(scopes=NOBODY), None, 400, "invalid_request", "scopes"),
    ("scopes-string", "w", "POST", "keys", K(scopes="read"), None, 400, "invalid_request", "scopes"),
    ("scopes-number-item", "w", "POST", "keys", K(scopes=[1]), None, 400, "invalid_request", "scopes"),
    ("scopes-empty", "w", "POST", "keys", K(scopes=[]), None, 400, "invalid_request", "scopes"),
    ("scopes-duplicate", "w", "POST", "keys", K(scopes=["read", "write", "read"]), None, 400, "invalid_request", "scopes"),
    ("scopes-33", "w", "POST", "keys", K(scopes=[f"s{i}" for i in range(33)]), None, 400, "invalid_request", "scopes"),
    ("scopes-bad-token", "w", "POST", "keys", K(scopes=["read write"]), None, 400, "invalid_request", "scopes"),
    ("scopes-empty-token", "w", "POST", "keys", K(scopes=[""]), None, 400, "invalid_request", "scopes"),
    ("scopes-unknown", "w", "POST", "keys", K(scopes=["read", "nope"]), None, 400, "invalid_scope", NOBODY),
    ("audiences-string", "w", "POST", "keys", K(audiences="https://a"), None, 400, "invalid_request", "audiences"),
    ("audiences-number-item", "w", "POST", "keys", K(audiences=[1]), None, 400, "invalid_request", "audiences"),
    ("audiences-space", "w", "POST", "keys", K(audiences=["https://a b"]), None, 400, "invalid_request", "audiences"),
    ("audiences-quote", "w", "POST", "keys", K(audiences=['https://a"b']), None, 400, "invalid_request", "audiences"),
    ("audiences-empty-item", "w", "POST", "keys", K(audiences=[""]), None, 400, "invalid_request", "audiences"),
    ("audiences-duplicate", "w", "POST", "keys", K(audiences=["https://a", "https://a"]), None, 400,
     "invalid_request", "audiences"),
    ("audiences-17", "w", "POST", "keys", K(audiences=[f"https://a{i}" for i in range(17)]), None, 400,
     "invalid_request", "audiences"),
    ("audiences-256", "w", "POST", "keys", K(audiences=["https://" + "a" * 248]), None, 400, "invalid_request",
     "audiences"),
    ("subject-number", "w", "POST", "keys", K(subject=5), None, 400, "invalid_request", "subject"),
    ("subject-empty", "w", "POST", "keys", K(subject=""), None, 400, "invalid_request", "subject"),
    ("subject-256", "w", "POST", "keys", K(subject="s" * 256), None, 400, "invalid_request", "subject"),
    ("subject-newline", "w", "POST", "keys", K(subject="a\nb"), None, 400, "invalid_request", "subject"),
    ("expires-number", "w", "POST", "keys", K(expires_at=1893456000), None, 400, "invalid_request", "expires_at"),
    ("expires-text", "w", "POST", "keys", K(expires_at="tomorrow"), None, 400, "invalid_request", "expires_at"),
    ("expires-past", "w", "POST", "keys", K(expires_at="2001-01-01T00:00:00Z"), None, 400, "invalid_request",
     "expires_at"),
    ("expires-month-13", "w", "POST", "keys", K(expires_at="2099-13-01T00:00:00Z"), None, 400, "invalid_request",
     "expires_at"),
    ("expires-no-zone", "w", "POST", "keys", K(expires_at="2099-01-01T00:00:00"), None, 400, "invalid_request",
     "expires_at"),
    ("lifetime-string", "w", "POST", "keys", K(token_lifetime="60"), None, 400, "invalid_request", "token_lifetime"),
    ("lifetime-fraction", "w", "POST", "keys", K(token_lifetime=1.5), None, 400, "invalid_request", "token_lifetime"),
    ("lifetime-real", "w", "POST", "keys", K(token_lifetime=1e30), None, 400, "invalid_request", "token_lifetime"),
    ("lifetime-zero", "w", "POST", "keys", K(token_lifetime=0), None, 400, "invalid_request", "token_lifetime"),
    ("lifetime-negative", "w", "POST", "keys", K(token_lifetime=-60), None, 400, "invalid_request", "token_lifetime"),
    ("lifetime-bool", "w", "POST", "keys", K(token_lifetime=True), None, 400, "invalid_request", "token_lifetime"),
    ("lifetime-above-max", "w", "POST", "keys", K(token_lifetime=3601), None, 400, "invalid_request", "token_lifetime"),
    ("account-number", "w", "POST", "keys", K(account=5), None, 400, "invalid_request", "account"),
    ("idempotency-key-256", "w", "POST", "keys", K(), {"Idempotency-Key": "i" * 256}, 400, "invalid_request",
     "Idempotency-Key"),
    # A control byte in any header value is refused before the request is parsed (conn.c).
    ("idempotency-key-control", "w", "POST", "keys", K(), {"Idempotency-Key": "a\x01b"}, 400, "invalid_request",
     None),
    # PATCH keys/{id}
    ("rename-empty-object", "w", "PATCH", "keys/{key}", {}, None, 400, "invalid_request", None),
    ("rename-null", "w", "PATCH", "keys/{key}", {"name": None}, None, 400, "invalid_request", None),
    ("rate-limit-zero", "w", "PATCH", "keys/{key}", {"rate_limit": 0}, None, 400, "invalid_request", "rate_limit"),
    ("rate-limit-negative", "w", "PATCH", "keys/{key}", {"rate_limit": -5}, None, 400, "invalid_request",
     "rate_limit"),
    ("rate-limit-string", "w", "PATCH", "keys/{key}", {"rate_limit": "5"}, None, 400, "invalid_request",
     "rate_limit"),
    ("rate-limit-float", "w", "PATCH", "keys/{key}", {"rate_limit": 5.5}, None, 400, "invalid_request",
     "rate_limit"),
    ("rate-limit-huge", "w", "PATCH", "keys/{key}", {"rate_limit": 1000001}, None, 400, "invalid_request",
     "rate_limit"),
    ("rate-limit-with-bad-name", "w", "PATCH", "keys/{key}", {"rate_limit": 5, "name": ""}, None, 400,
     "invalid_request", "name"),
    ("create-rate-limit-zero", "w", "POST", "keys", K(rate_limit=0), None, 400, "invalid_request", "rate_limit"),
    ("create-rate-limit-bool", "w", "POST", "keys", K(rate_limit=True), None, 400, "invalid_request",
     "rate_limit"),
    ("rename-number", "w", "PATCH", "keys/{key}", {"name": 5}, None, 400, "invalid_request", "name"),
    ("rename-101", "w", "PATCH", "keys/{key}", {"name": "y" * 101}, None, 400, "invalid_request", "name"),
    ("rename-control", "w", "PATCH", "keys/{key}", {"name": "a\rb"}, None, 400, "invalid_request", "name"),
    ("rename-unknown", "w", "PATCH", "keys/{key}", {"name": "ok", "owner": "x"}, None, 400, "invalid_request", "owner"),
    ("rename-array", "w", "PATCH", "keys/{key}", b'[{"name":"x"}]', None, 400, "invalid_request", None),
    ("immutable-scopes", "w", "PATCH", "keys/{key}", {"scopes": ["read", "write"]}, None, 400, "immutable_field", "scopes"),
    ("immutable-audiences", "w", "PATCH", "keys/{key}", {"audiences": ["https://x"]}, None, 400, "immutable_field",
     "audiences"),
    ("immutable-subject", "w", "PATCH", "keys/{key}", {"subject": "root"}, None, 400, "immutable_field", "subject"),
    ("immutable-expires", "w", "PATCH", "keys/{key}", {"expires_at": "2099-01-01T00:00:00Z"}, None, 400,
     "immutable_field", "expires_at"),
    ("immutable-lifetime", "w", "PATCH", "keys/{key}", {"name": "ok", "token_lifetime": 60}, None, 400,
     "immutable_field", "token_lifetime"),
    # revoke / disable bodies
    ("revoke-reason-number", "w", "POST", "keys/{key}/revoke", {"reason": 5}, None, 400, "invalid_request", "reason"),
    ("revoke-reason-empty", "w", "POST", "keys/{key}/revoke", {"reason": ""}, None, 400, "invalid_request", "reason"),
    ("revoke-reason-501", "w", "POST", "keys/{key}/revoke", {"reason": "r" * 501}, None, 400, "invalid_request", "reason"),
    ("revoke-reason-control", "w", "POST", "keys/{key}/revoke", {"reason": "a\nb"}, None, 400, "invalid_request",
     "reason"),
    ("revoke-unknown", "w", "POST", "keys/{key}/revoke", {"why": "x"}, None, 400, "invalid_request", "why"),
    ("revoke-malformed", "w", "POST", "keys/{key}/revoke", b"{reason}", None, 400, "invalid_request", None),
    ("disable-malformed", "w", "POST", "keys/{key}/disable", b"{", None, 400, "invalid_request", None),
    ("disable-array", "w", "POST", "keys/{key}/disable", b"[1]", None, 400, "invalid_request", None),
    # operator endpoints
    ("account-id-missing", "o", "POST", "accounts", {}, None, 400, "invalid_request", "id"),
    ("account-id-number", "o", "POST", "accounts", {"id": 5}, None, 400, "invalid_request", "id"),
    ("account-id-64", "o", "POST", "accounts", {"id": "a" * 64}, None, 400, "invalid_request", "id"),
    ("account-limit-negative", "o", "POST", "accounts", {"id": "neg", "key_limit": -1}, None, 400, "invalid_request",
     "key_limit"),
    ("account-limit-huge", "o", "POST", "accounts", {"id": "huge", "key_limit": 100001}, None, 400, "invalid_request",
     "key_limit"),
    ("account-limit-string", "o", "POST", "accounts", {"id": "str", "key_limit": "5"}, None, 400, "invalid_request",
     "key_limit"),
    ("account-name-control", "o", "POST", "accounts", {"id": "ctl", "name": "a\nb"}, None, 400, "invalid_request",
     "name"),
    ("account-unknown", "o", "POST", "accounts", {"id": "unk", "owner": "x"}, None, 400, "invalid_request", "owner"),
    ("account-patch-disabled-string", "o", "PATCH", "accounts/{acct}", {"disabled": "yes"}, None, 400,
     "invalid_request", "disabled"),
    ("account-patch-limit-null", "o", "PATCH", "accounts/{acct}", {"key_limit": None}, None, 400, "invalid_request",
     "key_limit"),
    ("account-patch-name-101", "o", "PATCH", "accounts/{acct}", {"name": "n" * 101}, None, 400, "invalid_request",
     "name"),
    ("account-patch-unknown", "o", "PATCH", "accounts/{acct}", {"id": "renamed"}, None, 400, "invalid_request", "id"),
    ("scope-name-missing", "o", "POST", "scopes", {}, None, 400, "invalid_request", "name"),
    ("scope-name-space", "o", "POST", "scopes", {"name": "a b"}, None, 400, "invalid_request", "name"),
    ("scope-name-quote", "o", "POST", "scopes", {"name": 'a"b'}, None, 400, "invalid_request", "name"),
    ("scope-name-129", "o", "POST", "scopes", {"name": "s" * 129}, None, 400, "invalid_request", "name"),
    ("scope-description-control", "o", "POST", "scopes", {"name": "ok:ctl", "description": "a\x00b"}, None, 400,
     "invalid_request", None),
    ("scope-description-501", "o", "POST", "scopes", {"name": "ok:long", "description": "d" * 501}, None, 400,
     "invalid_request", "description"),
    ("scope-unknown", "o", "POST", "scopes", {"name": "ok:unk", "owner": 1}, None, 400, "invalid_request", "owner"),
    # query strings
    ("list-limit-0", "w", "GET", "keys?limit=0", NOBODY, None, 400, "invalid_request", "limit"),
    ("list-limit-201", "w", "GET", "keys?limit=201", NOBODY, None, 400, "invalid_request", "limit"),
    ("list-limit-text", "w", "GET", "keys?limit=ten", NOBODY, None, 400, "invalid_request", "limit"),
    ("list-limit-fraction", "w", "GET", "keys?limit=1.5", NOBODY, None, 400, "invalid_request", "limit"),
    ("list-limit-negative", "w", "GET", "keys?limit=-1", NOBODY, None, 400, "invalid_request", "limit"),
    ("list-limit-huge", "w", "GET", "keys?limit=99999999999999999999", NOBODY, None, 400, "invalid_request", "limit"),
    ("list-state-deleted", "w", "GET", "keys?state=deleted", NOBODY, None, 400, "invalid_request", "state"),
    ("list-cursor-garbage", "w", "GET", "keys?cursor=zzz", NOBODY, None, 400, "invalid_request", "cursor"),
    ("list-cursor-forged", "w", "GET", "keys?cursor=" + base64.urlsafe_b64encode(b"2026-01-01|'; DROP").decode(),
     NOBODY, None, 400, "invalid_request", "cursor"),
    ("list-name-empty", "w", "GET", "keys?name=", NOBODY, None, 400, "invalid_request", "name"),
    ("list-name-101", "w", "GET", "keys?name=" + "n" * 101, NOBODY, None, 400, "invalid_request", "name"),
    ("list-malformed-query", "w", "GET", "keys?%zz", NOBODY, None, 400, "invalid_request", None),
    ("audit-limit-0", "w", "GET", "audit?limit=0", NOBODY, None, 400, "invalid_request", "limit"),
    ("audit-cursor-text", "w", "GET", "audit?cursor=abc", NOBODY, None, 400, "invalid_request", "cursor"),
    ("audit-cursor-negative", "w", "GET", "audit?cursor=-1", NOBODY, None, 400, "invalid_request", "cursor"),
    ("audit-cursor-19-digits", "w", "GET", "audit?cursor=" + "9" * 19, NOBODY, None, 400, "invalid_request", "cursor"),
    ("audit-key-malformed", "w", "GET", "audit?key=tk_nope", NOBODY, None, 400, "invalid_request", "key"),
]


@pytest.fixture(scope="module")
def badinput(env):
    acct = new_account(env, "badin", limit=20)
    w = Admin(env, acct, WRITE)
    key = new_key(env.t, acct, "target of bad input", "read", "--subject", "svc", "--expires-in", "30d")["client_id"]
    return NS(acct=acct, w=w, key=key)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_400_and_changes_nothing(env, badinput, case):
    _, who, method, path, body, headers, status, error, field = case
    adm = badinput.w if who == "w" else env.op
    path = path.replace("{key}", badinput.key).replace("{acct}", badinput.acct)
    before = snapshot(env.t)
    r = adm.req(method, path, body, headers=headers)
    b = refused(r, status, error, field=field if field is not None else NOBODY)
    if field is None:
        assert "field" not in b, r
    assert snapshot(env.t) == before


def test_input_boundaries_are_accepted(env):
    """The limits themselves are allowed (the refusals above are not off by one)."""
    acct, adm = pair(env, "bounds", limit=20)
    t = env.t
    t.seed_scopes(*[f"b{i}:{acct}" for i in range(32)])
    t.grant_scopes(acct, *[f"b{i}:{acct}" for i in range(32)])
    k = create(adm, {"name": "n" * 100, "scopes": [f"b{i}:{acct}" for i in range(32)],
                     "audiences": [f"https://a{i}.example" for i in range(15)] + ["https://" + "a" * 120],
                     "subject": "s" * 255, "token_lifetime": 3600})
    assert len(k["name"]) == 100 and len(k["scopes"]) == 32 and len(k["audiences"]) == 16
    assert ok(adm.patch(f"keys/{k['client_id']}", {"name": "m" * 100}))["name"] == "m" * 100
    assert ok(adm.post(f"keys/{k['client_id']}/revoke", {"reason": "r" * 500}))["revoke_reason"] == "r" * 500
    # 32 levels of nesting are parsed (the refusal is then about the member, not the depth).
    r = adm.post("keys", '{"name":' + "[" * 31 + "]" * 31 + "}")
    refused(r, 400, "invalid_request", field="name")
    # Unicode (not control) characters are fine.
    assert create(adm, {"name": "Größe – 東京 🚀", "scopes": ["read"]})["name"] == "Größe – 東京 🚀"
    # null for an optional member means "not given".
    k2 = create(adm, {"name": "nulls", "scopes": ["read"], "audiences": None, "subject": None, "expires_at": None,
                      "token_lifetime": None, "account": None})
    assert k2["audiences"] == [] and k2["subject"] is None and k2["account"] == acct
    assert ok(adm.post(f"keys/{k2['client_id']}/revoke", {"reason": None}))["revoke_reason"] is None
    # Naming one's own account explicitly is allowed.
    assert create(adm, {"name": "own", "scopes": ["read"], "account": acct})["account"] == acct
    assert len(ok(adm.get("keys?limit=200&name=" + "n" * 100))["keys"]) == 0


def test_body_size_limit(env):
    """64 KiB of body are read; one byte more is 413 (JSON, from the admin API); nothing changes."""
    acct, adm = pair(env, "size")
    t = env.t
    core = json.dumps({"name": "padded", "scopes": ["read"]})
    exact = core[:-1] + " " * (65536 - len(core)) + "}"
    assert len(exact) == 65536
    create(adm, exact)
    before = snapshot(t)
    over = core[:-1] + " " * (65537 - len(core)) + "}"
    refused(adm.post("keys", over), 413, "invalid_request")
    refused(adm.patch(f"keys/{adm.id}", over), 413, "invalid_request")
    refused(adm.post("keys", "{" + '"a":1,' * 100000 + '"b":1}'), 413, "invalid_request")
    assert snapshot(t) == before


@pytest.fixture(scope="module")
def default_srv(env, module_start_server):
    """A second server on the same database with the default max_body_size (8 KiB)."""
    return module_start_server(env.t)


def test_body_over_limit_default_config(env, default_srv):
    acct = new_account(env, "size-default")
    k = new_key(env.t, acct, "default config admin", WRITE)
    tok = get_token(default_srv, k)
    before = snapshot(env.t)
    r = send(default_srv.port, "POST", "keys", json.dumps({"name": "x" * 70000, "scopes": ["read"]}), token=tok)
    assert r.status == 413, r
    assert snapshot(env.t) == before
    assert ok(send(default_srv.port, "GET", "account", token=tok))["id"] == acct


# ---------------------------------------------------------------------------
# 7. Audit of every change; no secret in any response
# ---------------------------------------------------------------------------
def test_every_change_writes_one_audit_row(env):
    t = env.t
    op = env.op
    acct, adm = pair(env, "trail", limit=10)
    mark = max_audit(t)
    a = create(adm, {"name": "a", "scopes": ["read"]})["client_id"]
    b = create(adm, {"name": "b", "scopes": ["read"]}, headers={"Idempotency-Key": "t-1"})["client_id"]
    ok(adm.post("keys", {"name": "b", "scopes": ["read"]}, headers={"Idempotency-Key": "t-1"}), 200)  # no change
    ok(adm.patch(f"keys/{a}", {"name": "a2"}))
    ok(adm.patch(f"keys/{a}", {"name": "a2"}))            # same name: no change
    ok(adm.post(f"keys/{a}/disable"))
    ok(adm.post(f"keys/{a}/disable"))                     # already disabled: no change
    ok(adm.post(f"keys/{a}/enable"))
    ok(adm.post(f"keys/{a}/revoke", {"reason": "trail"}))
    ok(adm.delete(f"keys/{b}"))
    refused(adm.post(f"keys/{a}/revoke"), 409, "revoked")   # refused: no row
    name = f"trail-acct-{os.getpid()}"
    ok(op.post("accounts", {"id": name}), 201)
    ok(op.patch(f"accounts/{name}", {"key_limit": 5}))
    ok(op.patch(f"accounts/{name}", {"disabled": True}))
    c = create(op, {"name": "op made", "scopes": ["read"], "account": acct})["client_id"]
    rows = audit_since(t, mark)
    got = [(e["action"], e["account_id"], e["key_id"], e["actor"], e["address"]) for e in rows]
    assert got == [
        ("key.create", acct, a, adm.actor, "127.0.0.1"),
        ("key.create", acct, b, adm.actor, "127.0.0.1"),
        ("key.rename", acct, a, adm.actor, "127.0.0.1"),
        ("key.disable", acct, a, adm.actor, "127.0.0.1"),
        ("key.enable", acct, a, adm.actor, "127.0.0.1"),
        ("key.revoke", acct, a, adm.actor, "127.0.0.1"),
        ("key.delete", acct, b, adm.actor, "127.0.0.1"),
        ("account.create", name, None, op.actor, "127.0.0.1"),
        ("account.set_limit", name, None, op.actor, "127.0.0.1"),
        ("account.disable", name, None, op.actor, "127.0.0.1"),
        ("key.create", acct, c, op.actor, "127.0.0.1"),
    ], got
    # The audit detail of a create names what was granted, never a secret.
    assert rows[0]["detail"]["scopes"] == ["read"] and rows[0]["detail"]["name"] == "a"
    ok(op.patch(f"accounts/{name}", {"disabled": False}))


# ---------------------------------------------------------------------------
# Regression tests for defects found while writing this suite (all fixed)
# ---------------------------------------------------------------------------
def test_bug_name_limit_counts_bytes_not_characters(env):
    acct, adm = pair(env, "bug-utf8")
    r = adm.post("keys", {"name": "é" * 60, "scopes": ["read"]})
    assert r.status == 201, r


def test_bug_database_refusals_name_the_field(env):
    acct, adm = pair(env, "bug-field")
    before = snapshot(env.t)
    problems = []
    for body, field in (({"name": "a\u0085b", "scopes": ["read"]}, "name"),            # C1 control character
                        ({"name": "x", "scopes": ["read"], "subject": "s\u009b"}, "subject"),
                        ({"name": "x", "scopes": ["nope"]}, "scopes")):
        r = adm.post("keys", body)
        b = r.json()
        if r.status != 400 or b.get("field") != field or "constraint" in b.get("error_description", ""):
            problems.append(f"{body}: {r!r}")
    r = env.op.post("accounts", {"id": "Not_Valid!"})
    if r.json().get("field") != "id" or "constraint" in r.json().get("error_description", ""):
        problems.append(f"account id: {r!r}")
    assert snapshot(env.t) == before
    assert not problems, "\n".join(problems)


def test_bug_scope_add_is_audited_with_the_address(env):
    mark = max_audit(env.t)
    ok(env.op.post("scopes", {"name": f"bug:audit:{os.getpid()}"}), 201)
    rows = audit_since(env.t, mark)
    assert [(e["action"], e["actor"]) for e in rows] == [("scope.add", env.op.actor)], rows
    assert rows[0]["address"] == "127.0.0.1", rows


def test_bug_account_patch_audits_every_change(env):
    name = new_account(env, "bug-patch")
    mark = max_audit(env.t)
    ok(env.op.patch(f"accounts/{name}", {"key_limit": 7, "name": "Renamed", "disabled": True}))
    rows = audit_since(env.t, mark)
    text = json.dumps([(e["action"], e["detail"]) for e in rows])
    assert "Renamed" in text and "disable" in text, rows


def test_bug_audience_of_200_characters_is_accepted(env):
    acct, adm = pair(env, "bug-aud")
    r = adm.post("keys", {"name": "long audience", "scopes": ["read"], "audiences": ["https://" + "a" * 192]})
    assert r.status == 201, r


def test_bug_disable_refuses_unknown_members(env):
    acct, adm = pair(env, "bug-members")
    k = create(adm, {"name": "x", "scopes": ["read"]})
    r = adm.post(f"keys/{k['client_id']}/disable", {"reason": "why not", "state": "revoked"})
    refused(r, 400, "invalid_request", field="reason")


def test_bug_default_http_body_limit_preempts_the_admin_limit(env, default_srv):
    acct = new_account(env, "bug-size")
    k = new_key(env.t, acct, "default config admin", WRITE)
    tok = get_token(default_srv, k)
    core = json.dumps({"name": "padded", "scopes": ["read"]})
    body = core[:-1] + " " * 20000 + "}"
    r = send(default_srv.port, "POST", "keys", body, token=tok)
    assert r.status == 201, r


def _forms(b):
    return {b.hex(), base64.b64encode(b).decode().rstrip("="), base64.urlsafe_b64encode(b).decode().rstrip("=")}


def test_no_secret_hash_or_pepper_in_any_admin_response(env):
    """Runs last in the module: every admin response this module received is scanned."""
    t = env.t
    # Make sure every kind of answer is in the sample.
    acct, adm = pair(env, "scan")
    k = create(adm, {"name": "scan", "scopes": ["read"]})
    get_token(env.srv, k)
    for p in ("keys", f"keys/{k['client_id']}", "audit", "account", "scopes"):
        ok(adm.get(p))
    ok(env.op.get("accounts"))
    ok(adm.post(f"keys/{k['client_id']}/revoke", {"reason": "scan"}))
    assert len(RESPONSES) > 200, len(RESPONSES)
    hashes = [bytes(h) for (h,) in t.query("SELECT secret_hash FROM api_keys")]
    forbidden = set()
    for h in hashes:
        forbidden |= _forms(h)
    for b64, raw in PEPPERS:
        forbidden |= {b64, b64.rstrip("=")} | _forms(raw)
    seen = {}
    problems = []
    for label, status, body in RESPONSES:
        text = body.decode("utf-8", "replace")
        for s in SECRET_FIND_RE.findall(text):
            seen.setdefault(s, []).append((label, status))
            if not (status == 201 and label == "POST keys"):
                problems.append(f"a secret in the {status} answer to {label}")
        for f in forbidden:
            if f in text:
                problems.append(f"a secret hash or the pepper in the {status} answer to {label}")
        if re.search(r'"(secret_hash|pepper|pepper_id|hash)"', text):
            problems.append(f"a hash member in the {status} answer to {label}")
    for s, where in seen.items():
        if len(where) != 1:
            problems.append(f"secret ...{s[-4:]} in {len(where)} responses: {where}")
    assert set(API_SECRETS) <= set(seen)
    # The servers' logs: no secret shown by the API, no hash.
    log = "".join(s.stderr_text() + s.stdout_text() for s in SERVERS if s.tokend is t)
    for s in API_SECRETS:
        if s in log:
            problems.append(f"secret ...{s[-4:]} (from the admin API) in the server's log")
    for f in forbidden:
        if f in log:
            problems.append("a secret hash or the pepper in the server's log")
    assert not problems, "\n".join(sorted(set(problems)))
