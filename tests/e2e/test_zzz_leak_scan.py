"""Runs last (file order): scan every CLI output and server log of the whole
session for client secrets, access tokens and peppers (test_token.py scans its
own module's /metrics and pg_dump too)."""
from conftest import all_output_texts
from server import SERVERS, TOKENS
from test_token import leak_problems


def test_no_secret_token_or_pepper_anywhere_in_the_session():
    texts = list(all_output_texts())
    for s in SERVERS:
        if not getattr(s, "recorded", True):
            texts.append(({"args": [], "kind": "spawn-live"}, s.stdout_text() + "\n" + s.stderr_text()))
    if not TOKENS:
        return   # a partial run without servers: test_cli's own scan covers the CLI
    problems = leak_problems(texts)
    assert not problems, "\n".join(sorted(set(problems)))
