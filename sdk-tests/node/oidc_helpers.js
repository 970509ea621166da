// A scripted browser for the OpenID Connect tests (not a test file itself): it keeps cookies,
// follows phonegate's redirects and fills in its sign-up, login, code and consent pages the way
// a person would, until the server sends it back to the relying party's redirect URI.
import assert from 'node:assert/strict';
import { BASE } from './helpers.js';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (sdk-tests/run.sh sets it and configures the OpenID clients)`);
  return value;
}

/** The secret of the confidential clients run.sh configures (`node-web`, `node-rs`). */
export const CLIENT_SECRET = env('SDK_OIDC_SECRET');
/** The fixed code of run.sh's test numbers (`+447700900*`): nothing is sent to them. */
export const TEST_CODE = env('SDK_TEST_CODE');

/** Redirect URIs as run.sh registers them (nothing listens there: the browser stops before). */
export const RP = 'http://127.0.0.1:3000';

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

function unescape(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (all, e) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENTITIES[e.toLowerCase()] ?? all;
  });
}

function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g)) {
    out[m[1].toLowerCase()] = unescape(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/** The page's forms: action, method, hidden and visible inputs, and submit buttons. */
export function forms(html) {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map(([, open, body]) => {
    const a = attrs(open);
    const inputs = [...body.matchAll(/<input\b([^>]*)>/gi)].map((m) => attrs(m[1]));
    const buttons = [...body.matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/gi)].map((m) => ({
      ...attrs(m[1]),
      text: unescape(m[2].replace(/<[^>]*>/g, '')).trim(),
    }));
    return { action: a.action ?? '', method: (a.method ?? 'get').toLowerCase(), inputs, buttons };
  });
}

/** A browser with a cookie jar, on phonegate's origin. */
export class Browser {
  constructor() {
    this.jar = new Map();
    /** Paths of the pages this browser was shown (HTML answers), in order. */
    this.pages = [];
    /** The phone number the last login page had filled in (from `login_hint`). */
    this.prefilled = undefined;
  }

  cookie(name) {
    return this.jar.get(name);
  }

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...rest] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = rest.some((a) => {
        const [k, v = ''] = a.split('=').map((x) => x.trim());
        return (k.toLowerCase() === 'max-age' && Number(v) <= 0) || (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now());
      });
      if (gone || value === '') this.jar.delete(name);
      else this.jar.set(name, value);
    }
  }

  /** One request, no redirect followed: { status, url, location?, html? }. */
  async request(url, { method = 'GET', form } = {}) {
    const target = new URL(url, BASE);
    assert.equal(target.origin, new URL(BASE).origin, `the browser was to leave phonegate for ${target}`);
    const headers = { 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) phonegate-sdk-tests', 'Accept-Language': 'en' };
    if (this.jar.size) headers.Cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let body;
    if (form) {
      body = new URLSearchParams(form);
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      headers.Origin = new URL(BASE).origin;
    }
    const res = await fetch(target, { method, headers, body, redirect: 'manual' });
    this.store(res);
    const out = { status: res.status, url: target.href };
    if (res.status >= 300 && res.status < 400) {
      out.location = new URL(res.headers.get('location'), target).href;
      await res.arrayBuffer();
    } else {
      out.html = await res.text();
      if ((res.headers.get('content-type') ?? '').includes('text/html')) this.pages.push(target.pathname);
    }
    return out;
  }

  /**
   * Goes to `url` and follows redirects while they stay on phonegate. Returns the page it ends on
   * ({ status, url, html }) or, once sent elsewhere, { external: URL }.
   */
  async go(url, options) {
    let r = await this.request(url, options);
    for (let hops = 0; r.location; hops++) {
      assert.ok(hops < 20, `redirect loop at ${r.url}`);
      if (new URL(r.location).origin !== new URL(BASE).origin) return { external: new URL(r.location) };
      r = await this.request(r.location);
    }
    return r;
  }

  /** Submits `form` (from `forms()`) with its hidden fields, `values`, and the button `button` if given. */
  async submit(form, values = {}, button) {
    const data = {};
    for (const i of form.inputs) if (i.name && (i.type === 'hidden' || i.name in values)) data[i.name] = i.value ?? '';
    Object.assign(data, values);
    if (button?.name) data[button.name] = button.value ?? '';
    return this.go(form.action, form.method === 'post' ? { method: 'POST', form: data } : undefined);
  }
}

function formWith(page, predicate, what) {
  const found = forms(page.html ?? '').find(predicate);
  assert.ok(found, `no ${what} form on ${page.url} (HTTP ${page.status}): ${(page.html ?? '').replace(/\s+/g, ' ').slice(0, 600)}`);
  return found;
}

const hasInput = (name) => (f) => f.inputs.some((i) => i.name === name);

/**
 * Plays the user in `browser` from an authorization URL to the relying party's redirect URI:
 * signs up (or in) with `phone` on the way if phonegate asks, enters the code, and answers the
 * consent page with `consent` ('allow' or 'deny'). Returns the URL the browser was sent to.
 */
export async function authorize(browser, url, { phone, username, code = TEST_CODE, consent = 'allow' } = {}) {
  let page = await browser.go(url);
  for (let step = 0; !page.external; step++) {
    assert.ok(step < 10, `the sign-in did not end: at ${page.url}`);
    const path = new URL(page.url).pathname;
    if (path === '/login') {
      assert.ok(phone, `phonegate asked for a login (${page.url}) where none was expected`);
      const login = formWith(page, hasInput('phone'), 'login');
      const returnTo = login.inputs.find((i) => i.name === 'return_to')?.value ?? '';
      browser.prefilled = login.inputs.find((i) => i.name === 'phone')?.value ?? '';
      assert.match(returnTo, /^\/oauth2\/authorize\/resume/, 'the login page must lead back to the authorization');
      if (username) {
        // A new user takes the sign-up page with the same way back.
        page = await browser.go(`/signup?return_to=${encodeURIComponent(returnTo)}`);
        page = await browser.submit(formWith(page, hasInput('username'), 'sign-up'), { username, phone, email: '', password: '' });
      } else {
        page = await browser.submit(login, { phone });
      }
    } else if (path === '/login/code') {
      page = await browser.submit(formWith(page, (f) => f.action === '/login/code', 'code'), { code });
    } else if (forms(page.html ?? '').some((f) => f.action === '/oauth2/consent')) {
      const form = formWith(page, (f) => f.action === '/oauth2/consent', 'consent');
      const label = consent === 'allow' ? /^(Allow|Erlauben)$/ : /^(Deny|Ablehnen)$/;
      const button = form.buttons.find((b) => label.test(b.text));
      assert.ok(button, `no ${consent} button on the consent page: ${JSON.stringify(form.buttons)}`);
      page = await browser.submit(form, {}, button);
    } else {
      assert.fail(`unexpected page ${page.url} (HTTP ${page.status}): ${(page.html ?? '').replace(/\s+/g, ' ').slice(0, 600)}`);
    }
  }
  return page.external;
}
