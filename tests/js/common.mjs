// Shared bits of the JavaScript test scripts: check lines, the overall timeout,
// a cookie jar over fetch (redirects by hand, like a browser that we drive step
// by step), and reading HTML forms.

/** Prints "ok   NAME" when cond holds, else "FAIL NAME: DETAIL" and exits 1. */
export function check(name, cond, detail = '') {
  if (cond) {
    console.log(`ok   ${name}`);
    return;
  }
  fail(`${name}${detail ? `: ${detail}` : ''}`);
}

export function fail(text) {
  // One line, whatever the detail holds (page text, JSON).
  const line = String(text).replace(/\x1b\[[0-9;]*m/g, '').replace(/\s+/g, ' '); // no colours either
  console.log(`FAIL ${line.length > 400 ? `${line.slice(0, 400)}...` : line}`);
  process.exit(1);
}

/** Ends the process with a FAIL line after `seconds` (the script must not hang CI). */
export function overallTimeout(seconds = 60) {
  setTimeout(() => fail(`timeout: not finished after ${seconds} s`), seconds * 1000).unref();
}

/** The usage line and exit 2 when fewer than `n` arguments were given. */
export function args(n, usage) {
  const a = process.argv.slice(2);
  if (a.length < n) {
    console.error(`usage: node ${process.argv[1].split('/').pop()} ${usage}`);
    process.exit(2);
  }
  return a;
}

// ---------------------------------------------------------------- cookies

/**
 * A small cookie jar: host-only cookies (keyed by host name, so like a browser
 * it shares them across ports), Path matching, deletion by Max-Age<=0 or an
 * Expires in the past. Domain, Secure and SameSite are not looked at: every
 * request made through it is a top-level navigation on loopback.
 */
export class CookieJar {
  #cookies = new Map(); // "host path name" -> {host, path, name, value}

  /** fetch() with the jar's cookies, no automatic redirects; stores Set-Cookie. */
  async fetch(url, init = {}) {
    const u = new URL(url);
    const headers = new Headers(init.headers);
    const cookie = this.header(u);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(u, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) this.store(u, line);
    return res;
  }

  header(u) {
    return [...this.#cookies.values()]
      .filter((c) => c.host === u.hostname && pathMatches(u.pathname, c.path))
      .sort((a, b) => b.path.length - a.path.length) // longer paths first (RFC 6265 §5.4)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  store(u, line) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq < 1) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    // Default path: the request path up to its last "/" (RFC 6265 §5.1.4).
    let path = u.pathname.slice(0, u.pathname.lastIndexOf('/')) || '/';
    let expired = false;
    for (const attr of attrs) {
      const [k, ...v] = attr.split('=');
      const key = k.trim().toLowerCase();
      const val = v.join('=').trim();
      if (key === 'path' && val.startsWith('/')) path = val;
      if (key === 'max-age' && Number(val) <= 0) expired = true;
      if (key === 'expires' && Date.parse(val) <= Date.now()) expired = true;
    }
    const key = `${u.hostname} ${path} ${name}`;
    if (expired) this.#cookies.delete(key);
    else this.#cookies.set(key, { host: u.hostname, path, name, value });
  }

  names() {
    return [...this.#cookies.values()].map((c) => c.name);
  }
}

function pathMatches(requestPath, cookiePath) {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

// ---------------------------------------------------------------- HTML forms

/** Undoes HTML escaping of attribute values and text (the entities servers emit). */
export function unescapeHtml(s) {
  return s
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&'); // last, so "&amp;lt;" stays "&lt;"
}

/** The attributes of one start tag, e.g. '<input type="hidden" name="a" value="b">'. */
export function attributes(tag) {
  const attrs = {};
  const rest = tag.replace(/^<[a-zA-Z0-9]+/, ''); // drop "<input"
  for (const m of rest.matchAll(/([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g)) {
    attrs[m[1].toLowerCase()] = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

/**
 * The first <form> whose start tag satisfies `pick(attrs)`:
 * {attrs, hidden: [[name, value], ...], html} or null.
 */
export function findForm(html, pick = () => true) {
  for (const m of html.matchAll(/<form\b[^>]*>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(m[0].slice(0, m[0].indexOf('>') + 1));
    if (!pick(attrs)) continue;
    const hidden = [];
    for (const input of m[1].matchAll(/<input\b[^>]*>/gi)) {
      const a = attributes(input[0]);
      if ((a.type ?? '').toLowerCase() === 'hidden' && a.name) hidden.push([a.name, a.value ?? '']);
    }
    return { attrs, hidden, html: m[0] };
  }
  return null;
}

/** The text of the page's first <p class="error"> (or of its body), trimmed and short. */
export function errorText(html, max = 200) {
  const p = html.match(/<p\b[^>]*class="[^"]*\berror\b[^"]*"[^>]*>([\s\S]*?)<\/p>/i);
  const raw = p ? p[1] : (html.match(/<body\b[^>]*>([\s\S]*)<\/body>/i)?.[1] ?? html);
  const text = unescapeHtml(raw.replace(/<script\b[\s\S]*?<\/script>|<style\b[\s\S]*?<\/style>/gi, '')
    .replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/** application/x-www-form-urlencoded body from [[name, value], ...] pairs. */
export function formBody(pairs) {
  return new URLSearchParams(pairs).toString();
}

export const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

// A crash (a Playwright timeout, a refused connection) is a FAIL line too.
process.on('uncaughtException', (err) => fail(`${err.name}: ${err.message}`));
process.on('unhandledRejection', (err) => fail(`${err?.name}: ${err?.message ?? err}`));
