"""The API-key format (mirror of lib/include/tokend/keyfmt.h), base64url, JWK
thumbprints and signing keys made with openssl at test time."""
import base64
import hashlib
import json
import os
import re
import subprocess
import zlib
from pathlib import Path

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_RE = re.compile(r"^tk_(test_)?[0-9A-Za-z]{28}$")   # live and test keys (default prefixes)
SECRET_RE = re.compile(r"^tks_[0-9A-Za-z]{49}$")
SECRET_FIND_RE = re.compile(r"tks_[0-9A-Za-z]{49}")


def b62_checksum(s):
    v = zlib.crc32(s.encode()) & 0xFFFFFFFF
    out = []
    for _ in range(6):
        out.append(B62[v % 62])
        v //= 62
    return "".join(reversed(out))


def make_key_id(body=None):
    """A well-formed key ID (valid checksum) that tokend never issued."""
    body = body or "".join(B62[b % 62] for b in os.urandom(22))
    assert len(body) == 22
    s = "tk_" + body
    return s + b62_checksum(s)


def make_secret(body=None):
    body = body or "".join(B62[b % 62] for b in os.urandom(43))
    s = "tks_" + body
    return s + b62_checksum(s)


def checksum_ok(s):
    return len(s) > 6 and b62_checksum(s[:-6]) == s[-6:]


def break_checksum(s):
    """Same length, prefix and charset; checksum no longer matches."""
    last = s[-1]
    return s[:-1] + ("A" if last != "A" else "B")


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_b64u(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(size, "big"))


def public_jwk_of(path):
    """The public JWK (dict, thumbprint members only) of a PEM or JWK private key file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"{"):
        j = json.loads(data)
        return {k: j[k] for k in ("kty", "crv", "x", "y", "n", "e") if k in j}
    key = serialization.load_pem_private_key(data, password=None)
    pub = key.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": _int_b64u(nums.x, 32), "y": _int_b64u(nums.y, 32)}
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        return {"kty": "RSA", "n": _int_b64u(nums.n), "e": _int_b64u(nums.e)}
    raise ValueError(f"unsupported key type in {path}")


def thumbprint(path):
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a key file: tokend's kid."""
    jwk = public_jwk_of(path)
    members = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
    canon = json.dumps({k: jwk[k] for k in members[jwk["kty"]]}, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(canon.encode()).digest())


def openssl_genpkey(path, *args):
    r = subprocess.run(["openssl", "genpkey", *args, "-out", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl genpkey failed: {r.stderr}"
    os.chmod(path, 0o600)
    return path



def make_signing_keys(d):
    """Fresh signing keys in directory `d` (chmod 600): ES256 x2, EdDSA, RS256 as PEM,
    one more ES256 as a JWK file (private member d included); {name: path}."""
    d = Path(d)
    os.chmod(d, 0o700)
    keys = {
        "es256": openssl_genpkey(d / "es256.pem", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
        "es256b": openssl_genpkey(d / "es256b.pem", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
        "ed25519": openssl_genpkey(d / "ed25519.pem", "-algorithm", "ED25519"),
        "rs256": openssl_genpkey(d / "rs256.pem", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
    }
    # The same kind of ES256 key, as a JWK file (private member d included).
    from cryptography.hazmat.primitives import serialization
    k = serialization.load_pem_private_key(
        openssl_genpkey(d / "es256c.pem", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256").read_bytes(),
        password=None)
    nums = k.private_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": _int_b64u(nums.public_numbers.x, 32),
           "y": _int_b64u(nums.public_numbers.y, 32), "d": _int_b64u(nums.private_value, 32)}
    jp = d / "es256c.jwk"
    fd = os.open(jp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(jwk, f)
    keys["es256_jwk"] = jp
    return keys


def tamper_payload(tok, **changes):
    """`tok` with claims changed in its payload, the header and signature kept."""
    h, p, s = tok.split(".")
    claims = json.loads(b64u_decode(p))
    claims.update(changes)
    return ".".join([h, b64u(json.dumps(claims, separators=(",", ":")).encode()), s])
