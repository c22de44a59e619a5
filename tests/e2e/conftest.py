"""
End-to-end test fixtures and hooks: the real `tokend` binary against a real
PostgreSQL 15. The helpers they use live in the `support` package (support/__init__.py
lists its modules); test modules import them from there.

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
  signing_keys  (session)  fresh signing keys made with openssl at test time
                           (ES256 x2, EdDSA, RS256 as PEM, one ES256 as JWK),
                           chmod 600, in a temp dir; never committed
  module_tokend (module)   a migrated database (a clone of template_db) + CLI bound
                           to it, shared by a module
  start_server  (function) factory: start_server(tokend, **config) -> running Server,
                           stopped (SIGTERM, exit 0, no sanitizer report) at teardown
  module_start_server (module) the same for module-scoped servers
  browser     (function) a headless Chromium (support.browser.make_driver), quit after;
                         screenshots go to <basetemp>/screenshots
  console_tokend (module) a running tokend with the console on, an account with an
                         admin key (read+write), a read-only admin key, and an operator
                         key (support.browser.ConsoleEnv)

Temp directories (the cluster, signing keys, work files) go under
$TOKEND_E2E_TMPDIR when set: scripts/test.sh gives each run a private one, and
stops and removes only what is under it.

Every stdout/stderr the binary prints is recorded in support.registry.OUTPUTS
(session-wide) so that tests can scan it for leaked secrets. After each test:
  * any sanitizer report in the stderr it captured fails the test;
  * any client secret seen in the test's outputs must appear in exactly one
    output of the whole session (the one-time display at creation).
At the end of the session (pytest_sessionfinish) every CLI output and server log
of the run is scanned for client secrets, access tokens and peppers
(support.leaks); a leak fails the run (exit status 1) and the summary says what
leaked. It needs no test to run last. Under pytest-xdist (scripts/test.sh) every
worker is a session of its own (its own cluster, servers and outputs): each scans
its own, and the controller reports all of them and fails the run on any leak.

The binary is $TOKEND_BIN, else build/tokend. Tests marked `binary` fail
(never skip) with a clear message when it is missing.
"""
import atexit
import os
import tempfile
import uuid
from pathlib import Path

import pytest

from support import browser as browser_support
from support.keys import SECRET_FIND_RE, make_signing_keys
from support.leaks import leak_problems, session_texts
from support.pg import Postgres
from support.registry import CURRENT_TEST, OUTPUTS, OUTPUTS_LOCK, SANITIZER_MARKERS, SECRETS, TIMINGS, TOKENS
from support.server import Starter, new_key
from support.tokend import SPAWNED, Tokend, binary_is_sanitized
from support.util import TOKEND_BIN, closed_port_url, tmp_base


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg():
    base = tempfile.mkdtemp(prefix="tokend-e2e-", dir=tmp_base())
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
    return binary_is_sanitized(tokend_bin)



@pytest.fixture(scope="session")
def template_db(pg, tokend_bin):
    """A database migrated once by `tokend migrate`, cloned for every `tokend` fixture.

    Cloning (CREATE DATABASE ... TEMPLATE) saves the migration work per test.
    """
    name = pg.create_database(name="tokend_template_" + uuid.uuid4().hex[:8])
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
            name = pg.create_database(template=tmpl)
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
# Servers: signing keys, module databases, starters
# --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def signing_keys():
    d = Path(tempfile.mkdtemp(prefix="tokend-e2e-keys-", dir=tmp_base()))
    keys = make_signing_keys(d)
    yield keys
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


@pytest.fixture(scope="module")
def module_tokend(pg, tokend_bin, template_db):
    """A migrated database of its own (a clone of template_db, migrated once by
    `tokend migrate`) and the CLI bound to it, with a pepper file, for a whole module."""
    if not pg.running:
        pg.start()
    name = pg.create_database(template=template_db)
    t = Tokend(tokend_bin, Path(tempfile.mkdtemp(prefix="mod-", dir=_session_work(pg))), pg.url(name))
    yield t
    if not pg.running:
        pg.start()
    pg.drop_database(name)



@pytest.fixture
def start_server(signing_keys):
    """Factory: start_server(tokend, keys=("es256",), **config) -> ready Server; stopped cleanly after
    (check_exit=False: stopped after, its exit left to the test to check)."""
    st = Starter(signing_keys)
    yield st
    st.stop_all()


@pytest.fixture(scope="module")
def module_start_server(signing_keys):
    """Like start_server, for module-scoped servers."""
    st = Starter(signing_keys)
    yield st
    st.stop_all()


# --------------------------------------------------------------------------
# The console: a browser, and a server with keys to sign in with
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def module_browser(tmp_path_factory):
    """One headless Chromium per test module (starting one costs 1-6 s); tests get it
    through `browser`, which hands it over blank."""
    browser_support.OUTPUT["screenshots"] = tmp_path_factory.getbasetemp() / "screenshots"
    holder = {"d": browser_support.make_driver()}
    try:
        yield holder
    finally:
        browser_support.quit_driver(holder["d"])


@pytest.fixture
def browser(module_browser):
    """A headless Chromium at 1280x800 (support.browser.make_driver) showing a blank page,
    with no cookies, no storage, no open alert and an empty log: the module's browser,
    reset after each test (a new one if the old one no longer answers)."""
    d = module_browser["d"]
    try:
        browser_support.reset_driver(d)
    except Exception:
        try:
            browser_support.quit_driver(d)
        except Exception:
            pass
        d = module_browser["d"] = browser_support.make_driver()
    yield d


@pytest.fixture(scope="module")
def console_tokend(module_tokend, module_start_server):
    """A running tokend (console = on) with account `acme` (scopes read, write, orders:read
    granted) holding an admin key (read+write) and a read-only admin key, and an operator
    key in account `ops`: a support.browser.ConsoleEnv."""
    t = module_tokend
    t.scopes("read", "write", "orders:read")
    t.account("acme", "--name", "Acme Corp", "--key-limit", "20")
    t.grant_scopes("acme", "read", "write", "orders:read")
    t.account("ops", "--name", "Operators", "--key-limit", "20")
    srv = module_start_server(t, console="on")

    def key(account, name, scopes):
        k = new_key(t, account, name, scopes)
        return browser_support.ConsoleKey(k["client_id"], k["client_secret"], scopes)

    return browser_support.ConsoleEnv(
        srv=srv, t=t, base=srv.base, account="acme",
        admin=key("acme", "console admin", browser_support.ADMIN_SCOPES),
        reader=key("acme", "console reader", browser_support.READ_SCOPES),
        operator=key("ops", "console operator", browser_support.OPERATOR_SCOPES))


# --------------------------------------------------------------------------
# Hooks: binary marker, sanitizer reports, secrets displayed more than once,
# the session's leak scan
# --------------------------------------------------------------------------
_LEAKS = {"problems": None, "skipped": None}
# Under pytest-xdist (scripts/test.sh runs the suite on two workers, a test file
# per worker at a time) each worker is a session of its own, with its own
# PostgreSQL cluster, servers and outputs: it scans its outputs at its end and
# hands what it found to the controller (config.workeroutput), which reports
# every worker's scan and measured bounds and fails the run on any leak.
# _WORKERS: what each worker handed over, by worker id (the controller's).
_WORKERS = {}


def _is_xdist_worker(config):
    return hasattr(config, "workerinput")


def _leak_scan():
    """Scan every output of this session (process); fills _LEAKS."""
    if not TOKENS:
        # A partial run without servers: no token to look for; the CLI tests
        # scan their own outputs (test_cli.py).
        _LEAKS["skipped"] = "no access token was issued in this run"
        return
    texts = session_texts()
    # A partial run whose keys were all inserted in SQL (test_key_batch.py, ...) has
    # no client secret to look for: its tokens and peppers are still looked for, and
    # the summary says the secrets were not.
    any_secret = bool(SECRETS) or any(SECRET_FIND_RE.search(t) for _, t in texts)
    if not any_secret:
        _LEAKS["skipped"] = "no client secret was registered in this run: tokens and peppers only"
    try:
        problems = sorted(set(leak_problems(texts, need_secrets=any_secret)))
    except AssertionError as e:     # the registry is empty: nothing could be checked
        problems = [f"leak scan could not run: {e}"]
    _LEAKS["problems"] = problems


def _session_summary():
    """This session's figures for the summary; a worker hands them to the controller."""
    runs = sum(1 for r in OUTPUTS if r["kind"] == "run")
    return {"problems": _LEAKS["problems"], "skipped": _LEAKS["skipped"], "timings": [list(t) for t in TIMINGS],
            "runs": runs, "spawned": len(OUTPUTS) - runs, "tokens": len(TOKENS)}


def pytest_sessionfinish(session, exitstatus):
    """The session finaliser: scan every CLI output and server log of the run for
    client secrets, access tokens and peppers; a leak fails the run whatever the
    tests said (the summary lists what leaked). Runs after every fixture's teardown,
    so servers of every scope are stopped and their logs recorded. Under xdist a
    worker scans its own outputs and hands the result to the controller, which
    fails the run here on any worker's leak."""
    if OUTPUTS:     # else nothing ran the binary (--collect-only, no e2e test selected, the xdist controller)
        _leak_scan()
    if _is_xdist_worker(session.config):
        session.config.workeroutput["tokend_e2e"] = _session_summary()
        return
    problems = [p for s in [_LEAKS, *_WORKERS.values()] for p in (s["problems"] or [])]
    if problems and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class _XdistController:
    """Registered on the xdist controller only: collects each worker's scan."""

    @pytest.hookimpl
    def pytest_testnodedown(self, node, error):
        out = getattr(node, "workeroutput", {}).get("tokend_e2e")
        if out is not None:
            # A worker that ran no e2e test hands nothing; one that crashed is
            # reported by xdist as a failure of its running test.
            _WORKERS[node.gateway.id] = out


def pytest_terminal_summary(terminalreporter):
    # This process's session, then each xdist worker's.
    sessions = [("", _session_summary())] + [(f" ({wid})", _WORKERS[wid]) for wid in sorted(_WORKERS)]
    timings = [t for _, s in sessions for t in s["timings"]]
    if timings:
        terminalreporter.write_sep("-", "tokend e2e measured bounds")
        for label, text in timings:
            terminalreporter.write_line(f"{label}: {text}")
    for tag, s in sessions:
        if s["runs"] or s["spawned"]:
            terminalreporter.write_line(f"tokend e2e{tag}: {s['runs']} CLI runs, {s['spawned']} spawned "
                                        f"processes; binary {TOKEND_BIN}")
    for tag, s in sessions:
        if s["problems"]:
            terminalreporter.write_sep("=", f"tokend e2e leak scan FAILED{tag}: secrets, tokens or peppers in "
                                       "the session's outputs", red=True, bold=True)
            for p in s["problems"]:
                terminalreporter.write_line(p, red=True)
        elif s["problems"] is not None:
            terminalreporter.write_line(f"tokend e2e leak scan{tag}: {s['runs'] + s['spawned']} outputs, "
                                        f"{s['tokens']} tokens checked, nothing leaked"
                                        + (f" ({s['skipped']})" if s["skipped"] else ""))
        elif s["skipped"]:
            terminalreporter.write_line(f"tokend e2e leak scan skipped{tag}: {s['skipped']}")


def pytest_configure(config):
    config.addinivalue_line("markers", "binary: needs the tokend binary (fails, never skips, without it)")
    if config.pluginmanager.hasplugin("xdist") and not _is_xdist_worker(config) and \
            getattr(config.option, "numprocesses", None):
        config.pluginmanager.register(_XdistController(), "tokend-e2e-xdist")


@pytest.fixture(autouse=True)
def _e2e_guard(request):
    CURRENT_TEST["id"] = request.node.nodeid
    if request.node.get_closest_marker("binary"):
        request.getfixturevalue("tokend_bin")
    with OUTPUTS_LOCK:
        start = len(OUTPUTS)
    spawned_before = len(SPAWNED)
    yield
    for s in SPAWNED[spawned_before:]:
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
        with OUTPUTS_LOCK:
            records = list(OUTPUTS)
        for s in secrets:
            # rec["secrets"]: every secret-shaped string of the output (support.registry)
            where = [r["args"] for r in records if s in r["secrets"]]
            if len(where) != 1:
                problems.append(f"a client secret (hint {s[-4:]}) appears in {len(where)} outputs, "
                                f"not only its one-time display: {where}")
    CURRENT_TEST["id"] = None
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
