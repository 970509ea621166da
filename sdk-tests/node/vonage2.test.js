// phonegate's Vonage Verify v2 API, driven by the official @vonage/server-sdk (`vonage.verify2`),
// which always signs its calls with an application JWT (RS256, the application's private key).
// The SDK throws a VetchError carrying the fetch Response for any refusal (the tests read the
// Vonage error body from it); nextWorkflow and cancel swallow errors into `false`, so the tests
// see their statuses through the same client's sendPostRequest/sendDeleteRequest. The
// application's status URL is a local server here: its callbacks are checked with @vonage/jwt's
// verifySignature and the signature secret.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { Vonage } from '@vonage/server-sdk';
import { verifySignature } from '@vonage/jwt';
import { VetchError } from '@vonage/vetch';
import { BASE, codeOf, freshNumber, latestCode, outboxBody, outboxMessages, wrongCode } from './helpers.js';

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (sdk-tests/run.sh creates the Verify v2 applications)`);
  return value;
}

const APP_ID = need('SDK_V2_NODE_APP_ID');
const PRIVATE_KEY = need('SDK_V2_PRIVATE_KEY');
const SIGNATURE_SECRET = need('SDK_V2_SIGNATURE_SECRET');
const CALLBACK_PORT = Number(need('SDK_V2_NODE_CALLBACK_PORT'));

const vonage = new Vonage({ applicationId: APP_ID, privateKey: PRIVATE_KEY }, { apiHost: BASE });
const verify2 = vonage.verify2;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Awaits a call the SDK must refuse; returns the HTTP status and the Vonage error body. */
async function refusal(promise) {
  const err = await promise.then((v) => assert.fail(`expected a refusal, got ${JSON.stringify(v)}`), (e) => e);
  assert.ok(err instanceof VetchError, `expected a VetchError, got ${err}`);
  const text = await err.response.text();
  return { status: err.response.status, body: text ? JSON.parse(text) : null };
}

/** A fresh number as Vonage writes it (no '+'). */
const freshTo = () => freshNumber().slice(1);

/** Starts an SMS verification for `to`; returns its request id. */
async function startSms(to, extra = {}) {
  const { requestId, checkUrl } = await verify2.newRequest({ brand: 'Acme', workflow: [{ channel: 'sms', to }], ...extra });
  assert.match(requestId, UUID);
  assert.equal(checkUrl, undefined);
  return requestId;
}

/** Polls the dev outbox until it holds `count` messages to `to` (E.164 without '+'); newest first. */
async function messages(to, count, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await outboxMessages('+' + to);
    if (found.length >= count || Date.now() > deadline) {
      assert.equal(found.length, count, `messages to +${to}: ${JSON.stringify(found)}`);
      return found;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The device's side of silent auth: opens check_url with the simulator's answer, following redirects. */
async function openCheckUrl(checkUrl, sim = 'match') {
  const url = new URL(checkUrl);
  url.searchParams.set('sim', sim);
  const res = await fetch(url);
  assert.equal(res.status, 200, `${url} ended at ${res.url} with HTTP ${res.status}`);
  return res.json();
}

/** The application's status URL: records every callback and lets a test await one. */
class CallbackSink {
  received = [];
  waiters = [];

  async listen(port) {
    this.server = createServer((req, res) => {
      const chunks = [];
      req.on('data', (chunk) => chunks.push(chunk));
      req.on('end', () => {
        res.writeHead(200).end();
        const raw = Buffer.concat(chunks);
        let body = null;
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          // Kept as raw only; a predicate will not match it.
        }
        const callback = { method: req.method, path: req.url, headers: req.headers, raw, body };
        this.received.push(callback);
        for (const waiter of this.waiters.filter((w) => w.predicate(callback))) waiter.settle(callback);
      });
    });
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', resolve);
    });
  }

  /** The first callback (already received or still to come) that satisfies `predicate`. */
  waitFor(predicate, timeoutMs = 20000) {
    const seen = this.received.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate,
        settle: (callback) => {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(callback);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const bodies = this.received.map((c) => c.body ?? c.raw.toString('utf8'));
        reject(new Error(`no matching callback within ${timeoutMs} ms; received: ${JSON.stringify(bodies)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('Vonage Verify v2 through @vonage/server-sdk (application JWT)', () => {
  const sink = new CallbackSink();
  before(() => sink.listen(CALLBACK_PORT));
  after(() => sink.close());

  test('an SMS workflow: the code from the text completes the request', async () => {
    const to = freshTo();
    const requestId = await startSms(to);
    const [sms] = await messages(to, 1);
    assert.equal(sms.channel, 'sms');
    assert.match(sms.body, /Acme/);
    assert.equal(await verify2.checkCode(requestId, codeOf(sms)), 'completed');
  });

  test('a wrong code is HTTP 400 with a Vonage error body; the right code still completes', async () => {
    const to = freshTo();
    const requestId = await startSms(to);
    const code = await latestCode(to);

    const wrong = await refusal(verify2.checkCode(requestId, wrongCode(code)));
    assert.equal(wrong.status, 400);
    for (const key of ['type', 'title', 'detail', 'instance']) {
      assert.equal(typeof wrong.body[key], 'string', `error body ${JSON.stringify(wrong.body)} has ${key}`);
    }
    assert.equal(await verify2.checkCode(requestId, code), 'completed');
  });

  test('next workflow on [sms, voice] places the call; with no step left it is 409', async () => {
    const to = freshTo();
    const { requestId } = await verify2.newRequest({ brand: 'Acme', workflow: [{ channel: 'sms', to }, { channel: 'voice', to }] });
    const [sms] = await messages(to, 1);
    assert.equal(sms.channel, 'sms');

    assert.equal(await verify2.nextWorkflow(requestId), true);
    const [call, first] = await messages(to, 2);
    assert.equal(call.channel, 'voice');
    assert.equal(first.channel, 'sms');

    // The SDK turns any refusal of next_workflow into `false`; its client shows the status.
    assert.equal(await verify2.nextWorkflow(requestId), false);
    const none = await refusal(verify2.sendPostRequest(`${BASE}/v2/verify/${requestId}/next_workflow`));
    assert.equal(none.status, 409);
    assert.equal(typeof none.body.title, 'string');

    // One code for the whole request: the text's code completes it after the call.
    assert.equal(await verify2.checkCode(requestId, codeOf(sms)), 'completed');
  });

  test('next workflow for an unknown request is 404', async () => {
    const unknown = await refusal(verify2.sendPostRequest(`${BASE}/v2/verify/${randomUUID()}/next_workflow`));
    assert.equal(unknown.status, 404);
  });

  test('cancel: the SDK reports success, the code is then 404, and the number is free again', async () => {
    const to = freshTo();
    const requestId = await startSms(to);
    const code = await latestCode(to);

    assert.equal(await verify2.cancel(requestId), true);
    assert.equal((await refusal(verify2.checkCode(requestId, code))).status, 404);
    assert.equal(await verify2.cancel(requestId), false, 'a cancelled request cannot be cancelled again');

    // cancel() hides the status; the SDK's client shows the 204.
    const again = await startSms(to);
    assert.notEqual(again, requestId);
    const res = await verify2.sendDeleteRequest(`${BASE}/v2/verify/${again}`);
    assert.equal(res.status, 204);
    assert.equal((await refusal(verify2.checkCode(again, await latestCode(to)))).status, 404);
  });

  test('a second request for a number with one in progress is 409 and names the first', async () => {
    const to = freshTo();
    const requestId = await startSms(to);
    const conflict = await refusal(verify2.newRequest({ brand: 'Acme', workflow: [{ channel: 'sms', to }] }));
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.request_id, requestId);
    for (const key of ['type', 'title', 'detail', 'instance']) {
      assert.equal(typeof conflict.body[key], 'string', `error body ${JSON.stringify(conflict.body)} has ${key}`);
    }
  });

  test('invalid parameters are 422 with invalid_parameters naming them', async () => {
    const to = freshTo();
    const names = (body) => (body.invalid_parameters ?? []).map((p) => p.name);

    const noBrand = await refusal(verify2.newRequest({ workflow: [{ channel: 'sms', to }] }));
    assert.equal(noBrand.status, 422);
    assert.ok(names(noBrand.body).some((n) => n.includes('brand')), JSON.stringify(noBrand.body));
    for (const p of noBrand.body.invalid_parameters) assert.equal(typeof p.reason, 'string');

    const shortCode = await refusal(verify2.newRequest({ brand: 'Acme', codeLength: 3, workflow: [{ channel: 'sms', to }] }));
    assert.equal(shortCode.status, 422);
    assert.ok(names(shortCode.body).some((n) => n.includes('code_length')), JSON.stringify(shortCode.body));

    // Refused requests send nothing and hold no number.
    assert.deepEqual(await outboxMessages('+' + to), []);
    await startSms(to);
  });

  test('a custom code is the one sent and the one that checks', async () => {
    const to = freshTo();
    const requestId = await startSms(to, { code: 'ab12cd' });
    assert.match(await outboxBody(to), /\bab12cd\b/);
    assert.equal(await verify2.checkCode(requestId, 'ab12cd'), 'completed');
  });

  test('silent auth first: check_url, the device follows it to the code, which completes the request', async () => {
    const to = freshTo();
    const { requestId, checkUrl } = await verify2.newRequest({
      brand: 'Acme',
      workflow: [{ channel: 'silent_auth', to }, { channel: 'sms', to }],
    });
    assert.match(requestId, UUID);
    assert.match(checkUrl, /^https:\/\//);

    const device = await openCheckUrl(checkUrl);
    assert.equal(device.request_id, requestId);
    assert.equal(typeof device.code, 'string');
    assert.equal(await verify2.checkCode(requestId, device.code), 'completed');

    // The status URL was told of the pending check, with the same URL.
    const event = await sink.waitFor((c) => c.body?.request_id === requestId && c.body.type === 'event');
    assert.equal(event.body.channel, 'silent_auth');
    assert.equal(event.body.status, 'action_pending');
    assert.deepEqual(event.body.action, { type: 'check', check_url: checkUrl });
  });

  test('templates: create, page through, get, rename; an SMS fragment is used by a request naming the template', async () => {
    const suffix = randomUUID().slice(0, 8);
    const first = await verify2.createTemplate({ name: `node_tpl_${suffix}_a` });
    const second = await verify2.createTemplate({ name: `node_tpl_${suffix}_b` });
    assert.match(first.templateId, UUID);
    assert.equal(first.name, `node_tpl_${suffix}_a`);
    assert.equal(first.isDefault, false);

    const page = await verify2.getTemplatePage({ page: 1, pageSize: 1 });
    assert.equal(page.page, 1);
    assert.equal(page.pageSize, 1);
    assert.equal(page.templates.length, 1);
    assert.ok(page.totalItems >= 2, `total_items ${page.totalItems}`);
    assert.equal(page.totalPages, page.totalItems);
    assert.ok(page.links?.next, 'a first page of several links the next');
    const last = await verify2.getTemplatePage({ page: page.totalPages, pageSize: 1 });
    assert.equal(last.templates.length, 1);
    assert.ok(!last.links?.next, 'the last page links no next one');

    const seen = [];
    for await (const template of verify2.listAllTemplates({ pageSize: 1 })) {
      seen.push(template.templateId);
      assert.ok(seen.length <= page.totalItems, 'listAllTemplates ends after the last page');
    }
    assert.ok(seen.includes(first.templateId) && seen.includes(second.templateId), JSON.stringify(seen));

    const fetched = await verify2.getTemplate(first.templateId);
    assert.equal(fetched.templateId, first.templateId);
    assert.equal(fetched.name, first.name);
    const renamed = await verify2.updateTemplate({ templateId: first.templateId, name: `node_tpl_${suffix}_c` });
    assert.equal(renamed.name, `node_tpl_${suffix}_c`);
    assert.equal((await verify2.getTemplate(first.templateId)).name, `node_tpl_${suffix}_c`);

    const fragment = await verify2.createTemplateFragment(first.templateId, {
      channel: 'sms',
      locale: 'en-us',
      text: 'Node template says ${code}',
    });
    assert.match(fragment.templateFragmentId, UUID);
    assert.equal(fragment.channel, 'sms');
    assert.equal(fragment.locale, 'en-us');
    assert.equal(fragment.text, 'Node template says ${code}');

    const fragments = await verify2.getTemplateFragmentPage({ templateId: first.templateId, page: 1, pageSize: 10 });
    assert.equal(fragments.totalItems, 1);
    assert.deepEqual(fragments.fragments.map((f) => f.templateFragmentId), [fragment.templateFragmentId]);

    const updated = await verify2.updateTemplateFragment(first.templateId, {
      templateFragmentId: fragment.templateFragmentId,
      text: 'Node template now says ${code}',
    });
    assert.equal(updated.text, 'Node template now says ${code}');
    const got = await verify2.getTemplateFragment(first.templateId, fragment.templateFragmentId);
    assert.equal(got.text, 'Node template now says ${code}');
    assert.equal(got.locale, 'en-us');

    const to = freshTo();
    const requestId = await startSms(to, { templateId: first.templateId, locale: 'en-us' });
    const body = (await outboxBody(to)).trim();
    const [, code] = body.match(/^Node template now says (\d{4,10})$/) ?? assert.fail(`the text uses the fragment: ${body}`);
    assert.equal(await verify2.checkCode(requestId, code), 'completed');

    assert.equal(await verify2.deleteTemplateFragment(first.templateId, fragment.templateFragmentId), true);
    assert.equal((await refusal(verify2.getTemplateFragment(first.templateId, fragment.templateFragmentId))).status, 404);
    assert.equal(await verify2.deleteTemplate(first.templateId), true);
    assert.equal(await verify2.deleteTemplate(second.templateId), true);
    assert.equal((await refusal(verify2.getTemplate(first.templateId))).status, 404);
  });

  test('the status URL gets a summary callback signed with the signature secret', async () => {
    const to = freshTo();
    const requestId = await startSms(to, { clientRef: 'node-callback' });
    assert.equal(await verify2.checkCode(requestId, await latestCode(to)), 'completed');

    const callback = await sink.waitFor(
      (c) => c.body?.request_id === requestId && c.body.type === 'summary' && c.body.status === 'completed',
    );
    assert.equal(callback.method, 'POST');
    assert.equal(callback.path, '/vonage/status');
    assert.match(callback.headers['content-type'] ?? '', /^application\/json/);
    const [scheme, token] = (callback.headers.authorization ?? '').split(' ');
    assert.equal(scheme, 'Bearer');
    assert.equal(verifySignature(token, SIGNATURE_SECRET), true);
    assert.equal(verifySignature(token, SIGNATURE_SECRET + 'x'), false);

    const [header, claims] = token.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
    assert.equal(header.alg, 'HS256');
    assert.equal(claims.payload_hash, createHash('sha256').update(callback.raw).digest('hex'));
    assert.equal(typeof claims.iat, 'number');
    assert.equal(typeof claims.jti, 'string');

    assert.equal(callback.body.client_ref, 'node-callback');
    assert.equal(typeof callback.body.triggered_at, 'string');
    assert.deepEqual(callback.body.workflow.map((w) => w.channel), ['sms']);
  });

  test('a JWT signed with another key, or replayed (same jti), is 401', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = new Vonage(
      { applicationId: APP_ID, privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }) },
      { apiHost: BASE },
    ).verify2;
    const to = freshTo();
    assert.equal((await refusal(forged.newRequest({ brand: 'Acme', workflow: [{ channel: 'sms', to }] }))).status, 401);
    assert.deepEqual(await outboxMessages('+' + to), []);

    const replaying = new Vonage(
      { applicationId: APP_ID, privateKey: PRIVATE_KEY, jwtOptions: { jti: randomUUID() } },
      { apiHost: BASE },
    ).verify2;
    const { requestId } = await replaying.newRequest({ brand: 'Acme', workflow: [{ channel: 'sms', to }] });
    const replayed = await refusal(replaying.checkCode(requestId, await latestCode(to)));
    assert.equal(replayed.status, 401);
    assert.equal(await verify2.checkCode(requestId, await latestCode(to)), 'completed');
  });
});
