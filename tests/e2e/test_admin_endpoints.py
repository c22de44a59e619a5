"""
End-to-end tests of the admin REST API under /admin/v1/ (issue 4, point 2):
every endpoint: accounts, scopes, the whole key lifecycle (the secret once; list
with filters and cursor pagination; rename, disable, enable, revoke, delete with
recently_used), the audit log.

One database and one server are shared by the module (support/admin.py: the
`env` fixture; max_body_size raised to 1 MiB so that the admin API's own 64 KiB
body limit is what answers). Each test works in accounts of its own, so tests do
not see each other's keys. At the end of the module every admin response it
received and its servers' logs are scanned for secrets, hashes and the pepper.
The admin API tests are test_admin_*.py (one file per section); the OpenAPI
document is test_openapi.py.

SECURITY.md rows: A8 (admin JSON).
"""
import datetime as dt
import json
import os
import re
import urllib.parse

import jwt
import pytest

# env: the module-scoped fixture shared by the admin modules (support/admin.py)
from support.admin import (ACCOUNT_FIELDS, EVENT_FIELDS, KEY_FIELDS, OPERATOR, READ, WRITE, audit_since,
                           check_key, create, env, grant, insufficient, max_audit, ok, pair, refused, send,
                           snapshot, unauthenticated)
from support.keys import make_key_id
from support.server import get_token
from support.util import parse_ts, utcnow, wait_until

pytestmark = pytest.mark.binary


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
        assert set(s) == {"name", "description", "created_at", "public"}, s
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
