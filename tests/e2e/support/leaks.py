"""The scan for secrets, tokens and peppers in what the session produced: the
session finaliser (conftest.py, pytest_sessionfinish) runs it over every CLI
output and server log, and fails the run when anything leaked; test_token.py
also runs it over its own /metrics and pg_dump."""
import base64
import re

from support.keys import SECRET_FIND_RE
from support.registry import PEPPERS, SECRETS, SERVERS, TOKENS, all_output_texts


def session_texts():
    """[(record, text)]: every recorded output, plus the files of servers still running."""
    texts = list(all_output_texts())
    for s in SERVERS:
        if not getattr(s, "recorded", True):
            texts.append(({"args": s.cmd[1:] if hasattr(s, "cmd") else [], "kind": "spawn-live"},
                          s.stdout_text() + "\n" + s.stderr_text()))
    return texts


def leak_problems(texts):
    """Secrets (or 12-character pieces), tokens (or their payload/signature) and peppers
    found in `texts` ([(record, text)]), except each secret's one creation (or rotation) output."""
    secrets = set(SECRETS)
    for _, text in texts:
        secrets.update(SECRET_FIND_RE.findall(text))
    assert secrets and TOKENS, "the registry is empty: nothing was checked"
    window_owner = {}
    for s in secrets:
        for w in _windows(s[4:]):
            window_owner[w] = s
    problems = []
    run_re = re.compile(r"[0-9A-Za-z]{12,}")
    for rec, text in texts:
        # A key's secret is shown by its creation, or by the rotation that made it.
        is_create = rec.get("kind") == "run" and "key" in rec["args"] and \
            ("create" in rec["args"] or "rotate-secret" in rec["args"])
        hits = set()
        for m in run_re.finditer(text):
            run = m.group(0)
            for w in _windows(run):
                if w in window_owner:
                    hits.add(window_owner[w])
                    break
        if hits and not is_create:
            problems.append(f"{len(hits)} client secret(s) (or 12+ character pieces) in {rec.get('kind')} "
                            f"output of {rec['args'][:4]}")
        if is_create and len(hits) > 1:
            problems.append(f"a key create output shows {len(hits)} secrets: {rec['args'][:6]}")
    # Every secret is displayed exactly once (its creation).
    for s in secrets:
        n = sum(1 for _, text in texts if s in text)
        if n != 1:
            problems.append(f"secret ...{s[-4:]} appears in {n} outputs (expected only its creation)")
    # Tokens: never, in whole or as the signature or payload segment.
    sig_parts = {}
    for tok in TOKENS:
        h, p, sig = tok.split(".")
        sig_parts[sig] = tok
        sig_parts[p] = tok
    for rec, text in texts:
        for m in re.finditer(r"[A-Za-z0-9_-]{40,}", text):
            if m.group(0) in sig_parts:
                problems.append(f"an access token (or its payload/signature) in {rec.get('kind')} output of "
                                f"{rec['args'][:4]}")
                break
        for tok in TOKENS:
            if tok in text:
                problems.append(f"an access token in {rec.get('kind')} output of {rec['args'][:4]}")
                break
    # The pepper: base64 text, raw bytes as hex and base64url.
    for b64, raw in PEPPERS:
        forms = {b64, b64.rstrip("="), raw.hex(), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
        for rec, text in texts:
            for f in forms:
                if f and f in text:
                    problems.append(f"the pepper in {rec.get('kind')} output of {rec['args'][:4]}")
    return problems


def _windows(s, n=12):
    return {s[i:i + n] for i in range(0, len(s) - n + 1)}
