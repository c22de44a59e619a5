#!/usr/bin/python3
"""
Timing of the secret check over HTTP (issue 6, point 5; SECURITY.md B3 (c)).

A benchmark, not a test: it prints figures and exits 0 whatever they are (non-zero
only when something could not be set up or measured). Run it with Debian's python3:

    /usr/bin/python3 tests/bench/timing.py                 # 20,000 samples per class
    TIMING_SAMPLES=5000 /usr/bin/python3 tests/bench/timing.py

It starts a throwaway PostgreSQL (scripts/pg.sh, in a temp dir made searchable so
that, as root, the server can run as the user tokendpg), migrates, creates one key
with `tokend key create`, and runs `tokend serve` with auth_failures_per_address = 0,
auth_failures_per_key = 0 (the limiter would answer 429 to a benchmark made of failed
authentications), log_level = warning and cache_ttl = 1h (the cache stays warm for the
whole run). Then POST /oauth2/token, over keep-alive connections, one request at a
time, with three classes of wrong credentials, all well formed (valid checksums, same
lengths, so the requests are byte-for-byte the same size):

  unknown     a key ID tokend never issued (its negative cache entry is warm)
  first       the real key ID, its secret with the FIRST character of the random part changed
  last        the real key ID, its secret with the LAST character of the random part changed

and one control class, which tokend refuses before any hashing or cache lookup:

  control     the real key ID, a secret whose checksum does not match (malformed)

The classes are interleaved at random (one shuffled sequence; the connection used
for a sample is the sample's index modulo the number of connections, so independent
of its class), after a warm-up that loads the key and the unknown ID's negative entry
into the cache. Each sample is time.perf_counter_ns() around one request/response
(the client's view of the server-side time plus the loopback round trip, which is the
same for every class). The cache counters are read before and after: the measured
phase must make no cache miss.

Per class: mean, median, 10% trimmed mean, standard deviation. Per pair: Welch's t on
the raw samples and Yuen's t on the 10%-trimmed samples (Welch's test on trimmed means
with winsorized variances: robust to the latency outliers of a shared machine). A pair
with |t| > 5 (either statistic) is flagged "distinguishable". The control class shows
the resolution reached: it skips roughly a microsecond of work (HMAC and lookup), and
the "detectable" column gives the smallest difference of means that would give |t| = 5.

TIMING_PATH=admin measures the same classes sent directly to the admin API instead
(issue 14, point 3: GET /admin/v1/account with `Authorization: Bearer <key-id>:<secret>`,
authenticated by the same code, http/keyauth.c); every class is again a 401.

Environment: TIMING_PATH [token] or admin, TIMING_SAMPLES [20000] per class, TIMING_WARMUP [500] per class,
TIMING_CONNECTIONS [4], TIMING_WORKERS [2] (tokend workers), TIMING_SEED (shuffle seed;
random by default), TIMING_KEEP (keep the temp dir), TOKEND_BIN [build/tokend],
PGBIN [/usr/lib/postgresql/15/bin].
"""
import array
import base64
import gc
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_SH = ROOT / "scripts" / "pg.sh"
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
BIN = Path(os.environ.get("TOKEND_BIN") or ROOT / "build" / "tokend")
if not BIN.is_absolute():
    BIN = Path.cwd() / BIN

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
T_FLAG = 5.0
PATH = os.environ.get("TIMING_PATH") or "token"
TRIM = 0.10


def die(msg):
    print(f"timing: error: {msg}", file=sys.stderr)
    sys.exit(1)


def note(msg):
    print(f"timing: {msg}", file=sys.stderr, flush=True)


def env_int(name, default, minimum=1):
    v = os.environ.get(name, "")
    if not v:
        return default
    if not re.fullmatch(r"[0-9]+", v) or int(v) < minimum:
        die(f"{name} must be an integer >= {minimum} (got {v!r})")
    return int(v)


# ---------------------------------------------------------------------------
# Key format (lib/src/keyfmt.c): tk_ + 22 base62 + 6-char base62 CRC-32;
# tks_ + 43 base62 + checksum.
# ---------------------------------------------------------------------------
def b62_checksum(s):
    v = zlib.crc32(s.encode()) & 0xFFFFFFFF
    out = []
    for _ in range(6):
        out.append(B62[v % 62])
        v //= 62
    return "".join(reversed(out))


def rand_b62(n):
    return "".join(B62[b % 62] for b in os.urandom(n))


def with_checksum(body):
    return body + b62_checksum(body)


def secret_changed_at(secret, index):
    """The secret with its random part's character at `index` changed; checksum recomputed."""
    assert secret.startswith("tks_") and len(secret) == 4 + 43 + 6
    body = list(secret[4:4 + 43])
    old = body[index]
    body[index] = B62[(B62.index(old) + 1 + random.randrange(61)) % 62]
    s = with_checksum("tks_" + "".join(body))
    assert s != secret and len(s) == len(secret)
    return s


# ---------------------------------------------------------------------------
# Statistics (no scipy)
# ---------------------------------------------------------------------------
def mean(xs):
    return math.fsum(xs) / len(xs)


def var(xs, m=None):
    m = mean(xs) if m is None else m
    return math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def median(sorted_xs):
    n = len(sorted_xs)
    return sorted_xs[n // 2] if n % 2 else (sorted_xs[n // 2 - 1] + sorted_xs[n // 2]) / 2


def trimmed(sorted_xs, p=TRIM):
    g = int(p * len(sorted_xs))
    return sorted_xs[g:len(sorted_xs) - g], g


def winsorized_var(sorted_xs, g):
    n = len(sorted_xs)
    lo, hi = sorted_xs[g], sorted_xs[n - g - 1]
    w = [lo] * g + sorted_xs[g:n - g] + [hi] * g
    return var(w)


def welch(a, b):
    ma, mb = mean(a), mean(b)
    se2 = var(a, ma) / len(a) + var(b, mb) / len(b)
    return (ma - mb) / math.sqrt(se2), math.sqrt(se2)


def yuen(sa, sb, p=TRIM):
    """Yuen's t: trimmed means, winsorized variances (sa, sb sorted)."""
    ta, ga = trimmed(sa, p)
    tb, gb = trimmed(sb, p)
    ha, hb = len(ta), len(tb)
    da = (len(sa) - 1) * winsorized_var(sa, ga) / (ha * (ha - 1))
    db = (len(sb) - 1) * winsorized_var(sb, gb) / (hb * (hb - 1))
    se = math.sqrt(da + db)
    return (mean(ta) - mean(tb)) / se, se


# ---------------------------------------------------------------------------
# A minimal keep-alive HTTP/1.1 client (one request in flight per connection)
# ---------------------------------------------------------------------------
class Conn:
    def __init__(self, port):
        self.port = port
        self.sock = None
        self.reconnects = -1
        self.connect()

    def connect(self):
        if self.sock:
            self.sock.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reconnects += 1

    def roundtrip(self, req):
        """Send `req`, read one response; returns (status, raw response)."""
        s = self.sock
        s.sendall(req)
        data = s.recv(65536)
        while True:
            h = data.find(b"\r\n\r\n")
            if h >= 0:
                m = re.search(rb"\r\ncontent-length:\s*(\d+)", data[:h], re.I)
                need = h + 4 + (int(m.group(1)) if m else 0)
                if len(data) >= need:
                    return int(data[9:12]), data
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by tokend")
            data += chunk


def token_request(port, client_id, secret):
    if PATH == "admin":
        return (f"GET /admin/v1/account HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {client_id}:{secret}\r\n\r\n").encode()
    auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    body = b"grant_type=client_credentials"
    return (f"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Basic {auth}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.status, r.read().decode()


def metrics(port):
    _, text = http_get(port, "/metrics")
    vals = {}
    for line in text.splitlines():
        m = re.match(r"([a-z_]+) ([0-9.eE+-]+)$", line)
        if m:
            vals[m.group(1)] = float(m.group(2))
    return vals


# ---------------------------------------------------------------------------
# Setup and teardown
# ---------------------------------------------------------------------------
class Env:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="tokend-timing-"))
        os.chmod(self.tmp, 0o755)      # scripts/pg.sh runs PostgreSQL as tokendpg when we are root
        self.pg = self.tmp / "pg"
        self.proc = None
        self.pg_started = False

    def run(self, *args, check=True, capture=True):
        r = subprocess.run([str(a) for a in args], capture_output=capture, text=True, timeout=120)
        if check and r.returncode != 0:
            die(f"{' '.join(str(a) for a in args[:4])} ... failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def tokend(self, *args):
        return self.run(self.bin, "--config", self.conf, *args)

    def setup(self, workers):
        # A private copy of the binary: a rebuild during the run changes nothing.
        (self.tmp / "bin").mkdir()
        self.bin = self.tmp / "bin" / "tokend"
        shutil.copy2(BIN, self.bin)
        note(f"starting PostgreSQL in {self.pg}")
        self.run("bash", PG_SH, "init", self.pg)
        self.run("bash", PG_SH, "start", self.pg)
        self.pg_started = True
        url = self.run("bash", PG_SH, "url", self.pg).stdout.strip()
        self.run(PGBIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url,
                 "-c", "CREATE DATABASE tokend_timing")
        db_url = self.run("bash", PG_SH, "url", self.pg, "tokend_timing").stdout.strip()
        old = os.umask(0o077)
        try:
            raw = os.urandom(32)
            while len(set(raw)) < 16:
                raw = os.urandom(32)
            (self.tmp / "pepper").write_text(base64.b64encode(raw).decode() + "\n")
            self.run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", self.tmp / "signing-es256.pem")
        finally:
            os.umask(old)
        os.chmod(self.tmp / "pepper", 0o600)
        os.chmod(self.tmp / "signing-es256.pem", 0o600)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = self.tmp / "tokend.conf"
        self.conf.write_text("\n".join([
            f"database_url = {db_url}",
            f"pepper_file = {self.tmp / 'pepper'}",
            f"signing_keys = {self.tmp / 'signing-es256.pem'}",
            f"issuer = http://127.0.0.1:{self.port}",
            "listen_address = 127.0.0.1",
            f"listen_port = {self.port}",
            f"workers = {workers}",
            "log_level = warning",
            "auth_failures_per_address = 0",
            "auth_failures_per_key = 0",
            "cache_ttl = 1h",
            # A throwaway cluster's superuser serves and migrates here (the timing of the
            # secret check is what is measured, not the database roles).
            "allow_privileged_database_role = yes",
        ]) + "\n")
        self.tokend("migrate")
        self.tokend("scope", "add", "timing:read")
        self.tokend("account", "create", "timing")
        self.tokend("account", "grant-scopes", "timing", "timing:read")
        key = json.loads(self.tokend("key", "create", "--account", "timing", "--name", "timing key",
                                     "--scopes", "timing:read", "--json").stdout)
        self.log = open(self.tmp / "tokend.log", "w")
        self.proc = subprocess.Popen([str(self.bin), "--config", str(self.conf), "serve"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                die(f"tokend serve exited ({self.proc.returncode}):\n"
                    + (self.tmp / "tokend.log").read_text()[-2000:])
            try:
                st, body = http_get(self.port, "/readyz")
                if st == 200 and json.loads(body).get("notifications") is True:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                die("tokend not ready after 30 s")
            time.sleep(0.05)
        return key

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.pg_started:
            self.run("bash", PG_SH, "stop", self.pg, "fast", check=False)
        if os.environ.get("TIMING_KEEP"):
            note(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------
def main():
    n = env_int("TIMING_SAMPLES", 20000, minimum=100)
    warmup = env_int("TIMING_WARMUP", 500)
    nconn = env_int("TIMING_CONNECTIONS", 4)
    workers = env_int("TIMING_WORKERS", 2)
    seed = os.environ.get("TIMING_SEED") or str(int.from_bytes(os.urandom(4), "big"))
    if PATH not in ("token", "admin"):
        die(f"TIMING_PATH must be token or admin, not {PATH!r}")
    if not (BIN.is_file() and os.access(BIN, os.X_OK)):
        die(f"tokend binary not found: {BIN} (scripts/build.sh normal, or set TOKEND_BIN)")
    for tool in ("openssl",):
        if not shutil.which(tool):
            die(f"{tool} not found")
    if not (PGBIN / "psql").exists():
        die(f"psql not found in {PGBIN}")

    env = Env()
    try:
        key = env.setup(workers)
        port = env.port
        cid, sec = key["client_id"], key["client_secret"]
        unknown_id = with_checksum("tk_" + rand_b62(22))
        classes = {
            "unknown": token_request(port, unknown_id, with_checksum("tks_" + rand_b62(43))),
            "first": token_request(port, cid, secret_changed_at(sec, 0)),
            "last": token_request(port, cid, secret_changed_at(sec, 42)),
            "control": token_request(port, cid, sec[:-1] + ("A" if sec[-1] != "A" else "B")),
        }
        names = list(classes)
        lengths = {len(v) for v in classes.values()}
        if len(lengths) != 1:
            die(f"the requests differ in size: {lengths}")
        conns = [Conn(port) for _ in range(nconn)]
        # The right secret works (and the key is cached from here on).
        st, data = conns[0].roundtrip(token_request(port, cid, sec))
        # (admin: the key holds no admin scope; 403 means it authenticated)
        if st != (403 if PATH == "admin" else 200):
            die(f"the right secret got HTTP {st}: {data[:300]!r}")
        del sec, key

        # Warm-up: the key and the unknown ID's negative entry into the cache, code paths hot.
        warm = [c for c in names for _ in range(warmup)]
        random.Random(seed + "w").shuffle(warm)
        for i, c in enumerate(warm):
            st, data = conns[i % nconn].roundtrip(classes[c])
            if st != 401:
                die(f"warm-up: class {c} got HTTP {st}: {data[:300]!r}")

        seq = [i for i in range(len(names)) for _ in range(n)]
        random.Random(seed).shuffle(seq)
        reqs = [classes[c] for c in names]
        times = array.array("q", bytes(8 * len(seq)))
        statuses = array.array("h", bytes(2 * len(seq)))
        m0 = metrics(port)
        load0 = os.getloadavg()[0]
        note(f"measuring {n} samples x {len(names)} classes over {nconn} keep-alive connections (seed {seed})")
        perf = time.perf_counter_ns
        t_begin = time.monotonic()
        gc.disable()
        try:
            for i, ci in enumerate(seq):
                conn = conns[i % nconn]
                req = reqs[ci]
                t0 = perf()
                st, data = conn.roundtrip(req)
                t1 = perf()
                times[i] = t1 - t0
                statuses[i] = st
                if b"\r\nConnection: close" in data or b"\r\nconnection: close" in data:
                    conn.connect()
        finally:
            gc.enable()
        elapsed = time.monotonic() - t_begin
        m1 = metrics(port)
        load1 = os.getloadavg()[0]
        reconnects = sum(c.reconnects for c in conns)
        for c in conns:
            c.sock.close()
    finally:
        env.cleanup()

    # -- figures ----------------------------------------------------------------
    samples = {c: [] for c in names}
    bad = {}
    for i, ci in enumerate(seq):
        samples[names[ci]].append(times[i])
        if statuses[i] != 401:
            bad[(names[ci], statuses[i])] = bad.get((names[ci], statuses[i]), 0) + 1
    print(f"tokend secret-check timing — {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
    print(f"  binary      {BIN}")
    print(f"  path        {'GET /admin/v1/account, Bearer <key-id>:<secret>' if PATH == 'admin' else 'POST /oauth2/token, Basic'}")
    print(f"  machine     {os.cpu_count()} cores; 1-min load {load0:.2f} before, {load1:.2f} after")
    print(f"  run         {n} samples per class, {len(names)} classes interleaved at random (seed {seed}), "
          f"{nconn} keep-alive connections, {workers} tokend workers, {elapsed:.1f} s "
          f"({len(seq) / elapsed:.0f} requests/s), {reconnects} reconnections")
    hits = m1.get("tokend_key_cache_hits_total", 0) - m0.get("tokend_key_cache_hits_total", 0)
    misses = m1.get("tokend_key_cache_misses_total", 0) - m0.get("tokend_key_cache_misses_total", 0)
    print(f"  key cache   {hits:.0f} hits, {misses:.0f} misses during the measurement "
          f"(expected {3 * n} hits, 0 misses)")
    if bad:
        print("  INVALID     answers other than 401: "
              + ", ".join(f"{c}: HTTP {s} x{k}" for (c, s), k in sorted(bad.items())))
    print()
    print(f"  {'class':<9} {'mean':>9} {'median':>9} {'trim10%':>9} {'sd':>9} {'p1':>8} {'p99':>9}   (µs)")
    srt = {}
    for c in names:
        xs = samples[c]
        s = sorted(xs)
        srt[c] = s
        tm, _ = trimmed(s)
        print(f"  {c:<9} {mean(xs) / 1e3:9.2f} {median(s) / 1e3:9.2f} {mean(tm) / 1e3:9.2f} "
              f"{math.sqrt(var(xs)) / 1e3:9.2f} {s[len(s) // 100] / 1e3:8.2f} {s[len(s) * 99 // 100] / 1e3:9.2f}")
    print()
    print(f"  {'pair':<18} {'Δmean':>8} {'Welch t':>8} {'Δtrim':>8} {'Yuen t':>8} {'detectable':>11}   verdict")
    flagged = []
    pairs = [("unknown", "first"), ("unknown", "last"), ("first", "last"),
             ("control", "unknown"), ("control", "first"), ("control", "last")]
    for a, b in pairs:
        tw, sew = welch(samples[a], samples[b])
        ty, sey = yuen(srt[a], srt[b])
        dm = (mean(samples[a]) - mean(samples[b])) / 1e3
        dt = (mean(trimmed(srt[a])[0]) - mean(trimmed(srt[b])[0])) / 1e3
        dist = abs(tw) > T_FLAG or abs(ty) > T_FLAG
        verdict = "DISTINGUISHABLE" if dist else "not distinguishable"
        if a == "control":
            verdict += " (control)"
        elif dist:
            flagged.append(f"{a}/{b}")
        print(f"  {a + ' vs ' + b:<18} {dm:8.3f} {tw:8.2f} {dt:8.3f} {ty:8.2f} "
              f"{T_FLAG * min(sew, sey) / 1e3:9.3f}µs   {verdict}")
    print()
    print("  Δ in µs; 'detectable': the smallest difference of means (or trimmed means) that would give "
          f"|t| = {T_FLAG:.0f} with these samples.")
    print("  control: a malformed secret, refused before HMAC and cache lookup; it shows what the test can see.")
    if bad:
        print("  RESULT: invalid measurement (see INVALID above)")
        return 1
    if flagged:
        print(f"  RESULT: |t| > {T_FLAG:.0f} for {', '.join(flagged)}: the secret check's timing is distinguishable")
    else:
        print(f"  RESULT: |t| <= {T_FLAG:.0f} for every pair of unknown / wrong-first / wrong-last: "
              "not distinguishable at this sample size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
