"""phonegate as an OpenID Connect provider, driven by Authlib's relying party on `requests`:
discovery, authorization code + PKCE, ID token validation (Authlib's own OpenID code: signature by
the JWKS, issuer, audience, nonce, at_hash), userinfo, refresh rotation, revocation (RFC 7009),
introspection (RFC 7662) and RP-initiated logout, with a confidential and a public client. The
user signs in by phone in a scripted browser with one of run.sh's test numbers."""
import base64
import json
import os
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session, OAuthError

from conftest import BASE

ISSUER = BASE.rstrip("/")
SECRET = os.environ["SDK_OIDC_SECRET"]
TEST_CODE = os.environ["SDK_TEST_CODE"]
RP = "http://127.0.0.1:3000"
WEB_CALLBACK = f"{RP}/py-web/callback"
WEB_LOGGED_OUT = f"{RP}/py-web/"
SPA_CALLBACK = f"{RP}/py-spa/callback"


class RelyingParty(OpenIDMixin):
    """Authlib's OpenID mixin (what its Flask, Django and Starlette clients validate ID tokens and
    build logout URLs with) on its requests-based OAuth2Session, without a web framework."""

    def __init__(self, client_id, client_secret=None, auth_method=None, redirect_uri=None, scope=None):
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        r = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10)
        r.raise_for_status()
        self.server_metadata = r.json()
        self.session_kwargs = dict(
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method=auth_method,
            revocation_endpoint_auth_method=auth_method,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge_method="S256",
            default_timeout=10,
        )

    def load_server_metadata(self):
        return self.server_metadata

    def _get_session(self):
        return OAuth2Session(**self.session_kwargs)

    def session(self, token=None):
        return OAuth2Session(token=token, **self.session_kwargs)

    def begin(self, **params):
        """An authorization request with PKCE (S256), state and nonce: (url, session, nonce, verifier)."""
        session = self.session()
        verifier = generate_token(48)
        nonce = generate_token(20)
        url, state = session.create_authorization_url(
            self.server_metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **params
        )
        session.state = state  # fetch_token checks the callback's state against it
        return url, session, nonce, verifier

    def finish(self, session, callback, nonce, verifier):
        """The code exchange (Authlib checks the state), then the ID token validated by Authlib."""
        session.register_compliance_hook("access_token_response", self._keep)
        token = session.fetch_token(
            self.server_metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
        return token, self.parse_id_token(token, nonce=nonce, leeway=5)

    def _keep(self, response):
        self.token_response = response
        return response

    def userinfo_of(self, token):
        r = self.session(token).get(self.server_metadata["userinfo_endpoint"])
        r.raise_for_status()
        return r.json()

    def refresh(self, refresh_token, **kwargs):
        return self.session().refresh_token(self.server_metadata["token_endpoint"], refresh_token=refresh_token, **kwargs)

    def revoke(self, token, hint=None):
        return self.session().revoke_token(self.server_metadata["revocation_endpoint"], token=token, token_type_hint=hint)

    def introspect(self, token, hint=None):
        r = self.session().introspect_token(self.server_metadata["introspection_endpoint"], token=token, token_type_hint=hint)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()


def web():
    """The confidential, third-party client (consent page), authenticated by client_secret_post."""
    return RelyingParty("py-web", SECRET, "client_secret_post", WEB_CALLBACK, "openid profile phone offline_access")


def spa():
    """The public, first-party client (no secret, PKCE required, no consent page; ES256 ID tokens)."""
    return RelyingParty("py-spa", None, "none", SPA_CALLBACK, "openid phone")


def other():
    """Another confidential client (a resource server of another app)."""
    return RelyingParty("py-rs", SECRET, "client_secret_basic", f"{RP}/py-rs/callback")


# --- the browser ------------------------------------------------------------------------------


class Forms(HTMLParser):
    """The forms of a page: [{action, method, inputs: {name: value}, buttons: [{name, value, text}]}]."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.forms, self._button = [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(), "inputs": {}, "types": {}, "buttons": []})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value", "")
            self.forms[-1]["types"][a["name"]] = a.get("type", "text")
        elif tag == "button" and self.forms:
            self._button = {"name": a.get("name"), "value": a.get("value", ""), "text": ""}
            self.forms[-1]["buttons"].append(self._button)

    def handle_data(self, data):
        if self._button is not None:
            self._button["text"] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None:
            self._button["text"] = self._button["text"].strip()
            self._button = None


class Browser:
    """A browser on phonegate's origin: a cookie jar, redirects followed while they stay there."""

    def __init__(self):
        self.http = requests.Session()
        self.http.headers.update({"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) phonegate-sdk-tests", "Accept-Language": "en"})
        self.pages = []

    def session_cookie(self):
        return next(((c.name, c.value) for c in self.http.cookies if c.name.endswith("phonegate_session")), None)

    def go(self, url, data=None):
        """Returns the final page (a Response) or, once sent elsewhere, the URL it was sent to (a str)."""
        url = urljoin(ISSUER + "/", url)
        headers = {"Origin": ISSUER} if data is not None else {}
        r = self.http.request("POST" if data is not None else "GET", url, data=data, headers=headers, allow_redirects=False, timeout=10)
        for _ in range(20):
            if not r.is_redirect:
                if "text/html" in r.headers.get("content-type", ""):
                    self.pages.append(urlsplit(r.url).path)
                return r
            target = urljoin(r.url, r.headers["location"])
            if not target.startswith(ISSUER + "/"):
                return target
            r = self.http.get(target, allow_redirects=False, timeout=10)
        raise AssertionError(f"redirect loop at {r.url}")

    def submit(self, form, values=None, button=None):
        data = {k: v for k, v in form["inputs"].items() if form["types"][k] == "hidden"}
        data.update(values or {})
        if button and button["name"]:
            data[button["name"]] = button["value"]
        return self.go(form["action"], data)


def form_of(page, predicate, what):
    for f in Forms(page.text).forms:
        if predicate(f):
            return f
    raise AssertionError(f"no {what} form on {page.url} (HTTP {page.status_code}): {' '.join(page.text.split())[:600]}")


def authorize(browser, url, phone=None, username=None, consent="allow"):
    """Plays the user from an authorization URL to the client's redirect URI: signs up (with
    `username`) or logs in with `phone` if asked, enters the code, answers the consent page."""
    page = browser.go(url)
    for _ in range(10):
        if isinstance(page, str):
            return page
        path = urlsplit(page.url).path
        if path == "/login":
            assert phone, f"phonegate asked for a login ({page.url}) where none was expected"
            login = form_of(page, lambda f: "phone" in f["inputs"], "login")
            assert login["inputs"]["return_to"].startswith("/oauth2/authorize/resume"), login["inputs"]
            if username:
                page = browser.go("/signup?" + urlencode({"return_to": login["inputs"]["return_to"]}))
                signup = form_of(page, lambda f: "username" in f["inputs"], "sign-up")
                page = browser.submit(signup, {"username": username, "phone": phone, "email": "", "password": ""})
            else:
                page = browser.submit(login, {"phone": phone})
        elif path == "/login/code":
            page = browser.submit(form_of(page, lambda f: f["action"] == "/login/code", "code"), {"code": TEST_CODE})
        elif any(f["action"] == "/oauth2/consent" for f in Forms(page.text).forms):
            form = form_of(page, lambda f: f["action"] == "/oauth2/consent", "consent")
            labels = ("Allow", "Erlauben") if consent == "allow" else ("Deny", "Ablehnen")
            button = next((b for b in form["buttons"] if b["text"] in labels), None)
            assert button, f"no {consent} button: {form['buttons']}"
            page = browser.submit(form, {}, button)
        else:
            raise AssertionError(f"unexpected page {page.url} (HTTP {page.status_code}): {' '.join(page.text.split())[:600]}")
    raise AssertionError("the sign-in did not end")


def query(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def sign_in(rp, browser, phone=None, username=None, consent="allow", **params):
    url, session, nonce, verifier = rp.begin(**params)
    callback = authorize(browser, url, phone, username, consent)
    assert callback.split("?")[0] == params.get("redirect_uri", rp.redirect_uri), callback
    assert query(callback).get("iss") == ISSUER, callback
    token, claims = rp.finish(session, callback, nonce, verifier)
    return token, claims, callback, verifier


def oauth_error(call):
    with pytest.raises(OAuthError) as e:
        call()
    return e.value.error


# --- the tests --------------------------------------------------------------------------------


def test_discovery_and_jwks():
    m = RelyingParty("py-web").server_metadata
    assert m["issuer"] == ISSUER
    assert m["authorization_endpoint"] == f"{ISSUER}/oauth2/authorize"
    assert m["token_endpoint"] == f"{ISSUER}/oauth2/token"
    assert m["userinfo_endpoint"] == f"{ISSUER}/oauth2/userinfo"
    assert m["revocation_endpoint"] == f"{ISSUER}/oauth2/revoke"
    assert m["introspection_endpoint"] == f"{ISSUER}/oauth2/introspect"
    assert m["end_session_endpoint"] == f"{ISSUER}/oauth2/logout"
    assert m["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert m["response_types_supported"] == ["code"]
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert {"RS256", "ES256"} <= set(m["id_token_signing_alg_values_supported"])
    assert "none" not in m["id_token_signing_alg_values_supported"]
    assert {"openid", "profile", "phone", "email", "offline_access"} <= set(m["scopes_supported"])
    assert {"client_secret_basic", "client_secret_post", "none"} <= set(m["token_endpoint_auth_methods_supported"])
    keys = RelyingParty("py-web").fetch_jwk_set()["keys"]
    assert any(k["kty"] == "RSA" for k in keys), keys
    assert all("d" not in k for k in keys), "the JWKS must hold public keys only"


def test_confidential_client_code_pkce_userinfo_introspection():
    rp, browser = web(), Browser()
    phone, username = "+447700900201", "py-oidc-201"
    token, claims, _, _ = sign_in(rp, browser, phone, username)
    assert any(p.startswith("/oauth2/") for p in browser.pages), f"a third-party client gets the consent page: {browser.pages}"
    assert token["token_type"].lower() == "bearer"
    assert "no-store" in rp.token_response.headers.get("cache-control", ""), "RFC 6749 5.1: tokens are not cached"
    assert token["refresh_token"]
    assert sorted(token["scope"].split()) == ["offline_access", "openid", "phone", "profile"]
    # Validated by Authlib: signature (JWKS, RS256), iss, aud, exp, iat, nonce, at_hash.
    assert claims["iss"] == ISSUER and claims["aud"] in ("py-web", ["py-web"])
    assert claims["phone_number"] == phone
    assert claims["phone_number_verified"] is True
    assert claims["preferred_username"] == username
    assert "email" not in claims
    assert claims["amr"] == ["sms"]
    assert claims["acr"] == "1"
    assert abs(claims["auth_time"] - time.time()) < 120

    info = rp.userinfo_of(token)
    assert info["sub"] == claims["sub"]
    assert info["phone_number"] == phone and info["phone_number_verified"] is True
    assert info["preferred_username"] == username
    assert "email" not in info

    intro = rp.introspect(token["access_token"], "access_token")
    assert intro["active"] is True
    assert (intro["client_id"], intro["sub"], intro["iss"]) == ("py-web", claims["sub"], ISSUER)
    assert sorted(intro["scope"].split()) == ["offline_access", "openid", "phone", "profile"]
    assert intro["exp"] > time.time()
    # Another client's introspection learns nothing; an unauthenticated one is refused.
    assert other().introspect(token["access_token"]) == {"active": False}
    r = requests.post(rp.server_metadata["introspection_endpoint"], data={"token": token["access_token"]}, timeout=10)
    assert r.status_code == 401, (r.status_code, r.text)

    # A userinfo request with a token that is not one is refused with a Bearer challenge.
    r = requests.get(rp.server_metadata["userinfo_endpoint"], headers={"Authorization": "Bearer nope"}, timeout=10)
    assert r.status_code == 401
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")


def test_refresh_rotates_and_the_spent_token_fails():
    rp = web()
    token, claims, _, _ = sign_in(rp, Browser(), "+447700900202", "py-oidc-202")
    first = token["refresh_token"]
    new = rp.refresh(first)
    assert new["access_token"] != token["access_token"]
    assert new["refresh_token"] and new["refresh_token"] != first
    # A new ID token too (the provider promises one), validated by Authlib as the first.
    assert new.get("id_token"), f"a refresh answers a new ID token: {sorted(new)}"
    refreshed = rp.parse_id_token(new, nonce=None, leeway=5)
    assert refreshed["sub"] == claims["sub"]
    assert rp.userinfo_of(new)["sub"] == claims["sub"]
    assert oauth_error(lambda: rp.refresh(first)) == "invalid_grant"
    # Reusing a spent token ends the whole grant.
    assert oauth_error(lambda: rp.refresh(new["refresh_token"])) == "invalid_grant"


def test_revocation_rfc7009():
    rp = web()
    token, _, _, _ = sign_in(rp, Browser(), "+447700900203", "py-oidc-203")
    refresh = token["refresh_token"]
    assert rp.introspect(refresh, "refresh_token")["active"] is True
    r = rp.revoke(refresh, "refresh_token")
    assert r.status_code == 200, r.text
    assert oauth_error(lambda: rp.refresh(refresh)) == "invalid_grant"
    assert rp.introspect(refresh) == {"active": False}
    # An unknown or already revoked token is not an error (RFC 7009 2.2).
    assert rp.revoke(refresh).status_code == 200
    assert rp.revoke("never-issued").status_code == 200
    # A wrong secret is (RFC 6749 5.2: 401, or 400 for credentials in the body).
    r = RelyingParty("py-web", "wrong-secret", "client_secret_post", WEB_CALLBACK).revoke("never-issued")
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client", (r.status_code, r.text)


def test_public_client_requires_pkce_and_signs_in_without_secret():
    rp, browser = spa(), Browser()
    # Without a code challenge: refused back at the (valid) redirect URI.
    bare = f"{rp.server_metadata['authorization_endpoint']}?" + urlencode(
        {"response_type": "code", "client_id": "py-spa", "redirect_uri": SPA_CALLBACK, "scope": "openid", "state": "s1"}
    )
    refused = browser.go(bare)
    assert isinstance(refused, str), f"expected a redirect to the client, got {refused.url}"
    q = query(refused)
    assert (q.get("error"), q.get("state"), q.get("iss")) == ("invalid_request", "s1", ISSUER), refused
    assert "code" not in q

    phone = "+447700900204"
    token, claims, callback, verifier = sign_in(rp, browser, phone, "py-oidc-204")
    assert not any(p.startswith("/oauth2/") for p in browser.pages), f"a first-party client gets no consent page: {browser.pages}"
    assert claims["phone_number"] == phone and claims["phone_number_verified"] is True
    assert "preferred_username" not in claims
    assert "refresh_token" not in token
    assert sorted(rp.userinfo_of(token)) == ["phone_number", "phone_number_verified", "sub"]
    # ES256, as this client is configured (Authlib checked the signature with the EC key).
    header = json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "ES256", header
    # The code is single use.
    session = rp.session()
    with pytest.raises(OAuthError) as e:
        session.fetch_token(rp.server_metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    assert e.value.error == "invalid_grant"


def test_consent_denied_returns_access_denied():
    rp = web()
    url, _, _, _ = rp.begin(state="deny-state")
    callback = authorize(Browser(), url, "+447700900205", "py-oidc-205", consent="deny")
    q = query(callback)
    assert (q.get("error"), q.get("state"), q.get("iss")) == ("access_denied", "deny-state", ISSUER)
    assert "code" not in q


def test_rp_initiated_logout():
    rp, browser = web(), Browser()
    token, _, _, _ = sign_in(rp, browser, "+447700900206", "py-oidc-206")
    old = browser.session_cookie()
    assert old, "signed in with a session cookie"
    logout = rp.create_logout_url(post_logout_redirect_uri=WEB_LOGGED_OUT, id_token_hint=token["id_token"])
    back = browser.go(logout["url"])
    assert isinstance(back, str), f"expected a redirect to the client, got {back.url} (HTTP {back.status_code})"
    assert back.split("?")[0] == WEB_LOGGED_OUT
    assert query(back).get("state") == logout["state"]
    assert browser.session_cookie() is None, "the session cookie is cleared"
    # prompt=none now says login_required…
    url, _, _, _ = rp.begin(prompt="none", state="after-logout")
    q = query(authorize(browser, url))
    assert (q.get("error"), q.get("state")) == ("login_required", "after-logout"), q
    # …and the old cookie, replayed, signs nobody in.
    replay = Browser()
    replay.http.headers["Cookie"] = f"{old[0]}={old[1]}"
    page = replay.go("/account")
    assert urlsplit(page.url).path == "/login"
