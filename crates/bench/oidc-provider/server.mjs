// The npm package oidc-provider, set up as phonegate-bench's OpenID Connect comparison: the same
// endpoints as phonegate's (/oauth2/authorize, /oauth2/token, /oauth2/userinfo), one confidential
// client, PKCE, refresh tokens (offline_access, rotated on every use like phonegate's), an
// in-memory adapter, and a trivial /healthz answered by node:http itself (the same-run baseline).
//
// A signed-in browser: the first authorize goes to /interaction/UID, which this script answers at
// once by signing the account in and granting the requested scopes (no pages), so the provider
// sets its session cookie and redirects to the client with a code; later authorize requests
// with that cookie answer the code at once.
//
// Usage: node server.mjs [PORT]  (or PORT in the environment; 0 or none: any free port). Prints
// one line of JSON when ready: {"address":"127.0.0.1:PORT","issuer":…,"client_id":…,…}.
// BENCH_CLIENT_ID, BENCH_CLIENT_SECRET, BENCH_REDIRECT_URI and BENCH_ID_TOKEN_ALG (RS256, ES256 or
// EdDSA) change the client.
import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const client = {
  client_id: process.env.BENCH_CLIENT_ID ?? 'bench',
  client_secret: process.env.BENCH_CLIENT_SECRET ?? 'bench-client-secret-0123456789abcdef',
  redirect_uris: [process.env.BENCH_REDIRECT_URI ?? 'http://127.0.0.1:9/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: process.env.BENCH_ID_TOKEN_ALG ?? 'RS256',
};

/** Everything the provider stores, per model, in plain Maps; expired entries are swept. */
class MemoryAdapter {
  static stores = new Map();

  constructor(name) {
    if (!MemoryAdapter.stores.has(name)) MemoryAdapter.stores.set(name, new Map());
    this.store = MemoryAdapter.stores.get(name);
  }

  static sweep() {
    const now = Date.now();
    for (const store of MemoryAdapter.stores.values()) {
      for (const [id, entry] of store) {
        if (entry.expires && entry.expires <= now) store.delete(id);
      }
    }
  }

  get(id) {
    const entry = this.store.get(id);
    if (!entry) return undefined;
    if (entry.expires && entry.expires <= Date.now()) {
      this.store.delete(id);
      return undefined;
    }
    return entry.payload;
  }

  async upsert(id, payload, expiresIn) {
    this.store.set(id, { payload, expires: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
  }

  async find(id) {
    return this.get(id);
  }

  async findByUserCode(userCode) {
    for (const id of this.store.keys()) {
      const payload = this.get(id);
      if (payload?.userCode === userCode) return payload;
    }
    return undefined;
  }

  async findByUid(uid) {
    for (const id of this.store.keys()) {
      const payload = this.get(id);
      if (payload?.uid === uid) return payload;
    }
    return undefined;
  }

  async consume(id) {
    const payload = this.get(id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.store.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const store of MemoryAdapter.stores.values()) {
      for (const [id, entry] of store) {
        if (entry.payload?.grantId === grantId) store.delete(id);
      }
    }
  }
}
setInterval(() => MemoryAdapter.sweep(), 10_000).unref();

/** Every account is a phone user whose claims are made up from its id. */
async function findAccount(_ctx, id) {
  const digits = crypto.createHash('sha256').update(id).digest().readUInt32BE(0) % 100_000_000;
  return {
    accountId: id,
    async claims(_use, _scope) {
      return {
        sub: id,
        phone_number: `+49151${String(digits).padStart(8, '0')}`,
        phone_number_verified: true,
        preferred_username: id,
        email: `${id}@example.com`,
        email_verified: true,
      };
    },
  };
}

/** A new signing key of each algorithm the client may ask for. */
const keys = [
  ['RS256', crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })],
  ['ES256', crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })],
  ['EdDSA', crypto.generateKeyPairSync('ed25519')],
].map(([alg, { privateKey }]) => ({ ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg }));

let provider;
const server = http.createServer(async (req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
    return;
  }
  if (path.startsWith('/interaction/')) {
    try {
      await signIn(req, res);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e));
    }
    return;
  }
  callback(req, res);
});
let callback;

/** The interaction page of a user who is always there: signs in (login_hint, else "bench-user")
 * and grants the scopes and claims the client asked for. */
async function signIn(req, res) {
  const interaction = await provider.interactionDetails(req, res);
  const { params } = interaction;
  const accountId = interaction.session?.accountId ?? (params.login_hint || 'bench-user');
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  const details = interaction.prompt?.details ?? {};
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

server.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.address();
  const issuer = `http://127.0.0.1:${bound}`;
  provider = new Provider(issuer, {
    adapter: MemoryAdapter,
    clients: [client],
    findAccount,
    jwks: { keys },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username'],
      phone: ['phone_number', 'phone_number_verified'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'phone', 'email'],
    features: { devInteractions: { enabled: false }, revocation: { enabled: true }, introspection: { enabled: true } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    issueRefreshToken: async (_ctx, c, code) => c.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    // Like phonegate: every refresh answers a new refresh token and spends the old one.
    rotateRefreshToken: true,
    routes: {
      authorization: '/oauth2/authorize',
      token: '/oauth2/token',
      userinfo: '/oauth2/userinfo',
      revocation: '/oauth2/revoke',
      introspection: '/oauth2/introspect',
      end_session: '/oauth2/logout',
      jwks: '/.well-known/jwks.json',
    },
  });
  // The bench counts failures; these say why.
  for (const event of ['authorization.error', 'grant.error', 'userinfo.error', 'server_error']) {
    provider.on(event, (_ctx, err) => console.error(`${event}: ${err.message} ${err.error_detail ?? err.error_description ?? ''}`));
  }
  callback = provider.callback();
  console.log(
    JSON.stringify({
      address: `127.0.0.1:${bound}`,
      issuer,
      client_id: client.client_id,
      client_secret: client.client_secret,
      redirect_uri: client.redirect_uris[0],
      node: process.version,
      oidc_provider: providerVersion(),
    }),
  );
});

/** The version of the package installed, for the bench's report. */
function providerVersion() {
  try {
    return JSON.parse(readFileSync(new URL('./node_modules/oidc-provider/package.json', import.meta.url), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
