// Silent verification on the sign-up and login pages (docs/silent.md), in headless Chromium
// against a server with the local simulator: the page checks coverage, opens the check link,
// the simulated operator answers, and the page continues — or falls back to a code by SMS, the
// same flow going on. Without JavaScript the page offers the same steps as buttons.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SILENT, closeBrowser, device, outbox, sleep, uniquePhone, uniqueUsername } from './helpers.js';

const T = { timeout: 90_000 };

/** Fills the sign-up form and submits it; returns once the code page is shown. */
async function signUp(d, username, phone) {
    await d.goto('signup page', '/signup');
    await d.submit('signup submitted', { username, phone });
    assert.equal(d.where().path, '/login/code', `expected the code page, got ${d.page.url()}`);
}

/** The simulated operator's page, reached by the page's own script or by its link. */
async function atOperator(d) {
    await d.page.waitForURL(/\/silent\/simulator\/SR/);
    await d.shot('simulated operator');
    assert.match(await d.text(), /Simulated operator/);
}

async function answer(d, outcome) {
    await d.navigate(`operator answers ${outcome}`, () => d.page.locator(`a[data-outcome="${outcome}"]`).click());
}

async function codeFor(phone) {
    for (let i = 0; i < 100; i++) {
        const m = await outbox(SILENT, phone);
        if (m.length > 0) return m[0].body.trim().split(' ').pop();
        await sleep(100);
    }
    throw new Error(`no code to ${phone}`);
}

describe('silent verification on the web pages', { concurrency: 1 }, () => {
    after(closeBrowser);

    it('silent-signup: a phone whose operator confirms the number signs up without a code', T, async (t) => {
        const d = await device(t, { server: SILENT });
        const username = uniqueUsername('silent');
        const phone = uniquePhone();
        await signUp(d, username, phone);
        assert.match(d.where().search, /check=/, 'the flow carries its check link');
        await atOperator(d);
        await answer(d, 'match');
        await d.page.waitForURL(/\/account/);
        await d.shot('account');
        assert.match(await d.text(), new RegExp(username));
        assert.deepEqual(await outbox(SILENT, phone), [], 'no SMS was sent');
        // Passwordless login later: the same, silently.
        await d.context.clearCookies();
        await d.goto('login page', '/login');
        await d.submit('login submitted', { phone });
        await atOperator(d);
        await answer(d, 'match');
        await d.page.waitForURL(/\/account/);
        assert.deepEqual(await outbox(SILENT, phone), []);
    });

    it('silent-fallback: another SIM on the device gets a code by SMS in the same flow', T, async (t) => {
        const d = await device(t, { server: SILENT });
        const username = uniqueUsername('fallback');
        const phone = uniquePhone();
        await signUp(d, username, phone);
        const flow = new URL(d.page.url()).searchParams.get('flow');
        await atOperator(d);
        await answer(d, 'mismatch');
        await d.page.waitForURL(/silent=sms/);
        assert.equal(new URL(d.page.url()).searchParams.get('flow'), flow, 'the same flow goes on');
        assert.match(await d.text(), /sent a code by SMS/);
        const code = await codeFor(phone);
        await d.submit('code entered', { code });
        assert.equal(d.where().path, '/account');
        assert.match(await d.text(), new RegExp(username));
    });

    it('silent-nojs: without JavaScript the buttons lead through the same steps', T, async (t) => {
        // Verify with the operator, by the link, then Continue by hand.
        const d = await device(t, { server: SILENT, js: false, label: 'link' });
        const username = uniqueUsername('nojs');
        const phone = uniquePhone();
        await signUp(d, username, phone);
        await d.navigate('verify link', () => d.page.getByRole('link', { name: /verify with my mobile operator/i }).click());
        await atOperator(d);
        await answer(d, 'match');
        assert.match(d.where().search, /silent=done/);
        await d.navigate('continue', () => d.page.getByRole('button', { name: /continue/i }).click());
        assert.equal(d.where().path, '/account');
        assert.match(await d.text(), new RegExp(username));
        await d.close();

        // Or ask for a code straight away.
        const e = await device(t, { server: SILENT, js: false, label: 'sms' });
        const other = uniquePhone();
        await signUp(e, uniqueUsername('nojs-sms'), other);
        assert.deepEqual(await outbox(SILENT, other), [], 'no code before the user asks for one');
        await e.navigate('sms instead', () => e.page.getByRole('button', { name: /code by sms instead/i }).click());
        const code = await codeFor(other);
        await e.submit('code entered', { code });
        assert.equal(e.where().path, '/account');
    });
});
