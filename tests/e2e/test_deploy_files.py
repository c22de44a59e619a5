"""
The deployment files (issue 17, point 3): the systemd unit
(dist/systemd/tokend.service: hardened, Type=notify, reload by SIGHUP; checked
with the machine's systemd-analyze), the Docker entrypoint (docker/entrypoint.sh,
run here with the real tokend and PostgreSQL: no Docker engine needed) that
must not put the pepper or a database password into tokend's environment, and
the image's HEALTHCHECK script (docker/healthcheck.sh) against a real tokend.
"""
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from support.http import http_request
from support.server import Server
from support.tokend import base_env
from support.util import free_port, wait_until

pytestmark = pytest.mark.binary

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "dist" / "systemd" / "tokend.service"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
HEALTHCHECK = ROOT / "docker" / "healthcheck.sh"


# ===========================================================================
# systemd unit
# ===========================================================================
def unit_settings(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "[")):
            continue
        k, v = line.split("=", 1)
        out.setdefault(k, []).append(v)
    return out


def installed_unit(tmp_path, tokend_bin):
    """The unit with ExecStart pointing at the binary under test (systemd-analyze checks it exists)."""
    d = tmp_path / "unit"
    d.mkdir()
    p = d / "tokend.service"
    p.write_text(UNIT.read_text().replace("/usr/local/bin/tokend", str(tokend_bin)))
    return p


def test_systemd_unit_settings():
    s = unit_settings(UNIT.read_text())
    assert s["Type"] == ["notify"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                 ("CapabilityBoundingSet", ""), ("ProtectHome", "yes"), ("PrivateDevices", "yes"),
                 ("RestrictSUIDSGID", "yes"), ("MemoryDenyWriteExecute", "yes")):
        assert s.get(k) == [v], (k, s.get(k))
    assert any(v.endswith(" serve") for v in s["ExecStart"])
    # Secrets: credentials (files), never Environment= values.
    env = " ".join(s.get("Environment", []))
    assert "TOKEND_PEPPER=" not in env and "password" not in env.lower(), env
    assert "TOKEND_PEPPER_FILE=%d/pepper" in env


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze on this machine")
def test_systemd_unit_verifies_and_is_hardened(tmp_path, tokend_bin):
    p = installed_unit(tmp_path, tokend_bin)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(p)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr   # an unknown key is a warning there
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(p)],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for tokend.service: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout[-2000:] + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout[-3000:]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze on this machine")
def test_systemd_verify_catches_a_misspelled_hardening_key(tmp_path, tokend_bin):
    """The check above would see a typo (which systemd silently ignores at run time)."""
    p = installed_unit(tmp_path, tokend_bin)
    p.write_text(p.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilegez=yes"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(p)], capture_output=True, text=True)
    assert "Unknown key" in r.stderr, r.stderr


# ===========================================================================
# Docker entrypoint, run with the real tokend
# ===========================================================================
class Entrypoint:
    def __init__(self, tokend, signing_keys, tmp_path, tokend_bin):
        self.t = tokend
        # A configuration without the pepper: the container passes it as a file.
        self.srv = Server(tokend, [signing_keys["es256"]], pepper_file=None)
        self.tmp = tmp_path
        self.bin = tokend_bin
        self.proc = None

    def env(self, **extra):
        e = base_env({"TOKEND_BIN": str(self.bin), "TOKEND_CONFIG": str(self.srv.config),
                      "TOKEND_MIGRATE_TIMEOUT": "5"})
        e.update({k: v for k, v in extra.items() if v is not None})
        return e

    def start(self, **extra):
        self.err = open(self.tmp / "entrypoint.err", "w+")
        self.proc = subprocess.Popen(["bash", str(ENTRYPOINT), "serve"], env=self.env(**extra),
                                     stdout=self.err, stderr=self.err, stdin=subprocess.DEVNULL)
        return self

    def run(self, **extra):
        return subprocess.run(["bash", str(ENTRYPOINT), "serve"], env=self.env(**extra), capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)

    def output(self):
        self.err.flush()
        return (self.tmp / "entrypoint.err").read_text()

    def wait_serving(self):
        def up():
            assert self.proc.poll() is None, self.output()
            try:
                return http_request(self.srv.port, "GET", "/healthz", timeout=2).status == 200
            except OSError:
                return False
        wait_until(up, timeout=60, what="tokend started by the entrypoint")

    def environ(self):
        """tokend's own environment: exec kept the entrypoint's PID."""
        raw = Path(f"/proc/{self.proc.pid}/environ").read_bytes()
        assert Path(f"/proc/{self.proc.pid}/exe").resolve() == Path(self.bin).resolve()
        return dict(kv.split(b"=", 1) for kv in raw.split(b"\0") if b"=" in kv), raw

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        return self.proc.returncode


@pytest.fixture
def entry(tokend, signing_keys, tmp_path, tokend_bin):
    e = Entrypoint(tokend, signing_keys, tmp_path, tokend_bin)
    yield e
    e.stop()


def test_entrypoint_keeps_pepper_and_passwords_out_of_tokends_environment(entry, tmp_path):
    t = entry.t
    app_pw = tmp_path / "app-password"
    owner_pw = tmp_path / "owner-password"
    app_pw.write_text("app-Secret-Pw-1\n")
    owner_pw.write_text("owner-Secret-Pw-2\n")
    entry.start(TOKEND_PEPPER_FILE=str(t.pepper_file), TOKEND_DATABASE_URL=t.app_url,
                TOKEND_MIGRATE_DATABASE_URL=t.owner_url,
                TOKEND_DB_PASSWORD_FILE=str(app_pw), TOKEND_MIGRATE_DB_PASSWORD_FILE=str(owner_pw))
    entry.wait_serving()
    env, raw = entry.environ()
    assert t.pepper.encode() not in raw, "the pepper is in tokend's environment"
    assert b"TOKEND_PEPPER" not in env
    assert env[b"TOKEND_PEPPER_FILE"] == str(t.pepper_file).encode()
    assert b"Secret-Pw" not in raw, "a database password is in tokend's environment"
    assert b"TOKEND_MIGRATE_DATABASE_URL" not in env
    # The app role's password is in a pgpass file tokend's libpq reads; the owner's is gone.
    pgpass = Path(env[b"PGPASSFILE"].decode())
    assert oct(pgpass.stat().st_mode & 0o777) == "0o600"
    text = pgpass.read_text()
    assert "app-Secret-Pw-1" in text and "owner-Secret-Pw-2" not in text, text
    # It really serves with that pepper: a key made by the CLI gets a token.
    t.account("acme")
    t.scopes("read")
    k = t.create_key("acme", "ep", "read")
    r = entry.srv.token(k)
    assert r.status == 200, r
    assert entry.stop() == 0, entry.output()
    pgpass.unlink(missing_ok=True)
    out = entry.output()
    assert "Secret-Pw" not in out and t.pepper not in out


def test_entrypoint_warns_about_a_pepper_in_the_environment(entry):
    entry.start(TOKEND_PEPPER=entry.t.pepper, TOKEND_DATABASE_URL=entry.t.app_url, TOKEND_SKIP_MIGRATE="1")
    entry.wait_serving()
    assert "warning: TOKEND_PEPPER holds the pepper in the environment" in entry.output()
    assert entry.t.pepper not in entry.output()


def test_entrypoint_missing_pepper_file_refused(entry, tmp_path):
    r = entry.run(TOKEND_PEPPER_FILE=str(tmp_path / "absent"), TOKEND_DATABASE_URL=entry.t.app_url,
                  TOKEND_SKIP_MIGRATE="1")
    assert r.returncode == 1, r
    assert "TOKEND_PEPPER_FILE" in r.stderr and "does not exist" in r.stderr, r.stderr
    empty = tmp_path / "empty"
    empty.write_text("")
    r = entry.run(TOKEND_PEPPER_FILE=str(empty), TOKEND_DATABASE_URL=entry.t.app_url, TOKEND_SKIP_MIGRATE="1")
    assert r.returncode == 1 and "is empty" in r.stderr, r.stderr


def test_entrypoint_warns_about_a_password_in_a_url(entry):
    url = entry.t.app_url.replace("postgresql://tokend@", "postgresql://tokend:pw-in-url@")
    assert url != entry.t.app_url
    entry.start(TOKEND_PEPPER_FILE=str(entry.t.pepper_file), TOKEND_DATABASE_URL=url, TOKEND_SKIP_MIGRATE="1")
    entry.wait_serving()
    out = entry.output()
    assert "a database URL in the environment carries a password" in out
    assert "pw-in-url" not in out


# ===========================================================================
# HEALTHCHECK script
# ===========================================================================
def test_healthcheck_script(tokend, start_server):
    ops = free_port()
    srv = start_server(tokend, ops_listen_port=ops)

    def check(port, path=None):
        env = base_env({"TOKEND_HEALTHCHECK_PORT": str(port)})
        if path:
            env["TOKEND_HEALTHCHECK_PATH"] = path
        return subprocess.run(["bash", str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=20)
    assert check(ops).returncode == 0
    assert check(ops, "/readyz").returncode == 0
    r = check(srv.port)       # /healthz is on the ops listener only now: 404 on the main one
    assert r.returncode == 1 and "404" in r.stderr, r.stderr
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    r = check(port)
    assert r.returncode == 1 and "cannot connect" in r.stderr, r.stderr
    assert check("80; echo x").returncode == 1
