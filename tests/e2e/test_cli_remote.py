"""
End-to-end tests of the remote mode of `tokend key ...` (issue 4, point 6):
`--url URL` (or $TOKEND_URL) runs the key commands over the admin REST API of
a running tokend, with an API key from the environment ($TOKEND_CLIENT_ID,
$TOKEND_CLIENT_SECRET) and no database configuration at all.

The remote commands must print what the local ones print (text and --json),
exit 0 done / 1 refused / 2 usage error (before any network traffic), and
never show the admin secret or an access token.
"""
import json
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from support.keys import KEY_ID_RE, SECRET_FIND_RE, SECRET_RE, make_key_id, make_secret
from support.registry import TOKEN_RE, remember_secret
from support.server import new_key
from support.util import free_port, wait_until

pytestmark = pytest.mark.binary

ADMIN_SCOPES = "tokend:admin:read tokend:admin:write"
KEY_ORDER = ["client_id", "account", "name", "hint", "masked", "scopes", "audiences", "subject", "state",
             "created_at", "created_by", "expires_at", "last_used_at", "disabled_at", "revoked_at",
             "revoked_by", "revoke_reason", "token_lifetime", "rate_limit", "kind", "role", "member",
             "member_name", "environment", "claims", "secret_rotated_at",
             "previous_hint", "previous_secret_until", "allowed_origins"]


class NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.fixture(scope="module")
def env(module_tokend, module_start_server):
    t = module_tokend
    t.account("acme", "--name", "Acme", "--key-limit", "100")
    t.account("other", "--name", "Other", "--key-limit", "10")
    t.account("bulk", "--name", "Bulk", "--key-limit", "100")
    t.scopes("read", "write")
    for acct in ("acme", "other", "bulk"):
        t.grant_scopes(acct, "read", "write")
    srv = module_start_server(t)
    admin = new_key(t, "acme", "admin", ADMIN_SCOPES)
    reader = new_key(t, "acme", "reader", "tokend:admin:read")
    plain = new_key(t, "acme", "plain", "read")
    operator = new_key(t, "acme", "operator", "tokend:operator")
    bulk_admin = new_key(t, "bulk", "bulk-admin", ADMIN_SCOPES)
    other_key = new_key(t, "other", "other-key", "read")
    return NS(t=t, srv=srv, admin=admin, reader=reader, plain=plain, operator=operator,
              bulk_admin=bulk_admin, other_key=other_key,
              all_admin_secrets=[admin["client_secret"], reader["client_secret"], plain["client_secret"],
                                 operator["client_secret"], bulk_admin["client_secret"]])


def creds_env(env, key=None, url=None, **extra):
    key = key or env.admin
    e = {"TOKEND_URL": env.srv.base if url is None else url,
         "TOKEND_CLIENT_ID": key["client_id"], "TOKEND_CLIENT_SECRET": key["client_secret"],
         "TOKEND_TOKEN_URL": None}
    e.update(extra)
    return e


def no_leak(env, r, new_secret=False):
    """Neither an admin secret nor any access token (JWT) in the output; at
    most one (new) client secret, and only where a create shows it."""
    out = r.stdout + r.stderr
    for s in env.all_admin_secrets:
        assert s not in out, f"an admin secret was printed: {r.args}"
    assert not TOKEN_RE.search(out), f"an access token was printed: {r.args}\n{out[:2000]}"
    found = set(SECRET_FIND_RE.findall(out))
    assert len(found) <= (1 if new_secret else 0), f"unexpected secret in the output of {r.args}"
    assert not SECRET_FIND_RE.search(r.stderr), f"a secret on stderr: {r.args}"


def remote(env, *args, key=None, url=None, extra_env=None, timeout=60, new_secret=False, input=None):
    """`tokend key ARGS...` in remote mode: no --config, credentials in the environment."""
    e = creds_env(env, key, url, **(extra_env or {}))
    r = env.t.run("key", *args, config=False, env=e, timeout=timeout, input=input)
    no_leak(env, r, new_secret=new_secret)
    for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert marker not in r.stderr, r.stderr
    return r


def ok(r):
    assert r.returncode == 0, f"expected exit 0, got {r.returncode}: {r.args}\n{r.stdout}\n{r.stderr}"
    return r


def ok_json(r):
    ok(r)
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"--json output is not JSON: {r.stdout[:500]!r}")


def refused(r, match=None):
    assert r.returncode == 1, f"expected exit 1, got {r.returncode}: {r.args}\n{r.stdout}\n{r.stderr}"
    err = r.stderr.strip()
    assert err and len(err.splitlines()) == 1, f"the reason must be one line: {err!r}"
    assert err.startswith("tokend: "), err
    if match:
        assert re.search(match, err, re.I), f"reason should match /{match}/: {err!r}"
    return err


def usage(r, match=None):
    assert r.returncode == 2, f"expected exit 2, got {r.returncode}: {r.args}\n{r.stdout}\n{r.stderr}"
    assert r.stderr.strip(), "a usage error must say why"
    if match:
        assert re.search(match, r.stderr, re.I), f"stderr should match /{match}/: {r.stderr!r}"
    return r


def local(env, *args):
    return env.t.run("key", *args, env={"TOKEND_URL": None})


def create(env, name, scopes="read", *extra, key=None):
    """Remote create --json; returns the key object (with its secret)."""
    r = remote(env, "create", "--name", name, "--scopes", scopes, *extra, "--json", key=key, new_secret=True)
    k = ok_json(r)
    remember_secret(k["client_secret"])
    return k


# ---------------------------------------------------------------------------
# Help and usage errors (no network: the URL points at a closed port)
# ---------------------------------------------------------------------------
def test_help_documents_remote_mode(env):
    r = env.t.run("key", "--help", config=False, check=0)
    for word in ("--url", "TOKEND_URL", "TOKEND_CLIENT_ID", "TOKEND_CLIENT_SECRET", "--token-url",
                 "--idempotency-key", "--force"):
        assert word in r.stdout, f"`tokend key --help` does not mention {word}"


def test_usage_errors_before_any_network(env):
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (
        ["frobnicate"],
        ["--url", dead],                                   # no command
        ["create", "--scopes", "read"],                    # no --name
        ["create", "--name", "x"],                         # no --scopes
        ["create", "--name", "x", "--scopes", "bad\"scope"],
        ["create", "--name", "x", "--scopes", "read", "--expires-in", "soon"],
        ["create", "--name", "x", "--scopes", "read", "--expires-in", "1d", "--expires-at", "2099-01-01T00:00:00Z"],
        ["create", "--name", "x", "--scopes", "read", "--token-lifetime", "forever"],
        ["create", "--name", "x" * 101, "--scopes", "read"],
        ["create", "--name", "x", "--scopes", "read", "--audience", "has space"],
        ["create", "--name", "x", "--scopes", "read", "--force"],   # an option of another command
        ["list", "--state", "bogus"],
        ["list", "--page-size", "0"],
        ["list", "extra"],
        ["show"],
        ["show", "a", "b"],
        ["rename", make_key_id()],
        ["disable"],
        ["delete", make_key_id(), "--reason", "x"],
        ["revoke", make_key_id(), "--reason", "a\tb"],
    ):
        r = remote(env, *args, url=dead)
        usage(r)
    # A bad URL.
    for url in ("ftp://127.0.0.1/", "not a url", "http://user:pw@127.0.0.1/", "http://127.0.0.1/?q=1"):
        usage(remote(env, "list", url=url), r"--url")
    usage(remote(env, "list", url=dead, extra_env={"TOKEND_TOKEN_URL": "gopher://x"}), r"--token-url")


def test_credentials_never_from_the_command_line(env):
    dead = f"http://127.0.0.1:{free_port()}"
    secret = env.admin["client_secret"]
    for opt in ("--client-secret", "--client-id", "--secret", "--token", "--password"):
        r = env.t.run("key", "list", "--url", dead, opt, "x" + secret[1:], config=False,
                      env={"TOKEND_URL": None, "TOKEND_CLIENT_ID": None, "TOKEND_CLIENT_SECRET": None})
        usage(r, r"environment")
        assert secret[1:] not in r.stdout + r.stderr


def test_missing_environment_is_a_usage_error(env):
    for missing in ("TOKEND_CLIENT_ID", "TOKEND_CLIENT_SECRET"):
        r = remote(env, "list", extra_env={missing: None})
        usage(r, r"TOKEND_CLIENT_ID and TOKEND_CLIENT_SECRET")
        r = remote(env, "list", extra_env={missing: ""})
        usage(r, r"TOKEND_CLIENT_ID and TOKEND_CLIENT_SECRET")
    # --url given on the command line instead of TOKEND_URL works the same.
    r = env.t.run("key", "list", "--url", env.srv.base, config=False,
                  env={"TOKEND_URL": None, "TOKEND_CLIENT_ID": env.admin["client_id"],
                       "TOKEND_CLIENT_SECRET": None})
    usage(r, r"TOKEND_CLIENT_SECRET")


def test_malformed_credentials_are_refused_without_echo(env):
    dead = f"http://127.0.0.1:{free_port()}"
    secret = env.admin["client_secret"]
    r = remote(env, "list", url=dead, extra_env={"TOKEND_CLIENT_ID": secret})
    err = refused(r, r"TOKEND_CLIENT_ID .*secret")
    assert secret not in err
    r = remote(env, "list", url=dead, extra_env={"TOKEND_CLIENT_SECRET": secret[:-1] + ("A" if secret[-1] != "A" else "B")})
    refused(r, r"TOKEND_CLIENT_SECRET is not")


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------
def test_wrong_secret(env):
    t0 = time.monotonic()
    r = remote(env, "list", extra_env={"TOKEND_CLIENT_SECRET": make_secret()})
    refused(r, r"refused the credentials in TOKEND_CLIENT_ID and TOKEND_CLIENT_SECRET")
    assert time.monotonic() - t0 < 10
    r = remote(env, "list", extra_env={"TOKEND_CLIENT_ID": make_key_id()})
    refused(r, r"refused the credentials")


def test_unreachable_url(env):
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    r = remote(env, "list", url=dead)
    took = time.monotonic() - t0
    refused(r, r"cannot reach .*cannot connect to 127\.0\.0\.1 port")
    assert took < 5, f"an unreachable server took {took:.1f}s to report"
    r = remote(env, "create", "--name", "x", "--scopes", "read", url=dead)
    refused(r, r"cannot reach")


def test_not_a_tokend_server(env):
    # A path where tokend has nothing.
    r = remote(env, "list", url=env.srv.base + "/nothing/here")
    refused(r, r"no token endpoint at http://127\.0\.0\.1:\d+/nothing/here/oauth2/token \(HTTP status 404\)")
    # Something that is not tokend at all.
    import http.server
    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    try:
        r = remote(env, "list", url=f"http://127.0.0.1:{httpd.server_address[1]}")
        refused(r, r"unexpected answer from .*is this the token endpoint of a tokend server")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_scopes_are_enforced(env):
    r = remote(env, "list", key=env.plain)
    refused(r, r"needs the scope tokend:admin:read")
    ok(remote(env, "list", key=env.reader))
    r = remote(env, "create", "--name", "nope", "--scopes", "read", key=env.reader)
    refused(r, r"needs the scope tokend:admin:write")
    # An account administrator never reaches another account.
    r = remote(env, "list", "--account", "other")
    refused(r, r"operator")
    r = remote(env, "show", env.other_key["client_id"])
    refused(r, r"no key " + env.other_key["client_id"])
    r = remote(env, "disable", env.other_key["client_id"])
    refused(r, r"no key")
    r = remote(env, "create", "--name", "x", "--scopes", "read", "--account", "other")
    refused(r, r"operator")
    r = remote(env, "create", "--name", "x", "--scopes", "tokend:operator")
    refused(r, r"operator")
    assert env.t.query("SELECT count(*) FROM api_keys WHERE account_id = 'other'")[0][0] == 1


def test_api_refusals_are_reported(env):
    r = remote(env, "create", "--name", "x", "--scopes", "no:such:scope")
    refused(r, r"scope")
    r = remote(env, "create", "--name", "x", "--scopes", "read", "--token-lifetime", "2h")
    refused(r, r"token_lifetime is above the server maximum")
    r = remote(env, "show", make_key_id())
    refused(r, r"^tokend: no key tk_")
    r = remote(env, "show", env.admin["client_secret"])
    refused(r, r"looks like a secret")
    r = remote(env, "create", "--name", "x", "--scopes", "read", "--account", "nosuch")
    refused(r, r"operator")


# ---------------------------------------------------------------------------
# The lifecycle
# ---------------------------------------------------------------------------
def test_create_text_shows_the_secret_once(env):
    r = remote(env, "create", "--name", "text key", "--scopes", "read write", "--audience",
               "https://api.example.test", "--subject", "svc-1", "--expires-in", "30d",
               "--token-lifetime", "5m", new_secret=True)
    ok(r)
    m = re.search(r"^Created key (tk_\w+) for account acme\.$", r.stdout, re.M)
    assert m, r.stdout
    kid = m.group(1)
    secrets = SECRET_FIND_RE.findall(r.stdout)
    assert len(secrets) == 1 and SECRET_RE.match(secrets[0])
    remember_secret(secrets[0])
    assert f"  client_id:     {kid}\n  client_secret: {secrets[0]}\n" in r.stdout
    assert "shown only this once" in r.stdout
    assert "Scopes:         read write" in r.stdout
    assert "Audiences:      https://api.example.test" in r.stdout
    assert "Subject:        svc-1" in r.stdout
    assert "Token lifetime: 300" in r.stdout
    assert re.search(r"^Created: .* by admin:" + env.admin["client_id"], r.stdout, re.M)
    # The text after the secret is the local `show` text, word for word.
    shown = ok(local(env, "show", kid)).stdout
    assert r.stdout.endswith(shown), (r.stdout, shown)
    # The secret works.
    resp = env.srv.token({"client_id": kid, "client_secret": secrets[0]}, resource="https://api.example.test")
    assert resp.status == 200, resp
    # And is never shown again.
    r2 = ok(remote(env, "show", kid))
    assert secrets[0] not in r2.stdout


def test_create_json_matches_local_shape(env):
    k = create(env, "json key", "read")
    assert KEY_ID_RE.match(k["client_id"]) and SECRET_RE.match(k["client_secret"])
    assert list(k) == KEY_ORDER + ["client_secret"], list(k)
    assert k["account"] == "acme" and k["state"] == "enabled" and k["scopes"] == ["read"]
    assert k["created_by"] == "admin:" + env.admin["client_id"]
    loc = env.t.create_key("acme", "local twin", "read")
    remember_secret(loc["client_secret"])
    assert list(loc) == list(k), "remote and local create --json differ in shape"
    # The remote create's object is the local show's, plus the secret.
    shown = ok_json(local(env, "show", k["client_id"], "--json"))
    assert {f: v for f, v in k.items() if f != "client_secret"} == shown


def test_expires_at_and_in(env):
    k = create(env, "exp at", "read", "--expires-at", "2099-01-02T03:04:05+01:00")
    assert k["expires_at"] == "2099-01-02T02:04:05Z"
    k = create(env, "exp in", "read", "--expires-in", "1d")
    assert k["expires_at"] is not None
    r = remote(env, "create", "--name", "x", "--scopes", "read", "--expires-at", "2001-01-01T00:00:00Z")
    refused(r, r"in the past")


def test_show_matches_local(env):
    k = env.t.create_key("acme", "show me", "read write", "--audience", "https://a.example", "--subject", "s",
                         "--token-lifetime", "2m", "--expires-in", "1w")
    remember_secret(k["client_secret"])
    kid = k["client_id"]     # never used: nothing changes between the two runs
    assert ok(remote(env, "show", kid)).stdout == ok(local(env, "show", kid)).stdout
    assert ok_json(remote(env, "show", kid, "--json")) == ok_json(local(env, "show", kid, "--json"))


def test_rename_disable_enable_revoke(env):
    k = create(env, "life", "read")
    kid = k["client_id"]
    r = ok(remote(env, "rename", kid, "life renamed"))
    assert r.stdout.startswith(f"Renamed key {kid}.\n")
    assert "Name:           life renamed" in r.stdout
    assert ok_json(local(env, "show", kid, "--json"))["name"] == "life renamed"
    usage(remote(env, "rename", kid, "bad\x01name"))

    j = ok_json(remote(env, "disable", kid, "--json"))
    assert j["state"] == "disabled" and j["disabled_at"]
    assert list(j) == KEY_ORDER
    assert env.srv.token(k).status == 401
    r = ok(remote(env, "enable", kid))
    assert r.stdout.startswith(f"Enabled key {kid}.\n") and "State:          enabled" in r.stdout
    assert env.srv.token(k).status == 200

    r = ok(remote(env, "revoke", kid, "--reason", "rotated"))
    assert r.stdout.startswith(f"Revoked key {kid}.\n")
    assert re.search(r"^Revoked: .* by admin:" + env.admin["client_id"] + ": rotated$", r.stdout, re.M)
    j = ok_json(local(env, "show", kid, "--json"))
    assert j["state"] == "revoked" and j["revoke_reason"] == "rotated"
    assert env.srv.token(k).status == 401
    refused(remote(env, "enable", kid), r"revoked.*permanent")
    refused(remote(env, "disable", kid), r"revoked")
    refused(remote(env, "revoke", kid), r"already revoked")
    # Still listed, as revoked.
    states = {x["client_id"]: x["state"] for x in ok_json(remote(env, "list", "--state", "revoked", "--json"))}
    assert states.get(kid) == "revoked"


def test_delete_recently_used_needs_force(env):
    k = create(env, "to delete", "read")
    kid = k["client_id"]
    unused = create(env, "never used", "read")
    j = ok_json(remote(env, "delete", unused["client_id"], "--json"))
    assert j == {"client_id": unused["client_id"], "state": "deleted"}
    refused(remote(env, "show", unused["client_id"]), r"no key")

    assert env.srv.token(k).status == 200
    wait_until(lambda: ok_json(local(env, "show", kid, "--json"))["last_used_at"], timeout=15,
               what="last_used_at to be recorded")
    err = refused(remote(env, "delete", kid), r"used in the last 24 hours.*--force")
    assert kid in err
    assert ok_json(local(env, "show", kid, "--json"))["state"] != "deleted"
    r = ok(remote(env, "delete", kid, "--force"))
    assert r.stdout == f"Deleted key {kid}. It no longer appears in listings; the audit log keeps its history.\n"
    refused(remote(env, "show", kid), r"no key")
    refused(remote(env, "delete", kid), r"no key")
    assert kid not in ok(remote(env, "list")).stdout


def test_list_matches_local_and_follows_pages(env):
    """More keys than one page (the API's default is 50): every page is fetched."""
    t = env.t
    rows = []
    for i in range(54):
        rows.append((make_key_id(), f"bulk-{i:02d}"))
    t.query("INSERT INTO api_keys (id, account_id, name, secret_hash, secret_hint, scopes, created_at)"
            " SELECT x.id, 'bulk', x.name, sha256(x.id::bytea), 'AbCd', ARRAY['read'],"
            "  now() - make_interval(secs => 100 - x.n)"
            " FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS x(id, name, n) RETURNING 1",
            ([r[0] for r in rows], [r[1] for r in rows]))
    # Every remote run uses the bulk admin key: its last_used_at moves under our feet.
    admin_id = env.bulk_admin["client_id"]

    def steady(keys):
        return [{**k, "last_used_at": None} if k["client_id"] == admin_id else k for k in keys]

    def steady_text(text):
        return [line for line in text.splitlines() if not line.startswith(admin_id)]

    want = ok_json(local(env, "list", "--account", "bulk", "--json"))
    assert len(want) == 55   # with the bulk admin key
    got = ok_json(remote(env, "list", "--json", key=env.bulk_admin))
    assert steady(got) == steady(want)
    got = ok_json(remote(env, "list", "--json", "--page-size", "7", key=env.bulk_admin))
    assert steady(got) == steady(want)
    got = ok(remote(env, "list", key=env.bulk_admin)).stdout
    want_text = ok(local(env, "list", "--account", "bulk")).stdout
    assert len(got.splitlines()) == 56 and steady_text(got) == steady_text(want_text)
    # Filters.
    t.run("key", "disable", rows[3][0], check=0)
    got = ok_json(remote(env, "list", "--state", "disabled", "--json", "--page-size", "2", key=env.bulk_admin))
    assert [k["client_id"] for k in got] == [rows[3][0]]
    got = ok_json(remote(env, "list", "--account", "bulk", "--state", "enabled", "--json", key=env.bulk_admin))
    assert len(got) == 54
    refused(remote(env, "list", "--account", "acme", key=env.bulk_admin), r"operator")


def test_operator_lists_every_account(env):
    # last_used_at moves with every token (this run's own included): not compared.
    want = ok_json(local(env, "list", "--json"))
    got = ok_json(remote(env, "list", "--json", key=env.operator))
    assert {k["account"] for k in got} == {"acme", "other", "bulk"}
    assert [{**k, "last_used_at": None} for k in got] == [{**k, "last_used_at": None} for k in want]
    got = ok_json(remote(env, "list", "--account", "other", "--json", key=env.operator))
    assert [k["client_id"] for k in got] == [env.other_key["client_id"]]
    refused(remote(env, "list", "--account", "nosuch", key=env.operator), r"no account 'nosuch'")
    # An operator creates in another account.
    k = create(env, "by operator", "read", "--account", "other", key=env.operator)
    assert k["account"] == "other"
    ok(remote(env, "delete", k["client_id"], key=env.operator))


def test_idempotency_key(env):
    idem = "remote-test-" + make_key_id()[3:15]
    k = create(env, "idem", "read", "--idempotency-key", idem)
    r = remote(env, "create", "--name", "idem", "--scopes", "read", "--idempotency-key", idem, "--json")
    err = refused(r, r"no new key: key " + k["client_id"] + r" was created earlier with this Idempotency-Key")
    assert "secret" in err
    assert json.loads(r.stdout)["client_id"] == k["client_id"]
    assert k["client_secret"] not in r.stdout
    n = env.t.query("SELECT count(*) FROM api_keys WHERE name = 'idem' AND deleted_at IS NULL")[0][0]
    assert n == 1
    # The same key with another request: refused.
    r = remote(env, "create", "--name", "idem other", "--scopes", "read", "--idempotency-key", idem)
    refused(r, r"Idempotency-Key was used with a different request")
    # Without --idempotency-key, every run makes its own key.
    a = create(env, "twice", "read")
    b = create(env, "twice", "read")
    assert a["client_id"] != b["client_id"]
    usage(remote(env, "create", "--name", "x", "--scopes", "read", "--idempotency-key", ""))


# ---------------------------------------------------------------------------
# Transport: a dropped connection, a separate admin listener, https
# ---------------------------------------------------------------------------
class DroppingProxy:
    """Plain-HTTP proxy to tokend that answers nothing to the first `times`
    requests matching `drop` (after forwarding them), and relays everything else."""

    def __init__(self, target_port, drop, times=1):
        self.target_port = target_port
        self.drop = drop
        self.times = times
        self.dropped = 0
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.th = threading.Thread(target=self._serve, daemon=True)
        self.th.start()

    def _read_request(self, c):
        data = b""
        while b"\r\n\r\n" not in data:
            b = c.recv(65536)
            if not b:
                return None
            data += b
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
        n = int(m.group(1)) if m else 0
        while len(body) < n:
            b = c.recv(65536)
            if not b:
                break
            body += b
        return head, body

    def _serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(10)
                req = self._read_request(c)
                if req is None:
                    continue
                head, body = req
                line = head.split(b"\r\n")[0].decode()
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (h.decode().partition(":") for h in head.split(b"\r\n")[1:])}
                self.requests.append((line, headers))
                up = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                with up:
                    up.sendall(head + b"\r\n\r\n" + body)
                    resp = b""
                    while True:
                        b = up.recv(65536)
                        if not b:
                            break
                        resp += b
                if self.drop(line) and self.dropped < self.times:
                    self.dropped += 1
                    continue          # close without an answer
                c.sendall(resp)

    def close(self):
        self.stop = True
        self.sock.close()


def test_retry_after_a_dropped_connection_never_makes_two_keys(env):
    p = DroppingProxy(env.srv.port, lambda line: line.startswith("POST /admin/v1/keys "))
    try:
        r = remote(env, "create", "--name", "dropped once", "--scopes", "read", url=f"http://127.0.0.1:{p.port}")
    finally:
        p.close()
    creates = [h for line, h in p.requests if line.startswith("POST /admin/v1/keys ")]
    assert len(creates) == 2, p.requests
    assert creates[0]["idempotency-key"] == creates[1]["idempotency-key"]
    assert creates[0]["idempotency-key"].startswith("tokend-cli-")
    # The first attempt made the key; the retry got it back, without its secret.
    refused(r, r"created earlier with this Idempotency-Key")
    n = env.t.query("SELECT count(*) FROM api_keys WHERE name = 'dropped once'")[0][0]
    assert n == 1
    # Both attempts dropped: the message names the Idempotency-Key to find out
    # whether the key was made, and a run with it never makes a second one.
    p = DroppingProxy(env.srv.port, lambda line: line.startswith("POST /admin/v1/keys "), times=2)
    try:
        r = remote(env, "create", "--name", "dropped twice", "--scopes", "read", url=f"http://127.0.0.1:{p.port}")
    finally:
        p.close()
    err = refused(r, r"may or may not have been created: run the same command with --idempotency-key")
    idem = re.search(r"--idempotency-key (tokend-cli-[A-Za-z0-9_-]+)", err).group(1)
    r = remote(env, "create", "--name", "dropped twice", "--scopes", "read", "--idempotency-key", idem, "--json")
    refused(r, r"created earlier")
    assert env.t.query("SELECT count(*) FROM api_keys WHERE name = 'dropped twice'")[0][0] == 1
    # A dropped token request is simply retried.
    p = DroppingProxy(env.srv.port, lambda line: line.startswith("POST /oauth2/token "))
    try:
        r = remote(env, "show", env.plain["client_id"], url=f"http://127.0.0.1:{p.port}")
    finally:
        p.close()
    ok(r)
    assert sum(1 for line, _ in p.requests if line.startswith("POST /oauth2/token ")) == 2


def test_admin_api_on_its_own_listener(env, start_server):
    admin_port = free_port()
    srv = start_server(env.t, admin_listen_port=admin_port)
    admin_url = f"http://127.0.0.1:{admin_port}"
    # The main listener has no admin API: a clear hint.
    r = remote(env, "list", url=srv.base)
    refused(r, r"no admin API at .*--token-url")
    # The admin listener answers the token endpoint too (the console signs in on its origin).
    r = remote(env, "list", url=admin_url)
    ok(r)
    assert env.plain["client_id"] in r.stdout, r.stdout
    r = remote(env, "show", env.plain["client_id"], url=admin_url,
               extra_env={"TOKEND_TOKEN_URL": srv.base + "/oauth2/token"})
    ok(r)
    r = env.t.run("key", "show", env.plain["client_id"], "--url", admin_url, "--token-url",
                  srv.base + "/oauth2/token", config=False, env=creds_env(env, url=None) | {"TOKEND_URL": None})
    ok(r)
    no_leak(env, r)


class TlsFront:
    """TLS termination in front of tokend (a certificate for 127.0.0.1 and localhost)."""

    def __init__(self, target_port, tmp_path):
        self.cert, key = tmp_path / "front.crt", tmp_path / "front.key"
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", str(key), "-out", str(self.cert), "-days", "1",
                            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        key.chmod(0o600)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(self.cert), str(key))
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _handle(self, c):
        try:
            s = self.ctx.wrap_socket(c, server_side=True)
        except (OSError, ssl.SSLError):
            c.close()
            return
        up = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        t = threading.Thread(target=self._pipe, args=(up, s), daemon=True)
        t.start()
        self._pipe(s, up)
        t.join(10)
        s.close()
        up.close()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def close(self):
        self.sock.close()


def test_https(env, tmp_path):
    front = TlsFront(env.srv.port, tmp_path)
    try:
        for host in ("127.0.0.1", "localhost"):
            url = f"https://{host}:{front.port}"
            r = remote(env, "show", env.plain["client_id"], "--json", url=url,
                       extra_env={"SSL_CERT_FILE": str(front.cert)})
            assert ok_json(r)["client_id"] == env.plain["client_id"]
        r = remote(env, "create", "--name", "over https", "--scopes", "read", "--json",
                   url=f"https://127.0.0.1:{front.port}", extra_env={"SSL_CERT_FILE": str(front.cert)},
                   new_secret=True)
        k = ok_json(r)
        remember_secret(k["client_secret"])
        # An untrusted certificate: refused before any credential is sent.
        t0 = time.monotonic()
        r = remote(env, "list", url=f"https://127.0.0.1:{front.port}",
                   extra_env={"SSL_CERT_FILE": "/dev/null", "SSL_CERT_DIR": str(tmp_path)})
        refused(r, r"cannot reach .*TLS: server certificate not accepted")
        assert time.monotonic() - t0 < 5
        # https to a plain-http port.
        r = remote(env, "list", url=f"https://127.0.0.1:{env.srv.port}")
        refused(r, r"TLS")
    finally:
        front.close()


def test_rate_limit_remote(env):
    """create --rate-limit and set-rate-limit over the admin API: same output as local."""
    k = create(env, "limited", "read", "--rate-limit", "2")
    kid = k["client_id"]
    assert k["rate_limit"] == 2
    assert [env.srv.token(k).status for _ in range(3)] == [200, 200, 429]
    r = ok(remote(env, "set-rate-limit", kid, "none"))
    assert r.stdout.startswith(f"Rate limit set for key {kid}.\n") and "Rate limit:     (none)" in r.stdout
    assert ok_json(local(env, "show", kid, "--json"))["rate_limit"] is None
    assert wait_until(lambda: env.srv.token(k).status == 200, timeout=1.0)
    j = ok_json(remote(env, "set-rate-limit", kid, "600", "--json"))
    assert j["rate_limit"] == 600 and list(j) == KEY_ORDER
    usage(remote(env, "set-rate-limit", kid, "0"))
    usage(remote(env, "set-rate-limit", kid))
    usage(remote(env, "create", "--name", "x", "--scopes", "read", "--rate-limit", "many"))
    assert ok_json(local(env, "show", kid, "--json"))["rate_limit"] == 600


# ---------------------------------------------------------------------------
# Issue 10, finding 1: the remote commands meet the same database rules as the
# API (before the fix each of these refusals was a success).
# ---------------------------------------------------------------------------
def test_remote_admin_grants_only_what_it_holds(env):
    t = env.t
    t.scopes("billing:admin")
    # Not in acme's allow-list; a tokend:* scope its token does not hold.
    refused(remote(env, "create", "--name", "x", "--scopes", "read billing:admin"), r"not granted")
    refused(remote(env, "create", "--name", "x", "--scopes", "tokend:introspect"), r"tokend:introspect")
    # A subject shaped like another account's key ID: refused before any network
    # traffic, as locally (the admin API refuses it too: test_admin.py).
    usage(remote(env, "create", "--name", "x", "--scopes", "read", "--subject", env.other_key["client_id"]),
          r"tk_")
    # A key holding tokend:operator is out of an account administrator's reach.
    op2 = new_key(t, "acme", "second operator", "tokend:operator")["client_id"]
    for args in (("disable", op2), ("revoke", op2, "--reason", "x"), ("delete", op2, "--force")):
        refused(remote(env, *args), r"tokend:operator")
    assert t.query("SELECT tokend_key_state(k) FROM api_keys k WHERE id = %s", (op2,)) == [("enabled",)]
    # The operator grants, then the same create works.
    t.json("account", "grant-scopes", "acme", "billing:admin")
    k = create(env, "billing", "read billing:admin")
    assert k["scopes"] == ["read", "billing:admin"]


@pytest.mark.slow
def test_local_and_remote_agree_on_refusals_and_reasons(env):
    """Both modes parse the command once and leave the key-state rules to the same SQL
    functions: the same refusal for the same request, the same stored result."""
    t = env.t

    def err(r):
        assert r.returncode == 1, f"expected exit 1, got {r.returncode}: {r.args}\n{r.stdout}\n{r.stderr}"
        return r.stderr.replace(env.srv.base, "URL").strip()

    # An empty revoke reason is no reason, in both modes.
    a, b = create(env, "agree-a", "read"), create(env, "agree-b", "read")
    ok(local(env, "revoke", a["client_id"], "--reason", ""))
    ok(remote(env, "revoke", b["client_id"], "--reason", ""))
    assert t.query("SELECT revoke_reason FROM api_keys WHERE id = ANY(%s) ORDER BY id",
                   ([a["client_id"], b["client_id"]],)) == [(None,), (None,)]
    # The same words for what a revoked key refuses.
    for verb in ("disable", "enable", "revoke"):
        want = err(local(env, verb, a["client_id"])).replace(a["client_id"], "KEY")
        got = err(remote(env, verb, b["client_id"])).replace(b["client_id"], "KEY")
        assert want == got, (verb, want, got)
    # A deleted key is no key, whatever the command.
    c, d = create(env, "agree-c", "read"), create(env, "agree-d", "read")
    ok(local(env, "delete", c["client_id"]))
    ok(remote(env, "delete", d["client_id"]))
    for args in (("rename", "{}", "new"), ("disable", "{}"), ("revoke", "{}"), ("delete", "{}", "--force"),
                 ("set-rate-limit", "{}", "5")):
        for run, k in ((local, c), (remote, d)):
            e = err(run(env, *[x.format(k["client_id"]) for x in args]))
            assert e == f"tokend: no key {k['client_id']}", (run.__name__, args, e)
    # A recently used key: the same sentence, pointing at --force.
    e, f = create(env, "agree-e", "read"), create(env, "agree-f", "read")
    t.query("UPDATE api_keys SET last_used_at = '2026-01-01T00:00:00Z'::timestamptz + (now() - '2026-01-01')"
            " WHERE id = ANY(%s) RETURNING 1", ([e["client_id"], f["client_id"]],))
    want = err(local(env, "delete", e["client_id"])).replace(e["client_id"], "KEY")
    got = err(remote(env, "delete", f["client_id"])).replace(f["client_id"], "KEY")
    assert re.sub(r"last used [^)]*", "", want) == re.sub(r"last used [^)]*", "", got), (want, got)
    assert "confirm" not in got and got.endswith("run again with --force"), got
    # Options of the remote mode are usage errors locally, never silently ignored.
    usage(local(env, "create", "--account", "acme", "--name", "x", "--scopes", "read", "--idempotency-key", "k"),
          r"remote mode")
    usage(local(env, "list", "--page-size", "5"), r"remote mode")
