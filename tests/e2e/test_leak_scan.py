"""
The leak scan itself (support.leaks): every kind of leak planted in a recorded
output is reported, at any position in the text, and the scan reports exactly
what a plain secret x text search reports (the reference below: the scan as it
was before it read each text once).

No tokend, no database: the scan is given its own secrets, tokens and peppers,
so nothing planted here reaches the session's registry (the session's own scan,
conftest.py pytest_sessionfinish, is unaffected).
"""
import base64
import os
import random
import re

from support.keys import B62, SECRET_FIND_RE, b64u, make_secret
from support.leaks import Needles, leak_problems
from support.registry import secrets_in
from support.tokend import new_pepper


def token(rng):
    """A JWT-shaped string (header.payload.signature) as tokend issues them."""
    def seg(n):
        return b64u(bytes(rng.getrandbits(8) for _ in range(n)))
    return "eyJ" + seg(30) + "." + seg(120) + "." + seg(64)


def run(args, text, kind="run"):
    return ({"args": args, "kind": kind}, text)


def reference(texts, secrets, tokens, peppers):
    """The scan as it was: every secret, token and pepper form searched in every text."""
    secrets = set(secrets)
    for _, text in texts:
        secrets.update(SECRET_FIND_RE.findall(text))
    owner = {}
    for s in secrets:
        body = s[4:]
        for i in range(len(body) - 11):
            owner[body[i:i + 12]] = s
    problems = []
    for rec, text in texts:
        is_create = rec.get("kind") == "run" and "key" in rec["args"] and \
            ("create" in rec["args"] or "rotate-secret" in rec["args"])
        hits = set()
        for m in re.finditer(r"[0-9A-Za-z]{12,}", text):
            r = m.group(0)
            for i in range(len(r) - 11):
                if r[i:i + 12] in owner:
                    hits.add(owner[r[i:i + 12]])
        if hits and not is_create:
            problems.append(f"{len(hits)} client secret(s) (or 12+ character pieces) in {rec.get('kind')} "
                            f"output of {rec['args'][:4]}")
        if is_create and len(hits) > 1:
            problems.append(f"a key create output shows {len(hits)} secrets: {rec['args'][:6]}")
    for s in secrets:
        n = sum(1 for _, text in texts if s in text)
        if n != 1:
            problems.append(f"secret ...{s[-4:]} appears in {n} outputs (expected only its creation)")
    parts = {}
    for tok in tokens:
        _, p, sig = tok.split(".")
        parts[sig] = parts[p] = tok
    for rec, text in texts:
        if any(m.group(0) in parts for m in re.finditer(r"[A-Za-z0-9_-]{40,}", text)):
            problems.append(f"an access token (or its payload/signature) in {rec.get('kind')} output of "
                            f"{rec['args'][:4]}")
        if any(tok in text for tok in tokens):
            problems.append(f"an access token in {rec.get('kind')} output of {rec['args'][:4]}")
    for b64, raw in peppers:
        forms = {b64, b64.rstrip("="), raw.hex(), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
        for rec, text in texts:
            if any(f and f in text for f in forms):
                problems.append(f"the pepper in {rec.get('kind')} output of {rec['args'][:4]}")
    return sorted(set(problems))


def scan(texts, secrets, tokens, peppers):
    return sorted(set(leak_problems(texts, secrets=secrets, tokens=tokens, peppers=peppers)))


def clean_session(rng):
    """A few secrets each shown once by its creation, tokens, peppers, and log lines."""
    secrets = [make_secret() for _ in range(5)]
    tokens = [token(rng) for _ in range(5)]
    peppers = [new_pepper() for _ in range(2)]
    peppers = [(b64, raw) for raw, b64 in peppers]
    texts = [run(["key", "create", "--account", "acme", "--name", f"k{i}"],
                 '{"client_id": "tk_x", "client_secret": "%s"}\n' % s) for i, s in enumerate(secrets)]
    texts.append(run(["serve"], "ts=1 level=info event=token.issued client_id=tk_abc kid=k1\n" * 20, "spawn"))
    texts.append(run(["key", "list"], "tk_abcdefghijklmnopqrstuvwxyz01 acme k0 read\n"))
    return secrets, tokens, peppers, texts


def test_a_clean_session_has_no_problem():
    rng = random.Random(1)
    secrets, tokens, peppers, texts = clean_session(rng)
    assert scan(texts, secrets, tokens, peppers) == []
    assert reference(texts, secrets, tokens, peppers) == []


def test_each_planted_leak_is_reported_at_any_position():
    rng = random.Random(2)
    secrets, tokens, peppers, texts = clean_session(rng)
    s, tok, (b64, raw) = secrets[2], tokens[3], peppers[1]
    plants = {
        "secret": (s, "client secret(s)"),
        "secret piece": (s[17:29], "client secret(s)"),
        "secret piece at the end": (s[-12:], "client secret(s)"),
        "token": (tok, "an access token in"),
        "token payload": (tok.split(".")[1], "an access token (or its payload/signature)"),
        "token signature": (tok.split(".")[2], "an access token (or its payload/signature)"),
        "pepper": (b64, "the pepper"),
        "pepper unpadded": (b64.rstrip("="), "the pepper"),
        "pepper hex": (raw.hex(), "the pepper"),
        "pepper base64url": (base64.urlsafe_b64encode(raw).decode().rstrip("="), "the pepper"),
    }
    for what, (leak, says) in plants.items():
        # Every alignment against the scan's sampling step (6 and 12 characters).
        for pad in range(0, 14):
            for before, after in (("x" * pad, "zz"), (" " * pad, "\n"), ("=" * pad, ".")):
                if "payload/signature" in says and after == "zz":
                    continue    # a segment is looked for as a whole run of base64url characters
                text = "ts=1 level=info event=x detail=" + before + leak + after
                planted = texts + [run(["serve", what], text, "spawn")]
                found = scan(planted, secrets, tokens, peppers)
                assert any(says in p and "['serve'" in p for p in found), (what, pad, before, found)
                assert found == reference(planted, secrets, tokens, peppers), (what, pad)


def test_a_secret_shown_twice_or_never_is_reported():
    rng = random.Random(3)
    secrets, tokens, peppers, texts = clean_session(rng)
    twice = texts + [run(["key", "create", "--account", "acme", "--name", "again"],
                         '{"client_secret": "%s"}' % secrets[0])]
    found = scan(twice, secrets, tokens, peppers)
    assert f"secret ...{secrets[0][-4:]} appears in 2 outputs (expected only its creation)" in found
    never = make_secret()
    found = scan(texts, secrets + [never], tokens, peppers)
    assert f"secret ...{never[-4:]} appears in 0 outputs (expected only its creation)" in found
    # A create output showing two secrets.
    both = texts + [run(["key", "create", "--name", "two"], secrets[1] + " " + secrets[3])]
    found = scan(both, secrets, tokens, peppers)
    assert "a key create output shows 2 secrets: ['key', 'create', '--name', 'two']" in found


def test_an_empty_registry_is_an_error_not_a_pass():
    rng = random.Random(4)
    _, tokens, peppers, texts = clean_session(rng)
    texts = [t for t in texts if "client_secret" not in t[1]]
    try:
        leak_problems(texts, secrets=[], tokens=tokens, peppers=peppers)
    except AssertionError as e:
        assert "registry is empty" in str(e)
    else:
        raise AssertionError("a scan with no secret to look for passed")
    try:
        leak_problems(texts, secrets=[make_secret()], tokens=[], peppers=peppers)
    except AssertionError as e:
        assert "registry is empty" in str(e)
    else:
        raise AssertionError("a scan with no token to look for passed")


def test_a_run_without_secrets_still_looks_for_tokens_and_peppers():
    """Keys inserted in SQL register no secret: the scan then looks for tokens and
    peppers only (need_secrets=False), and still finds them; with no token either,
    it is an error as before."""
    rng = random.Random(5)
    _, tokens, peppers, texts = clean_session(rng)
    texts = [t for t in texts if "client_secret" not in t[1]]
    assert leak_problems(texts, secrets=[], tokens=tokens, peppers=peppers, need_secrets=False) == []
    leaked = texts + [run(["serve"], "debug: token=%s\n" % tokens[2], "spawn"),
                      run(["serve"], "pepper %s\n" % peppers[1][0], "spawn")]
    found = leak_problems(leaked, secrets=[], tokens=tokens, peppers=peppers, need_secrets=False)
    assert "an access token in spawn output of ['serve']" in found
    assert "the pepper in spawn output of ['serve']" in found
    try:
        leak_problems(texts, secrets=[], tokens=[], peppers=peppers, need_secrets=False)
    except AssertionError as e:
        assert "registry is empty" in str(e)
    else:
        raise AssertionError("a scan with nothing to look for passed")


def test_the_scan_agrees_with_the_plain_search_on_random_sessions():
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    for _ in range(30):
        secrets, tokens, peppers, texts = clean_session(rng)
        pool = [x for s in secrets for x in (s, s[4:], s[rng.randrange(4, 30):][:rng.randrange(8, 20)])]
        pool += [x for t in tokens for x in (t, t[:60], t.split(".")[1], t.split(".")[2][:-1], t[5:])]
        pool += [x for b64, raw in peppers
                 for x in (b64, b64[:-3], raw.hex(), raw.hex()[1:], base64.urlsafe_b64encode(raw).decode())]
        noise = "".join(rng.choice(B62 + " =._-\n") for _ in range(400))
        for i in range(8):
            parts = [noise[rng.randrange(400):][:rng.randrange(60)] for _ in range(3)]
            for _ in range(rng.randrange(3)):
                parts.insert(rng.randrange(len(parts) + 1), rng.choice(pool))
            texts.append(run([rng.choice(["serve", "key"]), rng.choice(["create", "list", "show"]), str(i)],
                             "".join(parts), rng.choice(["run", "spawn", "metrics"])))
        assert scan(texts, secrets, tokens, peppers) == reference(texts, secrets, tokens, peppers), seed


def test_needles_finds_exactly_the_strings_present():
    rng = random.Random(5)
    needles = ["".join(rng.choice("ab") for _ in range(rng.randrange(10, 40))) for _ in range(40)]
    finder = Needles(needles, k=6)
    for _ in range(300):
        text = "".join(rng.choice("abc") for _ in range(rng.randrange(0, 120)))
        assert finder.found_in(text) == {n for n in needles if n in text}, text


def test_secrets_in_finds_every_secret_an_output_holds():
    # The per-test check (conftest.py) looks a secret up in each output's secrets_in set.
    rng = random.Random(6)
    secrets = [make_secret() for _ in range(6)]
    for _ in range(300):
        parts = []
        for _ in range(rng.randrange(6)):
            s = rng.choice(secrets)
            parts.append(rng.choice([s, s[:rng.randrange(5, 50)], "x" + s, "tks" + s, s[:-3] + s]))
        text = rng.choice(["", "tks_", "_"]).join(parts)
        assert {s for s in secrets if s in secrets_in(text)} == {s for s in secrets if s in text}, text


def _nested_run(tmp_path, leak):
    """tests/e2e/leakplant_session.py in a pytest of its own on two xdist workers."""
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, LEAKPLANT="1" if leak else "0")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", os.path.join(here, "pytest.ini"), "-p", "no:cacheprovider",
         "-n", "2", "--dist", "loadfile", "--basetemp", str(tmp_path / "nested"),
         os.path.join(here, "leakplant_session.py")],
        cwd=here, env=env, capture_output=True, text=True, timeout=120)


def test_a_leak_found_by_an_xdist_worker_fails_the_run(tmp_path):
    """scripts/test.sh runs the suite on xdist workers, each a session of its own
    that scans its own outputs: the controller must fail the run on what a worker
    found and show it (the worker's own exit status does not reach pytest's).
    The same run without the planted leak passes and says what it checked."""
    bad = _nested_run(tmp_path, leak=True)
    assert bad.returncode == 1, bad.stdout[-3000:] + bad.stderr[-2000:]
    assert "4 passed" in bad.stdout, bad.stdout[-3000:]
    assert re.search(r"tokend e2e leak scan FAILED \(gw\d\)", bad.stdout), bad.stdout[-3000:]
    assert "planted" in bad.stdout.split("leak scan FAILED", 1)[1], "the summary names the output"
    good = _nested_run(tmp_path, leak=False)
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-2000:]
    assert re.search(r"tokend e2e leak scan \(gw\d\): 4 outputs, 1 tokens checked, nothing leaked", good.stdout), \
        good.stdout[-3000:]
    assert good.stdout.count("planted bound") == 4, "the workers' measured bounds reach the summary"
