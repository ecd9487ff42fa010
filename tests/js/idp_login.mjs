// Acts as the browser through a sign-in with an external provider:
//
//   node idp_login.mjs START_URL IDP_LOGIN
//
// START_URL is a Portcullis /login/NAME?<authorization parameters> URL. Follows
// the redirects by hand (fetch + a cookie jar) to the provider (idp.mjs), signs
// in on its devInteractions pages (login=IDP_LOGIN, any password), consents,
// follows back to Portcullis' callback, and through Portcullis' consent page if
// one appears (decision=allow). The last line on stdout is either
//   final <url>                     the redirect to the client's redirect_uri
//                                   (with code=... or error=...), not followed
//   refused <status> <text>         an answer that is neither a redirect nor a
//                                   form we know, e.g. Portcullis' 400 error page
//                                   when it refuses the provider's id_token
// and the exit status is 0 for both: the Rust test judges. Each hop is logged on
// stderr. Exit 1 only when the script itself breaks (network error, timeout,
// too many hops).

import { CookieJar, FORM, args, errorText, findForm, formBody } from './common.mjs';

const [startUrl, idpLogin] = args(2, 'START_URL IDP_LOGIN');
setTimeout(() => {
  console.log('error timeout: not finished after 60 s');
  process.exit(1);
}, 60_000).unref();

// Where the flow ends: the client's redirect_uri (from START_URL's parameters).
const redirectUri = new URL(startUrl).searchParams.get('redirect_uri');
const jar = new CookieJar();

/** True for a redirect to the client's redirect_uri (any query). */
function isFinal(url) {
  if (!redirectUri) return false;
  const u = new URL(url);
  return `${u.origin}${u.pathname}` === redirectUri.split('?')[0];
}

async function main() {
  let url = startUrl;
  let init = {};
  for (let hop = 0; hop < 30; hop++) {
    const res = await jar.fetch(url, init);
    console.error(`hop ${init.method ?? 'GET'} ${url} -> ${res.status}`);
    init = {};
    if (res.status >= 300 && res.status < 400 && res.headers.has('location')) {
      const next = new URL(res.headers.get('location'), url).href;
      if (isFinal(next)) return `final ${next}`;
      url = next;
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) return `refused ${res.status} ${errorText(html)}`;

    // oidc-provider's devInteractions pages: a form with a hidden "prompt".
    const idpForm = findForm(html, () => true);
    const prompt = idpForm?.hidden.find(([n]) => n === 'prompt')?.[1];
    // Portcullis' consent page.
    const consent = findForm(html, (a) => a.id === 'consent');
    let form;
    let fields;
    if (consent) {
      form = consent;
      fields = [...consent.hidden, ['decision', 'allow']];
    } else if (prompt === 'login') {
      form = idpForm;
      fields = [...idpForm.hidden, ['login', idpLogin], ['password', 'any-password']];
    } else if (prompt === 'consent') {
      form = idpForm;
      fields = idpForm.hidden;
    } else {
      return `refused ${res.status} ${errorText(html)}`;
    }
    url = new URL(form.attrs.action ?? url, url).href;
    init = { method: 'POST', headers: FORM, body: formBody(fields) };
  }
  throw new Error('more than 30 hops');
}

try {
  console.log(await main());
} catch (err) {
  console.log(`error ${err.message}`);
  process.exit(1);
}
