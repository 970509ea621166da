// "Call me instead" on the code page (docs/channels.md): with `[accounts] workflow =
// "sms:120,voice"`, the page offers a call besides "Send the code again", without JavaScript; the
// call says the same code, digit by digit, and that code signs the user in.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MAIN, closeBrowser, codeSentBy, device, outbox, uniquePhone, uniqueUsername } from './helpers.js';

const T = { timeout: 90_000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('other channels on the code page', { concurrency: 1 }, () => {
    after(closeBrowser);

    it('call-me-instead: the code page calls the number with the same code, which signs the user up', T, async (t) => {
        const d = await device(t, { js: false });
        const phone = uniquePhone();
        await d.goto('signup page', '/signup');
        const texted = await codeSentBy(MAIN, phone, () => d.submit('signup submitted', { username: uniqueUsername('call'), phone }));
        assert.equal(d.where().path, '/login/code');

        const call = d.page.locator('#by-voice');
        assert.equal(await call.innerText(), 'Call me instead');
        assert.equal(await d.page.locator('#by-whatsapp').count(), 0, 'WhatsApp is not in this workflow');
        await call.click();
        await d.page.waitForLoadState();
        assert.match(await d.page.locator('[role=status]').innerText(), /new message is on its way/);

        // The call says the texted code, digit by digit, twice.
        let spoken;
        for (let i = 0; i < 100 && !spoken; i++) {
            spoken = (await outbox(MAIN, phone)).find((m) => m.channel === 'voice');
            if (!spoken) await sleep(100);
        }
        assert.ok(spoken, 'no call in the dev outbox');
        const digits = texted.split('').join(', ');
        assert.equal(spoken.body.split(digits).length - 1, 2, spoken.body);

        await d.submit('code entered', { code: texted });
        assert.equal(d.where().path, '/account', `expected /account, got ${d.page.url()}`);
    });
});
