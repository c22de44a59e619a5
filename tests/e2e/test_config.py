"""Issue 11: the config table carries enumerations, SIGHUP reload flags, queue
sizes and the listen backlog (server/core/config.c)."""
import os
import re
import signal

import pytest

from support.util import wait_until

pytestmark = pytest.mark.binary


def dump(tokend, cfg):
    r = tokend.run("config", config=cfg, check=0)
    return dict(ln.split(" = ", 1) if " = " in ln else (ln.rstrip(" ="), "")
                for ln in r.stdout.splitlines() if "=" in ln)


@pytest.mark.parametrize("key,bad", [("log_level", "loud"), ("log_format", "xml"),
                                     ("log_level", "INFO"), ("log_format", "")])
def test_bad_enum_names_file_line_key_and_choices(tokend, key, bad):
    cfg = tokend.write_config([f"database_url = {tokend.db_url}", "# x", f"{key} = {bad}"])
    r = tokend.run("config", config=cfg, check=1)
    assert f"{cfg}:3: {key}: must be one of:" in r.stderr, r.stderr


def test_new_settings_defaults_shown(tokend):
    cfg = tokend.write_config([f"database_url = {tokend.db_url}"])
    d = dump(tokend, cfg)
    assert d["listen_backlog"] == "1024"
    assert d["db_queue_size"] == "4096"
    assert d["key_cache_size"] == "1000000"
    assert d["rate_limit_table_size"] == "100000"


@pytest.mark.parametrize("key,bad", [("listen_backlog", "0"), ("listen_backlog", "65536"),
                                     ("db_queue_size", "0"), ("key_cache_size", "-1"),
                                     ("rate_limit_table_size", "10000001"), ("db_queue_size", "many")])
def test_new_settings_validated(tokend, key, bad):
    cfg = tokend.write_config([f"database_url = {tokend.db_url}", f"{key} = {bad}"])
    r = tokend.run("config", config=cfg, check=1)
    assert f"{cfg}:2: {key}:" in r.stderr, r.stderr


def test_new_settings_honoured_by_serve(tokend, start_server):
    srv = start_server(tokend, listen_backlog=7, db_queue_size=3, key_cache_size=10,
                       rate_limit_table_size=50)
    d = dump(tokend, srv.config)
    assert (d["listen_backlog"], d["db_queue_size"], d["key_cache_size"],
            d["rate_limit_table_size"]) == ("7", "3", "10", "50")
    assert srv.get("/healthz").status == 200


def test_sighup_names_settings_that_need_a_restart(tokend, start_server):
    srv = start_server(tokend)
    text = srv.config.read_text()
    srv.config.write_text(text + "db_queue_size = 99\nlisten_backlog = 77\nkey_cache_size = 1000000\n")
    os.kill(srv.proc.pid, signal.SIGHUP)
    assert wait_until(lambda: srv.log_lines("server.restart_needed"), timeout=5)
    line = srv.log_lines("server.restart_needed")[-1]
    assert "db_queue_size" in line and "listen_backlog" in line
    assert "key_cache_size" not in line      # unchanged (the default)
    settings = re.search(r'settings="([^"]*)"', line).group(1)
    assert sorted(settings.split()) == ["db_queue_size", "listen_backlog"]
    # names, never values (the timestamp may contain any digits, so look past it)
    rest = line.split(" ", 1)[1]
    assert "=99" not in rest and "=77" not in rest and " 99" not in rest and " 77" not in rest
