"""What the session saw, for the sanitizer and leak checks: every output of the
binary (OUTPUTS, appended under OUTPUTS_LOCK: dicts with args, rc, stdout, stderr,
test (node id), kind), and everything secret the tests handled (client secrets
from `key create`, access tokens from HTTP answers, peppers of servers), every
Server started, and measured bounds printed in the summary."""
import re
import threading

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: ThreadSanitizer", "ERROR: MemorySanitizer")

# Every output of the binary during the session: dicts with
# args, rc, stdout, stderr, test (node id). Appended under OUTPUTS_LOCK.
OUTPUTS = []
OUTPUTS_LOCK = threading.Lock()
CURRENT_TEST = {"id": None}


# Where a client secret (support.keys.SECRET_FIND_RE) starts, overlapping matches included:
# a secret-shaped string s occurs in a text exactly when it is one of these.
_SECRET_AT_RE = re.compile(r"(?=(tks_[0-9A-Za-z]{49}))")


def secrets_in(text):
    """The secret-shaped strings in `text`: s in text exactly when s is one of them."""
    return frozenset(_SECRET_AT_RE.findall(text))


def record_output(args, rc, stdout, stderr, kind="run"):
    """Record one output; `secrets` is the set of secret-shaped strings in it (stdout,
    stderr), found once here so that the per-test check needs not search every output."""
    rec = {"args": list(args), "rc": rc, "stdout": stdout or "", "stderr": stderr or "",
           "test": CURRENT_TEST["id"], "kind": kind}
    rec["secrets"] = secrets_in(rec["stdout"] + "\n" + rec["stderr"])
    with OUTPUTS_LOCK:
        OUTPUTS.append(rec)
    return rec


def all_output_texts():
    with OUTPUTS_LOCK:
        return [(r, r["stdout"] + "\n" + r["stderr"]) for r in OUTPUTS]



SECRETS = set()        # client secrets returned by `key create`
TOKENS = set()         # every access token a test received
PEPPERS = set()        # (base64 text, raw bytes) of every pepper used by a server
SERVERS = []           # every Server started this session
TIMINGS = []           # (label, text) measured bounds, printed in the summary
REG_LOCK = threading.Lock()

TOKEN_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def remember_token(tok):
    if tok:
        with REG_LOCK:
            TOKENS.add(tok)


def remember_secret(secret):
    if secret:
        with REG_LOCK:
            SECRETS.add(secret)


def note_timing(label, text):
    with REG_LOCK:
        TIMINGS.append((label, text))
