// The admin console in headless Chromium (issue 24): a page each for members, invites, the
// audit log and the dashboard, reached through a navigation that marks the current page; the
// audit log paged older and newer without a repeat; every table inside the page's column at
// 1280 px and at 375 px; the dashboard's chart with labelled axes and a legend; all of it in
// German for a German browser. Runs on the invite-only group server, whose admin is `chief`.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { GROUP, closeBrowser, codeSentBy, device, uniquePhone } from './helpers.js';

const T = { timeout: 120_000 };

/** An admin's browser, signed in as the group's admin. */
async function signedInAdmin(t, options = {}) {
    const admin = await device(t, { label: 'admin', server: GROUP, ...options });
    await admin.goto('login page', '/login');
    const code = await codeSentBy(GROUP, GROUP.adminPhone, () => admin.submit('login submitted', { phone: GROUP.adminPhone }));
    await admin.submit('code entered', { code });
    assert.equal(admin.where().path, '/account');
    return admin;
}

/** Clicks the console's navigation link `name` and checks that it marks that page alone. */
async function open(admin, name, path) {
    const nav = admin.page.getByRole('navigation', { name: /Admin console|Verwaltung/ });
    await admin.navigate(name, () => nav.getByRole('link', { name }).click());
    assert.equal(admin.where().path, path);
    const current = nav.locator('[aria-current="page"]');
    assert.equal(await current.count(), 1);
    assert.equal((await current.innerText()).trim(), name);
}

/** How wide the page, the audit table and its box are, and the page's column. */
function widths(page, table) {
    return page.evaluate((selector) => {
        const t = document.querySelector(selector);
        return {
            page: document.documentElement.scrollWidth,
            viewport: window.innerWidth,
            table: t.scrollWidth,
            box: t.parentElement.clientWidth,
            column: document.querySelector('main').clientWidth,
        };
    }, table);
}

function assertFits(w, what) {
    assert.ok(w.page <= w.viewport, `${what}: the page is ${w.page} px wide in a ${w.viewport} px window`);
    assert.ok(w.table <= w.box && w.box <= w.column, `${what}: the table is ${w.table} px in a box of ${w.box} px, column ${w.column} px`);
}

/** The subjects of the rows of services created (`service_created`), top to bottom. */
async function servicesListed(admin) {
    return admin.page.locator('table.audit tr[data-kind="service_created"] td[data-label="Concerning"]').allInnerTexts();
}

describe('admin console', { concurrency: 1 }, () => {
    after(closeBrowser);

    it('console: the navigation leads to each page; the audit log pages older and newer; tables fit; the chart is labelled', T, async (t) => {
        // More than a page of events: 60 services created through the API.
        for (let i = 0; i < 60; i++) {
            const r = await fetch(`${GROUP.base}/api/services`, {
                method: 'POST',
                headers: { authorization: `Bearer ${GROUP.secret}`, 'content-type': 'application/json' },
                body: JSON.stringify({ name: `paging-${Date.now()}-${i}` }),
            });
            assert.equal(r.status, 201, await r.text());
        }
        const admin = await signedInAdmin(t);
        await admin.page.setViewportSize({ width: 1280, height: 900 });
        await admin.goto('console', '/admin');
        assert.equal(admin.where().path, '/admin/members');
        await open(admin, 'Invites', '/admin/invites');
        await admin.submit('invite sent', { phone: uniquePhone() });
        assert.equal(admin.where().path, '/admin/invites');
        assertFits(await widths(admin.page, 'table.invites'), 'invites at 1280 px');
        await open(admin, 'Members', '/admin/members');
        assertFits(await widths(admin.page, 'table.members'), 'members at 1280 px');
        await open(admin, 'Audit log', '/admin/audit');

        // Fifty events to a page; the older page follows on without a repeat, the newer one leads back.
        const rows = admin.page.locator('table.audit tbody tr');
        assert.equal(await rows.count(), 50);
        assertFits(await widths(admin.page, 'table.audit'), 'audit log at 1280 px');
        const first = await servicesListed(admin);
        await admin.navigate('older', () => admin.page.getByRole('link', { name: /Older/ }).click());
        assert.match(admin.where().search, /^\?before=/);
        const second = await servicesListed(admin);
        assert.ok(first.length + second.length >= 60, `${first.length} + ${second.length} services listed`);
        assert.deepEqual(first.filter((s) => second.includes(s)), [], 'no event on both pages');
        await admin.navigate('newer', () => admin.page.getByRole('link', { name: /Newer/ }).click());
        assert.deepEqual(await servicesListed(admin), first);

        // A filter goes along to the next page.
        await admin.submit('audit filtered', { kind: 'service_created' });
        assert.equal(await rows.count(), 50);
        await admin.navigate('older filtered', () => admin.page.getByRole('link', { name: /Older/ }).click());
        assert.match(admin.where().search, /kind=service_created&before=/);
        assert.equal(await admin.page.locator('table.audit tbody tr:not([data-kind="service_created"])').count(), 0);

        // On a phone's screen, the tables are cards inside the column and nothing is wider than the screen.
        await admin.page.setViewportSize({ width: 375, height: 800 });
        await admin.shot('audit log at 375 px');
        assertFits(await widths(admin.page, 'table.audit'), 'audit log at 375 px');
        await open(admin, 'Members', '/admin/members');
        assertFits(await widths(admin.page, 'table.members'), 'members at 375 px');
        await open(admin, 'Dashboard', '/admin/dashboard');
        assertFits(await widths(admin.page, 'table.countries'), 'dashboard at 375 px');

        // The chart: large, its axes labelled with units, a legend for both series.
        await admin.page.setViewportSize({ width: 1280, height: 900 });
        await admin.shot('dashboard at 1280 px');
        const chart = admin.page.getByRole('img', { name: 'Codes started and approved per hour' });
        assert.equal(await chart.count(), 1);
        const box = await chart.boundingBox();
        assert.ok(box.width >= 900 && box.height >= 350, `the chart is ${box.width} × ${box.height} px`);
        const labels = await chart.locator('text').allTextContents();
        for (const label of ['Codes per hour', 'Hour (UTC)', 'Started', 'Approved', '0']) {
            assert.ok(labels.includes(label), `the chart says "${label}": ${labels.join(' | ')}`);
        }
        assert.ok(labels.filter((l) => /^\d\d:00$/.test(l)).length >= 8, 'hours under the bars');
        assert.equal(await chart.locator('g.legend').count(), 2);
    });

    it('apps: an admin adds an OpenID client, sees its secret once, and deletes it', T, async (t) => {
        const admin = await signedInAdmin(t);
        await admin.goto('console', '/admin');
        await open(admin, 'Apps (OpenID)', '/admin/apps');
        await admin.submit('add app', { name: 'Wiki', redirect_uris: 'https://wiki.example/cb' });
        const secret = (await admin.page.locator('#client-secret').innerText()).trim();
        assert.match(secret, /^cs_[A-Za-z0-9_-]{43}$/);
        assert.match(await admin.text(), /shown only this once/);
        const id = (await admin.page.locator('#client-id').innerText()).trim();
        // The list shows the client, never its secret again.
        await admin.goto('apps again', '/admin/apps');
        const row = admin.page.locator(`tr[data-client="${id}"]`);
        assert.equal(await row.count(), 1);
        assert.ok(!(await admin.text()).includes(secret));
        await admin.navigate('delete app', () => row.getByRole('button', { name: 'Delete' }).click());
        assert.equal(await admin.page.locator(`tr[data-client="${id}"]`).count(), 0);
        assert.match(await admin.text(), /The app was deleted/);
    });

    it('german: a German browser gets the console in German', T, async (t) => {
        const admin = await signedInAdmin(t, { locale: 'de-DE' });
        await admin.goto('console', '/admin');
        const nav = admin.page.getByRole('navigation', { name: 'Verwaltung' });
        assert.deepEqual((await nav.getByRole('link').allInnerTexts()).map((s) => s.trim()), ['Mitglieder', 'Einladungen', 'Apps (OpenID)', 'Protokoll', 'Übersicht']);
        assert.match(await admin.text(), /Zuletzt aktiv/);
        await open(admin, 'Einladungen', '/admin/invites');
        assert.match(await admin.text(), /Nummer einladen[\s\S]*Einladungscode/);
        await open(admin, 'Protokoll', '/admin/audit');
        const heads = (await admin.page.locator('table.audit thead th').allInnerTexts()).map((s) => s.trim());
        assert.deepEqual(heads, ['Wann (UTC)', 'Was', 'Wer', 'Betrifft', 'Von']);
        assert.ok((await admin.page.getByRole('link', { name: /Ältere/ }).count()) === 1, 'a link to older events');
        await open(admin, 'Übersicht', '/admin/dashboard');
        const chart = admin.page.getByRole('img', { name: 'Gestartete und bestätigte Codes pro Stunde' });
        const labels = await chart.locator('text').allTextContents();
        for (const label of ['Codes pro Stunde', 'Stunde (UTC)', 'Gestartet', 'Bestätigt']) {
            assert.ok(labels.includes(label), `the chart says "${label}": ${labels.join(' | ')}`);
        }
    });
});
