// openid-client (v6) as a relying party against Portcullis, a public client with PKCE:
//
//   node rp_openid_client.mjs BASE CLIENT_ID REDIRECT_URI [POST_LOGOUT_REDIRECT_URI]
//
// openid-client does discovery, builds the authorization URL, redeems the code and
// validates the ID token (signature, iss, aud, nonce, state), calls userinfo,
// refreshes, and builds the logout URL. The browser's part in between (login and
// consent forms) is played with fetch and a cookie jar. POST_LOGOUT_REDIRECT_URI
// defaults to REDIRECT_URI (it must be registered for the client). One line per
// check ("ok   ..." / "FAIL ..."); exits 1 at the first failure, after 60 s at most.

import * as client from 'openid-client';
import { CookieJar, FORM, args, check, errorText, fail, findForm, formBody, overallTimeout } from './common.mjs';

const [base, clientId, redirectUri, postLogoutUri = redirectUri] = args(3, 'BASE CLIENT_ID REDIRECT_URI [POST_LOGOUT_REDIRECT_URI]');
overallTimeout(60);
const scope = 'openid profile items:read';
const jar = new CookieJar();

// Plain HTTP on loopback: allowInsecureRequests. No client secret: None().
const config = await client.discovery(new URL(base), clientId, undefined, client.None(), {
  execute: [client.allowInsecureRequests],
});
check('discovery', config.serverMetadata().issuer !== undefined, JSON.stringify(config.serverMetadata()));

/** A fresh authorization request: {url, verifier, nonce, state}. */
async function authorizationRequest() {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  return { url, verifier, nonce, state };
}

/** POSTs a form of the page at `pageUrl` with its hidden fields plus `extra`. */
function submit(form, pageUrl, extra) {
  const action = new URL(form.attrs.action ?? pageUrl, pageUrl);
  return jar.fetch(action, { method: 'POST', headers: FORM, body: formBody([...form.hidden, ...extra]) });
}

// ---------------------------------------------------------------- sign in
const req = await authorizationRequest();
let res = await jar.fetch(req.url);
let html = await res.text();
let form = findForm(html, (a) => a.id === 'login');
check('authorization request shows the login page', res.status === 200 && form !== null, `${res.status} ${errorText(html)}`);

res = await submit(form, req.url, [['username', 'johndoe'], ['password', 'secret'], ['action', 'login']]);
if (res.status === 200) {
  html = await res.text();
  form = findForm(html, (a) => a.id === 'consent');
  check('login accepted: consent page', form !== null, errorText(html));
  res = await submit(form, req.url, [['decision', 'allow']]);
}
const location = res.headers.get('location') ?? '';
check('303 back to the redirect_uri', res.status === 303 && location.startsWith(redirectUri), `${res.status} ${location}`);
const callback = new URL(location, base);
check('the redirect carries a code', callback.searchParams.has('code'), location);

// ---------------------------------------------------------------- tokens
const tokens = await client.authorizationCodeGrant(config, callback, {
  pkceCodeVerifier: req.verifier,
  expectedNonce: req.nonce,
  expectedState: req.state,
}).catch((err) => fail(`authorizationCodeGrant: ${err.code ?? ''} ${err.message} ${JSON.stringify(err.cause ?? '')}`));
check('code redeemed, ID token validated by openid-client', Boolean(tokens.access_token && tokens.id_token));
const claims = tokens.claims();
check('ID token sub is johndoe', claims.sub === 'johndoe', claims.sub);
check('ID token nonce is ours', claims.nonce === req.nonce, claims.nonce);
check('ID token aud is the client', [].concat(claims.aud).includes(clientId), JSON.stringify(claims.aud));

const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
  .catch((err) => fail(`fetchUserInfo: ${err.code ?? ''} ${err.message}`));
check('userinfo sub matches', userinfo.sub === claims.sub, userinfo.sub);
check('userinfo preferred_username is johndoe', userinfo.preferred_username === 'johndoe', JSON.stringify(userinfo));

check('a refresh token was issued', Boolean(tokens.refresh_token), Object.keys(tokens).join(' '));
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  .catch((err) => fail(`refreshTokenGrant: ${err.code ?? ''} ${err.message} ${JSON.stringify(err.cause ?? '')}`));
check('refresh grant gives a new access token', Boolean(refreshed.access_token) && refreshed.access_token !== tokens.access_token);

// ---------------------------------------------------------------- logout
const logoutState = client.randomState();
const logoutUrl = client.buildEndSessionUrl(config, {
  id_token_hint: tokens.id_token,
  post_logout_redirect_uri: postLogoutUri,
  state: logoutState,
});
res = await jar.fetch(logoutUrl);
const back = res.headers.get('location') ?? '';
check('logout: 303 to the post_logout_redirect_uri', res.status === 303 && back.startsWith(postLogoutUri), `${res.status} ${back}`);
check('logout: the redirect carries our state', new URL(back, base).searchParams.get('state') === logoutState, back);

const again = await authorizationRequest();
res = await jar.fetch(again.url);
html = await res.text();
check('after logout, a new authorization request shows the login page',
  res.status === 200 && findForm(html, (a) => a.id === 'login') !== null, `${res.status} ${res.headers.get('location') ?? ''}`);
