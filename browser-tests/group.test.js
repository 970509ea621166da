// An invite-only group in headless Chromium (issue 12): the admin made by `phonegate admin
// create` signs in, invites a number from the console, the invitee joins through the link in the
// SMS, the admin removes them and their session dies; another invitee joins by texting the invite
// code back through the signed Twilio webhook, and the admin signs their device out from the
// console and finds that in the filtered audit log; a stranger's sign-up looks the same as an
// invited one but sends nothing.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { GROUP, closeBrowser, codeSentBy, device, escapeRe, outbox, sleep, textFrom, uniquePhone, uniqueUsername } from './helpers.js';

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
        assert.equal(admin.where().path, '/admin/members');
        await admin.navigate('invites', () => admin.page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Invites' }).click());
        assert.equal(admin.where().path, '/admin/invites');

        const invitee = uniquePhone();
        await admin.submit('invite sent', { phone: invitee });
        assert.match(await admin.text(), /The invite is on its way/);
        assert.match(await admin.page.locator(`tr[data-invite]:has-text("${invitee}")`).innerText(), /pending/);

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
        await admin.goto('console with the new member', '/admin/members');
        const row = admin.page.locator(`tr[data-member]:has-text("${username}")`);
        assert.equal(await row.count(), 1);
        await admin.navigate('member removed', () => row.getByRole('button', { name: /^Remove/ }).click());
        assert.match(await admin.text(), /The member was removed/);
        await guest.goto('account after removal', '/account');
        assert.equal(guest.where().path, '/login');

        // The dashboard shows the traffic: the codes of both logins, as server-rendered charts.
        await admin.navigate('dashboard', () => admin.page.getByRole('link', { name: 'Dashboard' }).click());
        assert.equal(admin.where().path, '/admin/dashboard');
        assert.equal(await admin.page.getByRole('img', { name: 'Codes started and approved per hour' }).count(), 1);
        assert.match(await admin.text(), /\d+ started, \d+ approved/);
        assert.match(await admin.page.locator('tr[data-country="DE"]').innerText(), /DE\s+\d+\s+\d+/);
    });

    it('reply: an invitee joins by texting the invite code; the admin signs their device out and finds it in the audit log', T, async (t) => {
        const admin = await device(t, { label: 'admin', server: GROUP });
        await admin.goto('login page', '/login');
        const adminCode = await codeSentBy(GROUP, GROUP.adminPhone, () => admin.submit('login submitted', { phone: GROUP.adminPhone }));
        await admin.submit('code entered', { code: adminCode });
        await admin.goto('invites', '/admin/invites');
        const inviteCode = (await admin.page.locator('#current-invite-code').innerText()).trim();
        assert.match(inviteCode, /^[A-Z2-9]{8}$/);

        const invitee = uniquePhone();
        await admin.submit('invite sent', { phone: invitee });
        let sms;
        for (let i = 0; i < 100 && !sms; i++) {
            sms = (await outbox(GROUP, invitee))[0];
            if (!sms) await sleep(100);
        }
        assert.ok(sms?.body.includes(inviteCode), `the invite SMS carries the invite code: ${sms?.body}`);

        // An unsigned webhook is refused and sends nothing; the signed reply gets a code.
        assert.equal((await textFrom(GROUP, invitee, inviteCode, { signed: false })).status, 403);
        const code = await codeSentBy(GROUP, invitee, async () => {
            const r = await textFrom(GROUP, invitee, inviteCode.toLowerCase());
            assert.equal(r.status, 200);
        });

        // The invitee signs up with that number in the browser and enters the code they have.
        const guest = await device(t, { label: 'invitee', server: GROUP });
        await guest.goto('signup page', '/signup');
        const username = uniqueUsername('replier');
        await guest.submit('signup submitted', { username, phone: invitee });
        assert.equal(guest.where().path, '/login/code');
        await sleep(300);
        assert.equal((await outbox(GROUP, invitee)).length, 2, 'the invite and one code: signing up sent no other');
        await guest.submit('code entered', { code });
        assert.equal(guest.where().path, '/account');

        // The admin opens the member's devices and signs the one device out.
        await admin.goto('console with the member', '/admin/members');
        const row = admin.page.locator(`tr[data-member]:has-text("${username}")`);
        await admin.navigate('devices', () => row.getByRole('link', { name: 'Devices' }).click());
        const devices = admin.page.locator('li[data-session]');
        assert.equal(await devices.count(), 1);
        await admin.navigate('device signed out', () => devices.first().getByRole('button', { name: 'Sign out this device' }).click());
        assert.match(await admin.text(), /The device is signed out/);
        await guest.goto('account after sign-out', '/account');
        assert.equal(guest.where().path, '/login');

        // The audit log, filtered by what and by whom it concerns, names who did it.
        await admin.navigate('audit log', () => admin.page.getByRole('link', { name: 'Audit log' }).click());
        await admin.submit('audit filtered', { kind: 'session_revoked', who: username });
        const events = admin.page.locator('table.audit tbody tr');
        assert.equal(await events.count(), 1);
        assert.match(await events.first().innerText(), /session_revoked[\s\S]*chief/);
        await admin.submit('audit filtered by kind', { kind: 'invite_replied', who: '' });
        assert.ok(await admin.page.locator('table.audit tbody tr:has-text("invite_replied")').count() >= 1);
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
