"""
End-to-end tests of the remote command line beyond keys (issue 13, point 7):
`tokend account list|show`, `tokend scope list`, `tokend role list|show` and
`tokend member add|list|show|deactivate` with --url (or
$TOKEND_URL) run over the admin REST API with the credentials of the
environment and print what the local commands print; $TOKEND_ACCOUNT selects
the account where --account is absent (key create and list, account show,
member commands), locally and remotely. What the admin API refuses (another account, a missing
one) is refused with one line; commands with no remote mode are a usage error
that changes nothing.
"""
import json

import pytest

from support.admin import OPERATOR, READ, WRITE, Admin, env, pair, snapshot
from support.keys import SECRET_FIND_RE
from support.registry import TOKEN_RE, remember_secret
from support.server import get_token

pytestmark = pytest.mark.binary


def renv(env, adm, **extra):
    e = {"TOKEND_URL": env.srv.base, "TOKEND_CLIENT_ID": adm.key["client_id"],
         "TOKEND_CLIENT_SECRET": adm.key["client_secret"], "TOKEND_ACCOUNT": None}
    e.update(extra)
    return e


def run(env, *args, e=None, config=None):
    local = e is None
    r = env.t.run(*args, env=e if e is not None else {"TOKEND_URL": None, "TOKEND_ACCOUNT": None},
                  config=True if local else False) if config is None else env.t.run(*args, env=e, config=config)
    out = r.stdout + r.stderr
    if e:
        assert e["TOKEND_CLIENT_SECRET"] not in out
    assert not TOKEN_RE.search(out), "an access token was printed"
    return r


def ok_json(r):
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return json.loads(r.stdout)


def test_account_and_scope_commands_remote_match_local(env):
    acct, adm = pair(env, "remadm", scopes=f"{READ} {WRITE}")
    op = Admin(env, "ops", OPERATOR, "remote operator")
    local_show = ok_json(run(env, "account", "show", acct, "--json"))
    local_list = ok_json(run(env, "account", "list", "--json"))
    local_scopes = ok_json(run(env, "scope", "list", "--json"))
    # An operator: every account; any account shown.
    assert ok_json(run(env, "account", "list", "--json", e=renv(env, op))) == local_list
    assert ok_json(run(env, "account", "show", acct, "--json", e=renv(env, op))) == local_show
    # An account administrator: its own account only.
    mine = ok_json(run(env, "account", "list", "--json", e=renv(env, adm)))
    assert mine == [local_show], mine
    assert ok_json(run(env, "account", "show", acct, "--json", e=renv(env, adm))) == local_show
    assert ok_json(run(env, "scope", "list", "--json", e=renv(env, adm))) == local_scopes
    # Text output is the local one, with --url on the command line as well.
    url_env = renv(env, adm, TOKEND_URL=None)
    r = run(env, "account", "show", acct, "--url", env.srv.base, e=url_env)
    assert r.returncode == 0 and r.stdout == run(env, "account", "show", acct).stdout, (r.stdout, r.stderr)
    r = run(env, "scope", "list", "--url=" + env.srv.base, e=url_env)
    assert r.returncode == 0 and r.stdout == run(env, "scope", "list").stdout, r.stderr
    r = run(env, "account", "list", e=renv(env, op))
    assert r.returncode == 0 and r.stdout == run(env, "account", "list").stdout


def test_remote_refusals_change_nothing(env):
    t = env.t
    acct, adm = pair(env, "remref", scopes=f"{READ} {WRITE}")
    other, _ = pair(env, "remref-other")
    before = snapshot(t)
    # Another account, and a missing one: refused, one line.
    for target in (other, "no-such-account"):
        r = run(env, "account", "show", target, e=renv(env, adm))
        assert r.returncode == 1 and r.stderr.startswith("tokend: ") and len(r.stderr.strip().splitlines()) == 1, \
            r.stderr
    # No remote mode for the operator's changes: a usage error, before any request.
    for args in (["account", "create", "x1"], ["account", "set-limit", acct, "5"], ["account", "disable", acct],
                 ["account", "grant-scopes", acct, "read"], ["scope", "add", "newscope"]):
        r = run(env, *args, e=renv(env, adm))
        assert r.returncode == 2 and "remote mode" in r.stderr, (args, r.stderr)
    # Usage errors of the commands themselves.
    for args in (["account", "show", acct, "extra"], ["account", "show", "Bad ID"], ["scope", "list", "x"],
                 ["account", "list", "x"], ["account", "show", "--url"]):
        r = run(env, *args, e=renv(env, adm))
        assert r.returncode == 2, (args, r.returncode, r.stderr)
    # Bad credentials: refused (exit 1), nothing printed of them.
    # The last character changed (a secret that ends in "x" made "x" no change: 1 run in 62 failed).
    secret = adm.key["client_secret"]
    bad = renv(env, adm, TOKEND_CLIENT_SECRET=secret[:-1] + ("y" if secret.endswith("x") else "x"))
    r = run(env, "scope", "list", e=bad)
    assert r.returncode == 1, r.stderr
    assert snapshot(t) == before


def test_tokend_account_selects_the_account(env):
    t = env.t
    acct, adm = pair(env, "remenv", scopes=f"{READ} {WRITE}")
    op = Admin(env, "ops", OPERATOR, "env operator")
    # Local: key create and list, account show.
    r = t.run("key", "create", "--name", "from-env", "--scopes", "read", "--json",
              env={"TOKEND_URL": None, "TOKEND_ACCOUNT": acct})
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)
    remember_secret(k["client_secret"])
    assert k["account"] == acct
    listed = ok_json(t.run("key", "list", "--json", env={"TOKEND_URL": None, "TOKEND_ACCOUNT": acct}))
    assert {x["account"] for x in listed} == {acct} and k["client_id"] in {x["client_id"] for x in listed}
    assert ok_json(t.run("account", "show", "--json", env={"TOKEND_URL": None, "TOKEND_ACCOUNT": acct}))["id"] == acct
    # --account wins over the environment.
    listed = ok_json(t.run("key", "list", "--account", "ops", "--json", env={"TOKEND_URL": None, "TOKEND_ACCOUNT": acct}))
    assert {x["account"] for x in listed} == {"ops"}
    # Remote: an operator's create and list go to $TOKEND_ACCOUNT, not to its own account.
    e = renv(env, op, TOKEND_ACCOUNT=acct)
    r = run(env, "key", "create", "--name", "remote-env", "--scopes", "read", "--json", e=e)
    assert r.returncode == 0, r.stderr
    k2 = json.loads(r.stdout)
    remember_secret(k2["client_secret"])
    assert k2["account"] == acct
    listed = ok_json(run(env, "key", "list", "--json", e=e))
    assert {x["account"] for x in listed} == {acct}
    assert {k["client_id"], k2["client_id"]} <= {x["client_id"] for x in listed}
    assert ok_json(run(env, "account", "show", "--json", e=e))["id"] == acct
    # An account administrator naming another account through the environment: refused.
    other, _ = pair(env, "remenv-other")
    before = snapshot(t)
    r = run(env, "key", "create", "--name", "x", "--scopes", "read", e=renv(env, adm, TOKEND_ACCOUNT=other))
    assert r.returncode == 1 and not SECRET_FIND_RE.search(r.stdout + r.stderr), r.stderr
    r = run(env, "key", "list", e=renv(env, adm, TOKEND_ACCOUNT=other))
    assert r.returncode == 1, r.stderr
    assert snapshot(t) == before


def test_role_and_member_commands_remote_match_local(env):
    t = env.t
    acct, adm = pair(env, "remmem", scopes=f"{READ} {WRITE}")
    op = Admin(env, "ops", OPERATOR, "member operator")
    assert t.json("role", "add", "rem-dev", "--scopes", "read", "--description", "Remote devs")["name"] == "rem-dev"
    # Roles: the same JSON and text as locally (any admin reads them).
    assert ok_json(run(env, "role", "list", "--json", e=renv(env, adm))) == ok_json(run(env, "role", "list", "--json"))
    assert ok_json(run(env, "role", "show", "rem-dev", "--json", e=renv(env, adm))) == \
        ok_json(run(env, "role", "show", "rem-dev", "--json"))
    r = run(env, "role", "show", "rem-dev", "--url", env.srv.base, e=renv(env, adm, TOKEND_URL=None))
    assert r.returncode == 0 and r.stdout == run(env, "role", "show", "rem-dev").stdout, (r.stdout, r.stderr)
    r = run(env, "role", "list", e=renv(env, adm))
    assert r.returncode == 0 and r.stdout == run(env, "role", "list").stdout
    # Members: added remotely with the positional account, through $TOKEND_ACCOUNT, and by default
    # the credentials' own account; each answer is what the local show prints.
    added = [ok_json(run(env, "member", "add", acct, "jane", "--name", "Jane Smith", "--json", e=renv(env, adm))),
             ok_json(run(env, "member", "add", "bob", "--name", "Bob", "--json",
                         e=renv(env, adm, TOKEND_ACCOUNT=acct))),
             ok_json(run(env, "member", "add", "cy", "--name", "Cy", "--json", e=renv(env, adm)))]
    for m in added:
        assert m["account"] == acct and m["state"] == "active", m
        assert m == ok_json(run(env, "member", "show", acct, m["id"], "--json"))
    local_list = ok_json(run(env, "member", "list", acct, "--json"))
    assert [m["id"] for m in local_list] == ["bob", "cy", "jane"]
    assert ok_json(run(env, "member", "list", "--json", e=renv(env, adm))) == local_list
    assert ok_json(run(env, "member", "list", acct, "--json", e=renv(env, adm))) == local_list
    assert ok_json(run(env, "member", "show", "jane", "--json", e=renv(env, adm))) == added[0]
    # An operator names the account (positional or $TOKEND_ACCOUNT); $TOKEND_ACCOUNT works locally too.
    assert ok_json(run(env, "member", "list", "--json", e=renv(env, op, TOKEND_ACCOUNT=acct))) == local_list
    assert ok_json(run(env, "member", "show", acct, "bob", "--json", e=renv(env, op))) == added[1]
    assert t.json("member", "list", env={"TOKEND_URL": None, "TOKEND_ACCOUNT": acct}) == local_list
    # Text output is the local one.
    r = run(env, "member", "list", acct, e=renv(env, adm))
    assert r.returncode == 0 and r.stdout == run(env, "member", "list", acct).stdout, (r.stdout, r.stderr)
    r = run(env, "member", "show", acct, "jane", e=renv(env, adm))
    assert r.returncode == 0 and r.stdout == run(env, "member", "show", acct, "jane").stdout, r.stderr
    # The operator's role changes stay local: remotely a usage error that changes nothing.
    before = snapshot(t)
    for args in (["role", "add", "rem-x", "--scopes", "read"], ["role", "update", "rem-dev", "--description", "x"]):
        r = run(env, *args, e=renv(env, op))
        assert r.returncode == 2 and "remote mode" in r.stderr, (args, r.stderr)
    assert snapshot(t) == before


def test_member_deactivated_remotely_disables_its_keys(env):
    t, srv = env.t, env.srv
    acct, adm = pair(env, "remdeact", scopes=f"{READ} {WRITE}")
    ok_json(run(env, "member", "add", acct, "ann", "--name", "Ann", "--json", e=renv(env, adm)))
    k = t.json("key", "create", "--account", acct, "--name", "ann's key", "--scopes", "read", "--member", "ann")
    remember_secret(k["client_secret"])
    get_token(srv, k)
    d = ok_json(run(env, "member", "deactivate", "ann", "--json", e=renv(env, adm, TOKEND_ACCOUNT=acct)))
    assert d["state"] == "deactivated" and d["active_keys"] == 0, d
    assert d == ok_json(run(env, "member", "show", acct, "ann", "--json"))
    assert srv.token(k).status == 401
    assert t.json("key", "show", k["client_id"])["state"] == "disabled"
    # Again: refused with the API's reason, nothing changes.
    before = snapshot(t)
    r = run(env, "member", "deactivate", acct, "ann", e=renv(env, adm))
    assert r.returncode == 1 and "deactivated" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert snapshot(t) == before


def test_remote_member_refusals_change_nothing(env):
    t = env.t
    acct, adm = pair(env, "remmref", scopes=f"{READ} {WRITE}")
    other, oadm = pair(env, "remmref-other", scopes=f"{READ} {WRITE}")
    reader = Admin(env, acct, READ, "read-only admin")
    t.json("member", "add", acct, "kim", "--name", "Kim")
    t.json("member", "add", other, "lee", "--name", "Lee")
    before = snapshot(t)
    # A read-only admin reads, but neither adds nor deactivates: the API's reason, exit 1.
    assert [m["id"] for m in ok_json(run(env, "member", "list", "--json", e=renv(env, reader)))] == ["kim"]
    for args in (["member", "add", "new", "--name", "New"], ["member", "add", acct, "new", "--name", "New"],
                 ["member", "deactivate", "kim"], ["member", "deactivate", acct, "kim"]):
        r = run(env, *args, e=renv(env, reader))
        assert r.returncode == 1 and WRITE in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    # An account administrator sees and changes no other account's members, however it is named.
    for args, extra in ((["member", "list", other], {}), (["member", "list"], {"TOKEND_ACCOUNT": other}),
                        (["member", "show", other, "lee"], {}), (["member", "show", "lee"], {"TOKEND_ACCOUNT": other}),
                        (["member", "add", other, "x", "--name", "X"], {}),
                        (["member", "deactivate", other, "lee"], {})):
        r = run(env, *args, e=renv(env, adm, **extra))
        assert r.returncode == 1 and "operator" in r.stderr and "lee" not in r.stdout, (args, r.stdout, r.stderr)
    # Its own account has no member "lee" (the other account's).
    r = run(env, "member", "show", "lee", e=renv(env, adm))
    assert r.returncode == 1 and "lee" not in r.stdout, r.stderr
    # Bad input: the API's reason, exit 1; usage errors exit 2 before any request.
    for bad in ("tk_evil", "bad id", "x" * 129):
        r = run(env, "member", "add", bad, "--name", "X", e=renv(env, adm))
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)
    for args in (["member", "add", "x"], ["member", "add", acct, "x", "y", "--name", "X"],
                 ["member", "add", "x", "--name", "a\x07b"], ["member", "list", acct, "extra"],
                 ["member", "show"], ["member", "show", acct, "kim", "extra"], ["member", "deactivate"],
                 ["role", "show"], ["role", "list", "x"], ["member", "list", "--url"]):
        r = run(env, *args, e=renv(env, adm))
        assert r.returncode == 2, (args, r.returncode, r.stderr)
    # Locally, no account at all is a usage error too.
    t.usage_error("member", "list", env={"TOKEND_URL": None, "TOKEND_ACCOUNT": None})
    t.usage_error("member", "show", "kim", env={"TOKEND_URL": None, "TOKEND_ACCOUNT": None})
    assert snapshot(t) == before
