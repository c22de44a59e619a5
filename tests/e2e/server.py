"""
Fixtures and helpers for end-to-end tests of `tokend serve` (issue 3).

Loaded from conftest.py (`pytest_plugins = ["server"]`), so its fixtures are
available to every test module; import the helpers with `from server import ...`.

  signing_keys  (session)  fresh signing keys made with openssl at test time
                           (ES256 x2, EdDSA, RS256 as PEM, one ES256 as JWK),
                           chmod 600, in a temp dir; never committed
  module_tokend (module)   a migrated database + CLI bound to it, shared by a module
  start_server  (function) factory: start_server(tokend, **config) -> running Server,
                           stopped (SIGTERM, exit 0, no sanitizer report) at teardown

Helpers shared by test modules: HTTP (http_request, token_request, raw_exchange,
parse_metrics), tokens (get_token, tamper_payload, b64u), and Load (threads asking
for tokens, every answer recorded) for the fault tests.

Everything secret the tests see goes into a session registry (client secrets
from `key create`, access tokens from HTTP answers, peppers), which the leak
test (test_token.py) checks against every log line and CLI output.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from conftest import (SANITIZER_MARKERS, Captured, Tokend, base_env, free_port, record_output,
                      wait_until)

# ---------------------------------------------------------------------------
# Session registry of secrets, tokens and running servers (for the leak test)
# ---------------------------------------------------------------------------
SECRETS = set()        # client secrets returned by `key create`
TOKENS = set()         # every access token a test received
PEPPERS = set()        # (base64 text, raw bytes) of every pepper used by a server
SERVERS = []           # every Server started this session
TIMINGS = []           # (label, text) measured bounds, printed in the summary
_REG_LOCK = threading.Lock()

TOKEN_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def remember_token(tok):
    if tok:
        with _REG_LOCK:
            TOKENS.add(tok)


def remember_secret(secret):
    if secret:
        with _REG_LOCK:
            SECRETS.add(secret)


def note_timing(label, text):
    with _REG_LOCK:
        TIMINGS.append((label, text))


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_sep("-", "tokend e2e measured bounds")
        for label, text in TIMINGS:
            terminalreporter.write_line(f"{label}: {text}")


# ---------------------------------------------------------------------------
# Signing keys
# ---------------------------------------------------------------------------
def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_b64u(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(size, "big"))


def public_jwk_of(path):
    """The public JWK (dict, thumbprint members only) of a PEM or JWK private key file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"{"):
        j = json.loads(data)
        return {k: j[k] for k in ("kty", "crv", "x", "y", "n", "e") if k in j}
    key = serialization.load_pem_private_key(data, password=None)
    pub = key.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": _int_b64u(nums.x, 32), "y": _int_b64u(nums.y, 32)}
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        return {"kty": "RSA", "n": _int_b64u(nums.n), "e": _int_b64u(nums.e)}
    raise ValueError(f"unsupported key type in {path}")


def thumbprint(path):
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a key file: tokend's kid."""
    jwk = public_jwk_of(path)
    members = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
    canon = json.dumps({k: jwk[k] for k in members[jwk["kty"]]}, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(canon.encode()).digest())


def _openssl_genpkey(path, *args):
    r = subprocess.run(["openssl", "genpkey", *args, "-out", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl genpkey failed: {r.stderr}"
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="session")
def signing_keys():
    d = Path(tempfile.mkdtemp(prefix="tokend-e2e-keys-"))
    os.chmod(d, 0o700)
    keys = {
        "es256": _openssl_genpkey(d / "es256.pem", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
        "es256b": _openssl_genpkey(d / "es256b.pem", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
        "ed25519": _openssl_genpkey(d / "ed25519.pem", "-algorithm", "ED25519"),
        "rs256": _openssl_genpkey(d / "rs256.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
    }
    # The same kind of ES256 key, as a JWK file (private member d included).
    from cryptography.hazmat.primitives import serialization
    k = serialization.load_pem_private_key(
        _openssl_genpkey(d / "es256c.pem", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256").read_bytes(),
        password=None)
    nums = k.private_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": _int_b64u(nums.public_numbers.x, 32),
           "y": _int_b64u(nums.public_numbers.y, 32), "d": _int_b64u(nums.private_value, 32)}
    jp = d / "es256c.jwk"
    fd = os.open(jp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(jwk, f)
    keys["es256_jwk"] = jp
    yield keys
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


# ---------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------
class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.header_list = headers                      # [(name, value)] as received
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.elapsed = elapsed

    def header_all(self, name):
        return [v for k, v in self.header_list if k.lower() == name.lower()]

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"response body is not JSON: {self.body[:300]!r}")

    def __repr__(self):
        return f"<HTTP {self.status} {self.header_list} {self.body[:400]!r}>"


def basic(client_id, secret, encode=True):
    """An Authorization: Basic value, with RFC 6749 §2.3.1 form-encoding of id and secret."""
    if encode:
        client_id = urllib.parse.quote_plus(client_id)
        secret = urllib.parse.quote_plus(secret)
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def http_request(port, method, path, body=None, headers=None, timeout=10.0, conn=None):
    """One HTTP/1.1 request to 127.0.0.1:port; returns Resp. `body` str or bytes."""
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if isinstance(body, str):
        body = body.encode()
    t0 = time.monotonic()
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        resp = Resp(r.status, r.getheaders(), data, time.monotonic() - t0)
    finally:
        if own:
            c.close()
    if resp.status == 200 and b"access_token" in data:
        try:
            remember_token(json.loads(data).get("access_token"))
        except ValueError:
            pass
    return resp


FORM = "application/x-www-form-urlencoded"


def token_request(port, form=None, *, auth=None, headers=None, raw_body=None, timeout=10.0, conn=None):
    """POST /oauth2/token. `form`: dict or list of pairs (urlencoded); `auth`: (id, secret) for Basic."""
    h = {"Content-Type": FORM}
    if auth is not None:
        h["Authorization"] = basic(*auth)
    h.update(headers or {})
    body = raw_body if raw_body is not None else urllib.parse.urlencode(
        form if form is not None else {"grant_type": "client_credentials"})
    return http_request(port, "POST", "/oauth2/token", body, h, timeout=timeout, conn=conn)


def raw_exchange(port, data, timeout=5.0, read_until_close=True):
    """Send raw bytes; return (bytes received, closed_by_server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            chunks.append(b)
            if not read_until_close:
                break
        return b"".join(chunks), closed
    finally:
        s.close()


def parse_raw_responses(data):
    """Split raw bytes into [(status, {headers lowercased}, body)] for Content-Length framed responses."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        data = rest[n:]
    return out


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels)): float}; also checks the format."""
    vals = {}
    types = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            m = re.match(r"# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$", line)
            assert m, f"bad metrics comment line: {line!r}"
            if m.group(1) == "TYPE":
                assert m.group(3) in ("counter", "gauge", "histogram", "summary", "untyped"), line
                types[m.group(2)] = m.group(3)
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ([-+0-9.eE]+|\+Inf|NaN)$', line)
        assert m, f"bad metrics sample line: {line!r}"
        labels = frozenset()
        if m.group(3):
            pairs = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3))
            labels = frozenset(pairs)
        vals[(m.group(1), labels)] = float(m.group(4))
    vals["__types__"] = types
    return vals


def metric(vals, name, **labels):
    return vals.get((name, frozenset(labels.items())), 0.0)


class NS:
    """A plain namespace (the `env` fixtures of test modules)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def get_token(srv, key, **params):
    """A token for `key` from `srv` (asserts 200); recorded for the leak scan."""
    r = srv.token(key, **params)
    assert r.status == 200, r
    tok = r.json()["access_token"]
    remember_token(tok)
    return tok


def tamper_payload(tok, **changes):
    """`tok` with claims changed in its payload, the header and signature kept."""
    h, p, s = tok.split(".")
    claims = json.loads(b64u_decode(p))
    claims.update(changes)
    return ".".join([h, b64u(json.dumps(claims, separators=(",", ":")).encode()), s])


# ---------------------------------------------------------------------------
# Load: threads asking for tokens over keep-alive connections, recording all
# ---------------------------------------------------------------------------
class Rec:
    """One request of a Load: who sent it (and with which key), when, and the answer
    (status, Retry-After, the `error` member) or the exception it broke with."""
    __slots__ = ("who", "key", "t_send", "t_recv", "status", "retry_after", "error", "exc")

    def __init__(self, who, key, t_send, t_recv, status=None, retry_after=None, error=None, exc=None):
        self.who, self.key, self.t_send, self.t_recv = who, key, t_send, t_recv
        self.status, self.retry_after, self.error, self.exc = status, retry_after, error, exc

    @property
    def took(self):
        return self.t_recv - self.t_send

    def __repr__(self):
        who = self.who if self.key == self.who else f"{self.who}/{self.key}"
        return (f"<{who} @{self.t_send:.3f} {self.status or self.exc} "
                f"{self.error or ''} {self.took * 1000:.0f}ms>")


class Load:
    """`threads` threads, each with its own keep-alive connection, asking `srv` for
    tokens until stopped, with `keys`: one key dict (labelled `who`) or [(label, key
    dict)], cycled through (thread n starts at the n-th). Every request is a Rec.

    timeout   socket timeout of each request (a hang is measured, not cut)
    strict    an answer that is not the JSON it should be (a 200 without an access
              token, an error without a JSON body) counts as a broken request (.exc);
              with strict=False the first bytes of such an error body become .error
    earliest  wait_for returns the earliest sent of the matching records (else the
              first one recorded); poll: how often wait_for looks
    """

    def __init__(self, srv, keys, who, threads=1, pause=0.005, timeout=5.0, how="basic",
                 strict=True, earliest=False, poll=0.01):
        self.srv, self.who = srv, who
        self.keys = [(who, keys)] if isinstance(keys, dict) else list(keys)
        self.nthreads, self.pause, self.timeout, self.how = threads, pause, timeout, how
        self.strict, self.earliest, self.poll = strict, earliest, poll
        self.records = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []

    def _error(self, r):
        if not self.strict:
            if r.status == 200:
                return None
            try:
                return r.json().get("error")
            except AssertionError:
                return repr(r.body[:80])
        body = r.json()
        if r.status == 200:
            remember_token(body["access_token"])
            return None
        return body.get("error")

    def _run(self, n):
        conn = None
        i = n
        while not self.stop_ev.is_set():
            label, key = self.keys[i % len(self.keys)]
            i += 1
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=self.timeout)
            t0 = time.monotonic()
            try:
                r = self.srv.token(key, how=self.how, conn=conn, timeout=self.timeout)
                t1 = time.monotonic()
                rec = Rec(self.who, label, t0, t1, r.status, r.headers.get("retry-after"), self._error(r))
                if r.headers.get("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:   # a hang (timeout) or a broken connection
                rec = Rec(self.who, label, t0, time.monotonic(), exc=f"{type(e).__name__}: {e}")
                conn.close()
                conn = None
            with self.lock:
                self.records.append(rec)
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def start(self):
        for n in range(self.nthreads):
            th = threading.Thread(target=self._run, args=(n,), daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(max(30, self.timeout + 5))
        return self.snapshot()

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def wait_for(self, pred, timeout, what):
        """Until some record satisfies pred; returns it (see `earliest`)."""
        def find():
            hits = [r for r in self.snapshot() if pred(r)]
            if not hits:
                return None
            return min(hits, key=lambda r: r.t_send) if self.earliest else hits[0]
        return wait_until(find, timeout=timeout, interval=self.poll, what=what)


def fmt(recs, n=12):
    """Records for an assertion message: the first n, and how many in all."""
    recs = list(recs)
    return ", ".join(repr(r) for r in recs[:n]) + (f" ... ({len(recs)} in all)" if len(recs) > n else "")


# ---------------------------------------------------------------------------
# The server process
# ---------------------------------------------------------------------------
class Server(Captured):
    """`tokend serve` with a generated config bound to a Tokend (database + pepper)."""

    def __init__(self, tokend, signing, *, active=None, port=None, issuer=None, **settings):
        self.tokend = tokend
        self.port = port or free_port()
        self.issuer = issuer or f"http://127.0.0.1:{self.port}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.signing = [Path(p) for p in signing]
        cfg = {
            "database_url": tokend.app_url,
            "pepper_file": str(tokend.pepper_file),
            "listen_address": "127.0.0.1",
            "listen_port": str(self.port),
            "issuer": self.issuer,
            "signing_keys": " ".join(str(p) for p in self.signing),
            "workers": "2",
            "last_used_flush_interval": "1s",
            "log_level": "info",
            # The suite sends many failed authentications from 127.0.0.1 on purpose;
            # test_bruteforce.py turns the limiter on where it is the subject.
            "auth_failures_per_address": "0",
            "auth_failures_per_key": "0",
        }
        if active:
            cfg["signing_key_active"] = active
        for k, v in settings.items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = str(v)
        self.settings = cfg
        tag = uuid.uuid4().hex[:8]
        self.config = tokend.write_config([f"{k} = {v}" for k, v in cfg.items()], name=f"serve-{tag}.conf")
        self.err_path = tokend.tmp / f"serve-{tag}.err"
        self.out_path = tokend.tmp / f"serve-{tag}.out"
        self.returncode = None
        self.recorded = False
        if tokend.pepper:
            with _REG_LOCK:
                PEPPERS.add((tokend.pepper, tokend.pepper_bytes))
        with _REG_LOCK:
            SERVERS.append(self)

    # -- lifecycle ----------------------------------------------------------
    def start(self, wait=True, timeout=60.0):
        self._launch([str(self.tokend.bin), "--config", str(self.config), "serve"], base_env())
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=60.0, notifications=True):
        """Until /readyz is 200 (and, by default, the LISTEN connection is up)."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"tokend serve exited with {self.proc.returncode}:\n{self.stderr_text()[-3000:]}")
            try:
                r = http_request(self.port, "GET", "/readyz", timeout=2)
            except OSError:
                return False
            if r.status != 200:
                return False
            return (not notifications) or r.json().get("notifications") is True
        wait_until(ready, timeout=timeout, interval=0.05, what=f"tokend on port {self.port} to be ready")

    def stop(self, check=True, timeout=30):
        """SIGTERM; assert a clean exit (0) and no sanitizer report. Idempotent."""
        if self.proc is None:
            return None
        if self.returncode is None:
            if self._terminate(timeout, 10):
                self.returncode = "hung"
            else:
                self.returncode = self.proc.returncode
            self._close_files()
        if not self.recorded:
            self.recorded = True
            record_output(self.cmd[1:], self.returncode, self.stdout_text(), self.stderr_text(), kind="spawn")
        if check:
            self.checked = True
            err = self.stderr_text()
            for marker in SANITIZER_MARKERS:
                assert marker not in err, f"sanitizer report from tokend serve:\n{err[-6000:]}"
            assert self.returncode == 0, (f"tokend serve did not exit cleanly on SIGTERM "
                                          f"(exit {self.returncode}):\n{err[-3000:]}")
            assert "event=server.stopped" in err or '"event":"server.stopped"' in err, err[-2000:]
        return self.returncode

    # -- output (stderr_text, stdout_text: conftest.Captured) -------------------
    def log_lines(self, event=None):
        lines = self.stderr_text().splitlines()
        if event:
            lines = [l for l in lines if f"event={event} " in l + " " or f'"event":"{event}"' in l]
        return lines

    def log_events(self, event=None):
        """Parsed text log lines: dicts of key -> value (quotes removed), plus ts/level."""
        out = []
        for line in self.log_lines(event):
            m = re.match(r"(\S+) (\S+) (.*)$", line)
            if not m:
                continue
            d = {"ts": m.group(1), "level": m.group(2)}
            for k, v in re.findall(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S+)', m.group(3)):
                d[k] = v[1:-1] if v.startswith('"') else v
            out.append(d)
        return out

    # -- requests -------------------------------------------------------------
    def get(self, path, headers=None, timeout=10.0):
        return http_request(self.port, "GET", path, headers=headers, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        return http_request(self.port, method, path, body, headers, timeout=timeout)

    def token(self, key=None, form=None, *, how="basic", headers=None, timeout=10.0, conn=None, **params):
        """Ask for a token with `key` (a dict from key create): how = basic | post."""
        f = {"grant_type": "client_credentials"}
        auth = None
        if key is not None:
            if how == "basic":
                auth = (key["client_id"], key["client_secret"])
            else:
                f["client_id"] = key["client_id"]
                f["client_secret"] = key["client_secret"]
        f.update(params)
        if form is not None:
            f = form
        return token_request(self.port, f, auth=auth, headers=headers, timeout=timeout, conn=conn)

    def metrics(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        return parse_metrics(r.body.decode())


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
def new_key(tokend, account, name="k", scopes="read", *extra):
    """`tokend key create` (records the secret in the session registry)."""
    k = tokend.create_key(account, name, scopes, *extra)
    remember_secret(k["client_secret"])
    return k


@pytest.fixture(scope="module")
def module_tokend(pg, tokend_bin, tmp_path_factory):
    """A migrated database of its own and the CLI bound to it, for a whole module."""
    if not pg.running:
        pg.start()
    name = pg.create_database()
    t = Tokend(tokend_bin, tmp_path_factory.mktemp("mod-tokend"), pg.url(name))
    t.migrate()
    yield t
    if not pg.running:
        pg.start()
    pg.drop_database(name)


class _Starter:
    def __init__(self, signing_keys):
        self.signing_keys = signing_keys
        self.started = []

    def __call__(self, tokend, *, keys=("es256",), wait=True, check_exit=True, **settings):
        paths = [self.signing_keys[k] if k in self.signing_keys else k for k in keys]
        s = Server(tokend, paths, **settings)
        s.check_exit = check_exit
        self.started.append(s)
        return s.start(wait=wait)

    def stop_all(self):
        errors = []
        for s in self.started:
            if getattr(s, "checked", False):
                continue    # stopped and checked by the test itself (a failure is reported there)
            try:
                s.stop(check=s.check_exit)
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            raise AssertionError("\n\n".join(errors))


@pytest.fixture
def start_server(signing_keys):
    """Factory: start_server(tokend, keys=("es256",), **config) -> ready Server; stopped cleanly after
    (check_exit=False: stopped after, its exit left to the test to check)."""
    st = _Starter(signing_keys)
    yield st
    st.stop_all()


@pytest.fixture(scope="module")
def module_start_server(signing_keys):
    """Like start_server, for module-scoped servers."""
    st = _Starter(signing_keys)
    yield st
    st.stop_all()
