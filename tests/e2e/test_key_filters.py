"""
End-to-end tests of finding keys (issue 13, point 6): the list filters
`subject` and `unused_since` (never, or a duration: not used since then,
never-used keys included), sorting by `created_at`, `last_used_at` (never used
first) or `name`, ascending or descending, with cursor pages - in the admin
API (GET /admin/v1/keys) and the command line, local and remote. Unknown
query parameters, sort fields, orders and bad filter values are a 400 naming
the parameter (a usage error on the command line), never a silent "all".
"""
import json

import pytest

from support.admin import Admin, OPERATOR, READ, WRITE, create, env, ok, pair, refused
from support.server import get_token
from support.util import wait_until

pytestmark = pytest.mark.binary


def ids(keys):
    return [k["client_id"] for k in keys]


def all_pages(adm, query, limit=2):
    out, cursor, pages = [], None, 0
    while True:
        q = f"{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = ok(adm.get(f"keys?{q}"))
        out += body["keys"]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            return out, pages


@pytest.fixture(scope="module")
def world(env):
    """An account with keys of known names, subjects and uses."""
    t = env.t
    acct, adm = pair(env, "find", scopes=f"{READ} {WRITE}")
    made = {}
    for name, subject in (("bravo", "jane"), ("Alpha", "jane"), ("charlie", None), ("delta", "joe"),
                          ("echo", None)):
        body = {"name": name, "scopes": ["read"]}
        if subject:
            body["subject"] = subject
        made[name] = create(adm, body)
    # bravo used now, charlie used now, delta last used 40 days ago; Alpha, echo never.
    for name in ("bravo", "charlie"):
        get_token(env.srv, made[name])
    wait_until(lambda: all(t.query("SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = %s",
                                   (made[n]["client_id"],))[0][0] for n in ("bravo", "charlie")),
               timeout=10, what="last use written")
    t.query("UPDATE api_keys SET last_used_at = now() - interval '40 days' WHERE id = %s RETURNING id",
            (made["delta"]["client_id"],))
    return acct, adm, made


def test_filters(env, world):
    acct, adm, made = world
    by_id = {k["client_id"]: n for n, k in made.items()}

    def names(q):
        return sorted(by_id[i] for i in ids(ok(adm.get(f"keys?{q}"))["keys"]) if i in by_id)

    assert names("subject=jane") == ["Alpha", "bravo"]
    assert names("subject=joe") == ["delta"]
    assert names("subject=nobody") == []
    assert names("unused_since=never") == ["Alpha", "echo"]
    assert names("unused_since=30d") == ["Alpha", "delta", "echo"]
    assert names("unused_since=60d") == ["Alpha", "echo"]
    assert names("unused_since=30d&subject=jane") == ["Alpha"]
    assert names("state=enabled&subject=jane&unused_since=never") == ["Alpha"]


def test_sorting_and_pages(env, world):
    acct, adm, made = world
    mine = set(ids(made.values()))

    def order(q):
        keys, pages = all_pages(adm, q)
        assert pages >= 3, pages
        names = [k["name"] for k in keys if k["client_id"] in mine]
        assert len(names) == 5, names
        return names

    assert order("sort=name") == ["Alpha", "bravo", "charlie", "delta", "echo"]
    assert order("sort=name&order=desc") == ["echo", "delta", "charlie", "bravo", "Alpha"]
    assert order("sort=created_at") == ["bravo", "Alpha", "charlie", "delta", "echo"]
    assert order("sort=created_at&order=desc") == ["echo", "delta", "charlie", "Alpha", "bravo"]
    by_use = order("sort=last_used_at")
    assert set(by_use[:2]) == {"Alpha", "echo"} and by_use[2] == "delta" and set(by_use[3:]) == {"bravo", "charlie"}
    assert order("sort=last_used_at&order=desc") == list(reversed(by_use))
    # Filters and sorting together, over pages.
    keys, _ = all_pages(adm, "sort=name&order=desc&unused_since=30d", limit=1)
    assert [k["name"] for k in keys if k["client_id"] in mine] == ["echo", "delta", "Alpha"]


def test_bad_queries_are_refused_naming_the_parameter(env, world):
    acct, adm, made = world
    for q, field in (("subjekt=jane", "subjekt"), ("sort=id", "sort"), ("sort=name&order=up", "order"),
                     ("unused_since=soon", "unused_since"), ("unused_since=", "unused_since"),
                     ("subject=", "subject"), ("subject=" + "x" * 256, "subject"),
                     ("subject=a%0Ab", "subject"), ("state=gone", "state"), ("environment=prod", "environment"), ("kind=team", "kind"),
                     ("cursor=%21%21", "cursor"), ("limit=0", "limit")):
        refused(adm.get(f"keys?{q}"), 400, "invalid_request", field)


def cli_names(out, made):
    by_id = {k["client_id"]: n for n, k in made.items()}
    return [by_id[k["client_id"]] for k in json.loads(out) if k["client_id"] in by_id]


def test_cli_local_and_remote(env, world):
    t = env.t
    acct, adm, made = world
    renv = {"TOKEND_URL": env.srv.base, "TOKEND_CLIENT_ID": adm.key["client_id"],
            "TOKEND_CLIENT_SECRET": adm.key["client_secret"]}
    operator = Admin(env, "ops", OPERATOR, "finder")
    openv = dict(renv, TOKEND_CLIENT_ID=operator.key["client_id"], TOKEND_CLIENT_SECRET=operator.key["client_secret"])
    for mode, run in (("local", lambda *a: t.run("key", "list", "--account", acct, *a, "--json",
                                                 env={"TOKEND_URL": None})),
                      ("remote", lambda *a: t.run("key", "list", *a, "--json", env=renv, config=False)),
                      ("remote operator", lambda *a: t.run("key", "list", *a, "--json", env=openv, config=False))):
        def names(*a):
            r = run(*a)
            assert r.returncode == 0, (mode, a, r.stderr)
            return cli_names(r.stdout, made)
        assert sorted(names("--subject", "jane")) == ["Alpha", "bravo"], mode
        assert sorted(names("--unused-since", "never")) == ["Alpha", "echo"], mode
        assert sorted(names("--unused-since", "30d")) == ["Alpha", "delta", "echo"], mode
        assert names("--sort", "name") == ["Alpha", "bravo", "charlie", "delta", "echo"], mode
        assert names("--sort", "name", "--order", "desc") == ["echo", "delta", "charlie", "bravo", "Alpha"], mode
        assert names("--sort", "created_at", "--order", "desc") == ["echo", "delta", "charlie", "Alpha", "bravo"], mode
        assert names("--sort", "last_used_at", "--unused-since", "30d")[-1] == "delta", mode
    # Text output still a table.
    r = t.run("key", "list", "--account", acct, "--sort", "name", env={"TOKEND_URL": None})
    assert r.returncode == 0 and r.stdout.splitlines()[0].startswith("KEY"), r.stdout
    # Usage errors, the same in both modes (before any database or network work).
    for bad in (["--sort", "id"], ["--order", "up"], ["--unused-since", "soon"], ["--subject", ""],
                ["--subject", "a\tb"], ["--unused-since"]):
        for e, cfg in (({"TOKEND_URL": None}, True), (renv, False)):
            r = t.run("key", "list", *bad, env=e, config=cfg)
            assert r.returncode == 2 and r.stderr.strip(), (bad, r.returncode, r.stderr)
