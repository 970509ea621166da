// phonegate's Twilio Verify v2 API, driven by the official `twilio` npm SDK.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import twilio from 'twilio';
import { BASE, KEY_ID, SECRET, freshNumber, latestCode, wrongCode } from './helpers.js';

const TWILIO_VERIFY = 'https://verify.twilio.com';

/** The SDK's own HTTP client, with verify.twilio.com swapped for the phonegate server. */
class PhonegateRequestClient extends twilio.RequestClient {
  request(opts) {
    assert.ok(opts.uri.startsWith(TWILIO_VERIFY + '/'), `unexpected request to ${opts.uri}`);
    return super.request({ ...opts, uri: BASE + opts.uri.slice(TWILIO_VERIFY.length) });
  }
}

const client = twilio(KEY_ID, SECRET, {
  accountSid: 'AC' + KEY_ID.slice(2),
  httpClient: new PhonegateRequestClient(),
});

/** Runs `promise`, which must reject with a RestException; returns it. */
async function restError(promise) {
  const err = await promise.then(
    (value) => assert.fail(`expected a RestException, got ${JSON.stringify(value)}`),
    (e) => e,
  );
  assert.ok(err instanceof twilio.RestException, `expected a RestException, got ${err}`);
  return err;
}

describe('Twilio Verify v2 through the twilio SDK', () => {
  // phonegate wants service names unique per account, so each run gets its own.
  const friendlyName = `Node SDK ${randomUUID().slice(0, 8)}`;
  let service;

  before(async () => {
    service = await client.verify.v2.services.create({ friendlyName, codeLength: 6 });
  });

  test('sna: a Silent Network Auth verification is approved once the device opens its URL', async () => {
    const to = freshNumber();
    const v = await client.verify.v2.services(service.sid).verifications.create({ to, channel: 'sna' });
    assert.equal(v.channel, 'sna');
    assert.equal(v.status, 'pending');
    assert.match(v.sna.url, /^https:\/\/.+\/silent\/[A-Za-z0-9_-]{43}$/);
    const early = await client.verify.v2.services(service.sid).verificationChecks.create({ to });
    assert.equal(early.status, 'pending');
    assert.equal(early.valid, false);
    // The device opens the URL over mobile data; the local simulator plays its operator.
    const device = await fetch(`${v.sna.url}?sim=match`);
    assert.equal(device.status, 200);
    const check = await client.verify.v2.services(service.sid).verificationChecks.create({ to });
    assert.equal(check.status, 'approved');
    assert.equal(check.valid, true);
    assert.equal(check.channel, 'sna');
    assert.deepEqual(check.snaAttemptsErrorCodes, []);
  });

  const verify = () => client.verify.v2.services(service.sid);

  test('creates and fetches a service', async () => {
    assert.match(service.sid, /^VA[0-9a-f]{32}$/);
    assert.equal(service.friendlyName, friendlyName);
    assert.equal(service.codeLength, 6);

    const fetched = await verify().fetch();
    assert.equal(fetched.sid, service.sid);
    assert.equal(fetched.friendlyName, friendlyName);
    assert.equal(fetched.codeLength, 6);
  });

  test('wrong code stays pending, right code approves, a later check is 404/20404', async () => {
    const to = freshNumber();
    const started = await verify().verifications.create({ to, channel: 'sms' });
    assert.match(started.sid, /^VE[0-9a-f]{32}$/);
    assert.equal(started.status, 'pending');
    assert.equal(started.to, to);
    assert.equal(started.channel, 'sms');
    assert.equal(started.serviceSid, service.sid);
    assert.ok(started.dateCreated instanceof Date && !Number.isNaN(started.dateCreated.getTime()));

    const code = await latestCode(to);
    assert.match(code, /^\d{6}$/);

    const wrong = await verify().verificationChecks.create({ to, code: wrongCode(code) });
    assert.equal(wrong.status, 'pending');
    assert.equal(wrong.valid, false);

    const right = await verify().verificationChecks.create({ to, code });
    assert.equal(right.status, 'approved');
    assert.equal(right.valid, true);
    assert.equal(right.sid, started.sid);

    const err = await restError(verify().verificationChecks.create({ to, code }));
    assert.equal(err.status, 404);
    assert.equal(err.code, 20404);
  });

  test('locks out after 5 wrong codes: max_attempts_reached, then 429/60202', async () => {
    const to = freshNumber();
    const started = await verify().verifications.create({ to, channel: 'sms' });
    const code = await latestCode(to);
    const bad = wrongCode(code);

    for (let attempt = 1; attempt <= 4; attempt++) {
      const check = await verify().verificationChecks.create({ to, code: bad });
      assert.equal(check.status, 'pending', `attempt ${attempt}`);
      assert.equal(check.valid, false);
    }
    const fifth = await verify().verificationChecks.create({ to, code: bad });
    assert.equal(fifth.status, 'max_attempts_reached');
    assert.equal(fifth.valid, false);

    // Locked: 429/60202 whether checked by sid or, as an Auth0 Action does, by number.
    for (const by of [{ verificationSid: started.sid }, { to }]) {
      const err = await restError(verify().verificationChecks.create({ ...by, code }));
      assert.equal(err.status, 429);
      assert.equal(err.code, 60202);
    }
  });

  test('cancels a verification, after which its code no longer works', async () => {
    const to = freshNumber();
    const started = await verify().verifications.create({ to, channel: 'sms' });
    const code = await latestCode(to);

    const canceled = await verify().verifications(started.sid).update({ status: 'canceled' });
    assert.equal(canceled.sid, started.sid);
    assert.equal(canceled.status, 'canceled');

    const err = await restError(verify().verificationChecks.create({ to, code }));
    assert.equal(err.status, 404);
    assert.equal(err.code, 20404);
  });

  test('fetches a pending verification by sid', async () => {
    const to = freshNumber();
    const started = await verify().verifications.create({ to, channel: 'sms' });

    const fetched = await verify().verifications(started.sid).fetch();
    assert.equal(fetched.sid, started.sid);
    assert.equal(fetched.status, 'pending');
    assert.equal(fetched.to, to);
    assert.equal(fetched.channel, 'sms');
    assert.equal(fetched.serviceSid, service.sid);
  });
});
