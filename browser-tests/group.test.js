// An invite-only group in headless Chromium (issue 12): the admin made by `phonegate admin
// create` signs in, invites a number from the console, the invitee joins through the link in the
// SMS, the admin removes them and their session dies; a stranger's sign-up looks the same as an
// invited one but sends nothing.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { GROUP, closeBrowser, codeSentBy, device, escapeRe, outbox, sleep, uniquePhone, uniqueUsername } from './helpers.js';

const T = { timeout: 90_000 };

describe('invite-only group', { concurrency: 1 }, () => {
    after(closeBrowser);

    it('group: the admin invites from the console, the invitee joins by the link, removal ends their session', T, async (t) => {
        const admin = await device(t, { label: 'admin', server: GROUP });
        await admin.goto('login page', '/login');
        const adminCode = await codeSentBy(GROUP, GROUP.adminPhone, () => admin.submit('login submitted', { phone: GROUP.adminPhone }));
        await admin.submit('code entered', { code: adminCode });
        assert.equal(admin.where().path, '/account');
        await admin.navigate('console', () => admin.page.getByRole('link', { name: 'Admin console' }).click());
        assert.equal(admin.where().path, '/admin');

        const invitee = uniquePhone();
        await admin.submit('invite sent', { phone: invitee });
        assert.match(await admin.text(), /The invite is on its way/);
        assert.match(await admin.page.locator(`li:has-text("${invitee}")`).innerText(), /pending/);

        // The SMS carries the sign-up link; the page it opens has the number filled in.
        let sms;
        for (let i = 0; i < 100 && !sms; i++) {
            sms = (await outbox(GROUP, invitee)).find((m) => m.body.includes('/signup?invite='));
            if (!sms) await sleep(100);
        }
        assert.ok(sms, 'the invite SMS arrived');
        const link = new URL(sms.body.match(/https?:\/\/\S+/)[0]);
        const guest = await device(t, { label: 'invitee', server: GROUP });
        await guest.goto('invite link', link.pathname + link.search);
        assert.equal(await guest.page.locator('input[name=phone]').inputValue(), invitee);
        const username = uniqueUsername('guest');
        const code = await codeSentBy(GROUP, invitee, () => guest.submit('signup submitted', { username }));
        await guest.submit('code entered', { code });
        assert.equal(guest.where().path, '/account');
        assert.match(await guest.text(), new RegExp(escapeRe(username)));

        // The admin removes the new member: their next request is signed out.
        await admin.goto('console with the new member', '/admin');
        const row = admin.page.locator(`li[data-member]:has-text("${username}")`);
        assert.equal(await row.count(), 1);
        await admin.navigate('member removed', () => row.getByRole('button', { name: /^Remove /}).click());
        assert.match(await admin.text(), /The member was removed/);
        await guest.goto('account after removal', '/account');
        assert.equal(guest.where().path, '/login');

        // The dashboard shows the traffic: the codes of both logins, as server-rendered charts.
        await admin.navigate('dashboard', () => admin.page.getByRole('link', { name: /^Dashboard/ }).click());
        assert.equal(admin.where().path, '/admin/dashboard');
        assert.equal(await admin.page.locator('svg[aria-label="Codes started and approved per hour"]').count(), 1);
        assert.match(await admin.text(), /\d+ started, \d+ approved/);
        assert.match(await admin.text(), /DE — \d+ started/);
    });

    it('stranger: an uninvited sign-up looks like an invited one and sends nothing', T, async (t) => {
        const stranger = uniquePhone();
        const d = await device(t, { server: GROUP });
        await d.goto('signup page', '/signup');
        await d.submit('signup submitted', { username: uniqueUsername('stranger'), phone: stranger });
        assert.equal(d.where().path, '/login/code');
        await sleep(500);
        assert.equal((await outbox(GROUP, stranger)).length, 0, 'no SMS to an uninvited number');
        await d.submit('a guessed code', { code: '123456' });
        assert.equal(await d.page.locator('[role=alert]').count(), 1);
    });
});
