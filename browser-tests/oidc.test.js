// "Sign in with phonegate" (docs/oidc.md) in headless Chromium: a tiny app protected by OpenID
// Connect (oidc-demo.js, a third-party client with `openid-client`) sends the browser to
// phonegate's /oauth2/authorize; the person signs up or in by phone on phonegate's pages (codes
// from the dev outbox, or silently through the simulator), consents, and the app shows the
// verified number from the ID token and from userinfo; "Log out" is RP-initiated logout. Also:
// remembered consent, the consent page in a frame, "Apps with access" on /account, German.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, describe, it } from 'node:test';
import { closeBrowser, codeSentBy, device, escapeRe, outbox, sleep, uniquePhone, uniqueUsername } from './helpers.js';

function env(name) {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set: run the tests with browser-tests/run.sh`);
    return v;
}
/** phonegate with the demo app as client `demo` (not first-party), and the demo app's URL. */
const OIDC = { base: env('PHONEGATE_OIDC_BASE'), secret: env('PHONEGATE_OIDC_SECRET'), demo: env('PHONEGATE_OIDC_DEMO') };
/** The same with the silent-verification simulator. */
const OIDC_SILENT = { base: env('PHONEGATE_OIDC_SILENT_BASE'), secret: env('PHONEGATE_OIDC_SILENT_SECRET'), demo: env('PHONEGATE_OIDC_SILENT_DEMO') };
const CLIENT_ID = 'demo';

const T = { timeout: 90_000 };

/**
 * Records every document the main frame gets from phonegate (redirects included):
 * [{path, status, headers}] in order.
 */
function phonegateDocuments(d) {
    const origin = new URL(d.server.base).origin;
    const seen = [];
    d.page.on('response', (r) => {
        const req = r.request();
        if (req.resourceType() !== 'document' || !req.isNavigationRequest() || req.frame() !== d.page.mainFrame()) return;
        const u = new URL(r.url());
        if (u.origin === origin) seen.push({ path: u.pathname, search: u.search, status: r.status(), headers: r.headers() });
    });
    return seen;
}

/** Whether a response's headers forbid framing: X-Frame-Options DENY or CSP frame-ancestors 'none'. */
function unframeable(headers) {
    const xfo = (headers['x-frame-options'] ?? '').trim().toUpperCase();
    const csp = headers['content-security-policy'] ?? '';
    return xfo === 'DENY' || /(^|;)\s*frame-ancestors\s+'none'\s*(;|$)/i.test(csp);
}

const consentForm = (d) => d.page.locator('form[action*="/oauth2/consent"]');
const demoText = (d, id) => d.page.locator(`#${id}`).innerText();

/** The demo app's home page, signed out, then its "Sign in" link: the browser goes to phonegate. */
async function signInAtDemo(d, { path = '/login' } = {}) {
    await d.goto('demo app', `${d.server.demo}/`);
    assert.equal(await demoText(d, 'status'), 'Signed out');
    if (path === '/login') {
        await d.navigate('sign in clicked', () => d.page.getByRole('link', { name: 'Sign in' }).click());
    } else {
        await d.goto('sign in', `${d.server.demo}${path}`);
    }
}

/** Asserts phonegate's login page, reached from /oauth2/authorize with the request in return_to. */
function assertLoginForAuthorize(d) {
    const { path, url } = d.where();
    assert.equal(url.origin, new URL(d.server.base).origin, `expected phonegate's login page, got ${d.page.url()}`);
    assert.equal(path, '/login', `expected /login, got ${d.page.url()}`);
    assert.match(url.searchParams.get('return_to') ?? '', /^\/oauth2\/authorize/, 'the login page should return to the authorization request');
}

/** Passwordless login on the login page shown: the phone, the code from the outbox. */
async function logInByCode(d, phone) {
    const code = await codeSentBy(d.server, phone, () => d.submit('login submitted', { phone }));
    assert.equal(d.where().path, '/login/code', `expected the code page, got ${d.page.url()}`);
    await d.submit('code entered', { code });
}

/** Asserts the consent page in English for the demo app and the scopes it asks (profile, phone). */
async function assertConsentPage(d) {
    assert.equal(await consentForm(d).count(), 1, `expected the consent page (a form posting to /oauth2/consent), got ${d.page.url()}:\n${await d.text()}`);
    const text = await d.text();
    assert.match(text, new RegExp(`\\b${CLIENT_ID}\\b`, 'i'), 'the consent page should name the app');
    // What the app asked (openid profile phone) is listed, and nothing more.
    const items = await d.page.locator('main li').allInnerTexts();
    assert.ok(items.some((i) => /phone number/i.test(i)), `the consent page should list the phone number: ${JSON.stringify(items)}`);
    assert.ok(items.some((i) => /username/i.test(i)), `the consent page should list the username: ${JSON.stringify(items)}`);
    assert.ok(!items.some((i) => /e-?mail/i.test(i)), `the app did not ask for the e-mail address: ${JSON.stringify(items)}`);
    assert.ok(await d.page.getByRole('button', { name: /^\s*Allow\s*$/ }).count() === 1, 'no "Allow" button');
    assert.ok(await d.page.getByRole('button', { name: /^\s*Deny\s*$/ }).count() === 1, 'no "Deny" button');
}

/** Asserts the demo app signed in as the holder of `phone`, per the ID token and per userinfo. */
async function assertDemoSignedIn(d, phone, username) {
    assert.equal(d.page.url(), `${d.server.demo}/`, `expected the demo app, got ${d.page.url()}:\n${await d.text()}`);
    assert.equal(await demoText(d, 'status'), 'Signed in');
    for (const from of ['id', 'ui']) {
        assert.equal(await demoText(d, `${from}-phone_number`), phone, `${from === 'id' ? 'ID token' : 'userinfo'}: phone_number`);
        assert.equal(await demoText(d, `${from}-phone_number_verified`), 'true', `${from === 'id' ? 'ID token' : 'userinfo'}: phone_number_verified`);
        if (username) assert.equal(await demoText(d, `${from}-preferred_username`), username, `${from}: preferred_username`);
    }
    assert.equal(await demoText(d, 'id-sub'), await demoText(d, 'ui-sub'), 'the ID token and userinfo name the same sub');
}

/** The demo app's "Log out": RP-initiated logout at phonegate and back to the app with its state. */
async function logOutAtDemo(d) {
    await d.navigate('demo log out', () => d.page.getByRole('link', { name: 'Log out' }).click());
    assert.equal(d.where().url.origin, new URL(d.server.demo).origin, `logout should end at the demo app, got ${d.page.url()}:\n${await d.text()}`);
    assert.equal(await demoText(d, 'status'), 'Signed out');
    assert.ok(await d.page.locator('#logout').count() === 1, `the demo app got no logout answer with its state: ${await d.text()}`);
}

/** Asserts that the browser is signed out at phonegate: /account asks for a login. */
async function assertPhonegateSignedOut(d) {
    await d.goto('phonegate account after logout', `${d.server.base}/account`);
    assert.equal(d.where().path, '/login', `a signed-out /account should lead to /login, got ${d.page.url()}`);
    const me = await d.context.request.get(`${d.server.base}/api/me`);
    assert.equal(me.status(), 401, 'GET /api/me with the browser cookies must be refused after logout');
}

/** A user signed up on phonegate's own pages in a throwaway context (silently with the simulator). */
async function newUser(t, server, prefix) {
    const username = uniqueUsername(prefix);
    const phone = uniquePhone();
    const d = await device(t, { server, label: 'signup' });
    await d.goto('signup page', '/signup');
    if (server === OIDC_SILENT) {
        await d.submit('signup submitted', { username, phone });
        await atOperator(d);
        await d.navigate('operator answers match', () => d.page.locator('a[data-outcome="match"]').click());
        await d.page.waitForURL(/\/account/);
    } else {
        const code = await codeSentBy(server, phone, () => d.submit('signup submitted', { username, phone }));
        await d.submit('code entered', { code });
    }
    assert.equal(d.where().path, '/account', `sign-up should end on /account, got ${d.page.url()}`);
    await d.close();
    return { username, phone };
}

/** The simulated operator's page (silent.test.js). */
async function atOperator(d) {
    await d.page.waitForURL(/\/silent\/simulator\/SR/);
    await d.shot('simulated operator');
    assert.match(await d.text(), /Simulated operator/);
}

/** An authorization request of the demo client, built by hand (PKCE S256). */
function authorizeUrl(server, extra = {}) {
    const verifier = randomBytes(32).toString('base64url');
    const params = new URLSearchParams({
        response_type: 'code',
        client_id: CLIENT_ID,
        redirect_uri: `${server.demo}/callback`,
        scope: 'openid profile phone',
        state: randomBytes(12).toString('base64url'),
        nonce: randomBytes(12).toString('base64url'),
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
        ...extra,
    });
    return `${server.base}/oauth2/authorize?${params}`;
}

/** A page on another local origin that frames `urls`; resolves to {url, close()}. */
async function framingSite(urls) {
    const server = http.createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(`<!doctype html><title>framing</title>${urls.map((u, i) => `<iframe id="f${i}" src="${u.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}" width="600" height="400"></iframe>`).join('')}`);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }) };
}

describe('OpenID Connect: a demo app signs in with phonegate', { concurrency: 1 }, () => {
    after(closeBrowser);

    it('oidc-signup: sign up by phone, consent, the app shows the verified number, RP-initiated logout', T, async (t) => {
        const d = await device(t, { server: OIDC });
        const username = uniqueUsername('oidc');
        const phone = uniquePhone();
        await signInAtDemo(d);
        assertLoginForAuthorize(d);

        // No account yet: the login page's sign-up link.
        await d.navigate('signup link', () => d.page.getByRole('link', { name: 'Sign up' }).click());
        assert.equal(d.where().path, '/signup');
        const code = await codeSentBy(OIDC, phone, () => d.submit('signup submitted', { username, phone }));
        assert.equal(d.where().path, '/login/code', `expected the code page, got ${d.page.url()}`);
        const docs = phonegateDocuments(d);
        await d.submit('code entered', { code });
        if (d.where().path === '/account') {
            // The sign-up did not carry the authorization request on: signed in at phonegate now,
            // the app's "Sign in" goes straight through to consent.
            await signInAtDemo(d);
        }
        await assertConsentPage(d);
        const consentDoc = docs.filter((r) => r.status === 200).pop();
        assert.ok(consentDoc && unframeable(consentDoc.headers), `the consent page (${consentDoc?.path}) must forbid framing: ${JSON.stringify(consentDoc?.headers)}`);

        await d.navigate('allowed', () => d.page.getByRole('button', { name: /^\s*Allow\s*$/ }).click());
        await assertDemoSignedIn(d, phone, username);
        assert.match(await demoText(d, 'id-amr'), /"sms"/, 'a code by SMS: amr sms');
        assert.match(await demoText(d, 'scope'), /\bphone\b/);

        await logOutAtDemo(d);
        await assertPhonegateSignedOut(d);
    });

    it('oidc-remembered: a second sign-in for an already-consented app skips consent', T, async (t) => {
        const { username, phone } = await newUser(t, OIDC, 'again');
        const d = await device(t, { server: OIDC });
        // login_hint pre-fills the phone field.
        await signInAtDemo(d, { path: `/login?login_hint=${encodeURIComponent(phone)}` });
        assertLoginForAuthorize(d);
        assert.equal(await d.page.locator('input[name=phone]').inputValue(), phone, 'login_hint should pre-fill the phone field');
        await logInByCode(d, phone);
        await assertConsentPage(d);
        await d.navigate('allowed', () => d.page.getByRole('button', { name: /^\s*Allow\s*$/ }).click());
        await assertDemoSignedIn(d, phone, username);
        const sub = await demoText(d, 'id-sub');

        // Signed in at phonegate still, the app's session gone: through without a single page.
        await d.context.clearCookies({ name: 'oidc_demo_session' });
        const docs = phonegateDocuments(d);
        await signInAtDemo(d);
        await assertDemoSignedIn(d, phone, username);
        assert.deepEqual(docs.filter((r) => r.status < 300), [], 'phonegate should show no page to a signed-in user of a consented app');
        assert.ok(docs.some((r) => r.path === '/oauth2/authorize'), 'the sign-in went through /oauth2/authorize');
        assert.equal(await demoText(d, 'id-sub'), sub, 'sub is stable');

        // Logged out everywhere, then in again by code: the login pages, no consent.
        await logOutAtDemo(d);
        docs.length = 0;
        await signInAtDemo(d);
        assertLoginForAuthorize(d);
        await logInByCode(d, phone);
        await assertDemoSignedIn(d, phone, username);
        const pages = docs.filter((r) => r.status < 300).map((r) => r.path);
        assert.deepEqual(pages, ['/login', '/login/code'], 'only the login pages, no consent page');
        assert.equal(await demoText(d, 'id-sub'), sub, 'sub is stable');
    });

    it('oidc-silent: sign-in through the silent simulator, consent, no SMS, amr hwk', T, async (t) => {
        const { username, phone } = await newUser(t, OIDC_SILENT, 'oidc-silent');
        const d = await device(t, { server: OIDC_SILENT });
        await signInAtDemo(d);
        assertLoginForAuthorize(d);
        await d.submit('login submitted', { phone });
        await atOperator(d);
        await d.navigate('operator answers match', () => d.page.locator('a[data-outcome="match"]').click());
        // Back from the operator, the code page's own script finishes the login and goes on with
        // the authorization request: to the consent page.
        await d.page.waitForURL((u) => u.pathname !== '/login/code' && !u.pathname.startsWith('/silent/'));
        await d.page.waitForLoadState('load');
        await d.shot('after the silent check');
        await assertConsentPage(d);
        await d.navigate('allowed', () => d.page.getByRole('button', { name: /^\s*Allow\s*$/ }).click());
        await assertDemoSignedIn(d, phone, username);
        assert.match(await demoText(d, 'id-amr'), /"hwk"/, 'a silent SIM check: amr hwk');
        assert.deepEqual(await outbox(OIDC_SILENT, phone), [], 'no SMS was sent');
        await logOutAtDemo(d);
        await assertPhonegateSignedOut(d);
    });

    it('oidc-frame: the authorize and consent pages refuse framing; "Apps with access" revokes', T, async (t) => {
        const { username, phone } = await newUser(t, OIDC, 'frame');
        const d = await device(t, { server: OIDC });
        await d.goto('login', '/login');
        await logInByCode(d, phone);
        assert.equal(d.where().path, '/account');

        // The authorization request, top level: every page phonegate shows for it forbids framing.
        const docs = phonegateDocuments(d);
        const request = authorizeUrl(OIDC, { prompt: 'consent' });
        await d.goto('authorize', request);
        await assertConsentPage(d);
        const shown = docs.filter((r) => r.status === 200);
        assert.ok(shown.length > 0, 'phonegate showed no page');
        for (const r of shown) {
            assert.ok(unframeable(r.headers), `${r.path} (${r.status}) must forbid framing: ${JSON.stringify(r.headers)}`);
        }

        // The same request framed by another site: the browser refuses to show it, while the
        // demo app (which allows framing) shows in the frame next to it.
        const site = await framingSite([request, `${OIDC.demo}/`]);
        t.after(() => site.close());
        await d.goto('framed', site.url);
        await sleep(500);
        const frames = await Promise.all(['f0', 'f1'].map(async (id) => (await d.page.locator(`#${id}`).elementHandle()).contentFrame()));
        await frames[1].waitForLoadState('load');
        assert.match(await frames[1].locator('body').innerText(), /Sign in/, 'the control frame (demo app) should render');
        await frames[0].waitForLoadState('load');
        assert.equal(await frames[0].locator('form[action*="/oauth2/consent"]').count().catch(() => 0), 0, 'the consent page rendered inside a frame');
        assert.doesNotMatch(frames[0].url(), new RegExp(`^${escapeRe(OIDC.base)}`), `the framed authorize page loaded: ${frames[0].url()}`);

        // Consent through the demo app, then "Apps with access" on /account lists it with Revoke.
        await signInAtDemo(d);
        await assertConsentPage(d);
        await d.navigate('allowed', () => d.page.getByRole('button', { name: /^\s*Allow\s*$/ }).click());
        await assertDemoSignedIn(d, phone, username);

        await d.goto('account with the app', `${OIDC.base}/account`);
        assert.match(await d.text(), /Apps with access/);
        const appRevoke = d.page.locator(
            `form:has(input[value="${CLIENT_ID}"]), form:has(button[value="${CLIENT_ID}"]), form[action*="/${CLIENT_ID}"]`,
        ).filter({ has: d.page.getByRole('button', { name: /revoke/i }) });
        assert.equal(await appRevoke.count(), 1, `/account should list the app "${CLIENT_ID}" with a Revoke button`);
        await d.navigate('app revoked', () => appRevoke.getByRole('button', { name: /revoke/i }).click());
        assert.equal(d.where().path, '/account');
        assert.equal(await appRevoke.count(), 0, 'the app is still listed after Revoke');

        // The consent is gone: the next sign-in asks again.
        await d.context.clearCookies({ name: 'oidc_demo_session' });
        await signInAtDemo(d);
        await assertConsentPage(d);
    });

    it('oidc-german: Accept-Language de gets the consent page in German; Ablehnen denies', T, async (t) => {
        const { phone } = await newUser(t, OIDC, 'deutsch');
        const d = await device(t, { server: OIDC, locale: 'de-DE' });
        await signInAtDemo(d);
        assertLoginForAuthorize(d);
        await logInByCode(d, phone);
        assert.equal(await consentForm(d).count(), 1, `expected the consent page, got ${d.page.url()}:\n${await d.text()}`);
        assert.match(await d.page.getAttribute('html', 'lang'), /^de\b/);
        const text = await d.text();
        assert.match(text, new RegExp(`\\b${CLIENT_ID}\\b`, 'i'));
        const items = await d.page.locator('main li').allInnerTexts();
        assert.ok(items.some((i) => /Telefonnummer|Handynummer|Rufnummer/.test(i)), `no phone number listed: ${JSON.stringify(items)}`);
        assert.ok(items.some((i) => /Benutzername/.test(i)), `no username listed: ${JSON.stringify(items)}`);
        assert.doesNotMatch(text, /\b(Allow|Deny)\b/);
        assert.equal(await d.page.getByRole('button', { name: /^\s*Erlauben\s*$/ }).count(), 1, 'no "Erlauben" button');
        assert.equal(await d.page.getByRole('button', { name: /^\s*Ablehnen\s*$/ }).count(), 1, 'no "Ablehnen" button');

        await d.navigate('abgelehnt', () => d.page.getByRole('button', { name: /^\s*Ablehnen\s*$/ }).click());
        assert.equal(d.page.url(), `${OIDC.demo}/`);
        assert.equal(await demoText(d, 'status'), 'Signed out');
        assert.match(await demoText(d, 'error'), /Sign-in failed: access_denied$/);
    });
});
