// The account pages of docs/accounts.md ("Web pages"), driven in headless Chromium like a person
// would: fill the form, press its button, read the SMS (here: the dev outbox), type the code.
// The expired-code test waits out a 60 s code lifetime on a second server, concurrently with the
// rest, which run one after the other.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startProxy } from './proxy.js';
import {
    MAIN, SHORT_TTL, assertSessionCookie, closeBrowser, codeSentBy, device, escapeRe, outbox, sleep, uniquePhone, uniqueUsername,
} from './helpers.js';

const T = { timeout: 90_000 };

/** Asserts the code page: its URL and the code field's attributes for SMS autofill. */
async function assertCodePage(d) {
    assert.equal(d.where().path, '/login/code', `expected the code page, got ${d.page.url()}`);
    const input = d.page.locator('input[name=code]');
    assert.equal(await input.getAttribute('autocomplete'), 'one-time-code');
    assert.equal(await input.getAttribute('inputmode'), 'numeric');
}

/** Asserts the account page of `username` with a proper session cookie. */
async function assertAccountPage(d, username) {
    assert.equal(d.where().path, '/account', `expected /account, got ${d.page.url()}`);
    assert.match(await d.text(), new RegExp(escapeRe(username)));
    await assertSessionCookie(d.context);
}

/** Sign-up on /signup up to the code page; returns the code sent. */
async function signUp(d, fields) {
    await d.goto('signup page', '/signup');
    const code = await codeSentBy(d.server, fields.phone, () => d.submit('signup submitted', fields));
    await assertCodePage(d);
    return code;
}

/** Passwordless login on /login up to the code page; returns the code sent. */
async function logIn(d, phone, page = '/login') {
    await d.goto('login page', page);
    const code = await codeSentBy(d.server, phone, () => d.submit('login submitted', { phone }));
    await assertCodePage(d);
    return code;
}

/** The account page's "Log out" button (not "Log out everywhere"). */
const logoutButton = (d) => d.page.getByRole('button', { name: /^\s*(log|sign) ?out\s*$/i });

/** Asserts the browser is no longer logged in: /account does not show the user. */
async function assertLoggedOut(d, username) {
    await d.goto('account after logout', '/account');
    const { path } = d.where();
    if (path === '/account') {
        assert.doesNotMatch(await d.text(), new RegExp(escapeRe(username)), '/account still shows the user');
    } else {
        assert.equal(path, '/login', `a logged-out /account should lead to /login, got ${d.page.url()}`);
    }
    const me = await d.context.request.get('/api/me');
    assert.equal(me.status(), 401, 'GET /api/me with the browser cookies must be refused after logout');
}

/** A fully signed-up user, made through the pages in a throwaway context. */
async function newUser(t, extra = {}) {
    const username = uniqueUsername(extra.prefix ?? 'user');
    const phone = uniquePhone();
    const d = await device(t, { label: 'signup' });
    const code = await signUp(d, { username, phone, ...(extra.password ? { password: extra.password } : {}) });
    await d.submit('code entered', { code });
    await assertAccountPage(d, username);
    await d.close();
    return { username, phone };
}

describe('phonegate web pages', { concurrency: 2 }, () => {
    after(closeBrowser);

    it('expired-code: the right code after the code lifetime is refused as expired', { timeout: 180_000 }, async (t) => {
        const d = await device(t, { server: SHORT_TTL });
        const username = uniqueUsername('late');
        const code = await signUp(d, { username, phone: uniquePhone() });
        await sleep(61_000);
        await d.submit('code entered after 61 s', { code });
        const alert = d.page.locator('[role=alert]');
        assert.ok(await alert.count() > 0, 'no [role=alert] error shown');
        assert.match(await alert.first().innerText(), /expired/i);
        assert.notEqual(d.where().path, '/account');
    });

    describe('flows', { concurrency: 1 }, () => {
        it('harness: Chromium renders phonegate, directly and through the forward-auth proxy', T, async (t) => {
            const proxy = await startProxy(MAIN.base);
            t.after(() => proxy.close());
            const d = await device(t);
            const direct = await d.goto('healthz', '/healthz');
            assert.equal(direct.status(), 200);
            const body = await direct.text();
            const proxied = await d.goto('healthz via proxy', `${proxy.url}/healthz`);
            assert.equal(proxied.status(), 200);
            assert.equal(await proxied.text(), body);
            await d.goto('app via proxy without a session', `${proxy.url}/app/`);
            assert.equal(d.page.url(), `${proxy.url}/login?return_to=/app/`);
        });

        it('signup: username and phone, the code, the account page, log out', T, async (t) => {
            const d = await device(t);
            const username = uniqueUsername('ada');
            const code = await signUp(d, { username, phone: uniquePhone() });
            // With the dev outbox the code page links to the message.
            assert.ok(await d.page.locator('a[href*="/dev/outbox"]').count() > 0, 'no link to the dev outbox');
            await d.submit('code entered', { code });
            await assertAccountPage(d, username);
            await d.navigate('logged out', () => logoutButton(d).click());
            await assertLoggedOut(d, username);
        });

        it('csrf: a sign-up form posted without its CSRF token is refused and sends nothing', T, async (t) => {
            const d = await device(t);
            const phone = uniquePhone();
            await d.goto('signup page', '/signup');
            const form = d.formWith('[name=username]');
            const tokens = form.locator('input[type=hidden]');
            assert.ok(await tokens.count() > 0, 'the sign-up form carries no hidden CSRF token');
            await tokens.evaluateAll((inputs) => inputs.forEach((i) => { i.value = 'forged'; }));
            await d.submit('signup with a forged token', { username: uniqueUsername('forged'), phone });
            assert.notEqual(d.where().path, '/login/code', 'a forged CSRF token led to the code page');
            assert.deepEqual(await outbox(MAIN, phone), [], 'a code was sent despite the forged CSRF token');
        });

        it('passwordless: phone on /login, the code, the account page', T, async (t) => {
            const { username, phone } = await newUser(t, { prefix: 'grace' });
            const d = await device(t);
            const code = await logIn(d, phone);
            await d.submit('code entered', { code });
            await assertAccountPage(d, username);
        });

        it('password: sign up with a password, log out, username and password on /login, then the code', T, async (t) => {
            const d = await device(t);
            const username = uniqueUsername('alan');
            const phone = uniquePhone();
            const password = 'correct horse battery';
            const code = await signUp(d, { username, phone, password });
            await d.submit('code entered', { code });
            await assertAccountPage(d, username);
            await d.navigate('logged out', () => logoutButton(d).click());
            await assertLoggedOut(d, username);

            await d.goto('login page', '/login');
            const again = await codeSentBy(MAIN, phone, () => d.submit('password login submitted', { identifier: username, password }));
            await assertCodePage(d);
            await d.submit('code entered', { code: again });
            await assertAccountPage(d, username);
        });

        it('wrong-code: an alert on the code page, then the right code still works', T, async (t) => {
            const d = await device(t);
            const username = uniqueUsername('wrong');
            const code = await signUp(d, { username, phone: uniquePhone() });
            const wrong = code.replace(/\d/g, (c) => String((Number(c) + 1) % 10));
            await d.submit('wrong code entered', { code: wrong });
            await assertCodePage(d);
            const alert = d.page.locator('[role=alert]');
            assert.ok(await alert.count() > 0, 'no [role=alert] error shown');
            assert.ok(await alert.first().isVisible());
            await d.submit('right code entered', { code });
            await assertAccountPage(d, username);
        });

        it('revoke: device A ends device B\'s session from /account', T, async (t) => {
            const { username, phone } = await newUser(t, { prefix: 'rev' });
            const a = await device(t, { label: 'A' });
            const b = await device(t, { label: 'B' });
            await a.submit('code entered', { code: await logIn(a, phone) });
            await assertAccountPage(a, username);
            await b.submit('code entered', { code: await logIn(b, phone) });
            await assertAccountPage(b, username);

            // B's session id, as the API lists it, to find B's row on A's page.
            const sessions = await (await b.context.request.get('/api/me/sessions')).json();
            const mine = sessions.sessions.find((s) => s.current);
            assert.ok(mine, 'GET /api/me/sessions lists no current session for B');

            await a.goto('account with two sessions', '/account');
            const form = a.page.locator(`form:has(input[value="${mine.id}"]), form:has(button[value="${mine.id}"]), form[action*="${mine.id}"]`);
            assert.equal(await form.count(), 1, `A's /account has no revoke form for B's session ${mine.id}`);
            await a.navigate('other session revoked', () => form.locator('button, input[type=submit]').first().click());
            assert.equal(a.where().path, '/account');
            assert.equal(await form.count(), 0, 'B\'s session is still listed after revoking it');

            await assertLoggedOut(b, username);
            await a.goto('account still logged in', '/account');
            await assertAccountPage(a, username);
        });

        it('forward-auth: /app/ behind the proxy leads to login and back to /app/', T, async (t) => {
            const { username, phone } = await newUser(t, { prefix: 'fwd' });
            const proxy = await startProxy(MAIN.base);
            t.after(() => proxy.close());
            const d = await device(t, { base: proxy.url });
            await d.goto('app without a session', '/app/');
            assert.equal(d.page.url(), `${proxy.url}/login?return_to=/app/`);
            const code = await codeSentBy(MAIN, phone, () => d.submit('login submitted', { phone }));
            await assertCodePage(d);
            await d.submit('code entered', { code });
            assert.equal(d.page.url(), `${proxy.url}/app/`);
            assert.match(await d.text(), new RegExp(`Protected: hello ${escapeRe(username)}`));
            await assertSessionCookie(d.context);

            const fresh = await device(t, { base: proxy.url, label: 'fresh' });
            await fresh.goto('app in a fresh context', '/app/');
            assert.equal(fresh.page.url(), `${proxy.url}/login?return_to=/app/`);
        });

        it('german: Accept-Language de gets the pages in German', T, async (t) => {
            const en = await device(t, { label: 'en' });
            await en.goto('login in English', '/login');
            const de = await device(t, { label: 'de', locale: 'de-DE' });
            await de.goto('login in German', '/login');
            assert.match(await en.page.getAttribute('html', 'lang'), /^en\b/);
            assert.match(await de.page.getAttribute('html', 'lang'), /^de\b/);
            assert.ok(await de.page.locator('input[name=phone]').count() > 0);
            const [enText, deText] = [await en.text(), await de.text()];
            assert.notEqual(deText, enText);
            assert.match(deText, /Anmeld|Telefon|Handy|Mobil|Nummer/);
        });
    });
});
