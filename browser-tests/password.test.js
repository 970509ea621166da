// The account page's Password section (docs/accounts.md, "Passwords"), in headless Chromium: a
// passwordless account sets a password there without JavaScript, sees that it was saved, and
// then logs in with username, password and the code.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MAIN, closeBrowser, codeSentBy, device, escapeRe, uniquePhone, uniqueUsername } from './helpers.js';

const T = { timeout: 90_000 };

/** Passwordless sign-up on /signup through the code, landing on /account. */
async function signUp(d, username, phone) {
    await d.goto('signup page', '/signup');
    const code = await codeSentBy(MAIN, phone, () => d.submit('signup submitted', { username, phone }));
    await d.submit('code entered', { code });
    assert.equal(d.where().path, '/account', `expected /account, got ${d.page.url()}`);
}

describe('the account page\'s password', { concurrency: 1 }, () => {
    after(closeBrowser);

    it('password-set: a passwordless account sets a password on /account, then logs in with it and a code', T, async (t) => {
        const d = await device(t, { js: false });
        const username = uniqueUsername('pw');
        const phone = uniquePhone();
        await signUp(d, username, phone);

        const section = d.formWith('[name="new_password"]');
        assert.equal(await section.count(), 1, 'no password form on /account');
        assert.equal(await d.page.locator('[name="current_password"]').count(), 0, 'a passwordless account has no current password to give');
        assert.equal(await section.locator('[name="csrf"]').count(), 1, 'the form carries its CSRF token');

        // Too short: the page says why, and nothing is saved.
        await d.submit('short password', { new_password: 'short' });
        assert.equal(d.where().path, '/account/password');
        const alert = d.page.locator('[role=alert]');
        assert.match(await alert.innerText(), /8 to 128 characters/);

        const password = 'correct horse battery';
        await d.submit('password set', { new_password: password });
        assert.equal(d.where().path + d.where().search, '/account?done=password');
        assert.match(await d.page.locator('[role=status]').innerText(), /Your password was saved/);
        assert.equal(await d.page.locator('[name="current_password"]').count(), 1, 'a change now asks for the current password');
        const me = await (await d.context.request.get('/api/me')).json();
        assert.equal(me.has_password, true);

        // Another browser: username and password on /login, then the code.
        const other = await device(t, { label: 'login' });
        await other.goto('login page', '/login');
        const code = await codeSentBy(MAIN, phone, () => other.submit('password login submitted', { identifier: username, password }));
        assert.equal(other.where().path, '/login/code');
        await other.submit('code entered', { code });
        assert.equal(other.where().path, '/account');
        assert.match(await other.text(), new RegExp(escapeRe(username)));
    });
});
