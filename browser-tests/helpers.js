// Shared pieces of the browser tests: one headless Debian Chromium per test process, a browser
// context per test (or per simulated device), screenshots of every page visited, form filling
// and submission the way a person does it, and the dev outbox for the codes.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function env(name) {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set: run the tests with browser-tests/run.sh`);
    return v;
}

/** The phonegate server the tests use, and one with PHONEGATE_ACCOUNTS__CODE_TTL=1m. */
export const MAIN = { base: env('PHONEGATE_BASE'), secret: env('PHONEGATE_SECRET') };
export const SHORT_TTL = { base: env('PHONEGATE_SHORT_TTL_BASE'), secret: env('PHONEGATE_SHORT_TTL_SECRET') };
/** An invite-only group, with an admin made by `phonegate admin create`, that takes signed Twilio webhooks. */
/** A server with the silent-verification simulator (`PHONEGATE_SILENT_SIMULATOR=true`). */
export const SILENT = { base: env('PHONEGATE_SILENT_BASE'), secret: env('PHONEGATE_SILENT_SECRET') };
export const GROUP = {
    base: env('PHONEGATE_GROUP_BASE'),
    secret: env('PHONEGATE_GROUP_SECRET'),
    adminPhone: env('PHONEGATE_GROUP_ADMIN_PHONE'),
    twilio: { account: env('PHONEGATE_GROUP_TWILIO_ACCOUNT'), token: env('PHONEGATE_GROUP_TWILIO_TOKEN') },
};
/** A server with the Auth0 step for the tenant `tenant.example` (auth0.test.js): its outbox key and the shared secret. */
export const AUTH0 = { base: env('PHONEGATE_AUTH0_BASE'), secret: env('PHONEGATE_AUTH0_SECRET'), tenantSecret: env('PHONEGATE_AUTH0_TENANT_SECRET') };
const ARTIFACTS = process.env.BROWSER_ARTIFACTS ?? path.resolve(import.meta.dirname ?? '.', '../target/browser-artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

// Without the background-networking flags Chromium keeps trying Google's hosts, which this
// machine's closed network refuses.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let launched;
export function browser() {
    launched ??= chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    return launched;
}
export async function closeBrowser() {
    const b = await launched?.catch(() => null);
    await b?.close();
}

// Numbers and usernames unique per run: 6 digits of the clock and a counter.
const runId = String(Date.now() % 1_000_000).padStart(6, '0');
let counter = 0;
export function uniquePhone() {
    counter += 1;
    return `+49151${runId}${String(counter).padStart(2, '0')}`;
}
export function uniqueUsername(prefix) {
    counter += 1;
    return `${prefix}-${runId}-${counter}`;
}

const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A fresh browser context (no cookies) with one page, closed when test `t` ends (close() ends it
 * earlier). Every navigation made through goto(),
 * submit() or navigate() is followed by a full-page screenshot named TEST[-LABEL]-NN-STEP.png.
 */
export async function device(t, { label = '', server = MAIN, base = server.base, locale = 'en-US', js = true } = {}) {
    const context = await (await browser()).newContext({ baseURL: base, locale, javaScriptEnabled: js });
    t.after(() => context.close()); // also when the test fails half-way
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(20_000);
    const page = await context.newPage();
    // Tests are named "key: what it checks"; screenshots are named by the key.
    const prefix = slug(t.name.split(':')[0]) + (label ? `-${slug(label)}` : '');
    let step = 0;

    const d = {
        context, page, server, base,
        /** The path and query of the page shown, e.g. "/login/code?flow=…". */
        where: () => { const u = new URL(page.url()); return { path: u.pathname, search: u.search, url: u }; },
        text: () => page.locator('body').innerText(),
        async shot(name) {
            step += 1;
            const file = path.join(ARTIFACTS, `${prefix}-${String(step).padStart(2, '0')}-${slug(name)}.png`);
            await page.screenshot({ path: file, fullPage: true });
            return file;
        },
        async goto(name, url) {
            const res = await page.goto(url);
            await d.shot(name);
            return res;
        },
        /** Runs `action` (a click) and waits for the main frame's next document to load. */
        async navigate(name, action) {
            const nav = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() });
            await action();
            await nav;
            await page.waitForLoadState('load');
            await d.shot(name);
        },
        /**
         * Fills `fields` ({name: value}) in the form that holds the first of them and presses that
         * form's submit button.
         */
        async submit(name, fields) {
            const names = Object.keys(fields);
            const form = d.formWith(`[name="${names[0]}"]`);
            for (const n of names) await form.locator(`[name="${n}"]`).fill(fields[n]);
            await d.navigate(name, () => submitButton(form).click());
        },
        /** The one form on the page that contains `selector`. */
        formWith(selector) {
            return page.locator('form').filter({ has: page.locator(selector) });
        },
        async close() { await context.close(); },
    };
    return d;
}

export function submitButton(form) {
    return form.locator('button[type=submit], input[type=submit], button:not([type])').first();
}

/** Messages in the dev outbox for `phone`, newest first. */
export async function outbox(server, phone) {
    const res = await fetch(`${server.base}/api/dev/outbox?to=${encodeURIComponent(phone)}`, {
        headers: { authorization: `Bearer ${server.secret}` },
    });
    assert.equal(res.status, 200, `GET /api/dev/outbox: ${res.status} ${await res.clone().text()}`);
    return (await res.json()).messages;
}

/**
 * Runs `action` and returns the code of the message it sent to `phone` (the last word of the
 * body), waiting up to 10 s for it.
 */
export async function codeSentBy(server, phone, action) {
    const before = (await outbox(server, phone)).length;
    await action();
    for (let i = 0; i < 100; i++) {
        const messages = await outbox(server, phone);
        if (messages.length > before) return messages[0].body.trim().split(' ').pop();
        await sleep(100);
    }
    throw new Error(`no new message to ${phone} in the dev outbox`);
}

/**
 * Delivers an inbound SMS from `from` to the server's Twilio webhook, as Twilio does: form-encoded,
 * signed with the account's token over the public URL and the sorted parameters
 * (X-Twilio-Signature), or unsigned with `signed: false`. Returns the response.
 */
export async function textFrom(server, from, body, { signed = true } = {}) {
    const url = `${server.base}/webhooks/twilio/sms`;
    const params = { AccountSid: server.twilio.account, MessageSid: `SM${Date.now()}${counter++}`, From: from, To: '+15005550006', Body: body };
    const payload = url + Object.keys(params).sort().map((k) => k + params[k]).join('');
    const signature = createHmac('sha1', server.twilio.token).update(payload).digest('base64');
    return fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(signed ? { 'x-twilio-signature': signature } : {}) },
        body: new URLSearchParams(params),
    });
}

/** Asserts the browser session cookie's flags (plain HTTP: not Secure, no __Host- prefix). */
export async function assertSessionCookie(context) {
    const cookies = await context.cookies();
    const c = cookies.find((c) => c.name === 'phonegate_session');
    assert.ok(c, `no phonegate_session cookie; cookies: ${cookies.map((c) => c.name).join(', ') || 'none'}`);
    assert.equal(c.httpOnly, true, 'phonegate_session must be HttpOnly');
    assert.equal(c.sameSite, 'Lax', 'phonegate_session must be SameSite=Lax');
    assert.equal(c.path, '/');
    assert.equal(c.secure, false, 'over plain HTTP the cookie cannot be Secure');
    assert.match(c.value, /^\S{32,}$/, 'the session id should be long and random');
}

export const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
