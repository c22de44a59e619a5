"""
End-to-end test fixtures: the real `tokend` binary against a real PostgreSQL 15.

Layout
  pg          (session)  one throwaway cluster (scripts/pg.sh) for the whole run;
                         .url(db[, role]) .stop(mode) .start() .dir .log_text();
                         passwords only (scram-sha-256), roles postgres, tokend_owner,
                         tokend (member of tokend_app); databases owned by tokend_owner
  pg_restarter (function) the same `pg`, started again after the test if it stopped it
  db          (function) a fresh, empty database per test; yields its URL
  template_db (session)  a database migrated once by `tokend migrate`
  tokend      (function) a config file + pepper file bound to a fresh clone of
                         template_db: .run() .json() .refused() .usage_error()
                         .query() .dicts() .spawn() .config .db_url .pepper;
                         its config connects as tokend (database_url, app_url) and
                         migrates as tokend_owner (migrate_database_url, owner_url);
                         .db_url, .query() and .dicts() are the superuser's
  make_tokend (function) factory for more instances (unmigrated, no pepper, ...)
  offline_tokend (function) a config whose database_url is a closed port
  workdir     (function) a fresh directory under the session's temp dir

Every stdout/stderr the binary prints is recorded in OUTPUTS (session-wide) so
that tests can scan it for leaked secrets. After each test:
  * any sanitizer report in the stderr it captured fails the test;
  * any client secret seen in the test's outputs must appear in exactly one
    output of the whole session (the one-time display at creation).

The binary is $TOKEND_BIN, else build/tokend. Tests marked `binary` fail
(never skip) with a clear message when it is missing.
"""
pytest_plugins = ["server"]  # fixtures for `tokend serve` (tests/e2e/server.py)
import atexit
import base64
import datetime as dt
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_SH = ROOT / "scripts" / "pg.sh"
SQL_DIR = ROOT / "sql"
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
TOKEND_BIN = Path(os.environ.get("TOKEND_BIN") or ROOT / "build" / "tokend")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: ThreadSanitizer", "ERROR: MemorySanitizer")

# Every output of the binary during the session: dicts with
# args, rc, stdout, stderr, test (node id). Appended under OUTPUTS_LOCK.
OUTPUTS = []
OUTPUTS_LOCK = threading.Lock()
_CURRENT_TEST = {"id": None}

# --------------------------------------------------------------------------
# Key format (mirror of lib/include/tokend/keyfmt.h), for building inputs.
# --------------------------------------------------------------------------
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_RE = re.compile(r"^tk_[0-9A-Za-z]{28}$")
SECRET_RE = re.compile(r"^tks_[0-9A-Za-z]{49}$")
SECRET_FIND_RE = re.compile(r"tks_[0-9A-Za-z]{49}")


def b62_checksum(s):
    v = zlib.crc32(s.encode()) & 0xFFFFFFFF
    out = []
    for _ in range(6):
        out.append(B62[v % 62])
        v //= 62
    return "".join(reversed(out))


def make_key_id(body=None):
    """A well-formed key ID (valid checksum) that tokend never issued."""
    body = body or "".join(B62[b % 62] for b in os.urandom(22))
    assert len(body) == 22
    s = "tk_" + body
    return s + b62_checksum(s)


def make_secret(body=None):
    body = body or "".join(B62[b % 62] for b in os.urandom(43))
    s = "tks_" + body
    return s + b62_checksum(s)


def checksum_ok(s):
    return len(s) > 6 and b62_checksum(s[:-6]) == s[-6:]


def break_checksum(s):
    """Same length, prefix and charset; checksum no longer matches."""
    last = s[-1]
    return s[:-1] + ("A" if last != "A" else "B")


# --------------------------------------------------------------------------
# Small utilities
# --------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def role_url(url, role):
    """`url` (the superuser's, as Postgres.url gives it) for another role."""
    return re.sub(r"^postgresql://postgres@", f"postgresql://{role}@", url)


def closed_port_url(dbname="postgres"):
    """A PostgreSQL URL to 127.0.0.1 on a port where nothing listens."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/{dbname}?connect_timeout=3"


def wait_until(pred, timeout=5.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def parse_ts(s):
    """RFC 3339 (as tokend prints it) -> aware datetime."""
    assert isinstance(s, str), f"timestamp is not a string: {s!r}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", s), \
        f"not an RFC 3339 timestamp: {s!r}"
    m = re.match(r"(.*?:\d\d)(\.\d+)?(Z|[+-].*)$", s)
    frac = (m.group(2) or "")[:7]
    return dt.datetime.fromisoformat(m.group(1) + frac + ("+00:00" if m.group(3) == "Z" else m.group(3)))


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


def _binary_is_sanitized(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data or b"AddressSanitizer" in data


def record_output(args, rc, stdout, stderr, kind="run"):
    rec = {"args": list(args), "rc": rc, "stdout": stdout or "", "stderr": stderr or "",
           "test": _CURRENT_TEST["id"], "kind": kind}
    with OUTPUTS_LOCK:
        OUTPUTS.append(rec)
    return rec


def all_output_texts():
    with OUTPUTS_LOCK:
        return [(r, r["stdout"] + "\n" + r["stderr"]) for r in OUTPUTS]


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------
class Postgres:
    """A throwaway cluster managed by scripts/pg.sh."""

    def __init__(self, base):
        self.base = Path(base)
        self.dir = self.base / "pg"
        self.running = False

    def _pg(self, *args, check=True):
        r = subprocess.run(["bash", str(PG_SH), *args], capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"pg.sh {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def init(self):
        self._pg("init", str(self.dir))
        self.port = int((self.dir / "port").read_text().strip())

    def start(self):
        self._pg("start", str(self.dir))
        self.running = True

    def stop(self, mode="fast"):
        self._pg("stop", str(self.dir), mode, check=False)
        self.running = False

    def url(self, dbname="postgres", role="postgres"):
        """The URL of `dbname` as `role`: postgres (the superuser, what tests use for
        raw SQL), tokend_owner (runs `tokend migrate`) or tokend (member of tokend_app:
        runs serve and the CLI). Passwords come from the cluster's pgpass file."""
        return f"postgresql://{role}@127.0.0.1:{self.port}/{dbname}?passfile={self.dir / 'pgpass'}"

    @property
    def log_path(self):
        return self.dir / "postgres.log"

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def connect(self, dbname="postgres", autocommit=True):
        conn = psycopg2.connect(self.url(dbname), connect_timeout=10)
        conn.autocommit = autocommit
        return conn

    def create_database(self):
        name = "t_" + uuid.uuid4().hex
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                # FILE_COPY: with fsync off it is the faster strategy for a small template.
                cur.execute(f'CREATE DATABASE "{name}" OWNER tokend_owner STRATEGY = FILE_COPY')
        finally:
            conn.close()
        return name

    def drop_database(self, name):
        try:
            conn = self.connect()
        except psycopg2.Error:
            return
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg2.Error:
            pass
        finally:
            conn.close()

    def cleanup(self):
        if getattr(self, "_cleaned", False):
            return
        self._cleaned = True
        self.stop("fast")
        if os.environ.get("TOKEND_E2E_KEEP"):
            print(f"\nkeeping PostgreSQL files in {self.base}")
            return
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg():
    base = tempfile.mkdtemp(prefix="tokend-e2e-")
    os.chmod(base, 0o755)   # the server runs as user tokendpg when we are root
    p = Postgres(base)
    atexit.register(p.cleanup)
    try:
        p.init()
        p.start()
        yield p
    finally:
        p.cleanup()


@pytest.fixture
def pg_restarter(pg):
    """The session's PostgreSQL, started again after the test whatever happened
    (for tests that stop it)."""
    yield pg
    if not pg.running:
        pg.start()


@pytest.fixture
def db(pg):
    """A fresh, empty database for this test; yields its URL."""
    if not pg.running:
        pg.start()
    name = pg.create_database()
    try:
        yield pg.url(name)
    finally:
        if not pg.running:
            pg.start()
        pg.drop_database(name)


def db_query(url, sql, params=None, *, fetch=True):
    """Run one statement on `url` in its own transaction; returns rows (list of tuples)."""
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        with conn:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                if fetch and cur.description is not None:
                    return cur.fetchall()
                return []
    finally:
        conn.close()


def db_dicts(url, sql, params=None):
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        with conn:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                cols = [d[0] for d in cur.description]
                return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        conn.close()


def listen(url, channel):
    """An autocommit connection LISTENing on `channel`; use poll_notifies()."""
    conn = psycopg2.connect(url, connect_timeout=10)
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    with conn.cursor() as cur:
        cur.execute(f"LISTEN {channel}")
    return conn


def poll_notifies(conn, want=1, timeout=5.0):
    """Wait until at least `want` notifications arrived (or timeout); returns them all."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if select.select([conn], [], [], left) == ([], [], []):
            continue
        conn.poll()
        while conn.notifies:
            n = conn.notifies.pop(0)
            got.append((n.channel, n.payload))
    return got


def pg_dump(url):
    r = subprocess.run([str(PGBIN / "pg_dump"), "--no-owner", "--dbname", url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"pg_dump failed: {r.stderr}"
    return r.stdout


# --------------------------------------------------------------------------
# The tokend binary
# --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tokend_bin():
    if not (TOKEND_BIN.is_file() and os.access(TOKEND_BIN, os.X_OK)):
        pytest.fail(f"tokend binary not found or not executable: {TOKEND_BIN} "
                    f"(build it with scripts/build.sh, or point TOKEND_BIN at it)", pytrace=False)
    return TOKEND_BIN


@pytest.fixture(scope="session")
def sanitized(tokend_bin):
    return _binary_is_sanitized(tokend_bin)


def base_env(extra=None):
    env = dict(os.environ)
    for k in ("TOKEND_DATABASE_URL", "TOKEND_PEPPER", "TOKEND_CONFIG"):
        env.pop(k, None)
    env.setdefault("LC_ALL", "C.UTF-8")
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def new_pepper(nbytes=32):
    raw = os.urandom(nbytes)
    # Random bytes with fewer than 16 distinct values would be refused as
    # "visibly not random"; astronomically unlikely, but never flaky.
    while len(set(raw)) < 16:
        raw = os.urandom(nbytes)
    return raw, base64.b64encode(raw).decode()


class Tokend:
    """The tokend CLI bound to one config file (and so to one database)."""

    def __init__(self, binary, tmp, db_url, *, pepper=True, extra_config=""):
        self.bin = Path(binary)
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        # db_url: the superuser's (the tests' raw SQL); tokend connects as the
        # application role and migrates as the schema owner (scripts/pg.sh roles).
        self.db_url = db_url
        self.app_url = role_url(db_url, "tokend")
        self.owner_url = role_url(db_url, "tokend_owner")
        self.pepper_bytes = None
        self.pepper = None
        self.pepper_file = None
        lines = [f"database_url = {self.app_url}", f"migrate_database_url = {self.owner_url}"]
        if pepper:
            self.pepper_bytes, self.pepper = new_pepper()
            self.pepper_file = self.tmp / "pepper"
            fd = os.open(self.pepper_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.pepper + "\n")
            os.chmod(self.pepper_file, 0o600)
            lines.append(f"pepper_file = {self.pepper_file}")
        if extra_config:
            lines.append(extra_config.rstrip("\n"))
        self.config_lines = lines
        self.config = self.write_config(lines, name="tokend.conf")

    def write_config(self, lines, name=None):
        """Write a config file (list of lines or a string) next to this one; returns its path."""
        path = self.tmp / (name or f"tokend-{uuid.uuid4().hex[:8]}.conf")
        text = lines if isinstance(lines, str) else "\n".join(lines) + "\n"
        path.write_text(text)
        return path

    # -- running -----------------------------------------------------------
    def _cmd(self, args, config):
        """[binary, --config FILE (see run), ARGS...]"""
        cmd = [str(self.bin)]
        if config is True:
            cmd += ["--config", str(self.config)]
        elif config:
            cmd += ["--config", str(config)]
        return cmd + [str(a) for a in args]

    def run(self, *args, check=None, env=None, config=True, timeout=60, input=None):
        """Run `tokend [--config FILE] ARGS...`; records the output.

        `args` may include strings with spaces only as single arguments: pass
        the words separately ("key", "create", ...). `check`: expected exit code.
        `config`: True (this instance's file), False (no --config), or a path.
        """
        cmd = self._cmd(args, config)
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                           env=base_env(env), timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        record_output(cmd[1:], r.returncode, r.stdout, r.stderr)
        if check is not None:
            assert r.returncode == check, describe(r, f"expected exit {check}")
        return r

    def json(self, *args, env=None, config=True):
        """Run with --json; asserts exit 0 and returns the parsed output."""
        import json as _json
        r = self.run(*args, "--json", env=env, config=config)
        assert r.returncode == 0, describe(r, "expected exit 0")
        try:
            return _json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError(describe(r, f"--json output is not JSON ({e})"))

    def refused(self, *args, match=None, env=None, config=True):
        """Expect exit 1 with a one-line reason on stderr starting `tokend: `."""
        r = self.run(*args, env=env, config=config)
        assert r.returncode == 1, describe(r, "expected exit 1 (refused)")
        err = r.stderr.strip()
        assert err, describe(r, "a refusal must give a reason on stderr")
        assert len(err.splitlines()) == 1, describe(r, "the reason must be one line")
        assert err.startswith("tokend: "), describe(r, "the reason must start with 'tokend: '")
        if match:
            assert re.search(match, err, re.I), describe(r, f"reason should match /{match}/")
        assert not SECRET_FIND_RE.search(r.stdout + r.stderr), describe(r, "a refusal printed a secret")
        return r

    def usage_error(self, *args, match=None, env=None, config=True):
        """Expect exit 2 (usage error) with a message on stderr."""
        r = self.run(*args, env=env, config=config)
        assert r.returncode == 2, describe(r, "expected exit 2 (usage error)")
        assert r.stderr.strip(), describe(r, "a usage error must say why on stderr")
        if match:
            assert re.search(match, r.stderr, re.I), describe(r, f"stderr should match /{match}/")
        assert not SECRET_FIND_RE.search(r.stdout + r.stderr), describe(r, "a usage error printed a secret")
        return r

    # -- conveniences --------------------------------------------------------
    def migrate(self):
        return self.run("migrate", check=0)

    def account(self, account_id, *extra):
        return self.json("account", "create", account_id, *extra)

    def scopes(self, *names):
        for n in names:
            self.run("scope", "add", n, check=0)

    def seed_scopes(self, *names):
        """Add catalogue scopes with one SQL statement (setup only: `scope add` has its own tests)."""
        db_query(self.db_url, "INSERT INTO scopes (name) SELECT unnest(%s::text[])", (list(names),), fetch=False)

    def grant_scopes(self, account, *names):
        """Add catalogue scopes to the account's allow-list with one SQL statement (setup only:
        `account grant-scopes` has its own tests); unknown names are skipped, granted ones kept."""
        db_query(self.db_url, "INSERT INTO account_scopes (account_id, scope) SELECT %s, name FROM scopes"
                 " WHERE name = ANY(%s::text[]) ON CONFLICT DO NOTHING", (account, list(names)), fetch=False)

    def create_key(self, account, name="k", scopes="read", *extra):
        """`key create` as the operator, granting the scopes to the account first."""
        self.grant_scopes(account, *scopes.split())
        k = self.json("key", "create", "--account", account, "--name", name, "--scopes", scopes, *extra)
        assert KEY_ID_RE.match(k.get("client_id", "")), k
        assert SECRET_RE.match(k.get("client_secret", "")), "bad client_secret format"
        return k

    def query(self, sql, params=None):
        return db_query(self.db_url, sql, params)

    def dicts(self, sql, params=None):
        return db_dicts(self.db_url, sql, params)

    def spawn(self, *args, env=None, config=True):
        """Start a long-running tokend (e.g. `serve`); see Spawned."""
        return Spawned(self._cmd(args, config), self.tmp, base_env(env))


class Captured:
    """A background process whose stdout and stderr go to files (out_path, err_path).

    Shared by Spawned and server.Server: the subclass sets out_path and err_path,
    then calls _launch().
    """
    proc = None

    def _launch(self, cmd, env):
        self.cmd = cmd
        self._out = open(self.out_path, "w")
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=env)

    def _terminate(self, timeout, kill_wait):
        """SIGTERM, then SIGKILL after `timeout` s; True if it had to be killed."""
        if self.proc.poll() is not None:
            return False
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
            return False
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(kill_wait)
            return True

    def _close_files(self):
        self._out.close()
        self._err.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            return self.out_path.read_text(errors="replace")
        except OSError:
            return ""


class Spawned(Captured):
    """A background tokend process with stdout/stderr captured to files.

    .stop() terminates it (SIGTERM, then SIGKILL) and records its output in
    OUTPUTS, so leak and sanitizer checks cover long-running processes too.
    """

    def __init__(self, cmd, tmp, env):
        tag = uuid.uuid4().hex[:8]
        self.out_path = Path(tmp) / f"spawn-{tag}.out"
        self.err_path = Path(tmp) / f"spawn-{tag}.err"
        self._launch(cmd, env)
        self.returncode = None
        _SPAWNED.append(self)

    def stop(self, sig_timeout=10):
        if self.returncode is not None:
            return self.returncode
        self._terminate(sig_timeout, 5)
        self.returncode = self.proc.returncode
        self._close_files()
        record_output(self.cmd[1:], self.returncode, self.stdout_text(), self.stderr_text(), kind="spawn")
        return self.returncode


_SPAWNED = []


def describe(r, what):
    return (f"{what}; got exit {r.returncode}\n  args: {r.args}\n"
            f"  stdout: {r.stdout[:3000]!r}\n  stderr: {r.stderr[:3000]!r}")


@pytest.fixture(scope="session")
def template_db(pg, tokend_bin):
    """A database migrated once by `tokend migrate`, cloned for every `tokend` fixture.

    Cloning (CREATE DATABASE ... TEMPLATE) saves the migration work per test.
    """
    name = "tokend_template_" + uuid.uuid4().hex[:8]
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}" OWNER tokend_owner STRATEGY = FILE_COPY')
    finally:
        conn.close()
    t = Tokend(tokend_bin, Path(pg.base) / "work" / name, pg.url(name), pepper=False)
    r = t.run("migrate")
    if r.returncode != 0:
        pytest.fail(f"`tokend migrate` fails on an empty database: exit {r.returncode}\n{r.stderr}",
                    pytrace=False)
    return name


@pytest.fixture
def workdir(pg, request):
    """A fresh directory for this test's files (configs, pepper, logs), removed with the session."""
    d = Path(tempfile.mkdtemp(prefix="t-", dir=_session_work(pg)))
    return d


def _session_work(pg):
    w = Path(pg.base) / "work"
    w.mkdir(exist_ok=True)
    return w


@pytest.fixture
def make_tokend(tokend_bin, pg, workdir, request):
    """Factory: make_tokend(db_url=None, *, migrate=True, pepper=True, extra_config="").

    Without db_url each call gets a database of its own: with migrate=True a clone
    of `template_db` (migrated by `tokend migrate` once per session; running it
    again on every clone would only repeat the no-op that test_migrate_twice
    checks), else the empty per-test `db`. With db_url, migrate=True runs
    `tokend migrate` on it.
    """
    n = [0]
    clones = []

    def make(db_url=None, *, migrate=True, pepper=True, extra_config=""):
        n[0] += 1
        cloned = False
        if db_url is None and migrate:
            tmpl = request.getfixturevalue("template_db")
            name = "t_" + uuid.uuid4().hex
            conn = pg.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tmpl}" OWNER tokend_owner STRATEGY = FILE_COPY')
            finally:
                conn.close()
            clones.append(name)
            db_url = pg.url(name)
            cloned = True
        elif db_url is None:
            db_url = request.getfixturevalue("db")
        t = Tokend(tokend_bin, workdir / f"tokend{n[0]}", db_url, pepper=pepper, extra_config=extra_config)
        if migrate and not cloned:
            t.migrate()
        return t

    yield make
    if clones and not pg.running:
        pg.start()
    for name in clones:
        pg.drop_database(name)


@pytest.fixture
def offline_tokend(tokend_bin, workdir):
    """tokend whose database_url points at a closed port (nothing listens there)."""
    return Tokend(tokend_bin, workdir / "offline", closed_port_url())


@pytest.fixture
def tokend(make_tokend):
    """tokend bound to a fresh, migrated database, with a 32-byte pepper file."""
    return make_tokend()


# --------------------------------------------------------------------------
# Hooks: binary marker, sanitizer reports, secrets displayed more than once
# --------------------------------------------------------------------------
def pytest_terminal_summary(terminalreporter):
    if OUTPUTS:
        kinds = sum(1 for r in OUTPUTS if r["kind"] == "run")
        terminalreporter.write_line(f"tokend e2e: {kinds} CLI runs, {len(OUTPUTS) - kinds} spawned processes; "
                                    f"binary {TOKEND_BIN}")


def pytest_configure(config):
    config.addinivalue_line("markers", "binary: needs the tokend binary (fails, never skips, without it)")


@pytest.fixture(autouse=True)
def _e2e_guard(request):
    _CURRENT_TEST["id"] = request.node.nodeid
    if request.node.get_closest_marker("binary"):
        request.getfixturevalue("tokend_bin")
    with OUTPUTS_LOCK:
        start = len(OUTPUTS)
    spawned_before = len(_SPAWNED)
    yield
    for s in _SPAWNED[spawned_before:]:
        s.stop()
    with OUTPUTS_LOCK:
        mine = OUTPUTS[start:]
    problems = []
    for rec in mine:
        for marker in SANITIZER_MARKERS:
            if marker in rec["stderr"]:
                problems.append(f"sanitizer report ({marker!r}) from tokend {rec['args']}:\n"
                                f"{rec['stderr'][:4000]}")
                break
    secrets = set()
    for rec in mine:
        secrets.update(SECRET_FIND_RE.findall(rec["stdout"] + rec["stderr"]))
    if secrets:
        texts = all_output_texts()
        for s in secrets:
            where = [r["args"] for r, t in texts if s in t]
            if len(where) != 1:
                problems.append(f"a client secret (hint {s[-4:]}) appears in {len(where)} outputs, "
                                f"not only its one-time display: {where}")
    _CURRENT_TEST["id"] = None
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
