"""
End-to-end tests of batched key lookups (issue 16, cold cache): many token
requests with distinct, uncached keys at once are looked up together (one
statement for many keys, server/db/dbpool.c), and each request still gets
the answer of its own key: a token naming that key for a right secret, 401
invalid_client for a wrong secret, an unknown key or a disabled one, and one
shared lookup for the same key asked for by several requests at once.

SECURITY.md rows: B1 (failure oracle: the same 401 for every refusal).
"""
import hashlib
import hmac
import random
import threading

import jwt
import pytest

from support.http import token_request
from support.keys import make_key_id, make_secret
from support.registry import remember_token
from support.server import new_key

pytestmark = pytest.mark.binary

AUTH_FAILED = {"error": "invalid_client", "error_description": "client authentication failed"}
N_OK, N_DISABLED = 120, 20


@pytest.fixture(scope="module")
def env(module_tokend, module_start_server):
    t = module_tokend
    t.account("acme", "--name", "Acme", "--key-limit", "1000")
    t.seed_scopes("read")
    t.grant_scopes("acme", "read")
    # Keys inserted with one statement (key creation has its own tests): the
    # secret's HMAC under the server's pepper, as `key create` stores it.
    keys = []
    for i in range(N_OK + N_DISABLED):
        kid, secret = make_key_id(), make_secret()
        keys.append({"client_id": kid, "client_secret": secret, "disabled": i >= N_OK})
    t.query("INSERT INTO api_keys (id, account_id, name, secret_hash, secret_hint, scopes)"
            " SELECT x.id, 'acme', 'batch ' || x.id, decode(x.h, 'hex'), 'AbCd', ARRAY['read']"
            " FROM unnest(%s::text[], %s::text[]) AS x(id, h) RETURNING 1",
            ([k["client_id"] for k in keys],
             [hmac.new(t.pepper_bytes, k["client_secret"].encode(), hashlib.sha256).hexdigest() for k in keys]))
    t.query("UPDATE api_keys SET disabled_at = now() WHERE id = ANY(%s) RETURNING 1",
            ([k["client_id"] for k in keys if k["disabled"]],))
    # One made by `key create` (its secret is in the session's leak scan).
    cli = new_key(t, "acme", "cli", "read")
    keys.append({"client_id": cli["client_id"], "client_secret": cli["client_secret"], "disabled": False})
    # One pool connection: lookups queue up behind each other, so batches form.
    srv = module_start_server(t, db_pool_size="1", log_level="debug", cache_ttl="1h")
    return t, srv, keys


def ask_all(srv, cases, threads=32):
    """Send every (label, key_id, secret) at once from `threads` connections; answers in order."""
    out = [None] * len(cases)
    gate = threading.Barrier(threads)
    nxt = iter(range(len(cases)))
    lock = threading.Lock()

    def run():
        gate.wait()
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                return
            _, kid, secret = cases[i]
            try:
                out[i] = token_request(srv.port, {"grant_type": "client_credentials"},
                                       auth=(kid, secret), timeout=30)
            except OSError as e:   # recorded, asserted below
                out[i] = e

    ths = [threading.Thread(target=run) for _ in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    return out


def check(srv, cases, answers):
    wrong = []
    for (label, kid, _), r in zip(cases, answers):
        if isinstance(r, Exception) or r is None:
            wrong.append((label, kid, r))
            continue
        if label == "ok":
            if r.status != 200:
                wrong.append((label, kid, r))
                continue
            tok = r.json()["access_token"]
            remember_token(tok)
            claims = jwt.decode(tok, options={"verify_signature": False})
            # The token of this key, not of another one of the batch.
            if claims.get("client_id") != kid or claims.get("sub") != kid or claims.get("acct") != "acme":
                wrong.append((label, kid, claims))
        elif r.status != 401 or r.json() != AUTH_FAILED:
            wrong.append((label, kid, r))
    assert not wrong, f"{len(wrong)} wrong answers, first: {wrong[:3]}"


def test_concurrent_distinct_keys_each_answered_from_its_own_row(env):
    t, srv, keys = env
    ok = [k for k in keys if not k["disabled"]]
    disabled = [k for k in keys if k["disabled"]]
    cases = []
    for k in ok[:80] + ok[-1:]:
        cases.append(("ok", k["client_id"], k["client_secret"]))
    for k in ok[80:110]:                      # a known key, a wrong (well-formed) secret
        cases.append(("wrong_secret", k["client_id"], make_secret()))
    for k in disabled:                        # the right secret of a disabled key
        cases.append(("disabled", k["client_id"], k["client_secret"]))
    for _ in range(30):                       # keys that do not exist
        cases.append(("unknown", make_key_id(), make_secret()))
    random.Random(16).shuffle(cases)
    before = srv.log_events("db.key_batch")
    answers = ask_all(srv, cases)
    check(srv, cases, answers)
    batches = [int(e["keys"]) for e in srv.log_events("db.key_batch")[len(before):]]
    # The lookups went out together: batches of more than one key, fewer
    # statements than keys.
    assert batches and max(batches) > 1, f"no batched lookup: {batches}"
    assert sum(batches) <= len(cases)
    refused = srv.log_events("token.refused")
    reasons = {e.get("reason") for e in refused}
    assert {"wrong_secret", "unknown_key", "key_disabled"} <= reasons, reasons
    # Cached now: asked again, the same answers (no database work).
    again = ask_all(srv, cases, threads=8)
    check(srv, cases, again)
    # Never a secret in the log, even at debug level (these secrets were never
    # displayed, so the session's leak scan does not know them).
    log = srv.stderr_text() + srv.stdout_text()
    assert not [c for c in cases if c[2] in log]


def test_same_key_at_once_single_answer_each(env):
    """Requests for one uncached key at the same time (one shared lookup when
    they land in one batch): each gets its own token; a wrong secret among them
    gets 401."""
    t, srv, keys = env
    k = [k for k in keys if not k["disabled"]][115]
    cases = [("ok", k["client_id"], k["client_secret"])] * 24
    cases += [("wrong_secret", k["client_id"], make_secret())] * 8
    other = [k for k in keys if not k["disabled"]][116:120]
    cases += [("ok", o["client_id"], o["client_secret"]) for o in other for _ in range(4)]
    random.Random(7).shuffle(cases)
    answers = ask_all(srv, cases)
    check(srv, cases, answers)
    jtis = {jwt.decode(r.json()["access_token"], options={"verify_signature": False})["jti"]
            for (label, _, _), r in zip(cases, answers) if label == "ok"}
    assert len(jtis) == 24 + 16               # every token its own
