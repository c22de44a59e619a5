"""
Issue 3, point 5: real node clients work unchanged against a running tokend.

node's openid-client 6 discovers the RFC 8414 metadata and runs the
client-credentials grant with client_secret_basic and client_secret_post; jose 6
verifies both tokens with createRemoteJWKSet + jwtVerify (issuer, audience,
typ at+jwt, ES256), and rejects a tampered token, a wrong audience, issuer, typ
or algorithm. The node side is tests/interop/run.mjs, pinned by
tests/interop/package-lock.json; its node_modules is installed here with
`npm ci` when missing. Without node or npm these tests fail (never skip).
Runs on node 18 (Debian 12's nodejs package) and on node 20 and later.
"""
import json
import os
import shutil
import subprocess

import pytest

from support.util import ROOT

INTEROP = ROOT / "tests" / "interop"
pytestmark = pytest.mark.binary


# --------------------------------------------------------------------------
# node + npm, and the locked dependencies
# --------------------------------------------------------------------------
def _tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"`{name}` not found on PATH: the node interop tests need node >= 20 and npm "
                    f"(Debian 12: apt-get install nodejs npm; scripts/install-deps.sh installs them)",
                    pytrace=False)
    return path


def _node_major(node):
    r = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    try:
        return int(r.stdout.strip().lstrip("v").split(".")[0])
    except ValueError:
        return 0


def _deps_installed():
    nm = INTEROP / "node_modules"
    return all((nm / p / "package.json").is_file() for p in ("openid-client", "jose", "oauth4webapi"))


class Node:
    def __init__(self, path, major):
        self.path = path
        self.major = major

    def env(self):
        """Environment for running node: on node 18 (Debian 12's nodejs), the WebCrypto
        global that jose 6 and openid-client 6 use is behind a flag (on by default
        from node 19)."""
        env = dict(os.environ)
        if self.major < 19:
            env["NODE_OPTIONS"] = (env.get("NODE_OPTIONS", "") + " --experimental-global-webcrypto").strip()
        return env


@pytest.fixture(scope="module")
def node():
    path = _tool("node")
    major = _node_major(path)
    if major < 18:
        pytest.fail(f"node {major} is too old for openid-client 6 / jose 6: need node >= 18 "
                    f"(Debian 12's nodejs is 18)", pytrace=False)
    if not _deps_installed():
        npm = _tool("npm")
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=INTEROP, capture_output=True,
                           text=True, timeout=600, stdin=subprocess.DEVNULL)
        if r.returncode != 0 or not _deps_installed():
            pytest.fail(f"`npm ci` in {INTEROP} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n"
                        f"{r.stderr[-3000:]}", pytrace=False)
    return Node(path, major)


# --------------------------------------------------------------------------
# a running `tokend serve`
# --------------------------------------------------------------------------
# What support.server.Server sets for the rest of the suite, left to tokend's defaults here:
# the node clients meet the configuration an operator starts from.
TOKEND_DEFAULTS = dict.fromkeys(("workers", "last_used_flush_interval", "log_level",
                                 "auth_failures_per_address", "auth_failures_per_key"))


@pytest.fixture
def serve(start_server):
    """Factory: serve(tokend) -> a ready `tokend serve` (support.server.Server) on a free loopback
    port, with an ES256 key; stopped after the test (its exit checked by the test)."""
    return lambda tokend: start_server(tokend, check_exit=False, **TOKEND_DEFAULTS)


def run_interop(node, srv, key, **env_extra):
    env = node.env()
    env.update({"TOKEND_ISSUER": srv.issuer, "TOKEND_CLIENT_ID": key["client_id"],
                "TOKEND_CLIENT_SECRET": key["client_secret"], "NO_COLOR": "1"})
    env.update({k: v for k, v in env_extra.items() if v is not None})
    r = subprocess.run([node.path, str(INTEROP / "run.mjs")], cwd=INTEROP, capture_output=True, text=True,
                       timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert key["client_secret"] not in r.stdout + r.stderr, "run.mjs printed the client secret"
    try:
        out = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"run.mjs printed no JSON (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    assert r.returncode == 0 and out.get("ok") is True, \
        f"node interop failed (exit {r.returncode}): {json.dumps(out.get('failures'), indent=2)}\n" \
        f"{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    return out


def _aud_list(aud):
    return aud if isinstance(aud, list) else [aud]


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------
def test_openid_client_and_jose(tokend, node, serve):
    tokend.account("acme")
    tokend.scopes("orders:read", "orders:write")
    key = tokend.create_key("acme", "node client", "orders:read orders:write")
    srv = serve(tokend)

    out = run_interop(node, srv, key, INTEROP_SCOPE="orders:read")

    md = out["metadata"]
    assert md["issuer"] == srv.issuer
    assert md["token_endpoint"] == f"{srv.issuer}/oauth2/token"
    assert md["jwks_uri"] == f"{srv.issuer}/.well-known/jwks.json"
    assert set(md["scopes_supported"]) >= {"orders:read", "orders:write"}
    assert "ES256" in md["access_token_signing_alg_values_supported"]

    basic, post = out["grants"]["basic"], out["grants"]["post"]
    for g in (basic, post):
        c, h = g["claims"], g["header"]
        assert h["alg"] == "ES256" and h["typ"] == "at+jwt" and h["kid"]
        assert c["iss"] == srv.issuer
        assert _aud_list(c["aud"]) == [srv.issuer]          # default audience: the issuer
        assert c["sub"] == key["client_id"]                 # no subject: sub is the key ID
        assert c["client_id"] == key["client_id"]
        assert c["acct"] == "acme"
        assert c["exp"] - c["iat"] == 600 == g["response"]["expires_in"]   # server default 10m
        assert g["response"]["token_type"].lower() == "bearer"
    # No scope requested: all of the key's; a subset requested: exactly that subset.
    assert sorted(basic["claims"]["scope"].split()) == ["orders:read", "orders:write"]
    assert post["claims"]["scope"] == "orders:read" == post["response"]["scope"]
    assert basic["claims"]["jti"] != post["claims"]["jti"]

    neg = out["negative"]
    for name in ("tampered_payload", "tampered_signature", "wrong_audience", "wrong_issuer",
                 "wrong_typ", "wrong_algorithm", "wrong_secret"):
        assert neg[name]["rejected"] is True, (name, neg[name])
    assert neg["tampered_payload"]["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"
    assert neg["wrong_audience"]["claim"] == "aud"
    assert neg["wrong_secret"]["status"] == 401 and neg["wrong_secret"]["error"] == "invalid_client"

    # The Token Status List verifies with jose and node's zlib reads the token's bit.
    sl = out["status_list"]
    uri = f"{srv.issuer}/oauth2/status-list"
    assert sl["content_type"] == "application/statuslist+jwt" and sl["typ"] == "statuslist+jwt", sl
    assert sl["sub"] == uri == sl["token_uri"] and sl["bits"] == 1 and sl["ttl"] == 60, sl
    assert sl["token_bit"] == 0 and sl["bytes"] > 0, sl

    srv.stop(check=False)
    assert srv.returncode == 0, srv.stderr_text()[-3000:]
    log = srv.stderr_text() + srv.stdout_text()
    assert key["client_secret"] not in log, "tokend logged the client secret"


def test_resource_subject_and_lifetime(tokend, node, serve):
    """RFC 8707 `resource` through openid-client, a participant subject, a per-key lifetime."""
    tokend.account("globex")
    tokend.scopes("billing:read", "billing:write")
    key = tokend.create_key("globex", "billing job", "billing:read billing:write",
                            "--audience", "https://api.example.com",
                            "--audience", "https://reports.example.com",
                            "--subject", "svc-billing", "--token-lifetime", "5m")
    srv = serve(tokend)

    out = run_interop(node, srv, key, INTEROP_SCOPE="billing:write",
                      INTEROP_RESOURCE="https://reports.example.com",
                      INTEROP_AUDIENCE="https://api.example.com")

    basic, post = out["grants"]["basic"]["claims"], out["grants"]["post"]["claims"]
    # No resource requested: every audience of the key.
    assert sorted(_aud_list(basic["aud"])) == ["https://api.example.com", "https://reports.example.com"]
    # One resource requested: exactly that one.
    assert _aud_list(post["aud"]) == ["https://reports.example.com"]
    for c in (basic, post):
        assert c["sub"] == "globex:svc-billing"
        assert c["client_id"] == key["client_id"]
        assert c["acct"] == "globex"
        assert c["exp"] - c["iat"] == 300
    assert post["scope"] == "billing:write"
    assert out["negative"]["wrong_audience"]["rejected"] is True
