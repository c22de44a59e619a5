"""The throwaway PostgreSQL cluster (scripts/pg.sh) and SQL helpers."""
import os
import select
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import psycopg2
import psycopg2.extensions

from support.util import PG_SH, PGBIN

class Postgres:
    """A throwaway cluster managed by scripts/pg.sh."""

    def __init__(self, base):
        self.base = Path(base)
        self.dir = self.base / "pg"
        self.running = False
        self._admin = None      # the superuser's connection to `postgres` (_admin_execute)

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
        self._close_admin()
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

    def _close_admin(self):
        conn, self._admin = getattr(self, "_admin", None), None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass

    def _admin_execute(self, sql):
        """Run `sql` on the superuser's connection to `postgres`, kept open between calls
        (every test creates and drops a database: a connection each cost 10-30 ms); when
        that connection is gone (the server was restarted or a test terminated it), a new
        one is made and `sql` run once more."""
        for attempt in (0, 1):
            conn = getattr(self, "_admin", None)
            if conn is None or conn.closed:
                conn = self._admin = self.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                return
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                broken = conn.closed
                self._close_admin()
                if attempt or not broken:
                    raise

    def create_database(self, template=None, name=None):
        """A new database owned by tokend_owner (a copy of `template` if given); its name."""
        name = name or "t_" + uuid.uuid4().hex
        tmpl = f' TEMPLATE "{template}"' if template else ""
        # FILE_COPY: with fsync off it is the faster strategy for a small template.
        self._admin_execute(f'CREATE DATABASE "{name}"{tmpl} OWNER tokend_owner STRATEGY = FILE_COPY')
        return name

    def drop_database(self, name):
        try:
            self._admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg2.Error:
            pass

    def cleanup(self):
        if getattr(self, "_cleaned", False):
            return
        self._cleaned = True
        self.stop("fast")
        if os.environ.get("TOKEND_E2E_KEEP"):
            print(f"\nkeeping PostgreSQL files in {self.base}")
            return
        shutil.rmtree(self.base, ignore_errors=True)



# ---------------------------------------------------------------------------
# Streaming replication: a primary and a standby (test_failover.py)
# ---------------------------------------------------------------------------
PG_OS_USER = os.environ.get("TOKEND_PG_OS_USER", "tokendpg")


def as_server_user(cmd, env=None, timeout=120):
    """Run a PostgreSQL program as the server's OS user (scripts/pg.sh: `tokendpg` when
    we are root, else ourselves); returns the CompletedProcess (output captured)."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", PG_OS_USER, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def enable_replication(primary, user="replicator"):
    """Let `user` (created, with a random password) stream from the running `primary`:
    a pg_hba.conf entry for replication over 127.0.0.1, reloaded. Returns the password."""
    password = uuid.uuid4().hex
    conn = primary.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {user} REPLICATION LOGIN PASSWORD %s", (password,))
    finally:
        conn.close()
    with open(primary.dir / "data" / "pg_hba.conf", "a") as f:
        f.write(f"host replication {user} 127.0.0.1/32 scram-sha-256\n")
    r = as_server_user([str(PGBIN / "pg_ctl"), "-D", str(primary.dir / "data"), "reload"])
    assert r.returncode == 0, r.stderr
    return password


def make_standby(primary, base, password, user="replicator"):
    """A streaming standby of `primary` in `base` (pg_basebackup -R), on a port of its
    own, started, and streaming (checked on the primary). Same roles and passwords
    (a copy): its pgpass is the primary's."""
    from support.util import free_port
    sb = Postgres(base)
    sb.dir.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(sb.dir, PG_OS_USER)
    os.chmod(sb.dir, 0o700)
    r = as_server_user([str(PGBIN / "pg_basebackup"), "-D", str(sb.dir / "data"), "-R", "-X", "stream",
                        "-c", "fast", "-h", "127.0.0.1", "-p", str(primary.port), "-U", user],
                       env={"PGPASSWORD": password})
    assert r.returncode == 0, f"pg_basebackup failed: {r.stderr}"
    sb.port = int(free_port())
    with open(sb.dir / "data" / "postgresql.conf", "a") as f:
        f.write(f"port = {sb.port}\nunix_socket_directories = '{sb.dir}'\n")
    (sb.dir / "port").write_text(f"{sb.port}\n")
    shutil.copy(primary.dir / "pgpass", sb.dir / "pgpass")
    os.chmod(sb.dir / "pgpass", 0o600)
    sb.start()
    deadline = time.monotonic() + 30
    while True:
        rows = db_query(primary.url(), "SELECT state FROM pg_stat_replication")
        if rows and rows[0][0] == "streaming":
            return sb
        assert time.monotonic() < deadline, f"the standby is not streaming: {rows}\n{sb.log_text()[-2000:]}"
        time.sleep(0.1)


def wait_replayed(primary, timeout=10.0):
    """Until every standby has replayed all the WAL the primary has written so far."""
    target = db_query(primary.url(), "SELECT pg_current_wal_lsn()")[0][0]
    deadline = time.monotonic() + timeout
    while True:
        rows = db_query(primary.url(), "SELECT count(*) FROM pg_stat_replication"
                        " WHERE replay_lsn < %s::pg_lsn OR replay_lsn IS NULL", (target,))
        if rows[0][0] == 0:
            return
        assert time.monotonic() < deadline, "the standby did not replay the primary's WAL in time"
        time.sleep(0.02)


def promote(standby):
    """pg_ctl promote -w: returns once the standby accepts writes."""
    r = as_server_user([str(PGBIN / "pg_ctl"), "-D", str(standby.dir / "data"), "-w", "-t", "60", "promote"])
    assert r.returncode == 0, f"pg_ctl promote failed: {r.stdout}{r.stderr}"


class PgBouncer:
    """A PgBouncer (Debian's /usr/sbin/pgbouncer) in front of `pg`'s database `dbname`,
    with pool_mode `mode`, run as the server's OS user (it refuses root) on a port of its
    own. Clients log in as tokend with the cluster's password (the cluster's pgpass
    matches any host and port); PgBouncer logs in to PostgreSQL with the same."""

    BIN = Path("/usr/sbin/pgbouncer")

    def __init__(self, pg, dbname, base, mode="transaction", pool_size=4):
        from support.util import free_port
        self.pg, self.dbname, self.mode = pg, dbname, mode
        self.dir = Path(base)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        password = (pg.dir / "secrets" / "tokend").read_text().strip()
        (self.dir / "users.txt").write_text(f'"tokend" "{password}"\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{dbname} = host=127.0.0.1 port={pg.port} dbname={dbname}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = scram-sha-256\nauth_file = {self.dir / 'users.txt'}\n"
            f"pool_mode = {mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n")
        for f in self.dir.iterdir():
            os.chmod(f, 0o600)
        os.chmod(self.dir, 0o700)
        if os.geteuid() == 0:
            for f in [self.dir, *self.dir.iterdir()]:
                shutil.chown(f, PG_OS_USER)
        self.proc = None

    def start(self):
        cmd = [str(self.BIN), str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", PG_OS_USER, "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        import socket
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.proc.poll() is None, f"pgbouncer exited: {self.log_text()[-2000:]}"
                assert time.monotonic() < deadline, f"pgbouncer did not listen: {self.log_text()[-2000:]}"
                time.sleep(0.05)

    def url(self, role="tokend"):
        return (f"postgresql://{role}@127.0.0.1:{self.port}/{self.dbname}"
                f"?passfile={self.pg.dir / 'pgpass'}")

    def log_text(self):
        try:
            return (self.dir / "pgbouncer.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()   # runuser passes SIGTERM on to pgbouncer
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


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
