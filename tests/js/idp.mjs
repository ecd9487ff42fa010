// An external OpenID provider for Portcullis' "[[login.providers]]" tests:
// oidc-provider on 127.0.0.1:PORT (issuer http://127.0.0.1:PORT), one confidential
// client, any login id accepted by its built-in (devInteractions) login and
// consent pages. Prints "ready" on stdout once listening; everything else goes
// to stderr. Stops on SIGTERM/SIGINT.
//
//   node idp.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI [MODE]
//
// MODE tampers with the id_token in the token endpoint's answer:
//   ok             untouched (default)
//   bad-signature  one character of the signature changed
//   wrong-nonce    re-signed (same key and kid) with nonce "not-the-nonce"
//   wrong-iss      re-signed with iss "http://evil.test"
//
// Endpoints (oidc-provider defaults): /.well-known/openid-configuration, /auth,
// /token, /me (userinfo), /jwks, /interaction/UID (login and consent pages).

import http from 'node:http';
import * as jose from 'jose';
import Provider from 'oidc-provider';

// oidc-provider's notices use console.info (stdout): keep stdout for "ready".
console.info = console.error;
console.log = console.error;

const MODES = ['ok', 'bad-signature', 'wrong-nonce', 'wrong-iss'];
const [port, clientId, clientSecret, redirectUri, mode = 'ok'] = process.argv.slice(2);
if (!redirectUri || !MODES.includes(mode) || !/^\d+$/.test(port)) {
  console.error(`usage: node idp.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI [${MODES.join('|')}]`);
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

// A fresh RS256 key for this run; the private JWK stays here to re-sign tokens.
const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: 'idp-rs256', alg: 'RS256', use: 'sig' };

/** Any login id is an account with these claims. */
async function findAccount(_ctx, id) {
  return {
    accountId: id,
    async claims() {
      return { sub: id, email: `${id}@example.com`, email_verified: true, name: id, groups: ['staff'] };
    },
  };
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingJwk] },
  findAccount,
  // Scope -> claims. "groups" comes with "profile".
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
  },
  scopes: ['openid', 'email', 'profile'],
  // Put the scopes' claims in the id_token too (not only at userinfo), as many
  // real providers do: Portcullis reads email/email_verified from the id_token.
  conformIdTokenClaims: false,
  pkce: { required: () => true }, // S256 is the only method oidc-provider 9 supports
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['portcullis-test-idp-cookie-key'] },
});

/** The id_token as MODE wants it. */
async function tamper(idToken) {
  if (mode === 'bad-signature') {
    const [h, p, s] = idToken.split('.');
    // A character in the middle: the last one may only hold padding bits.
    const i = Math.floor(s.length / 2);
    return `${h}.${p}.${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
  }
  const header = jose.decodeProtectedHeader(idToken);
  const claims = jose.decodeJwt(idToken);
  if (mode === 'wrong-nonce') claims.nonce = 'not-the-nonce';
  if (mode === 'wrong-iss') claims.iss = 'http://evil.test';
  return new jose.SignJWT(claims).setProtectedHeader(header).sign(privateKey);
}

/**
 * Buffers the answer written to `res` and rewrites its JSON's id_token before
 * sending it. oidc-provider (Koa) sets the headers and then calls res.end(body);
 * nothing has gone out before that, so Content-Length can still be fixed.
 */
function interceptTokenAnswer(res) {
  const chunks = [];
  const end = res.end.bind(res);
  const toBuffer = (chunk, enc) => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, typeof enc === 'string' ? enc : 'utf8'));
  res.write = (chunk, enc, cb) => {
    chunks.push(toBuffer(chunk, enc));
    (typeof enc === 'function' ? enc : cb)?.();
    return true;
  };
  res.end = (chunk, enc, cb) => {
    if (chunk && typeof chunk !== 'function') chunks.push(toBuffer(chunk, enc));
    const done = [chunk, enc, cb].find((f) => typeof f === 'function');
    let body = Buffer.concat(chunks);
    (async () => {
      try {
        const json = JSON.parse(body.toString('utf8'));
        if (res.statusCode === 200 && typeof json.id_token === 'string') {
          json.id_token = await tamper(json.id_token);
          body = Buffer.from(JSON.stringify(json));
          console.error(`idp: token answer tampered (${mode})`);
        }
      } catch (err) {
        console.error(`idp: token answer left as is: ${err.message}`);
      }
      if (!res.headersSent) res.setHeader('content-length', body.length);
      end(body, done);
    })();
    return res;
  };
}

const app = provider.callback();
const server = http.createServer((req, res) => {
  if (mode !== 'ok' && req.method === 'POST' && req.url.split('?')[0] === '/token') {
    interceptTokenAnswer(res);
  }
  app(req, res);
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
