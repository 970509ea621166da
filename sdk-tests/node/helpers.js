// Shared helpers for the SDK compatibility tests (not a test file itself).
import { randomInt } from 'node:crypto';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set: SDK_BASE, SDK_KEY_ID, SDK_SECRET (and NODE_EXTRA_CA_CERTS for a self-signed cert)`);
  return value;
}

export const BASE = env('SDK_BASE').replace(/\/+$/, '');
export const KEY_ID = env('SDK_KEY_ID');
export const SECRET = env('SDK_SECRET');
/** A key of the `bank` service, which allows custom codes and PSD2 payment codes. */
export const BANK = { id: env('SDK_BANK_KEY_ID'), secret: env('SDK_BANK_SECRET') };

/** A fresh, valid German mobile number in E.164 form: +49151 followed by 8 digits. */
export function freshNumber() {
  return '+49151' + String(randomInt(0, 1e8)).padStart(8, '0');
}

/** The newest code the server "sent" to `to` (E.164, with or without '+'), read from the dev outbox. */
export async function latestCode(to) {
  const e164 = to.startsWith('+') ? to : '+' + to;
  const res = await fetch(`${BASE}/api/dev/outbox?to=${encodeURIComponent(e164)}`, {
    headers: { Authorization: `Bearer ${SECRET}` },
  });
  if (!res.ok) throw new Error(`outbox answered HTTP ${res.status}: ${await res.text()}`);
  const { messages } = await res.json();
  if (!messages?.length) throw new Error(`no message in the outbox for ${e164}`);
  return messages[0].body.trim().split(/\s+/).at(-1);
}

/** The newest message body the server "sent" to `to`, from the dev outbox. */
export async function outboxBody(to) {
  const e164 = to.startsWith('+') ? to : '+' + to;
  const res = await fetch(`${BASE}/api/dev/outbox?to=${encodeURIComponent(e164)}`, { headers: { Authorization: `Bearer ${SECRET}` } });
  if (!res.ok) throw new Error(`outbox answered HTTP ${res.status}: ${await res.text()}`);
  const { messages } = await res.json();
  if (!messages?.length) throw new Error(`no message in the outbox for ${e164}`);
  return messages[0].body;
}

/** A code of the same length that is certainly not `code`. */
export function wrongCode(code) {
  return code.split('').map((d) => String((Number(d) + 1) % 10)).join('');
}

/** The dev outbox's messages to `to` (a number, or an e-mail address), newest first. */
export async function outboxMessages(to) {
  const res = await fetch(`${BASE}/api/dev/outbox?to=${encodeURIComponent(to)}`, { headers: { Authorization: `Bearer ${SECRET}` } });
  if (!res.ok) throw new Error(`outbox answered HTTP ${res.status}: ${await res.text()}`);
  return (await res.json()).messages;
}

/** The code in an outbox message: a call says its digits one by one ("1, 2, 3…"), twice. */
export function codeOf(message, length = 6) {
  if (message.channel === 'voice') return message.body.replace(/\D/g, '').slice(0, length);
  return message.body.match(/\d{4,10}/g).at(-1);
}
