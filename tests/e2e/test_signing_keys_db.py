"""Signing keys kept in PostgreSQL (signing_key_source = database, issue 15 point 1).

`tokend signing-key generate|list|retire|rewrap` against a real database; the
private keys are stored encrypted (AES-256-GCM under a key-encryption key that
never enters the database); serve loads them at start, follows changes by
NOTIFY on every instance without SIGHUP, refuses a wrong key-encryption key,
and never signs with a key published for less than jwks_max_age, whatever the
rows say. File-based keys stay the default.
"""
import base64
import os
import secrets

import jwt
import psycopg2
import pytest

from support.pg import db_dicts, db_query
from support.server import new_key
from support.util import wait_until

pytestmark = pytest.mark.binary


def kek_file(directory, name="kek"):
    """A key-encryption key file: base64 of 32 random bytes, mode 0600."""
    p = directory / name
    raw = secrets.token_bytes(32)
    p.write_text(base64.b64encode(raw).decode() + "\n")
    os.chmod(p, 0o600)
    return p, raw


def db_tokend(make_tokend, tmp_path, **config):
    kek, raw = kek_file(tmp_path)
    lines = [f"signing_key_encryption_key_file = {kek}", "signing_key_source = database"]
    lines += [f"{k} = {v}" for k, v in config.items()]
    t = make_tokend(extra_config="\n".join(lines))
    t.kek_path, t.kek_raw = kek, raw
    return t


def db_server(start_server, tokend, kek=None, **settings):
    cfg = dict(signing_keys=None, signing_key_source="database",
               signing_key_encryption_key_file=str(kek or tokend.kek_path))
    cfg.update(settings)
    return start_server(tokend, keys=(), **cfg)


def kid_of(tok):
    return jwt.get_unverified_header(tok)["kid"]


def jwks_kids(srv):
    r = srv.get("/.well-known/jwks.json")
    assert r.status == 200, r
    return {k["kid"] for k in r.json()["keys"]}


def token_kid(srv, key):
    r = srv.token(key)
    assert r.status == 200, r
    return kid_of(r.json()["access_token"])


def rows(tokend):
    return db_dicts(tokend.db_url, "SELECT kid, alg, kek_id, ciphertext, nonce, tag, initial, "
                                   "publish_at, sign_from, signing_until, retire_after, retired_at "
                                   "FROM signing_keys ORDER BY sign_from")


def test_generate_list_store_encrypted_and_serve(make_tokend, start_server, tmp_path):
    t = db_tokend(make_tokend, tmp_path)
    k = t.json("signing-key", "generate", "--alg", "ES256")
    assert k["alg"] == "ES256" and k["state"] == "active" and k["initial"] is True
    listed = t.json("signing-key", "list")
    assert [x["kid"] for x in listed] == [k["kid"]]
    text = t.run("signing-key", "list", check=0).stdout
    assert k["kid"] in text and "active" in text
    # Nothing of the private key is printed, and nothing of it is stored in clear.
    for out in (str(k), str(listed), text):
        assert '"d"' not in out and "PRIVATE" not in out
    (row,) = rows(t)
    ct = bytes(row["ciphertext"])
    assert len(bytes(row["nonce"])) == 12 and len(bytes(row["tag"])) == 16
    for clear in (b'"d"', b"kty", b"PRIVATE", b"-----", row["kid"].encode(), b"P-256"):
        assert clear not in ct
    assert base64.b64encode(t.kek_raw).decode() not in str(db_query(t.db_url, "SELECT * FROM signing_keys"))
    assert row["kek_id"] and len(row["kek_id"]) == 22
    audit = db_dicts(t.db_url, "SELECT actor, detail FROM audit_log WHERE action = 'signing_key.generate'")
    assert audit and audit[-1]["detail"]["kid"] == k["kid"]

    t.account("acme")
    t.scopes("read")
    key = new_key(t, "acme", "app", "read")
    srv = db_server(start_server, t)
    assert jwks_kids(srv) == {k["kid"]}
    assert token_kid(srv, key) == k["kid"]
    ready = srv.get("/readyz").json()
    assert ready["signing_key"] is True
    # The key-encryption key never reaches the log or `tokend config`.
    b64 = base64.b64encode(t.kek_raw).decode()
    assert b64 not in srv.stderr_text()
    env = {"TOKEND_SIGNING_KEY_ENCRYPTION_KEY": t.kek_raw.hex()}
    cfg = t.run("config", env=env, check=0).stdout
    assert t.kek_raw.hex() not in cfg and "signing_key_encryption_key = ********" in cfg, cfg


def test_empty_table_gets_its_initial_key_at_start(make_tokend, start_server, tmp_path):
    t = db_tokend(make_tokend, tmp_path)
    t.account("acme")
    t.scopes("read")
    key = new_key(t, "acme", "app", "read")
    srv = db_server(start_server, t, signing_key_alg="EdDSA")
    (row,) = rows(t)
    assert row["alg"] == "EdDSA" and row["initial"] is True
    tok = srv.token(key).json()["access_token"]
    assert jwt.get_unverified_header(tok) == {"alg": "EdDSA", "kid": row["kid"], "typ": "at+jwt"}
    assert srv.log_events("signing_keys.rotation_step")
    # A second instance on the same table adds nothing.
    srv2 = db_server(start_server, t)
    assert len(rows(t)) == 1 and token_kid(srv2, key) == row["kid"]


def test_wrong_or_missing_kek_and_altered_rows_refused(make_tokend, start_server, tmp_path):
    t = db_tokend(make_tokend, tmp_path)
    t.json("signing-key", "generate")
    other, _ = kek_file(tmp_path, "other")
    # serve with another KEK: refuses to start, naming the cause.
    srv = db_server(start_server, t, kek=other, wait=False, check_exit=False)
    wait_until(lambda: not srv.alive(), timeout=20, what="serve to refuse")
    assert srv.proc.returncode == 1
    assert "another key-encryption key" in srv.stderr_text()
    # The CLI too; and without any KEK.
    env = {"TOKEND_SIGNING_KEY_ENCRYPTION_KEY_FILE": str(other)}
    t.refused("signing-key", "generate", env=env, match="another key-encryption key")
    cfg = t.write_config([f"database_url = {t.app_url}", f"pepper_file = {t.pepper_file}"], name="nokek.conf")
    t.refused("signing-key", "generate", config=cfg, match="no key-encryption key")
    # A KEK file others may read, or that is not 32 bytes: refused.
    loose, _ = kek_file(tmp_path, "loose")
    os.chmod(loose, 0o644)
    t.refused("signing-key", "generate", env={"TOKEND_SIGNING_KEY_ENCRYPTION_KEY_FILE": str(loose)},
              match="readable by others|others")
    t.refused("signing-key", "generate", env={"TOKEND_SIGNING_KEY_ENCRYPTION_KEY": "c2hvcnQ="},
              match="32 bytes|short")
    assert len(rows(t)) == 1                          # nothing changed

    # A ciphertext moved to another row (the database owner could) fails to open.
    t.json("signing-key", "generate")
    a, b = rows(t)
    with psycopg2.connect(t.db_url) as c, c.cursor() as cur:
        cur.execute("UPDATE signing_keys SET ciphertext = %s, nonce = %s, tag = %s WHERE kid = %s",
                    (a["ciphertext"], a["nonce"], a["tag"], b["kid"]))
    srv = db_server(start_server, t, wait=False, check_exit=False)
    wait_until(lambda: not srv.alive(), timeout=20, what="serve to refuse")
    assert srv.proc.returncode == 1 and "does not decrypt" in srv.stderr_text()


def test_runtime_role_cannot_write_the_table(make_tokend, tmp_path):
    t = db_tokend(make_tokend, tmp_path)
    k = t.json("signing-key", "generate")
    for sql in ("UPDATE signing_keys SET sign_from = now()",
                "DELETE FROM signing_keys",
                "INSERT INTO signing_keys (kid, alg, public_jwk, kek_id, sign_from, retired_at) "
                "VALUES (repeat('a', 43), 'ES256', '{}', repeat('b', 22), now(), now())"):
        with pytest.raises(psycopg2.Error) as e:
            db_query(t.app_url, sql, fetch=False)
        assert "tokend's functions" in str(e.value) or "permission" in str(e.value), e.value
    # Even the owner never deletes a key nor changes its public half.
    with pytest.raises(psycopg2.Error):
        db_query(t.db_url, "DELETE FROM signing_keys", fetch=False)
    with pytest.raises(psycopg2.Error):
        db_query(t.db_url, "UPDATE signing_keys SET alg = 'RS256'", fetch=False)
    assert rows(t)[0]["kid"] == k["kid"]


def test_retire_by_hand(make_tokend, tmp_path):
    t = db_tokend(make_tokend, tmp_path, jwks_max_age="1h")
    a = t.json("signing-key", "generate")
    t.refused("signing-key", "retire", a["kid"], match="signs now")
    b = t.json("signing-key", "generate", "--alg", "RS256")
    assert b["state"] == "next" and b["initial"] is False
    r = {x["kid"]: x for x in rows(t)}
    assert r[a["kid"]]["signing_until"] == r[b["kid"]]["sign_from"]
    t.refused("signing-key", "generate", match="already waiting")
    t.refused("signing-key", "retire", a["kid"], match="signs now")
    gone = t.json("signing-key", "retire", b["kid"])
    assert gone["state"] == "retired"
    r = {x["kid"]: x for x in rows(t)}
    assert r[b["kid"]]["ciphertext"] is None                       # the private key is erased
    assert r[a["kid"]]["signing_until"] is None and r[a["kid"]]["retire_after"] is None
    t.refused("signing-key", "retire", b["kid"], match="already retired")
    t.refused("signing-key", "retire", "A" * 43, match="no signing key")
    # A kid may begin with '-' (base64url): still the kid, not options.
    t.refused("signing-key", "retire", "-X" + "A" * 41, match="no signing key")
    t.refused("signing-key", "retire", "--now", "--" + "A" * 41, match="no signing key")
    t.usage_error("signing-key", "retire", "-X" + "A" * 41, "B" * 43)
    t.usage_error("signing-key", "retire", "not-a-kid")
    t.usage_error("signing-key", "generate", "--alg", "HS256")
    t.usage_error("signing-key", "frobnicate")
    acts = [x["action"] for x in db_dicts(t.db_url, "SELECT action FROM audit_log "
                                                    "WHERE action LIKE 'signing_key.%' ORDER BY id")]
    assert acts == ["signing_key.generate", "signing_key.generate", "signing_key.retire"]


def test_rewrap_moves_every_key_to_a_new_kek(make_tokend, start_server, tmp_path):
    t = db_tokend(make_tokend, tmp_path, jwks_max_age="1h")
    a = t.json("signing-key", "generate")
    b = t.json("signing-key", "generate", "--alg", "EdDSA")
    before = {x["kid"]: x for x in rows(t)}
    new, _ = kek_file(tmp_path, "new")
    # A loose new key file is refused and nothing changes.
    loose, _ = kek_file(tmp_path, "loose")
    os.chmod(loose, 0o644)
    t.refused("signing-key", "rewrap", "--new-key-file", str(loose))
    t.refused("signing-key", "rewrap", "--new-key-file", str(t.kek_path), match="already configured")
    assert {x["kid"]: x["kek_id"] for x in rows(t)} == {k: v["kek_id"] for k, v in before.items()}

    out = t.json("signing-key", "rewrap", "--new-key-file", str(new))
    assert out["rewrapped"] == 2 and out["from_kek"] != out["to_kek"]
    after = {x["kid"]: x for x in rows(t)}
    for kid in (a["kid"], b["kid"]):
        assert after[kid]["kek_id"] == out["to_kek"]
        assert bytes(after[kid]["ciphertext"]) != bytes(before[kid]["ciphertext"])
        assert bytes(after[kid]["nonce"]) != bytes(before[kid]["nonce"])
    # The old KEK no longer opens them; the new one does, and signs with the same key.
    srv = db_server(start_server, t, wait=False, check_exit=False)
    wait_until(lambda: not srv.alive(), timeout=20, what="serve with the old KEK to refuse")
    assert "another key-encryption key" in srv.stderr_text()
    t.account("acme")
    t.scopes("read")
    key = new_key(t, "acme", "app", "read")
    srv = db_server(start_server, t, kek=new, jwks_max_age="1h")
    assert jwks_kids(srv) == {a["kid"], b["kid"]}
    assert token_kid(srv, key) == a["kid"]
    audit = db_dicts(t.db_url, "SELECT detail FROM audit_log WHERE action = 'signing_key.rewrap'")
    assert len(audit) == 2 and audit[0]["detail"]["to_kek"] == out["to_kek"]


def test_notify_reaches_every_instance_and_unpublished_key_never_signs(make_tokend, start_server, tmp_path):
    """Two instances: a key generated by the CLI is published by both at once
    (NOTIFY, no SIGHUP). Rows saying a key published 0 s ago signs now are
    not obeyed: no token is ever signed by it before jwks_max_age."""
    t = db_tokend(make_tokend, tmp_path, jwks_max_age="60s")
    a = t.json("signing-key", "generate")
    t.account("acme")
    t.scopes("read")
    key = new_key(t, "acme", "app", "read")
    s1 = db_server(start_server, t, jwks_max_age="60s")
    s2 = db_server(start_server, t, jwks_max_age="60s")
    b = t.json("signing-key", "generate")
    for s in (s1, s2):
        wait_until(lambda s=s: jwks_kids(s) == {a["kid"], b["kid"]}, timeout=2,
                   what="the new key in the JWKS without SIGHUP")
        assert token_kid(s, key) == a["kid"]
    assert not s1.log_lines("server.reloaded") and not s2.log_lines("server.reloaded")

    # The database says B signs now (the owner rewrote its time): A still may,
    # B is refused by the server.
    db_query(t.db_url, "UPDATE signing_keys SET sign_from = publish_at WHERE kid = %s", (b["kid"],), fetch=False)
    import time
    time.sleep(0.6)
    kids = {token_kid(s, key) for s in (s1, s2) for _ in range(10)}
    assert kids == {a["kid"]}, kids
    # And says A stopped: no key may sign: 503, never a token from B.
    db_query(t.db_url, "UPDATE signing_keys SET signing_until = now(), retire_after = now() + interval '1 hour' "
                       "WHERE kid = %s", (a["kid"],), fetch=False)
    for s in (s1, s2):
        wait_until(lambda s=s: s.token(key).status == 503, timeout=3, what="503 without a usable key")
        r = s.get("/readyz")
        assert r.status == 503 and r.json()["signing_key"] is False
        assert jwks_kids(s) == {a["kid"], b["kid"]}
        assert s.log_lines("signing_keys.none_may_sign")
