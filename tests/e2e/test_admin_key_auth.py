"""
API keys accepted directly on the admin API (issue 14, point 3):
`Authorization: Bearer <key-id>:<secret>` or `X-API-Key: <key-id>:<secret>`
authenticates an admin request with the token endpoint's own checks (http/keyauth.c),
then the key's scopes apply as its token's would.

  * a right key works at each scope level (read < write < operator), in either header,
    and its changes are audited with the key as actor;
  * it answers exactly what the key's token answers (403 for another account, ...);
  * wrong secret, bad checksums, unknown, disabled, revoked, deleted keys, a disabled
    account, a key whose tokens could not reach the admin API: the wrong token's 401,
    byte for byte, and nothing changes;
  * both headers must agree (400), a token in X-API-Key is a wrong credential (401);
  * failures count against the same per-address and per-key limits as the token
    endpoint's, through either path;
  * admin_api_key_auth = off refuses keys with the wrong token's 401.

SECURITY.md rows: B1 (failure oracle), B4/B5 (brute force), D8 (BOLA/BFLA).
"""
import http.client
import json

import pytest

from support.admin import (A, NOBODY, OPERATOR, READ, RESPONSES, WRITE, Admin, audit_since, env, insufficient,
                           max_audit, new_account, ok, refused, send, snapshot, unauthenticated)
from support.http import Resp, basic
from support.keys import make_key_id, make_secret
from support.server import get_token, new_key
from support.util import wait_until

pytestmark = pytest.mark.binary

assert env  # the module-scoped fixture (support/admin.py), imported for pytest


def call(port, method, path, body=NOBODY, *, key=None, how="bearer", headers=None, source="127.0.0.1"):
    """One admin request from `source` (any 127/8 address), the key sent directly;
    recorded for the module's leak scan."""
    h = dict(headers or {})
    if key is not None:
        cred = f"{key['client_id']}:{key['client_secret']}" if isinstance(key, dict) else key
        if how == "bearer":
            h["Authorization"] = "Bearer " + cred
        else:
            h["X-API-Key"] = cred
    data = None
    if body is not NOBODY:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        c.request(method, path if path.startswith("/") else f"{A}/{path}", body=data, headers=h)
        r = c.getresponse()
        resp = Resp(r.status, r.getheaders(), r.read(), 0.0)
    finally:
        c.close()
    RESPONSES.append((f"{method} {path}", resp.status, resp.body))
    return resp


def wrong_token_answer(env):
    """What a wrong bearer token gets: the reference every wrong key must match."""
    r = send(env.port, "GET", "account", headers={"Authorization": "Bearer not-a-token"})
    unauthenticated(r)
    return r


def same_as(r, ref):
    unauthenticated(r)
    assert r.body == ref.body, (r, ref)
    assert r.headers["www-authenticate"] == ref.headers["www-authenticate"]


# ---------------------------------------------------------------------------
# The right key
# ---------------------------------------------------------------------------
def test_right_key_works_at_each_scope_level(env):
    t = env.t
    acct = new_account(env, "direct")
    rd = new_key(t, acct, "reader", READ)
    wr = new_key(t, acct, "writer", WRITE)
    plain = new_key(t, acct, "no admin scope", "read")
    for how in ("bearer", "x-api-key"):
        # read: reads its own account, may not write
        assert ok(call(env.port, "GET", "account", key=rd, how=how))["id"] == acct
        listed = ok(call(env.port, "GET", "keys", key=rd, how=how))
        assert rd["client_id"] in {k["client_id"] for k in listed["keys"]}
        insufficient(call(env.port, "POST", "keys", {"name": "x", "scopes": ["read"]}, key=rd, how=how), WRITE)
        insufficient(call(env.port, "GET", "accounts", key=rd, how=how), OPERATOR)
        # no admin scope at all: 403 naming the read scope
        insufficient(call(env.port, "GET", "account", key=plain, how=how), READ)
    # write: creates a key, audited with the key as actor, from the caller's address
    before = max_audit(t)
    made = ok(call(env.port, "POST", "keys", {"name": "made directly", "scopes": ["read"]}, key=wr), 201)
    assert made["created_by"] == f"admin:{wr['client_id']}"
    rows = audit_since(t, before)
    assert rows and all(r["actor"] == f"admin:{wr['client_id']}" for r in rows), rows
    assert any(r["key_id"] == made["client_id"] for r in rows), rows
    assert {r["address"] for r in rows} == {"127.0.0.1"}, rows
    ok(call(env.port, "POST", f"keys/{made['client_id']}/disable", key=wr, how="x-api-key"))
    # operator: every account
    names = {a["id"] for a in ok(call(env.port, "GET", "accounts", key=env.op.key))["accounts"]}
    assert {"ops", acct} <= names
    # "bearer" in any case, as for tokens; the same credential in both headers is one credential
    cred = f"{rd['client_id']}:{rd['client_secret']}"
    assert ok(call(env.port, "GET", "account", headers={"Authorization": "bEaReR " + cred}))["id"] == acct
    assert ok(call(env.port, "GET", "account",
                   headers={"Authorization": "Bearer " + cred, "X-API-Key": cred}))["id"] == acct
    # the key was used: its last use is recorded as a token request's would be
    wait_until(lambda: t.query("SELECT last_used_at FROM api_keys WHERE id = %s", (rd["client_id"],))[0][0],
               timeout=10, what="the direct key's last_used_at")


def test_answers_what_the_keys_token_answers(env):
    """Scopes, own account only: the direct key and its token get the same answers."""
    t = env.t
    mine = new_account(env, "mine")
    other = new_account(env, "other")
    theirs = new_key(t, other, "theirs", "read")["client_id"]
    for scopes in (READ, WRITE):
        key = new_key(t, mine, f"k {scopes}", scopes)
        tok = get_token(env.srv, key)
        for method, path, body in (("GET", f"accounts/{other}", NOBODY), ("GET", f"keys/{theirs}", NOBODY),
                                   ("POST", f"keys/{theirs}/disable", NOBODY),
                                   ("GET", f"accounts/{mine}", NOBODY), ("GET", "audit", NOBODY),
                                   ("PATCH", f"accounts/{other}", {"name": "x"}),
                                   ("POST", "keys", {"name": "bad", "scopes": ["tokend:operator"]})):
            before = snapshot(t)
            by_token = send(env.port, method, path, body, token=tok)
            by_key = call(env.port, method, path, body, key=key)
            assert by_key.status == by_token.status, (method, path, by_key, by_token)
            if by_key.status >= 400:
                assert by_key.json() == by_token.json(), (method, path, by_key, by_token)
                assert snapshot(t) == before
            assert by_key.status != 200 or path.startswith(("accounts/" + mine, "audit")), (path, by_key)


# ---------------------------------------------------------------------------
# Wrong keys: the wrong token's 401, and nothing changes
# ---------------------------------------------------------------------------
def _bad_checksum(s):
    return s[:-1] + ("A" if s[-1] != "A" else "B")


def test_wrong_keys_get_the_wrong_tokens_401(env):
    t = env.t
    ref = wrong_token_answer(env)
    acct = new_account(env, "wrongkeys")
    good = new_key(t, acct, "good", WRITE)
    disabled = new_key(t, acct, "disabled", WRITE)
    revoked = new_key(t, acct, "revoked", WRITE)
    deleted = new_key(t, acct, "deleted", WRITE)
    elsewhere = new_key(t, acct, "other audience", WRITE, "--audience", "https://other.example")
    gone_acct = new_account(env, "disabledacct")
    in_gone = new_key(t, gone_acct, "in a disabled account", WRITE)
    # each works before (but the one to delete: a recently used key needs confirm=1)
    for k in (good, disabled, revoked, in_gone):
        ok(call(env.port, "GET", "account", key=k))
    # the audience key: right secret, but its tokens could never reach the admin API
    wr = Admin(env, acct, WRITE, "changer")
    ok(wr.post(f"keys/{disabled['client_id']}/disable"))
    ok(wr.post(f"keys/{revoked['client_id']}/revoke", {"reason": "test"}))
    assert ok(wr.delete(f"keys/{deleted['client_id']}?confirm=1"))["state"] == "deleted"
    ok(env.op.patch(f"accounts/{gone_acct}", {"disabled": True}))
    cid, sec = good["client_id"], good["client_secret"]
    cases = {
        "wrong secret": f"{cid}:{make_secret()}",
        "bad secret checksum": f"{cid}:{_bad_checksum(sec)}",
        "bad key ID checksum": f"{_bad_checksum(cid)}:{sec}",
        "unknown key": f"{make_key_id()}:{sec}",
        "empty secret": f"{cid}:",
        "no key ID": f":{sec}",
        "two colons": f"{cid}:{sec}:x",
        "garbage with a colon": "a:b",
        "disabled key": f"{disabled['client_id']}:{disabled['client_secret']}",
        "revoked key": f"{revoked['client_id']}:{revoked['client_secret']}",
        "deleted key": f"{deleted['client_id']}:{deleted['client_secret']}",
        "disabled account": f"{in_gone['client_id']}:{in_gone['client_secret']}",
        "other audience": f"{elsewhere['client_id']}:{elsewhere['client_secret']}",
    }
    before = snapshot(t)
    # From an address of its own: these failures count against 127.0.0.3's limit (20).
    for what, cred in cases.items():
        for how in ("bearer", "x-api-key"):
            method, path, body = ("POST", "keys", {"name": "x", "scopes": ["read"]}) if how == "bearer" \
                else ("GET", "keys", NOBODY)
            src = "127.0.0.3" if how == "bearer" else "127.0.0.4"
            r = call(env.port, method, path, body, key=cred, how=how, source=src)
            try:
                same_as(r, ref)
            except AssertionError as e:
                raise AssertionError(f"{what} ({how}): {e}")
    # X-API-Key with a token, or with garbage: the same 401
    tok = get_token(env.srv, good)
    for v in (tok, "not-a-key", sec):
        same_as(call(env.port, "GET", "account", headers={"X-API-Key": v}, source="127.0.0.5"), ref)
    assert snapshot(t) == before
    # the log names the key and the true reason, never the secret
    log = env.srv.stderr_text()
    assert "wrong_secret" in log and "unknown_key" in log
    for k in (good, disabled, revoked, deleted, in_gone, elsewhere):
        assert k["client_secret"] not in log


def test_headers_that_disagree_are_400(env):
    t = env.t
    acct = new_account(env, "headers")
    a = new_key(t, acct, "a", READ)
    b = new_key(t, acct, "b", READ)
    ca, cb = f"{a['client_id']}:{a['client_secret']}", f"{b['client_id']}:{b['client_secret']}"
    tok = get_token(env.srv, a)
    for h in ({"Authorization": "Bearer " + ca, "X-API-Key": cb},
              {"Authorization": "Bearer " + tok, "X-API-Key": ca},
              {"Authorization": basic(a["client_id"], a["client_secret"]), "X-API-Key": ca}):
        refused(call(env.port, "GET", "account", headers=h), 400, "invalid_request")
    # two X-API-Key headers
    c = http.client.HTTPConnection("127.0.0.1", env.port, timeout=10)
    try:
        c.putrequest("GET", f"{A}/account")
        c.putheader("X-API-Key", ca)
        c.putheader("X-API-Key", ca)
        c.endheaders()
        r = c.getresponse()
        assert r.status == 400, r.status
        r.read()
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Brute force: the token endpoint's limits, shared
# ---------------------------------------------------------------------------
def _token(port, client_id, secret, source):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        c.request("POST", "/oauth2/token", body="grant_type=client_credentials",
                  headers={"Content-Type": "application/x-www-form-urlencoded",
                           "Authorization": basic(client_id, secret)})
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("Retry-After")
    finally:
        c.close()


def test_failures_through_either_path_share_the_limits(tokend, start_server):
    tokend.account("acme", "--key-limit", "5")
    tokend.scopes("read")
    k = new_key(tokend, "acme", "admin", WRITE)
    srv = start_server(tokend, auth_failures_per_address=6, auth_failures_per_key=4)
    cid, sec = k["client_id"], k["client_secret"]

    # Per address (unknown key IDs, so no key's limit is reached): 3 failures at the
    # token endpoint and 3 at the admin API use up 127.0.0.2's 6; then both paths say 429.
    seen = []
    for i in range(6):
        if i % 2:
            seen.append(_token(srv.port, make_key_id(), make_secret(), "127.0.0.2")[0])
        else:
            seen.append(call(srv.port, "GET", "account", key=f"{make_key_id()}:{make_secret()}",
                             source="127.0.0.2").status)
    assert seen == [401] * 6, seen
    r = call(srv.port, "GET", "account", key=f"{make_key_id()}:{make_secret()}", source="127.0.0.2")
    body = refused(r, 429, "too_many_requests")
    assert int(r.headers["retry-after"]) >= 1, r
    assert "tks_" not in json.dumps(body)
    assert _token(srv.port, make_key_id(), make_secret(), "127.0.0.2")[0] == 429
    # malformed keys too (refused before any work), on both headers
    assert call(srv.port, "GET", "account", key="a:b", source="127.0.0.2").status == 429
    assert call(srv.port, "GET", "account", key=f"{cid}:tks_x", how="x-api-key", source="127.0.0.2").status == 429
    # the right key still passes from that address (behind a proxy it is everyone's)
    assert ok(call(srv.port, "GET", "account", key=k, source="127.0.0.2"))["id"] == "acme"
    assert _token(srv.port, cid, sec, "127.0.0.2")[0] == 200
    # another address is not affected
    assert call(srv.port, "GET", "account", key=f"{cid}:{make_secret()}", source="127.0.0.9").status == 401

    # Per key ID (one failure from each of several addresses, so no address's limit is
    # reached): 127.0.0.9 above was the first; 3 more through alternating paths.
    for i, src in enumerate(("127.0.0.10", "127.0.0.11", "127.0.0.12")):
        if i % 2:
            assert _token(srv.port, cid, make_secret(), src)[0] == 401
        else:
            assert call(srv.port, "GET", "account", key=f"{cid}:{make_secret()}", source=src).status == 401
    r = call(srv.port, "GET", "account", key=f"{cid}:{make_secret()}", source="127.0.0.13")
    refused(r, 429, "too_many_requests")
    assert _token(srv.port, cid, make_secret(), "127.0.0.14")[0] == 429
    # the holder is never locked out, through either path
    assert ok(call(srv.port, "GET", "account", key=k, how="x-api-key", source="127.0.0.15"))["id"] == "acme"
    assert _token(srv.port, cid, sec, "127.0.0.15")[0] == 200
    events = [e for e in srv.log_events("admin.refused")]
    assert any(e.get("reason") == "key_throttled" and e.get("client_id") == cid for e in events), events
    log = srv.stderr_text()
    assert sec not in log


# ---------------------------------------------------------------------------
# The switch
# ---------------------------------------------------------------------------
def test_switched_off_a_key_is_a_wrong_token(tokend, start_server):
    tokend.account("acme", "--key-limit", "5")
    k = new_key(tokend, "acme", "admin", WRITE)
    srv = start_server(tokend, admin_api_key_auth="off", auth_failures_per_address=2)
    ref = call(srv.port, "GET", "account", headers={"Authorization": "Bearer not-a-token"})
    unauthenticated(ref)
    cred = f"{k['client_id']}:{k['client_secret']}"
    for _ in range(3):   # never counted as failures: no 429 past the limit of 2
        for h in ({"Authorization": "Bearer " + cred}, {"X-API-Key": cred},
                  {"Authorization": "Bearer " + cred, "X-API-Key": cred}):
            same_as(call(srv.port, "GET", "account", headers=h), ref)
    # tokens still work, and the key still gets tokens
    tok = get_token(srv, k)
    assert ok(send(srv.port, "GET", "account", token=tok))["id"] == "acme"
    assert any(e.get("reason") == "api_key_auth_off" for e in srv.log_events("admin.refused"))
    assert k["client_secret"] not in srv.stderr_text()


# ---------------------------------------------------------------------------
# Rotation, revocation, outage
# ---------------------------------------------------------------------------
def test_rotated_secret_overlaps_and_revocation_is_immediate(env):
    """A rotated key's previous secret works until its overlap ends, as at the token
    endpoint; a key revoked (here, by the key itself) is refused on its next request."""
    t = env.t
    acct = new_account(env, "rotate")
    k = new_key(t, acct, "rotating", WRITE)
    ok(call(env.port, "GET", "account", key=k))    # cached from here on
    r = call(env.port, "POST", f"keys/{k['client_id']}/rotate-secret", {"overlap_seconds": 300}, key=k)
    new_secret = ok(r)["client_secret"]
    assert new_secret != k["client_secret"]
    k2 = {"client_id": k["client_id"], "client_secret": new_secret}
    for cred in (k, k2):
        assert ok(call(env.port, "GET", "account", key=cred, how="x-api-key"))["id"] == acct
    # no overlap: only the newest secret works from now on
    r = call(env.port, "POST", f"keys/{k['client_id']}/rotate-secret", {"overlap_seconds": 0}, key=k2)
    k3 = {"client_id": k["client_id"], "client_secret": ok(r)["client_secret"]}
    ref = wrong_token_answer(env)
    same_as(call(env.port, "GET", "account", key=k2, source="127.0.0.6"), ref)
    same_as(call(env.port, "GET", "account", key=k, source="127.0.0.6"), ref)
    ok(call(env.port, "GET", "account", key=k3))
    ok(call(env.port, "POST", f"keys/{k['client_id']}/revoke", {"reason": "done"}, key=k3))
    same_as(call(env.port, "GET", "account", key=k3, source="127.0.0.6"), ref)


def test_database_outage_is_503_never_401(tokend, start_server, pg_restarter):
    """A key the server cannot confirm (not cached, database down) is 503 with
    Retry-After, fails closed, and works again once the database is back."""
    tokend.account("acme", "--key-limit", "5")
    k = new_key(tokend, "acme", "admin", READ)
    srv = start_server(tokend, db_timeout="1s")
    pg_restarter.stop("fast")
    try:
        r = call(srv.port, "GET", "account", key=k)
        refused(r, 503, "temporarily_unavailable")
        assert r.headers["retry-after"] == "1", r
    finally:
        pg_restarter.start()
    wait_until(lambda: call(srv.port, "GET", "account", key=k).status == 200, timeout=15,
               what="the direct key to work again after the outage")
