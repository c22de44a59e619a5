// Verify one access token with jose 6 against a JWKS, as a resource server would:
// the algorithm pinned, typ at+jwt, issuer and audience checked.
//
// Environment (all required): TOKEND_JWKS (the JWK Set as JSON), TOKEND_ISSUER,
// INTEROP_AUDIENCE, INTEROP_ALG (ES256, EdDSA or RS256). The token comes on stdin
// (never on the command line). Prints {"ok": true, "header": {...}, "claims": {...}}
// and exits 0, or {"ok": false, "error": "..."} and exits 1; 2 on a usage error.
// Node 18 needs NODE_OPTIONS=--experimental-global-webcrypto (see run.mjs).
import * as jose from 'jose';

const env = process.env;
if (!env.TOKEND_JWKS || !env.TOKEND_ISSUER || !env.INTEROP_AUDIENCE || !env.INTEROP_ALG) {
  process.stderr.write('usage: TOKEND_JWKS=... TOKEND_ISSUER=... INTEROP_AUDIENCE=... INTEROP_ALG=... node verify.mjs <token\n');
  process.exit(2);
}
let token = '';
for await (const chunk of process.stdin) token += chunk;
token = token.trim();
try {
  const jwks = jose.createLocalJWKSet(JSON.parse(env.TOKEND_JWKS));
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
    issuer: env.TOKEND_ISSUER, audience: env.INTEROP_AUDIENCE, algorithms: [env.INTEROP_ALG],
    typ: 'at+jwt',
  });
  process.stdout.write(JSON.stringify({ ok: true, header: protectedHeader, claims: payload }) + '\n');
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, error: `${e.code || ''} ${e.message}` }) + '\n');
  process.exit(1);
}
