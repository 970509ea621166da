// The legacy `nexmo` 2.x npm package, as the Nexmo Verify tutorials use it. It always dials port
// 443 over HTTPS (any other `port` means plain HTTP), so a phonegate on another port is reached
// through its `https` option: the module it dials with, here one that keeps every option but the
// port. Against phonegate on port 443 only `apiHost` is needed (docs/migrate-from-vonage-verify.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { createRequire } from 'node:module';
import { BASE, KEY_ID, SECRET, freshNumber, latestCode } from './helpers.js';

const Nexmo = createRequire(import.meta.url)('nexmo');
const base = new URL(BASE);
const nexmo = new Nexmo(
  { apiKey: KEY_ID, apiSecret: SECRET },
  { apiHost: base.hostname, https: { request: (options) => https.request({ ...options, port: base.port }) } },
);

const call = (fn, params) => new Promise((resolve, reject) => fn(params, (err, result) => (err ? reject(err) : resolve(result))));

test('nexmo 2.x: request, a wrong code, the right code, search', async () => {
  const number = freshNumber().slice(1);
  const started = await call(nexmo.verify.request.bind(nexmo.verify), { number, brand: 'Tutorial' });
  assert.equal(started.status, '0', started.error_text);
  const code = await latestCode(number);
  assert.match(code, /^\d{4}$/, "Vonage's default 4-digit PIN, which the tutorials' inputs expect");
  const wrong = await call(nexmo.verify.check.bind(nexmo.verify), { request_id: started.request_id, code: code === '0000' ? '1111' : '0000' });
  assert.equal(wrong.status, '16');
  const right = await call(nexmo.verify.check.bind(nexmo.verify), { request_id: started.request_id, code });
  assert.equal(right.status, '0', right.error_text);
  const found = await call(nexmo.verify.search.bind(nexmo.verify), started.request_id);
  assert.equal(found.status, 'SUCCESS');
  assert.equal(found.checks.length, 2);
});
