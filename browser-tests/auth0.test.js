// The Auth0 integration (issue 15) end to end in headless Chromium: the example Login Action
// (examples/auth0/action.js, loaded as it is) runs on a stand-in of Auth0's Action API
// (auth0-standin.js), sends the browser to phonegate's hosted step, which proves the number by
// SMS code and sends it back to the tenant's /continue, where the Action decides. The browser
// never reaches a tenant: https://tenant.example is answered here, any other host is refused and
// recorded, and there must be none. Bad tokens get an error page, and no request parameter moves
// the final redirect away from https://tenant.example/continue.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, describe, it } from 'node:test';
import { jwt, tenant } from './auth0-standin.js';
import { AUTH0, closeBrowser, codeSentBy, device, outbox, sleep, uniquePhone } from './helpers.js';

const action = createRequire(import.meta.url)('../examples/auth0/action.js');
const T = { timeout: 90_000 };
const PHONEGATE = new URL(AUTH0.base).host;
const SECRETS = { PHONEGATE_URL: AUTH0.base, PHONEGATE_SECRET: AUTH0.tenantSecret };
const VERIFY = `${AUTH0.base}/integrations/auth0/verify`;
const now = () => Math.floor(Date.now() / 1000);

let users = 0;
const newUser = (phone) => ({ user_id: `auth0|browser${Date.now()}x${++users}`, ...(phone ? { phone_number: phone } : {}), app_metadata: {} });

/** The tenant's answer to a request the browser made to https://tenant.example. */
async function tenantAnswer(url) {
    const page = (status, text) => ({ status, html: `<!doctype html><title>tenant.example</title><h1>${text}</h1>` });
    if (url.pathname === '/authorize') {
        // Auth0 finds the login by its own cookie; here the state names it.
        const tx = tenant.transactions.get(url.searchParams.get('state'));
        await action.onExecutePostLogin(tx.event, tx.api);
        return tx.redirectUrl ? { status: 302, location: tx.redirectUrl + (tx.extra ?? '') } : page(200, 'Logged in without a redirect');
    }
    if (url.pathname === '/continue') {
        const tx = tenant.resume(url.href);
        if (!tx) return page(400, 'invalid_request: no such login');
        await action.onContinuePostLogin(tx.event, tx.api);
        const o = tx.finish();
        return page(200, o.denied ? `Login denied: ${o.denied}` : `Login allowed: ${JSON.stringify(o.app_metadata)}`);
    }
    return page(404, 'Not found');
}

/**
 * A browser for Auth0 logins whose requests to https://tenant.example are answered by
 * tenantAnswer(): /authorize?state=S runs the Action's onExecutePostLogin for the login S and
 * redirects where it says; /continue resumes the login, runs onContinuePostLogin and shows the
 * outcome. Requests to any host but phonegate and the tenant are refused and recorded in
 * `offsite`; requests to /continue are recorded in `continues`. (Playwright's context.route()
 * does not see requests that follow a redirect, such as phonegate's 303 to /continue, so the
 * requests are intercepted one level down, with the DevTools protocol's Fetch domain.)
 */
async function auth0Device(t, label = '') {
    const d = await device(t, { server: AUTH0, label });
    d.offsite = [];
    d.continues = [];
    d.context.on('request', (r) => {
        const { host, pathname, protocol } = new URL(r.url());
        if (host === tenant.domain && pathname === '/continue') d.continues.push(r);
        else if (protocol !== 'data:' && host !== PHONEGATE && host !== tenant.domain) d.offsite.push(r.url());
    });
    const cdp = await d.context.newCDPSession(d.page);
    const send = (method, params) => cdp.send(method, params).catch(() => {}); // the page may be closed by then
    cdp.on('Fetch.requestPaused', async ({ requestId, request }) => {
        const url = new URL(request.url);
        if (url.host === PHONEGATE) return send('Fetch.continueRequest', { requestId });
        if (url.host !== tenant.domain) return send('Fetch.failRequest', { requestId, errorReason: 'BlockedByClient' });
        const a = await tenantAnswer(url).catch((e) => ({ status: 500, html: `<pre>${e.stack}</pre>` }));
        const responseHeaders = a.location ? [{ name: 'Location', value: a.location }] : [{ name: 'Content-Type', value: 'text/html; charset=utf-8' }];
        return send('Fetch.fulfillRequest', { requestId, responseCode: a.status, responseHeaders, body: Buffer.from(a.html ?? '').toString('base64') });
    });
    await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*' }] });
    return d;
}

/**
 * Logs `user` in at the tenant; the Action sends the browser to phonegate (with `extra`, a raw
 * query string, appended). Returns the login and the claims of the token phonegate was given.
 */
async function startLogin(d, user, { extra = '' } = {}) {
    const tx = tenant.login({ user, secrets: SECRETS });
    tx.extra = extra;
    await d.goto('sent to phonegate', `https://${tenant.domain}/authorize?state=${tx.state}`);
    const at = d.where().url;
    assert.equal(`${at.host}${at.pathname}`, `${PHONEGATE}/integrations/auth0/verify`, `expected phonegate's step, got ${at}`);
    assert.equal(at.searchParams.get('state'), tx.state);
    const given = jwt.verify(at.searchParams.get('session_token'), AUTH0.tenantSecret);
    assert.equal(given.iss, tenant.domain);
    return { tx, given };
}

/** The code phonegate sent to `phone` when `action` ran. */
const codeFor = (phone, action) => codeSentBy(AUTH0, phone, action);

/**
 * Asserts that phonegate sent the browser, by a 303, to exactly
 * https://tenant.example/continue?state=S&session_token=R and nowhere else; returns R's claims.
 */
async function assertContinued(d, tx) {
    assert.deepEqual(d.offsite, [], 'requests to other hosts');
    assert.equal(d.continues.length, 1, `one request to /continue; the browser is at ${d.page.url()}`);
    const url = d.continues[0].url();
    const from = d.continues[0].redirectedFrom();
    const u = new URL(url);
    assert.equal(u.protocol, 'https:');
    assert.equal(u.host, tenant.domain);
    assert.equal(u.pathname, '/continue');
    const R = u.searchParams.get('session_token');
    assert.equal(url, `https://${tenant.domain}/continue?state=${tx.state}&session_token=${R}`);
    assert.ok(from && new URL(from.url()).host === PHONEGATE, 'phonegate redirected to /continue');
    const res = await from.response();
    assert.equal(res.status(), 303);
    assert.equal(res.headers().location, url);
    assert.equal(jwt.decode(R).header.alg, 'HS256');
    const claims = jwt.verify(R, AUTH0.tenantSecret);
    assert.equal(claims.sub, tx.event.user.user_id);
    assert.equal(claims.state, tx.state);
    assert.ok(Number.isInteger(claims.iat) && Number.isInteger(claims.exp), 'iat and exp');
    assert.ok(claims.exp <= claims.iat + 300 && claims.exp > now(), `exp within 5 minutes: ${JSON.stringify(claims)}`);
    return claims;
}

/** Asserts an error page for a refused token: `status`, HTML, no Location, no redirect, no tenant. */
async function assertRefused(d, res, status, what) {
    assert.ok(Array.isArray(status) ? status.includes(res.status()) : res.status() === status, `${what}: status ${res.status()}`);
    assert.match(res.headers()['content-type'] ?? '', /text\/html/, `${what}: an HTML page`);
    assert.equal(res.headers().location, undefined, `${what}: no Location`);
    assert.equal(res.request().redirectedFrom(), null);
    assert.equal(d.where().url.host, PHONEGATE, `${what}: still at phonegate`);
    assert.equal(await d.page.locator('input[name=code]').count(), 0, `${what}: no code form`);
    assert.deepEqual(d.continues, [], `${what}: nothing reached the tenant`);
    assert.deepEqual(d.offsite, [], `${what}: requests to other hosts`);
}

describe('Auth0 Login Action with phonegate', { concurrency: 1 }, () => {
    after(closeBrowser);

    it('auth0-pass: a user with a number proves it by code; the Action records it and lets them in', T, async (t) => {
        const phone = uniquePhone();
        const user = newUser(phone);
        const d = await auth0Device(t);
        let login;
        const code = await codeFor(phone, async () => { login = await startLogin(d, user); });
        assert.equal(login.given.phone_number, phone);
        assert.equal(await d.page.locator('input[name=code]').count(), 1, 'the code form');
        await d.submit('code entered', { code });
        const claims = await assertContinued(d, login.tx);
        assert.equal(claims.phone_number, phone);
        assert.equal(claims.phone_number_verified, true);
        assert.deepEqual(login.tx.outcome, { allowed: true, app_metadata: { phone_number_verified: true, phone_number: phone } });
        assert.match(await d.text(), /Login allowed/);

        // The next login of the now verified user goes through without a redirect.
        const next = tenant.login({ user: { ...user, app_metadata: login.tx.outcome.app_metadata }, secrets: SECRETS });
        await action.onExecutePostLogin(next.event, next.api);
        assert.equal(next.redirectUrl, null);
    });

    it('auth0-locked: a wrong code shows the form again; the fifth ends the step unverified and the Action denies', T, async (t) => {
        const phone = uniquePhone();
        const d = await auth0Device(t);
        let login;
        const code = await codeFor(phone, async () => { login = await startLogin(d, newUser(phone)); });
        const wrong = String((Number(code) + 1) % 10 ** code.length).padStart(code.length, '0');
        for (let i = 1; i <= 4; i++) {
            await d.submit(`wrong code ${i}`, { code: wrong });
            assert.equal(d.where().url.host, PHONEGATE, `wrong code ${i}: still at phonegate`);
            assert.ok(await d.page.locator('[role=alert]').count() >= 1, `wrong code ${i}: an error`);
            assert.equal(await d.page.locator('input[name=code]').count(), 1, `wrong code ${i}: the form again`);
            assert.deepEqual(d.continues, []);
        }
        await d.submit('wrong code 5', { code: wrong });
        const claims = await assertContinued(d, login.tx);
        assert.equal(claims.phone_number_verified, false);
        assert.deepEqual(login.tx.outcome, { denied: 'Phone number not verified' });
        assert.match(await d.text(), /Login denied/);
    });

    it('auth0-tokens: tampered, expired, wrong-algorithm, wrong-issuer and replayed tokens get an error page', T, async (t) => {
        const secret = AUTH0.tenantSecret;
        const swap = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
        const bad = {
            'signature changed': (tok) => { const [h, p, s] = tok.split('.'); return `${h}.${p}.${swap(s, 10)}`; },
            'payload changed': (tok, c) => { const [h, , s] = tok.split('.'); return `${h}.${Buffer.from(JSON.stringify({ ...c, sub: 'auth0|someone-else' })).toString('base64url')}.${s}`; },
            'expired': (tok, c) => jwt.sign({ ...c, iat: c.iat - 600, exp: c.iat - 300 }, secret),
            'HS512': (tok, c) => jwt.sign(c, secret, { alg: 'HS512' }),
            'alg none': (tok, c) => jwt.sign(c, secret, { alg: 'none' }),
            'RS256 header, HMAC signature': (tok, c) => jwt.sign(c, secret, { alg: 'RS256', hash: 'sha256' }),
            'issuer evil.example': (tok, c) => jwt.sign({ ...c, iss: 'evil.example' }, secret),
            'issuer https://tenant.example.evil.example/': (tok, c) => jwt.sign({ ...c, iss: 'https://tenant.example.evil.example/' }, secret),
            'another secret': (tok, c) => jwt.sign(c, `${secret}-but-not-this-one`, {}),
        };
        const d = await auth0Device(t);
        for (const [what, make] of Object.entries(bad)) {
            const phone = uniquePhone();
            const tx = tenant.login({ user: newUser(phone), secrets: SECRETS });
            await action.onExecutePostLogin(tx.event, tx.api);
            const token = new URL(tx.redirectUrl).searchParams.get('session_token');
            const tampered = make(token, jwt.decode(token).claims);
            const res = await d.goto(what, `${VERIFY}?state=${tx.state}&session_token=${tampered}`);
            await assertRefused(d, res, 400, what);
            assert.deepEqual(await outbox(AUTH0, phone), [], `${what}: no code sent`);
        }

        // Replayed: the same token again, from another browser, after a first use.
        const phone = uniquePhone();
        const first = await auth0Device(t, 'first');
        let login;
        await codeFor(phone, async () => { login = await startLogin(first, newUser(phone)); });
        assert.equal(await first.page.locator('input[name=code]').count(), 1);
        const again = await auth0Device(t, 'replay');
        const res = await again.goto('replayed', login.tx.redirectUrl);
        await assertRefused(again, res, [410, 400], 'replayed');
        await sleep(300);
        assert.equal((await outbox(AUTH0, phone)).length, 1, 'the replay sent no second code');
        assert.equal(login.tx.outcome, null);
    });

    it('auth0-redirects: redirect targets in the query or the form never move the final redirect', T, async (t) => {
        const targets = ['//evil.example', 'https:evil.example', 'https://tenant.example.evil.example', '\\\\evil.example',
            'https://tenant.example@evil.example', '%2F%2Fevil.example', 'https%3A%2F%2Fevil.example'];
        const names = ['redirect_uri', 'return_to', 'continue', 'next', 'url'];
        for (const [i, target] of targets.entries()) {
            // Each name once, alternately percent-encoded (phonegate reads the target as written)
            // and raw (the browser sends it as it is, so "%2F%2Fevil.example" reads "//evil.example").
            const extra = names.map((n, j) => `&${n}=${j % 2 ? target : encodeURIComponent(target)}`).join('');
            const phone = uniquePhone();
            const d = await auth0Device(t, `target ${i + 1}`);
            let login;
            const code = await codeFor(phone, async () => { login = await startLogin(d, newUser(phone), { extra }); });
            // And the same names as fields of the code form.
            await d.formWith('[name=code]').evaluate((form, { names, target }) => {
                for (const name of names) form.append(Object.assign(document.createElement('input'), { type: 'hidden', name, value: target }));
            }, { names, target });
            await d.submit('code entered', { code });
            const claims = await assertContinued(d, login.tx);
            assert.equal(claims.phone_number_verified, true, target);
            assert.equal(login.tx.outcome.allowed, true, target);
            await d.close();
        }
    });

    it('auth0-nophone: a user without a number enters one, then the code', T, async (t) => {
        const d = await auth0Device(t);
        const { tx, given } = await startLogin(d, newUser());
        assert.equal(given.phone_number, undefined);
        assert.equal(await d.page.locator('input[name=phone]').count(), 1, 'the phone form');
        const phone = uniquePhone();
        const code = await codeFor(phone, () => d.submit('number entered', { phone }));
        assert.equal(await d.page.locator('input[name=code]').count(), 1, 'the code form');
        await d.submit('code entered', { code });
        const claims = await assertContinued(d, tx);
        assert.equal(claims.phone_number, phone);
        assert.equal(claims.phone_number_verified, true);
        assert.deepEqual(tx.outcome, { allowed: true, app_metadata: { phone_number_verified: true, phone_number: phone } });
    });
});
