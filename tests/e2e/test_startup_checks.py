"""Issue 17.2: misconfiguration caught at start (the pepper check has its own
file, test_pepper_check.py): `tokend config` masks database passwords and
speaks JSON; every setting comes from the environment (TOKEND_<KEY>) too;
group-readable key files are accepted, world-readable ones refused with an
exact message; another listener on the port is named (and refused with
listen_exclusive); a database that cannot be reached is named by host and
port."""
import json
import os
import re
import shutil
import socket
import subprocess

import pytest

from support.http import http_request, token_request
from support.server import new_key
from support.tokend import base_env
from support.util import free_port, wait_until

pytestmark = pytest.mark.binary


def dump(text):
    return dict(ln.split(" = ", 1) for ln in text.splitlines() if " = " in ln and not ln.startswith("#"))


# -- tokend config ------------------------------------------------------------
def test_config_masks_every_database_password_form(tokend):
    cfg = tokend.write_config([
        "database_url = postgres://app:pw-in-userinfo@db1.example:6432/tokend?password=pw-in-query&sslmode=require",
        "migrate_database_url = host=db2.example password=pw-keyword user=owner dbname=tokend",
        f"pepper_file = {tokend.pepper_file}"])
    for args in (["config"], ["--json", "config"], ["config", "--json"]):
        r = tokend.run(*args, config=cfg, check=0)
        assert "pw-" not in r.stdout + r.stderr, r.stdout
    d = dump(tokend.run("config", config=cfg, check=0).stdout)
    assert d["database_url"] == ("postgres://app:********@db1.example:6432/tokend"
                                 "?password=********&sslmode=require"), d
    assert d["migrate_database_url"] == "host=db2.example password=******** user=owner dbname=tokend", d
    # The same with the URLs from the environment.
    r = tokend.run("config", config=False, check=0, env={
        "TOKEND_DATABASE_URL": "postgresql://u:env-secret@h:5/db",
        "TOKEND_MIGRATE_DATABASE_URL": "password=env-secret2 host=h"})
    assert "env-secret" not in r.stdout
    assert dump(r.stdout)["database_url"] == "postgresql://u:********@h:5/db"
    assert dump(r.stdout)["migrate_database_url"] == "password=******** host=h"


def test_json_config_is_json_with_typed_values_and_sources(tokend):
    cfg = tokend.write_config([f"database_url = {tokend.app_url}", "workers = 3", "listen_port = 9001",
                               f"pepper_file = {tokend.pepper_file}"])
    r = tokend.run("--json", "config", config=cfg, check=0,
                   env={"TOKEND_LISTEN_PORT": "9002", "TOKEND_PEPPER": tokend.pepper})
    doc = json.loads(r.stdout)
    s = doc["settings"]
    assert doc["config_file"] == str(cfg)
    assert "environment" in doc["precedence"] and "file" in doc["precedence"]
    assert s["workers"] == {"value": 3, "source": "file", "env": "TOKEND_WORKERS"}
    assert s["listen_port"] == {"value": 9002, "source": "environment", "env": "TOKEND_LISTEN_PORT"}
    assert s["token_lifetime"] == {"value": "10m", "source": "default", "env": "TOKEND_TOKEN_LIFETIME"}
    assert s["allow_privileged_database_role"]["value"] is False
    assert s["listen_exclusive"] == {"value": False, "source": "default", "env": "TOKEND_LISTEN_EXCLUSIVE"}
    assert s["pepper"] == {"value": "********", "source": "environment", "env": "TOKEND_PEPPER"}
    assert tokend.pepper not in r.stdout
    # The text form says where a value came from on the line before it.
    text = tokend.run("config", config=cfg, check=0, env={"TOKEND_LISTEN_PORT": "9002"}).stdout.splitlines()
    i = text.index("listen_port = 9002")
    assert text[i - 1] == "# from the environment: TOKEND_LISTEN_PORT", text
    i = text.index("workers = 3")
    assert text[i - 1] == f"# from {cfg}", text
    assert text[0].startswith("# precedence: environment (TOKEND_<KEY>) over the configuration file")


@pytest.mark.parametrize("var,value,why", [("TOKEND_WORKERS", "many", "not a whole number"),
                                           ("TOKEND_LISTEN_PORT", "70000", "out of range"),
                                           ("TOKEND_LOG_FORMAT", "xml", "must be one of:"),
                                           ("TOKEND_TOKEN_LIFETIME", "forever", "")])
def test_bad_environment_value_is_named_and_refused(tokend, var, value, why):
    r = tokend.refused("config", env={var: value})
    assert r.stderr.startswith(f"tokend: {var}: {why}"), r.stderr


class EnvServe:
    """`tokend serve` started with extra environment variables (and a config file or none)."""

    def __init__(self, tokend, tmp_path, env, config=None):
        self.port = int(env.get("TOKEND_LISTEN_PORT") or 0)
        self.err = tmp_path / f"serve-{self.port}.err"
        cmd = [str(tokend.bin)] + (["--config", str(config)] if config else []) + ["serve"]
        with open(tmp_path / f"serve-{self.port}.out", "w") as o, open(self.err, "w") as e:
            self.proc = subprocess.Popen(cmd, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                         env=base_env(env), cwd=tmp_path)

    def wait_ready(self):
        def ready():
            assert self.proc.poll() is None, self.err.read_text()
            try:
                return http_request(self.port, "GET", "/readyz", timeout=2).status == 200
            except OSError:
                return False
        wait_until(ready, timeout=60, what="tokend configured by the environment")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        assert self.proc.returncode == 0, self.err.read_text()


def test_container_without_a_config_file(tokend, signing_keys, tmp_path):
    """Every setting from the environment: serve with no --config and no file at all."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/env-issuer"
    tokend.account("acme")
    tokend.seed_scopes("read")
    key = new_key(tokend, "acme")
    srv = EnvServe(tokend, tmp_path, {
        "TOKEND_DATABASE_URL": tokend.app_url, "TOKEND_PEPPER_FILE": str(tokend.pepper_file),
        "TOKEND_LISTEN_PORT": str(port), "TOKEND_ISSUER": issuer,
        "TOKEND_SIGNING_KEYS": str(signing_keys["es256"]), "TOKEND_WORKERS": "1"})
    try:
        srv.wait_ready()
        assert http_request(port, "GET", "/.well-known/oauth-authorization-server").json()["issuer"] == issuer
        r = token_request(port, {"grant_type": "client_credentials"}, auth=(key["client_id"], key["client_secret"]))
        assert r.status == 200, r
    finally:
        srv.stop()
    assert tokend.pepper not in srv.err.read_text()


def test_environment_overrides_the_file(tokend, signing_keys, tmp_path):
    port = free_port()
    cfg = tokend.write_config([f"database_url = {tokend.app_url}", f"pepper_file = {tokend.pepper_file}",
                               f"signing_keys = {signing_keys['es256']}", "listen_port = 1",
                               "issuer = https://file.example"])
    srv = EnvServe(tokend, tmp_path, {"TOKEND_ISSUER": "https://env.example", "TOKEND_LISTEN_PORT": str(port)},
                   config=cfg)
    try:
        srv.wait_ready()
        meta = http_request(port, "GET", "/.well-known/oauth-authorization-server").json()
        assert meta["issuer"] == "https://env.example"
    finally:
        srv.stop()


# -- key files ----------------------------------------------------------------
def copy_key(src, dst, mode):
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)
    return dst


@pytest.mark.parametrize("mode", [0o640, 0o440])
def test_group_readable_key_and_pepper_files_are_accepted(tokend, start_server, signing_keys, tmp_path, mode):
    key = copy_key(signing_keys["es256"], tmp_path / "group.pem", mode)
    os.chmod(tokend.pepper_file, mode)
    srv = start_server(tokend, keys=(str(key),))
    assert srv.get("/readyz").status == 200
    assert len(srv.get("/.well-known/jwks.json").json()["keys"]) == 1


@pytest.mark.parametrize("mode,word", [(0o644, "readable"), (0o604, "readable"), (0o602, "accessible"),
                                       (0o660, None)])
def test_world_accessible_key_file_is_refused_with_an_exact_message(tokend, start_server, signing_keys,
                                                                     tmp_path, mode, word):
    key = copy_key(signing_keys["es256"], tmp_path / "open.pem", mode)
    srv = start_server(tokend, keys=(str(key),), wait=False, check_exit=False)
    srv.proc.wait(timeout=30)
    err = srv.stderr_text()
    assert srv.proc.returncode == 1, err
    uid = os.geteuid()
    if word:
        want = (f"{key}: private key file is {word} by others (mode 0{mode:o}, owner uid {uid}): run chmod "
                f"o-rwx on it (0600, 0400, or 0640/0440 owned by root or by tokend's user uid {uid} are accepted)")
    else:
        want = (f"{key}: private key file is writable or executable by its group (mode 0{mode:o}, owner uid "
                f"{uid}): run chmod g-wx on it (0600, 0400, or 0640/0440 owned by root or by tokend's user "
                f"uid {uid} are accepted)")
    assert want in err, err


def test_world_readable_pepper_file_is_refused(tokend):
    os.chmod(tokend.pepper_file, 0o644)
    tokend.account("acme")
    tokend.grant_scopes("acme")
    uid = os.geteuid()
    r = tokend.refused("key", "create", "--account", "acme", "--name", "k", "--scopes", "read")
    assert (f"tokend: pepper_file: {tokend.pepper_file}: the pepper file is readable by others (mode 0644, "
            f"owner uid {uid}): run chmod o-rwx on it") in r.stderr, r.stderr
    assert tokend.query("SELECT count(*) FROM api_keys") == [(0,)]


# -- another listener on the port ---------------------------------------------
def test_second_tokend_on_the_port_is_named(tokend, start_server):
    first = start_server(tokend)
    # (its /readyz may be answered by the first: wait for its own start line)
    second = start_server(tokend, port=first.port, wait=False)
    wait_until(lambda: second.log_lines("server.started"), timeout=60, what="the second tokend")
    lines = second.log_lines("server.port_shared")
    assert lines, second.stderr_text()[-4000:]
    assert f"pid {first.proc.pid} (" in lines[0] and "tokend" in lines[0], lines[0]
    assert f"127.0.0.1:{first.port}" in lines[0]
    assert "listen_exclusive" in lines[0]
    assert not first.log_lines("server.port_shared")


def test_listen_exclusive_refuses_to_share_the_port(tokend, start_server):
    first = start_server(tokend)
    srv = start_server(tokend, port=first.port, listen_exclusive="yes", wait=False, check_exit=False)
    srv.proc.wait(timeout=30)
    err = srv.stderr_text()
    assert srv.proc.returncode == 1, err
    assert (f"tokend: another process already listens on 127.0.0.1:{first.port} (listen_port): "
            f"pid {first.proc.pid} (") in err, err
    assert "listen_exclusive = yes refuses to share the port" in err
    assert first.get("/readyz").status == 200       # the first one is untouched
    # Alone on its port, listen_exclusive starts.
    assert start_server(tokend, listen_exclusive="yes").get("/readyz").status == 200


def test_port_held_without_reuseport_names_the_holder(tokend, start_server):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        srv = start_server(tokend, port=port, wait=False, check_exit=False)
        srv.proc.wait(timeout=30)
        err = srv.stderr_text()
        assert srv.proc.returncode == 1, err
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use by pid {os.getpid()} (" in err, err
    finally:
        s.close()


# -- the database cannot be reached ---------------------------------------------
def test_cannot_connect_names_host_and_port_never_the_password(tokend):
    port = free_port()
    url = f"postgresql://tokend:pw-never-shown@127.0.0.1:{port}/tokend?connect_timeout=3"
    r = tokend.refused("account", "list", env={"TOKEND_DATABASE_URL": url})
    assert f"cannot connect to the database at 127.0.0.1:{port}: " in r.stderr, r.stderr
    assert "Connection refused" in r.stderr
    assert "pw-never-shown" not in r.stderr + r.stdout
    r = tokend.refused("account", "list", env={"TOKEND_DATABASE_URL":
                                               f"host=localhost port={port} password=pw-kw connect_timeout=3"})
    assert f"cannot connect to the database at localhost:{port}: " in r.stderr, r.stderr
    assert "pw-kw" not in r.stderr


# -- the example configuration ------------------------------------------------
def test_example_config_lists_every_key_with_its_default(tokend):
    """config/tokend.conf.example shows every key; a commented-out key carries its default
    (compared as tokend reads it: 60s and 1m are the same duration)."""
    from support.util import ROOT
    example = (ROOT / "config" / "tokend.conf.example").read_text()
    defaults = dump(tokend.run("config", config=False, check=0).stdout)
    missing, commented = [], []
    for key in defaults:
        found = re.findall(rf"^(#[ \t]*)?{re.escape(key)}[ \t]*=[ \t]*(.*?)[ \t]*$", example, re.M)
        if not found:
            missing.append(key)
        elif not any(not hash_ for hash_, _ in found):      # only commented out: the default
            commented.append(f"{key} = {found[-1][1]}")
    assert not missing, f"keys missing from config/tokend.conf.example: {missing}"
    cfg = tokend.write_config(commented)
    shown = dump(tokend.run("config", config=cfg, check=0).stdout)
    wrong = {k: (shown[k], defaults[k]) for k in defaults if shown[k] != defaults[k]}
    assert not wrong, f"commented-out keys whose value is not the default (shown, default): {wrong}"


def test_json_config_with_a_value_that_is_not_utf8(tokend):
    """A file may hold any byte (found by fuzz_config): --json still prints JSON."""
    cfg = tokend.write_config(b"default_audience = caf\xe9\n".decode("latin-1"))
    cfg.write_bytes(b"default_audience = caf\xe9\n")
    doc = json.loads(tokend.run("--json", "config", config=cfg, check=0).stdout)
    assert doc["settings"]["default_audience"]["value"] == "caf?"
