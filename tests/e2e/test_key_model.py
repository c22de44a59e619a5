"""Issue 13, points 1-4: roles, members and member keys, live/test environments,
custom claims; over the local CLI, the admin API and the token endpoint.

Rules live in the database functions (sql/007_key_model.sql), called alike by the
admin API and the local CLI: every refusal here also checks that nothing changed
(the admin module's snapshot covers keys, audit rows, roles and members).
"""
import json

import jwt
import psycopg2
import pytest

from support.admin import (OPERATOR, audit_since, create, env, max_audit, ok, pair,  # noqa: F401
                           refused, snapshot)
from support.registry import remember_secret
from support.server import get_token

pytestmark = pytest.mark.binary


def claims_of(srv, key):
    tok = get_token(srv, key)
    return jwt.decode(tok, options={"verify_signature": False})


def cli_key(t, *args):
    k = t.json("key", "create", *args)
    remember_secret(k["client_secret"])
    return k


# ---------------------------------------------------------------------------
# 1. Roles
# ---------------------------------------------------------------------------
def test_role_cli_key_copies_scopes_and_keeps_them(env):
    t, srv = env.t, env.srv
    acct, _ = pair(env, "roles")
    before = max_audit(t)
    r = t.json("role", "add", "dev-cli", "--scopes", "read write", "--description", "Developers")
    assert r["name"] == "dev-cli" and r["scopes"] == ["read", "write"] and r["description"] == "Developers"
    assert t.json("role", "show", "dev-cli")["scopes"] == ["read", "write"]
    assert "dev-cli" in [x["name"] for x in t.json("role", "list")]
    k = cli_key(t, "--account", acct, "--name", "from role", "--role", "dev-cli")
    assert k["role"] == "dev-cli" and k["scopes"] == ["read", "write"], k
    assert claims_of(srv, k)["scope"] == "read write"
    # Changing the role never reaches the key made from it; a new key gets the new scopes.
    u = t.json("role", "update", "dev-cli", "--scopes", "read")
    assert u["scopes"] == ["read"]
    assert t.json("key", "show", k["client_id"])["scopes"] == ["read", "write"]
    assert claims_of(srv, k)["scope"] == "read write"
    k2 = cli_key(t, "--account", acct, "--name", "later", "--role", "dev-cli")
    assert k2["scopes"] == ["read"]
    acts = [(e["action"], e["detail"].get("name")) for e in audit_since(t, before) if e["action"].startswith("role.")]
    assert acts == [("role.add", "dev-cli"), ("role.update", "dev-cli")], acts
    # Filter by role.
    listed = t.json("key", "list", "--account", acct, "--role", "dev-cli")
    assert sorted(x["client_id"] for x in listed) == sorted([k["client_id"], k2["client_id"]])
    table = t.run("key", "list", "--account", acct, check=0).stdout
    assert "ROLE" in table.splitlines()[0] and "dev-cli" in table


def test_role_bad_input_changes_nothing(env):
    t = env.t
    acct, _ = pair(env, "rolebad")
    t.json("role", "add", "fixed", "--scopes", "read")
    s = snapshot(t)
    t.usage_error("key", "create", "--account", acct, "--name", "x", "--role", "fixed", "--scopes", "read",
                  match="--role or --scopes")
    t.refused("key", "create", "--account", acct, "--name", "x", "--role", "nope", match="unknown role")
    t.refused("role", "add", "bad-scope", "--scopes", "no:such:scope", match="unknown scope")
    t.refused("role", "add", "fixed", "--scopes", "read", match="exists")
    t.refused("role", "add", "Bad Name", "--scopes", "read", match="role name")
    t.usage_error("role", "add", "noscopes", match="--scopes")
    t.refused("role", "update", "ghost", "--scopes", "read", match="no role")
    t.usage_error("role", "update", "fixed", match="nothing to change")
    # A role whose scope the account was not granted: the allow-list still decides.
    t.json("role", "add", "wider", "--scopes", "orders:read")
    s = snapshot(t)
    bare = "rolebare"
    t.account(bare)
    s = snapshot(t)
    t.refused("key", "create", "--account", bare, "--name", "x", "--role", "wider", match="not granted")
    assert snapshot(t) == s


def test_role_admin_api(env):
    t = env.t
    acct, adm = pair(env, "roleapi")
    r = ok(env.op.post("roles", {"name": "api-dev", "scopes": ["read"], "description": "d"}), 201)
    assert r["scopes"] == ["read"] and set(r) == {"name", "description", "scopes", "created_at", "updated_at"}
    assert "api-dev" in [x["name"] for x in ok(adm.get("roles"))["roles"]]
    assert ok(adm.get("roles/api-dev"))["description"] == "d"
    s = snapshot(t)
    # Account admins read roles but never change the global catalogue.
    assert refused(adm.post("roles", {"name": "mine", "scopes": ["read"]}), 403, "insufficient_scope")
    assert refused(adm.patch("roles/api-dev", {"scopes": ["write"]}), 403, "insufficient_scope")
    refused(env.op.post("roles", {"name": "x", "scopes": ["nope"]}), 400, "invalid_scope")
    refused(env.op.post("roles", {"name": "x", "scopes": []}), 400, "invalid_request")
    refused(env.op.post("roles", {"name": "api-dev", "scopes": ["read"]}), 409, "conflict")
    refused(env.op.post("roles", {"name": "x", "scopes": ["read"], "extra": 1}), 400, "invalid_request")
    refused(env.op.patch("roles/api-dev", {}), 400, "invalid_request")
    refused(env.op.patch("roles/ghost", {"scopes": ["read"]}), 404, "not_found")
    refused(adm.post("keys", {"name": "k", "role": "api-dev", "scopes": ["read"]}), 400, "invalid_request", "role")
    refused(adm.post("keys", {"name": "k", "role": "ghost"}), 400, "invalid_request", "role")
    refused(adm.post("keys", {"name": "k"}), 400, "invalid_request", "scopes")
    assert snapshot(t) == s
    k = create(adm, {"name": "by role", "role": "api-dev"})
    assert k["role"] == "api-dev" and k["scopes"] == ["read"] and k["kind"] == "account"
    ok(env.op.patch("roles/api-dev", {"scopes": ["read", "write"]}))
    assert ok(adm.get(f"keys/{k['client_id']}"))["scopes"] == ["read"]
    assert [x["client_id"] for x in ok(adm.get("keys?role=api-dev"))["keys"]] == [k["client_id"]]


# ---------------------------------------------------------------------------
# 2. Members and member keys
# ---------------------------------------------------------------------------
def test_member_key_cli_lifecycle(env):
    t, srv = env.t, env.srv
    acct, _ = pair(env, "members")
    m = t.json("member", "add", acct, "jane", "--name", "Jane Smith")
    assert m["id"] == "jane" and m["name"] == "Jane Smith" and m["state"] == "active"
    k = cli_key(t, "--account", acct, "--name", "jane's key", "--scopes", "read", "--member", "jane")
    assert k["kind"] == "member" and k["member"] == "jane" and k["member_name"] == "Jane Smith", k
    plain = cli_key(t, "--account", acct, "--name", "service", "--scopes", "read")
    assert plain["kind"] == "account" and plain["member"] is None
    c = claims_of(srv, k)
    assert c["sub"] == f"{acct}:jane" and c["client_id"] == k["client_id"], c
    assert claims_of(srv, plain)["sub"] == plain["client_id"]
    # Shown with its member in every listing.
    table = t.run("key", "list", "--account", acct, check=0).stdout
    line = [ln for ln in table.splitlines() if k["client_id"] in ln][0]
    assert "member" in line and "jane" in line, table
    assert [x["client_id"] for x in t.json("key", "list", "--account", acct, "--kind", "member")] == [k["client_id"]]
    assert [x["client_id"] for x in t.json("key", "list", "--account", acct, "--member", "jane")] == [k["client_id"]]
    assert "Member:         jane (Jane Smith)" in t.run("key", "show", k["client_id"], check=0).stdout
    assert t.json("member", "show", acct, "jane")["active_keys"] == 1
    assert [x["id"] for x in t.json("member", "list", acct)] == ["jane"]
    # Deactivation: keys disabled in the same transaction, with audit rows; never re-enabled.
    before = max_audit(t)
    d = t.json("member", "deactivate", acct, "jane")
    assert d["state"] == "deactivated" and d["active_keys"] == 0
    acts = [(e["action"], e["key_id"]) for e in audit_since(t, before)]
    assert ("member.deactivate", None) in acts and ("key.disable", k["client_id"]) in acts, acts
    txids = t.query("SELECT count(DISTINCT xmin::text) FROM audit_log WHERE id > %s", (before,))[0][0]
    assert txids == 1, "deactivation and the keys' disabling are one transaction"
    assert srv.token(k).status == 401
    assert srv.token(plain).status == 200
    s = snapshot(t)
    t.refused("key", "enable", k["client_id"], match="deactivated")
    t.refused("key", "create", "--account", acct, "--name", "again", "--scopes", "read", "--member", "jane",
              match="deactivated")
    t.refused("member", "deactivate", acct, "jane", match="already deactivated")
    assert snapshot(t) == s


def test_member_bad_input_changes_nothing(env):
    t = env.t
    acct, _ = pair(env, "membad")
    other, _ = pair(env, "memother")
    t.json("member", "add", other, "bob", "--name", "Bob")
    s = snapshot(t)
    t.refused("key", "create", "--account", acct, "--name", "x", "--scopes", "read", "--member", "bob",
              match="no member")       # another account's member is no member of this one
    t.usage_error("key", "create", "--account", acct, "--name", "x", "--scopes", "read", "--member", "bob",
                  "--subject", "s", match="--member or --subject")
    t.refused("member", "add", acct, "tk_evil", "--name", "x", match="member ID")
    t.refused("member", "add", acct, "has:colon", "--name", "x", match="member ID")
    t.refused("member", "add", acct, "bad id", "--name", "x", match="member ID")
    t.refused("member", "add", "no-such-account", "x", "--name", "x", match="no account")
    t.usage_error("member", "add", acct, "x", match="--name")
    t.usage_error("member", "add", acct, "x", "--name", "a\x07b")
    t.refused("member", "show", acct, "bob", match="no member")
    t.refused("member", "deactivate", acct, "bob", match="no member")
    assert snapshot(t) == s
    t.json("member", "add", acct, "dup", "--name", "D")
    s = snapshot(t)
    t.refused("member", "add", acct, "dup", "--name", "D", match="already has")
    assert snapshot(t) == s


def test_member_admin_api_confined_to_own_account(env):
    t, srv = env.t, env.srv
    acct, adm = pair(env, "memapi")
    other, oadm = pair(env, "memapi-o")
    m = ok(adm.post("members", {"id": "ann", "name": "Ann"}), 201)
    assert m["account"] == acct and m["state"] == "active"
    ok(oadm.post("members", {"id": "ann", "name": "Other Ann"}), 201)   # IDs are per account
    k = create(adm, {"name": "ann key", "scopes": ["read"], "member": "ann"})
    assert k["kind"] == "member" and k["member"] == "ann" and k["subject"] == "ann"
    assert claims_of(srv, k)["sub"] == f"{acct}:ann"
    s = snapshot(t)
    insuf = refused(adm.post("members", {"id": "x", "name": "x", "account": other}), 403, "insufficient_scope")
    assert insuf["scope"] == OPERATOR
    refused(adm.get(f"members?account={other}"), 403, "insufficient_scope")
    refused(adm.get("members/nobody"), 404, "not_found")
    refused(adm.post("members/nobody/deactivate"), 404, "not_found")
    refused(adm.post("members", {"id": "tks_x", "name": "x"}), 400, "invalid_request")
    refused(adm.post("members", {"id": "ok", "name": ""}), 400, "invalid_request")
    refused(adm.post("members", {"id": "ann", "name": "again"}), 409, "conflict")
    refused(adm.post("keys", {"name": "x", "scopes": ["read"], "member": "ghost"}), 400, "invalid_request", "member")
    refused(adm.post("keys", {"name": "x", "scopes": ["read"], "member": "ann", "subject": "s"}), 400,
            "invalid_request")
    assert snapshot(t) == s
    assert [x["client_id"] for x in ok(adm.get("keys?kind=member"))["keys"]] == [k["client_id"]]
    assert [x["client_id"] for x in ok(adm.get("keys?member=ann"))["keys"]] == [k["client_id"]]
    refused(adm.get("keys?kind=robot"), 400, "invalid_request", "kind")
    d = ok(adm.post("members/ann/deactivate"))
    assert d["state"] == "deactivated"
    # Effective at once on this instance (the cache forgot the account's keys before the answer).
    assert srv.token(k).status == 401
    assert ok(adm.get(f"keys/{k['client_id']}"))["state"] == "disabled"
    body = refused(adm.post(f"keys/{k['client_id']}/enable"), 409, "member_inactive")
    assert "deactivated" in body["error_description"]
    assert ok(oadm.get("members/ann"))["state"] == "active"   # the other account's Ann is untouched


# ---------------------------------------------------------------------------
# 3. Environments (prefix configuration: see test_key_prefixes.py when present)
# ---------------------------------------------------------------------------
def test_environment_claim_filter_and_immutability(env):
    t, srv = env.t, env.srv
    acct, adm = pair(env, "envs")
    live = cli_key(t, "--account", acct, "--name", "live", "--scopes", "read")
    test = cli_key(t, "--account", acct, "--name", "test", "--scopes", "read", "--environment", "test")
    assert live["environment"] == "live" and test["environment"] == "test"
    assert claims_of(srv, live)["env"] == "live" and claims_of(srv, test)["env"] == "test"
    api = create(adm, {"name": "api test", "scopes": ["read"], "environment": "test"})
    assert api["environment"] == "test"
    got = sorted(x["client_id"] for x in t.json("key", "list", "--account", acct, "--environment", "test"))
    assert got == sorted([test["client_id"], api["client_id"]])
    assert sorted(x["client_id"] for x in ok(adm.get("keys?environment=test"))["keys"]) == got
    s = snapshot(t)
    t.usage_error("key", "create", "--account", acct, "--name", "x", "--scopes", "read", "--environment", "prod",
                  match="live or test")
    refused(adm.post("keys", {"name": "x", "scopes": ["read"], "environment": "prod"}), 400, "invalid_request",
            "environment")
    refused(adm.get("keys?environment=prod"), 400, "invalid_request", "environment")
    refused(adm.patch(f"keys/{test['client_id']}", {"environment": "live"}), 400, "invalid_request")
    # Even the schema owner's direct UPDATE is refused by the trigger.
    t.json("role", "add", "envrole", "--scopes", "read")
    t.json("member", "add", acct, "envm", "--name", "M")
    s = snapshot(t)
    for col, val in (("environment", "live"), ("claims", '{"a": 1}'), ("role", "envrole"), ("member_id", "envm")):
        with pytest.raises(psycopg2.Error, match="never change|violates|foreign key"):
            t.query(f"UPDATE api_keys SET {col} = %s WHERE id = %s", (val, test["client_id"]))
    assert snapshot(t) == s


# ---------------------------------------------------------------------------
# 4. Custom claims
# ---------------------------------------------------------------------------
GOOD_CLAIMS = {"plan": "pro", "seats": 5, "ratio": 1.5, "beta": True, "regions": ["eu", "us"]}

BAD_CLAIMS = [
    ({"nested": {"a": 1}}, "string, number, boolean or array"),
    ({"n": None}, "string, number, boolean or array"),
    ({"mixed": ["a", 1]}, "only strings"),
    ({"deep": [["a"]]}, "only strings"),
    ({"sub": "someone-else"}, "registered or tokend claim"),
    ({"acct": "other-account"}, "registered or tokend claim"),
    ({"env": "live"}, "registered or tokend claim"),
    ({"iss": "https://evil"}, "registered or tokend claim"),
    ({"scope": "tokend:operator"}, "registered or tokend claim"),
    ({"client_id": "x"}, "registered or tokend claim"),
    ({"exp": 9999999999}, "registered or tokend claim"),
    ({"cnf": "x"}, "registered or tokend claim"),
    ({"tokend_role": "x"}, "registered or tokend claim"),
    ({"bad name": 1}, "claim name"),
    ({"1st": 1}, "claim name"),
    ({"big": "x" * 1100}, "1024 bytes"),
]


def test_custom_claims_in_every_token(env):
    t, srv = env.t, env.srv
    acct, adm = pair(env, "claims")
    k = cli_key(t, "--account", acct, "--name", "c", "--scopes", "read", "--claims", json.dumps(GOOD_CLAIMS))
    assert k["claims"] == GOOD_CLAIMS
    for _ in range(2):
        c = claims_of(srv, k)
        assert {n: c[n] for n in GOOD_CLAIMS} == GOOD_CLAIMS, c
        assert c["sub"] == k["client_id"] and c["acct"] == acct
    a = create(adm, {"name": "api", "scopes": ["read"], "claims": {"tier": "gold"}})
    assert claims_of(srv, a)["tier"] == "gold"
    assert "Claims:" in t.run("key", "show", a["client_id"], check=0).stdout


@pytest.mark.parametrize("bad,why", BAD_CLAIMS, ids=[json.dumps(b)[:30] for b, _ in BAD_CLAIMS])
def test_custom_claims_refused(env, bad, why):
    t = env.t
    acct, adm = pair(env, "badclaims")
    s = snapshot(t)
    body = refused(adm.post("keys", {"name": "x", "scopes": ["read"], "claims": bad}), 400, "invalid_request",
                   "claims")
    assert why in body["error_description"], body
    t.refused("key", "create", "--account", acct, "--name", "x", "--scopes", "read", "--claims", json.dumps(bad),
              match=why.replace("(", r"\(").replace(")", r"\)"))
    assert snapshot(t) == s


def test_custom_claims_shape_refused_before_the_database(env):
    t = env.t
    acct, adm = pair(env, "claimshape")
    s = snapshot(t)
    refused(adm.post("keys", {"name": "x", "scopes": ["read"], "claims": ["a"]}), 400, "invalid_request", "claims")
    refused(adm.post("keys", {"name": "x", "scopes": ["read"], "claims": "a"}), 400, "invalid_request", "claims")
    t.usage_error("key", "create", "--account", acct, "--name", "x", "--scopes", "read", "--claims", "[1]",
                  match="JSON object")
    t.usage_error("key", "create", "--account", acct, "--name", "x", "--scopes", "read", "--claims", "{bad",
                  match="JSON object")
    t.usage_error("key", "create", "--account", acct, "--name", "x", "--scopes", "read", "--claims",
                  '{"a":1,"a":2}', match="JSON object")
    assert snapshot(t) == s
