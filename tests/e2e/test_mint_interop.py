"""
Issue 16: tokens minted by the hot path (claims written straight into a buffer,
header pre-encoded, a DigestSign context prepared once per key) verify with
three independent verifiers, for every algorithm tokend signs with: the
library's own (`tokend verify`, lib/src/verify.c over libjwt), node's jose 6
(tests/interop/verify.mjs) and Python's PyJWT. Custom claims with characters
that need JSON escaping (quotes, backslash, a control character, non-ASCII
UTF-8) come out exactly as stored, and a tampered token is refused by all three.
"""
import json
import shutil
import subprocess

import jwt
import pytest

from support.keys import tamper_payload, thumbprint
from support.registry import remember_secret, remember_token
from support.server import get_token
from support.util import ROOT

pytestmark = pytest.mark.binary

INTEROP = ROOT / "tests" / "interop"
ALGS = [("es256", "ES256"), ("ed25519", "EdDSA"), ("rs256", "RS256")]
ODD = {"note": "q\"uote b\\ack /slash \u0001 tab\t J\u00fcrgen \u20ac \U0001F511",
       "regions": ["eu\"", "\u00e9\\"], "ratio": 1.5, "seats": 5, "beta": True}


@pytest.fixture(scope="module")
def env(module_tokend):
    t = module_tokend
    t.account("acme", "--name", "Acme")
    t.scopes("read")
    t.grant_scopes("acme", "read")
    k = t.json("key", "create", "--account", "acme", "--name", "odd", "--scopes", "read",
               "--claims", json.dumps(ODD))
    remember_secret(k["client_secret"])
    return t, k


def node_verify(jwks, issuer, aud, alg, token):
    node = shutil.which("node")
    assert node, "node not found on PATH (scripts/install-deps.sh installs it)"
    assert (INTEROP / "node_modules" / "jose").is_dir(), "tests/interop/node_modules missing (npm ci there)"
    major = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    flags = ["--experimental-global-webcrypto"] if int(major.strip().lstrip("v").split(".")[0]) < 19 else []
    r = subprocess.run([node, *flags, str(INTEROP / "verify.mjs")],
                       cwd=INTEROP, input=token, capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "TOKEND_JWKS": json.dumps(jwks),
                            "TOKEND_ISSUER": issuer, "INTEROP_AUDIENCE": aud, "INTEROP_ALG": alg})
    assert token not in r.stdout + r.stderr
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {"error": r.stderr}


def lib_verify(t, jwks_url, issuer, token):
    r = t.run("verify", "--jwks-url", jwks_url, "--issuer", issuer, "-", input=token + "\n")
    assert token not in r.stdout + r.stderr
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else r.stderr)


@pytest.mark.parametrize("which,alg", ALGS)
def test_three_verifiers_accept_and_refuse(env, module_start_server, signing_keys, which, alg):
    t, key = env
    srv = module_start_server(t, keys=("es256", "ed25519", "rs256"),
                              signing_key_active=thumbprint(signing_keys[which]))
    try:
        tok = get_token(srv, key)
        remember_token(tok)
        jwks = srv.get("/.well-known/jwks.json").json()
        jwks_url = srv.base + "/.well-known/jwks.json"
        header = jwt.get_unverified_header(tok)
        assert header == {"alg": alg, "kid": thumbprint(signing_keys[which]), "typ": "at+jwt"}, header

        # PyJWT
        pk = jwt.PyJWKClient(jwks_url, cache_keys=False).get_signing_key_from_jwt(tok)
        py = jwt.decode(tok, pk.key, algorithms=[alg], issuer=srv.issuer, audience=srv.issuer)
        # the library (tokend verify)
        rc, lib = lib_verify(t, jwks_url, srv.issuer, tok)
        assert rc == 0, lib
        # node jose
        rc, nd = node_verify(jwks, srv.issuer, srv.issuer, alg, tok)
        assert rc == 0 and nd["ok"], nd
        assert nd["header"] == header

        for claims in (py, lib, nd["claims"]):
            assert {n: claims[n] for n in ODD} == ODD, claims
            assert claims["sub"] == key["client_id"] and claims["acct"] == "acme"
            assert claims["nbf"] == claims["iat"] and claims["exp"] > claims["iat"]
        assert py == nd["claims"]

        # One changed claim: all three refuse.
        bad = tamper_payload(tok, note="other")
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(bad, pk.key, algorithms=[alg], issuer=srv.issuer, audience=srv.issuer)
        rc, _ = lib_verify(t, jwks_url, srv.issuer, bad)
        assert rc == 1
        rc, nd = node_verify(jwks, srv.issuer, srv.issuer, alg, bad)
        assert rc == 1 and not nd["ok"] and "signature" in nd["error"], nd
    finally:
        srv.stop()
