"""Issue 14, point 2, in a real browser: headless Chromium (support.browser) loads a
page from a second local port (an allowed origin of a publishable key) and from a
third one (not allowed), and calls tokend's token endpoint with `fetch`, as the README's
embed example does. 127.0.0.1:A and 127.0.0.1:B are different origins, so every call
here is cross-origin and the browser enforces CORS on tokend's answers."""
import http.server
import json
import threading

import jwt
import pytest

from support.http import http_request
from support.registry import remember_token
from support.server import new_key

pytestmark = pytest.mark.binary

PAGE = b"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>widget</title></head>
<body><h1>widget</h1></body></html>"""

# The embed example's call (README), with the token endpoint and key ID as arguments.
# `preflight`: a Content-Type value a browser does not send without asking first.
FETCH = """
const [url, form, preflight, done] = arguments;
const init = { method: "POST", body: new URLSearchParams(form) };
if (preflight)
  init.headers = { "Content-Type": 'application/x-www-form-urlencoded; charset="utf-8"' };
fetch(url, init)
  .then(async r => done({ ok: true, status: r.status, body: await r.text() }))
  .catch(e => done({ ok: false, error: String(e) }));
"""

GET = """
const [url, done] = arguments;
fetch(url).then(async r => done({ ok: true, status: r.status, body: await r.text() }))
  .catch(e => done({ ok: false, error: String(e) }));
"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


def _serve():
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


@pytest.fixture(scope="module")
def web(module_tokend, module_start_server):
    t = module_tokend
    allowed, other = _serve(), _serve()
    t.run("scope", "add", "widgets:read", "--public", check=0)
    t.scopes("read")
    t.account("shop", "--key-limit", "10")
    t.grant_scopes("shop", "widgets:read", "read")
    srv = module_start_server(t)
    good = f"http://127.0.0.1:{allowed.server_address[1]}"
    bad = f"http://127.0.0.1:{other.server_address[1]}"
    pk = t.json("key", "create", "--account", "shop", "--name", "storefront", "--publishable",
                "--origin", good, "--scopes", "widgets:read")
    sk = new_key(t, "shop", "backend", "read")
    yield type("Web", (), dict(t=t, srv=srv, good=good, bad=bad, pk=pk["client_id"], sk=sk,
                                token_url=f"http://127.0.0.1:{srv.port}/oauth2/token"))
    allowed.shutdown()
    other.shutdown()


def call(driver, page, url, form, preflight=False):
    driver.get(page + "/")
    return driver.execute_async_script(FETCH, url, form, preflight)


def preflights(srv):
    return [e for e in srv.log_events("http.request") if e.get("method") == "OPTIONS"]


@pytest.mark.parametrize("preflight", [False, True], ids=["simple", "preflighted"])
def test_allowed_origin_gets_a_token(web, browser, preflight):
    before = len(preflights(web.srv))
    r = call(browser, web.good, web.token_url, {"grant_type": "client_credentials", "client_id": web.pk}, preflight)
    assert r["ok"] and r["status"] == 200, r
    body = json.loads(r["body"])
    remember_token(body["access_token"])      # the session's leak scan looks for it in the logs
    c = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert c["origin"] == web.good and c["client_id"] == web.pk and c["scope"] == "widgets:read", c
    assert body["expires_in"] == 300
    # The preflighted call really asked first, and was granted.
    asked = preflights(web.srv)[before:]
    if preflight:
        assert [e["status"] for e in asked] == ["204"], asked
    else:
        assert asked == [], asked


@pytest.mark.parametrize("preflight", [False, True], ids=["simple", "preflighted"])
def test_other_origin_is_blocked_by_the_browser(web, browser, preflight):
    r = call(browser, web.bad, web.token_url, {"grant_type": "client_credentials", "client_id": web.pk}, preflight)
    assert not r["ok"] and "Failed to fetch" in r["error"], r
    logs = " ".join(e["message"] for e in browser.get_log("browser"))
    assert "CORS policy" in logs, logs


def test_secret_key_from_a_page_is_blocked(web, browser):
    """A secret key never gets CORS headers: even a right secret sent from a page of an
    allowed origin is unreadable there (and the server says so with no grant)."""
    form = {"grant_type": "client_credentials", "client_id": web.sk["client_id"],
            "client_secret": web.sk["client_secret"]}
    r = call(browser, web.good, web.token_url, form)
    assert not r["ok"] and "Failed to fetch" in r["error"], r


def test_preflight_headers_exact(web):
    """What the browser saw, read back over HTTP: the grant names exactly the origin."""
    h = {"Origin": web.good, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    r = http_request(web.srv.port, "OPTIONS", "/oauth2/token", None, h)
    assert r.status == 204, r
    got = {k: v for k, v in r.headers.items() if k.startswith("access-control-") or k == "vary"}
    assert got == {"access-control-allow-origin": web.good, "access-control-allow-methods": "POST",
                   "access-control-allow-headers": "Content-Type", "access-control-max-age": "600",
                   "vary": "Origin"}, r
    r = http_request(web.srv.port, "OPTIONS", "/oauth2/token", None, {**h, "Origin": web.bad})
    assert r.status == 403 and not any(k.startswith("access-control-") for k in r.headers), r


def test_jwks_and_metadata_readable_from_any_page(web, browser):
    browser.get(web.bad + "/")
    for path in ("/.well-known/jwks.json", "/.well-known/oauth-authorization-server"):
        r = browser.execute_async_script(GET, f"http://127.0.0.1:{web.srv.port}{path}")
        assert r["ok"] and r["status"] == 200 and r["body"].startswith("{"), (path, r)
