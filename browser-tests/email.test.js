// The account page's E-mail section (docs/accounts.md, "E-mail address"), in headless Chromium
// without JavaScript: a signed-in user gives an address, reads the code from the dev outbox (as
// the mailbox would), enters it, and the page shows the address verified.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MAIN, closeBrowser, codeSentBy, device, escapeRe, uniquePhone, uniqueUsername } from './helpers.js';

const T = { timeout: 90_000 };

describe('the account page\'s e-mail address', { concurrency: 1 }, () => {
    after(closeBrowser);

    it('email-verify: an address is added on /account and confirmed with the code it gets', T, async (t) => {
        const d = await device(t, { js: false });
        const username = uniqueUsername('mail');
        const phone = uniquePhone();
        await d.goto('signup page', '/signup');
        const signupCode = await codeSentBy(MAIN, phone, () => d.submit('signup submitted', { username, phone }));
        await d.submit('code entered', { code: signupCode });
        assert.equal(d.where().path, '/account', `expected /account, got ${d.page.url()}`);

        const section = d.formWith('[name="email"]');
        assert.equal(await section.count(), 1, 'no e-mail form on /account');
        assert.equal(await section.locator('[name="csrf"]').count(), 1, 'the form carries its CSRF token');
        assert.match(await d.text(), /No e-mail address yet/);

        // Not an address: the page says so, and asks for no code.
        await d.submit('bad address', { email: 'not an address' });
        assert.match(await d.page.locator('[role=alert]').innerText(), /name@example\.com/);
        assert.equal(await d.page.locator('[name="code"]').count(), 0);

        const address = `${username}@example.com`;
        const code = await codeSentBy(MAIN, address, () => d.submit('address given', { email: address }));
        assert.equal(d.where().path, '/account');
        assert.match(d.where().search, /^\?email_flow=/);
        assert.match(await d.page.locator('#email-code-sent').innerText(), /We e-mailed you a code/);

        // A wrong code is said on the page, and the code can still be given.
        const wrong = code.split('').map((c) => (c === '0' ? '1' : '0')).join('');
        await d.submit('wrong code', { code: wrong });
        assert.match(await d.page.locator('[role=alert]').innerText(), /Check the e-mail/);
        await d.submit('right code', { code });
        assert.equal(d.where().path + d.where().search, '/account?done=email');
        assert.match(await d.page.locator('[role=status]').innerText(), /Your e-mail address was verified/);
        assert.match(await d.page.locator('#email-address').innerText(), new RegExp(escapeRe(address)));
        assert.equal(await d.page.locator('#email-status').innerText(), 'verified');
        const me = await (await d.context.request.get('/api/me')).json();
        assert.deepEqual([me.email, me.email_verified], [address, true]);
    });
});
