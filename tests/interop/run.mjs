// Interop check: a real node OAuth client (openid-client 6) gets tokens from tokend,
// and a real resource-server verifier (jose 6) checks them against the published JWKS.
//
// Environment:
//   TOKEND_ISSUER         issuer URL, e.g. http://127.0.0.1:8080 (required)
//   TOKEND_CLIENT_ID      key ID, tk_...   (required)
//   TOKEND_CLIENT_SECRET  secret, tks_...  (required; never printed)
//   INTEROP_SCOPE         scope to request in the client_secret_post grant (optional;
//                         the client_secret_basic grant requests none = all the key's scopes)
//   INTEROP_RESOURCE      RFC 8707 resource to request in the client_secret_post grant;
//                         the token's aud must then be exactly this (optional)
//   INTEROP_AUDIENCE      expected aud when no resource is requested (default: the issuer)
//
// Prints one JSON document on stdout: {"ok": bool, "failures": [...], "metadata": {...},
// "grants": {"basic": {...}, "post": {...}}, "negative": {...}}. Exit status 0 when every
// check passed, 1 when one failed, 2 on a usage error. Access tokens and the secret are
// never printed (only decoded headers and claims).
//
// Plain http is allowed only for a loopback issuer (tests): openid-client refuses http
// unless told to with allowInsecureRequests, which we apply only there.
//
// Node 20 or later runs it as is. On node 18 (Debian 12's nodejs), run it with
// NODE_OPTIONS=--experimental-global-webcrypto: openid-client 6 and jose 6 use the
// WebCrypto global `crypto`, which node 18 keeps behind that flag.
import * as client from 'openid-client';
import * as jose from 'jose';
import { inflateSync } from 'node:zlib';

const env = process.env;
const issuer = env.TOKEND_ISSUER;
const clientId = env.TOKEND_CLIENT_ID;
const clientSecret = env.TOKEND_CLIENT_SECRET;
if (!issuer || !clientId || !clientSecret) {
  process.stderr.write('usage: TOKEND_ISSUER=... TOKEND_CLIENT_ID=... TOKEND_CLIENT_SECRET=... node run.mjs\n');
  process.exit(2);
}
const wantScope = env.INTEROP_SCOPE || '';
const wantResource = env.INTEROP_RESOURCE || '';
const defaultAudience = env.INTEROP_AUDIENCE || issuer;

const out = { ok: false, failures: [], metadata: null, grants: {}, negative: {} };
const fail = (what) => out.failures.push(what);
const check = (cond, what) => { if (!cond) fail(what); return !!cond; };

function errInfo(e) {
  if (!e) return null;
  const info = { name: e.name, code: e.code, message: String(e.message || e) };
  if (e.claim) info.claim = e.claim;
  if (e.status) info.status = e.status;
  if (e.error) info.error = e.error;
  if (e.error_description) info.error_description = e.error_description;
  return info;
}

function isLoopback(u) {
  return u.protocol === 'http:' &&
    (u.hostname === 'localhost' || u.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(u.hostname));
}

// Change one claim and keep the original signature: must fail signature verification.
function tamperPayload(token) {
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  claims.scope = (claims.scope ? claims.scope + ' ' : '') + 'admin:everything';
  return [h, Buffer.from(JSON.stringify(claims)).toString('base64url'), s].join('.');
}

// Flip bits in the middle of the signature.
function tamperSignature(token) {
  const [h, p, s] = token.split('.');
  const sig = Buffer.from(s, 'base64url');
  sig[Math.floor(sig.length / 2)] ^= 0x5a;
  return [h, p, sig.toString('base64url')].join('.');
}

async function expectRejected(name, fn, { code, claim } = {}) {
  try {
    await fn();
    fail(`${name}: accepted, must be rejected`);
    out.negative[name] = { rejected: false };
  } catch (e) {
    const info = errInfo(e);
    out.negative[name] = { rejected: true, ...info };
    if (code) check(e.code === code, `${name}: expected ${code}, got ${e.code} (${e.message})`);
    if (claim) check(e.claim === claim, `${name}: expected a failure on claim ${claim}, got ${e.claim}`);
  }
}

async function main() {
  const issuerUrl = new URL(issuer);
  const execute = [];
  if (issuerUrl.protocol === 'http:') {
    if (!isLoopback(issuerUrl)) throw new Error(`refusing plain http to a non-loopback issuer: ${issuer}`);
    execute.push(client.allowInsecureRequests);
  }

  // RFC 8414 discovery (/.well-known/oauth-authorization-server), client_secret_basic.
  const basicCfg = await client.discovery(issuerUrl, clientId, undefined,
    client.ClientSecretBasic(clientSecret), { algorithm: 'oauth2', execute });
  const md = basicCfg.serverMetadata();
  out.metadata = {
    issuer: md.issuer,
    token_endpoint: md.token_endpoint,
    jwks_uri: md.jwks_uri,
    grant_types_supported: md.grant_types_supported,
    token_endpoint_auth_methods_supported: md.token_endpoint_auth_methods_supported,
    scopes_supported: md.scopes_supported,
    access_token_signing_alg_values_supported: md.access_token_signing_alg_values_supported,
  };
  check(md.issuer === issuer, `metadata issuer ${md.issuer} != ${issuer}`);
  check((md.grant_types_supported || []).includes('client_credentials'), 'client_credentials not in grant_types_supported');
  for (const m of ['client_secret_basic', 'client_secret_post'])
    check((md.token_endpoint_auth_methods_supported || []).includes(m), `${m} not in token_endpoint_auth_methods_supported`);
  check(!!md.jwks_uri, 'metadata has no jwks_uri');

  // The same server, client_secret_post (secret in the form body).
  const postCfg = await client.discovery(issuerUrl, clientId, undefined,
    client.ClientSecretPost(clientSecret), { algorithm: 'oauth2', execute });

  const jwks = jose.createRemoteJWKSet(new URL(md.jwks_uri));
  const verifyOpts = (audience) => ({
    issuer,
    audience,
    typ: 'at+jwt',
    algorithms: ['ES256'],
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'client_id', 'scope'],
  });

  const grants = [
    { name: 'basic', cfg: basicCfg, params: {}, audience: defaultAudience },
    {
      name: 'post',
      cfg: postCfg,
      params: {
        ...(wantScope ? { scope: wantScope } : {}),
        ...(wantResource ? { resource: wantResource } : {}),
      },
      audience: wantResource || defaultAudience,
    },
  ];
  const tokens = {};
  for (const g of grants) {
    const res = await client.clientCredentialsGrant(g.cfg, g.params);
    const token = res.access_token;
    tokens[g.name] = token;
    const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, verifyOpts(g.audience));
    out.grants[g.name] = {
      response: { token_type: res.token_type, expires_in: res.expires_in, scope: res.scope },
      header: protectedHeader,
      claims: payload,
    };
    const now = Math.floor(Date.now() / 1000);
    check(String(res.token_type).toLowerCase() === 'bearer', `${g.name}: token_type ${res.token_type}`);
    check(Number.isInteger(res.expires_in) && res.expires_in > 0, `${g.name}: expires_in ${res.expires_in}`);
    check(res.scope === payload.scope, `${g.name}: response scope "${res.scope}" != claim "${payload.scope}"`);
    if (g.params.scope) check(payload.scope === g.params.scope, `${g.name}: scope "${payload.scope}" != requested "${g.params.scope}"`);
    check(protectedHeader.alg === 'ES256' && protectedHeader.typ === 'at+jwt' && !!protectedHeader.kid,
      `${g.name}: header ${JSON.stringify(protectedHeader)}`);
    check(payload.client_id === clientId, `${g.name}: client_id claim is not the key ID`);
    check(payload.iss === issuer, `${g.name}: iss ${payload.iss}`);
    check(payload.exp - payload.iat === res.expires_in, `${g.name}: exp - iat != expires_in`);
    check(Math.abs(payload.iat - now) <= 60, `${g.name}: iat ${payload.iat} is not now (${now})`);
    check(payload.nbf <= now + 1, `${g.name}: nbf in the future`);
    check(typeof payload.jti === 'string' && payload.jti.length >= 16, `${g.name}: jti ${payload.jti}`);
    check(typeof payload.acct === 'string' && payload.acct.length > 0, `${g.name}: no acct claim`);
  }
  check(tokens.basic !== tokens.post, 'two grants returned the same token');
  check(out.grants.basic.claims.jti !== out.grants.post.claims.jti, 'two tokens share a jti');

  // The Token Status List (draft-ietf-oauth-status-list): a statuslist+jwt that jose
  // verifies with the same JWKS; the token's own bit, decoded with node's zlib.
  const slUri = md.status_list_uri;
  if (slUri) {
    const r = await fetch(slUri, { headers: { Accept: 'application/statuslist+jwt' } });
    const text = await r.text();
    const { payload, protectedHeader } = await jose.jwtVerify(text, jwks,
      { typ: 'statuslist+jwt', issuer, subject: slUri, requiredClaims: ['iat', 'exp'] });
    const st = jose.decodeJwt(tokens.basic).status.status_list;
    const raw = inflateSync(Buffer.from(payload.status_list.lst, 'base64url'));
    out.status_list = {
      content_type: r.headers.get('content-type'), typ: protectedHeader.typ, sub: payload.sub,
      ttl: payload.ttl, bits: payload.status_list.bits, bytes: raw.length,
      token_uri: st.uri, token_bit: (raw[Math.floor(st.idx / 8)] >> (st.idx % 8)) & 1,
    };
  }

  // Resource-server rejections.
  const t = tokens.basic;
  await expectRejected('tampered_payload', () => jose.jwtVerify(tamperPayload(t), jwks, verifyOpts(defaultAudience)),
    { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  await expectRejected('tampered_signature', () => jose.jwtVerify(tamperSignature(t), jwks, verifyOpts(defaultAudience)),
    { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  await expectRejected('wrong_audience', () => jose.jwtVerify(t, jwks, verifyOpts('https://other.example/')),
    { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });
  await expectRejected('wrong_issuer', () => jose.jwtVerify(t, jwks, { ...verifyOpts(defaultAudience), issuer: 'https://evil.example' }),
    { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iss' });
  await expectRejected('wrong_typ', () => jose.jwtVerify(t, jwks, { ...verifyOpts(defaultAudience), typ: 'JWT' }),
    { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'typ' });
  await expectRejected('wrong_algorithm', () => jose.jwtVerify(t, jwks, { ...verifyOpts(defaultAudience), algorithms: ['RS256'] }),
    { code: 'ERR_JOSE_ALG_NOT_ALLOWED' });

  // The client library surfaces tokend's RFC 6749 §5.2 error for a wrong secret.
  const wrong = clientSecret.slice(0, -1) + (clientSecret.endsWith('A') ? 'B' : 'A');
  const wrongCfg = new client.Configuration(md, clientId, undefined, client.ClientSecretBasic(wrong));
  for (const f of execute) f(wrongCfg);
  // With Basic, tokend answers 401 with `WWW-Authenticate: Basic` (RFC 6749 §5.2), which
  // openid-client reports as a WWWAuthenticateChallengeError carrying the response; without
  // the header it would be a ResponseBodyError with .error. Accept either, check the body.
  try {
    await client.clientCredentialsGrant(wrongCfg);
    fail('wrong_secret: a token was issued');
    out.negative.wrong_secret = { rejected: false };
  } catch (e) {
    const ws = { rejected: true, ...errInfo(e) };
    if (e.code === 'OAUTH_WWW_AUTHENTICATE_CHALLENGE') {
      ws.challenges = (e.cause || []).map((c) => ({ scheme: c.scheme, parameters: c.parameters }));
      try {
        const body = await e.response.json();
        ws.error = body.error;
        ws.error_description = body.error_description;
      } catch (_) { /* body checked below */ }
      check(ws.challenges.some((c) => c.scheme === 'basic'), 'wrong_secret: no Basic challenge');
    }
    out.negative.wrong_secret = ws;
    check(ws.error === 'invalid_client' && ws.status === 401,
      `wrong_secret: expected 401 invalid_client, got ${ws.status} ${ws.error}`);
  }
}

try {
  await main();
} catch (e) {
  fail(`unexpected error: ${JSON.stringify(errInfo(e))}`);
}
out.ok = out.failures.length === 0;
// Defence in depth: nothing printed may contain the secret.
let text = JSON.stringify(out, null, 2);
if (text.includes(clientSecret)) text = JSON.stringify({ ok: false, failures: ['output would contain the client secret'] });
process.stdout.write(text + '\n');
process.exit(out.ok ? 0 : 1);
