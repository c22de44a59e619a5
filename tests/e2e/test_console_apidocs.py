"""The interactive admin API documentation at /console/api, in a real browser
(headless Chromium via Selenium, support/browser.py): Swagger UI (npm swagger-ui-dist,
embedded at build time) renders tokend's own /admin/v1/openapi.yaml under the
console's strict Content-Security-Policy without a violation; "Authorize" with a key
ID and secret obtains a token from /oauth2/token through the description's oauth2
clientCredentials scheme, and "Try it out" on GET /admin/v1/keys answers 200 with that
token; the token and the secret stay out of the URL, the storage and tokend's log; the
page passes axe-core's serious and critical checks; a screenshot is written.
"""
import json
import time

import pytest

from support.browser import (axe_check, console_errors, csp_violations, find_all, screenshot, wait_for,
                             wait_until_true)
from support.util import wait_until

pytestmark = pytest.mark.binary

OPS = "#swagger-ui .opblock"


def open_api_page(driver, env):
    driver.get(env.url("/console/api"))
    wait_for(driver, "#swagger-ui .info .title", timeout=20)
    wait_for(driver, OPS, timeout=20)


def list_keys_block(driver):
    """The operation block of GET /admin/v1/keys (listKeys), expanded."""
    block = wait_for(driver, "#operations-keys-listKeys", timeout=10)
    if "is-open" not in block.get_attribute("class"):
        block.find_element("css selector", ".opblock-summary-control").click()
        wait_until_true(driver, lambda d: "is-open" in block.get_attribute("class"), 5, "listKeys to open")
    return block


def authorize(driver, key):
    """The "Authorize" dialog, oauth2 clientCredentials: key ID and secret, then Authorize."""
    driver.find_element("css selector", "#swagger-ui .auth-wrapper .authorize").click()
    wait_for(driver, ".dialog-ux .modal-ux", timeout=5)
    cid = wait_for(driver, "#client_id_clientCredentials")
    cid.send_keys(key.client_id)
    driver.find_element("css selector", "#client_secret_clientCredentials").send_keys(key.client_secret)
    oauth2_button(driver, "Authorize").click()


def oauth2_buttons(driver):
    """The buttons of the oauth2 scheme's part of the dialog (the bearer one has its own)."""
    return driver.find_elements("xpath", "//div[contains(@class,'auth-container')]"
                                "[.//h4[contains(., 'oauth2')]]//div[contains(@class,'auth-btn-wrapper')]//button")


def oauth2_button(driver, text):
    for b in oauth2_buttons(driver):
        if b.text.strip() == text:
            return b
    raise AssertionError(f"no {text!r} button in the oauth2 part of the dialog: "
                         f"{[b.text for b in oauth2_buttons(driver)]}")


def close_dialog(driver):
    oauth2_button(driver, "Close").click()
    wait_until_true(driver, lambda d: not [e for e in find_all(d, ".dialog-ux") if e.is_displayed()], 5,
                    "the dialog to close")


def try_list_keys(driver):
    """Try it out + Execute on GET /admin/v1/keys; the status shown."""
    block = list_keys_block(driver)
    buttons = block.find_elements("css selector", ".try-out__btn")
    if buttons and buttons[0].text.strip() == "Try it out":
        buttons[0].click()
    wait_for(driver, "#operations-keys-listKeys .execute").click()
    status = wait_for(driver, "#operations-keys-listKeys .live-responses-table .response .response-col_status",
                      timeout=15)
    return status.text.strip()


def test_api_page_renders_under_the_csp_and_passes_axe(browser, console_tokend):
    env = console_tokend
    open_api_page(browser, env)
    title = browser.find_element("css selector", "#swagger-ui .info .title").text
    assert "tokend" in title.lower(), title
    paths = {e.get_attribute("data-path") for e in find_all(browser, "#swagger-ui .opblock-summary-path")}
    assert "/keys" in paths and "/accounts" in paths, paths
    assert find_all(browser, "#swagger-ui .auth-wrapper .authorize")
    list_keys_block(browser)
    shot = screenshot(browser, "console-api")
    assert shot.stat().st_size > 10000
    assert csp_violations(browser) == []
    assert console_errors(browser) == []
    problems = axe_check(browser)
    assert problems == [], json.dumps(problems, indent=1)


def test_authorize_with_a_key_and_try_it_out(browser, console_tokend):
    env = console_tokend
    open_api_page(browser, env)
    # A wrong secret: an error in the dialog, no token, and the API answers 401.
    wrong = type(env.admin)(env.admin.client_id, env.admin.client_secret[:-4] + "AAAA", env.admin.scopes)
    authorize(browser, wrong)
    wait_until(lambda: 'path="/oauth2/token" status="401"' in env.srv.stderr_text(), timeout=10,
               what="the browser's token request to be refused")
    time.sleep(0.5)     # the answer reaches the page
    assert [b.text.strip() for b in oauth2_buttons(browser)] == ["Authorize", "Close"]
    # Swagger UI's own state holds no authorization.
    assert browser.execute_script("return window.ui.authSelectors.authorized().toJS();") == {}
    # Without one, Try it out gets the API's 401.
    open_api_page(browser, env)
    assert try_list_keys(browser).startswith("401")

    # The right one: a token, and Try it out answers 200 with it.
    open_api_page(browser, env)
    browser.find_element("css selector", "#swagger-ui .auth-wrapper .authorize").click()
    wait_for(browser, "#client_id_clientCredentials")
    problems = axe_check(browser)       # the Authorize dialog, open
    assert problems == [], json.dumps(problems, indent=1)
    close_dialog(browser)
    authorize(browser, env.admin)
    wait_until_true(browser, lambda d: "Logout" in [b.text.strip() for b in oauth2_buttons(d)],
                    10, "the oauth2 dialog to show Logout (token obtained)")
    dialog = browser.find_element("css selector", ".dialog-ux .modal-ux").get_attribute("innerHTML")
    assert env.admin.client_secret not in dialog
    screenshot(browser, "console-api-authorized")
    close_dialog(browser)
    assert try_list_keys(browser).startswith("200")
    body = browser.find_element("css selector",
                                "#operations-keys-listKeys .live-responses-table .response-col_description pre")
    listed = json.loads(body.text)
    names = {k["name"] for k in listed["keys"]}
    assert {"console admin", "console reader"} <= names, names
    screenshot(browser, "console-api-try-it-out")

    # The token went in memory only: not in the URL, the storage or a cookie.
    for v in browser.execute_script(
            "return [location.href, JSON.stringify(Object.assign({}, localStorage)),"
            " JSON.stringify(Object.assign({}, sessionStorage)), document.cookie];"):
        assert env.admin.client_secret not in v
        assert "eyJ" not in v, v[:200]
    assert csp_violations(browser) == []
    # Neither the secret nor the token reached tokend's log.
    log = env.srv.stderr_text()
    assert env.admin.client_secret not in log
    assert "eyJ" not in log
