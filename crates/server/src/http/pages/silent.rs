//! The login pages' silent step: the code page offers the flow's check link (opened by the
//! script when the device is on mobile data), the device comes back with `silent=done` (continue)
//! or `silent=sms` (a code is on its way), and "Get a code by SMS instead" falls back at once.
use super::{CodeForm, PageCtx, code_page_of, code_url, return_to, status_of};
use crate::http::AppState;
use crate::http::session::cookie;
use axum::extract::{Form, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phonegate_core::accounts::{FlowStarted, SessionKind};

/// The cookie naming the silent flow this browser started: only that browser may finish it.
/// Over HTTPS it has the `__Host-` prefix (so `Path=/`), and the unprefixed name is not read: a
/// sibling host could plant it to finish its own flow in this browser.
fn flow_cookie(secure: bool) -> &'static str {
    if secure { "__Host-phonegate_flow" } else { "phonegate_flow" }
}

/// A started flow's code page; a silent one also marks this browser as the flow's.
pub(super) fn to_flow(s: &AppState, ctx: &PageCtx, flow: &FlowStarted, back: &str) -> Response {
    let mut response = ctx.redirect(s, &flow_url(flow, back));
    if flow.check_url.is_some() {
        let secure = if s.secure_cookies { "; Secure" } else { "" };
        let name = flow_cookie(s.secure_cookies);
        let cookie = format!("{name}={}; Path=/; HttpOnly; SameSite=Lax{secure}", flow.flow_id);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        // The operator's round trip comes back without the return address: keep it here.
        let name = return_cookie(s.secure_cookies);
        let cookie = format!("{name}={}; Path=/; HttpOnly; SameSite=Lax{secure}", super::urlencode(back));
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

fn return_cookie(secure: bool) -> &'static str {
    if secure { "__Host-phonegate_return" } else { "phonegate_return" }
}

/// Where a silent flow was to return, as its start kept it (still checked by `return_to`).
pub(super) fn kept_return(s: &AppState, ctx: &PageCtx) -> Option<String> {
    let raw = cookie(&ctx.headers, return_cookie(s.secure_cookies))?;
    url::form_urlencoded::parse(format!("r={raw}").as_bytes()).next().map(|(_, v)| v.to_string()).filter(|v| !v.is_empty())
}

/// Where a started flow continues: its code page, with its check link when it has one.
fn flow_url(flow: &FlowStarted, back: &str) -> String {
    let mut url = code_url(&flow.flow_id, back);
    if let Some(token) = flow.check_url.as_deref().and_then(|p| p.strip_prefix("/silent/")) {
        url.push_str(&format!("&check={token}"));
    }
    url
}

/// A check link token as phonegate makes them (43 characters of URL-safe base64).
pub(super) fn is_token(t: &str) -> bool {
    t.len() == 43 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The code page's policy with this server's script (and its coverage request) allowed.
pub(super) fn allow_script(response: &mut Response) {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
}

pub(super) async fn script() -> Response {
    let mut r = include_str!("../../../assets/silent.js").into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// The operator confirmed the number: the flow completes as with a right code.
pub(super) async fn continue_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<CodeForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let back = return_to(&s, f.return_to.as_deref());
    // Another browser (a link someone was sent) may not finish this browser's flow.
    if cookie(&ctx.headers, flow_cookie(s.secure_cookies)) != Some(f.flow.as_str()) {
        let e = phonegate_core::VerifyError::NoSilentCheck;
        let page = code_page_of(&s, &ctx, f.flow, Some(ctx.t.error(&e)), None, back);
        return ctx.render(&s, StatusCode::FORBIDDEN, &page);
    }
    let owner = match ctx.principal(&s).await {
        Ok(p) => p.map(|p| p.user_id),
        Err(r) => return r,
    };
    let result = s.accounts.verify_silent(&ctx.caller, &f.flow, &f.proof, SessionKind::Browser, ctx.device(), owner.as_deref()).await;
    super::verified_page(&s, &ctx, f.flow, back, result)
}

/// "Get a code by SMS instead": the silent check ends and the code goes out.
pub(super) async fn fallback_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<CodeForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let back = return_to(&s, f.return_to.as_deref());
    match s.accounts.fall_back(&ctx.caller, &f.flow).await {
        Ok(()) => ctx.redirect(&s, &format!("{}&silent=sms", code_url(&f.flow, &back))),
        Err(e) => {
            let page = code_page_of(&s, &ctx, f.flow, Some(ctx.t.error(&e)), None, back);
            ctx.render(&s, status_of(&e), &page)
        }
    }
}
