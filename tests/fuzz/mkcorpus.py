#!/usr/bin/python3
"""Write the seed corpora of the fuzz harnesses into tests/fuzz/corpus/<harness>/.

    /usr/bin/python3 tests/fuzz/mkcorpus.py

Deterministic: running it again gives the same files (named by the SHA-1 of
their content, as libFuzzer names its own). It replaces each directory, so
inputs merged in by `scripts/fuzz.sh SECONDS --update` are dropped. The test keys are derived as in
testkeys.h (read from there for the RSA modulus). Tokens are hand-built JWS
with the test keys' kids and garbage signatures; no secret of any kind is
written: key IDs are public, and every secret-shaped value below has a wrong
checksum (fuzz_keyfmt fixes checksums itself to reach the well-formed path).
Requires python3-cryptography (Debian package).
"""
import base64
import hashlib
import json
import re
import shutil
import zlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives import serialization

HERE = Path(__file__).resolve().parent
OUT = HERE / "corpus"
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ISSUER = "https://issuer.example"
AUDIENCE = "https://api.example"
NOW = 1767225600


def b64u(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def js(o):
    return json.dumps(o, separators=(",", ":"))


def label_hash(label):
    return hashlib.sha256(label.encode()).digest()


def test_jwks():
    rsa_n = "".join(re.findall(r'"([A-Za-z0-9_-]+)"',
                               re.search(r"#define FUZZ_RSA_N \\\n(.*?)\n\n",
                                         (HERE / "testkeys.h").read_text(), re.S).group(1)))
    d = int.from_bytes(label_hash("tokend fuzz test key: P-256"), "big")
    pub = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    ed = ed25519.Ed25519PrivateKey.from_private_bytes(label_hash("tokend fuzz test key: Ed25519"))
    edx = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    keys = [
        {"kty": "EC", "crv": "P-256", "x": b64u(pub.x.to_bytes(32, "big")),
         "y": b64u(pub.y.to_bytes(32, "big")), "kid": "fuzz-es256", "alg": "ES256", "use": "sig"},
        {"kty": "OKP", "crv": "Ed25519", "x": b64u(edx), "kid": "fuzz-eddsa", "alg": "EdDSA",
         "use": "sig"},
        {"kty": "RSA", "n": rsa_n, "e": "AQAB", "kid": "fuzz-rs256", "alg": "RS256", "use": "sig"},
    ]
    return keys


def checksum(s):
    v = zlib.crc32(s.encode())
    out = ""
    for _ in range(6):
        out = B62[v % 62] + out
        v //= 62
    return out


def fake(prefix, n, seed, valid):
    rnd = hashlib.sha256(seed.encode()).digest() * 2
    body = prefix + "".join(B62[b % 62] for b in rnd[:n])
    c = checksum(body)
    if not valid:  # a wrong checksum: never a usable secret
        c = c[:-1] + ("0" if c[-1] != "0" else "1")
    return body + c


KEY_ID = fake("tk_", 22, "fuzz key id", True)
SECRET = fake("tks_", 43, "fuzz secret", False)   # wrong checksum on purpose


def jws(header, payload, sig):
    h = header if isinstance(header, str) else js(header)
    p = payload if isinstance(payload, str) else js(payload)
    return f"{b64u(h)}.{b64u(p)}.{b64u(sig)}"


def claims(**kw):
    c = {"iss": ISSUER, "sub": "acct-1", "client_id": KEY_ID, "jti": "AAAAAAAAAAAAAAAAAAAAAA",
         "iat": NOW - 60, "exp": NOW + 540, "aud": AUDIENCE, "scope": "orders:read orders:write"}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def hdr(kid="fuzz-eddsa", alg="EdDSA", typ="at+jwt", **kw):
    h = {"alg": alg, "typ": typ, "kid": kid}
    h.update(kw)
    return {k: v for k, v in h.items() if v is not None}


def seeds():
    s = {}
    s["fuzz_form"] = [
        "grant_type=client_credentials",
        "grant_type=client_credentials&scope=orders%3Aread+orders%3Awrite",
        f"grant_type=client_credentials&client_id={KEY_ID}&client_secret={SECRET}",
        "grant_type=client_credentials&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example",
        f"token={b64u('x' * 30)}&token_type_hint=access_token",
        "grant_type=a&grant_type=b",
        "a=1&&b=2&", "&", "=x", "a", "a=", "a==b",
        "scope=%00", "scope=%zz", "scope=%4", "scope=%C0%AF", "scope=%ED%A0%80", "scope=%F4%90%80%80",
        "scope=caf%C3%A9", "n%61me=v%61lue", "a=\r\nb", "a=%0D%0A", "a=%7F",
        "&".join(f"p{i}=v" for i in range(33)),
        "scope=" + "x" * 4097,
        "n" * 65 + "=1",
    ]
    basic = lambda raw: "Basic " + base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()
    s["fuzz_basic"] = [
        basic(f"{KEY_ID}:{SECRET}"),
        "basic " + base64.b64encode(f"{KEY_ID}:{SECRET}".encode()).decode(),
        "BASIC   " + base64.b64encode(b"id:pa:ss").decode(),
        basic("id%3A1:s%20e+c"), basic("id:"), basic(":secret"), basic("nocolon"),
        basic("caf%C3%A9:x"), basic("a%ZZ:x"), basic("a%00:x"), basic(b"a\xff:x"), basic("a:\x01"),
        "Basic QQ==", "Basic QR==", "Basic QUI=", "Basic QUJ=", "Basic QQ", "Basic Q===",
        "Basic YTpi\n", "Basic YT pi", "Basic", "Basic ", "Bearer abc", "Basicx YTpi",
        "Basic " + "A" * 1020,
    ]
    s["fuzz_keyfmt"] = [
        KEY_ID, SECRET, KEY_ID[:-1] + "!", "tk_", "tks_" + "A" * 49, "TK_" + KEY_ID[3:],
        "orders:read orders:write", "orders:read", " a", "a ", "a  b", "a a", "a\"b", "a\\b",
        " ".join(f"s{i}" for i in range(33)), "x" * 129,
        "1h30m", "30d", "45", "1w2d3h4m5s", "0s", "10m10m", "5s1m", "36525d", "36526d",
        "99999999999999999999s",
        "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123+02:00", "2024-02-29t23:59:60z",
        "0000-01-01T00:00:00-23:59", "9999-12-31T23:59:59+00:00", "2023-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00", "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00+2:00",
    ]
    sig64, sig256 = b"\x5a" * 64, b"\x5a" * 256
    raw = [
        jws(hdr(), claims(), sig64),
        jws(hdr("fuzz-es256", "ES256"), claims(), sig64),
        jws(hdr("fuzz-es256", "ES256"), claims(), b"\0" * 64),
        jws(hdr("fuzz-rs256", "RS256"), claims(), sig256),
        jws(hdr("fuzz-rs256", "RS256", typ="application/at+jwt"), claims(), sig256),
        jws(hdr(alg="none"), claims(), b""),
        jws(hdr(alg="nOnE"), claims(), b""),
        jws(hdr("fuzz-rs256", "HS256"), claims(), b"\1" * 32),
        jws(hdr(alg="ES256"), claims(), sig64),
        jws(hdr(typ="JWT"), claims(), sig64),
        jws(hdr(typ=None), claims(), sig64),
        jws(hdr(kid="../../etc/passwd"), claims(), sig64),
        jws(hdr(kid=7), claims(), sig64),
        jws(hdr(crit=["exp"]), claims(), sig64),
        jws(hdr(jku="https://evil.example/jwks"), claims(), sig64),
        jws(hdr(jwk={"kty": "OKP", "crv": "Ed25519", "x": b64u(b"\0" * 32)}), claims(), sig64),
        jws('{"alg":"EdDSA","alg":"EdDSA","typ":"at+jwt","kid":"fuzz-eddsa"}', claims(), sig64),
        jws(hdr(), claims(), sig64) + "=",
        jws(hdr(), claims(), sig64).replace("-", "+").replace("_", "/"),
        jws(hdr(), claims(), sig64) + ".x",
        "a.b", "..", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.",
        jws(hdr(), "x" * 6200, sig64),
    ]
    signed = [
        (hdr(), claims()),
        (hdr(), claims(aud=[AUDIENCE, "https://other.example"])),
        (hdr(), claims(aud=None, scope=None)),
        (hdr(), claims(nbf=NOW - 10, acct="acct-1")),
        (hdr(typ="AT+JWT"), claims()),
        (hdr(alg="ES256"), claims()),
        (hdr(), claims(exp=str(NOW + 540))),
        (hdr(), claims(exp=NOW + 0.5)),
        (hdr(), claims(exp=NOW - 31)),
        (hdr(), claims(exp=2 ** 63 - 1, iat=-(2 ** 63))),
        (hdr(), claims(nbf=NOW + 3600)),
        (hdr(), claims(iat=NOW + 3600)),
        (hdr(), claims(iss=ISSUER + "/")),
        (hdr(), claims(aud=[1, AUDIENCE])),
        (hdr(), claims(sub="")),
        (hdr(), claims(jti=None)),
        (hdr(), claims(scope="orders:write")),
        (hdr(), '{"iss":"a","iss":"b"}'),
        (hdr(), "[" * 40 + "]" * 40),
        (hdr(), '{"iss":"\\u0000"}'),
        (hdr(), "not json"),
    ]
    verify = [t.encode() for t in raw]
    for h, p in signed:
        verify.append((h if isinstance(h, str) else js(h)).encode() + b"\0" +
                      (p if isinstance(p, str) else js(p)).encode())
    s["fuzz_verify"] = verify

    sl_hdr = js(hdr(typ="statuslist+jwt"))
    sl_uri = "https://issuer.example/oauth2/status-list"

    def sl_claims(lst="eNrbuRgAAhcBXQ", bits=1, **kw):
        c = {"sub": sl_uri, "iat": 1767225600, "exp": 1767225660, "ttl": 30,
             "status_list": {"bits": bits, "lst": lst}}
        c.update(kw)
        return js(c)
    s["fuzz_statuslist"] = [
        b"Z" + zlib.compress(bytes([0xB9, 0xA3]), 9),
        b"Z" + zlib.compress(bytes(4096), 9),
        b"Z" + zlib.compress(bytes(4096), 9)[:-3],
        b"Z" + zlib.compress(b"\x01", 9) + b"\x00",
        b"Z" + (lambda c: c.compress(b"\xff") + c.flush())(zlib.compressobj(9, zlib.DEFLATED, -15)),
        b"Z",
        sl_hdr.encode() + b"\0" + sl_claims().encode(),
        sl_hdr.encode() + b"\0" + sl_claims(bits=2).encode(),
        sl_hdr.encode() + b"\0" + sl_claims(sub="https://other/").encode(),
        sl_hdr.encode() + b"\0" + sl_claims(lst="eNrbuRgAAhcBXQ==").encode(),
        js(hdr()).encode() + b"\0" + sl_claims().encode(),
        jws(hdr(typ="statuslist+jwt"), sl_claims(), b"\x00" * 64).encode(),
    ]

    keys = test_jwks()
    ec_, okp, rsa_ = keys
    s["fuzz_jwks"] = [
        js({"keys": keys}),
        js({"keys": [ec_]}), js({"keys": [okp]}), js({"keys": [rsa_]}),
        js({"keys": [dict(ec_, kid=None)]}),
        js({"keys": [{k: v for k, v in okp.items() if k != "alg"}]}),
        js({"keys": [dict(ec_, d=b64u(b"\1" * 32))]}),
        js({"keys": [{"kty": "oct", "k": b64u(b"k" * 32), "kid": "h"}]}),
        js({"keys": [dict(ec_, crv="P-384")]}),
        js({"keys": [dict(ec_, alg="ES384"), okp]}),
        js({"keys": [dict(ec_, use="enc"), okp]}),
        js({"keys": [dict(ec_, key_ops=["sign"]), okp]}),
        js({"keys": [dict(ec_, y=b64u(b"\1" * 32))]}),
        js({"keys": [dict(rsa_, n=rsa_["n"][:170])]}),
        js({"keys": [dict(rsa_, e="AAEAAQ")]}),
        js({"keys": [dict(rsa_, e="Ag")]}),
        js({"keys": [ec_, dict(okp, kid="fuzz-es256")]}),
        js({"keys": [dict(okp, kid="k" * 257)]}),
        js({"keys": []}), js({"keys": {}}), js({}), "[]", '{"keys":[1]}',
        '{"keys":[],"keys":[]}', '{"keys":' + "[" * 40 + "]" * 40 + "}",
    ]

    s["fuzz_admin_json"] = [
        js({"name": "billing job", "scopes": ["orders:read"], "audiences": [AUDIENCE],
            "subject": "svc-billing", "expires_at": "2026-12-31T00:00:00Z", "token_lifetime": "10m"}),
        js({"id": "globex", "name": "Globex Corp", "key_limit": 7}),
        js({"key_limit": 9}), js({"disabled": True}), js({"reason": "leaked in CI logs"}),
        js({"name": "reports:read", "description": "Read reports"}), "{}", " { } ",
        '{"name":"a","name":"b"}', '{"name":"\\u0000"}', '{"name":"\\ud800"}', b'{"name":"\xff"}',
        '{"key_limit":99999999999999999999999}', '{"key_limit":1e400}', '{"key_limit":-0.0}',
        "[1]", '"str"', "null", "", "{} {}", '{"a":' * 32 + "1" + "}" * 32, '{"a":' * 33 + "1" + "}" * 33,
        '{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', '{"a":"\\"[[["}',
        js({f"k{i}": i for i in range(200)}),
    ]

    base = (HERE.parent.parent / "config" / "tokend-minimal.conf").read_text()
    s["fuzz_config"] = [
        base,
        "\n".join([
            "database_url = 'postgresql://tokend@127.0.0.1:5432/tokend'",
            "pepper_file = \"pepper\"", "signing_keys = a.pem b.jwk", "signing_key_active = k1",
            "listen_address = 0.0.0.0", "listen_port = 8443", "admin_listen_port = 9000",
            "workers = 4", "issuer = https://auth.example", "token_lifetime = 5m",
            "token_lifetime_max = 1h30m", "default_audience = https://api.example",
            "jwks_max_age = 10m", "max_connections = 1000", "max_body_size = 8192",
            "max_header_size = 8192", "header_timeout = 10s", "body_timeout = 10s",
            "idle_timeout = 1m", "db_pool_size = 8", "db_timeout = 1s",
            "last_used_flush_interval = 5s", "cache_ttl = 5m", "log_level = debug",
            "log_format = json", ""]),
        "# comment\n; comment\n\n   \t\nworkers=2\r\n",
        "pepper = " + b64u(b"\x01\x02" * 16) + "\n",
        "workers = 0\n", "workers = 65\n", "workers = +3\n", "workers = 3x\n", "listen_port = -1\n",
        "token_lifetime = 2h\n", "token_lifetime = 1h\ntoken_lifetime_max = 30m\n",
        "log_level = verbose\n", "issuer = ftp://x\n", "no_such_key = 1\n", "workers = 2\nworkers = 3\n",
        "just words\n", "= value\n", "key =\n", "issuer = \"\n", "issuer = 'http://a'\n",
        "workers = 2\0junk\n", "a" * 5000 + "\n", "x = " + "y" * 4092 + "\n",
        "workers = 2\nworker_cpus = 1, 0\n", "workers = 4\nworker_cpus = 4-7\n", "worker_cpus = off\n",
        "worker_cpus = 0,0\n", "worker_cpus = 3-1\n", "worker_cpus = 0,,1\n", "worker_cpus = 1024\n",
        "workers = 64\nworker_cpus = 960-1023\n", "worker_cpus = 0-99999999999\n", "worker_cpus = auto \n",
    ]
    return s


def main():
    for name, items in seeds().items():
        d = OUT / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        for it in items:
            b = it if isinstance(it, bytes) else it.encode("utf-8", "surrogatepass")
            (d / hashlib.sha1(b).hexdigest()).write_bytes(b)
        print(f"{name}: {len(list(d.iterdir()))} seeds")


if __name__ == "__main__":
    main()
