"""Helpers of the console's browser tests (test_console_*.py): sign in, find a key's
row, read the admin API's view of a key, check a page (screenshot, CSP violations,
axe-core), and make keys through the admin API. The browser itself, the screenshots,
CSP and axe come from support.browser (the harness); this module only knows the
console's pages and their data-testid hooks."""
import json
import re
import time

from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from support.browser import axe_check, console_errors, csp_violations, screenshot
from support.http import http_request, token_request
from support.registry import remember_token

A = "/admin/v1"


# ---------------------------------------------------------------------------
# The admin API and the token endpoint, from the test's side
# ---------------------------------------------------------------------------
def token_of(port, key_id, secret):
    """A token for the key (asserts 200); remembered for the session's leak scan."""
    r = token_request(port, {"grant_type": "client_credentials"}, auth=(key_id, secret))
    assert r.status == 200, r
    tok = r.json()["access_token"]
    remember_token(tok)
    return tok


def token_status(port, key_id, secret):
    return token_request(port, {"grant_type": "client_credentials"}, auth=(key_id, secret)).status


def admin(port, token, method, path, body=None):
    """One admin API call -> (status, parsed JSON or None)."""
    h = {"Authorization": "Bearer " + token}
    data = None
    if body is not None:
        data = json.dumps(body)
        h["Content-Type"] = "application/json"
    r = http_request(port, method, A + path, data, h)
    try:
        return r.status, json.loads(r.body) if r.body else None
    except ValueError:
        return r.status, None


def api_key(port, token, key_id):
    st, k = admin(port, token, "GET", f"/keys/{key_id}")
    return k if st == 200 else None


def make_key(port, token, name, scopes=("tokend:admin:read",), **extra):
    """A key made through the admin API -> its creation answer (with the secret)."""
    st, k = admin(port, token, "POST", "/keys", dict({"name": name, "scopes": list(scopes)}, **extra))
    assert st == 201, (st, k)
    return k


# ---------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------
def css(driver, sel):
    return driver.find_elements(By.CSS_SELECTOR, sel)


def one(driver, sel, timeout=10):
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, sel)))


def gone(driver, sel, timeout=10):
    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: not any(e.is_displayed() for e in css(d, sel)))


def until(driver, pred, timeout=10, what="condition"):
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: pred(d), message=what)


def open_console(driver, base):
    driver.get(base.rstrip("/") + "/console/")
    one(driver, "[data-testid=signin-id]")


def fill(el, text):
    el.clear()
    el.send_keys(text)


def sign_in(driver, base, key_id, secret, expect_ok=True):
    open_console(driver, base)
    fill(one(driver, "[data-testid=signin-id]"), key_id)
    fill(one(driver, "[data-testid=signin-secret]"), secret)
    one(driver, "[data-testid=signin-submit]").click()
    if expect_ok:
        one(driver, "#key-sections", timeout=15)


def row(driver, key_id):
    rows = [r for r in css(driver, "[data-testid=key-row]") if r.get_attribute("data-key-id") == key_id]
    return rows[0] if rows else None


def wait_row(driver, key_id, state=None, timeout=10):
    def ok(d):
        r = row(d, key_id)
        return r if r is not None and (state is None or r.get_attribute("data-state") == state) else False
    return until(driver, ok, timeout, f"row of {key_id} in state {state}")


def section_of(row_el):
    return row_el.find_element(By.XPATH, "ancestor::details[1]").get_attribute("data-testid")


def dialog_kind(driver):
    return driver.execute_script(
        "const d = document.getElementById('dialog'); return d.open ? d.dataset.kind : null;")


def wait_dialog(driver, kind, timeout=10):
    until(driver, lambda d: dialog_kind(d) == kind, timeout, f"the {kind} dialog")


def active_testid(driver):
    return driver.execute_script("return document.activeElement && document.activeElement.dataset.testid || null;")


def no_alert(driver):
    try:
        a = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    a.dismiss()
    return False


def check_page(driver, name):
    """A screenshot of the page, then no CSP violation and no serious/critical axe finding."""
    time.sleep(0.2)     # let the last render settle for the picture
    screenshot(driver, name)
    text = driver.execute_script("return document.body.innerText")
    assert not re.search(r"\b(null|undefined|NaN|\[object Object\])\b", text), f"a stray value on {name}: {text[:2000]}"
    v = csp_violations(driver)
    assert v == [], f"CSP violations on {name}: {v}"
    crashes = [m for m in console_errors(driver) if "Uncaught" in m]
    assert crashes == [], f"uncaught script errors on {name}: {crashes}"
    found = axe_check(driver)
    assert found == [], f"axe-core on {name}: {found}"


def storage_empty(driver):
    """Nothing kept in web storage or cookies."""
    s = driver.execute_script("return [localStorage.length, sessionStorage.length, document.cookie];")
    return s == [0, 0, ""] and driver.get_cookies() == []


# ---------------------------------------------------------------------------
# The console's test world, from the harness's console_tokend
# ---------------------------------------------------------------------------
class World:
    """base URL, port, account; admin / reader / operator as (key ID, secret); an
    operator token (op) and an admin token (tok) for the test's own API calls."""

    def __init__(self, ct):
        self.ct = ct
        self.base = ct.base.rstrip("/")
        self.port = ct.srv.port
        self.account = ct.account
        self.admin = (ct.admin.client_id, ct.admin.client_secret)
        self.reader = (ct.reader.client_id, ct.reader.client_secret)
        self.operator = (ct.operator.client_id, ct.operator.client_secret)
        self.op = token_of(self.port, *self.operator)
        self.tok = token_of(self.port, *self.admin)

    def setup(self, key_limit=50):
        """Room for keys in the account (console_tokend is shared by a module), and an
        application scope with a description in the catalogue and the account's allow-list."""
        st, _ = admin(self.port, self.op, "POST", "/scopes", {"name": "reports:read", "description": "Read reports"})
        assert st in (201, 409), st
        st, acct = admin(self.port, self.op, "GET", f"/accounts/{self.account}")
        assert st == 200, acct
        scopes = sorted(set(acct["scopes"]) | {"orders:read", "reports:read", "tokend:admin:read", "tokend:admin:write"})
        st, acct = admin(self.port, self.op, "PUT", f"/accounts/{self.account}/scopes", {"scopes": scopes})
        assert st == 200, acct
        st, acct = admin(self.port, self.op, "PATCH", f"/accounts/{self.account}", {"key_limit": key_limit})
        assert st == 200, acct
        return self
