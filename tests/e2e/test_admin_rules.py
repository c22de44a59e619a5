"""
End-to-end tests of the admin REST API under /admin/v1/ (issue 4, point 3):
rules: the active-key limit (also 20 concurrent creates against a limit of 3),
Idempotency-Key (also concurrent retries), the scope catalogue and
tokend:operator, account administrators confined to their own account.

One database and one server are shared by the module (support/admin.py: the
`env` fixture; max_body_size raised to 1 MiB so that the admin API's own 64 KiB
body limit is what answers). Each test works in accounts of its own, so tests do
not see each other's keys. At the end of the module every admin response it
received and its servers' logs are scanned for secrets, hashes and the pepper.
The admin API tests are test_admin_*.py (one file per section); the OpenAPI
document is test_openapi.py.

SECURITY.md rows: D5 (key-limit TOCTOU), D8 (BOLA/BFLA/BOPLA).
"""
import json
import threading

import pytest

# env: the module-scoped fixture shared by the admin modules (support/admin.py)
from support.admin import (A, Admin, KEY_FIELDS, NOBODY, OPERATOR, READ, WRITE, audit_since, create, env,
                           grant, insufficient, max_audit, new_account, ok, pair, refused, snapshot)
from support.keys import make_key_id
from support.server import new_key

pytestmark = pytest.mark.binary


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
