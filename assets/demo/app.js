// Portcullis demo app: OAuth 2.0 authorization code flow with PKCE (RFC 7636) and
// OpenID Connect, as a public client in the browser.
//
// What is kept where:
// - PKCE verifier, state and nonce of a sign-in under way: sessionStorage (they
//   must survive the round trip through /authorize), removed once used;
// - the ID token: sessionStorage, only to send it as id_token_hint at sign-out;
// - the access token: this module's memory only (a reload forgets it).

const clientId = document.querySelector('meta[name="portcullis-client-id"]').content;
const redirectUri = `${location.origin}/demo/`;
const scope = 'openid profile items:read';
const apiPath = '/items/42';

// sessionStorage keys.
const VERIFIER = 'portcullis.demo.verifier';
const STATE = 'portcullis.demo.state';
const NONCE = 'portcullis.demo.nonce';
const ID_TOKEN = 'portcullis.demo.id_token';
const LOGOUT_STATE = 'portcullis.demo.logout_state';

let accessToken = null; // never written to storage

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- helpers

/** base64url without padding (RFC 4648 §5) of a byte array. */
function base64url(bytes) {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** n random bytes, base64url: 32 bytes give a 43-character PKCE verifier. */
function randomString(n = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

/** The S256 code challenge: base64url(SHA-256(verifier)). */
async function s256(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** The payload of a JWT, decoded but NOT verified (the server checked it; we only read it). */
function jwtPayload(jwt) {
  const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '='));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = false;
}

function clearError() {
  $('error').textContent = '';
  $('error').hidden = true;
}

/** Forget the sign-in under way (verifier, state, nonce). */
function clearPending() {
  for (const key of [VERIFIER, STATE, NONCE]) sessionStorage.removeItem(key);
}

/** Drop the query string (code, state, error) from the address bar. */
function cleanUrl() {
  history.replaceState(null, '', '/demo/');
}

// ---------------------------------------------------------------- actions

/** Start a sign-in: new PKCE pair, state and nonce, then off to /authorize. */
async function signIn() {
  const verifier = randomString();
  const state = randomString(16);
  const nonce = randomString(16);
  sessionStorage.setItem(VERIFIER, verifier);
  sessionStorage.setItem(STATE, state);
  sessionStorage.setItem(NONCE, nonce);
  const url = new URL('/authorize', location.origin);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope,
    state,
    nonce,
    code_challenge: await s256(verifier),
    code_challenge_method: 'S256',
  }).toString().replace(/\+/g, '%20'); // scope as openid%20profile%20items:read
  location.assign(url);
}

/** RP-initiated logout; the gateway sends us back to /demo/?state=... */
function signOut() {
  const state = randomString(16);
  const idToken = sessionStorage.getItem(ID_TOKEN);
  sessionStorage.removeItem(ID_TOKEN);
  sessionStorage.setItem(LOGOUT_STATE, state);
  accessToken = null;
  const params = { client_id: clientId, post_logout_redirect_uri: redirectUri };
  if (idToken) params.id_token_hint = idToken; // without it the gateway asks to confirm
  params.state = state;
  const url = new URL('/logout', location.origin);
  url.search = new URLSearchParams(params).toString();
  location.assign(url);
}

/** GET /items/42 with the access token; shows the status and the JSON answer. */
async function callApi() {
  if (!accessToken) {
    $('result').textContent = 'No access token (it lives in memory only): sign in first.';
    return;
  }
  $('result').textContent = `GET ${apiPath} ...`;
  try {
    const res = await fetch(apiPath, { headers: { Authorization: `Bearer ${accessToken}` } });
    const text = await res.text();
    let body = text;
    try {
      body = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // not JSON: show it as it came
    }
    $('result').textContent = `GET ${apiPath}: status ${res.status}\n${body}`;
  } catch (err) {
    $('result').textContent = `GET ${apiPath} failed: ${err.message}`;
  }
}

/** Back from /authorize with ?code=: check state, exchange the code, check the nonce. */
async function finishSignIn(params) {
  const expectedState = sessionStorage.getItem(STATE);
  if (!expectedState || params.get('state') !== expectedState) {
    // Not the answer to a sign-in this tab started (CSRF or a stale link):
    // never send the code anywhere.
    clearPending();
    cleanUrl();
    showError('Sign-in refused: the state in the answer does not match the one this app sent. The code was not used.');
    return;
  }
  const verifier = sessionStorage.getItem(VERIFIER);
  const nonce = sessionStorage.getItem(NONCE);
  clearPending();
  cleanUrl();

  const res = await fetch('/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code'),
      redirect_uri: redirectUri,
      client_id: clientId,
      code_verifier: verifier ?? '',
    }),
  });
  const tokens = await res.json().catch(() => ({}));
  if (!res.ok || !tokens.access_token) {
    showError(`Token request failed (${res.status}): ${tokens.error ?? ''} ${tokens.error_description ?? ''}`);
    return;
  }
  if (tokens.id_token) {
    const claims = jwtPayload(tokens.id_token);
    if (claims.nonce !== nonce) {
      showError('Sign-in refused: the ID token\'s nonce does not match this sign-in.');
      return;
    }
    sessionStorage.setItem(ID_TOKEN, tokens.id_token);
    $('who').textContent = `Signed in as ${claims.sub}`;
  } else {
    $('who').textContent = 'Signed in (no ID token)';
  }
  accessToken = tokens.access_token;
  await callApi();
}

// ---------------------------------------------------------------- start

async function main() {
  $('signin').addEventListener('click', () => {
    clearError();
    signIn().catch((err) => showError(`Sign-in failed: ${err.message}`));
  });
  $('signout').addEventListener('click', signOut);
  $('call').addEventListener('click', callApi);

  const params = new URLSearchParams(location.search);
  if (params.has('error')) {
    // The authorization server said no (e.g. access_denied after "Deny").
    clearPending();
    cleanUrl();
    showError(`${params.get('error')}: ${params.get('error_description') ?? ''}`);
  } else if (params.has('code')) {
    await finishSignIn(params);
  } else if (params.has('state')) {
    // Back from /logout.
    const expected = sessionStorage.getItem(LOGOUT_STATE);
    sessionStorage.removeItem(LOGOUT_STATE);
    cleanUrl();
    if (params.get('state') === expected) $('who').textContent = 'Signed out.';
    else showError('Sign-out answer with an unexpected state.');
  } else {
    const idToken = sessionStorage.getItem(ID_TOKEN);
    if (idToken) {
      $('who').textContent = `Signed in as ${jwtPayload(idToken).sub} (access token forgotten on reload: sign in again to call the API)`;
    }
  }
}

main().catch((err) => showError(`Error: ${err.message}`));
