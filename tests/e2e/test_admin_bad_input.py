"""
End-to-end tests of the admin REST API under /admin/v1/ (issue 4, point 4):
bad input: a table of malformed, unknown, mistyped, oversized and out-of-range
inputs -> 400 (413 for the body size) with error, error_description and field,
and nothing changes in the database; the limits themselves are accepted; the
body size limit, also with the default configuration (`default_srv`).

One database and one server are shared by the module (support/admin.py: the
`env` fixture; max_body_size raised to 1 MiB so that the admin API's own 64 KiB
body limit is what answers). Each test works in accounts of its own, so tests do
not see each other's keys. At the end of the module every admin response it
received and its servers' logs are scanned for secrets, hashes and the pepper.
The admin API tests are test_admin_*.py (one file per section); the OpenAPI
document is test_openapi.py.

SECURITY.md rows: A8 (admin JSON).
"""
import base64
import json

import pytest

# env, default_srv: module-scoped fixtures shared by the admin modules (support/admin.py)
from support.admin import (Admin, NOBODY, WRITE, create, default_srv, env, new_account, ok, pair, refused,
                           send, snapshot)
from support.server import get_token, new_key
from support.util import NS

pytestmark = pytest.mark.binary


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
    # Empty (or blank: evhttp trims the value): refused, never a silently non-idempotent create.
    ("idempotency-key-empty", "w", "POST", "keys", K(), {"Idempotency-Key": ""}, 400, "invalid_request",
     "Idempotency-Key"),
    ("idempotency-key-blank", "w", "POST", "keys", K(), {"Idempotency-Key": "   "}, 400, "invalid_request",
     "Idempotency-Key"),
    # Given twice (two spellings of one name: both are sent): which one would count?
    ("idempotency-key-twice", "w", "POST", "keys", K(), {"Idempotency-Key": "t-a", "idempotency-key": "t-b"}, 400,
     "invalid_request", "Idempotency-Key"),
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



def test_body_over_limit_default_config(env, default_srv):
    acct = new_account(env, "size-default")
    k = new_key(env.t, acct, "default config admin", WRITE)
    tok = get_token(default_srv, k)
    before = snapshot(env.t)
    r = send(default_srv.port, "POST", "keys", json.dumps({"name": "x" * 70000, "scopes": ["read"]}), token=tok)
    assert r.status == 413, r
    assert snapshot(env.t) == before
    assert ok(send(default_srv.port, "GET", "account", token=tok))["id"] == acct
