// A tiny app protected by OpenID Connect (docs/oidc.md), the relying party of oidc.test.js: plain
// node:http with the `openid-client` package. `/` shows "Sign in" (or the signed-in user's verified
// phone number from the ID token and from userinfo, and "Log out"); `/login` starts the
// authorization code flow with PKCE (S256), state and nonce; `/callback` exchanges the code, reads
// userinfo and goes back to `/`; `/logout` ends the app's session and sends the browser to the
// provider's end_session_endpoint (RP-initiated logout: id_token_hint, post_logout_redirect_uri
// back to `/`, state). Sessions are in memory, keyed by the `oidc_demo_session` cookie.
//
// Usage: node oidc-demo.js --issuer URL --client-id ID --client-secret SECRET --port N
//        [--scope "openid profile phone"]
// The app listens on 127.0.0.1:N, so the client's redirect URI is http://127.0.0.1:N/callback and
// its post-logout redirect URI http://127.0.0.1:N/. `/login` passes `prompt` and `login_hint`
// from its own query on to the provider.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as client from 'openid-client';

const COOKIE = 'oidc_demo_session';

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const shown = (v) => (v === undefined ? '(absent)' : typeof v === 'string' ? v : JSON.stringify(v));

function page(title, body) {
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto}dt{font-weight:bold}</style></head>
<body><h1>OIDC demo app</h1>
${body}
</body></html>`;
}

/**
 * Starts the demo app; resolves to {url, close()}. The provider's discovery document is read at
 * the first sign-in (and again after a failure), so the app may start before the provider.
 */
export async function startDemo({ issuer, clientId, clientSecret, port = 0, scope = 'openid profile phone' }) {
    const sessions = new Map(); // session id → {pending?, user?, logout?, error?}
    let base; // http://127.0.0.1:PORT once listening: the redirect URIs are built from it, not from Host
    let discovered;
    const config = () => {
        discovered ??= client.discovery(new URL(issuer), clientId, { client_secret: clientSecret },
            client.ClientSecretBasic(clientSecret), { execute: [client.allowInsecureRequests] })
            .catch((e) => { discovered = undefined; throw e; });
        return discovered;
    };

    const server = http.createServer((req, res) => {
        handle(req, res).catch((e) => {
            console.error(`oidc-demo: ${req.method} ${req.url}:`, e);
            if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/html; charset=utf-8' });
            res.end(page('Error', `<p id="error" role="alert">Error: ${esc(e.error ?? e.code ?? '')} ${esc(e.message)}</p>
<p><a href="/">Back</a></p>`));
        });
    });

    function session(req, res) {
        const sid = /(?:^|;\s*)oidc_demo_session=([\w-]+)/.exec(req.headers.cookie ?? '')?.[1];
        if (sid && sessions.has(sid)) return sessions.get(sid);
        const id = randomBytes(18).toString('base64url');
        const s = {};
        sessions.set(id, s);
        res.setHeader('set-cookie', `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`);
        return s;
    }
    const html = (res, status, title, body) => {
        res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(page(title, body));
    };
    const redirect = (res, location) => {
        res.writeHead(302, { location: String(location), 'cache-control': 'no-store' });
        res.end();
    };

    async function handle(req, res) {
        const url = new URL(req.url, base);
        const s = session(req, res);

        if (url.pathname === '/' && req.method === 'GET') {
            if (s.user) return html(res, 200, 'Signed in', signedIn(s.user));
            // Back from the provider's logout: the state this app sent proves the round trip.
            const state = url.searchParams.get('state');
            let note = '';
            if (state !== null) {
                note = state === s.logout
                    ? '<p id="logout">Signed out at the provider too.</p>'
                    : '<p id="error" role="alert">Logout answer with an unknown state.</p>';
                delete s.logout;
            }
            if (s.error) {
                note += `<p id="error" role="alert">Sign-in failed: ${esc(s.error)}</p>`;
                delete s.error;
            }
            return html(res, 200, 'Signed out', `<p id="status">Signed out</p>
${note}
<p><a href="/login">Sign in</a></p>`);
        }

        if (url.pathname === '/login' && req.method === 'GET') {
            const c = await config();
            const pending = {
                verifier: client.randomPKCECodeVerifier(),
                state: client.randomState(),
                nonce: client.randomNonce(),
            };
            s.pending = pending;
            const params = {
                redirect_uri: `${base}/callback`,
                scope,
                code_challenge: await client.calculatePKCECodeChallenge(pending.verifier),
                code_challenge_method: 'S256',
                state: pending.state,
                nonce: pending.nonce,
            };
            for (const k of ['prompt', 'login_hint', 'max_age']) {
                if (url.searchParams.has(k)) params[k] = url.searchParams.get(k);
            }
            return redirect(res, client.buildAuthorizationUrl(c, params));
        }

        if (url.pathname === '/callback' && req.method === 'GET') {
            const c = await config();
            const pending = s.pending;
            delete s.pending;
            if (url.searchParams.has('error')) {
                // The provider's error answer (e.g. access_denied when the user denies consent).
                s.error = url.searchParams.get('error');
                if (pending && url.searchParams.get('state') !== pending.state) s.error += ' (with a wrong state)';
                return redirect(res, '/');
            }
            if (!pending) return html(res, 400, 'Error', '<p id="error" role="alert">No sign-in in progress.</p><p><a href="/">Back</a></p>');
            const tokens = await client.authorizationCodeGrant(c, url, {
                pkceCodeVerifier: pending.verifier,
                expectedState: pending.state,
                expectedNonce: pending.nonce,
                idTokenExpected: true,
            });
            const claims = tokens.claims();
            const userinfo = await client.fetchUserInfo(c, tokens.access_token, claims.sub);
            s.user = { claims, userinfo, idToken: tokens.id_token, scope: tokens.scope };
            return redirect(res, '/');
        }

        if (url.pathname === '/logout' && req.method === 'GET') {
            const user = s.user;
            delete s.user;
            if (!user) return redirect(res, '/');
            const c = await config();
            s.logout = client.randomState();
            return redirect(res, client.buildEndSessionUrl(c, {
                id_token_hint: user.idToken,
                post_logout_redirect_uri: `${base}/`,
                state: s.logout,
            }));
        }

        html(res, 404, 'Not found', '<p>Not found.</p>');
    }

    function signedIn({ claims, userinfo, scope: granted }) {
        const row = (id, label, v) => `<dt>${esc(label)}</dt><dd id="${id}">${esc(shown(v))}</dd>`;
        return `<p id="status">Signed in</p>
<h2>From the ID token</h2>
<dl>
${row('id-phone_number', 'Phone number', claims.phone_number)}
${row('id-phone_number_verified', 'phone_number_verified', claims.phone_number_verified)}
${row('id-preferred_username', 'Username', claims.preferred_username)}
${row('id-sub', 'sub', claims.sub)}
${row('id-amr', 'amr', claims.amr)}
${row('id-acr', 'acr', claims.acr)}
</dl>
<h2>From userinfo</h2>
<dl>
${row('ui-phone_number', 'Phone number', userinfo.phone_number)}
${row('ui-phone_number_verified', 'phone_number_verified', userinfo.phone_number_verified)}
${row('ui-preferred_username', 'Username', userinfo.preferred_username)}
${row('ui-sub', 'sub', userinfo.sub)}
</dl>
<p>Scope granted: <span id="scope">${esc(granted)}</span></p>
<p><a href="/logout">Log out</a></p>`;
    }

    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', resolve);
    });
    base = `http://127.0.0.1:${server.address().port}`;
    return {
        url: base,
        close: () => new Promise((resolve) => {
            server.close(resolve);
            server.closeAllConnections();
        }),
    };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
    const { values } = parseArgs({
        options: {
            issuer: { type: 'string' },
            'client-id': { type: 'string' },
            'client-secret': { type: 'string' },
            port: { type: 'string', default: '0' },
            scope: { type: 'string' },
        },
    });
    for (const k of ['issuer', 'client-id', 'client-secret']) {
        if (!values[k]) {
            console.error(`oidc-demo: --${k} is required\nusage: node oidc-demo.js --issuer URL --client-id ID --client-secret SECRET --port N [--scope S]`);
            process.exit(2);
        }
    }
    const demo = await startDemo({
        issuer: values.issuer,
        clientId: values['client-id'],
        clientSecret: values['client-secret'],
        port: Number(values.port),
        ...(values.scope ? { scope: values.scope } : {}),
    });
    console.log(`oidc-demo listening on ${demo.url} (issuer ${values.issuer})`);
    const stop = () => demo.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}
