"""The console's sign-in, read-only view, key limit, audit and operator pages in
headless Chromium against a real tokend and PostgreSQL. Each page: a screenshot, no
CSP violation, axe-core clean."""
import pytest
from selenium.webdriver.common.by import By

from support.console import (World, admin, check_page, css, make_key, one, open_console, sign_in, storage_empty,
                             token_of, until)

pytestmark = pytest.mark.binary

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@pytest.fixture
def w(console_tokend):
    return World(console_tokend).setup()


def test_sign_in_wrong_secret_then_right(w, browser):
    d = browser
    open_console(d, w.base)
    check_page(d, "sign-in")
    key_id, secret = w.admin
    wrong = secret[:-8] + ("A" if secret[-8] != "A" else "B") + secret[-7:]
    sign_in(d, w.base, key_id, wrong, expect_ok=False)
    err = one(d, "[data-testid=signin-error]")
    until(d, lambda _: "wrong" in err.text, what="sign-in error")
    # No token kept: still on sign-in, nothing stored, the secret field emptied.
    assert one(d, "#signin").is_displayed() and not d.find_element(By.ID, "nav").is_displayed()
    assert one(d, "[data-testid=signin-secret]").get_attribute("value") == ""
    assert storage_empty(d)
    sign_in(d, w.base, key_id, secret)
    assert d.find_element(By.CSS_SELECTOR, "[data-testid=signin-secret]").get_attribute("value") == ""
    assert w.account in one(d, "[data-testid=who-account]").text
    assert one(d, "[data-testid=who-can]").get_attribute("data-can") == "write"
    assert storage_empty(d)
    assert secret not in d.current_url and secret not in d.page_source
    assert d.execute_script("return history.length") <= 3
    # The browser stored nothing of the secret or the token in the URL or the history.
    assert "access_token" not in d.current_url


def test_401_returns_to_sign_in(w, browser):
    d = browser
    k = make_key(w.port, w.tok, "session key", ["tokend:admin:read", "tokend:admin:write"])
    sign_in(d, w.base, k["client_id"], k["client_secret"])
    # Disabled elsewhere (the API, another administrator): the next call answers 401.
    st, _ = admin(w.port, w.tok, "POST", f"/keys/{k['client_id']}/disable")
    assert st == 200
    one(d, "[data-testid=nav-audit]").click()
    notice = one(d, "[data-testid=signin-notice]")
    until(d, lambda _: "Sign in again" in notice.text, what="back to sign-in")
    assert not d.find_element(By.ID, "nav").is_displayed()
    assert css(d, "[data-testid=key-row]") == []


def test_token_renewed_before_expiry(w, browser):
    d = browser
    k = make_key(w.port, w.tok, "short tokens", ["tokend:admin:read"], token_lifetime=8)
    sign_in(d, w.base, k["client_id"], k["client_secret"])
    import time
    time.sleep(11)      # past the first token's expiry
    one(d, "[data-testid=nav-audit]").click()
    until(d, lambda d: css(d, "[data-testid=audit-row]") or css(d, "[data-testid=audit-page]"), what="audit page")
    assert one(d, "#nav").is_displayed(), "the session ended instead of renewing its token"
    assert [e.text for e in css(d, "[data-testid=page-error]") if e.text] == []


def test_read_only_administrator(w, browser):
    d = browser
    make_key(w.port, w.tok, "some key", ["orders:read"])
    sign_in(d, w.base, *w.reader)
    assert one(d, "[data-testid=who-can]").get_attribute("data-can") == "read"
    gen = one(d, "[data-testid=generate]")
    assert not gen.is_enabled()
    assert "administrator" in one(d, "[data-testid=generate-why]").text
    assert "only an administrator of the account can change keys" in one(d, "[data-testid=readonly-note]").text
    rows = css(d, "[data-testid=key-row]")
    assert len(rows) >= 2
    for r in rows:
        for t in r.find_elements(By.CSS_SELECTOR, "[data-testid=key-toggle], [data-testid=revoke], [data-testid=delete]"):
            assert not t.is_enabled()
        assert r.find_element(By.CSS_SELECTOR, "[data-testid=key-name]").tag_name == "span"
    check_page(d, "read-only")


def test_generate_disabled_at_the_limit(w, browser):
    d = browser
    st, acct = admin(w.port, w.op, "GET", f"/accounts/{w.account}")
    st, _ = admin(w.port, w.op, "PATCH", f"/accounts/{w.account}", {"key_limit": acct["active_keys"]})
    assert st == 200
    sign_in(d, w.base, *w.admin)
    assert not one(d, "[data-testid=generate]").is_enabled()
    assert "limit" in one(d, "[data-testid=generate-why]").text
    assert one(d, "[data-testid=key-count]").text == f"{acct['active_keys']} of {acct['active_keys']} active keys"


def test_audit_pages(w, browser):
    d = browser
    k = make_key(w.port, w.tok, "renamed often", ["orders:read"])
    for i in range(30):
        st, _ = admin(w.port, w.tok, "PATCH", f"/keys/{k['client_id']}", {"name": f"name {i}"})
        assert st == 200
    sign_in(d, w.base, *w.admin)
    one(d, "[data-testid=nav-audit]").click()
    until(d, lambda d: len(css(d, "[data-testid=audit-row]")) == 25, what="a full first page")
    first = [r.text for r in css(d, "[data-testid=audit-row]")]
    assert "name 29" in first[0]
    check_page(d, "audit")
    one(d, "[data-testid=audit-older]").click()
    until(d, lambda d: one(d, "[data-testid=audit-page]").text == "Page 2", what="page 2")
    second = [r.text for r in css(d, "[data-testid=audit-row]")]
    assert second and not set(second) & set(first)
    assert any("key.create" == r.get_attribute("data-action") for r in css(d, "[data-testid=audit-row]"))
    one(d, "[data-testid=audit-newer]").click()
    until(d, lambda d: one(d, "[data-testid=audit-page]").text == "Page 1", what="page 1 again")


def test_operator_accounts_and_scopes(w, browser):
    d = browser
    sign_in(d, w.base, *w.operator)
    assert one(d, "[data-testid=who-can]").get_attribute("data-can") == "operator"
    one(d, "[data-testid=nav-accounts]").click()
    one(d, "[data-testid=acct-id]").send_keys("globex")
    one(d, "[data-testid=acct-name]").send_keys("Globex <Corp>")
    lim = one(d, "[data-testid=acct-limit]")
    lim.clear()
    lim.send_keys("5")
    one(d, "[data-testid=acct-create]").click()

    def acct_row(d):
        r = [e for e in css(d, "[data-testid=account-row]") if e.get_attribute("data-account-id") == "globex"]
        return r[0] if r else False
    r = until(d, acct_row, what="the new account's row")
    assert "Globex <Corp>" in r.text
    st, a = admin(w.port, w.op, "GET", "/accounts/globex")
    assert st == 200 and a["name"] == "Globex <Corp>" and a["key_limit"] == 5, a
    # Bad input changes nothing: a duplicate ID.
    one(d, "[data-testid=acct-id]").send_keys("globex")
    one(d, "[data-testid=acct-create]").click()
    until(d, lambda d: one(d, "[data-testid=accounts-error]").text, what="duplicate refused")
    # Key limit, then disable.
    lim = acct_row(d).find_element(By.CSS_SELECTOR, "[data-testid=acct-row-limit]")
    lim.clear()
    lim.send_keys("7")
    acct_row(d).find_element(By.CSS_SELECTOR, "[data-testid=acct-row-save]").click()
    until(d, lambda d: "of 7" in acct_row(d).find_element(By.CSS_SELECTOR, "[data-testid=acct-row-count]").text,
          what="limit 7")
    assert admin(w.port, w.op, "GET", "/accounts/globex")[1]["key_limit"] == 7
    acct_row(d).find_element(By.CSS_SELECTOR, "[data-testid=acct-row-toggle]").click()
    until(d, lambda d: acct_row(d).find_element(By.CSS_SELECTOR, "[data-testid=acct-row-state]").text == "disabled",
          what="disabled")
    assert admin(w.port, w.op, "GET", "/accounts/globex")[1]["disabled_at"] is not None
    check_page(d, "accounts")

    one(d, "[data-testid=nav-scopes]").click()
    one(d, "[data-testid=scope-name]").send_keys("invoices:read")
    one(d, "[data-testid=scope-desc]").send_keys("Read invoices")
    one(d, "[data-testid=scope-add]").click()
    until(d, lambda d: any(e.get_attribute("data-scope") == "invoices:read" for e in css(d, "[data-testid=scope-row]")),
          what="the new scope")
    names = {s["name"]: s["description"] for s in admin(w.port, w.op, "GET", "/scopes")[1]["scopes"]}
    assert names.get("invoices:read") == "Read invoices"
    check_page(d, "scopes")


def test_console_assets_carry_the_headers(w):
    for path in ("/console/", "/console/app.css", "/console/app.js", "/console/js/keys.js", "/console/js/api.js",
                 "/console/js/dialog.js"):
        r = w.ct.srv.get(path)
        assert r.status == 200, (path, r)
        assert r.headers.get("content-security-policy") == CSP, path
        assert r.headers.get("x-content-type-options") == "nosniff", path
        assert r.headers.get("referrer-policy") == "no-referrer", path
        assert r.headers.get("x-frame-options") == "DENY", path
        ct = r.headers.get("content-type", "")
        want = {"/console/": "text/html", "/console/app.css": "text/css"}.get(path, "javascript")
        assert want in ct, (path, ct)
    # No inline script or style in the page: the CSP would block it.
    html = w.ct.srv.get("/console/").body.decode()
    assert "<style" not in html and " style=" not in html
    assert "<script>" not in html and "onclick" not in html.lower()
