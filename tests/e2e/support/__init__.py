"""Helpers of the end-to-end tests (tests/e2e), imported by conftest.py (which holds
only the fixtures and hooks) and by the test modules:

  util      paths (ROOT, TOKEND_BIN, ...), the run's private temp directory, ports,
            waiting, timestamps, NS
  registry  what the session saw: every CLI/server output (OUTPUTS), secrets, tokens,
            peppers, servers, measured bounds; sanitizer markers
  keys      the API-key format (make_key_id, make_secret, ...), base64url, JWK
            thumbprints, signing keys made with openssl
  pg        the throwaway PostgreSQL cluster (Postgres) and SQL helpers
  tokend    the tokend CLI bound to a config file (Tokend), background processes
  http      HTTP requests, raw exchanges, Prometheus metrics parsing
  server    `tokend serve` (Server, Starter), tokens, Load (threads asking for tokens)
  netdelay  a TCP relay that delays every byte (a database not next door)
  leaks     the scan for secrets, tokens and peppers in what the session produced
  admin     the admin API tests' helpers and their module-scoped `env` fixture
  browser   the console's browser tests: headless Chromium (Selenium), screenshots,
            CSP violations, axe-core checks, waits, the console_tokend environment
"""
