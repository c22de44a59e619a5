"""Paths, the run's private temp directory, and small utilities."""
import datetime as dt
import os
import re
import socket
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PG_SH = ROOT / "scripts" / "pg.sh"
SQL_DIR = ROOT / "sql"
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
TOKEND_BIN = Path(os.environ.get("TOKEND_BIN") or ROOT / "build" / "tokend")


def tmp_base():
    """The directory the session's temp directories go under: $TOKEND_E2E_TMPDIR (made
    private to one run by scripts/test.sh, which stops and removes only what is in it),
    else None (the system's temp directory)."""
    d = os.environ.get("TOKEND_E2E_TMPDIR")
    if not d:
        return None
    os.makedirs(d, exist_ok=True)
    return d


class NS:
    """A plain namespace (the `env` fixtures of test modules)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


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


def strace_calls(pid, calls, out, fn):
    """Run fn() with strace attached to process `pid` (every thread), tracing the
    system calls named in `calls` ("sendto,io_uring_enter") into file `out`;
    returns strace's text. Skips the test where strace cannot attach (not root
    and kernel.yama.ptrace_scope not 0, or no ptrace permission)."""
    import shutil
    import signal
    import subprocess
    import pytest
    strace = shutil.which("strace")
    assert strace, "strace is not installed (scripts/install-deps.sh installs it)"
    if os.geteuid() != 0:
        scope = Path("/proc/sys/kernel/yama/ptrace_scope")
        if scope.exists() and scope.read_text().strip() != "0":
            pytest.skip("attaching strace needs root or kernel.yama.ptrace_scope = 0")
    tr = subprocess.Popen([strace, "-f", "-qq", "-e", f"trace={calls}", "-o", str(out), "-p", str(pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)                                     # attached to every thread
        if tr.poll() is not None:
            why = tr.stderr.read()
            if "Operation not permitted" in why:
                pytest.skip(f"strace cannot attach here (no ptrace permission): {why.strip()[:200]}")
            raise AssertionError(f"strace stopped: {why[:500]}")
        fn()
    finally:
        tr.send_signal(signal.SIGINT)
        tr.wait(10)
    return Path(out).read_text()
