// The demo single-page app in a real browser (headless Chromium via playwright-core):
//
//   node spa_browser.mjs BASE        (BASE = http://localhost:PORT: localhost, so that
//                                     the page is a secure context for crypto.subtle)
//
// Signs in at BASE/demo/ as johndoe (after a wrong password), consents, checks the
// API call; signs in again without a password; checks that an answer with a
// tampered state is refused without a token request; signs out. One line per
// check ("ok   ..." / "FAIL ..."); exits 1 at the first failure, after 60 s at most.

import { chromium } from 'playwright-core';
import { args, check, fail, overallTimeout } from './common.mjs';

const [base] = args(1, 'BASE');
overallTimeout(60);
const demo = new URL('/demo/', base).href;
const pathOf = (url) => new URL(url).pathname;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext();
const page = await context.newPage();
page.setDefaultTimeout(15_000);

// What the page did: requests to /token, pages shown by /authorize, script errors.
let tokenRequests = 0;
let authorizePages = []; // statuses of /authorize documents the browser rendered
const problems = [];
page.on('request', (r) => { if (pathOf(r.url()) === '/token') tokenRequests++; });
page.on('response', (r) => {
  const req = r.request();
  if (req.isNavigationRequest() && req.frame() === page.mainFrame() && pathOf(r.url()) === '/authorize'
      && r.status() < 300) authorizePages.push(r.status());
});
page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) problems.push(`console: ${m.text()}`); });
process.on('exit', (code) => { if (code) for (const p of problems) console.error(p); });

/** Clicks `selector` and waits for the next document to load. */
async function clickAndLoad(selector) {
  const loaded = page.waitForEvent('load');
  await page.click(selector);
  await loaded;
}

/** Waits on /demo/ until the app shows an API result or an error; returns the texts. */
async function demoOutcome() {
  const texts = () => page.evaluate(() => ({
    who: document.querySelector('#who').textContent,
    result: document.querySelector('#result').textContent,
    error: document.querySelector('#error').hidden ? '' : document.querySelector('#error').textContent,
  }));
  try {
    await page.waitForFunction(() => /status \d{3}/.test(document.querySelector('#result')?.textContent)
      || document.querySelector('#error')?.hidden === false);
  } catch (err) {
    const now = await texts().catch(() => ({}));
    fail(`the demo app showed no result nor error at ${page.url()}: ${err.message} ${JSON.stringify(now)}`);
  }
  return texts();
}

/** Checks a signed-in /demo/ page: johndoe, GET /items/42 answered 200. */
async function checkSignedIn(what) {
  check(`${what}: back on /demo/`, pathOf(page.url()) === '/demo/', page.url());
  const out = await demoOutcome();
  check(`${what}: no error shown`, out.error === '', out.error);
  check(`${what}: #result shows status 200`, out.result.includes('status 200'), out.result.slice(0, 200));
  check(`${what}: #result has the echoed path /items/42`, out.result.includes('"path": "/items/42"'), out.result.slice(0, 300));
  check(`${what}: #who shows johndoe`, out.who.includes('johndoe'), out.who);
}

// ---------------------------------------------------------------- first sign-in
await page.goto(demo);
check('demo page loads', await page.locator('#signin').isVisible());
const clientId = await page.getAttribute('meta[name="portcullis-client-id"]', 'content');
check('demo page has the client id filled in', clientId && clientId !== '{{CLIENT_ID}}', String(clientId));

const loginResponse = page.waitForResponse((r) => pathOf(r.url()) === '/authorize' && r.request().isNavigationRequest());
await clickAndLoad('#signin');
const headers = (await loginResponse).headers();
check('Sign in leads to the login page', pathOf(page.url()) === '/authorize' && await page.locator('form#login').count() === 1, page.url());
check('login page has a Content-Security-Policy', Boolean(headers['content-security-policy']));
check('login page has X-Frame-Options DENY', (headers['x-frame-options'] ?? '').toUpperCase() === 'DENY', headers['x-frame-options']);

await page.fill('#username', 'johndoe');
await page.fill('#password', 'not-the-password');
await clickAndLoad('button[name="action"][value="login"]');
const alert = page.locator('p.error[role="alert"]');
check('wrong password: error shown', await alert.isVisible()
  && (await alert.textContent()).includes('The username or password is incorrect.'), await alert.textContent().catch(() => ''));
check('wrong password: still on the login page', await page.locator('form#login').count() === 1, page.url());

await page.fill('#username', 'johndoe');
await page.fill('#password', 'secret');
await clickAndLoad('button[name="action"][value="login"]');
check('right password: consent page', await page.locator('form#consent').count() === 1, page.url());
await clickAndLoad('button[name="decision"][value="allow"]');
await checkSignedIn('first sign-in');
check('code and state gone from the address bar', page.url() === demo, page.url());
check('no PKCE verifier or state left in sessionStorage', await page.evaluate(
  () => Object.keys(sessionStorage).every((k) => !/verifier|\.state$|nonce/.test(k))));

// ---------------------------------------------------------------- second sign-in
authorizePages = [];
await clickAndLoad('#signin');
await checkSignedIn('second sign-in');
check('second sign-in: no login or consent page (session reused)', authorizePages.length === 0,
  `/authorize rendered pages with status ${authorizePages.join(', ')}`);

// ---------------------------------------------------------------- tampered state
// /authorize answers 303 to /demo/?code=..&state=..; rewrite that state on the way.
let tampered = '';
const isAuthorize = (url) => url.pathname === '/authorize';
await page.route(isAuthorize, async (route) => {
  const res = await route.fetch({ maxRedirects: 0 });
  const location = res.headers().location;
  if (res.status() < 300 || res.status() >= 400 || !location) {
    tampered = `no redirect from /authorize (status ${res.status()})`;
    return route.fulfill({ response: res });
  }
  const to = new URL(location, route.request().url());
  to.searchParams.set('state', `${to.searchParams.get('state')}-tampered`);
  tampered = to.href;
  return route.fulfill({ response: res, headers: { ...res.headers(), location: to.href } });
});
tokenRequests = 0;
await clickAndLoad('#signin');
await page.unroute(isAuthorize);
check('tampered state: the answer was rewritten', tampered.includes('-tampered'), tampered);
const out = await demoOutcome();
// The app decides before any exchange: a /token request, if it made one, was sent
// before the outcome it waits for was shown.
check('tampered state: #error shown and mentions state', out.error.includes('state'), out.error || out.result);
check('tampered state: #error visible', await page.locator('#error').isVisible());
check('tampered state: no request to /token', tokenRequests === 0, `${tokenRequests} request(s)`);

// ---------------------------------------------------------------- sign-out
await clickAndLoad('#signout');
check('sign-out returns to /demo/', page.url() === demo, page.url());
check('sign-out: "Signed out." shown', (await page.textContent('#who')).includes('Signed out'), await page.textContent('#who'));
authorizePages = [];
await clickAndLoad('#signin');
check('after sign-out, sign-in asks for the password again', await page.locator('form#login').count() === 1, page.url());

check('no script error or CSP violation', problems.length === 0, problems.join(' | '));
await browser.close();
