"""`tokend serve` with a generated config (Server), the fixtures' starter, tokens, and
Load: threads asking for tokens, every answer recorded (the fault tests)."""
import http.client
import re
import threading
import time
import uuid
from pathlib import Path

from support.http import http_request, metric, parse_metrics, token_request
from support.registry import PEPPERS, SANITIZER_MARKERS, SERVERS, REG_LOCK, record_output, remember_secret, \
    remember_token
from support.tokend import Captured, base_env
from support.util import free_port, wait_until


def get_token(srv, key, **params):
    """A token for `key` from `srv` (asserts 200); recorded for the leak scan."""
    r = srv.token(key, **params)
    assert r.status == 200, r
    tok = r.json()["access_token"]
    remember_token(tok)
    return tok



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
        # With an ops listener, /readyz and /metrics answer there only.
        self.ops_port = int(cfg["ops_listen_port"]) if int(cfg.get("ops_listen_port", "0") or 0) else None
        tag = uuid.uuid4().hex[:8]
        self.config = tokend.write_config([f"{k} = {v}" for k, v in cfg.items()], name=f"serve-{tag}.conf")
        self.err_path = tokend.tmp / f"serve-{tag}.err"
        self.out_path = tokend.tmp / f"serve-{tag}.out"
        self.returncode = None
        self.recorded = False
        if tokend.pepper:
            with REG_LOCK:
                PEPPERS.add((tokend.pepper, tokend.pepper_bytes))
        with REG_LOCK:
            SERVERS.append(self)

    # -- lifecycle ----------------------------------------------------------
    def start(self, wait=True, timeout=60.0, env=None, cpus=None, wrap=None):
        """`env`: extra environment variables for tokend (support.tokend.base_env); `cpus`: its
        affinity mask (the CPUs it may run on), else pytest's; `wrap`: a command prefix that execs
        tokend (support.tokend.Captured._launch)."""
        self._launch([str(self.tokend.bin), "--config", str(self.config), "serve"], base_env(env), cpus,
                     wrap)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=60.0, notifications=True):
        """Until /readyz is 200 (and, by default, the LISTEN connection is up)."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"tokend serve exited with {self.proc.returncode}:\n{self.stderr_text()[-3000:]}")
            try:
                r = http_request(self.ops_port or self.port, "GET", "/readyz", timeout=2)
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

    # -- output (stderr_text, stdout_text: support.tokend.Captured) -----------------
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
        r = http_request(self.ops_port or self.port, "GET", "/metrics")
        assert r.status == 200, r
        return parse_metrics(r.body.decode())



class OpenConnections:
    """tokend_connections_open, read over one kept-alive connection: every reading counts that
    connection, and no earlier reader's. Read over a new connection each time, the gauge also counts
    the previous reading's connection until the server has seen its close, which the next reading can
    outrun (another worker accepts it): one too many, now and then.

        with OpenConnections(srv) as open_now:
            before = open_now()
            ...
            assert open_now.settle(before) <= before
    """

    def __init__(self, srv):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.ops_port or srv.port, timeout=10)

    def __call__(self):
        r = http_request(None, "GET", "/metrics", conn=self.conn)
        assert r.status == 200, r
        return metric(parse_metrics(r.body.decode()), "tokend_connections_open")

    def settle(self, at_most, timeout=5.0):
        """Read until the gauge is `at_most` or less, for `timeout` seconds at most: the last reading."""
        deadline = time.monotonic() + timeout
        n = self()
        while n > at_most and time.monotonic() < deadline:
            time.sleep(0.05)
            n = self()
        return n

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def new_key(tokend, account, name="k", scopes="read", *extra):
    """`tokend key create` (records the secret in the session registry)."""
    k = tokend.create_key(account, name, scopes, *extra)
    remember_secret(k["client_secret"])
    return k



class Starter:
    def __init__(self, signing_keys):
        self.signing_keys = signing_keys
        self.started = []

    def __call__(self, tokend, *, keys=("es256",), wait=True, check_exit=True, env=None, cpus=None,
                 wrap=None, **settings):
        paths = [self.signing_keys[k] if k in self.signing_keys else k for k in keys]
        s = Server(tokend, paths, **settings)
        s.check_exit = check_exit
        self.started.append(s)
        return s.start(wait=wait, env=env, cpus=cpus, wrap=wrap)

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
