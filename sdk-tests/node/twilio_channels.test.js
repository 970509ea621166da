// Twilio Verify v2's call, WhatsApp and e-mail channels, driven by the official `twilio` npm SDK:
// the service's channel fields, each channel's verification and its check, and a second start by
// another channel adding an attempt to the same verification.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import twilio from 'twilio';
import { BASE, KEY_ID, SECRET, codeOf, freshNumber, outboxMessages } from './helpers.js';

const TWILIO_VERIFY = 'https://verify.twilio.com';

class PhonegateRequestClient extends twilio.RequestClient {
  request(opts) {
    assert.ok(opts.uri.startsWith(TWILIO_VERIFY + '/'), `unexpected request to ${opts.uri}`);
    return super.request({ ...opts, uri: BASE + opts.uri.slice(TWILIO_VERIFY.length) });
  }
}

const client = twilio(KEY_ID, SECRET, { accountSid: 'AC' + KEY_ID.slice(2), httpClient: new PhonegateRequestClient() });

describe('Twilio Verify v2 channels through the twilio SDK', () => {
  let service;
  const verify = () => client.verify.v2.services(service.sid);

  before(async () => {
    service = await client.verify.v2.services.create({
      friendlyName: `Node channels ${randomUUID().slice(0, 8)}`,
      dtmfInputRequired: false,
      ttsName: 'Node Shop',
      'whatsapp.from': '+15005550006',
    });
  });

  test('the service keeps its channel fields', async () => {
    const fetched = await verify().fetch();
    assert.equal(fetched.dtmfInputRequired, false);
    assert.equal(fetched.ttsName, 'Node Shop');
    assert.equal(fetched.whatsapp.from, '+15005550006');
  });

  test('call: the code is said in the Locale, with the TTS name, and checks', async () => {
    const to = freshNumber();
    const v = await verify().verifications.create({ to, channel: 'call', locale: 'de', sendDigits: 'w1' });
    assert.equal(v.channel, 'call');
    assert.equal(v.status, 'pending');
    assert.deepEqual(v.sendCodeAttempts.map((a) => a.channel), ['call']);
    const [call] = await outboxMessages(to);
    assert.equal(call.channel, 'voice');
    assert.match(call.body, /^Ihr Bestätigungscode für Node Shop lautet: /);
    const check = await verify().verificationChecks.create({ to, code: codeOf(call) });
    assert.equal(check.status, 'approved');
    assert.equal(check.channel, 'call');
  });

  test('whatsapp: a WhatsApp verification checks like any other', async () => {
    const to = freshNumber();
    const v = await verify().verifications.create({ to, channel: 'whatsapp' });
    assert.equal(v.channel, 'whatsapp');
    const [message] = await outboxMessages(to);
    assert.equal(message.channel, 'whatsapp');
    const check = await verify().verificationChecks.create({ verificationSid: v.sid, code: codeOf(message) });
    assert.equal(check.valid, true);
  });

  test('email: ChannelConfiguration is accepted and the address is checked', async () => {
    const to = `node-${randomUUID().slice(0, 8)}@example.com`;
    const v = await verify().verifications.create({
      to,
      channel: 'email',
      channelConfiguration: { from: 'codes@shop.example', from_name: 'Shop Codes', substitutions: { name: 'Ann' } },
    });
    assert.equal(v.channel, 'email');
    assert.equal(v.to, to);
    const [mail] = await outboxMessages(to);
    assert.equal(mail.channel, 'email');
    assert.ok(mail.html.includes(codeOf(mail)), 'the HTML part shows the code');
    const check = await verify().verificationChecks.create({ to, code: codeOf(mail) });
    assert.equal(check.status, 'approved');
  });

  test('a second start by another channel adds an attempt to the same verification', async () => {
    const to = freshNumber();
    const first = await verify().verifications.create({ to, channel: 'sms' });
    const second = await verify().verifications.create({ to, channel: 'call' });
    assert.equal(second.sid, first.sid);
    assert.deepEqual(second.sendCodeAttempts.map((a) => a.channel).sort(), ['call', 'sms']);
    for (const a of second.sendCodeAttempts) assert.match(a.attempt_sid, /^VL[0-9a-f]{32}$/);
    const fetched = await verify().verifications(first.sid).fetch();
    assert.equal(fetched.sendCodeAttempts.length, 2);
    // One code for both: the call says the SMS's code.
    const messages = await outboxMessages(to);
    const codes = new Set(messages.map((m) => codeOf(m)));
    assert.equal(codes.size, 1);
  });

  test('refusals carry Twilio codes: a landline by WhatsApp, an address that is not one', async () => {
    const landline = await verify().verifications.create({ to: '+493012345678', channel: 'whatsapp' }).catch((e) => e);
    assert.ok(landline instanceof twilio.RestException);
    assert.equal(landline.code, 60205);
    const bad = await verify().verifications.create({ to: 'not-an-address', channel: 'email' }).catch((e) => e);
    assert.equal(bad.code, 60436);
  });
});
