"""Issue 6, point 1: failed authentications are limited per address and per key ID.

The attacker sends from 127.0.0.2 (any 127/8 address is loopback on Linux);
the key's holder from 127.0.0.1. X-Forwarded-For is trusted only from trusted_proxies.
"""
import http.client
import json
import threading
import time

import pytest

from support.http import basic, metric
from support.server import new_key

FORM = "application/x-www-form-urlencoded"


def post_token(port, client_id, secret, source="127.0.0.1", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        h = {"Content-Type": FORM, "Authorization": basic(client_id, secret)}
        h.update(headers or {})
        c.request("POST", "/oauth2/token", body="grant_type=client_credentials", headers=h)
        r = c.getresponse()
        body = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body
    finally:
        c.close()


def wrong(secret):
    """Another well-formed secret (valid checksum) that is not the key's."""
    from support.keys import make_secret
    s = make_secret()
    assert s != secret
    return s


@pytest.mark.slow
def test_address_over_limit_gets_429_for_wrong_secrets(tokend, start_server):
    tokend.account("acme", "--key-limit", "5")
    tokend.scopes("read")
    k = new_key(tokend, "acme")
    srv = start_server(tokend, auth_failures_per_address=10, auth_failures_per_key=0)
    statuses = [post_token(srv.port, k["client_id"], wrong(k["client_secret"]), "127.0.0.2")[0]
                for _ in range(14)]
    assert statuses[:10] == [401] * 10, statuses
    assert set(statuses[10:]) == {429}, statuses
    st, h, body = post_token(srv.port, k["client_id"], wrong(k["client_secret"]), "127.0.0.2")
    assert st == 429 and int(h["retry-after"]) >= 1, (st, h)
    assert json.loads(body)["error"] == "too_many_requests"
    # The right secret still passes from that address (issue 10, finding 3: behind a
    # proxy the address is everyone's); malformed credentials are refused before any work.
    assert post_token(srv.port, k["client_id"], k["client_secret"], "127.0.0.2")[0] == 200
    assert post_token(srv.port, k["client_id"], "tks_x", "127.0.0.2")[0] == 429
    # Another address is not affected.
    assert post_token(srv.port, k["client_id"], k["client_secret"], "127.0.0.1")[0] == 200
    # A spoofed X-Forwarded-For changes nothing: the limit follows the TCP peer.
    st, h, _ = post_token(srv.port, k["client_id"], wrong(k["client_secret"]), "127.0.0.2",
                          {"X-Forwarded-For": "127.0.0.1"})
    assert st == 429, st
    assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]), "127.0.0.1",
                      {"X-Forwarded-For": "127.0.0.2"})[0] == 401
    m = srv.metrics()
    assert metric(m, "tokend_auth_throttled_total") >= 6
    # The bucket drains (10 per minute: one failure forgiven every 6 s).
    retry = int(h["retry-after"])
    assert retry <= 12
    time.sleep(retry + 0.5)
    assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]), "127.0.0.2")[0] == 401
    srv.stop()
    log = srv.stderr_text() if hasattr(srv, "stderr_text") else ""
    assert k["client_secret"] not in log


@pytest.mark.slow
def test_holder_keeps_getting_tokens_while_its_key_id_is_hammered(tokend, start_server):
    """An attacker hammering one key ID with wrong secrets never locks its holder out."""
    tokend.account("acme", "--key-limit", "5")
    tokend.scopes("read")
    victim = new_key(tokend, "acme", "victim")
    srv = start_server(tokend, auth_failures_per_address=0, auth_failures_per_key=5)
    stop = threading.Event()
    attack = {"401": 0, "429": 0, "200": 0, "other": 0}
    lock = threading.Lock()

    def attacker():
        fake = wrong(victim["client_secret"])
        while not stop.is_set():
            st = post_token(srv.port, victim["client_id"], fake, "127.0.0.2")[0]
            with lock:
                attack[str(st) if str(st) in attack else "other"] += 1

    threads = [threading.Thread(target=attacker) for _ in range(4)]
    for t in threads:
        t.start()
    holder = []
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            holder.append(post_token(srv.port, victim["client_id"], victim["client_secret"], "127.0.0.1")[0])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert holder and set(holder) == {200}, f"holder got {sorted(set(holder))}"
    assert attack["200"] == 0 and attack["other"] == 0, attack
    assert attack["429"] > attack["401"], attack     # past the first 5, the attack is throttled
    print(f"\nkey hammered: {sum(attack.values())} attack requests ({attack['429']} x 429, "
          f"{attack['401']} x 401), holder {len(holder)} x 200")


def test_unknown_and_wrong_answer_alike_when_throttled(tokend, start_server):
    """Throttling keeps the failure oracle closed: an unknown key ID and a wrong
    secret for a real one get the same answers."""
    tokend.account("acme", "--key-limit", "5")
    tokend.scopes("read")
    k = new_key(tokend, "acme")
    from support.keys import make_key_id
    unknown = make_key_id()
    srv = start_server(tokend, auth_failures_per_address=0, auth_failures_per_key=3)
    real = [post_token(srv.port, k["client_id"], wrong(k["client_secret"]))[::2] for _ in range(5)]
    ghost = [post_token(srv.port, unknown, wrong(k["client_secret"]))[::2] for _ in range(5)]
    assert [s for s, _ in real] == [s for s, _ in ghost] == [401, 401, 401, 429, 429]
    assert [b for _, b in real] == [b for _, b in ghost]


# ---------------------------------------------------------------------------
# Issue 10, finding 3: one address is everyone behind a proxy
# ---------------------------------------------------------------------------
def post_form(port, path, form, source="127.0.0.1", headers=None):
    import urllib.parse
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        h = {"Content-Type": FORM}
        h.update(headers or {})
        c.request("POST", path, body=urllib.parse.urlencode(form), headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_correct_secret_passes_an_address_over_its_limit(tokend, start_server):
    """Behind a proxy every client is one address: failures of others never refuse a
    correct secret (token and introspection), while wrong secrets from it stay 429,
    unknown key IDs alike."""
    from support.keys import make_key_id
    tokend.account("acme", "--key-limit", "5")
    tokend.scopes("read")
    k = new_key(tokend, "acme", "holder", "read")
    intro = new_key(tokend, "acme", "introspector", "tokend:introspect")
    srv = start_server(tokend, auth_failures_per_address=5, auth_failures_per_key=0)
    # Someone else behind the same address (the proxy) fails 8 times.
    statuses = [post_token(srv.port, make_key_id(), wrong(k["client_secret"]))[0] for _ in range(8)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
    # The holders' correct secrets still pass from that address.
    st, h, body = post_token(srv.port, k["client_id"], k["client_secret"])
    assert st == 200, (st, body)
    tok = json.loads(body)["access_token"]
    st, body = post_form(srv.port, "/oauth2/introspect", {"token": tok},
                         headers={"Authorization": basic(intro["client_id"], intro["client_secret"])})
    assert st == 200 and json.loads(body)["active"] is True, (st, body)
    # Wrong secrets and unknown keys from the address: the same 429 (after the same work).
    a = post_token(srv.port, k["client_id"], wrong(k["client_secret"]))
    b = post_token(srv.port, make_key_id(), wrong(k["client_secret"]))
    assert a[0] == b[0] == 429 and a[2] == b[2], (a, b)
    assert int(a[1]["retry-after"]) >= 1
    # Malformed credentials are refused before any work, still 429.
    assert post_token(srv.port, k["client_id"], "tks_nonsense")[0] == 429


def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored(tokend, start_server):
    """trusted_proxies names other addresses: X-Forwarded-For from 127.0.0.1 is ignored."""
    tokend.account("acme", "--key-limit", "5")
    tokend.scopes("read")
    k = new_key(tokend, "acme")
    srv = start_server(tokend, auth_failures_per_address=3, auth_failures_per_key=0,
                       trusted_proxies="10.0.0.0/8, fd00::/8")
    for i in range(3):
        # Each attempt claims another client address: all are counted against the peer.
        assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]), "127.0.0.2",
                          {"X-Forwarded-For": f"198.51.100.{i}"})[0] == 401
    assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]), "127.0.0.2",
                      {"X-Forwarded-For": "198.51.100.77"})[0] == 429
    assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]), "127.0.0.1")[0] == 401
    ev = [e for e in srv.log_events("token.refused") if e.get("reason") == "address_throttled"]
    assert ev and {e.get("peer") for e in ev} == {"127.0.0.2"}, ev


def test_forwarded_for_from_a_trusted_proxy_names_the_client(tokend, start_server):
    """With trusted_proxies = 127.0.0.1/32 (the proxy), the last untrusted X-Forwarded-For
    hop is the client: limits, logs and audit rows follow it."""
    tokend.account("acme", "--key-limit", "5")
    tokend.scopes("read")
    k = new_key(tokend, "acme")
    srv = start_server(tokend, auth_failures_per_address=3, auth_failures_per_key=0,
                       trusted_proxies="127.0.0.1/32 10.1.0.0/16 2001:db8::/32")
    bad = {"X-Forwarded-For": "203.0.113.9"}
    # Hops walked from the right: trusted proxies (10.1.x, 127.0.0.1) are skipped.
    chained = {"X-Forwarded-For": "192.0.2.1, 203.0.113.9 , 10.1.2.3"}
    for _ in range(2):
        assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]), headers=bad)[0] == 401
    assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]), headers=chained)[0] == 401
    assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]), headers=bad)[0] == 429
    # Another client behind the same proxy, by IPv4 and IPv6: unaffected.
    for other in ("203.0.113.10", "2001:db9::5", "10.1.0.1, 203.0.113.11"):
        st = post_token(srv.port, k["client_id"], wrong(k["client_secret"]), headers={"X-Forwarded-For": other})[0]
        assert st == 401, other
    # A forged leftmost entry does not escape: the client is the last untrusted hop.
    assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]),
                      headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})[0] == 429
    # Malformed X-Forwarded-For: the peer (the proxy itself) is the client address, so the
    # fourth such failure (limit 3) is throttled although no two name the same client.
    for i, junk in enumerate(("203.0.113.9, not-an-ip", "203.0.113.9;1", "", "1.2.3.4:80")):
        assert post_token(srv.port, k["client_id"], wrong(k["client_secret"]),
                          headers={"X-Forwarded-For": junk})[0] == (401 if i < 3 else 429), junk
    ev = srv.log_events("token.refused")
    assert any(e.get("peer") == "203.0.113.9" and e.get("reason") == "address_throttled" for e in ev), ev
    # The access log names the client too.
    assert any(e.get("peer") == "203.0.113.9" for e in srv.log_events("http.request"))


def test_trusted_proxies_config_errors(tokend, start_server):
    """A bad CIDR stops the server with a clear error naming the setting."""
    for bad in ("10.0.0.0/33", "300.1.1.1/32", "fe80::/129", "10.0.0.1/8/1", "banana", "10.0.0.0/-1",
                "10.0.0.0/"):
        srv = start_server(tokend, wait=False, check_exit=False, trusted_proxies=bad)
        srv.proc.wait(timeout=20)
        assert srv.proc.returncode != 0, bad
        assert "trusted_proxies" in srv.stderr_text(), srv.stderr_text()[-500:]
