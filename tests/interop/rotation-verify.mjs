// A resource server that caches the JWKS (run by tests/e2e/test_rotation.py): jose's
// createRemoteJWKSet with cacheMaxAge = cooldownDuration = JWKS_MAX_AGE_MS, so it fetches
// the JWKS again at most once per jwks_max_age, even for an unknown kid (the strictest
// cache a verifier may keep when tokend says max-age). Reads one token per line on
// stdin; writes one JSON line per token on stdout: {"ok": true, "kid": ...} or
// {"ok": false, "kid": ..., "error": ...}. Tokens are never printed.
//
// Environment: JWKS_URL, TOKEND_ISSUER, JWKS_MAX_AGE_MS (all required).
import * as jose from 'jose';
import readline from 'node:readline';

const env = process.env;
if (!env.JWKS_URL || !env.TOKEND_ISSUER || !env.JWKS_MAX_AGE_MS) {
  process.stderr.write('usage: JWKS_URL=... TOKEND_ISSUER=... JWKS_MAX_AGE_MS=... node rotation-verify.mjs\n');
  process.exit(2);
}
const maxAge = Number(env.JWKS_MAX_AGE_MS);
const jwks = jose.createRemoteJWKSet(new URL(env.JWKS_URL), { cacheMaxAge: maxAge, cooldownDuration: maxAge });
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  const tok = line.trim();
  if (!tok)
    continue;
  let kid = null;
  try {
    kid = jose.decodeProtectedHeader(tok).kid;
    await jose.jwtVerify(tok, jwks, { issuer: env.TOKEND_ISSUER, audience: env.TOKEND_ISSUER, typ: 'at+jwt' });
    process.stdout.write(JSON.stringify({ ok: true, kid }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, kid, error: String(e.code || e.name) }) + '\n');
  }
}
