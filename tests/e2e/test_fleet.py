"""
End-to-end test of a fleet: three tokend instances on one PostgreSQL (issue 15, point 4).

Three `tokend serve` processes, each with its own listen port and admin port, share one
database, with a background load of token requests on each. In every cycle a key is
disabled through instance A's admin API (HTTP, with an admin token); all three are then
asked for a token with it until each refuses; then it is enabled again the same way and
all three are asked until each issues one. Measured per cycle: from the admin call's
return to the last instance answering the new way (the answer's arrival), p50/p99/max
over all cycles, printed in the "tokend e2e measured bounds" summary.

Bounds: DESIGN.md promises revocation on every instance within 1 s of the admin call
returning (asserted for every cycle: no request sent 1 s or more after the disable
returned gets a token); the fleet target is p99 <= 100 ms (printed; asserted at 200 ms,
400 ms for the sanitized binary, for shared loaded machines).
Once an instance refused, it refuses again at once (asserted each cycle), and the
bystander keys of the load never fail.

The quick run makes FLEET_QUICK_CYCLES cycles; the `slow` variant makes 1,000
(SECURITY.md row D2 at CI scale). TOKEND_FLEET_CYCLES overrides both.
"""
import http.client
import os
import time

import pytest

from support.admin import A
from support.http import http_request, token_request
from support.registry import note_timing
from support.server import Load, fmt, get_token, new_key
from support.util import free_port

pytestmark = pytest.mark.binary

FLEET_QUICK_CYCLES = 100
CYCLE_TIMEOUT = 2.0      # a cycle that has not converged by then fails the test


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Keepalive:
    """One keep-alive connection to a port, reopened when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def _c(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        return self.conn

    def _after(self, r):
        if r.headers.get("connection", "").lower() == "close":
            self.close()
        return r

    def token(self, key):
        try:
            return self._after(token_request(self.port, auth=(key["client_id"], key["client_secret"]),
                                             conn=self._c()))
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def post(self, path, bearer):
        try:
            return self._after(http_request(self.port, "POST", path, None,
                                            {"Authorization": "Bearer " + bearer}, conn=self._c()))
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def converge(conns, key, want, t_ret, names):
    """Ask every instance (round robin, only those not yet answering `want`) until all do.
    Returns ({name: seconds from t_ret to the arrival of its first `want` answer},
    seconds from t_ret to the sending of the last request still answered the old way,
    [unexpected answers]). `want`: 401 (refused) or 200 (a token). Fails when a round
    sent CYCLE_TIMEOUT after t_ret still gets an old answer (a stalled test process
    delays the round, not the verdict: only requests sent that late count)."""
    pending = dict(zip(names, conns))
    when, odd, last_old = {}, [], 0.0
    while pending:
        late_round = time.monotonic() - t_ret > CYCLE_TIMEOUT
        for name in list(pending):
            t_send = time.monotonic()
            r = pending[name].token(key)
            t = time.monotonic()
            if r.status == want:
                when[name] = t - t_ret
                del pending[name]
            else:
                last_old = max(last_old, t_send - t_ret)
                if r.status not in (200, 401):
                    odd.append((name, r.status, r.body[:80]))
        if pending and late_round:
            raise AssertionError(f"not converged to {want}: requests sent {CYCLE_TIMEOUT} s after the admin "
                                 f"call still answered otherwise by {sorted(pending)}; odd answers {odd[:5]}")
    return when, last_old, odd


def diagnose(srvs, names, key):
    """The end of each instance's log: its listener and database events, and the key's lines."""
    out = []
    for n, srv in zip(names, srvs):
        lines = [ln for ln in srv.log_lines() if key["client_id"] in ln or "listener." in ln or "db." in ln]
        out.append(f"--- {n} (port {srv.port}):\n" + "\n".join(lines[-12:]))
    return "\n".join(out)


def run_fleet(tokend, start_server, cycles, p99_bound):
    tokend.account("acme", "--key-limit", "20")
    tokend.scopes("read")
    tokend.grant_scopes("acme", "tokend:admin:read", "tokend:admin:write")
    aports = [free_port() for _ in range(3)]
    names = ("A", "B", "C")
    # cache_ttl long: only the notification can make an instance see the change.
    srvs = [start_server(tokend, admin_listen_port=p, cache_ttl="1h") for p in aports]
    admin_key = new_key(tokend, "acme", "fleet admin", "tokend:admin:read tokend:admin:write")
    admin_token = get_token(srvs[0], admin_key)
    victim = new_key(tokend, "acme", "victim", "read")
    bystander = new_key(tokend, "acme", "bystander", "read")
    conns = [Keepalive(s.port) for s in srvs]
    admin = Keepalive(aports[0])
    # Warm: the victim cached on every instance (its creation notice may drop it once).
    for c in conns:
        for _ in range(3):
            assert c.token(victim).status == 200
    loads = [Load(s, bystander, f"load-{n}", pause=0.01).start() for s, n in zip(srvs, names)]
    off, on, odd_all, served_after = [], [], [], []
    per_instance = {n: [] for n in names}
    t_begin = time.monotonic()
    try:
        for i in range(cycles):
            r = admin.post(f"{A}/keys/{victim['client_id']}/disable", admin_token)
            t_ret = time.monotonic()
            assert r.status == 200 and r.json()["state"] == "disabled", r
            try:
                when, last_ok, odd = converge(conns, victim, 401, t_ret, names)
            except AssertionError as e:
                raise AssertionError(f"cycle {i}: {e}\n{diagnose(srvs, names, victim)}")
            off.append(max(when.values()))
            served_after.append(last_ok)
            for n, v in when.items():
                per_instance[n].append(v)
            odd_all += odd
            # Refused once, refused again: no instance flips back to a cached copy.
            again = [(n, c.token(victim).status) for n, c in zip(names, conns)]
            assert all(s == 401 for _, s in again), f"cycle {i}: an instance issued again after refusing: {again}"
            r = admin.post(f"{A}/keys/{victim['client_id']}/enable", admin_token)
            t_ret = time.monotonic()
            assert r.status == 200 and r.json()["state"] == "enabled", r
            try:
                when, _, odd = converge(conns, victim, 200, t_ret, names)
            except AssertionError as e:
                raise AssertionError(f"cycle {i}: {e}\n{diagnose(srvs, names, victim)}")
            on.append(max(when.values()))
            odd_all += odd
        elapsed = time.monotonic() - t_begin
    finally:
        recs = [r for ld in loads for r in ld.stop()]
        admin.close()
        for c in conns:
            c.close()
    assert not odd_all, f"answers other than 200/401 while converging: {odd_all[:10]}"
    bad = [r for r in recs if r.status != 200]
    assert recs and not bad, f"the bystander load failed: {fmt(bad)}"
    p50, p99, mx = (percentile(off, 50) * 1000, percentile(off, 99) * 1000, max(off) * 1000)
    e50, e99, emx = (percentile(on, 50) * 1000, percentile(on, 99) * 1000, max(on) * 1000)
    note_timing(f"fleet of 3, key disabled via A's admin API, refused by all ({cycles} cycles)",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {mx:.1f} ms; re-enabled, accepted by all: "
                f"p50 {e50:.1f} ms, p99 {e99:.1f} ms, max {emx:.1f} ms; latest token for a request sent "
                f"{max(served_after) * 1000:.1f} ms after a disable returned; {elapsed:.1f} s for {cycles} cycles, "
                f"{len(recs)} load requests; per instance p99 " +
                ", ".join(f"{n} {percentile(v, 99) * 1000:.1f} ms" for n, v in per_instance.items()))
    latest = max(served_after) * 1000
    assert latest < 1000, f"a request sent {latest:.0f} ms after the disable returned got a token (bound 1 s)"
    assert p99 <= p99_bound, f"p99 of disable propagation {p99:.1f} ms (target {p99_bound} ms)"
    for s in srvs:
        assert s.alive()


def _cycles(default):
    return int(os.environ.get("TOKEND_FLEET_CYCLES") or default)


def _p99_bound(sanitized):
    """The target is 100 ms (met on a quiet run: 36-71 ms); asserted at 200 ms, since a
    shared 2-core machine under a whole suite measured 160 ms; the sanitized binary
    (p50 ~30-120 ms per cycle) 400 ms. The 1 s bound is the same for both."""
    return 400 if sanitized else 200


def test_fleet_disable_enable_cycles(tokend, start_server, sanitized):
    run_fleet(tokend, start_server, _cycles(FLEET_QUICK_CYCLES), _p99_bound(sanitized))


@pytest.mark.slow
def test_fleet_disable_enable_1000_cycles(tokend, start_server, sanitized):
    run_fleet(tokend, start_server, _cycles(1000), _p99_bound(sanitized))
