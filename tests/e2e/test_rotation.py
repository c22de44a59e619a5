"""Scheduled signing-key rotation with pre-publication (issue 15, points 2 and 4).

Accelerated: signing_key_rotation = 6s, jwks_max_age = 2s, signing_key_margin =
1s, token lifetime 5s. Two tokend instances share one database; a node `jose`
verifier (tests/interop/rotation-verify.mjs) caches the JWKS for jwks_max_age
(and fetches it again no sooner, even for an unknown kid) and verifies every
token as it is issued. Three rotations: zero verification failures, no token
signed by a key published for less than jwks_max_age, each step done once
(audited), old keys retired once their last token expired. Then the instance
holding the rotation lock is killed (SIGKILL) in the middle of a step: the
other finishes it.
"""
import http.client
import http.server
import json
import os
import signal
import subprocess
import threading
import time

import jwt
import pytest

from support.pg import db_dicts
from support.server import new_key
from support.util import free_port, wait_until
from test_node_interop import INTEROP, node  # noqa: F401  (the node fixture)
from test_signing_keys_db import kek_file

pytestmark = [pytest.mark.binary, pytest.mark.slow]

J, M, P, L = 2, 1, 6, 5
ACCEL = dict(jwks_max_age=f"{J}s", signing_key_margin=f"{M}s", signing_key_rotation=f"{P}s",
             token_lifetime=f"{L}s", token_lifetime_max=f"{L}s")


def fleet(make_tokend, start_server, tmp_path, n=2, env=None):
    kek, _ = kek_file(tmp_path)
    t = make_tokend(extra_config=f"signing_key_encryption_key_file = {kek}\nsigning_key_source = database")
    t.account("acme")
    t.scopes("read")
    key = new_key(t, "acme", "app", "read")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    srvs = [start_server(t, keys=(), signing_keys=None, signing_key_source="database",
                         signing_key_encryption_key_file=str(kek), issuer=issuer,
                         port=port if i == 0 else None, env=env, check_exit=env is None, **ACCEL)
            for i in range(n)]
    return t, key, srvs, issuer


class Balancer:
    """The verifier's JWKS URL: a round-robin load balancer over the live instances."""

    def __init__(self, traffic):
        n = [0]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                # Like a real balancer, a GET whose instance dies under it (the test
                # kills one mid-rotation) is retried on the next live one; the
                # verifier would otherwise see its fetch fail (jose: TypeError).
                live = list(traffic.live)
                start = n[0]
                n[0] += 1
                for i in range(len(live)):
                    srv = live[(start + i) % len(live)]
                    try:
                        r = srv.get(self.path, timeout=5)
                        break
                    except (OSError, http.client.HTTPException):
                        if i == len(live) - 1:
                            raise
                self.send_response(r.status)
                for h in ("content-type", "cache-control", "etag"):
                    if h in r.headers:
                        self.send_header(h, r.headers[h])
                self.send_header("content-length", str(len(r.body)))
                self.end_headers()
                self.wfile.write(r.body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Traffic:
    """Tokens from the live instances in turn, each verified at once by the node
    verifier; the JWKS of every instance polled to know when each kid appeared."""

    def __init__(self, node, srvs, key, issuer):
        self.live = list(srvs)
        self.balancer = Balancer(self)
        env = node.env()
        env.update({"JWKS_URL": self.balancer.url, "TOKEND_ISSUER": issuer,
                    "JWKS_MAX_AGE_MS": str(J * 1000)})
        self.proc = subprocess.Popen([node.path, str(INTEROP / "rotation-verify.mjs")], cwd=INTEROP,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.srvs, self.key = list(srvs), key
        self.live = list(srvs)
        self.tokens, self.results, self.errors = [], [], []
        self.first_seen = {}
        self.polls = []
        self.stop_ev = threading.Event()
        # Warm up: node started and the first JWKS fetched before the clock
        # runs (a verifier lagging behind short-lived tokens would see them expire).
        for _ in range(10):
            r = srvs[0].token(key)
            assert r.status == 200, r
            t0 = time.monotonic()
            self.proc.stdin.write(r.json()["access_token"] + "\n")
            self.proc.stdin.flush()
            first = json.loads(self.proc.stdout.readline())
            if first["ok"] and time.monotonic() - t0 < 0.5:
                break
        assert first["ok"], first
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._mint, self._read, self._poll)]
        for th in self.threads:
            th.start()

    def _mint(self):
        i = 0
        while not self.stop_ev.is_set():
            srv = self.live[i % len(self.live)]
            i += 1
            try:
                r = srv.token(self.key, timeout=5)
            except OSError as e:
                if srv in self.live:
                    self.errors.append(f"{srv.port}: {e}")
                continue
            if r.status != 200:
                self.errors.append(f"{srv.port}: {r.status} {r.body[:200]!r}")
                continue
            tok = r.json()["access_token"]
            self.tokens.append((time.time(), srv.port, jwt.get_unverified_header(tok)["kid"]))
            self.proc.stdin.write(tok + "\n")
            self.proc.stdin.flush()
            time.sleep(0.05)

    def _read(self):
        for line in self.proc.stdout:
            self.results.append(json.loads(line))

    def _poll(self):
        while not self.stop_ev.is_set():
            for srv in list(self.live):
                start = time.time()
                try:
                    r = srv.get("/.well-known/jwks.json", timeout=2)
                except OSError:
                    continue
                now = time.time()
                kids = {k["kid"] for k in r.json()["keys"]}
                self.polls.append((start, kids))
                for k in kids:
                    self.first_seen.setdefault(k, now)
            time.sleep(0.1)

    def signed_kids(self):
        return {k for _, _, k in self.tokens}

    def finish(self):
        self.stop_ev.set()
        for th in self.threads[0], self.threads[2]:
            th.join(10)
        self.proc.stdin.close()
        wait_until(lambda: len(self.results) == len(self.tokens), timeout=20, what="the verifier to finish")
        self.proc.wait(10)
        self.balancer.close()

    def check(self, initial_kid, published=None):
        assert not self.errors, self.errors[:5]
        failures = [r for r in self.results if not r["ok"]]
        assert not failures, f"{len(failures)} of {len(self.results)} tokens failed to verify: {failures[:5]}"
        # No token signed by a key that a JWKS served less than jwks_max_age
        # earlier lacked: a verifier caching that JWKS would have refused it.
        # (A poll that starts before it is served proves the key absent at its start.)
        first = {}
        for t, _, k in self.tokens:
            first.setdefault(k, t)
        early = []
        for k, t in first.items():
            if k == initial_kid:
                continue
            missing = [st for st, kids in self.polls if k not in kids and st < t]
            if missing and t - max(missing) < J:
                early.append((round(t - max(missing), 3), k))
        pub = {k: v.timestamp() for k, v in (published or {}).items()}
        db_early = [(t - pub[k], k) for k, t in first.items() if k != initial_kid and k in pub and t - pub[k] < J]
        assert not early and not db_early, (f"tokens signed by a key published for less than {J} s: {early}; "
                                            f"by the database's publish_at: {db_early}")
        self.min_gap = min((t - max([st for st, kids in self.polls if k not in kids and st < t] or [t - 99]))
                           for k, t in first.items() if k != initial_kid)
        return len(self.results)


def keys_of(t):
    return db_dicts(t.db_url, "SELECT kid, initial, publish_at, sign_from, signing_until, retire_after, "
                              "retired_at, ciphertext IS NULL AS erased, created_by FROM signing_keys "
                              "ORDER BY sign_from")


def test_three_rotations_with_a_caching_jose_verifier(make_tokend, start_server, tmp_path, node):
    t, key, srvs, issuer = fleet(make_tokend, start_server, tmp_path)
    k0 = keys_of(t)[0]
    assert k0["initial"]
    traffic = Traffic(node, srvs, key, issuer)
    try:
        wait_until(lambda: len(traffic.signed_kids()) >= 4, timeout=P * 3 + 15,
                   interval=0.2, what="three rotations")
        # The keys that stopped signing leave the JWKS once their last token expired.
        wait_until(lambda: sum(1 for k in keys_of(t) if k["retired_at"]) >= 2, timeout=P + L + M + 5,
                   interval=0.2, what="two retirements")
    finally:
        traffic.finish()
    try:
        n = traffic.check(k0["kid"], {k["kid"]: k["publish_at"] for k in keys_of(t)})
    except AssertionError as e:
        logs = [ln for s in srvs for ln in s.log_lines() if "signing_keys" in ln or "refresh" in ln]
        raise AssertionError(f"{e}\nlogs: {logs[-12:]}")
    keys = keys_of(t)
    signed = [k["kid"] for k in keys if k["kid"] in traffic.signed_kids()]
    assert len(signed) >= 4, keys
    # Each key published jwks_max_age + margin before it signs; each next key
    # starts one rotation after the previous one (never two keys made per step).
    for a, b in zip(keys, keys[1:]):
        assert (b["sign_from"] - b["publish_at"]).total_seconds() >= J + M - 0.01
        assert (b["sign_from"] - a["sign_from"]).total_seconds() >= P - 0.01, (a, b)
        assert a["signing_until"] == b["sign_from"]
    for k in keys:
        if k["retired_at"]:
            assert k["erased"]
            assert (k["retired_at"] - k["signing_until"]).total_seconds() >= L + M - 0.01
            for s in srvs:
                assert k["kid"] not in {x["kid"] for x in s.get("/.well-known/jwks.json").json()["keys"]}
    gens = db_dicts(t.db_url, "SELECT actor, detail FROM audit_log WHERE action = 'signing_key.generate'")
    assert len(gens) == len(keys)
    assert len({g["detail"]["kid"] for g in gens}) == len(keys)
    assert db_dicts(t.db_url, "SELECT count(*) AS n FROM audit_log WHERE action = 'signing_key.retire'")[0]["n"] >= 2
    print(f"rotation: {len(signed)} keys signed, {n} tokens verified by jose, 0 failures; shortest time "
          f"between a JWKS without a key and its first token: {traffic.min_gap:.2f} s (jwks_max_age {J} s)")


def test_lock_holder_killed_mid_rotation_another_finishes(make_tokend, start_server, tmp_path, node):
    delay = 3000
    t, key, srvs, issuer = fleet(make_tokend, start_server, tmp_path,
                                 env={"TOKEND_TEST_ROTATION_STEP_DELAY_MS": str(delay)})
    k0 = keys_of(t)[0]
    traffic = Traffic(node, srvs, key, issuer)
    try:
        def holder():
            rows = db_dicts(t.db_url,
                            "SELECT a.application_name FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                            "WHERE l.locktype = 'advisory' AND l.granted "
                            "AND a.application_name LIKE 'tokend-rotation-%'")
            return rows[0]["application_name"] if rows else None
        name = wait_until(holder, timeout=P + 10, interval=0.05, what="an instance inside a rotation step")
        pid = int(name.rsplit("-", 1)[1])
        before = len(keys_of(t))
        last_audit = db_dicts(t.db_url, "SELECT coalesce(max(id), 0) AS id FROM audit_log")[0]["id"]
        victim = next(s for s in srvs if s.proc.pid == pid)
        survivor = next(s for s in srvs if s is not victim)
        traffic.live.remove(victim)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.proc.wait(10)
        # The other instance takes the lock and finishes the step.
        wait_until(lambda: len(keys_of(t)) == before + 1, timeout=delay / 1000 + 8, interval=0.1,
                   what="the survivor to generate the next key")
        finished = time.monotonic() - killed_at
        k1 = keys_of(t)[-1]
        assert k1["created_by"] == f"server:tokend-rotation-{survivor.proc.pid}", k1
        wait_until(lambda: k1["kid"] in traffic.signed_kids(), timeout=J + M + delay / 1000 + 8,
                   interval=0.1, what="the next key to sign")
    finally:
        traffic.finish()
    traffic.check(k0["kid"])
    # The step the victim was in left nothing behind (its transaction rolled back).
    actors = {g["actor"] for g in db_dicts(t.db_url, "SELECT actor FROM audit_log WHERE action LIKE "
                                                     "'signing_key.%%' AND id > %s", (last_audit,))}
    assert f"server:tokend-rotation-{pid}" not in actors, actors
    assert survivor.alive() and survivor.get("/readyz").status == 200
    print(f"rotation: lock holder killed mid-step; the other instance finished it {finished:.1f} s later "
          f"(step delay {delay / 1000:.0f} s); {len(traffic.results)} tokens verified by jose, 0 failures")
