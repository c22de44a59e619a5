"""Issue 13, point 3: operator-configured key prefixes (key_id_prefix_live,
key_id_prefix_test, secret_prefix), validated at start; the checksum stays; a key
made under an earlier prefix keeps working after the prefix changes.
"""
import json
import re

import jwt
import pytest

from support.admin import send
from support.registry import remember_secret
from support.server import get_token

pytestmark = pytest.mark.binary

NEW = {"key_id_prefix_live": "ms_live_", "key_id_prefix_test": "ms_test_", "secret_prefix": "ms_sk_"}


def config_with(t, **settings):
    return t.write_config(t.config_lines + [f"{k} = {v}" for k, v in settings.items()])


def create(t, config, *extra):
    r = t.run("key", "create", "--account", "acme", "--name", "k", "--scopes", "read", *extra, "--json",
              config=config, check=0)
    k = json.loads(r.stdout)
    remember_secret(k["client_secret"])
    return k


def test_old_keys_keep_working_after_a_prefix_change(tokend, start_server):
    t = tokend
    t.account("acme", "--key-limit", "20")
    t.scopes("read")   # tokend:admin:write is seeded by the schema
    t.grant_scopes("acme", "read", "tokend:admin:write")
    old = create(t, True)
    assert re.fullmatch(r"tk_[0-9A-Za-z]{28}", old["client_id"]) and old["client_secret"].startswith("tks_")
    old_test = create(t, True, "--environment", "test")
    assert re.fullmatch(r"tk_test_[0-9A-Za-z]{28}", old_test["client_id"]), old_test
    srv = start_server(t)
    get_token(srv, old)
    srv.stop()

    # The operator changes the prefixes; the CLI and the server read the same settings.
    cfg = config_with(t, **NEW)
    live = create(t, cfg)
    test = create(t, cfg, "--environment", "test")
    assert re.fullmatch(r"ms_live_[0-9A-Za-z]{28}", live["client_id"]), live
    assert re.fullmatch(r"ms_test_[0-9A-Za-z]{28}", test["client_id"]), test
    assert re.fullmatch(r"ms_sk_[0-9A-Za-z]{49}", live["client_secret"])
    srv = start_server(t, **NEW)
    for k, env in ((old, "live"), (old_test, "test"), (live, "live"), (test, "test")):
        r = srv.token(k)
        assert r.status == 200, (k["client_id"], r)
        tok = r.json()["access_token"]
        assert jwt.decode(tok, options={"verify_signature": False})["env"] == env
    # The admin API makes keys with the new prefixes too.
    r = t.run("key", "create", "--account", "acme", "--name", "admin", "--scopes", "tokend:admin:write", "--json",
              config=cfg, check=0)
    adm = json.loads(r.stdout)
    remember_secret(adm["client_secret"])
    tok = get_token(srv, adm)
    r = send(srv.port, "POST", "keys", {"name": "api", "scopes": ["read"], "environment": "test"}, token=tok)
    assert r.status == 201, r
    assert r.json()["client_id"].startswith("ms_test_") and r.json()["client_secret"].startswith("ms_sk_")
    # (an admin API answer, not a command's output: not in the CLI leak registry)
    # A typo in a prefix is caught by the checksum, like any other typo.
    bad = dict(live, client_id="ms_livf_" + live["client_id"][8:])
    assert srv.token(bad).status == 401
    # The key commands take IDs of any prefix.
    assert t.json("key", "show", live["client_id"])["client_id"] == live["client_id"]
    assert t.json("key", "show", old["client_id"])["client_id"] == old["client_id"]


@pytest.mark.parametrize("settings,why", [
    ({"key_id_prefix_live": "MS_"}, "key_id_prefix_live"),
    ({"key_id_prefix_live": "ms"}, "key_id_prefix_live"),
    ({"key_id_prefix_test": "ms-test_"}, "key_id_prefix_test"),
    ({"secret_prefix": "a" * 16 + "_"}, "secret_prefix"),
    ({"secret_prefix": "_"}, "secret_prefix"),
    ({"key_id_prefix_live": "ms_", "key_id_prefix_test": "ms_"}, "must differ"),
    ({"key_id_prefix_live": "ms_", "secret_prefix": "ms_"}, "must differ"),
], ids=lambda v: str(v)[:30])
def test_bad_prefixes_refused_at_start(tokend, settings, why):
    cfg = config_with(tokend, **settings)
    r = tokend.refused("config", config=cfg, match=why)
    assert "2-16 characters" in r.stderr or "must differ" in r.stderr
    r = tokend.run("serve", config=cfg, timeout=30)
    assert r.returncode != 0 and why in r.stderr, r.stderr


def test_key_table_columns_fit_the_longest_id(tokend):
    """`key list` lines up its columns whatever the prefixes' lengths (a 36-character
    tk_test_ ID used to push its row out of line in a 31-character KEY column)."""
    t = tokend
    t.account("acme")
    t.scopes("read")
    t.grant_scopes("acme", "read")
    short = create(t, True)
    long_ = create(t, config_with(t, key_id_prefix_test="ms_test_longer_"), "--environment", "test")
    assert len(long_["client_id"]) > 31
    lines = t.run("key", "list", "--account", "acme").stdout.splitlines()
    head = lines[0]
    col = head.index("ACCOUNT")
    rows = {l.split()[0]: l for l in lines[1:]}
    assert set(rows) == {short["client_id"], long_["client_id"]}, lines
    for row in rows.values():
        assert row[col:].startswith("acme "), (head, row)
        assert row[col - 1] == " " and row[:col].strip() in rows
