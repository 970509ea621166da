//! The OpenID provider's browser side: `/oauth2/authorize` (and its resumption after the login
//! pages), the consent page and RP-initiated logout. The login itself is the ordinary login
//! pages, which come back to `/oauth2/authorize/resume` with the request sealed.
use super::texts::Texts;
use super::{MessagePage, PageCtx, urlencode};
use crate::http::AppState;
use crate::http::session::set_session;
use askama::Template;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use phonegate_core::oidc::{AuthRequest, Authorized, LogoutOutcome, LogoutRequest, NoRedirect, OAuthError, PendingRequest};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/authorize", get(authorize_get).post(authorize_post))
        .route("/oauth2/authorize/resume", get(resume))
        .route("/oauth2/consent", post(consent_submit))
        .route("/oauth2/logout", get(logout_get).post(logout_post))
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    t: &'a Texts,
    csrf: String,
    request: String,
    client: String,
    scopes: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    t: &'a Texts,
    csrf: String,
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

async fn authorize_get(State(s): State<AppState>, ctx: PageCtx, Query(r): Query<AuthRequest>) -> Response {
    let pending = s.oidc.pending(r);
    authorize(&s, &ctx, pending).await
}

async fn authorize_post(State(s): State<AppState>, ctx: PageCtx, Form(r): Form<AuthRequest>) -> Response {
    let pending = s.oidc.pending(r);
    authorize(&s, &ctx, pending).await
}

#[derive(Deserialize)]
struct ResumeQuery {
    #[serde(default)]
    request: String,
}

async fn resume(State(s): State<AppState>, ctx: PageCtx, Query(q): Query<ResumeQuery>) -> Response {
    match s.oidc.open(&q.request) {
        Some(pending) => authorize(&s, &ctx, pending).await,
        None => error_page(&s, &ctx, &OAuthError::new("invalid_request", "the sign-in request expired; start again from the app")),
    }
}

async fn authorize(s: &AppState, ctx: &PageCtx, pending: PendingRequest) -> Response {
    let browser = match ctx.principal(s).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client = pending.request.client_id.clone();
    let outcome = s.oidc.authorize(&ctx.caller, pending, browser.as_ref()).await;
    answer(s, ctx, client, outcome)
}

/// The browser's next step; counted per client (`phonegate_oidc_authorizations_total`).
fn answer(s: &AppState, ctx: &PageCtx, client: Option<String>, outcome: Result<Authorized, NoRedirect>) -> Response {
    let step = match &outcome {
        Ok(Authorized::Redirect(to)) if to.contains("?code=") || to.contains("&code=") => "code",
        Ok(Authorized::Redirect(_)) => "error",
        Ok(Authorized::Login { .. }) => "login",
        Ok(Authorized::Consent { .. }) => "consent",
        Err(_) => "refused",
    };
    if step != "refused" {
        s.metrics.oidc_authorization(client.as_deref().unwrap_or_default(), step);
    }
    match outcome {
        Ok(Authorized::Redirect(to)) => ctx.redirect(s, &to),
        Ok(Authorized::Login { pending, login_hint }) => {
            let back = format!("/oauth2/authorize/resume?request={}", s.oidc.seal(&pending));
            let mut to = format!("/login?reauth=1&return_to={}", urlencode(&back));
            if let Some(phone) = login_hint {
                to.push_str(&format!("&phone={}", urlencode(&phone)));
            }
            ctx.redirect(s, &to)
        }
        Ok(Authorized::Consent { pending, client, scopes }) => {
            let t = ctx.t;
            let page = ConsentPage {
                t,
                csrf: ctx.csrf(s),
                request: s.oidc.seal(&pending),
                client: client.name,
                scopes: scopes.iter().map(|sc| scope_text(t, sc)).collect(),
            };
            ctx.render(s, StatusCode::OK, &page)
        }
        Err(e) => error_page(s, ctx, &e.0),
    }
}

fn scope_text(t: &Texts, scope: &str) -> &'static str {
    match scope {
        "profile" => t.scope_profile,
        "phone" => t.scope_phone,
        "email" => t.scope_email,
        "offline_access" => t.scope_offline,
        _ => t.scope_openid,
    }
}

/// An error nobody may be sent back for: said on phonegate's own page.
fn error_page(s: &AppState, ctx: &PageCtx, e: &OAuthError) -> Response {
    match e {
        OAuthError::Server(e) => ctx.failed(s, e),
        OAuthError::Protocol { error, description } => {
            let message = format!("{description} ({error})");
            let page = MessagePage { t: ctx.t, title: ctx.t.oidc_error_title, message: &message, link: "/", link_text: ctx.t.back };
            ctx.render(s, StatusCode::BAD_REQUEST, &page)
        }
    }
}

#[derive(Deserialize)]
struct ConsentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    decision: String,
}

async fn consent_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<ConsentForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let Some(pending) = s.oidc.open(&f.request) else {
        return error_page(&s, &ctx, &OAuthError::new("invalid_request", "the sign-in request expired; start again from the app"));
    };
    let browser = match ctx.principal(&s).await {
        Ok(Some(p)) => p,
        Ok(None) => return authorize(&s, &ctx, pending).await,
        Err(r) => return r,
    };
    let client = pending.request.client_id.clone();
    let outcome = s.oidc.consent(&ctx.caller, pending, &browser, f.decision == "allow").await;
    answer(&s, &ctx, client, outcome)
}

async fn logout_get(State(s): State<AppState>, ctx: PageCtx, Query(r): Query<LogoutRequest>) -> Response {
    logout(&s, &ctx, r, false).await
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
    confirm: Option<String>,
    #[serde(flatten)]
    request: LogoutRequest,
}

async fn logout_post(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<LogoutForm>) -> Response {
    // A relying party may POST the logout request itself; only phonegate's own confirmation
    // form (with this browser's CSRF token) confirms it.
    let confirmed = match (&f.csrf, f.confirm.as_deref()) {
        (Some(csrf), Some("yes")) => {
            if let Some(r) = ctx.forged(&s, csrf) {
                return r;
            }
            true
        }
        _ => false,
    };
    logout(&s, &ctx, f.request, confirmed).await
}

async fn logout(s: &AppState, ctx: &PageCtx, r: LogoutRequest, confirmed: bool) -> Response {
    let browser = match ctx.principal(s).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    match s.oidc.logout(&ctx.caller, browser.as_ref(), &r, confirmed).await {
        Ok(LogoutOutcome::Confirm) => {
            let page = LogoutPage {
                t: ctx.t,
                csrf: ctx.csrf(s),
                id_token_hint: r.id_token_hint,
                client_id: r.client_id,
                post_logout_redirect_uri: r.post_logout_redirect_uri,
                state: r.state,
            };
            ctx.render(s, StatusCode::OK, &page)
        }
        Ok(LogoutOutcome::Done(back)) => {
            let mut response = match back {
                Some(to) => ctx.redirect(s, &to),
                None => {
                    let page = MessagePage {
                        t: ctx.t,
                        title: ctx.t.logout_title,
                        message: ctx.t.signed_out,
                        link: "/login",
                        link_text: ctx.t.login_title,
                    };
                    ctx.render(s, StatusCode::OK, &page)
                }
            };
            response.headers_mut().append(header::SET_COOKIE, set_session(s.secure_cookies, None, 0));
            response
        }
        Err(e) => error_page(s, ctx, &e),
    }
}
