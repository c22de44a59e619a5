"""SIGHUP: signing keys reloaded without a restart (key rotation).

The configuration file is read again and its signing_keys / signing_key_active
make a new key set: the JWKS, its ETag, the metadata's algorithms and the
signing key change on every worker; tokens signed by a key still listed keep
verifying; a key removed from the list stops verifying; a bad reload keeps the
running keys. The server stops cleanly afterwards (the fixture checks the exit
status and sanitizer reports).
"""
import json
import os
import signal
import time
import urllib.parse

import jwt
import pytest

from support.http import basic
from support.keys import thumbprint
from support.registry import remember_token
from support.server import new_key
from support.util import wait_until

pytestmark = pytest.mark.binary


def kid_of(tok):
    return jwt.get_unverified_header(tok)["kid"]


def jwks_kids(srv):
    r = srv.get("/.well-known/jwks.json")
    assert r.status == 200
    return {k["kid"] for k in r.json()["keys"]}, r.headers["etag"]


def token(srv, key):
    r = srv.token(key)
    assert r.status == 200, r
    tok = r.json()["access_token"]
    remember_token(tok)
    return tok


def active(srv, tok, caller):
    body = urllib.parse.urlencode({"token": tok})
    r = srv.request("POST", "/oauth2/introspect", body,
                    {"Content-Type": "application/x-www-form-urlencoded",
                     "Authorization": basic(caller["client_id"], caller["client_secret"])})
    assert r.status == 200, r
    return r.json()["active"]


def rewrite(srv, keys, active_kid=None):
    """Point the running server's config file at other signing keys."""
    lines = [ln for ln in srv.config.read_text().splitlines()
             if not ln.startswith(("signing_keys", "signing_key_active"))]
    lines.append("signing_keys = " + " ".join(str(k) for k in keys))
    if active_kid:
        lines.append("signing_key_active = " + active_kid)
    srv.config.write_text("\n".join(lines) + "\n")


def hup(srv, event):
    before = len(srv.log_lines(event))
    os.kill(srv.proc.pid, signal.SIGHUP)
    assert wait_until(lambda: len(srv.log_lines(event)) > before, timeout=5), f"no {event} log line"


def test_rotation_by_sighup(tokend, start_server, signing_keys):
    tokend.account("acme")
    tokend.scopes("read")
    a, b, ed = signing_keys["es256"], signing_keys["es256b"], signing_keys["ed25519"]
    ka, kb, ke = thumbprint(a), thumbprint(b), thumbprint(ed)
    srv = start_server(tokend, keys=("es256",))
    key = new_key(tokend, "acme", "app", "read")
    caller = new_key(tokend, "acme", "introspector", "tokend:introspect")
    t_a = token(srv, key)
    assert kid_of(t_a) == ka
    kids, etag0 = jwks_kids(srv)
    assert kids == {ka}

    # 1. Publish B next to A and sign with B.
    rewrite(srv, [a, b, ed], active_kid=kb)
    hup(srv, "server.reloaded")
    kids, etag1 = jwks_kids(srv)
    assert kids == {ka, kb, ke} and etag1 != etag0
    # Every worker signs with B (new connections spread over the workers).
    got = {kid_of(token(srv, key)) for _ in range(30)}
    assert got == {kb}, got
    assert active(srv, t_a, caller) is True          # A is still published
    meta = srv.get("/.well-known/oauth-authorization-server").json()
    assert set(meta["access_token_signing_alg_values_supported"]) == {"ES256", "EdDSA"}, meta
    r = srv.get("/.well-known/jwks.json", headers={"If-None-Match": etag0})
    assert r.status == 200                           # the old ETag no longer matches

    # 2. A bad configuration keeps the running keys.
    rewrite(srv, [b, "/nonexistent/key.pem"], active_kid=kb)
    hup(srv, "server.reload_failed")
    assert jwks_kids(srv) == ({ka, kb, ke}, etag1)
    assert kid_of(token(srv, key)) == kb
    rewrite(srv, [b], active_kid=ka)                 # active key not in the list
    hup(srv, "server.reload_failed")
    assert jwks_kids(srv)[0] == {ka, kb, ke}
    good = srv.config.read_text()
    srv.config.write_text(good + "no_such_setting = 1\n")
    hup(srv, "server.reload_failed")
    assert jwks_kids(srv)[0] == {ka, kb, ke}
    srv.config.write_text(good)

    # 3. Retire A: its tokens stop verifying; B's keep working.
    t_b = token(srv, key)
    rewrite(srv, [b])
    hup(srv, "server.reloaded")
    assert jwks_kids(srv)[0] == {kb}
    assert active(srv, t_a, caller) is False
    assert active(srv, t_b, caller) is True
    assert kid_of(token(srv, key)) == kb
    assert srv.get("/readyz").status == 200
    reloads = srv.log_events("server.reloaded")
    assert reloads[-1]["signing_kid"] == kb and reloads[-1]["published_keys"] == "1"
    # The log names the failure, never key material.
    fails = srv.log_events("server.reload_failed")
    assert any("/nonexistent/key.pem" in f.get("detail", "") for f in fails), fails


@pytest.mark.slow
def test_reload_under_load(tokend, start_server, signing_keys):
    """Tokens keep flowing while the keys are swapped back and forth: every
    answer is a 200 whose token verifies against the JWKS published at its time."""
    import threading
    tokend.account("acme")
    tokend.scopes("read")
    a, b = signing_keys["es256"], signing_keys["es256b"]
    srv = start_server(tokend, keys=("es256", "es256b"))
    key = new_key(tokend, "acme", "app", "read")
    stop = threading.Event()
    seen, bad = [], []

    def load():
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        h = {"Content-Type": "application/x-www-form-urlencoded",
             "Authorization": basic(key["client_id"], key["client_secret"])}
        while not stop.is_set():
            c.request("POST", "/oauth2/token", body="grant_type=client_credentials", headers=h)
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                bad.append(r.status)
                continue
            tok = json.loads(body)["access_token"]
            remember_token(tok)
            seen.append(kid_of(tok))
        c.close()
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(10):
            rewrite(srv, [a, b], active_kid=thumbprint(b if i % 2 == 0 else a))
            os.kill(srv.proc.pid, signal.SIGHUP)
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not bad, f"non-200 answers during reloads: {bad[:10]}"
    assert {thumbprint(a), thumbprint(b)} <= set(seen), set(seen)
    assert len(srv.log_lines("server.reloaded")) >= 10
    print(f"\nreload under load: 10 reloads, {len(seen)} tokens, 0 failures")
