"""The console's browser tests: headless Debian Chromium driven by Selenium
(`/usr/bin/chromium`, `/usr/bin/chromedriver`, python3-selenium; scripts/install-deps.sh
installs them), screenshots, CSP violations from the browser's log, axe-core
accessibility checks, small waits, and the `console_tokend` environment.

    driver = make_driver()                 # 1280x800, browser log captured (ALL)
    driver.get(env.url("/console/api"))
    wait_for(driver, "#swagger-ui .info")
    screenshot(driver, "api")              # <basetemp>/screenshots/api.png (+ $TOKEND_SCREENSHOT_DIR)
    assert csp_violations(driver) == []
    assert axe_check(driver) == []         # serious or critical violations only

The fixtures (`browser`, `console_tokend`) are in conftest.py; a missing browser,
driver or axe-core fails the test with a clear message (never skips).
"""
import dataclasses
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from support.util import ROOT

CHROMIUM = Path(os.environ.get("TOKEND_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("TOKEND_CHROMEDRIVER", "/usr/bin/chromedriver"))
INTEROP = ROOT / "tests" / "interop"
AXE_JS = INTEROP / "node_modules" / "axe-core" / "axe.min.js"
WIDTH, HEIGHT = 1280, 800

# Where screenshot() writes: set by the `browser` fixture to <basetemp>/screenshots.
OUTPUT = {"screenshots": None}

_NPM_LOCK = threading.Lock()
_LOGS = {}          # id(driver) -> every browser log entry read so far


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------
def make_driver():
    """A headless Chromium (1280x800) whose console log (every level) is kept, so
    CSP violations can be read (csp_violations). The caller quits it."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("python3-selenium is missing: the console's browser tests need it "
                    "(apt-get install python3-selenium; scripts/install-deps.sh installs it); "
                    "run them with /usr/bin/python3", pytrace=False)
    for p, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (p.is_file() and os.access(p, os.X_OK)):
            pytest.fail(f"{p} not found: the console's browser tests need Debian's {pkg} "
                        f"(scripts/install-deps.sh installs it)", pytrace=False)
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={WIDTH},{HEIGHT}", "--no-first-run", "--no-default-browser-check",
              "--disable-extensions", "--disable-background-networking", "--disable-sync",
              "--disable-component-update", "--disable-features=Translate,OptimizationHints,MediaRouter",
              "--password-store=basic", "--lang=en-US"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    driver.set_window_size(WIDTH, HEIGHT)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def reset_driver(driver):
    """Make a used driver look new: close an open alert and extra windows, load
    about:blank, clear cookies and storage, restore the window size, and forget
    its log (so csp_violations/console_errors see only what comes next)."""
    try:
        driver.switch_to.alert.dismiss()
    except Exception:
        pass
    handles = driver.window_handles
    for h in handles[1:]:
        driver.switch_to.window(h)
        driver.close()
    driver.switch_to.window(handles[0])
    driver.delete_all_cookies()
    driver.get("about:blank")
    try:
        driver.execute_cdp_cmd("Storage.clearDataForOrigin",
                               {"origin": "*", "storageTypes": "all"})
    except Exception:
        pass                    # about:blank has no storage; the console keeps none
    driver.set_window_size(WIDTH, HEIGHT)
    driver.get_log("browser")
    _LOGS.pop(id(driver), None)


def quit_driver(driver):
    _LOGS.pop(id(driver), None)
    driver.quit()


# ---------------------------------------------------------------------------
# Reading the page
# ---------------------------------------------------------------------------
def wait_for(driver, css, timeout=5, visible=True):
    """The first element matching `css` once present (and displayed, by default)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    cond = EC.visibility_of_element_located if visible else EC.presence_of_element_located
    try:
        return WebDriverWait(driver, timeout).until(cond((By.CSS_SELECTOR, css)))
    except Exception as e:     # TimeoutException: say what was awaited and where
        raise AssertionError(f"no {'visible ' if visible else ''}element {css!r} within {timeout}s "
                             f"on {driver.current_url}; browser log: {browser_log(driver)[-5:]}") from e


def wait_gone(driver, css, timeout=5):
    """Until no displayed element matches `css`."""
    wait_until_true(driver, lambda d: not [e for e in d.find_elements("css selector", css) if e.is_displayed()],
                    timeout, f"{css!r} to disappear")


def wait_until_true(driver, pred, timeout=5, what="condition"):
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout).until(pred)
    except Exception as e:
        raise AssertionError(f"timed out after {timeout}s waiting for {what} on {driver.current_url}") from e


def find_all(driver, css):
    return driver.find_elements("css selector", css)


def text_of(driver, css):
    return wait_for(driver, css).text


def browser_log(driver):
    """Every browser log entry of this driver so far (Selenium hands each out once:
    they are kept here so several readers see them all)."""
    kept = _LOGS.setdefault(id(driver), [])
    kept.extend(driver.get_log("browser"))
    return kept


def csp_violations(driver):
    """The Content-Security-Policy violations the browser reported for this driver so far."""
    return [e["message"] for e in browser_log(driver)
            if "Content Security Policy" in e.get("message", "") or
            "Content-Security-Policy" in e.get("message", "")]


def console_errors(driver):
    """The browser's SEVERE log messages so far (failed loads, uncaught errors, CSP)."""
    return [e["message"] for e in browser_log(driver) if e.get("level") == "SEVERE"]


# ---------------------------------------------------------------------------
# Screenshots
# ---------------------------------------------------------------------------
def screenshot(driver, name):
    """A PNG of the window at <basetemp>/screenshots/<name>.png (copied to
    $TOKEND_SCREENSHOT_DIR when set); returns its path."""
    d = OUTPUT["screenshots"]
    if d is None:
        raise AssertionError("screenshot() needs the `browser` fixture (it sets the output folder)")
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"screenshot {name} failed"
    extra = os.environ.get("TOKEND_SCREENSHOT_DIR")
    if extra:
        os.makedirs(extra, exist_ok=True)
        shutil.copyfile(path, Path(extra) / path.name)
    return path


# ---------------------------------------------------------------------------
# Accessibility: axe-core (npm, pinned by tests/interop/package-lock.json)
# ---------------------------------------------------------------------------
def _axe_source():
    with _NPM_LOCK:
        if not AXE_JS.is_file():
            npm = shutil.which("npm")
            if not npm:
                pytest.fail("npm not found: the accessibility checks need axe-core from tests/interop "
                            "(scripts/install-deps.sh runs npm ci there)", pytrace=False)
            r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=INTEROP,
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0 or not AXE_JS.is_file():
                pytest.fail(f"`npm ci` in {INTEROP} did not install axe-core (exit {r.returncode}):\n"
                            f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}", pytrace=False)
        return AXE_JS.read_text()


def axe_run(driver, impacts=("serious", "critical")):
    """axe-core's violations on the current page whose impact is in `impacts`, as
    dicts {id, impact, help, nodes: [css targets]}. The script goes in through
    WebDriver (execute_script), which the page's CSP does not govern."""
    driver.execute_script(_axe_source())
    res = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        "  .then(r => done({ok: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        "                    nodes: v.nodes.map(n => n.target.join(' '))}))}))"
        "  .catch(e => done({error: String(e)}));")
    if res.get("error"):
        raise AssertionError(f"axe-core failed on {driver.current_url}: {res['error']}")
    return [v for v in res["ok"] if v["impact"] in impacts]


def axe_check(driver):
    """The serious and critical accessibility violations on the current page (a list;
    empty: none)."""
    return axe_run(driver)


# ---------------------------------------------------------------------------
# The console's test environment (fixture `console_tokend` in conftest.py)
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class ConsoleKey:
    client_id: str
    client_secret: str
    scopes: str

    def __repr__(self):          # never print a secret in an assertion message
        return f"ConsoleKey({self.client_id}, {self.scopes!r})"


@dataclasses.dataclass
class ConsoleEnv:
    """A running tokend with the console on (srv), its CLI (t), an account (`account`,
    scopes read/write/orders:read granted) with an administrator key (admin: read+write)
    and a read-only one (reader), and an operator key (operator, account `ops`)."""
    srv: object
    t: object
    base: str
    account: str
    admin: ConsoleKey
    reader: ConsoleKey
    operator: ConsoleKey

    def url(self, path="/console/"):
        return self.base + path


ADMIN_SCOPES = "tokend:admin:read tokend:admin:write"
READ_SCOPES = "tokend:admin:read"
OPERATOR_SCOPES = "tokend:operator"
