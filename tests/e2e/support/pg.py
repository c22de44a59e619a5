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

    def create_database(self, template=None, name=None):
        """A new database owned by tokend_owner (a copy of `template` if given); its name."""
        name = name or "t_" + uuid.uuid4().hex
        tmpl = f' TEMPLATE "{template}"' if template else ""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                # FILE_COPY: with fsync off it is the faster strategy for a small template.
                cur.execute(f'CREATE DATABASE "{name}"{tmpl} OWNER tokend_owner STRATEGY = FILE_COPY')
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
