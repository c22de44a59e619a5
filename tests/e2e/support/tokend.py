"""The tokend CLI bound to one config file (Tokend) and background processes whose
output is recorded in the session registry (Captured, Spawned)."""
import base64
import os
import re
import subprocess
import uuid
from pathlib import Path

from support.keys import KEY_ID_RE, SECRET_FIND_RE, SECRET_RE
from support.pg import db_dicts, db_query
from support.registry import record_output
from support.util import role_url


def binary_is_sanitized(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data or b"AddressSanitizer" in data



def base_env(extra=None):
    env = dict(os.environ)
    for k in ("TOKEND_DATABASE_URL", "TOKEND_PEPPER", "TOKEND_PEPPER_FILE", "TOKEND_CONFIG"):
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

    Shared by Spawned and support.server.Server: the subclass sets out_path and err_path,
    then calls _launch().
    """
    proc = None

    def _launch(self, cmd, env, cpus=None, wrap=None):
        """`cpus`: the CPUs the process may run on (its affinity mask, set by taskset, which then
        becomes the command: same pid), else pytest's. `wrap`: a command that execs the rest
        (e.g. denysys), same pid."""
        self.cmd = cmd
        self._out = open(self.out_path, "w")
        self._err = open(self.err_path, "w")
        run = list(wrap or []) + cmd
        if cpus is not None:
            run = ["taskset", "-c", ",".join(str(c) for c in sorted(cpus))] + run
        self.proc = subprocess.Popen(run, stdout=self._out, stderr=self._err,
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
        SPAWNED.append(self)

    def stop(self, sig_timeout=10):
        if self.returncode is not None:
            return self.returncode
        self._terminate(sig_timeout, 5)
        self.returncode = self.proc.returncode
        self._close_files()
        record_output(self.cmd[1:], self.returncode, self.stdout_text(), self.stderr_text(), kind="spawn")
        return self.returncode


SPAWNED = []


def describe(r, what):
    return (f"{what}; got exit {r.returncode}\n  args: {r.args}\n"
            f"  stdout: {r.stdout[:3000]!r}\n  stderr: {r.stderr[:3000]!r}")
