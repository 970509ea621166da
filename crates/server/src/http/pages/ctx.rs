//! What every page request carries (`PageCtx`): its language, the anti-forgery cookie and the
//! caller; and how a page answers: rendered, redirected, refused as forged, or failed.
use super::texts::{self, Texts};
use super::{MessagePage, status_of};
use crate::http::AppState;
use crate::http::session::{cookie, csrf_cookie, session_cookie, set_csrf};
use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{Html, IntoResponse, Response};
use phonegate_core::accounts::{Principal, session::device_name};
use phonegate_core::{Caller, VerifyError};
use secrecy::{ExposeSecret, SecretString};

/// What every page request carries: the language, the anti-forgery cookie, the caller.
pub struct PageCtx {
    pub(super) t: &'static Texts,
    /// The anti-forgery cookie's value; `fresh` when this answer must set it.
    pub(super) anchor: String,
    pub(super) fresh: bool,
    pub(super) caller: Caller,
    pub(super) headers: HeaderMap,
}

impl FromRequestParts<AppState> for PageCtx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let t = texts::pick(parts.headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
        let existing = cookie(&parts.headers, csrf_cookie(s.secure_cookies)).filter(|v| (20..=64).contains(&v.len())).map(str::to_string);
        let (anchor, fresh) = match existing {
            Some(a) => (a, false),
            None => (phonegate_core::accounts::session::new_secret("").0.expose_secret().to_string(), true),
        };
        Ok(PageCtx { t, anchor, fresh, caller: crate::http::session::end_user(parts), headers: parts.headers.clone() })
    }
}

impl PageCtx {
    pub(super) fn csrf(&self, s: &AppState) -> String {
        s.accounts.csrf_token(&self.anchor)
    }

    /// A form is accepted only with the token of this browser's anti-forgery cookie: the
    /// refusal page for one without it.
    pub(super) fn forged(&self, s: &AppState, token: &str) -> Option<Response> {
        if !self.fresh && s.accounts.csrf_valid(&self.anchor, token) {
            return None;
        }
        let page = MessagePage {
            t: self.t,
            title: self.t.form_expired_title,
            message: self.t.form_expired,
            link: "/login",
            link_text: self.t.back,
        };
        Some(self.render(s, StatusCode::FORBIDDEN, &page))
    }

    pub(super) fn render(&self, s: &AppState, status: StatusCode, page: &impl Template) -> Response {
        let html = page.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "a page did not render");
            String::from("<!doctype html><title>phonegate</title><p>Something went wrong.</p>")
        });
        let mut response = (status, Html(html)).into_response();
        self.finish(s, &mut response);
        response
    }

    /// `303 See Other` to one of our pages or a checked return address.
    pub(super) fn redirect(&self, s: &AppState, to: &str) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(to) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        self.finish(s, &mut response);
        response
    }

    pub(super) fn finish(&self, s: &AppState, response: &mut Response) {
        let h = response.headers_mut();
        if self.fresh {
            h.append(header::SET_COOKIE, set_csrf(s.secure_cookies, &self.anchor));
        }
        // The CSP, framing and sniffing headers come from `http::headers` like everyone's.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }

    pub(super) fn locale(&self) -> Option<String> {
        Some(self.t.lang.to_string())
    }

    pub(super) fn device(&self) -> Option<String> {
        device_name(self.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()))
    }

    /// The signed-in user of this browser, if any; a failure of the server is its error page.
    pub(super) async fn principal(&self, s: &AppState) -> Result<Option<Principal>, Response> {
        let Some(value) = cookie(&self.headers, session_cookie(s.secure_cookies)) else { return Ok(None) };
        match s.accounts.authenticate_cookie(&SecretString::from(value)).await {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.detail().is_some() => Err(self.failed(s, &e)),
            Err(_) => Ok(None),
        }
    }

    /// The signed-in user of this browser, or the answer: a redirect to `login`, or the error page.
    pub(super) async fn signed_in(&self, s: &AppState, login: &str) -> Result<Principal, Response> {
        self.principal(s).await?.ok_or_else(|| self.redirect(s, login))
    }

    /// A page that only says what went wrong, with the error's status.
    pub(super) fn failed(&self, s: &AppState, e: &VerifyError) -> Response {
        let message = self.t.error(e);
        let page = MessagePage { t: self.t, title: self.t.error_title, message: &message, link: "/", link_text: self.t.back };
        self.render(s, status_of(e), &page)
    }
}
