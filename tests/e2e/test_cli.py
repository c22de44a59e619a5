"""
End-to-end tests of the `tokend` operator command line against a real PostgreSQL.

Exit status: 0 done, 1 refused (one line on stderr starting `tokend: `),
2 usage error. Every command accepts --json.
"""
import base64
import concurrent.futures
import datetime as dt
import getpass
import hashlib
import hmac
import json
import re
import threading
import time

import psycopg2
import pytest

from support.keys import KEY_ID_RE, SECRET_FIND_RE, SECRET_RE, break_checksum, checksum_ok, make_key_id
from support.pg import pg_dump
from support.registry import all_output_texts
from support.tokend import new_pepper
from support.util import SQL_DIR, closed_port_url, parse_ts, utcnow, wait_until

pytestmark = pytest.mark.binary

ACCOUNT_FIELDS = {"id", "name", "key_limit", "active_keys", "created_at", "disabled_at"}
SCOPE_FIELDS = {"name", "description", "created_at"}
CREATE_FIELDS = {"client_id", "client_secret", "account", "name", "scopes", "audiences", "subject",
                 "expires_at", "token_lifetime", "created_at", "state", "hint"}
KEY_FIELDS = {"client_id", "account", "name", "hint", "masked", "scopes", "audiences", "subject",
              "state", "created_at", "created_by", "expires_at", "last_used_at", "disabled_at",
              "revoked_at", "revoke_reason", "token_lifetime"}
FORBIDDEN_KEY_FIELDS = {"client_secret", "secret", "secret_hash", "hash", "pepper"}
NOOP_RE = r"up[ -]to[ -]date|nothing to (do|apply)|no (new |pending )?migrations?|already|no-op"


def migration_files():
    return sorted(p for p in SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def close_to_now(ts, slack=120):
    return abs((parse_ts(ts) - utcnow()).total_seconds()) < slack


@pytest.fixture
def acme(tokend):
    """tokend with account `acme` (default limit 3) and scopes read, write, admin."""
    tokend.account("acme", "--name", "Acme Corp")
    tokend.seed_scopes("read", "write", "admin")
    tokend.grant_scopes("acme", "read", "write", "admin")
    return tokend


def check_key_object(k):
    missing = KEY_FIELDS - set(k)
    assert not missing, f"key object lacks {sorted(missing)}: {k}"
    assert not (FORBIDDEN_KEY_FIELDS & set(k)), f"key object carries a secret field: {k}"
    assert KEY_ID_RE.match(k["client_id"]) and checksum_ok(k["client_id"])
    assert re.fullmatch(r"[0-9A-Za-z]{4}", k["hint"]), k["hint"]
    assert k["masked"].startswith("tks_") and k["masked"].endswith(k["hint"]), k["masked"]
    assert len(k["masked"]) <= 16, f"masked key shows too much: {k['masked']!r}"
    assert k["state"] in ("enabled", "disabled", "revoked", "expired"), k["state"]
    assert isinstance(k["scopes"], list) and isinstance(k["audiences"], list)
    parse_ts(k["created_at"])
    assert k["created_by"], "created_by is empty"
    for f in ("expires_at", "last_used_at", "disabled_at", "revoked_at"):
        if k[f] is not None:
            parse_ts(k[f])


# ===========================================================================
# Help and usage errors
# ===========================================================================
HELP_CASES = [
    ([], ["serve", "migrate", "account", "key", "scope", "--config", "--json", "--help"]),
    (["migrate"], ["--json"]),
    (["account"], ["create", "list", "show", "set-limit"]),
    (["account", "create"], ["--name", "--key-limit", "--json"]),
    (["account", "list"], ["--json"]),
    (["account", "show"], ["--json"]),
    (["account", "set-limit"], ["--json"]),
    (["scope"], ["add", "list"]),
    (["scope", "add"], ["--description", "--json"]),
    (["scope", "list"], ["--json"]),
    (["key"], ["create", "list", "show", "rename", "set-rate-limit", "disable", "enable", "revoke",
               "delete", "--force"]),
    (["key", "create"], ["--account", "--name", "--scopes", "--audience", "--subject", "--expires-in",
                         "--expires-at", "--token-lifetime", "--rate-limit", "--json"]),
    (["key", "set-rate-limit"], ["none", "--json"]),
    (["key", "list"], ["--account", "--state", "--json"]),
    (["key", "show"], ["--json"]),
    (["key", "rename"], ["--json"]),
    (["key", "disable"], ["--json"]),
    (["key", "enable"], ["--json"]),
    (["key", "revoke"], ["--reason", "--json"]),
    (["key", "delete"], ["--json"]),
]


@pytest.mark.parametrize("words,mentions", HELP_CASES, ids=[" ".join(w) or "tokend" for w, _ in HELP_CASES])
def test_help(offline_tokend, words, mentions):
    # --help needs neither a config file nor a database.
    r = offline_tokend.run(*words, "--help", config=False, check=0)
    assert r.stdout.strip(), "usage goes to stdout"
    missing = [m for m in mentions if m not in r.stdout]
    assert not missing, f"`tokend {' '.join(words)} --help` does not mention {missing}:\n{r.stdout}"


def test_help_with_config_pointing_nowhere(offline_tokend):
    r = offline_tokend.run("key", "create", "--help", check=0)
    assert "--scopes" in r.stdout


USAGE_CASES = [
    [],
    ["frobnicate"],
    ["key"],
    ["key", "frobnicate"],
    ["account", "frobnicate"],
    ["scope", "frobnicate"],
    ["account", "list", "--bogus"],
    ["--bogus", "account", "list"],
    ["account", "show"],
    ["account", "show", "a", "b"],
    ["account", "create"],
    ["account", "set-limit", "acme"],
    ["scope", "add"],
    ["key", "show"],
    ["key", "rename", "KEYID"],
    ["key", "disable"],
    ["key", "enable"],
    ["key", "revoke"],
    ["key", "delete"],
    ["key", "delete", "KEYID", "--bogus"],
    ["key", "set-rate-limit"],
    ["key", "set-rate-limit", "KEYID"],
    ["key", "list", "--state"],
    ["key", "list", "--state", "bogus"],
    ["key", "create", "--account"],
    ["account", "create", "acme", "--key-limit"],
]


@pytest.mark.parametrize("args", USAGE_CASES, ids=lambda a: " ".join(a) or "(none)")
def test_usage_errors(offline_tokend, args):
    # Argument errors are found before any database work: the database here is unreachable.
    args = [make_key_id() if a == "KEYID" else a for a in args]
    offline_tokend.usage_error(*args)


def test_config_option_missing_value(offline_tokend):
    offline_tokend.usage_error("account", "list", "--config", config=False)


# ===========================================================================
# Configuration
# ===========================================================================
def test_config_after_command(tokend):
    tokend.account("acme")
    r = tokend.run("account", "list", "--config", str(tokend.config), "--json", config=False, check=0)
    assert [a["id"] for a in json.loads(r.stdout)] == ["acme"]


def test_config_file_missing(tokend):
    tokend.refused("account", "list", config=tokend.tmp / "no-such.conf", match="no-such.conf")


def test_config_unknown_key_names_file_and_line(tokend):
    cfg = tokend.write_config([f"database_url = {tokend.db_url}", "# a comment", "", "bogus_key = 1"])
    r = tokend.run("account", "list", config=cfg, check=1)
    assert f"{cfg}:4: bogus_key:" in r.stderr, r.stderr


def test_config_bad_value_names_file_and_line(tokend):
    cfg = tokend.write_config([f"database_url = {tokend.db_url}", "token_lifetime_max = 10x"])
    r = tokend.run("account", "list", config=cfg, check=1)
    assert f"{cfg}:2: token_lifetime_max:" in r.stderr, r.stderr


def test_config_pepper_too_short(tokend):
    _, short = new_pepper(16)
    cfg = tokend.write_config([f"database_url = {tokend.db_url}", f"pepper = {short}"])
    tokend.account("acme")
    tokend.scopes("read")
    r = tokend.run("key", "create", "--account", "acme", "--name", "k", "--scopes", "read", config=cfg, check=1)
    assert "pepper" in r.stderr, r.stderr
    assert short not in r.stdout + r.stderr
    assert tokend.query("SELECT count(*) FROM api_keys")[0][0] == 0


def test_no_pepper_refuses_key_create_only(make_tokend):
    tk = make_tokend(pepper=False)
    tk.account("acme")              # commands that do not need the pepper work
    tk.scopes("read")
    assert [a["id"] for a in tk.json("account", "list")] == ["acme"]
    tk.refused("key", "create", "--account", "acme", "--name", "k", "--scopes", "read", match="pepper")
    assert tk.query("SELECT count(*) FROM api_keys")[0][0] == 0


@pytest.mark.parametrize("kind", ["short", "not-random", "not-base64"])
def test_env_pepper_refused(acme, kind):
    value = {"short": new_pepper(31)[1],
             "not-random": base64.b64encode(bytes(32)).decode(),
             "not-base64": "!!!!not base64 at all, but long enough to be 32 bytes!!!!"}[kind]
    r = acme.refused("key", "create", "--account", "acme", "--name", "k", "--scopes", "read",
                     env={"TOKEND_PEPPER": value}, match="pepper")
    assert value not in r.stdout + r.stderr
    assert acme.query("SELECT count(*) FROM api_keys")[0][0] == 0


def test_pepper_file_readable_by_others_refused(acme):
    acme.pepper_file.chmod(0o644)
    r = acme.refused("key", "create", "--account", "acme", "--name", "k", "--scopes", "read", match="pepper")
    assert acme.pepper not in r.stdout + r.stderr


def test_env_pepper_overrides_config(acme):
    raw, b64 = new_pepper()
    k = acme.json("key", "create", "--account", "acme", "--name", "k", "--scopes", "read",
                  env={"TOKEND_PEPPER": b64})
    stored = acme.query("SELECT secret_hash FROM api_keys WHERE id = %s", (k["client_id"],))[0][0]
    assert bytes(stored) == hmac.new(raw, k["client_secret"].encode(), hashlib.sha256).digest()


def test_env_database_url_overrides_config(tokend):
    tokend.account("acme")
    cfg = tokend.write_config([f"database_url = {closed_port_url()}", f"pepper_file = {tokend.pepper_file}"])
    r = tokend.run("account", "list", "--json", config=cfg, env={"TOKEND_DATABASE_URL": tokend.db_url}, check=0)
    assert [a["id"] for a in json.loads(r.stdout)] == ["acme"]
    # ... and the other way round: the environment wins over a good file.
    tokend.refused("account", "list", env={"TOKEND_DATABASE_URL": closed_port_url()})


# ===========================================================================
# Database not running
# ===========================================================================
@pytest.mark.parametrize("args", [
    ["migrate"],
    ["account", "list"],
    ["account", "create", "acme"],
    ["scope", "list"],
    ["key", "list"],
    ["key", "create", "--account", "acme", "--name", "k", "--scopes", "read"],
], ids=lambda a: " ".join(a[:2]))
def test_database_not_running(offline_tokend, args):
    t0 = time.monotonic()
    offline_tokend.refused(*args)
    assert time.monotonic() - t0 < 5, "a closed database port must fail within seconds"


def test_database_stopped(pg, tokend):
    tokend.account("acme")
    pg.stop("immediate")
    try:
        t0 = time.monotonic()
        tokend.refused("account", "list")
        assert time.monotonic() - t0 < 5
    finally:
        pg.start()
    assert [a["id"] for a in tokend.json("account", "list")] == ["acme"]


# ===========================================================================
# Migrations
# ===========================================================================
def test_migrate_twice(make_tokend):
    tk = make_tokend(migrate=False)
    tk.run("migrate", check=0)
    r2 = tk.run("migrate", check=0)
    assert re.search(NOOP_RE, r2.stdout + r2.stderr, re.I), f"second migrate should say it is a no-op: {r2}"
    tables = {t for (t,) in tk.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"accounts", "scopes", "api_keys", "audit_log", "tokend_migrations"} <= tables
    rows = tk.query("SELECT version, name FROM tokend_migrations ORDER BY version")
    assert [n for _, n in rows] == [p.stem for p in migration_files()]


def test_migrate_json(make_tokend):
    tk = make_tokend(migrate=False)
    files = migration_files()
    first = tk.json("migrate")
    assert [str(n).removesuffix(".sql") for n in first["applied"]] == [p.stem for p in files]
    assert first["current"] == int(files[-1].name[:3])
    second = tk.json("migrate")
    assert second["applied"] == [] and second["current"] == first["current"]


def test_migrate_concurrently(make_tokend):
    tk = make_tokend(migrate=False)
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        results = list(ex.map(lambda _: tk.run("migrate"), range(6)))
    assert all(r.returncode == 0 for r in results), [(r.returncode, r.stderr) for r in results]
    n = tk.query("SELECT count(*), count(DISTINCT version) FROM tokend_migrations")[0]
    assert n == (len(migration_files()),) * 2


# ===========================================================================
# Accounts
# ===========================================================================
def test_account_create_defaults(tokend):
    a = tokend.json("account", "create", "acme")
    assert ACCOUNT_FIELDS <= set(a), a
    assert a["id"] == "acme" and a["key_limit"] == 3 and a["active_keys"] == 0
    assert a["disabled_at"] is None and close_to_now(a["created_at"])
    assert tokend.query("SELECT id, key_limit FROM accounts") == [("acme", 3)]


def test_account_create_options_and_text(tokend):
    r = tokend.run("account", "create", "beta-2", "--name", "Beta Ltd", "--key-limit", "7", check=0)
    assert "beta-2" in r.stdout
    a = tokend.json("account", "show", "beta-2")
    assert (a["id"], a["name"], a["key_limit"], a["active_keys"]) == ("beta-2", "Beta Ltd", 7, 0)
    a = tokend.json("account", "create", "z_0", "--name", "Zürich élan", "--key-limit", "0")
    assert a["name"] == "Zürich élan" and a["key_limit"] == 0


def test_account_duplicate_refused(tokend):
    tokend.account("acme")
    tokend.refused("account", "create", "acme", match="acme|exist")
    assert tokend.query("SELECT count(*) FROM accounts")[0][0] == 1


@pytest.mark.parametrize("bad", ["Acme", "-acme", "_acme", "a.b", "a b", "a" * 64, "ac/me", "é"])
def test_account_bad_id(tokend, bad):
    tokend.usage_error("account", "create", bad)
    assert tokend.query("SELECT count(*) FROM accounts")[0][0] == 0


def test_account_longest_id(tokend):
    tokend.account("a" * 63)


@pytest.mark.parametrize("bad", ["-1", "abc", "1.5", "", "99999999999999999999"])
def test_account_create_bad_limit(tokend, bad):
    tokend.usage_error("account", "create", "acme", "--key-limit", bad)


@pytest.mark.parametrize("bad", ["x" * 101, "tab\there", "new\nline", "bell\x07"])
def test_account_bad_name(tokend, bad):
    tokend.usage_error("account", "create", "acme", "--name", bad)


def test_account_list_and_show(tokend):
    assert tokend.json("account", "list") == []
    tokend.account("acme", "--name", "Acme")
    tokend.account("beta")
    lst = tokend.json("account", "list")
    assert isinstance(lst, list) and sorted(a["id"] for a in lst) == ["acme", "beta"]
    for a in lst:
        assert ACCOUNT_FIELDS <= set(a), a
    r = tokend.run("account", "list", check=0)
    assert "acme" in r.stdout and "beta" in r.stdout
    r = tokend.run("account", "show", "acme", check=0)
    assert "acme" in r.stdout and "Acme" in r.stdout
    shown = tokend.json("account", "show", "acme")
    assert ACCOUNT_FIELDS <= set(shown) and shown["name"] == "Acme"


def test_account_show_unknown(tokend):
    tokend.refused("account", "show", "nosuch", match="nosuch|unknown|not found|no such")


def test_account_set_limit(tokend):
    tokend.account("acme")
    tokend.run("account", "set-limit", "acme", "10", check=0)
    assert tokend.json("account", "show", "acme")["key_limit"] == 10
    out = tokend.json("account", "set-limit", "acme", "5")
    if isinstance(out, dict) and "key_limit" in out:
        assert out["key_limit"] == 5
    assert tokend.query("SELECT key_limit FROM accounts WHERE id = 'acme'")[0][0] == 5


@pytest.mark.parametrize("bad", ["-1", "abc", "", "3x", "1e3"])
def test_account_set_limit_malformed(tokend, bad):
    tokend.account("acme")
    tokend.usage_error("account", "set-limit", "acme", bad)
    assert tokend.query("SELECT key_limit FROM accounts WHERE id = 'acme'")[0][0] == 3


def test_account_set_limit_unknown(tokend):
    tokend.refused("account", "set-limit", "nosuch", "5")


# ===========================================================================
# Scopes
# ===========================================================================
BUILTIN_SCOPES = {"tokend:introspect", "tokend:admin:read", "tokend:admin:write", "tokend:operator"}


def test_builtin_scopes_seeded(tokend):
    """Migrations seed tokend's own scopes (introspection, admin API)."""
    assert {s["name"] for s in tokend.json("scope", "list")} == BUILTIN_SCOPES


def test_scope_add_and_list(tokend):
    assert [s for s in tokend.json("scope", "list") if s["name"] not in BUILTIN_SCOPES] == []
    tokend.run("scope", "add", "read", check=0)
    s = tokend.json("scope", "add", "orders:write", "--description", "Create and change orders")
    if isinstance(s, dict) and "name" in s:
        assert s["name"] == "orders:write"
    tokend.run("scope", "add", "https://api.example.com/x!#$%&'()*+,-./;<=>?@[]^_`{|}~", check=0)
    lst = tokend.json("scope", "list")
    assert isinstance(lst, list)
    by = {s["name"]: s for s in lst if s["name"] not in BUILTIN_SCOPES}
    assert set(by) == {"read", "orders:write", "https://api.example.com/x!#$%&'()*+,-./;<=>?@[]^_`{|}~"}
    for s in lst:
        assert SCOPE_FIELDS <= set(s), s
    # The scopes just added (the built-in ones date from the migration, which the
    # session's template database ran when the session started).
    for s in by.values():
        assert close_to_now(s["created_at"]), s
    assert by["orders:write"]["description"] == "Create and change orders"
    assert by["read"]["description"] in ("", None)
    r = tokend.run("scope", "list", check=0)
    assert "orders:write" in r.stdout and "Create and change orders" in r.stdout


@pytest.mark.parametrize("bad", ["a b", 'a"b', "a\\b", "", " a", "a\tb", "é", "x" * 129])
def test_scope_add_invalid(tokend, bad):
    tokend.usage_error("scope", "add", bad)
    assert tokend.query("SELECT count(*) FROM scopes WHERE name NOT LIKE 'tokend:%%'")[0][0] == 0


def test_scope_add_existing(tokend):
    tokend.scopes("read")
    tokend.refused("scope", "add", "read", match="read|exist")


# ===========================================================================
# key create
# ===========================================================================
def test_key_create_json(acme):
    k = acme.json("key", "create", "--account", "acme", "--name", "billing job", "--scopes", "read write")
    assert CREATE_FIELDS <= set(k), k
    assert KEY_ID_RE.match(k["client_id"]) and checksum_ok(k["client_id"])
    assert SECRET_RE.match(k["client_secret"]) and checksum_ok(k["client_secret"])
    assert k["account"] == "acme" and k["name"] == "billing job"
    assert sorted(k["scopes"]) == ["read", "write"]
    assert k["audiences"] == [] and k["subject"] is None and k["expires_at"] is None
    assert k["token_lifetime"] is None and k["state"] == "enabled"
    assert k["hint"] == k["client_secret"][-4:]
    assert close_to_now(k["created_at"])
    # Stored: HMAC-SHA256(pepper, secret) and the 4-character hint; never the secret.
    row = acme.dicts("SELECT * FROM api_keys WHERE id = %s", (k["client_id"],))[0]
    assert bytes(row["secret_hash"]) == hmac.new(acme.pepper_bytes, k["client_secret"].encode(),
                                                 hashlib.sha256).digest()
    assert row["secret_hint"] == k["hint"]
    assert sorted(row["scopes"]) == ["read", "write"] and row["account_id"] == "acme"


def test_key_create_text(acme):
    r = acme.run("key", "create", "--account", "acme", "--name", "k", "--scopes", "read", check=0)
    out = r.stdout + r.stderr
    ids = re.findall(r"tk_[0-9A-Za-z]{28}", out)
    secrets = SECRET_FIND_RE.findall(out)
    assert len(set(ids)) == 1 and checksum_ok(ids[0]), out
    assert len(secrets) == 1 and checksum_ok(secrets[0]), "the secret is printed exactly once"
    assert acme.query("SELECT id FROM api_keys") == [(ids[0],)]


def test_key_create_all_options(acme):
    k = acme.json("key", "create", "--account", "acme", "--name", "participant",
                  "--scopes", "read admin",
                  "--audience", "https://api.example.com", "--audience", "urn:example:billing",
                  "--subject", "member-42", "--expires-at", "2030-01-01T00:00:00Z",
                  "--token-lifetime", "10m")
    assert sorted(k["scopes"]) == ["admin", "read"]
    assert sorted(k["audiences"]) == ["https://api.example.com", "urn:example:billing"]
    assert k["subject"] == "member-42"
    assert parse_ts(k["expires_at"]) == dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    assert k["token_lifetime"] == 600
    shown = acme.json("key", "show", k["client_id"])
    check_key_object(shown)
    assert (shown["subject"], shown["token_lifetime"]) == ("member-42", 600)
    assert sorted(shown["audiences"]) == ["https://api.example.com", "urn:example:billing"]
    assert parse_ts(shown["expires_at"]) == dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    row = acme.dicts("SELECT * FROM api_keys WHERE id = %s", (k["client_id"],))[0]
    assert row["subject"] == "member-42" and row["token_lifetime"] == 600
    assert row["expires_at"] == dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def test_key_create_expires_in_and_offsets(acme):
    acme.run("account", "set-limit", "acme", "10", check=0)
    k = acme.json("key", "create", "--account", "acme", "--name", "a", "--scopes", "read", "--expires-in", "30d")
    delta = parse_ts(k["expires_at"]) - utcnow()
    assert abs(delta.total_seconds() - 30 * 86400) < 120, k["expires_at"]
    k = acme.json("key", "create", "--account", "acme", "--name", "b", "--scopes", "read",
                  "--expires-at", "2030-01-01T02:00:00+02:00")
    assert parse_ts(k["expires_at"]) == dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    k = acme.json("key", "create", "--account", "acme", "--name", "c", "--scopes", "read",
                  "--token-lifetime", "1h")   # exactly the default maximum
    assert k["token_lifetime"] == 3600
    k = acme.json("key", "create", "--account", "acme", "--name", "d", "--scopes", "read",
                  "--token-lifetime", "90")   # a bare number is seconds
    assert k["token_lifetime"] == 90


def test_key_names(acme):
    acme.run("account", "set-limit", "acme", "10", check=0)
    k = acme.create_key("acme", "x" * 100)
    assert k["name"] == "x" * 100
    k = acme.create_key("acme", "clé de test ✓")
    assert acme.json("key", "show", k["client_id"])["name"] == "clé de test ✓"


REFUSALS = [
    (["--account", "nosuch", "--name", "k", "--scopes", "read"], r"account"),
    (["--account", "acme", "--name", "k", "--scopes", "read nope"], r"scope"),
    (["--account", "acme", "--name", "k", "--scopes", "read", "--expires-at", "2001-01-01T00:00:00Z"], r"past|expir"),
    (["--account", "acme", "--name", "k", "--scopes", "read", "--token-lifetime", "2h"], r"lifetime|max"),
    (["--account", "acme", "--name", "k", "--scopes", "read", "--token-lifetime", "61m"], r"lifetime|max"),
]


@pytest.mark.parametrize("args,match", REFUSALS, ids=["unknown-account", "unknown-scope", "past-expiry",
                                                     "lifetime-2h", "lifetime-61m"])
def test_key_create_refused(acme, args, match):
    acme.refused("key", "create", *args, match=match)
    assert acme.query("SELECT count(*) FROM api_keys")[0][0] == 0


def test_key_create_limit_reached(acme):
    for i in range(3):
        acme.create_key("acme", f"k{i}")
    acme.refused("key", "create", "--account", "acme", "--name", "k4", "--scopes", "read",
                 match=r"limit.*\b3\b|\b3\b.*limit")
    assert acme.query("SELECT count(*) FROM api_keys")[0][0] == 3
    assert acme.json("account", "show", "acme")["active_keys"] == 3


KEY_CREATE_USAGE = {
    "expires-in 10x": ["--expires-in", "10x"],
    "expires-in -5m": ["--expires-in", "-5m"],
    "expires-in 0s": ["--expires-in", "0s"],
    "expires-in empty": ["--expires-in", ""],
    "lifetime 10x": ["--token-lifetime", "10x"],
    "lifetime -5m": ["--token-lifetime", "-5m"],
    "lifetime 0s": ["--token-lifetime", "0s"],
    "both expiries": ["--expires-in", "30d", "--expires-at", "2030-01-01T00:00:00Z"],
    "expires-at month 13": ["--expires-at", "2030-13-01T00:00:00Z"],
    "expires-at Feb 30": ["--expires-at", "2030-02-30T00:00:00Z"],
    "expires-at words": ["--expires-at", "tomorrow"],
    "unknown option": ["--colour", "blue"],
}


@pytest.mark.parametrize("extra", list(KEY_CREATE_USAGE.values()), ids=list(KEY_CREATE_USAGE))
def test_key_create_usage_errors(acme, extra):
    acme.usage_error("key", "create", "--account", "acme", "--name", "k", "--scopes", "read", *extra)
    assert acme.query("SELECT count(*) FROM api_keys")[0][0] == 0


BAD_CREATE_ARGS = {
    "no account": ["--name", "k", "--scopes", "read"],
    "no name": ["--account", "acme", "--scopes", "read"],
    "no scopes": ["--account", "acme", "--name", "k"],
    "empty scopes": ["--account", "acme", "--name", "k", "--scopes", ""],
    "duplicate scopes": ["--account", "acme", "--name", "k", "--scopes", "read read"],
    "scope quote": ["--account", "acme", "--name", "k", "--scopes", 'read a"b'],
    "scope backslash": ["--account", "acme", "--name", "k", "--scopes", "a\\b"],
    "scope double space": ["--account", "acme", "--name", "k", "--scopes", "read  write"],
    "scope tab": ["--account", "acme", "--name", "k", "--scopes", "read\twrite"],
    "name 101": ["--account", "acme", "--name", "x" * 101, "--scopes", "read"],
    "name empty": ["--account", "acme", "--name", "", "--scopes", "read"],
    "name tab": ["--account", "acme", "--name", "a\tb", "--scopes", "read"],
    "name newline": ["--account", "acme", "--name", "a\nb", "--scopes", "read"],
    "name escape": ["--account", "acme", "--name", "a\x1b[31mb", "--scopes", "read"],
}


@pytest.mark.parametrize("args", list(BAD_CREATE_ARGS.values()), ids=list(BAD_CREATE_ARGS))
def test_key_create_bad_arguments(acme, args):
    acme.usage_error("key", "create", *args)
    assert acme.query("SELECT count(*) FROM api_keys")[0][0] == 0


# ===========================================================================
# key list / show and the life cycle
# ===========================================================================
@pytest.mark.slow
def test_key_list(acme):
    acme.run("account", "set-limit", "acme", "10", check=0)
    acme.account("beta")
    keys = {n: acme.create_key("acme", n) for n in ("en", "dis", "rev", "del")}
    other = acme.create_key("beta", "other", "write")
    acme.run("key", "disable", keys["dis"]["client_id"], check=0)
    acme.run("key", "revoke", keys["rev"]["client_id"], "--reason", "leaked in CI log", check=0)
    acme.run("key", "delete", keys["del"]["client_id"], check=0)

    lst = acme.json("key", "list")
    assert isinstance(lst, list)
    by = {k["client_id"]: k for k in lst}
    for k in lst:
        check_key_object(k)
    assert keys["del"]["client_id"] not in by, "deleted keys disappear from listings"
    assert {by[keys[n]["client_id"]]["state"] for n in ("en", "dis", "rev")} == {"enabled", "disabled", "revoked"}
    assert by[keys["en"]["client_id"]]["state"] == "enabled"
    assert by[keys["dis"]["client_id"]]["state"] == "disabled"
    rev = by[keys["rev"]["client_id"]]
    assert rev["state"] == "revoked" and rev["revoke_reason"] == "leaked in CI log"
    assert rev["revoked_at"] is not None and close_to_now(rev["revoked_at"])
    assert by[keys["dis"]["client_id"]]["disabled_at"] is not None
    assert by[other["client_id"]]["account"] == "beta"
    for name in ("en", "dis", "rev"):
        k = by[keys[name]["client_id"]]
        assert k["hint"] == keys[name]["client_secret"][-4:] and k["last_used_at"] is None
        assert k["name"] == name and k["scopes"] == ["read"] and k["account"] == "acme"

    ids = lambda lst: sorted(k["client_id"] for k in lst)  # noqa: E731
    assert ids(acme.json("key", "list", "--account", "beta")) == [other["client_id"]]
    assert ids(acme.json("key", "list", "--account", "acme")) == ids(
        [keys["en"], keys["dis"], keys["rev"]])
    assert ids(acme.json("key", "list", "--state", "enabled")) == ids([keys["en"], other])
    assert ids(acme.json("key", "list", "--state", "disabled")) == [keys["dis"]["client_id"]]
    assert ids(acme.json("key", "list", "--state", "revoked")) == [keys["rev"]["client_id"]]
    assert acme.json("key", "list", "--state", "expired") == []
    assert ids(acme.json("key", "list", "--account", "beta", "--state", "disabled")) == []

    text = acme.run("key", "list", check=0).stdout
    for name in ("en", "dis", "rev"):
        k = keys[name]
        assert k["client_id"] in text and k["client_secret"][-4:] in text
    assert keys["del"]["client_id"] not in text
    for word in ("enabled", "disabled", "revoked"):
        assert word in text


def test_key_list_never_shows_secret_or_hash(acme):
    k = acme.create_key("acme", "k")
    h = bytes(acme.query("SELECT secret_hash FROM api_keys")[0][0])
    for args in (["key", "list"], ["key", "show", k["client_id"]]):
        for fmt in ([], ["--json"]):
            r = acme.run(*args, *fmt, check=0)
            out = r.stdout + r.stderr
            for needle in (k["client_secret"], k["client_secret"][4:20], h.hex(),
                           base64.b64encode(h).decode(), base64.urlsafe_b64encode(h).decode().rstrip("=")):
                assert needle not in out, f"{args + fmt} shows the secret or its hash"


def test_key_show(acme):
    k = acme.create_key("acme", "shown", "read write", "--subject", "s1")
    s = acme.json("key", "show", k["client_id"])
    check_key_object(s)
    assert (s["client_id"], s["name"], s["account"], s["subject"], s["state"]) == (
        k["client_id"], "shown", "acme", "s1", "enabled")
    assert sorted(s["scopes"]) == ["read", "write"]
    assert s["created_at"] == k["created_at"] or parse_ts(s["created_at"]) == parse_ts(k["created_at"])
    text = acme.run("key", "show", k["client_id"], check=0).stdout
    assert k["client_id"] in text and "shown" in text and "enabled" in text and k["hint"] in text


def test_key_rename(acme):
    k = acme.create_key("acme", "old")
    acme.run("key", "rename", k["client_id"], "new name", check=0)
    assert acme.json("key", "show", k["client_id"])["name"] == "new name"
    out = acme.json("key", "rename", k["client_id"], "newer")
    if isinstance(out, dict) and "name" in out:
        assert out["name"] == "newer"
    assert acme.query("SELECT name FROM api_keys")[0][0] == "newer"


@pytest.mark.parametrize("bad", ["x" * 101, "", "a\tb", "a\nb", "a\x7fb"])
def test_key_rename_bad_name(acme, bad):
    k = acme.create_key("acme", "old")
    acme.usage_error("key", "rename", k["client_id"], bad)
    assert acme.query("SELECT name FROM api_keys")[0][0] == "old"


def test_key_disable_enable(acme):
    k = acme.create_key("acme", "k")
    kid = k["client_id"]
    acme.run("key", "disable", kid, check=0)
    s = acme.json("key", "show", kid)
    assert s["state"] == "disabled" and s["disabled_at"] is not None
    assert acme.json("key", "list", "--state", "disabled")[0]["client_id"] == kid
    acme.run("key", "enable", kid, check=0)
    s = acme.json("key", "show", kid)
    assert s["state"] == "enabled" and s["disabled_at"] is None
    out = acme.json("key", "disable", kid)
    if isinstance(out, dict) and "state" in out:
        assert out["state"] == "disabled"
    out = acme.json("key", "enable", kid)
    if isinstance(out, dict) and "state" in out:
        assert out["state"] == "enabled"


def test_key_revoke(acme):
    k = acme.create_key("acme", "k")
    kid = k["client_id"]
    out = acme.json("key", "revoke", kid, "--reason", "rotated")
    if isinstance(out, dict) and "state" in out:
        assert out["state"] == "revoked"
    s = acme.json("key", "show", kid)
    assert s["state"] == "revoked" and s["revoke_reason"] == "rotated" and s["revoked_at"]
    acme.refused("key", "revoke", kid, match="revoked")
    acme.refused("key", "enable", kid, match="revoked")
    acme.refused("key", "disable", kid, match="revoked")
    s2 = acme.json("key", "show", kid)
    assert s2["state"] == "revoked" and s2["revoke_reason"] == "rotated" and s2["revoked_at"] == s["revoked_at"]
    # Revoked keys stay listed.
    assert [x["client_id"] for x in acme.json("key", "list")] == [kid]


def test_key_revoke_disabled_then_enable_refused(acme):
    k = acme.create_key("acme", "k")
    acme.run("key", "disable", k["client_id"], check=0)
    acme.run("key", "revoke", k["client_id"], check=0)
    acme.refused("key", "enable", k["client_id"], match="revoked")
    assert acme.json("key", "show", k["client_id"])["state"] == "revoked"


@pytest.mark.slow
def test_key_delete(acme):
    k = acme.create_key("acme", "doomed")
    keep = acme.create_key("acme", "kept")
    kid = k["client_id"]
    acme.run("key", "delete", kid, check=0)
    acme.refused("key", "show", kid)
    acme.refused("key", "rename", kid, "again")
    acme.refused("key", "disable", kid)
    acme.refused("key", "enable", kid)
    acme.refused("key", "revoke", kid)
    acme.refused("key", "delete", kid)
    assert [x["client_id"] for x in acme.json("key", "list")] == [keep["client_id"]]
    for state in ("enabled", "disabled", "revoked", "expired"):
        assert kid not in [x["client_id"] for x in acme.json("key", "list", "--state", state)]
    # The row stays (its ID is never reused), marked deleted, with its name unchanged.
    row = acme.dicts("SELECT name, deleted_at FROM api_keys WHERE id = %s", (kid,))
    assert len(row) == 1 and row[0]["deleted_at"] is not None and row[0]["name"] == "doomed"
    assert acme.json("account", "show", "acme")["active_keys"] == 1


def test_key_delete_recently_used_needs_force(acme):
    """As the admin API: a key used in the last 24 hours is probably still needed."""
    k = acme.create_key("acme", "busy")
    kid = k["client_id"]
    acme.query("UPDATE api_keys SET last_used_at = now() - interval '23 hours' WHERE id = %s", (kid,))
    acme.refused("key", "delete", kid, match=r"used in the last 24 hours.*--force")
    assert acme.json("key", "show", kid)["state"] == "enabled"
    acme.run("key", "delete", kid, "--force", check=0)
    acme.refused("key", "show", kid)
    old = acme.create_key("acme", "idle")
    acme.query("UPDATE api_keys SET last_used_at = now() - interval '25 hours' WHERE id = %s",
               (old["client_id"],))
    acme.run("key", "delete", old["client_id"], check=0)


def test_key_delete_json(acme):
    k = acme.create_key("acme", "k")
    acme.json("key", "delete", k["client_id"])
    acme.refused("key", "show", k["client_id"])


def test_key_expired_state(acme):
    k = acme.create_key("acme", "short-lived", "read", "--expires-in", "2s")
    kid = k["client_id"]
    assert k["state"] == "enabled"
    wait_until(lambda: acme.json("key", "show", kid)["state"] == "expired", timeout=8, interval=0.25,
               what="key to expire")
    assert [x["client_id"] for x in acme.json("key", "list", "--state", "expired")] == [kid]
    assert acme.json("key", "list", "--state", "enabled") == []
    assert acme.json("account", "show", "acme")["active_keys"] == 0


BAD_IDS = {
    "bad checksum": lambda: break_checksum(make_key_id()),
    "too short": lambda: make_key_id()[:-1],
    "too long": lambda: make_key_id() + "A",
    "wrong prefix": lambda: "tx_" + make_key_id()[3:],
    "bad char": lambda: make_key_id()[:10] + "-" + make_key_id()[11:],
    "sql": lambda: "tk_' OR '1'='1",
}


@pytest.mark.parametrize("verb", ["show", "rename", "disable", "enable", "revoke", "delete"])
@pytest.mark.parametrize("bad", list(BAD_IDS), ids=list(BAD_IDS))
def test_malformed_key_id_no_database(offline_tokend, verb, bad):
    # The database is unreachable: a malformed ID must be refused before any connection.
    kid = BAD_IDS[bad]()
    extra = ["new-name"] if verb == "rename" else []
    r = offline_tokend.refused("key", verb, kid, *extra, match=r"format|checksum|malformed|invalid|not a (valid )?key")
    assert not re.search(r"connect|database|server", r.stderr, re.I), r.stderr


@pytest.mark.parametrize("verb", ["show", "rename", "disable", "enable", "revoke", "delete"])
def test_unknown_key_id(acme, verb):
    acme.create_key("acme", "k")
    extra = ["new-name"] if verb == "rename" else []
    acme.refused("key", verb, make_key_id(), *extra, match=r"not found|unknown|no such|no key")
    assert acme.query("SELECT count(*) FROM audit_log WHERE action <> 'key.create' AND key_id IS NOT NULL")[0][0] == 0


# ===========================================================================
# The active-key limit
# ===========================================================================
@pytest.mark.slow
def test_limit_counts_enabled_and_disabled_not_revoked_deleted_expired(acme):
    acme.run("account", "set-limit", "acme", "2", check=0)
    a = acme.create_key("acme", "a")
    b = acme.create_key("acme", "b")
    acme.run("key", "disable", b["client_id"], check=0)
    acme.refused("key", "create", "--account", "acme", "--name", "c", "--scopes", "read", match="limit")
    acme.run("key", "revoke", a["client_id"], check=0)
    c = acme.create_key("acme", "c")                          # revoked keys free a slot
    acme.refused("key", "create", "--account", "acme", "--name", "d", "--scopes", "read", match="limit")
    acme.run("key", "delete", b["client_id"], check=0)
    acme.create_key("acme", "d")                              # deleted keys free a slot
    acme.refused("key", "create", "--account", "acme", "--name", "e", "--scopes", "read", match="limit")
    acme.run("account", "set-limit", "acme", "3", check=0)
    acme.create_key("acme", "e")                              # a raised limit applies at once
    assert acme.json("account", "show", "acme")["active_keys"] == 3
    del c


def test_limit_zero(tokend):
    tokend.account("zero", "--key-limit", "0")
    tokend.scopes("read")
    tokend.refused("key", "create", "--account", "zero", "--name", "k", "--scopes", "read", match="limit")


@pytest.mark.slow
def test_concurrent_creates_respect_limit(acme, sanitized):
    # 50 processes at once; 25 under ASan, where each one's start and SCRAM
    # exchange cost several times more on the 2 cores.
    n = 25 if sanitized else 50
    for round_ in range(3):
        account = f"race{round_}"
        acme.account(account)
        acme.grant_scopes(account, "read")
        barrier = threading.Barrier(n)

        def one(i, account=account, barrier=barrier):
            barrier.wait()
            return acme.run("key", "create", "--account", account, "--name", f"k{i}",
                            "--scopes", "read", "--json", timeout=120)

        with concurrent.futures.ThreadPoolExecutor(n) as ex:
            results = list(ex.map(one, range(n)))
        ok = [r for r in results if r.returncode == 0]
        refused = [r for r in results if r.returncode != 0]
        assert len(ok) == 3, f"round {round_}: {len(ok)} creations succeeded, want 3: " + \
            repr([(r.returncode, r.stderr.strip()) for r in refused][:5])
        for r in refused:
            assert r.returncode == 1, f"round {round_}: exit {r.returncode}: {r.stderr!r}"
            err = r.stderr.strip()
            assert err.startswith("tokend: ") and len(err.splitlines()) == 1 and "limit" in err.lower(), err
        made = [json.loads(r.stdout) for r in ok]
        assert len({k["client_id"] for k in made}) == 3 and len({k["client_secret"] for k in made}) == 3
        assert acme.query("SELECT count(*) FROM api_keys WHERE account_id = %s", (account,))[0][0] == 3
        assert acme.query("SELECT count(*) FROM audit_log WHERE action = 'key.create' AND account_id = %s",
                          (account,))[0][0] == 3


# ===========================================================================
# Audit trail
# ===========================================================================
@pytest.mark.slow
def test_audit_one_row_per_change(tokend):
    tk = tokend
    tk.account("acme")
    tk.scopes("read", "write")
    tk.run("account", "set-limit", "acme", "5", check=0)
    tk.run("account", "grant-scopes", "acme", "read", check=0)
    k = tk.create_key("acme", "first")
    kid = k["client_id"]
    tk.run("key", "rename", kid, "renamed", check=0)
    tk.run("key", "disable", kid, check=0)
    tk.run("key", "enable", kid, check=0)
    tk.run("key", "revoke", kid, "--reason", "test", check=0)
    k2 = tk.create_key("acme", "second")
    tk.run("key", "delete", k2["client_id"], check=0)
    # Reads and refusals write nothing.
    tk.run("key", "list", check=0)
    tk.run("key", "show", kid, check=0)
    tk.run("account", "list", check=0)
    tk.run("scope", "list", check=0)
    tk.refused("key", "enable", kid)
    tk.refused("account", "create", "acme")
    tk.refused("scope", "add", "read")
    tk.refused("key", "create", "--account", "acme", "--name", "x", "--scopes", "nope")
    tk.refused("key", "create", "--account", "acme", "--name", "x", "--scopes", "write")
    tk.refused("account", "revoke-scopes", "acme", "write")

    # Rows written by migrations (the seeded tokend:* scopes) are the migration's.
    seeded = tk.dicts("SELECT actor FROM audit_log WHERE actor LIKE 'migration:%%'")
    assert len(seeded) == len(BUILTIN_SCOPES)
    rows = tk.dicts("SELECT actor, action, account_id, key_id, detail FROM audit_log"
                    " WHERE actor NOT LIKE 'migration:%%' ORDER BY id")
    assert [(r["action"], r["key_id"]) for r in rows] == [
        ("account.create", None),
        ("scope.add", None),
        ("scope.add", None),
        ("account.set_limit", None),
        ("account.grant_scope", None),
        ("key.create", kid),
        ("key.rename", kid),
        ("key.disable", kid),
        ("key.enable", kid),
        ("key.revoke", kid),
        ("key.create", k2["client_id"]),
        ("key.delete", k2["client_id"]),
    ], rows
    assert all(r["account_id"] == "acme" for r in rows if r["action"].startswith(("key.", "account.")))
    actors = {r["actor"] for r in rows}
    assert len(actors) == 1, f"one operator, one actor: {actors}"
    actor = actors.pop()
    assert actor and not actor.startswith("sql:"), f"tokend must set tokend.actor, got {actor!r}"
    assert getpass.getuser() in actor, f"the actor should name the operating-system user: {actor!r}"
    assert tk.json("key", "show", kid)["created_by"] == actor
    assert rows[6]["detail"].get("to") == "renamed" and rows[9]["detail"].get("reason") == "test"
    for r in rows:
        assert not SECRET_FIND_RE.search(json.dumps(r["detail"]))


# ===========================================================================
# Secrets never leak
# ===========================================================================
def _secret_needles(secret):
    """Forms of a secret that must never appear anywhere but its one-time display."""
    body = secret[4:4 + 43]
    needles = {secret: "the secret", secret.encode().hex(): "hex of the secret"}
    for i in range(len(body) - 8 + 1):
        needles[body[i:i + 8]] = f"8 characters of its random part at {i}"
    for shift in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            b = enc(secret[shift:].encode()).decode().rstrip("=")
            needles[b[4:40]] = f"base64 of the secret (shift {shift})"
    return needles


def _pepper_needles(raw, b64):
    return {b64: "pepper (base64)", b64.rstrip("="): "pepper (base64)",
            base64.urlsafe_b64encode(raw).decode().rstrip("="): "pepper (base64url)",
            raw.hex(): "pepper (hex)"}


@pytest.mark.slow
def test_secrets_never_leak(pg, acme):
    tk = acme
    tk.run("account", "set-limit", "acme", "20", check=0)
    created = []        # (secret, client_id)
    for i in range(4):
        k = tk.create_key("acme", f"json{i}", "read write", "--subject", f"s{i}", "--audience", "https://a.example")
        created.append((k["client_secret"], k["client_id"]))
    for i in range(2):
        r = tk.run("key", "create", "--account", "acme", "--name", f"text{i}", "--scopes", "read", check=0)
        s = SECRET_FIND_RE.findall(r.stdout)
        kid = re.findall(r"tk_[0-9A-Za-z]{28}", r.stdout)
        assert len(s) == 1 and kid
        created.append((s[0], kid[0]))
    ids = [c for _, c in created]
    tk.run("key", "disable", ids[0], check=0)
    tk.run("key", "revoke", ids[1], "--reason", "leak test", check=0)
    tk.run("key", "delete", ids[2], check=0)
    tk.run("key", "rename", ids[3], "renamed", check=0)
    for args in (["key", "list"], ["account", "list"], ["account", "show", "acme"]):
        tk.run(*args, check=0)
        tk.run(*args, "--json", check=0)
    for kid in ids:
        tk.run("key", "show", kid)
        tk.run("key", "show", kid, "--json")
    # Failures that involve the database (limit, unknown scope) go to the server log too.
    tk.run("account", "set-limit", "acme", "0", check=0)
    tk.refused("key", "create", "--account", "acme", "--name", "over", "--scopes", "read")
    tk.refused("key", "create", "--account", "acme", "--name", "x", "--scopes", "nope")
    # An operator pasting a secret where a key ID belongs must not get it echoed.
    for secret, _ in created[:2]:
        tk.refused("key", "show", secret)
        tk.refused("key", "rename", secret, "x")
        tk.refused("key", "revoke", secret, "--reason", "oops")

    dump = pg_dump(tk.db_url)
    assert "api_keys" in dump and created[0][1] in dump, "the dump should contain the keys"
    server_log = pg.log_text()
    outputs = all_output_texts()
    problems = []
    for secret, kid in created:
        displays = [r for r, text in outputs if secret in text]
        if len(displays) != 1 or displays[0]["args"][2:4] != ["key", "create"]:
            problems.append(f"secret of {kid} appears in {len(displays)} outputs: {[r['args'] for r in displays]}")
        shown_in = displays[0] if displays else None
        for needle, what in _secret_needles(secret).items():
            if needle in dump:
                problems.append(f"{what} of {kid} is in pg_dump")
            if needle in server_log:
                problems.append(f"{what} of {kid} is in the PostgreSQL log")
            if needle != secret:
                for r, text in outputs:
                    if needle in text and r is not shown_in:
                        problems.append(f"{what} of {kid} is in the output of {r['args']}")
    for needle, what in _pepper_needles(tk.pepper_bytes, tk.pepper).items():
        if needle in dump:
            problems.append(f"{what} is in pg_dump")
        if needle in server_log:
            problems.append(f"{what} is in the PostgreSQL log")
        for r, text in outputs:
            if needle in text:
                problems.append(f"{what} is in the output of {r['args']}")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# Issue 10, finding 1 (and 9): the account's scope allow-list and the rules
# every key creation follows, through the command line. Before the fix the
# first refusals below were successful creations.
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_key_create_needs_the_scope_granted_to_the_account(acme):
    acme.seed_scopes("billing:admin")
    acme.refused("key", "create", "--account", "acme", "--name", "x", "--scopes", "read billing:admin",
                 match=r'scope "billing:admin" is not granted to account "acme"')
    assert acme.query("SELECT count(*) FROM api_keys")[0][0] == 0
    a = acme.json("account", "grant-scopes", "acme", "billing:admin")
    assert a["scopes"] == ["admin", "billing:admin", "read", "write"], a
    assert "billing:admin" in acme.run("account", "show", "acme", check=0).stdout
    k = acme.json("key", "create", "--account", "acme", "--name", "billing", "--scopes", "read billing:admin")
    # Granting again changes nothing; removing stops new keys, the existing key keeps its scopes.
    assert acme.json("account", "grant-scopes", "acme", "billing:admin")["scopes"] == a["scopes"]
    assert acme.json("account", "revoke-scopes", "acme", "billing:admin")["scopes"] == ["admin", "read", "write"]
    acme.refused("key", "create", "--account", "acme", "--name", "y", "--scopes", "billing:admin", match="not granted")
    assert acme.json("key", "show", k["client_id"])["scopes"] == ["read", "billing:admin"]
    # Bad input is refused and changes nothing.
    before = acme.query("SELECT count(*) FROM audit_log")[0][0]
    acme.refused("account", "grant-scopes", "acme", "no:such", match="unknown scope")
    acme.refused("account", "revoke-scopes", "acme", "billing:admin", match="not granted")
    acme.refused("account", "grant-scopes", "nobody", "read", match="no account")
    acme.usage_error("account", "grant-scopes", "acme")
    acme.usage_error("account", "grant-scopes", "acme", "bad scope\\")
    assert acme.query("SELECT count(*) FROM audit_log")[0][0] == before
    acts = acme.query("SELECT action, detail->>'scope' FROM audit_log WHERE action LIKE 'account.%%_scope'"
                      " AND detail->>'scope' = 'billing:admin' ORDER BY id")
    assert acts == [("account.grant_scope", "billing:admin"), ("account.revoke_scope", "billing:admin")], acts
    assert "grant-scopes" in acme.run("account", "--help", check=0).stdout


def test_key_subject_never_looks_like_a_key_id(acme):
    other = acme.create_key("acme", "other")
    for subject in (other["client_id"], "tk_abc", "tks_" + "a" * 40):
        acme.usage_error("key", "create", "--account", "acme", "--name", "x", "--scopes", "read",
                         "--subject", subject, match="tk_")
    # The database refuses it too, whatever client writes.
    with pytest.raises(psycopg2.Error):
        acme.query("SELECT tokend_admin_create_key('sql', NULL, 'acme', %s, 'x', %s::bytea, 'abcd', '{read}', '{}',"
                   " %s, NULL, NULL, NULL, NULL, NULL, true, NULL, NULL)",
                   (make_key_id(), b"x" * 32, other["client_id"]))
    assert acme.query("SELECT count(*) FROM api_keys")[0][0] == 1


@pytest.mark.slow
def test_invisible_characters_refused_in_names_subjects_reasons(acme):
    k = acme.create_key("acme", "plain")
    kid = k["client_id"]
    for ch in ("\u202e", "\u200b", "\u2066", "\ufeff", "\u061c", "\u00ad"):
        acme.usage_error("key", "create", "--account", "acme", "--name", f"pay{ch}roll", "--scopes", "read")
        acme.usage_error("key", "create", "--account", "acme", "--name", "x", "--scopes", "read",
                         "--subject", f"svc{ch}")
        acme.usage_error("key", "rename", kid, f"a{ch}b")
        acme.usage_error("key", "revoke", kid, "--reason", f"r{ch}" + "x" * 150)
        acme.usage_error("account", "create", "acme2", "--name", f"A{ch}")
    assert acme.json("key", "show", kid)["state"] == "enabled"
    assert acme.json("key", "rename", kid, "Köln – ✓")["name"] == "Köln – ✓"
