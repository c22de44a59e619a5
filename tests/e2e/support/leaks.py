"""The scan for secrets, tokens and peppers in what the session produced: the
session finaliser (conftest.py, pytest_sessionfinish) runs it over every CLI
output and server log, and fails the run when anything leaked; test_token.py
also runs it over its own /metrics and pg_dump.

Each text is read once whatever the number of secrets, tokens and peppers
(a session has thousands of secrets and tens of thousands of tokens): Needles
finds which of many long strings occur in a text by looking up the text's
pieces at every K-th position in an index of the strings' pieces, and confirms
each candidate with a plain substring test. test_leak_scan.py plants each kind
of leak and checks that the scan reports it."""
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


class Needles:
    """Which of many strings (`needles`, each at least 2K-1 characters) occur in a text.

    A needle found at position p covers the K characters from the first multiple of K
    at or after p (fewer than K past p, and still inside the needle as it is 2K-1 long):
    those equal the needle's piece at an offset below K. So the index holds every
    needle's K-character pieces at offsets 0..K-1, the text is looked up at positions
    0, K, 2K, ..., and each candidate is confirmed by `needle in text`: exactly the
    needles that occur, with about len(text)/K lookups."""

    def __init__(self, needles, k=12):
        self.k = k
        self.index = {}
        self.short = set()     # shorter than 2K-1: tested one by one (none in practice)
        for n in needles:
            if len(n) < 2 * k - 1:
                self.short.add(n)
                continue
            for o in range(k):
                self.index.setdefault(n[o:o + k], set()).add(n)

    def found_in(self, text):
        k, index = self.k, self.index
        cands = set()
        for q in range(0, len(text) - k + 1, k):
            c = index.get(text[q:q + k])
            if c:
                cands |= c
        return {n for n in cands if n in text} | {n for n in self.short if n and n in text}


def leak_problems(texts, secrets=None, tokens=None, peppers=None, need_secrets=True):
    """Secrets (or 12-character pieces), tokens (or their payload/signature) and peppers
    found in `texts` ([(record, text)]), except each secret's one creation (or rotation) output.
    secrets, tokens, peppers: those to look for, by default the session's (support.registry);
    every text's secret-shaped strings are looked for too. With no token, or no secret
    (unless need_secrets is false: a run whose keys were all inserted in SQL), nothing
    would be checked of that kind: an AssertionError, never a silent pass."""
    secrets = set(SECRETS if secrets is None else secrets)
    tokens = set(TOKENS if tokens is None else tokens)
    peppers = set(PEPPERS if peppers is None else peppers)
    for _, text in texts:
        secrets.update(SECRET_FIND_RE.findall(text))
    assert (secrets or not need_secrets) and tokens, "the registry is empty: nothing was checked"
    problems = []
    pieces = _SecretPieces(secrets)
    whole = Needles(secrets)
    shown = dict.fromkeys(secrets, 0)
    for rec, text in texts:
        # A key's secret is shown by its creation, or by the rotation that made it.
        is_create = rec.get("kind") == "run" and "key" in rec["args"] and \
            ("create" in rec["args"] or "rotate-secret" in rec["args"])
        hits = pieces.owners_in(text)
        if hits and not is_create:
            problems.append(f"{len(hits)} client secret(s) (or 12+ character pieces) in {rec.get('kind')} "
                            f"output of {rec['args'][:4]}")
        if is_create and len(hits) > 1:
            problems.append(f"a key create output shows {len(hits)} secrets: {rec['args'][:6]}")
        for s in whole.found_in(text):
            shown[s] += 1
    # Every secret is displayed exactly once (its creation).
    for s, n in shown.items():
        if n != 1:
            problems.append(f"secret ...{s[-4:]} appears in {n} outputs (expected only its creation)")
    # Tokens: never, in whole or as the signature or payload segment.
    sig_parts = {}
    for tok in tokens:
        h, p, sig = tok.split(".")
        sig_parts[sig] = tok
        sig_parts[p] = tok
    whole_tokens = Needles(tokens)
    for rec, text in texts:
        for m in re.finditer(r"[A-Za-z0-9_-]{40,}", text):
            if m.group(0) in sig_parts:
                problems.append(f"an access token (or its payload/signature) in {rec.get('kind')} output of "
                                f"{rec['args'][:4]}")
                break
        if whole_tokens.found_in(text):
            problems.append(f"an access token in {rec.get('kind')} output of {rec['args'][:4]}")
    # The pepper: base64 text, raw bytes as hex and base64url.
    forms = set()
    for b64, raw in peppers:
        forms |= {b64, b64.rstrip("="), raw.hex(), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    forms.discard("")
    pepper_forms = Needles(forms)
    for rec, text in texts:
        if pepper_forms.found_in(text):
            problems.append(f"the pepper in {rec.get('kind')} output of {rec['args'][:4]}")
    return problems


class _SecretPieces:
    """The secrets whose 12-character pieces (of the part after `tks_`) occur in a text.

    A 12-character piece at position p covers the 6 characters at the first multiple
    of 6 at or after p: those are one of the secrets' 6-character pieces, so the text
    is looked up at every 6th position and, where a 6-character piece matches, every
    12-character window that could contain it is looked up in the 12-character index."""

    def __init__(self, secrets, n=12):
        self.n = n
        self.h = n // 2
        self.owner = {}
        self.halves = set()
        for s in secrets:
            body = s[4:]
            for i in range(len(body) - n + 1):
                self.owner[body[i:i + n]] = s
            for i in range(len(body) - self.h + 1):
                self.halves.add(body[i:i + self.h])

    def owners_in(self, text):
        n, h, owner, halves = self.n, self.h, self.owner, self.halves
        hits = set()
        for q in range(0, len(text) - h + 1, h):
            if text[q:q + h] in halves:
                for p in range(max(0, q - h), q + 1):
                    o = owner.get(text[p:p + n])
                    if o:
                        hits.add(o)
        return hits
