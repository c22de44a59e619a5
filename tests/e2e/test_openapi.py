"""
The OpenAPI description of the admin API (docs/openapi.yaml, issue 4 point 5)
against the running code, so that the document cannot drift from it.

  * the document tokend serves at GET /admin/v1/openapi.yaml is docs/openapi.yaml
    byte for byte (a stale build fails here);
  * the document is well formed: OpenAPI 3.1, every $ref resolves, every
    operation names its scope (x-required-scope), request bodies refuse
    unknown members (additionalProperties: false), its own examples validate;
  * its routes are the server's: the fixed route table and the key actions in
    server/admin/route.c match the document (path, method, scope), every method a
    path does not list answers 405 (x-methods-not-allowed), near-miss paths 404;
  * every operation, sent for real: unauthenticated -> 401 (the public document:
    200); with a token one scope short -> 403 naming x-required-scope; with
    exactly that scope -> its documented 2xx; and the generic refusals (unknown
    ID 404, unknown member 400, bad query 400, body over 64 KiB 413). Each
    answer's status must be listed for the operation and its body must validate
    against the documented schema (a small JSON Schema 2020-12 subset validator
    below: type, enum, const, properties, required, additionalProperties,
    unevaluatedProperties, items, min/max, pattern, format date-time, $ref,
    allOf, oneOf, anyOf).

And (issue 17, point 4) the document is one tools accept: the OAuth endpoints (tag
oauth) are documented and answer as documented; the server URL is the issuer (substituted
when served, with the oauth2 scheme's tokenUrl); two maintained npm validators
(@seriousme/openapi-schema-validator, @apidevtools/swagger-parser, pinned by
tests/interop/package-lock.json) accept the file and the served document.

Needs python3-yaml (scripts/install-deps.sh installs it), node and npm.
"""
import json
import re
import urllib.parse
from pathlib import Path

import pytest
import yaml

from support.http import http_request
from support.keys import SECRET_FIND_RE, make_key_id
from support.registry import remember_token
from support.server import new_key

pytestmark = pytest.mark.binary

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "docs" / "openapi.yaml"
ADMIN_ROUTES_C = ROOT / "server" / "admin" / "route.c"
SPEC_TEXT = SPEC_PATH.read_bytes()
SPEC = yaml.safe_load(SPEC_TEXT)
# The document's server URL is the issuer (tokend substitutes its own when serving;
# the file names the default); the admin API's paths are under PREFIX, the OAuth
# endpoints' (tag oauth) are not. The admin checks below see the admin paths
# relative to PREFIX.
DEFAULT_ISSUER = "http://127.0.0.1:8080"
PREFIX = "/admin/v1"
ADMIN_PATHS = {p[len(PREFIX):]: item for p, item in SPEC["paths"].items() if p.startswith(PREFIX + "/")}
ADMIN_SPEC = {**SPEC, "paths": ADMIN_PATHS}
METHODS = ("get", "post", "put", "patch", "delete")
SCOPE_READ, SCOPE_WRITE, SCOPE_OPERATOR = "tokend:admin:read", "tokend:admin:write", "tokend:operator"
SCOPE_ORDER = [None, SCOPE_READ, SCOPE_WRITE, SCOPE_OPERATOR]


# ---------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------
def resolve(node, root=SPEC):
    """Follow local $refs (possibly chained)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"non-local $ref {ref}"
        node = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, f"$ref {ref} does not resolve"
            node = node[part]
        seen += 1
        assert seen < 20, f"$ref loop at {ref}"
    return node


def operations(spec=ADMIN_SPEC):
    out = []
    for path, item in spec["paths"].items():
        for m in METHODS:
            if m in item:
                out.append((path, m, item[m]))
    return out


OPS = operations()
OP_IDS = [op["operationId"] for _, _, op in OPS]


def op_params(path, method):
    item = ADMIN_PATHS[path]
    ps = [resolve(p) for p in item.get("parameters", [])] + \
         [resolve(p) for p in item[method].get("parameters", [])]
    return ps


def op_body_schema(op):
    rb = op.get("requestBody")
    if not rb:
        return None, None, False
    rb = resolve(rb)
    media = rb["content"]["application/json"]
    return media.get("schema"), media.get("example"), rb.get("required", False)


# ---------------------------------------------------------------------------
# A small JSON Schema (2020-12 subset) validator
# ---------------------------------------------------------------------------
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")
TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


class Invalid(AssertionError):
    pass


def validate(inst, schema, where="$"):
    """Raise Invalid when `inst` does not match `schema`; returns the evaluated property names."""
    evaluated = set()
    if schema is True or schema == {}:
        return set(inst) if isinstance(inst, dict) else evaluated
    if schema is False:
        raise Invalid(f"{where}: no value allowed")
    if "$ref" in schema:
        evaluated |= validate(inst, resolve({"$ref": schema["$ref"]}), where)
    for sub in schema.get("allOf", []):
        evaluated |= validate(inst, sub, where)
    if "anyOf" in schema:
        ok = []
        for sub in schema["anyOf"]:
            try:
                ok.append(validate(inst, sub, where))
            except Invalid:
                pass
        if not ok:
            raise Invalid(f"{where}: matches none of anyOf: {inst!r:.200}")
        for e in ok:
            evaluated |= e
    if "oneOf" in schema:
        ok, errs = [], []
        for sub in schema["oneOf"]:
            try:
                ok.append(validate(inst, sub, where))
            except Invalid as e:
                errs.append(str(e))
        if len(ok) != 1:
            raise Invalid(f"{where}: matches {len(ok)} of oneOf (exactly 1 needed): {inst!r:.200} {errs}")
        evaluated |= ok[0]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](inst) for t in types):
            raise Invalid(f"{where}: {inst!r:.120} is not of type {types}")
    if "const" in schema and inst != schema["const"]:
        raise Invalid(f"{where}: {inst!r:.120} != const {schema['const']!r}")
    if "enum" in schema and inst not in schema["enum"]:
        raise Invalid(f"{where}: {inst!r:.120} not in {schema['enum']}")
    if isinstance(inst, str):
        if "minLength" in schema and len(inst) < schema["minLength"]:
            raise Invalid(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(inst) > schema["maxLength"]:
            raise Invalid(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], inst):
            raise Invalid(f"{where}: {inst!r:.120} does not match {schema['pattern']}")
        if schema.get("format") == "date-time" and not RFC3339_RE.match(inst):
            raise Invalid(f"{where}: {inst!r} is not an RFC 3339 date-time")
    if TYPES["number"](inst):
        if "minimum" in schema and inst < schema["minimum"]:
            raise Invalid(f"{where}: {inst} < {schema['minimum']}")
        if "maximum" in schema and inst > schema["maximum"]:
            raise Invalid(f"{where}: {inst} > {schema['maximum']}")
    if isinstance(inst, list):
        if "minItems" in schema and len(inst) < schema["minItems"]:
            raise Invalid(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(inst) > schema["maxItems"]:
            raise Invalid(f"{where}: more than {schema['maxItems']} items")
        if schema.get("uniqueItems") and len({json.dumps(i, sort_keys=True) for i in inst}) != len(inst):
            raise Invalid(f"{where}: items are not unique")
        if "items" in schema:
            for i, v in enumerate(inst):
                validate(v, schema["items"], f"{where}[{i}]")
    if isinstance(inst, dict):
        for r in schema.get("required", []):
            if r not in inst:
                raise Invalid(f"{where}: required member {r!r} missing (has {sorted(inst)})")
        props = schema.get("properties", {})
        for k, v in inst.items():
            if k in props:
                validate(v, props[k], f"{where}.{k}")
                evaluated.add(k)
        if "additionalProperties" in schema:
            extra = [k for k in inst if k not in props]
            ap = schema["additionalProperties"]
            if ap is False and extra:
                raise Invalid(f"{where}: members not in the schema: {extra}")
            if isinstance(ap, dict):
                for k in extra:
                    validate(inst[k], ap, f"{where}.{k}")
            evaluated |= set(inst)
        if schema.get("unevaluatedProperties") is False:
            extra = [k for k in inst if k not in evaluated]
            if extra:
                raise Invalid(f"{where}: members not in the schema: {extra}")
            evaluated |= set(inst)
    return evaluated


def check_response(resp, op, label=""):
    """The status is documented for `op`, and the body matches the documented schema."""
    statuses = op["responses"]
    assert str(resp.status) in statuses, \
        f"{op['operationId']} {label}: status {resp.status} is not documented {sorted(statuses)}: {resp!r}"
    r = resolve(statuses[str(resp.status)])
    content = r.get("content", {})
    ctype = resp.headers.get("content-type", "").split(";")[0].strip()
    assert ctype in content, f"{op['operationId']} {label}: content type {ctype!r} not documented: {resp!r}"
    schema = content[ctype].get("schema")
    if ctype == "application/json":
        body = resp.json()
        try:
            validate(body, schema)
        except Invalid as e:
            raise AssertionError(f"{op['operationId']} {label}: {resp.status} body does not match the "
                                 f"documented schema: {e}\n{resp!r}")
        assert resp.headers.get("cache-control") == "no-store", resp
    for name, h in (r.get("headers") or {}).items():
        h = resolve(h)
        if name.lower() in resp.headers and "schema" in h:
            validate(resp.headers[name.lower()], h["schema"], f"header {name}")
    return resp


# ---------------------------------------------------------------------------
# Static checks of the document
# ---------------------------------------------------------------------------
def walk_refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                out.append(v)
            else:
                walk_refs(v, out)
    elif isinstance(node, list):
        for v in node:
            walk_refs(v, out)
    return out


def test_document_is_well_formed():
    assert SPEC["openapi"].startswith("3.1."), SPEC["openapi"]
    assert SPEC["info"]["title"] and SPEC["info"]["version"]
    assert SPEC["servers"][0]["url"] == DEFAULT_ISSUER
    schemes = SPEC["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["oauth2"]["type"] == "oauth2"
    cc = schemes["oauth2"]["flows"]["clientCredentials"]
    assert cc["tokenUrl"] == DEFAULT_ISSUER + "/oauth2/token"
    assert set(cc["scopes"]) == {SCOPE_READ, SCOPE_WRITE, SCOPE_OPERATOR}
    assert sorted(SPEC["security"], key=str) == [{"apiKey": []}, {"bearer": []}, {"oauth2": []}]
    # An API key sent directly (issue 14, point 3): X-API-Key, or Bearer <key-id>:<secret>.
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert "<key-id>:<secret>" in schemes["bearer"]["description"]
    assert "admin_api_key_auth" in schemes["apiKey"]["description"]
    # Every path is the admin API's or an OAuth endpoint's (tag oauth, its own security).
    for path, item in SPEC["paths"].items():
        if path.startswith(PREFIX + "/"):
            continue
        for m in METHODS:
            if m in item:
                assert item[m]["tags"] == ["oauth"] and "security" in item[m], f"{m} {path}"
    for ref in walk_refs(SPEC, []):
        resolve({"$ref": ref})
    assert len(set(OP_IDS)) == len(OP_IDS), "duplicate operationId"
    for path, m, op in OPS:
        name = f"{m.upper()} {path}"
        assert "x-required-scope" in op, f"{name}: no x-required-scope"
        scope = op["x-required-scope"]
        assert scope in SCOPE_ORDER, f"{name}: x-required-scope {scope!r}"
        statuses = set(op["responses"])
        assert all(re.fullmatch(r"[1-5]\d\d", s) for s in statuses), name
        if scope is None:
            assert op.get("security") == [], f"{name}: public but not security: []"
        else:
            assert "security" not in op, f"{name}: overrides the global bearer security"
            assert f"`{scope}`" in op["description"], f"{name}: the description does not name {scope}"
            assert {"400", "401", "403", "500", "503"} <= statuses, f"{name}: {sorted(statuses)}"
            assert any(s.startswith("2") for s in statuses), name
        # Path parameters are declared, and only those.
        declared = {p["name"] for p in op_params(path, m) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), f"{name}: path parameters {declared}"
        if declared:
            assert "404" in statuses, f"{name}: an ID in the path but no 404"
        schema, example, _ = op_body_schema(op)
        if schema is not None:
            assert {"400", "413"} <= statuses, f"{name}: a body but no 400/413"
            body = resolve(schema)
            if schema.get("$ref", "").endswith("/IgnoredBody"):
                assert "ignored" in body["description"].lower()
            else:
                assert body.get("additionalProperties") is False, f"{name}: the body accepts unknown members"
                assert body.get("type") == "object"
            if example is not None:
                validate(example, schema, f"{name} example")
        # Every JSON response has a schema.
        for st, r in op["responses"].items():
            r = resolve(r)
            for ctype, media in r.get("content", {}).items():
                assert "schema" in media, f"{name} {st} {ctype}: no schema"
    # Every path item says which other methods answer 405.
    for path, item in ADMIN_PATHS.items():
        listed = {m.upper() for m in METHODS if m in item}
        rest = {m.upper() for m in METHODS} - listed
        nal = set(item.get("x-methods-not-allowed", []))
        if path == "/openapi.yaml":
            assert nal == set(), "the public document answers 404 to other methods"
        else:
            assert nal == rest, f"{path}: x-methods-not-allowed {sorted(nal)} != {sorted(rest)}"


def test_schemas_reject_what_the_server_refuses():
    """The validator is not vacuous: the documented schemas refuse known-bad inputs."""
    kc = {"$ref": "#/components/schemas/KeyCreate"}
    good = {"name": "n", "scopes": ["orders:read"]}
    validate(good, kc)
    for bad in ({"name": "n"}, {**good, "zz": 1}, {**good, "name": "x" * 101}, {**good, "name": "a\nb"},
                {**good, "scopes": ["a", "a"]}, {**good, "scopes": []}, {**good, "token_lifetime": "60"},
                {**good, "token_lifetime": 0}, {**good, "expires_at": "tomorrow"}, {**good, "scopes": "a"},
                {**good, "audiences": ["a b"]}, {**good, "subject": ""}, {**good, "rate_limit": 0},
                {**good, "rate_limit": "5"}, {**good, "rate_limit": 1000001}):
        with pytest.raises(Invalid):
            validate(bad, kc)
    key = {"$ref": "#/components/schemas/Key"}
    sample = {"client_id": make_key_id(), "account": "a", "name": "n", "hint": "abcd", "masked": "tks_...abcd",
              "scopes": ["s"], "audiences": [], "subject": None, "state": "enabled",
              "created_at": "2026-01-02T03:04:05Z", "created_by": "cli:x", "expires_at": None,
              "last_used_at": None, "disabled_at": None, "revoked_at": None, "revoked_by": None,
              "revoke_reason": None, "token_lifetime": None, "rate_limit": None, "kind": "account", "role": None,
              "member": None, "member_name": None, "environment": "live", "claims": {},
              "secret_rotated_at": None, "previous_hint": None, "previous_secret_until": None,
              "allowed_origins": []}
    validate(sample, key)
    validate({**sample, "kind": "member", "member": "jane", "member_name": "Jane", "role": "dev",
              "environment": "test", "claims": {"plan": "pro", "n": 1.5, "b": True, "l": ["a"]}}, key)
    for bad in ({**sample, "kind": "robot"}, {**sample, "environment": "prod"},
                {**sample, "claims": {"nested": {"a": 1}}}, {**sample, "claims": {"l": [1]}}):
        with pytest.raises(Invalid):
            validate(bad, key)
    validate({"name": "n", "role": "dev"}, kc)
    for bad in ({**good, "role": "dev"}, {**good, "environment": "prod"}, {**good, "claims": []}):
        with pytest.raises(Invalid):
            validate(bad, kc)
    validate({**sample, "rate_limit": 60}, key)
    for bad in ({**sample, "secret_hash": "\\x00"}, {**sample, "client_secret": "tks_x"},
                {k: v for k, v in sample.items() if k != "masked"}, {**sample, "state": "gone"}):
        with pytest.raises(Invalid):
            validate(bad, key)
    validate({**sample, "client_secret": "tks_" + "a" * 49}, {"$ref": "#/components/schemas/KeyCreated"})


def test_route_table_matches_the_source():
    """server/admin/route.c's route table and the document name the same routes and scopes."""
    src = ADMIN_ROUTES_C.read_text()
    need_scope = {"READ": SCOPE_READ, "WRITE": SCOPE_WRITE, "OPERATOR": SCOPE_OPERATOR}
    table = re.findall(r'\{ EVHTTP_REQ_(\w+), "([a-z/{}-]+)", TK_ADMIN_OP_\w+, TK_ADMIN_NEED_(\w+) \}', src)
    assert len(table) >= 17, "could not read the route table of server/admin/route.c"
    documented = {(m.upper(), p): op["x-required-scope"] for p, m, op in OPS}

    def doc_path(pattern):   # the table's {id} is the document's {account_id}, {role_name}, ... or {key_id}
        for prefix, name in (("accounts/", "account_id"), ("roles/", "role_name"), ("members/", "member_id")):
            if pattern.startswith(prefix):
                return "/" + pattern.replace("{id}", "{" + name + "}")
        return "/" + pattern.replace("{id}", "{key_id}")

    routed = set()
    for method, pattern, need in table:
        key = (method, doc_path(pattern))
        assert key in documented, f"route {method} /admin/v1/{pattern} is not in docs/openapi.yaml"
        assert documented[key] == need_scope[need], f"{key}: document says {documented[key]}, code {need}"
        routed.add(key)
    for key in documented:
        assert key in routed or key == ("GET", "/openapi.yaml"), f"{key}: documented but not routed"


# ---------------------------------------------------------------------------
# Against the running server
# ---------------------------------------------------------------------------
class NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.fixture(scope="module")
def env(module_tokend, module_start_server):
    t = module_tokend
    t.account("acme", "--name", "Acme", "--key-limit", "1000")
    t.account("other", "--name", "Other")
    t.scopes("orders:read", "orders:write")
    # max_body_size above 64 KiB, so that the admin API's own body limit answers (a JSON 413);
    # with the default (8 KiB) the HTTP layer refuses larger bodies first.
    srv = module_start_server(t, max_body_size=1048576)

    keys = {}

    def token_for(scopes):
        k = keys[scopes] = new_key(t, "acme", f"openapi {scopes}", scopes)
        r = srv.token(k)
        assert r.status == 200, r
        tok = r.json()["access_token"]
        remember_token(tok)
        return tok

    tokens = {None: token_for("orders:read"), SCOPE_READ: token_for(SCOPE_READ),
              SCOPE_WRITE: token_for(SCOPE_WRITE), SCOPE_OPERATOR: token_for(SCOPE_OPERATOR)}
    # The same keys sent directly (scheme apiKey): "<key-id>:<secret>" by the scope of the key.
    direct = {s: f"{k['client_id']}:{k['client_secret']}" for s, k in
              ((None if s == "orders:read" else s, k) for s, k in keys.items())}
    e = NS(t=t, srv=srv, tokens=tokens, direct=direct, secrets=[])
    yield e
    # Secrets the API returned never reach the server's log.
    log = srv.stderr_text() + srv.stdout_text()
    for s in e.secrets:
        assert s not in log, "a client secret from the admin API is in the server's log"


def send(env, method, path, *, token=None, body=None, headers=None, query=""):
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    r = http_request(env.srv.port, method.upper(), PREFIX + path + query, body, h)
    for s in SECRET_FIND_RE.findall(r.body.decode("utf-8", "replace")):
        env.secrets.append(s)
    return r


def fill_path(env, path, method):
    """Concrete values for the path's parameters: a fresh key of acme; an account."""
    if "{key_id}" in path:
        k = new_key(env.t, "acme", f"openapi target {method}", "orders:read")
        path = path.replace("{key_id}", k["client_id"])
    if "{account_id}" in path:
        # GET: the read token's own account; PATCH (operator): another one.
        path = path.replace("{account_id}", "acme" if method == "get" else "other")
    if "{role_name}" in path:
        env.t.run("role", "add", "openapi-role", "--scopes", "orders:read")   # once; later runs: exists
        path = path.replace("{role_name}", "openapi-role")
    if "{member_id}" in path:
        FILLED[0] += 1
        mid = f"openapi-m{FILLED[0]}"
        env.t.json("member", "add", "acme", mid, "--name", "OpenAPI member")
        path = path.replace("{member_id}", mid)
    return path


FILLED = [0]


def unknown_ids(path):
    return (path.replace("{key_id}", make_key_id()).replace("{account_id}", "no-such-account")
            .replace("{role_name}", "no-such-role").replace("{member_id}", "no-such-member"))


def below(scope):
    return SCOPE_ORDER[SCOPE_ORDER.index(scope) - 1]


@pytest.mark.parametrize("path,method,op", OPS, ids=OP_IDS)
def test_operation_answers_as_documented(env, path, method, op):
    scope = op["x-required-scope"]
    schema, example, body_required = op_body_schema(op)
    concrete = fill_path(env, path, method)
    body = example if example is not None else ({} if body_required else None)

    if scope is None:
        # The public document.
        r = send(env, method, concrete)
        check_response(r, op, "public")
        assert r.status == 200
        return

    # 1. No credentials: 401 with the Bearer challenge.
    r = check_response(send(env, method, concrete, body=body), op, "unauthenticated")
    assert r.status == 401, r
    assert r.headers["www-authenticate"].startswith('Bearer realm="tokend-admin", error="invalid_token"'), r
    assert r.json()["error"] == "invalid_token"

    # 2. One scope short: 403 naming the documented scope.
    r = check_response(send(env, method, concrete, token=env.tokens[below(scope)], body=body), op, "scope short")
    assert r.status == 403, r
    assert r.json()["error"] == "insufficient_scope" and r.json()["scope"] == scope, r
    assert f'scope="{scope}"' in r.headers["www-authenticate"], r

    # 2b. The documented apiKey scheme, live: the key one scope short sent directly gets
    # the same 403 (X-API-Key and Bearer alike); a token in X-API-Key the documented 401
    # (wrong secrets: test_admin_key_auth.py, which also counts them against the limits).
    short = env.direct[below(scope)]
    for h in ({"X-API-Key": short}, {"Authorization": "Bearer " + short}):
        r = check_response(send(env, method, concrete, body=body, headers=h), op, "apiKey scope short")
        assert r.status == 403 and r.json()["scope"] == scope, r
    r = check_response(send(env, method, concrete, body=body, headers={"X-API-Key": env.tokens[scope]}),
                       op, "apiKey with a token")
    assert r.status == 401 and r.json()["error"] == "invalid_token", r

    tok = env.tokens[scope]
    # 3. Malformed query string: 400 (documented for every authenticated operation).
    r = check_response(send(env, method, concrete, token=tok, body=body, query="?%zz"), op, "bad query")
    assert r.status == 400, r

    # 4. Generic refusals, before the real call (they must change nothing).
    if "{" in path:
        unknown = unknown_ids(path)
        r = check_response(send(env, method, unknown, token=env.tokens[SCOPE_OPERATOR], body=body), op, "unknown ID")
        assert r.status == 404, r
        assert r.json()["error"] == "not_found"
    if schema is not None:
        big = {"name": "x" * 70000}
        r = check_response(send(env, method, concrete, token=tok, body=big), op, "body over 64 KiB")
        assert r.status == 413, r
        r = check_response(send(env, method, concrete, token=tok, body="[]"), op, "non-object body")
        assert r.status == 400, r
        if resolve(schema).get("additionalProperties") is False:
            r = check_response(send(env, method, concrete, token=tok, body={**(body or {}), "zz_unknown": 1}),
                               op, "unknown member")
            assert r.status == 400 and r.json().get("field") == "zz_unknown", r
    for p in op_params(path, method):
        if p["in"] != "query":
            continue
        s = resolve(p["schema"])
        bad = {"integer": "0" if s.get("minimum") == 1 else "x"}.get(s.get("type"))
        if "enum" in s:
            bad = "no-such-value"
        if "pattern" in s:
            bad = "!"
        if bad is None or p["name"] == "confirm":
            continue
        q = "?" + urllib.parse.urlencode({p["name"]: bad})
        r = check_response(send(env, method, concrete, token=tok, query=q), op, f"bad {p['name']}")
        assert r.status == 400 and r.json().get("field") == p["name"], r

    # 5. The real call, with exactly the documented scope.
    headers = {}
    idem = [p for p in op_params(path, method) if p["in"] == "header" and p["name"] == "Idempotency-Key"]
    if idem:
        headers["Idempotency-Key"] = "openapi-" + op["operationId"]
    r = check_response(send(env, method, concrete, token=tok, body=body, headers=headers), op, "authorised")
    assert 200 <= r.status < 300, r
    if op["operationId"] == "createKey":
        assert r.status == 201 and r.headers["location"] == f"{PREFIX}/keys/{r.json()['client_id']}", r
        first = r.json()
        # The documented replay: same Idempotency-Key, same body -> 200, no secret.
        r = check_response(send(env, method, concrete, token=tok, body=body, headers=headers), op, "replay")
        assert r.status == 200 and r.headers.get("idempotent-replayed") == "true", r
        assert r.json()["client_id"] == first["client_id"] and r.json()["client_secret"] is None
        # ... and a different body with it: 422.
        r = check_response(send(env, method, concrete, token=tok, body={**body, "name": "other"}, headers=headers),
                           op, "idempotency mismatch")
        assert r.status == 422, r
    if op["operationId"] in ("createAccount", "addScope", "addRole", "addMember"):
        assert r.status == 201, r
        # The same again: 409 conflict (documented).
        r = check_response(send(env, method, concrete, token=tok, body=body), op, "again")
        assert r.status == 409, r


@pytest.mark.parametrize("path", list(ADMIN_PATHS))
def test_undocumented_methods_are_refused(env, path):
    """Every method the document does not list for a path is 405 (the public document: 404)."""
    item = ADMIN_PATHS[path]
    concrete = path.replace("{key_id}", make_key_id()).replace("{account_id}", "acme")
    for m in METHODS:
        if m in item:
            continue
        r = send(env, m, concrete, body="{}" if m in ("post", "put", "patch") else None)
        want = 405 if m.upper() in item.get("x-methods-not-allowed", []) else 404
        assert r.status == want, f"{m.upper()} {path}: {r!r}"
        if want == 405:
            assert r.json()["error"] == "method_not_allowed", r
            validate(r.json(), SPEC["components"]["responses"]["MethodNotAllowed"]["content"]
                     ["application/json"]["schema"])


def test_unknown_paths_are_404(env):
    """Near-miss paths are not routes (no undocumented endpoint answers)."""
    kid = make_key_id()
    for p in ("", "/", "/keys/", f"/keys/{kid}/", f"/keys/{kid}/rotate", f"/keys/{kid}/disable/x",
              f"/keys/{kid}/secret", "/accounts/acme/keys", "/accounts/", "/accounts/acme/x", "/scopes/read",
              "/audit/1", "/key", "/Keys", "/account/acme", "/tokens", "/openapi.json", "/openapi.yaml/x"):
        for m in ("get", "post", "delete"):
            r = send(env, m, p, token=env.tokens[SCOPE_OPERATOR], body="{}" if m == "post" else None)
            assert r.status == 404, f"{m.upper()} {PREFIX}{p}: {r!r}"


def served_text(issuer):
    """docs/openapi.yaml as tokend serves it: the issuer as server URL and token URL."""
    text = SPEC_TEXT.decode()
    quoted = json.dumps(issuer.rstrip("/"))
    token = json.dumps(issuer.rstrip("/") + "/oauth2/token")
    assert text.count(f"\n  - url: {DEFAULT_ISSUER}\n") == 1
    assert text.count(f"tokenUrl: {DEFAULT_ISSUER}/oauth2/token\n") == 1
    text = text.replace(f"\n  - url: {DEFAULT_ISSUER}\n", f"\n  - url: {quoted}\n")
    return text.replace(f"tokenUrl: {DEFAULT_ISSUER}/oauth2/token\n", f"tokenUrl: {token}\n").encode()


def test_served_document_is_docs_openapi_yaml(env):
    """GET /admin/v1/openapi.yaml (public) serves docs/openapi.yaml as built into the binary, with
    the issuer as its server URL and the oauth2 token URL."""
    r = http_request(env.srv.port, "GET", PREFIX + "/openapi.yaml")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/yaml"), r
    assert r.body == served_text(env.srv.issuer), (
        "the served OpenAPI document differs from docs/openapi.yaml: rebuild "
        "(cmake --build build --target tokend-bin)")
    served = yaml.safe_load(r.body)
    assert served["servers"][0]["url"] == env.srv.issuer
    assert served["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == \
        env.srv.issuer + "/oauth2/token"
    # Otherwise the same document.
    served["servers"][0]["url"] = DEFAULT_ISSUER
    served["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] = \
        DEFAULT_ISSUER + "/oauth2/token"
    assert served == SPEC


# ---------------------------------------------------------------------------
# The OAuth endpoints (tag oauth), sent for real (issue 17, point 4)
# ---------------------------------------------------------------------------
OAUTH_PATHS = {p: item for p, item in SPEC["paths"].items() if not p.startswith(PREFIX + "/")}


def oauth_check(r, path, method):
    """The answer's status is documented for the operation and its body matches the schema."""
    op = SPEC["paths"][path][method]
    st = str(r.status)
    assert st in op["responses"], f"{method.upper()} {path}: {r.status} is not documented: {r!r}"
    resp = resolve(op["responses"][st])
    ctype = r.headers.get("content-type", "").split(";")[0]
    if resp.get("content"):
        assert ctype in resp["content"], f"{method.upper()} {path} {st}: {ctype} not documented"
        body = r.json() if ctype.endswith("json") else r.body.decode()   # a JWT: text
        validate(body, resp["content"][ctype]["schema"], f"{method.upper()} {path} {st}")
    return r


def test_oauth_endpoints_are_documented_and_answer_as_documented(env):
    assert set(OAUTH_PATHS) == {"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke",
                                "/.well-known/jwks.json", "/.well-known/oauth-authorization-server",
                                "/oauth2/status-list"}
    srv = env.srv
    # The metadata's endpoints are the documented paths at the issuer.
    r = oauth_check(srv.get("/.well-known/oauth-authorization-server"), "/.well-known/oauth-authorization-server",
                    "get")
    meta = r.json()
    for member, path in (("token_endpoint", "/oauth2/token"), ("introspection_endpoint", "/oauth2/introspect"),
                         ("revocation_endpoint", "/oauth2/revoke"), ("jwks_uri", "/.well-known/jwks.json")):
        assert meta[member] == srv.issuer + path, (member, meta[member])
    assert meta["status_list_uri"] == srv.issuer + "/oauth2/status-list"
    r = oauth_check(srv.get("/oauth2/status-list"), "/oauth2/status-list", "get")
    assert r.status == 200 and r.headers["content-type"] == "application/statuslist+jwt", r
    assert oauth_check(srv.get("/oauth2/status-list", headers={"If-None-Match": r.headers["etag"]}),
                       "/oauth2/status-list", "get").status == 304
    r = oauth_check(srv.get("/.well-known/jwks.json"), "/.well-known/jwks.json", "get")
    assert oauth_check(srv.get("/.well-known/jwks.json", headers={"If-None-Match": r.headers["etag"]}),
                       "/.well-known/jwks.json", "get").status == 304
    k = new_key(env.t, "acme", "openapi oauth", "orders:read tokend:introspect")
    r = oauth_check(srv.token(k), "/oauth2/token", "post")
    assert r.status == 200
    tok = r.json()["access_token"]
    remember_token(tok)
    for bad in (dict(k, client_secret=k["client_secret"][:-2] + "xx"),):
        assert oauth_check(srv.token(bad), "/oauth2/token", "post").status == 401
    assert oauth_check(srv.token(k, scope="nope"), "/oauth2/token", "post").status == 400
    assert oauth_check(srv.token(k, grant_type="password"), "/oauth2/token", "post").status == 400
    form = f"token={tok}&client_id={k['client_id']}&client_secret={k['client_secret']}"
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    r = oauth_check(srv.request("POST", "/oauth2/introspect", form, h), "/oauth2/introspect", "post")
    assert r.json()["active"] is True
    r = oauth_check(srv.request("POST", "/oauth2/revoke", form, h), "/oauth2/revoke", "post")
    assert r.status == 200
    r = oauth_check(srv.request("POST", "/oauth2/introspect", form, h), "/oauth2/introspect", "post")
    assert r.json() == {"active": False}
    assert oauth_check(srv.request("POST", "/oauth2/revoke", "token=x", h), "/oauth2/revoke", "post").status == 401


# ---------------------------------------------------------------------------
# Tools accept it: two maintained validators from the npm registry, pinned by
# tests/interop/package-lock.json (tests/interop/validate-openapi.mjs)
# ---------------------------------------------------------------------------
INTEROP = ROOT / "tests" / "interop"
VALIDATORS = ("@seriousme/openapi-schema-validator", "@apidevtools/swagger-parser", "yaml")


@pytest.fixture(scope="module")
def node():
    import shutil
    import subprocess
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed (Debian: apt-get install nodejs npm; "
                    "scripts/install-deps.sh installs them)", pytrace=False)
    nm = INTEROP / "node_modules"
    if not all((nm / p / "package.json").is_file() for p in VALIDATORS):
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=INTEROP, capture_output=True, text=True,
                           timeout=600, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"npm ci in {INTEROP} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return node


def run_validators(node, where):
    import subprocess
    r = subprocess.run([node, str(INTEROP / "validate-openapi.mjs"), str(where)], cwd=INTEROP,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"validate-openapi.mjs (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.returncode, out


def test_validators_accept_the_document(node):
    rc, out = run_validators(node, SPEC_PATH)
    assert rc == 0 and out["seriousme"]["valid"] and out["swaggerParser"]["valid"], out


def test_validators_accept_the_served_document(node, env):
    url = f"http://127.0.0.1:{env.srv.port}{PREFIX}/openapi.yaml"
    rc, out = run_validators(node, url)
    assert rc == 0 and out["seriousme"]["valid"] and out["swaggerParser"]["valid"], out


def test_validators_are_not_vacuous(node, tmp_path):
    """What the issue reported (a license with a name only) and a dangling $ref are refused."""
    lic = yaml.safe_load(SPEC_TEXT)
    lic["info"]["license"] = {"name": "see the repository"}
    p = tmp_path / "license.yaml"
    p.write_text(yaml.safe_dump(lic))
    rc, out = run_validators(node, p)
    assert rc == 1 and not out["swaggerParser"]["valid"] and "license" in out["swaggerParser"]["error"], out
    dangling = SPEC_TEXT.decode().replace('$ref: "#/components/schemas/TokenResponse"',
                                          '$ref: "#/components/schemas/NoSuchSchema"')
    p = tmp_path / "dangling.yaml"
    p.write_text(dangling)
    rc, out = run_validators(node, p)
    assert rc == 1 and not out["swaggerParser"]["valid"], out
    bad = yaml.safe_load(SPEC_TEXT)
    bad["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"].pop("tokenUrl")
    p = tmp_path / "notoken.yaml"
    p.write_text(yaml.safe_dump(bad))
    rc, out = run_validators(node, p)
    assert rc == 1 and not out["seriousme"]["valid"], out
