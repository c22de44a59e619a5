"""
Regression tests of defects a read-through found in the admin API (issue 11,
item 7), against the real tokend and PostgreSQL:

  - the admin API logged the full request URI, query string included, against
    the rule the HTTP layer keeps (a query string may carry credentials): a
    canary in the query string must never reach the log;
  - key creation put json_string_value() of the database's answer into the
    Location header with %s, unchecked: an answer lacking "key" gave a 201
    with an empty body and "Location: /admin/v1/keys/(null)". It must be a
    500 that names nothing and shows no secret.

(The third defect, a heap copy of the secret's hash freed without a wipe,
has no test that can observe it from outside the process: freed memory is
not readable over HTTP, and a test inside the process would need the
allocator replaced. The fix keeps the hash in the request, wiped with it.)
"""
import json

import pytest

from support.http import http_request
from support.server import get_token, new_key

pytestmark = pytest.mark.binary

A = "/admin/v1"
OPERATOR = "tokend:operator"


def admin_request(srv, token, method, path, body=None):
    h = {"Authorization": "Bearer " + token}
    data = None
    if body is not None:
        data = json.dumps(body)
        h["Content-Type"] = "application/json"
    return http_request(srv.port, method, A + "/" + path, data, h)


@pytest.fixture
def operator(tokend, start_server):
    tokend.account("ops", "--key-limit", "100")
    tokend.scopes("read")
    tokend.grant_scopes("ops", "read")
    srv = start_server(tokend)
    key = new_key(tokend, "ops", "operator", OPERATOR)
    return srv, get_token(srv, key)


def test_admin_log_has_no_query_string(tokend, operator):
    srv, token = operator
    canary = "qscanary7d41"
    for path in (f"keys?name={canary}", f"keys?state=enabled&name={canary}&limit=5",
                 f"audit?limit=3&account={canary}", f"account?x={canary}",
                 f"accounts?{canary}=1", f"scopes?{canary}=x"):
        r = admin_request(srv, token, "GET", path)
        assert r.status == 200, (path, r)
    # The requests were logged (by the HTTP layer and the admin API), by path only.
    logged = srv.log_lines("admin.request")
    assert any('path=/admin/v1/keys' in l or 'path="/admin/v1/keys"' in l for l in logged), logged
    leaks = [l for l in srv.log_lines() if canary in l]
    assert not leaks, leaks


def test_key_create_answer_without_key_is_500(tokend, operator):
    srv, token = operator
    # A database whose create function answers without "key" (the same
    # signature as sql/010_publishable_keys.sql's, which tokend calls).
    tokend.query("""
        CREATE OR REPLACE FUNCTION tokend_admin_create_key(
            p_actor text, p_address text, p_account text, p_id text, p_name text, p_hash bytea,
            p_hint text, p_scopes text[], p_audiences text[], p_subject text, p_expires_at timestamptz,
            p_lifetime integer, p_idem text, p_fingerprint text, p_rate_limit integer,
            p_operator boolean, p_caller_scopes text[], p_caller_expires timestamptz,
            p_role text, p_member text, p_environment text, p_claims jsonb,
            p_publishable boolean, p_origins text[])
        RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"replayed": false}'::jsonb $$""")
    r = admin_request(srv, token, "POST", "keys", {"name": "nokey", "scopes": ["read"]})
    assert r.status == 500, r
    assert r.json().get("error") == "server_error", r
    assert "location" not in r.headers, r
    assert b"tks_" not in r.body, r
    # A "key" that is not an object with a client_id: the same.
    tokend.query("""
        CREATE OR REPLACE FUNCTION tokend_admin_create_key(
            p_actor text, p_address text, p_account text, p_id text, p_name text, p_hash bytea,
            p_hint text, p_scopes text[], p_audiences text[], p_subject text, p_expires_at timestamptz,
            p_lifetime integer, p_idem text, p_fingerprint text, p_rate_limit integer,
            p_operator boolean, p_caller_scopes text[], p_caller_expires timestamptz,
            p_role text, p_member text, p_environment text, p_claims jsonb,
            p_publishable boolean, p_origins text[])
        RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"key": {"name": "x"}, "replayed": false}'::jsonb $$""")
    r = admin_request(srv, token, "POST", "keys", {"name": "nokey2", "scopes": ["read"]})
    assert r.status == 500, r
    assert "location" not in r.headers, r
    assert b"tks_" not in r.body, r
