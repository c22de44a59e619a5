"""Issue 17.6: the README's examples run as written. The PyJWT verification
example takes the algorithm from the JWKS (so it works for every signing key
kind tokend publishes), and the admin API example uses an Idempotency-Key
generator installed by default (no uuidgen)."""
import re

import pytest

from support.server import new_key
from support.util import ROOT

pytestmark = pytest.mark.binary

README = (ROOT / "README.md").read_text()


def python_example():
    m = re.search(r"for example with PyJWT\..*?```python\n(.*?)```", README, re.S)
    assert m, "the README's PyJWT example is gone"
    return m.group(1)


@pytest.mark.parametrize("kind", ["es256", "ed25519", "rs256"])
def test_pyjwt_example_verifies_every_signing_key_kind(tokend, start_server, kind):
    code = python_example()
    assert 'algorithms=["ES256"]' not in code
    tokend.account("acme")
    tokend.seed_scopes("read")
    key = new_key(tokend, "acme")
    srv = start_server(tokend, keys=(kind,))
    code = code.replace('base = "http://127.0.0.1:8080"', f'base = "{srv.base}"')
    ns = {"ID": key["client_id"], "SECRET": key["client_secret"]}
    exec(compile(code, "README.md (PyJWT example)", "exec"), ns)
    assert ns["claims"]["client_id"] == key["client_id"]
    assert ns["jwk"]["alg"] == {"es256": "ES256", "ed25519": "EdDSA", "rs256": "RS256"}[kind]


def test_no_example_needs_uuidgen():
    assert "uuidgen" not in README
    assert "$(cat /proc/sys/kernel/random/uuid)" in README
    with open("/proc/sys/kernel/random/uuid") as f:
        assert re.fullmatch(r"[0-9a-f-]{36}\n", f.read())


def test_readme_says_what_revocation_means_offline():
    text = " ".join(README.split())
    # Offline verifiers learn revocations from the status list, fail closed, and the
    # window is the list's ttl; short lifetimes still bound it without a list.
    assert "A resource server that verifies tokens offline learns it from the **Token Status List**" in text
    assert "**fail closed**" in text and "status_list_ttl" in text
    assert "token_lifetime" in text and "--token-lifetime" in text
