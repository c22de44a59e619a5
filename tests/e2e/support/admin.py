"""Helpers of the admin API tests (test_admin_*.py) and their shared module-scoped
fixtures: `env` (a migrated database, an operator account `ops` and a server with
max_body_size raised to 1 MiB, so that the admin API's own 64 KiB body limit is what
answers) and `default_srv` (a second server on that database with the default
configuration). A test module uses them by importing them:

    from support.admin import env, default_srv   # noqa: F401 (fixtures)

Every admin response is recorded (RESPONSES, API_SECRETS); at the end of each
module `env` scans that module's responses and its servers' logs for secrets,
secret hashes and the pepper (admin_leak_problems), and the module errors if it
finds one.
"""
import base64
import json
import re

import psycopg2
import pytest

from support.http import http_request
from support.keys import KEY_ID_RE, SECRET_FIND_RE, SECRET_RE
from support.registry import PEPPERS, SERVERS
from support.server import get_token, new_key
from support.util import NS, parse_ts

A = "/admin/v1"
READ, WRITE, OPERATOR = "tokend:admin:read", "tokend:admin:write", "tokend:operator"
KEY_FIELDS = {"client_id", "account", "name", "hint", "masked", "scopes", "audiences", "subject", "state",
              "created_at", "created_by", "expires_at", "last_used_at", "disabled_at", "revoked_at",
              "revoked_by", "revoke_reason", "token_lifetime", "rate_limit",
              "kind", "role", "member", "member_name", "environment", "claims", "secret_rotated_at", "previous_hint",
              "previous_secret_until", "allowed_origins"}
ACCOUNT_FIELDS = {"id", "name", "key_limit", "active_keys", "scopes", "created_at", "disabled_at"}
EVENT_FIELDS = {"id", "at", "actor", "action", "account", "key", "address", "detail"}

# Every admin response of the module, for the final secret scan: (label, status, body bytes).
RESPONSES = []
# Secrets the admin API returned (never remembered in the CLI registry: they are
# shown by an HTTP response, not by a command's output).
API_SECRETS = []
NOBODY = object()


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
    if (r.status == 201 or (r.status == 200 and is_rotation(method, path))) and r.body.startswith(b"{"):
        s = r.json().get("client_secret")
        if s:
            API_SECRETS.append(s)
    return r


def is_rotation(method, label_path):
    """A secret rotation's answer: the one other place a secret is shown."""
    return method == "POST" and re.fullmatch(r"(/admin/v1/)?keys/[^/?]+/rotate-secret", label_path) is not None


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
                        deleted_at, rate_limit, role, member_id, environment, claims), ',' ORDER BY id), ''))
                  FROM api_keys),
               (SELECT md5(coalesce(string_agg(concat_ws('|', id, name, key_limit, disabled_at), ','
                        ORDER BY id), '')) FROM accounts),
               (SELECT md5(coalesce(string_agg(concat_ws('|', name, description), ',' ORDER BY name), ''))
                  FROM scopes),
               (SELECT md5(coalesce(string_agg(concat_ws('|', name, description, scopes), ',' ORDER BY name), ''))
                  FROM roles),
               (SELECT md5(coalesce(string_agg(concat_ws('|', account_id, id, name, deactivated_at), ','
                        ORDER BY account_id, id), '')) FROM members),
               (SELECT md5(coalesce(string_agg(concat_ws('|', key_id, secret_hash, previous_hash, previous_until,
                        rotations), ',' ORDER BY key_id), '')) FROM api_key_secrets)""")


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


def grant(env, acct, *scopes):
    """The operator adds scopes to the account's allow-list (PUT replaces the whole list)."""
    have = ok(env.op.get(f"accounts/{acct}"))["scopes"]
    return ok(env.op.put(f"accounts/{acct}/scopes", {"scopes": sorted(set(have) | set(scopes))}))



# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(module_tokend, module_start_server, signing_keys):
    t = module_tokend
    t.account("ops", "--name", "Operators", "--key-limit", "100")
    t.scopes("read", "write", "orders:read")
    srv = module_start_server(t, max_body_size=1048576, token_lifetime_max="1h")
    e = NS(t=t, srv=srv, port=srv.port, signing=signing_keys["es256"], other_signing=signing_keys["es256b"],
           first_response=len(RESPONSES), first_secret=len(API_SECRETS))
    e.op = Admin(e, "ops", OPERATOR, "operator")
    yield e
    problems = admin_leak_problems(e)
    conn = _CONNS.pop(t.db_url, None)
    if conn is not None:
        conn.close()
    assert not problems, "\n".join(problems)


def pair(env, prefix, limit=20, scopes=WRITE):
    """A fresh account with an admin of it."""
    acct = new_account(env, prefix, limit)
    return acct, Admin(env, acct, scopes)


@pytest.fixture(scope="module")
def default_srv(env, module_start_server):
    """A second server on the same database with the default max_body_size (8 KiB)."""
    return module_start_server(env.t)



def _forms(b):
    return {b.hex(), base64.b64encode(b).decode().rstrip("="), base64.urlsafe_b64encode(b).decode().rstrip("=")}



def admin_leak_problems(env):
    """Secrets, secret hashes or the pepper in the admin responses received since `env`
    was made (a secret only in the one create response), or in the logs of the
    servers on its database; a list of problems (empty: nothing leaked)."""
    t = env.t
    responses = RESPONSES[env.first_response:]
    api_secrets = API_SECRETS[env.first_secret:]
    hashes = [bytes(h) for (h,) in t.query("SELECT secret_hash FROM api_keys UNION ALL "
                                            "SELECT secret_hash FROM api_key_secrets UNION ALL "
                                            "SELECT previous_hash FROM api_key_secrets")
              if h is not None]   # a publishable key has no secret
    forbidden = set()
    for h in hashes:
        forbidden |= _forms(h)
    for b64, raw in PEPPERS:
        forbidden |= {b64, b64.rstrip("=")} | _forms(raw)
    seen = {}
    problems = []
    for label, status, body in responses:
        text = body.decode("utf-8", "replace")
        for s in SECRET_FIND_RE.findall(text):
            seen.setdefault(s, []).append((label, status))
            method, _, path = label.partition(" ")
            if not (status == 201 and label == "POST keys") and not (status == 200 and is_rotation(method, path)):
                problems.append(f"a secret in the {status} answer to {label}")
        for f in forbidden:
            if f in text:
                problems.append(f"a secret hash or the pepper in the {status} answer to {label}")
        if re.search(r'"(secret_hash|pepper|pepper_id|hash)"', text):
            problems.append(f"a hash member in the {status} answer to {label}")
    for s, where in seen.items():
        if len(where) != 1:
            problems.append(f"secret ...{s[-4:]} in {len(where)} responses: {where}")
    if not set(api_secrets) <= set(seen):
        problems.append("a secret the admin API returned is missing from the recorded responses")
    # The servers' logs: no secret shown by the API, no hash.
    log = "".join(s.stderr_text() + s.stdout_text() for s in SERVERS if s.tokend is t)
    for s in api_secrets:
        if s in log:
            problems.append(f"secret ...{s[-4:]} (from the admin API) in the server's log")
    for f in forbidden:
        if f in log:
            problems.append("a secret hash or the pepper in the server's log")
    return sorted(set(problems))
