// Twilio Verify v2 and Vonage Verify v1 details that apps rely on, through the official SDKs:
// the SDK built from an `AC…` account SID and the key secret only (the base URL is all an app
// changes), services listed and re-created at boot, codes of another length, `VL…` attempt sids,
// locales, Android's AppHash, custom codes, PSD2 amount and payee, landlines; Vonage's 4-digit
// default PIN and malformed codes that cost an attempt.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import twilio from 'twilio';
import { Vonage } from '@vonage/server-sdk';
import { BANK, BASE, KEY_ID, SECRET, freshNumber, latestCode, outboxBody } from './helpers.js';

const TWILIO_VERIFY = 'https://verify.twilio.com';

/** verify.twilio.com swapped for phonegate; the paging URLs phonegate writes already point there. */
class PhonegateRequestClient extends twilio.RequestClient {
  request(opts) {
    const uri = opts.uri.startsWith(TWILIO_VERIFY) ? BASE + opts.uri.slice(TWILIO_VERIFY.length) : opts.uri;
    assert.ok(uri.startsWith(BASE + '/'), `unexpected request to ${opts.uri}`);
    return super.request({ ...opts, uri });
  }
}

// As `require('twilio')(accountSid, authToken)`: the key's `AC…` alias and its secret.
const client = twilio('AC' + KEY_ID.slice(2), SECRET, { httpClient: new PhonegateRequestClient() });

async function restError(promise) {
  const err = await promise.then((v) => assert.fail(`expected a RestException, got ${JSON.stringify(v)}`), (e) => e);
  assert.ok(err instanceof twilio.RestException, `expected a RestException, got ${err}`);
  return err;
}

describe('Twilio fidelity through the twilio SDK', () => {
  const name = `Fidelity ${randomUUID().slice(0, 8)}`;
  let service;
  before(async () => {
    service = await client.verify.v2.services.create({ friendlyName: name, customCodeEnabled: true, psd2Enabled: true });
  });
  const verify = () => client.verify.v2.services(service.sid);

  test('an app that creates its service at every boot gets the same one; services list with paging', async () => {
    const again = await client.verify.v2.services.create({ friendlyName: name, customCodeEnabled: true, psd2Enabled: true });
    assert.equal(again.sid, service.sid);
    assert.equal(again.customCodeEnabled, true);
    assert.equal(again.psd2Enabled, true);
    const listed = await client.verify.v2.services.list({ pageSize: 2 });
    assert.ok(listed.some((s) => s.sid === service.sid), 'the SDK pages through every service');
    const err = await restError(client.verify.v2.services.create({ friendlyName: `x ${randomUUID()}`, lookupEnabled: true }));
    assert.equal(err.code, 60200);
    assert.match(err.message, /LookupEnabled/);
  });

  test('a code of another length is a wrong code; attempts have VL sids', async () => {
    const to = freshNumber();
    const started = await verify().verifications.create({ to, channel: 'sms' });
    assert.match(started.sendCodeAttempts[0].attempt_sid, /^VL[0-9a-f]{32}$/);
    const check = await verify().verificationChecks.create({ to, code: '1234' });
    assert.equal(check.status, 'pending');
    assert.equal(check.valid, false);
  });

  test('locale, AppHash, custom code and PSD2 amount and payee reach the message', async () => {
    const to = freshNumber();
    await verify().verifications.create({ to, channel: 'sms', locale: 'pt-BR', appHash: 'FA+9qCX9VSu', customCode: '246810', amount: '€12.50', payee: 'Loja' });
    const body = await outboxBody(to);
    assert.match(body, /^Seu código de verificação para .+ é: 246810\./);
    assert.ok(body.includes('€12.50') && body.includes('Loja'), body);
    assert.ok(body.endsWith('\n\nFA+9qCX9VSu'), body);
    const other = await verify().verificationChecks.create({ to, code: '246810', amount: '€99.00', payee: 'Loja' });
    assert.equal(other.valid, false, 'a check for another amount does not approve');
    const ok = await verify().verificationChecks.create({ to, code: '246810', amount: '€12.50', payee: 'Loja' });
    assert.equal(ok.status, 'approved');
    assert.equal(ok.amount, '€12.50');
  });

  test('a landline is 403/60205', async () => {
    const err = await restError(verify().verifications.create({ to: '+493012345678', channel: 'sms' }));
    assert.equal(err.status, 403);
    assert.equal(err.code, 60205);
  });
});

describe('Vonage fidelity through @vonage/server-sdk', () => {
  const vonage = new Vonage({ apiKey: KEY_ID, apiSecret: SECRET }, { apiHost: BASE });

  test("the default PIN has Vonage's 4 digits; a malformed code costs an attempt", async () => {
    const number = freshNumber().slice(1);
    const started = await vonage.verify.start({ number, brand: 'Acme' });
    assert.equal(started.status, '0', started.errorText);
    assert.match(await latestCode(number), /^\d{4}$/);
    for (const [code, status] of [['abc', '16'], ['12', '16'], ['x', '17']]) {
      const r = await vonage.verify.check(started.requestId, code);
      assert.equal(r.status, status, r.errorText);
      assert.equal(r.requestId, started.requestId);
    }
    const search = await vonage.verify.search(started.requestId);
    assert.equal(search.status, 'FAILED');
    assert.equal(typeof search.dateFinalized, 'string');
  });

  test('a PIN of its own needs a service with custom codes (status 20)', async () => {
    const r = await vonage.verify.start({ number: freshNumber().slice(1), brand: 'Acme', pinCode: '1234' });
    assert.equal(r.status, '20');
  });
});

describe('Vonage custom PINs and PSD2 with a key of a service that allows them', () => {
  const bank = new Vonage({ apiKey: BANK.id, apiSecret: BANK.secret }, { apiHost: BASE });

  test('pin_code is the code sent and checked', async () => {
    const number = freshNumber().slice(1);
    const started = await bank.verify.start({ number, brand: 'Bank', pinCode: '8642' });
    assert.equal(started.status, '0', started.errorText);
    assert.equal(await latestCode(number), '8642');
    const checked = await bank.verify.check(started.requestId, '8642');
    assert.equal(checked.status, '0', checked.errorText);
  });

  test('a PSD2 request names payee and amount in the message', async () => {
    const number = freshNumber().slice(1);
    const started = await bank.verify.start({ number, payee: 'Acme Shop', amount: 12.5, lg: 'en-gb' });
    assert.equal(started.status, '0', started.errorText);
    const body = await outboxBody(number);
    assert.ok(body.includes('€12.50') && body.includes('Acme Shop'), body);
  });
});
