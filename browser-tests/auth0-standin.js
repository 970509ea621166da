// A small, faithful stand-in for the parts of Auth0's post-login Action API that
// examples/auth0/action.js uses, so the test runs the real example code without a real tenant.
//
// What Auth0 does, as documented ("Redirect with Actions", auth0.com/docs/customize/actions/
// flows-and-triggers/login-flow/redirect-with-actions) and as seen in its community answers:
//  - api.redirect.sendUserTo(url, {query}) sends the browser to url with the query plus Auth0's
//    own opaque `state` parameter, the login transaction's id.
//  - api.redirect.encodeToken({secret, expiresInSeconds, payload}) is an HS256 JWT over the
//    payload plus `iss` (the tenant's domain, bare: "TENANT.eu.auth0.com"), `sub` (the user id),
//    `iat` and `exp` (decoded tokens in community.auth0.com/t/133463). `expiresInSeconds`
//    defaults to 900. We also put in `state`, which the published examples do not show: phonegate
//    must not rely on it (it gets the state from the query).
//  - The external site resumes the login at https://TENANT/continue?state=… (GET, or POST to
//    keep the token out of logs).
//  - api.redirect.validateToken({secret, tokenParameterName}) reads the token from the /continue
//    request and checks "that the signature is valid, the token is not expired, and the state
//    claim within the token matches the state parameter used as part of the redirect" (the docs);
//    a token without `iat`, `exp`, `sub`, `iss` or `state` fails with "Missing or invalid
//    standard claims", and `sub` must be the user's id (community.auth0.com/t/118530). It throws
//    on any failure and returns the token's claims otherwise.
//  - api.user.setAppMetadata(k, v) is saved when the flow ends; api.access.deny(reason) ends the
//    login with access_denied and that reason.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const HASHES = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
const now = () => Math.floor(Date.now() / 1000);

/** Just enough JWT for the stand-in and for the test's deliberately broken tokens. */
export const jwt = {
    /**
     * Signs `claims`; `alg` names the header's algorithm, `hash` the HMAC actually used
     * (null: no signature, as `alg: none` has).
     */
    sign(claims, secret, { alg = 'HS256', hash = HASHES[alg] ?? null } = {}) {
        const input = `${b64({ alg, typ: 'JWT' })}.${b64(claims)}`;
        const sig = hash ? createHmac(hash, secret).update(input).digest('base64url') : '';
        return `${input}.${sig}`;
    },
    /** Header and claims, unverified. */
    decode(token) {
        const [h, p] = String(token).split('.');
        return { header: JSON.parse(Buffer.from(h, 'base64url')), claims: JSON.parse(Buffer.from(p, 'base64url')) };
    },
    /** The claims of an HS256 token signed with `secret`; throws on anything else. */
    verify(token, secret) {
        const parts = String(token).split('.');
        if (parts.length !== 3) throw new Error('The session token is invalid: malformed');
        const { header, claims } = jwt.decode(token);
        if (header.alg !== 'HS256') throw new Error(`The session token is invalid: algorithm ${header.alg}`);
        const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
        const given = Buffer.from(parts[2], 'base64url');
        // Also refuse non-canonical base64url, whose spare bits a decoder would ignore.
        if (given.length !== expected.length || !timingSafeEqual(given, expected) || given.toString('base64url') !== parts[2]) {
            throw new Error('The session token is invalid: signature');
        }
        return claims;
    },
};

/** The tenant `tenant.example`: its login transactions, keyed by Auth0's `state`. */
export const tenant = {
    domain: 'tenant.example',
    transactions: new Map(),

    /**
     * Starts a login of `user` ({user_id, phone_number?, app_metadata}) with the Action's
     * `secrets`. Returns the transaction: {state, event, api, redirectUrl, outcome}; run the
     * Action's handlers with (tx.event, tx.api).
     */
    login({ user, secrets }) {
        const state = randomBytes(24).toString('base64url');
        const updates = {};
        let denied = null;
        const tx = {
            state,
            redirectUrl: null, // set by sendUserTo
            outcome: null, // set by finish(): {allowed: true, app_metadata} or {denied: reason}
            event: {
                user: { ...user, app_metadata: { ...(user.app_metadata ?? {}) } },
                secrets: { ...secrets },
                request: { hostname: tenant.domain, ip: '127.0.0.1', method: 'GET', query: {}, body: {} },
            },
            api: {
                redirect: {
                    sendUserTo(url, { query = {} } = {}) {
                        const u = new URL(url);
                        for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
                        u.searchParams.set('state', state);
                        tx.redirectUrl = u.href;
                    },
                    encodeToken({ secret, expiresInSeconds = 900, payload = {} }) {
                        if (!secret) throw new Error('encodeToken: a secret is required');
                        const iat = now();
                        return jwt.sign({ ...payload, iss: tenant.domain, sub: tx.event.user.user_id, iat, exp: iat + expiresInSeconds, state }, secret);
                    },
                    validateToken({ secret, tokenParameterName = 'session_token' }) {
                        const { query, body } = tx.event.request;
                        const token = body[tokenParameterName] ?? query[tokenParameterName];
                        if (!token) throw new Error(`The session token is missing: no ${tokenParameterName}`);
                        const claims = jwt.verify(token, secret);
                        if (['iat', 'exp', 'sub', 'iss', 'state'].some((c) => claims[c] === undefined)) {
                            throw new Error('Missing or invalid standard claims');
                        }
                        if (typeof claims.exp !== 'number' || claims.exp <= now()) throw new Error('The session token is expired');
                        if (claims.state !== state) throw new Error('State in the token does not match the /continue state');
                        if (claims.sub !== tx.event.user.user_id) throw new Error('Missing or invalid standard claims');
                        return claims;
                    },
                },
                user: {
                    setAppMetadata(key, value) { updates[key] = value; },
                },
                access: {
                    deny(reason) { denied ??= reason; },
                },
            },
            /** Ends the flow: Auth0 saves the metadata, and the login is allowed or denied. */
            finish() {
                Object.assign(tx.event.user.app_metadata, updates);
                tx.outcome = denied !== null ? { denied } : { allowed: true, app_metadata: { ...tx.event.user.app_metadata } };
                return tx.outcome;
            },
        };
        tenant.transactions.set(state, tx);
        return tx;
    },

    /**
     * A request to https://tenant.example/continue?state=…: the transaction it resumes, with the
     * request's query in `event.request`, or null for an unknown or finished one (Auth0 answers
     * those with invalid_request). A transaction resumes once.
     */
    resume(url) {
        const u = new URL(url);
        const tx = tenant.transactions.get(u.searchParams.get('state'));
        if (!tx || u.host !== tenant.domain || u.pathname !== '/continue') return null;
        tenant.transactions.delete(tx.state);
        tx.event.request.query = Object.fromEntries(u.searchParams);
        return tx;
    },
};
