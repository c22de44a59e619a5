"""The console's assets served by tokend (server/console/): every file under
server/console/assets/ and the pinned Swagger UI files, byte for byte, with their
types, a strong ETag and 304 on If-None-Match, `Cache-Control: no-cache`, and the
security headers on every console response (errors and redirects included); paths
that try to leave the asset set (dot segments, encoded dots and slashes, NUL,
backslashes) answer 400 or 404 and never a file; `console = off` removes it all.
Real tokend over HTTP; no browser (test_console_apidocs.py drives one).
"""
import re

import pytest

from support.http import http_request, metric, parse_raw_responses, raw_exchange
from support.util import ROOT, free_port

pytestmark = pytest.mark.binary

ASSETS = ROOT / "server" / "console" / "assets"
SWAGGER = ROOT / "server" / "console" / "node_modules" / "swagger-ui-dist"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def asset_files():
    """{url path under /console/: file} for everything the build embeds."""
    out = {str(p.relative_to(ASSETS)): p for p in sorted(ASSETS.rglob("*")) if p.is_file()}
    for f in ("swagger-ui-bundle.js", "swagger-ui.css"):
        out[f"vendor/swagger-ui/{f}"] = SWAGGER / f
    return out


def secure(r):
    """Every console response's security headers, each exactly once."""
    for name, value in SECURITY.items():
        assert r.header_all(name) == [value], f"{name} on {r.status}: {r.header_list}"


@pytest.fixture(scope="module")
def srv(module_tokend, module_start_server):
    return module_start_server(module_tokend)


def get(srv, path, headers=None, method="GET"):
    return http_request(srv.port, method, path, headers=headers)


def test_every_asset_served_byte_for_byte_with_its_type_etag_and_headers(srv):
    files = asset_files()
    assert {"index.html", "app.js", "app.css", "api.html", "api.js",
            "vendor/swagger-ui/swagger-ui-bundle.js"} <= set(files)
    etags = {}
    for path, f in files.items():
        r = get(srv, "/console/" + path)
        assert r.status == 200, (path, r)
        assert r.body == f.read_bytes(), f"/console/{path} is not the file's bytes"
        assert r.headers["content-type"] == TYPES[f.suffix], (path, r.headers)
        assert r.headers["content-length"] == str(len(r.body))
        secure(r)
        assert re.fullmatch(r'"[0-9a-f]{32}"', r.headers["etag"]), r.headers["etag"]   # strong
        etags[path] = r.headers["etag"]
    assert len(set(etags.values())) == len(etags), "two different files share an ETag"


def test_pages_by_their_short_names_and_redirects(srv):
    index = (ASSETS / "index.html").read_bytes()
    r = get(srv, "/console/")
    assert r.status == 200 and r.body == index
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    secure(r)
    r = get(srv, "/console/api")
    assert r.status == 200 and r.body == (ASSETS / "api.html").read_bytes()
    secure(r)
    # A query string does not change what is served (and is not part of the name).
    r = get(srv, "/console/app.js?v=123")
    assert r.status == 200 and r.body == (ASSETS / "app.js").read_bytes()
    for path in ("/console", "/", "/console?x=1"):
        r = get(srv, path)
        assert r.status == 302, (path, r)
        assert r.headers["location"] == "/console/", r
        secure(r)


def test_html_has_no_inline_script_or_style(srv):
    """The CSP forbids them: the pages must not need them."""
    for name in ("index.html", "api.html"):
        html = get(srv, "/console/" + name).body.decode()
        for m in re.finditer(r"<script\b[^>]*>(.*?)</script>", html, re.S | re.I):
            assert "src=" in m.group(0).split(">")[0] and not m.group(1).strip(), f"inline script in {name}"
        assert not re.search(r"<style\b", html, re.I), f"<style> in {name}"
        assert not re.search(r"\sstyle\s*=", html, re.I), f"style attribute in {name}"
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), f"inline event handler in {name}"
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html, re.I), f"another origin in {name}"


def test_etag_and_304(srv):
    r = get(srv, "/console/app.css")
    etag = r.headers["etag"]
    body = r.body
    for inm in (etag, "W/" + etag, f'"nope", {etag}', f"{etag} ,\"x\"", "*"):
        r = get(srv, "/console/app.css", {"If-None-Match": inm})
        assert r.status == 304, (inm, r)
        assert r.body == b""
        assert r.headers["etag"] == etag
        secure(r)
    for inm in ('"nope"', etag[:-2] + '"', etag.strip('"'), "", "W/"):
        r = get(srv, "/console/app.css", {"If-None-Match": inm})
        assert r.status == 200 and r.body == body, (inm, r)
    # Another file's ETag does not validate this one.
    other = get(srv, "/console/app.js").headers["etag"]
    assert get(srv, "/console/app.css", {"If-None-Match": other}).status == 200
    # The pages validate too (no-cache: the browser asks every time, 304 when unchanged).
    page = get(srv, "/console/")
    r = get(srv, "/console/", {"If-None-Match": page.headers["etag"]})
    assert r.status == 304 and r.body == b""
    assert r.headers["cache-control"] == "no-cache"


def test_head_answers_headers_only(srv):
    full = get(srv, "/console/api.js")
    r = get(srv, "/console/api.js", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.headers["content-length"] == str(len(full.body))
    assert r.headers["etag"] == full.headers["etag"]
    secure(r)


def test_errors_carry_the_headers(srv):
    for path in ("/console/nope.js", "/console/index.htm", "/console/vendor/", "/console/vendor/swagger-ui/",
                 "/console/vendor/swagger-ui/index.html", "/console/vendor/swagger-ui/swagger-ui-bundle.js.map",
                 "/console/api/", "/console/app.js/", "/console/INDEX.HTML", "/console/.hidden"):
        r = get(srv, path)
        assert r.status in (400, 404), (path, r)
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        secure(r)
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        for path in ("/console/", "/console/app.js", "/console", "/"):
            r = get(srv, path, method=method)
            assert r.status == 405, (method, path, r)
            assert r.headers["allow"] == "GET, HEAD"
            secure(r)


TRAVERSALS = [
    "/console/../admin/v1/openapi.yaml",
    "/console/../../etc/passwd",
    "/console/..",
    "/console/./index.html",
    "/console//index.html",
    "/console/vendor/../index.html",
    "/console/%2e%2e/admin/v1/openapi.yaml",
    "/console/%2E%2E/%2E%2E/etc/passwd",
    "/console/.%2e/serve.c",
    "/console/..%2fadmin%2fv1%2fopenapi.yaml",
    "/console/..%2F..%2FCMakeLists.txt",
    "/console/vendor%2fswagger-ui%2fswagger-ui.css",
    "/console/%252e%252e/admin",
    "/console/%69ndex.html",
    "/console/index.html%00",
    "/console/index.html%00.png",
    "/console/..%5c..%5cCMakeLists.txt",
    "/console/..\\..\\CMakeLists.txt",
    "/console/%c0%ae%c0%ae/etc/passwd",
    "/console/node_modules/swagger-ui-dist/package.json",
    "/console/../console.c",
    "/console/assets/index.html",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_paths_outside_the_asset_set_are_refused(srv, path):
    files = asset_files()
    contents = {f.read_bytes() for f in files.values()}
    raw = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    data, _ = raw_exchange(srv.port, raw)
    (status, headers, body), = parse_raw_responses(data)
    assert status in (400, 404), (path, status, body[:200])
    assert body not in contents and len(body) < 200, (path, body[:200])
    assert b"openapi" not in body and b"root:" not in body and b"#include" not in body
    if status == 404 or headers.get("content-type", "").startswith("text/plain"):
        assert headers.get("content-security-policy") == CSP, (path, headers)


def test_nul_and_control_bytes_in_the_path(srv):
    """Raw NUL and control bytes never reach the lookup: the request head scanner refuses them."""
    for raw_path in (b"/console/index.html\x00", b"/console/\x00../x", b"/console/app.js\x01",
                     b"/console/app\tjs"):
        data, closed = raw_exchange(srv.port, b"GET " + raw_path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 400") or (closed and not data), (raw_path, data[:200])


def test_console_requests_counted_under_their_own_endpoint(srv):
    before = metric(srv.metrics(), "tokend_http_requests_total", endpoint="console", code="200")
    get(srv, "/console/")
    get(srv, "/console/app.js")
    after = metric(srv.metrics(), "tokend_http_requests_total", endpoint="console", code="200")
    assert after == before + 2


def test_console_off(module_tokend, start_server):
    off = start_server(module_tokend, console="off")
    for path in ("/console/", "/console/api", "/console/app.js", "/console", "/",
                 "/console/vendor/swagger-ui/swagger-ui-bundle.js"):
        r = get(off, path)
        assert r.status == 404, (path, r)
        assert "content-security-policy" not in r.headers
        assert b"<html" not in r.body.lower()
    # The rest of the server is unchanged.
    assert get(off, "/admin/v1/openapi.yaml").status == 200
    assert get(off, "/healthz").status == 200


def test_console_setting_refuses_bad_values(module_tokend):
    t = module_tokend
    for bad in ("maybe", "2", ""):
        cfg = t.write_config([f"database_url = {t.app_url}", f"console = {bad}"], name="bad-console.conf")
        r = t.run("serve", config=cfg, timeout=30)
        assert r.returncode != 0, bad
        assert "console" in r.stderr, r.stderr


def test_console_beside_the_admin_api_on_its_listener(module_tokend, start_server):
    """With admin_listen_port the console is where the admin API it calls is, not on the main port."""
    aport = free_port()
    s = start_server(module_tokend, admin_listen_port=aport)
    r = http_request(aport, "GET", "/console/api")
    assert r.status == 200 and b"swagger-ui" in r.body
    secure(r)
    assert get(s, "/console/api").status == 404
    assert get(s, "/").status == 404
    # The console signs in where it is served: the token endpoint and the
    # metadata answer on that listener too (connect-src 'self').
    r = http_request(aport, "POST", "/oauth2/token", "grant_type=client_credentials",
                     {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 401 and b"invalid_client" in r.body, r
    r = http_request(aport, "GET", "/.well-known/oauth-authorization-server")
    assert r.status == 200 and b"token_endpoint" in r.body, r
