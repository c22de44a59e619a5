"""
End-to-end tests of secret rotation with an overlap (issue 13, point 5):
`tokend key rotate-secret KEY --overlap D` (local and remote) and
POST /admin/v1/keys/{id}/rotate-secret {"overlap_seconds": N}.

A new secret for the same key ID, shown once; the previous secret keeps
working until the overlap ends, then stops - on every instance (a second
tokend on the same database had the key cached before the rotation); a
second rotation during an overlap ends the older secret at once; one audit
row per rotation (recording when the previous secret stops, and what a
rotation cut short); the key counts once against its account's limit; bad
input and the attacks (another account's key, a read-only admin) change
nothing.

Shares the admin modules' `env` (support/admin.py): every admin response and
the servers' logs are scanned for secrets and hashes at the end (a secret may
appear only in a create's or a rotation's answer).
"""
import json
import time

import psycopg2
import pytest

from support.admin import (Admin, READ, WRITE, create, env, insufficient, max_audit, audit_since, new_account,
                           ok, pair, refused, snapshot)
from support.keys import SECRET_FIND_RE, SECRET_RE, make_key_id
from support.registry import remember_secret
from support.server import get_token, new_key
from support.util import parse_ts

pytestmark = pytest.mark.binary


def works(srv, key_id, secret):
    r = srv.token({"client_id": key_id, "client_secret": secret})
    if r.status == 200:
        return True
    assert r.status == 401 and r.json()["error"] == "invalid_client", r
    return False


def rotate_cli(t, kid, overlap, *extra, env=None, config=True):
    r = t.run("key", "rotate-secret", kid, "--overlap", overlap, "--json", *extra, env=env, config=config)
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    k = json.loads(r.stdout)
    assert SECRET_RE.match(k["client_secret"]), k
    assert set(SECRET_FIND_RE.findall(r.stdout + r.stderr)) == {k["client_secret"]}, "one secret, the new one"
    remember_secret(k["client_secret"])
    return k


def secrets_row(t, kid):
    rows = t.dicts("SELECT * FROM api_key_secrets WHERE key_id = %s", (kid,))
    return rows[0] if rows else None


# ---------------------------------------------------------------------------
# The overlap, on two instances
# ---------------------------------------------------------------------------
def test_overlap_ends_on_every_instance(env, start_server):
    t = env.t
    acct = new_account(env, "rot")
    k = new_key(t, acct, "rotating", "read")
    kid, old = k["client_id"], k["client_secret"]
    second = start_server(t, issuer=env.srv.issuer)
    # Both instances know (and cache) the key with its first secret.
    assert works(env.srv, kid, old) and works(second, kid, old)
    before = max_audit(t)
    n = rotate_cli(t, kid, "3s")
    new = n["client_secret"]
    assert n["client_id"] == kid and n["hint"] == new[-4:] and new != old
    assert n["previous_hint"] == old[-4:]
    until = parse_ts(n["previous_secret_until"])
    assert 1 <= until.timestamp() - time.time() <= 4, n
    # During the overlap: both secrets, on both instances (the second one
    # dropped its cached record on NOTIFY and learnt the new secret).
    for srv in (env.srv, second):
        assert works(srv, kid, new) and works(srv, kid, old)
    # `key show` says when the old secret stops (text and JSON, local).
    shown = t.run("key", "show", kid, check=0).stdout
    assert f"works until {n['previous_secret_until']}" in shown and "tks_..." + old[-4:] in shown, shown
    assert t.json("key", "show", kid)["previous_secret_until"] == n["previous_secret_until"]
    # One audit row, naming when the previous secret stops; never a secret or hash.
    rows = [r for r in audit_since(t, before) if r["key_id"] == kid]
    assert [r["action"] for r in rows] == ["key.rotate_secret"], rows
    d = rows[0]["detail"]
    assert d["previous_until"] == n["previous_secret_until"] and d["hint"] == new[-4:], d
    assert d["previous_hint"] == old[-4:] and d["overlap_seconds"] == 3 and "ended_early" not in d, d
    # After the overlap: the old secret fails everywhere, with no message sent.
    time.sleep(max(0.0, until.timestamp() - time.time()) + 1.2)
    for srv in (env.srv, second):
        assert not works(srv, kid, old), "the old secret still works after the overlap"
        assert works(srv, kid, new)
    assert "previous_secret_ended" in second.stderr_text() + second.stdout_text()
    j = t.json("key", "show", kid)
    assert j["previous_secret_until"] is None and j["previous_hint"] is None and j["secret_rotated_at"], j


def test_overlap_zero_stops_the_old_secret_at_once(env, start_server):
    t = env.t
    acct, adm = pair(env, "rot0")
    k = create(adm, {"name": "k", "scopes": ["read"]})
    kid, old = k["client_id"], k["client_secret"]
    second = start_server(t, issuer=env.srv.issuer)
    assert works(env.srv, kid, old) and works(second, kid, old)
    r = ok(adm.post(f"keys/{kid}/rotate-secret", {"overlap_seconds": 0}))
    new = r["client_secret"]
    assert SECRET_RE.match(new) and r["hint"] == new[-4:] and r["masked"] == "tks_..." + new[-4:], r
    assert r["previous_secret_until"] is None and r["secret_rotated_at"], r
    # This instance answers at once; the other within a second (NOTIFY).
    assert not works(env.srv, kid, old) and works(env.srv, kid, new)
    deadline = time.time() + 1.0
    while works(second, kid, old):
        assert time.time() < deadline, "the second instance still takes the old secret"
        time.sleep(0.05)
    assert works(second, kid, new)
    # The secret is shown once: never by a read.
    got = ok(adm.get(f"keys/{kid}"))
    assert "client_secret" not in got and got["hint"] == new[-4:], got


def test_second_rotation_ends_the_older_secret_at_once(env):
    t = env.t
    acct, adm = pair(env, "rot2")
    k = create(adm, {"name": "k", "scopes": ["read"]})
    kid, a = k["client_id"], k["client_secret"]
    before = max_audit(t)
    b = ok(adm.post(f"keys/{kid}/rotate-secret", {"overlap_seconds": 600}))["client_secret"]
    assert works(env.srv, kid, a) and works(env.srv, kid, b)
    r = ok(adm.post(f"keys/{kid}/rotate-secret", {"overlap_seconds": 600}))
    c = r["client_secret"]
    assert r["previous_hint"] == b[-4:], r
    # Only the current and the immediately previous secret work.
    assert not works(env.srv, kid, a)
    assert works(env.srv, kid, b) and works(env.srv, kid, c)
    rows = [x for x in audit_since(t, before) if x["key_id"] == kid]
    assert [x["action"] for x in rows] == ["key.rotate_secret"] * 2, rows
    assert rows[0]["actor"] == adm.actor and "ended_early" not in rows[0]["detail"]
    assert rows[1]["detail"]["ended_early"]["hint"] == a[-4:], rows[1]
    assert rows[1]["detail"]["rotation"] == 2, rows[1]
    assert secrets_row(t, kid)["rotations"] == 2


def test_rotation_counts_once_against_the_key_limit(env):
    t = env.t
    acct, adm = pair(env, "rotlim", limit=2)   # the admin's own key and one more
    k = create(adm, {"name": "only", "scopes": ["read"]})
    refused(adm.post("keys", {"name": "more", "scopes": ["read"]}), 409, "key_limit_reached")
    r = ok(adm.post(f"keys/{k['client_id']}/rotate-secret", {"overlap_seconds": 60}))
    assert works(env.srv, k["client_id"], r["client_secret"])
    assert ok(adm.get("account"))["active_keys"] == 2
    assert t.query("SELECT count(*) FROM api_keys WHERE account_id = %s", (acct,))[0][0] == 2


# ---------------------------------------------------------------------------
# Bad input and refusals: nothing changes
# ---------------------------------------------------------------------------
def test_bad_input_changes_nothing(env):
    t = env.t
    acct, adm = pair(env, "rotbad")
    k = create(adm, {"name": "k", "scopes": ["read"]})
    kid = k["client_id"]
    soon = create(adm, {"name": "soon", "scopes": ["read"],
                        "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))})
    before = snapshot(t)
    for body, field in (
        ({}, "overlap_seconds"),
        ({"overlap_seconds": None}, "overlap_seconds"),
        ({"overlap_seconds": -1}, "overlap_seconds"),
        ({"overlap_seconds": 2592001}, "overlap_seconds"),
        ({"overlap_seconds": "24h"}, "overlap_seconds"),
        ({"overlap_seconds": 1.5}, "overlap_seconds"),
        ({"overlap_seconds": True}, "overlap_seconds"),
        ({"overlap_seconds": 60, "secret": "x"}, "secret"),
    ):
        refused(adm.post(f"keys/{kid}/rotate-secret", body), 400, "invalid_request", field)
    refused(adm.post(f"keys/{kid}/rotate-secret", "[1]"), 400, "invalid_request")
    refused(adm.post(f"keys/{kid}/rotate-secret"), 400, "invalid_request")
    # The overlap would outlive the key: refused, the key keeps its secret.
    body = refused(adm.post(f"keys/{soon['client_id']}/rotate-secret", {"overlap_seconds": 7200}), 400,
                   "invalid_request", "overlap_seconds")
    assert "expires" in body["error_description"], body
    # Unknown, malformed, deleted keys: 404.
    refused(adm.post(f"keys/{make_key_id()}/rotate-secret", {"overlap_seconds": 0}), 404, "not_found")
    refused(adm.post("keys/nonsense/rotate-secret", {"overlap_seconds": 0}), 404, "not_found")
    assert snapshot(t) == before
    assert works(env.srv, kid, k["client_secret"])
    # Revoked and expired keys do not rotate.
    ok(adm.post(f"keys/{kid}/revoke", {"reason": "test"}))
    before = snapshot(t)
    refused(adm.post(f"keys/{kid}/rotate-secret", {"overlap_seconds": 0}), 409, "revoked")
    assert snapshot(t) == before
    short = create(adm, {"name": "short", "scopes": ["read"],
                         "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))})
    time.sleep(3)
    before = snapshot(t)
    refused(adm.post(f"keys/{short['client_id']}/rotate-secret", {"overlap_seconds": 0}), 409, "expired")
    assert snapshot(t) == before


def test_cli_bad_input_changes_nothing(env):
    t = env.t
    acct = new_account(env, "rotcli")
    k = new_key(t, acct, "k", "read")
    kid = k["client_id"]
    before = snapshot(t)
    for args in (["rotate-secret", kid], ["rotate-secret", kid, "--overlap", "soon"],
                 ["rotate-secret", kid, "--overlap", "31d"], ["rotate-secret", kid, "--overlap", "-1"],
                 ["rotate-secret", "--overlap", "1h"], ["rotate-secret", kid, "x", "--overlap", "1h"],
                 ["rotate-secret", kid, "--overlap", "1h", "--force"]):
        t.usage_error("key", *args)
    t.refused("key", "rotate-secret", make_key_id(), "--overlap", "1h", match="no key")
    t.refused("key", "rotate-secret", k["client_secret"], "--overlap", "1h", match="looks like a secret")
    assert snapshot(t) == before
    t.run("key", "revoke", kid, check=0)
    before = snapshot(t)
    t.refused("key", "rotate-secret", kid, "--overlap", "0", match="revoked")
    assert snapshot(t) == before


# ---------------------------------------------------------------------------
# Attacks
# ---------------------------------------------------------------------------
def test_attack_rotate_another_accounts_key(env):
    t = env.t
    victim_acct, victim_adm = pair(env, "rotvictim")
    victim = create(victim_adm, {"name": "victim", "scopes": ["read"]})
    _, attacker = pair(env, "rotattacker")
    before = snapshot(t)
    refused(attacker.post(f"keys/{victim['client_id']}/rotate-secret", {"overlap_seconds": 0}), 404, "not_found")
    assert snapshot(t) == before
    assert works(env.srv, victim["client_id"], victim["client_secret"])


def test_attack_read_only_admin_cannot_rotate(env):
    t = env.t
    acct, adm = pair(env, "rotro")
    k = create(adm, {"name": "k", "scopes": ["read"]})
    reader = Admin(env, acct, READ)
    before = snapshot(t)
    insufficient(reader.post(f"keys/{k['client_id']}/rotate-secret", {"overlap_seconds": 0}), WRITE)
    assert snapshot(t) == before
    assert works(env.srv, k["client_id"], k["client_secret"])


def test_attack_database_writes_cannot_bring_a_secret_back(env):
    """The application's role writes api_key_secrets only as a rotation: deleting
    the row (the first secret would work again) or pointing `previous` at any
    digest but the one that was current is refused by the database."""
    t = env.t
    acct = new_account(env, "rotdb")
    k = new_key(t, acct, "k", "read")
    kid = k["client_id"]
    rotate_cli(t, kid, "0s")
    before = snapshot(t)
    for sql in ("DELETE FROM api_key_secrets WHERE key_id = %s",
                "UPDATE api_key_secrets SET previous_until = now() + interval '1 day' WHERE key_id = %s",
                "UPDATE api_key_secrets SET previous_hash = (SELECT secret_hash FROM api_keys WHERE id = key_id),"
                " secret_hash = '\\x" + "00" * 32 + "' WHERE key_id = %s"):
        with pytest.raises(psycopg2.Error):
            t.query(sql, (kid,))
    assert snapshot(t) == before
    assert not works(env.srv, kid, k["client_secret"])


# ---------------------------------------------------------------------------
# Remote CLI
# ---------------------------------------------------------------------------
def test_remote_cli_rotate(env):
    t = env.t
    acct, adm = pair(env, "rotremote")
    k = create(adm, {"name": "k", "scopes": ["read"]})
    kid, old = k["client_id"], k["client_secret"]
    renv = {"TOKEND_URL": env.srv.base, "TOKEND_CLIENT_ID": adm.key["client_id"],
            "TOKEND_CLIENT_SECRET": adm.key["client_secret"]}
    # Text output: the secret once, and when the old one stops.
    r = t.run("key", "rotate-secret", kid, "--overlap", "10m", env=renv, config=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    found = set(SECRET_FIND_RE.findall(r.stdout + r.stderr))
    assert len(found) == 1, r.stdout
    new = found.pop()
    remember_secret(new)
    assert "keeps working until" in r.stdout and "tks_..." + old[-4:] in r.stdout, r.stdout
    assert adm.key["client_secret"] not in r.stdout + r.stderr
    assert works(env.srv, kid, new) and works(env.srv, kid, old)
    shown = t.run("key", "show", kid, "--json", env=renv, config=False)
    assert json.loads(shown.stdout)["previous_hint"] == old[-4:]
    # Refusals come back as one line; nothing changes.
    _, other = pair(env, "rotremote-other")
    before = snapshot(t)
    r = t.run("key", "rotate-secret", make_key_id(), "--overlap", "1h", env=renv, config=False)
    assert r.returncode == 1 and "no key" in r.stderr, r.stderr
    oenv = dict(renv, TOKEND_CLIENT_ID=other.key["client_id"], TOKEND_CLIENT_SECRET=other.key["client_secret"])
    r = t.run("key", "rotate-secret", kid, "--overlap", "1h", env=oenv, config=False)
    assert r.returncode == 1 and "no key" in r.stderr, r.stderr
    assert snapshot(t) == before
