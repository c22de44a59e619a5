"""Issue 6, point 1: failed authentications are limited per address and per key ID.

The attacker sends from 127.0.0.2 (any 127/8 address is loopback on Linux);
the key's holder from 127.0.0.1. X-Forwarded-For is never trusted.
"""
import http.client
import json
import threading
import time

from server import basic, metric, new_key

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
    from conftest import make_secret
    s = make_secret()
    assert s != secret
    return s


def test_address_over_limit_gets_429_before_any_work(tokend, start_server):
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
    # Throttled before any work: even the right secret from that address waits.
    assert post_token(srv.port, k["client_id"], k["client_secret"], "127.0.0.2")[0] == 429
    # Another address is not affected.
    assert post_token(srv.port, k["client_id"], k["client_secret"], "127.0.0.1")[0] == 200
    # A spoofed X-Forwarded-For changes nothing: the limit follows the TCP peer.
    assert post_token(srv.port, k["client_id"], k["client_secret"], "127.0.0.2",
                      {"X-Forwarded-For": "127.0.0.1"})[0] == 429
    assert post_token(srv.port, k["client_id"], k["client_secret"], "127.0.0.1",
                      {"X-Forwarded-For": "127.0.0.2"})[0] == 200
    m = srv.metrics()
    assert metric(m, "tokend_auth_throttled_total") >= 6
    # The bucket drains (10 per minute: one failure forgiven every 6 s).
    retry = int(h["retry-after"])
    assert retry <= 12
    time.sleep(retry + 0.5)
    assert post_token(srv.port, k["client_id"], k["client_secret"], "127.0.0.2")[0] == 200
    srv.stop()
    log = srv.stderr_text() if hasattr(srv, "stderr_text") else ""
    assert k["client_secret"] not in log


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
    from conftest import make_key_id
    unknown = make_key_id()
    srv = start_server(tokend, auth_failures_per_address=0, auth_failures_per_key=3)
    real = [post_token(srv.port, k["client_id"], wrong(k["client_secret"]))[::2] for _ in range(5)]
    ghost = [post_token(srv.port, unknown, wrong(k["client_secret"]))[::2] for _ in range(5)]
    assert [s for s, _ in real] == [s for s, _ in ghost] == [401, 401, 401, 429, 429]
    assert [b for _, b in real] == [b for _, b in ghost]
