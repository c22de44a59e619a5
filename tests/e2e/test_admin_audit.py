"""
End-to-end tests of the admin REST API under /admin/v1/ (issue 4, point 7):
every change writes one audit row (actor admin:<key ID>, address 127.0.0.1); no
secret, hash or pepper in any admin response except the one create response,
nor in the server's log. Also the regression tests for defects found while
writing the admin suite (test_bug_*, all fixed).

One database and one server are shared by the module (support/admin.py: the
`env` fixture; max_body_size raised to 1 MiB so that the admin API's own 64 KiB
body limit is what answers). Each test works in accounts of its own, so tests do
not see each other's keys. At the end of the module every admin response it
received and its servers' logs are scanned for secrets, hashes and the pepper.
The admin API tests are test_admin_*.py (one file per section); the OpenAPI
document is test_openapi.py.

SECURITY.md rows: A8 (admin JSON).
"""
import json
import os

import pytest

# env, default_srv: module-scoped fixtures shared by the admin modules (support/admin.py)
from support.admin import (API_SECRETS, RESPONSES, WRITE, admin_leak_problems, audit_since, create,
                           default_srv, env, max_audit, new_account, ok, pair, refused, send, snapshot)
from support.server import get_token, new_key

pytestmark = pytest.mark.binary


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



def test_no_secret_hash_or_pepper_in_any_admin_response(env):
    """Runs last in the module: every admin response this module received is scanned
    (the `env` fixture scans every admin module's responses again at its teardown)."""
    # Make sure every kind of answer is in the sample.
    acct, adm = pair(env, "scan")
    k = create(adm, {"name": "scan", "scopes": ["read"]})
    get_token(env.srv, k)
    for p in ("keys", f"keys/{k['client_id']}", "audit", "account", "scopes"):
        ok(adm.get(p))
    ok(env.op.get("accounts"))
    ok(adm.post(f"keys/{k['client_id']}/revoke", {"reason": "scan"}))
    n = len(RESPONSES) - env.first_response
    assert n > 20, n
    assert len(API_SECRETS) > env.first_secret
    problems = admin_leak_problems(env)
    assert not problems, "\n".join(problems)
