// phonegate as an OpenID Connect provider, driven by the certified npm relying party
// `openid-client` (v6): discovery, authorization code + PKCE, ID token validation (signature by
// the JWKS, nonce, issuer, audience), userinfo, refresh rotation, revocation, introspection and
// RP-initiated logout, with a confidential and a public client. The user signs in by phone in a
// scripted browser (oidc_helpers.js) with one of run.sh's test numbers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { BASE } from './helpers.js';
import { Browser, CLIENT_SECRET, RP, authorize } from './oidc_helpers.js';

const ISSUER = BASE;
const WEB_CALLBACK = `${RP}/node-web/callback`;
const WEB_LOGGED_OUT = `${RP}/node-web/`;
const SPA_CALLBACK = `${RP}/node-spa/callback`;

/** The confidential, third-party client (consent page), authenticated by client_secret_basic. */
async function webClient() {
  // Non-repudiation checks make the library verify the ID token's signature with the JWKS
  // (openid-client otherwise trusts an ID token received straight from the token endpoint).
  return client.discovery(new URL(ISSUER), 'node-web', { redirect_uris: [WEB_CALLBACK] }, client.ClientSecretBasic(CLIENT_SECRET), {
    execute: [client.enableNonRepudiationChecks],
  });
}

/** The public, first-party client: no secret, PKCE required, no consent page. */
async function spaClient() {
  return client.discovery(new URL(ISSUER), 'node-spa', { redirect_uris: [SPA_CALLBACK] }, client.None(), {
    execute: [client.enableNonRepudiationChecks],
  });
}

/** Another confidential client (a resource server of another app). */
async function otherClient() {
  return client.discovery(new URL(ISSUER), 'node-rs', undefined, client.ClientSecretPost(CLIENT_SECRET));
}

/** An authorization request with PKCE S256, a state and a nonce, and what is needed to check its answer. */
async function request(config, { scope, redirectUri, ...extra }) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const expectedNonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: expectedState,
    nonce: expectedNonce,
    ...extra,
  });
  const checks = { pkceCodeVerifier, expectedState, expectedNonce, idTokenExpected: true };
  // With max_age the library requires auth_time and checks it is recent enough.
  if (extra.max_age) checks.maxAge = Number(extra.max_age);
  return { url, checks };
}

/** Signs a user in through `config` and returns { tokens, claims, callback, checks }. */
async function signIn(config, browser, { scope, redirectUri, user, consent, ...extra }) {
  const { url, checks } = await request(config, { scope, redirectUri, ...extra });
  const callback = await authorize(browser, url, { ...user, consent });
  assert.equal(callback.origin + callback.pathname, redirectUri, `sent to ${callback}`);
  // The library checks state, iss (RFC 9207), the code exchange with the verifier, and the ID
  // token: signature, iss, aud, exp, iat, nonce.
  const tokens = await client.authorizationCodeGrant(config, callback, checks);
  return { tokens, claims: tokens.claims(), callback, checks };
}

/** A promise that must reject with an OAuth error response; returns the error. */
async function oauthError(promise) {
  const err = await promise.then(
    (value) => assert.fail(`expected an OAuth error, got ${JSON.stringify(value)}`),
    (e) => e,
  );
  assert.ok(err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError, `expected an OAuth error response, got ${err?.stack ?? err}`);
  return err;
}

function user(n) {
  return { phone: `+447700900${n}`, username: `node-oidc-${n}` };
}

describe('OpenID Connect through openid-client', () => {
  test('discovery: the metadata the library reads is complete and truthful, and the JWKS has an RS256 key', async () => {
    const config = await webClient();
    const m = config.serverMetadata();
    assert.equal(m.issuer, ISSUER);
    for (const [key, path] of [
      ['authorization_endpoint', '/oauth2/authorize'],
      ['token_endpoint', '/oauth2/token'],
      ['userinfo_endpoint', '/oauth2/userinfo'],
      ['revocation_endpoint', '/oauth2/revoke'],
      ['introspection_endpoint', '/oauth2/introspect'],
      ['end_session_endpoint', '/oauth2/logout'],
      ['jwks_uri', '/.well-known/jwks.json'],
    ]) {
      assert.equal(m[key], ISSUER + path, key);
    }
    assert.deepEqual(m.response_types_supported, ['code']);
    assert.deepEqual(m.code_challenge_methods_supported, ['S256']);
    assert.ok(m.id_token_signing_alg_values_supported.includes('RS256'));
    assert.ok(!m.id_token_signing_alg_values_supported.includes('none'));
    for (const s of ['openid', 'profile', 'phone', 'email', 'offline_access']) assert.ok(m.scopes_supported.includes(s), s);
    for (const g of ['authorization_code', 'refresh_token']) assert.ok(m.grant_types_supported.includes(g), g);
    for (const a of ['client_secret_basic', 'client_secret_post', 'none']) assert.ok(m.token_endpoint_auth_methods_supported.includes(a), a);
    assert.ok(m.subject_types_supported.includes('public'));
    for (const c of ['sub', 'phone_number', 'phone_number_verified', 'preferred_username', 'email', 'email_verified']) {
      assert.ok(m.claims_supported.includes(c), c);
    }
    assert.equal(m.authorization_response_iss_parameter_supported, true);

    const jwks = await (await fetch(m.jwks_uri)).json();
    const rsa = jwks.keys.filter((k) => k.kty === 'RSA');
    assert.ok(rsa.length >= 1, JSON.stringify(jwks));
    for (const k of jwks.keys) {
      assert.ok(k.kid, 'every key has a kid');
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) assert.ok(!(secret in k), `the JWKS leaks ${secret}`);
    }
  });

  test('confidential client: code + PKCE after consent, a verified ID token, userinfo and introspection', async () => {
    const config = await webClient();
    const browser = new Browser();
    const u = user('101');
    const { tokens, claims, callback } = await signIn(config, browser, {
      scope: 'openid profile phone offline_access',
      redirectUri: WEB_CALLBACK,
      user: u,
    });
    assert.ok(browser.pages.some((p) => p.startsWith('/oauth2/')), `a third-party client gets the consent page: ${browser.pages}`);
    assert.equal(callback.searchParams.get('iss'), ISSUER);
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.ok(tokens.expires_in > 0);
    assert.ok(tokens.refresh_token, 'offline_access gives a refresh token');
    assert.deepEqual(tokens.scope.split(' ').sort(), ['offline_access', 'openid', 'phone', 'profile']);

    assert.equal(claims.iss, ISSUER);
    assert.deepEqual([].concat(claims.aud), ['node-web']);
    assert.match(claims.sub, /^\S+$/);
    assert.equal(claims.phone_number, u.phone);
    assert.equal(claims.phone_number_verified, true);
    assert.equal(claims.preferred_username, u.username);
    assert.ok(!('email' in claims), 'no e-mail claim without a verified e-mail (and the email scope)');
    assert.deepEqual(claims.amr, ['sms']);
    assert.equal(claims.acr, '1');
    assert.ok(Math.abs(claims.auth_time - Date.now() / 1000) < 120, `auth_time ${claims.auth_time}`);

    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.sub, claims.sub);
    assert.equal(info.phone_number, u.phone);
    assert.equal(info.phone_number_verified, true);
    assert.equal(info.preferred_username, u.username);
    assert.ok(!('email' in info));

    const intro = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(intro.active, true);
    assert.equal(intro.client_id, 'node-web');
    assert.equal(intro.sub, claims.sub);
    assert.equal(intro.iss, ISSUER);
    assert.deepEqual(intro.scope.split(' ').sort(), ['offline_access', 'openid', 'phone', 'profile']);
    assert.ok(intro.exp > Date.now() / 1000);

    // Another client's resource server learns nothing about it.
    const theirs = await client.tokenIntrospection(await otherClient(), tokens.access_token);
    assert.deepEqual(theirs, { active: false });
    // Nor does anyone about a token that is not one.
    assert.equal((await client.tokenIntrospection(config, 'not-a-token')).active, false);

    // The session is remembered and so is the consent: a second authorization needs no page.
    const again = await signIn(config, browser, { scope: 'openid phone', redirectUri: WEB_CALLBACK, prompt: 'none' });
    assert.equal(again.claims.sub, claims.sub);
    assert.ok(!again.tokens.refresh_token, 'no refresh token without offline_access');
  });

  test('refresh: a new access token, ID token and rotated refresh token; the spent one no longer works', async () => {
    const config = await webClient();
    const browser = new Browser();
    const { tokens, claims } = await signIn(config, browser, {
      scope: 'openid phone offline_access',
      redirectUri: WEB_CALLBACK,
      user: user('102'),
    });
    const first = tokens.refresh_token;
    const refreshed = await client.refreshTokenGrant(config, first);
    assert.ok(refreshed.access_token);
    assert.notEqual(refreshed.access_token, tokens.access_token);
    assert.ok(refreshed.refresh_token, 'a rotated refresh token');
    assert.notEqual(refreshed.refresh_token, first);
    assert.equal((await client.fetchUserInfo(config, refreshed.access_token, claims.sub)).sub, claims.sub);
    // A new ID token too (the provider promises one; OpenID Connect Core 12.2 allows it), which
    // the library validated: still the same person.
    assert.ok(refreshed.id_token, `a refresh answers a new ID token: ${Object.keys(refreshed)}`);
    assert.equal(refreshed.claims().sub, claims.sub);
    assert.equal(refreshed.claims().phone_number, claims.phone_number);

    // Narrowing the scope on refresh is allowed…
    const narrowed = await client.refreshTokenGrant(config, refreshed.refresh_token, { scope: 'openid offline_access' });
    assert.deepEqual(narrowed.scope.split(' ').sort(), ['offline_access', 'openid']);
    const info = await client.fetchUserInfo(config, narrowed.access_token, claims.sub);
    assert.ok(!('phone_number' in info), `phone is out of scope: ${JSON.stringify(info)}`);
    // …widening it is not, and the refused request spends nothing: the token still works.
    const wider = await oauthError(client.refreshTokenGrant(config, narrowed.refresh_token, { scope: 'openid phone profile offline_access' }));
    assert.equal(wider.error, 'invalid_scope');
    const latest = await client.refreshTokenGrant(config, narrowed.refresh_token);
    assert.deepEqual(latest.scope.split(' ').sort(), ['offline_access', 'openid', 'phone']);

    // The spent token is refused, and its reuse ends the whole grant (the newest token too).
    const reused = await oauthError(client.refreshTokenGrant(config, first));
    assert.equal(reused.error, 'invalid_grant');
    const after = await oauthError(client.refreshTokenGrant(config, latest.refresh_token));
    assert.equal(after.error, 'invalid_grant');
    assert.equal((await client.tokenIntrospection(config, latest.refresh_token)).active, false);
  });

  test('revocation (RFC 7009): a revoked refresh token is refused and introspects as inactive', async () => {
    const config = await webClient();
    const { tokens } = await signIn(config, new Browser(), {
      scope: 'openid offline_access',
      redirectUri: WEB_CALLBACK,
      user: user('103'),
    });
    const before = await client.tokenIntrospection(config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
    assert.equal(before.active, true);
    assert.equal(before.client_id, 'node-web');

    // Another client cannot revoke it (the server answers 200 all the same, RFC 7009 2.2).
    await client.tokenRevocation(await otherClient(), tokens.refresh_token);
    assert.equal((await client.tokenIntrospection(config, tokens.refresh_token)).active, true);

    await client.tokenRevocation(config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
    const err = await oauthError(client.refreshTokenGrant(config, tokens.refresh_token));
    assert.equal(err.error, 'invalid_grant');
    assert.deepEqual(await client.tokenIntrospection(config, tokens.refresh_token), { active: false });
    // Revoking again, or a token that never was, is not an error.
    await client.tokenRevocation(config, tokens.refresh_token);
    await client.tokenRevocation(config, 'never-issued');
  });

  test('public client: PKCE is required, then code + PKCE with no secret and no consent page', async () => {
    const config = await spaClient();
    const browser = new Browser();
    // Without a code challenge the request is refused back at the (valid) redirect URI.
    const state = client.randomState();
    const bare = client.buildAuthorizationUrl(config, { redirect_uri: SPA_CALLBACK, scope: 'openid phone', state });
    const refused = await browser.go(bare.href);
    assert.ok(refused.external, `expected a redirect to the client, got ${refused.url} (HTTP ${refused.status})`);
    assert.equal(refused.external.searchParams.get('error'), 'invalid_request');
    assert.equal(refused.external.searchParams.get('state'), state);
    assert.equal(refused.external.searchParams.get('iss'), ISSUER);
    assert.equal(refused.external.searchParams.get('code'), null);

    const u = user('104');
    const { tokens, claims, callback, checks } = await signIn(config, browser, { scope: 'openid phone', redirectUri: SPA_CALLBACK, user: u });
    assert.ok(!browser.pages.some((p) => p.startsWith('/oauth2/')), `a first-party client gets no consent page: ${browser.pages}`);
    assert.deepEqual([].concat(claims.aud), ['node-spa']);
    assert.equal(claims.phone_number, u.phone);
    assert.equal(claims.phone_number_verified, true);
    assert.ok(!('preferred_username' in claims), 'profile was not asked for');
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.deepEqual(Object.keys(info).sort(), ['phone_number', 'phone_number_verified', 'sub']);

    // The code was spent: exchanging it again fails.
    const replay = await oauthError(client.authorizationCodeGrant(config, callback, checks));
    assert.equal(replay.error, 'invalid_grant');
  });

  test('consent denied: the client gets access_denied with its state and the issuer', async () => {
    const config = await webClient();
    const { url, checks } = await request(config, { scope: 'openid phone', redirectUri: WEB_CALLBACK });
    const callback = await authorize(new Browser(), url, { ...user('105'), consent: 'deny' });
    assert.equal(callback.searchParams.get('state'), checks.expectedState);
    assert.equal(callback.searchParams.get('iss'), ISSUER);
    const err = await oauthError(client.authorizationCodeGrant(config, callback, checks));
    assert.ok(err instanceof client.AuthorizationResponseError);
    assert.equal(err.error, 'access_denied');
  });

  test('RP-initiated logout: back to the post-logout URI with the state, and the browser session is gone', async () => {
    const config = await webClient();
    const browser = new Browser();
    const u = user('106');
    const { tokens, claims } = await signIn(config, browser, { scope: 'openid phone', redirectUri: WEB_CALLBACK, user: u });
    const session = [...browser.jar].find(([name]) => name.endsWith('phonegate_session'));
    assert.ok(session, `a session cookie: ${[...browser.jar.keys()]}`);
    // Signed in: prompt=none answers with a code.
    const silent = await request(config, { scope: 'openid', redirectUri: WEB_CALLBACK, prompt: 'none' });
    const silentCallback = await authorize(browser, silent.url);
    assert.ok(silentCallback.searchParams.get('code'), `${silentCallback}`);

    const state = client.randomState();
    const logout = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: WEB_LOGGED_OUT,
      state,
    });
    const back = await browser.go(logout.href);
    assert.ok(back.external, `expected a redirect to the client, got ${back.url} (HTTP ${back.status})`);
    assert.equal(back.external.origin + back.external.pathname, WEB_LOGGED_OUT);
    assert.equal(back.external.searchParams.get('state'), state);
    assert.ok(![...browser.jar.keys()].some((n) => n.endsWith('phonegate_session')), 'the session cookie is cleared');

    // prompt=none now answers login_required…
    const after = await request(config, { scope: 'openid', redirectUri: WEB_CALLBACK, prompt: 'none' });
    const refused = await authorize(browser, after.url);
    assert.equal(refused.searchParams.get('error'), 'login_required');
    assert.equal(refused.searchParams.get('state'), after.checks.expectedState);
    // …and the old cookie, replayed, signs nobody in: the session ended on the server.
    const replay = new Browser();
    replay.jar.set(...session);
    const page = await replay.go('/account');
    assert.equal(new URL(page.url).pathname, '/login');

    // Signing in again by the login page, pre-filled from login_hint, brings the same account
    // back (its consent remembered) with a fresh auth_time.
    const again = await signIn(config, browser, {
      scope: 'openid phone',
      redirectUri: WEB_CALLBACK,
      user: { phone: u.phone },
      login_hint: u.phone,
      max_age: '600',
    });
    assert.equal(browser.prefilled, u.phone);
    assert.equal(again.claims.sub, claims.sub);
    assert.ok(again.claims.auth_time >= claims.auth_time);
  });

  test('logout with a post-logout URI that is not registered does not redirect there', async () => {
    const config = await webClient();
    const browser = new Browser();
    const { tokens } = await signIn(config, browser, { scope: 'openid', redirectUri: WEB_CALLBACK, user: user('107') });
    const url = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: 'https://evil.example/',
      state: 'x',
    });
    const r = await browser.go(url.href);
    assert.ok(!r.external, `redirected to ${r.external}`);
    assert.ok(r.status >= 200 && r.status < 500, `HTTP ${r.status}`);
  });
});
