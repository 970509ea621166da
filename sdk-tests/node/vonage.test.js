// phonegate's Vonage Verify v1 ("legacy" verify) API, driven by the official @vonage/server-sdk.
// phonegate answers HTTP 200 with Vonage's status strings; the SDK returns those bodies (camelCased
// copies of the keys added) instead of throwing, so the tests assert on `status` and `errorText`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Vonage } from '@vonage/server-sdk';
import { BASE, KEY_ID, SECRET, freshNumber, latestCode, wrongCode } from './helpers.js';

const vonage = new Vonage({ apiKey: KEY_ID, apiSecret: SECRET }, { apiHost: BASE });
const verify = vonage.verify;

/** Starts a verification for a fresh number (Vonage's format: no '+'); returns its id and code. */
async function start() {
  const number = freshNumber().slice(1);
  const started = await verify.start({ number, brand: 'Acme' });
  assert.equal(started.status, '0', started.errorText);
  assert.match(started.requestId, /^[0-9a-f]{32}$/);
  return { number, requestId: started.requestId, code: await latestCode(number) };
}

const searchStatus = async (requestId) => (await verify.search(requestId)).status;

describe('Vonage Verify v1 through @vonage/server-sdk', () => {
  test('starts a verification, refuses a concurrent one, and reports it in progress', async () => {
    const { number, requestId, code } = await start();
    assert.match(code, /^\d{4,6}$/);

    const again = await verify.start({ number, brand: 'Acme' });
    assert.equal(again.status, '10');
    assert.equal(again.requestId, requestId);
    assert.equal(again.errorText, 'Concurrent verifications to the same number are not allowed');

    const found = await verify.search(requestId);
    assert.equal(found.status, 'IN PROGRESS');
    assert.equal(found.requestId, requestId);
    assert.equal(found.number, number);

  });

  test('workflow 2 (SMS, SMS, TTS): trigger_next_event sends each next event, then 19', async () => {
    const number = freshNumber().slice(1);
    const started = await verify.start({ number, brand: 'Acme', workflowId: 2, nextEventWait: 120, pinExpiry: 360 });
    assert.equal(started.status, '0', started.errorText);
    const { requestId } = started;
    const code = await latestCode(number);

    for (let i = 0; i < 2; i += 1) {
      const next = await verify.trigger(requestId);
      assert.equal(next.status, '0', next.errorText);
      assert.equal(next.command, 'trigger_next_event');
    }
    const last = await verify.trigger(requestId);
    assert.equal(last.status, '19');
    assert.equal(last.errorText, 'No more events are left to execute for the request');

    const found = await verify.search(requestId);
    assert.deepEqual(found.events.map((e) => e.type), ['sms', 'sms', 'tts']);
    // One code for every event: the first text's code still checks after the call.
    const right = await verify.check(requestId, code);
    assert.equal(right.status, '0', right.errorText);
  });

  test('workflow 6 (SMS only) has no next event: 19', async () => {
    const number = freshNumber().slice(1);
    const started = await verify.start({ number, brand: 'Acme', workflowId: 6 });
    assert.equal(started.status, '0', started.errorText);
    const next = await verify.trigger(started.requestId);
    assert.equal(next.status, '19');
  });

  test('wrong code is 16, right code succeeds, a later check is 6 (not found)', async () => {
    const { requestId, code } = await start();

    const wrong = await verify.check(requestId, wrongCode(code));
    assert.equal(wrong.status, '16');
    assert.equal(wrong.errorText, 'The code inserted does not match the expected value');

    const right = await verify.check(requestId, code);
    assert.equal(right.status, '0', right.errorText);
    assert.equal(right.requestId, requestId);
    assert.ok(right.eventId, 'a successful check names its event');
    assert.equal(await searchStatus(requestId), 'SUCCESS');

    const after = await verify.check(requestId, code);
    assert.equal(after.status, '6');
    assert.equal(after.errorText, 'The Vonage platform was unable to process this message for the following reason: the request was not found or it has been verified already');
  });

  test('locks out on the 3rd wrong code (17); the right code is then refused too', async () => {
    const { requestId, code } = await start();
    const bad = wrongCode(code);

    assert.equal((await verify.check(requestId, bad)).status, '16');
    assert.equal((await verify.check(requestId, bad)).status, '16');
    const third = await verify.check(requestId, bad);
    assert.equal(third.status, '17');
    assert.equal(third.errorText, 'The wrong code was provided too many times');

    const right = await verify.check(requestId, code);
    assert.equal(right.status, '17');
    assert.equal(await searchStatus(requestId), 'FAILED');
  });

  test('cancels a verification, after which its code is refused', async () => {
    const { requestId, code } = await start();

    const canceled = await verify.cancel(requestId);
    assert.equal(canceled.status, '0', canceled.errorText);
    assert.equal(canceled.command, 'cancel');
    assert.equal(await searchStatus(requestId), 'CANCELLED');

    const check = await verify.check(requestId, code);
    assert.equal(check.status, '6');
  });

  test('search for an unknown request id is 101', async () => {
    const found = await verify.search('0123456789abcdef0123456789abcdef');
    assert.equal(found.status, '101');
    assert.equal(found.errorText, 'No response found');
  });
});
