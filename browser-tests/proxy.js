// A tiny forward-auth reverse proxy, standing in for nginx with `auth_request` in front of an app:
//
//   location /app/ { auth_request /_auth; … }      location = /_auth { proxy_pass …/api/auth/forward; }
//   error_page 401 = @login;                          location / { proxy_pass http://phonegate; }
//
// Requests under /app/ are first checked with GET {upstream}/api/auth/forward, carrying only the
// incoming Cookie and Authorization headers. 200: the "app" answers "Protected: hello USER" from
// the X-Phonegate-User header; 401: 302 to /login?return_to=/app/. Every other path goes to
// phonegate unchanged (method, headers incl. Host and Cookie, body; status, headers incl.
// Set-Cookie and Location, body), so the browser sees a single origin.
//
// No dependencies. Used by the tests through startProxy(); also runs on its own:
//   node proxy.js http://127.0.0.1:8080 [PORT]
import http from 'node:http';
import { pathToFileURL } from 'node:url';

// Hop-by-hop headers belong to one connection and are not forwarded (RFC 9110 §7.6.1).
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
    'te', 'trailer', 'transfer-encoding', 'upgrade']);

function endToEnd(raw) {
    const out = [];
    for (let i = 0; i < raw.length; i += 2) {
        if (!HOP.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
    }
    return out;
}

const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Starts the proxy in front of `upstream` (e.g. http://127.0.0.1:8080). Resolves to {url, port, close}. */
export function startProxy(upstream, { port = 0, host = '127.0.0.1' } = {}) {
    const up = new URL(upstream);
    const agent = new http.Agent({ keepAlive: true });

    function forward(req, res) {
        const upReq = http.request({
            host: up.hostname, port: up.port, agent, method: req.method, path: req.url,
            headers: endToEnd(req.rawHeaders),
        }, (upRes) => {
            res.writeHead(upRes.statusCode, upRes.statusMessage, endToEnd(upRes.rawHeaders));
            upRes.pipe(res);
        });
        upReq.on('error', (e) => fail(res, e));
        req.pipe(upReq);
    }

    function authRequest(req, res) {
        const headers = {};
        if (req.headers.cookie !== undefined) headers.cookie = req.headers.cookie;
        if (req.headers.authorization !== undefined) headers.authorization = req.headers.authorization;
        const check = http.request({ host: up.hostname, port: up.port, agent, method: 'GET', path: '/api/auth/forward', headers }, (cr) => {
            cr.resume();
            cr.on('end', () => {
                if (cr.statusCode === 200) {
                    const user = String(cr.headers['x-phonegate-user'] ?? '');
                    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
                    res.end(`<!doctype html><html lang=en><meta charset=utf-8><title>Protected app</title>` +
                        `<h1>Protected: hello ${escapeHtml(user)}</h1></html>`);
                } else if (cr.statusCode === 401) {
                    res.writeHead(302, { location: '/login?return_to=/app/', 'content-length': '0' });
                    res.end();
                } else {
                    // nginx answers 500 when the auth subrequest returns anything else.
                    res.writeHead(500, { 'content-type': 'text/plain' });
                    res.end(`auth request answered ${cr.statusCode}\n`);
                }
            });
        });
        check.on('error', (e) => fail(res, e));
        check.end();
        req.resume();
    }

    const server = http.createServer((req, res) => {
        const path = req.url.split('?')[0];
        if (path === '/app' || path.startsWith('/app/')) authRequest(req, res);
        else forward(req, res);
    });
    return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
            const { port: p } = server.address();
            resolve({
                port: p,
                url: `http://${host}:${p}`,
                close: () => new Promise((r) => { agent.destroy(); server.closeAllConnections(); server.close(() => r()); }),
            });
        });
    });
}

function fail(res, e) {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`bad gateway: ${e.message}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
    const [upstream, port] = process.argv.slice(2);
    if (!upstream) { console.error('usage: node proxy.js UPSTREAM_URL [PORT]'); process.exit(2); }
    const p = await startProxy(upstream, { port: Number(port ?? 0) });
    console.log(`forward-auth proxy on ${p.url} → ${upstream}`);
}
