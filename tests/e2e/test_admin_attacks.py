"""
End-to-end tests of the admin REST API under /admin/v1/ (issue 10, finding 1):
an account administrator grants only what it holds; each test first replays the
attack the red team made, which succeeded before the fix.

One database and one server are shared by the module (support/admin.py: the
`env` fixture; max_body_size raised to 1 MiB so that the admin API's own 64 KiB
body limit is what answers). Each test works in accounts of its own, so tests do
not see each other's keys. At the end of the module every admin response it
received and its servers' logs are scanned for secrets, hashes and the pepper.
The admin API tests are test_admin_*.py (one file per section); the OpenAPI
document is test_openapi.py.

SECURITY.md rows: D8 (BOLA/BFLA/BOPLA).
"""
import datetime as dt

import jwt
import psycopg2
import pytest

# env: the module-scoped fixture shared by the admin modules (support/admin.py)
from support.admin import (Admin, NOBODY, OPERATOR, READ, WRITE, create, env, grant, insufficient,
                           new_account, ok, pair, refused, snapshot)
from support.keys import make_key_id
from support.server import get_token, new_key
from support.util import utcnow

pytestmark = pytest.mark.binary


# ---------------------------------------------------------------------------
# Issue 10, finding 1: an account administrator grants only what it holds
# (each test first replays the attack the red team made, which succeeded
# before the fix: 201 / 200 where these expect 403 / 400)
# ---------------------------------------------------------------------------

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
