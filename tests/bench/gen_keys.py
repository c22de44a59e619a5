#!/usr/bin/env python3
"""Generate API keys for the benchmark without going through the CLI.

Writes, for COUNT keys spread over ACCOUNTS accounts (bench-0000, ...):
  COPY_FILE  one api_keys row per line in COPY text format:
             id, account_id, name, secret_hash (bytea), secret_hint, scopes
  AUTH_FILE  one line per key: base64("id:secret"), the HTTP Basic credentials
             (RFC 6749 2.3.1 form-encoding changes nothing: IDs and secrets are
             base62 and '_'), for the wrk Lua script.

Formats mirror lib/src/keyfmt.c and lib/src/crypto.c:
  key ID   tk_  + 22 base62 + 6-char base62 CRC-32 of everything before
  secret   tks_ + 43 base62 + 6-char base62 CRC-32 of everything before
  checksum zlib.crc32(prefix + body) as exactly 6 base62 digits, most significant first
  hash     HMAC-SHA256(pepper bytes, secret), pepper = base64-decoded pepper file
  hint     the secret's last 4 characters
Standard library only (runs with Debian's python3).
"""
import argparse
import base64
import hashlib
import hmac
import secrets
import zlib

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# Rejection sampling exactly as keyfmt.c does: bytes >= 248 are dropped, the rest
# taken mod 62. Done with bytes.translate (delete, then map) so that a million keys
# take seconds, not minutes.
_MAP = bytes(ord(B62[b % 62]) if b < 248 else 0 for b in range(256))
_REJECT = bytes(range(248, 256))


def b62_random(n):
    out = b""
    while len(out) < n:
        out += secrets.token_bytes(n - len(out) + 8).translate(_MAP, _REJECT)
    return out[:n].decode()


def checksum(s):
    v = zlib.crc32(s.encode()) & 0xFFFFFFFF
    digits = []
    for _ in range(6):
        digits.append(B62[v % 62])
        v //= 62
    return "".join(reversed(digits))


def with_checksum(prefix, body_len):
    s = prefix + b62_random(body_len)
    return s + checksum(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pepper-file", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--accounts", type=int, required=True)
    ap.add_argument("--scope", required=True)
    ap.add_argument("--copy-file", required=True)
    ap.add_argument("--auth-file", required=True)
    a = ap.parse_args()

    with open(a.pepper_file) as f:
        pepper = base64.b64decode(f.read().strip(), validate=True)
    assert len(pepper) >= 32, "pepper shorter than 32 bytes"

    seen = set()
    with open(a.copy_file, "w") as copy, open(a.auth_file, "w") as auth:
        for i in range(a.count):
            key_id = with_checksum("tk_", 22)
            if key_id in seen:          # 131 random bits: never, but never a duplicate row either
                continue
            seen.add(key_id)
            secret = with_checksum("tks_", 43)
            digest = hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()
            account = "bench-%04d" % (i % a.accounts)
            copy.write(f"{key_id}\t{account}\tbench {i}\t\\\\x{digest}\t{secret[-4:]}\t{{{a.scope}}}\n")
            auth.write(base64.b64encode(f"{key_id}:{secret}".encode()).decode() + "\n")


if __name__ == "__main__":
    main()
