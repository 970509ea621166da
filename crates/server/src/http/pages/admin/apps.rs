//! The apps' page: the OpenID clients (the configuration's, read-only, and the admins'), adding
//! one (its secret shown once, on the answer itself), a new secret, deleting one.
use super::super::{PageCtx, status_of, texts::Texts};
use super::texts::AdminTexts;
use super::{Frame, Section, admin, admin_post, words};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use phonegate_core::accounts::Principal;
use phonegate_core::oidc::{NewClient, OidcClient};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

struct AppRow {
    client_id: String,
    name: String,
    kind: &'static str,
    redirects: String,
    public: bool,
    configured: bool,
}

/// A client just made or re-keyed: its id and secret, this once.
struct Shown {
    client_id: String,
    name: String,
    secret: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_apps.html")]
struct AppsPage {
    t: &'static Texts,
    a: &'static AdminTexts,
    frame: Frame,
    csrf: String,
    apps: Vec<AppRow>,
    shown: Option<Shown>,
}

#[derive(Deserialize, Default)]
pub(super) struct AppsQuery {
    done: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct AppForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    public: Option<String>,
    first_party: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ClientForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    client_id: String,
}

pub(super) async fn page(State(s): State<AppState>, ctx: PageCtx, Query(q): Query<AppsQuery>) -> Response {
    match admin(&s, &ctx, Section::Apps).await {
        Ok(p) => render(&s, &ctx, &p, (words(&ctx).1.notice(q.done.as_deref()), None), None, StatusCode::OK).await,
        Err(r) => r,
    }
}

async fn render(
    s: &AppState,
    ctx: &PageCtx,
    p: &Principal,
    (notice, error): (Option<&'static str>, Option<String>),
    shown: Option<Shown>,
    status: StatusCode,
) -> Response {
    let (t, a) = words(ctx);
    let clients = match s.oidc.clients(p).await {
        Ok(c) => c,
        Err(e) => return ctx.failed(s, &e),
    };
    let apps = clients
        .into_iter()
        .map(|c| AppRow {
            kind: if c.is_public() { a.app_kind_public } else { a.app_kind_confidential },
            public: c.is_public(),
            configured: c.configured,
            redirects: c.redirect_uris.join(" "),
            client_id: c.client_id,
            name: c.name,
        })
        .collect();
    let page = AppsPage { t, a, frame: Frame::new(a, Section::Apps, error, notice), csrf: ctx.csrf(s), apps, shown };
    ctx.render(s, status, &page)
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn shown(client: &OidcClient, secret: Option<SecretString>) -> Shown {
    Shown { client_id: client.client_id.clone(), name: client.name.clone(), secret: secret.map(|s| s.expose_secret().to_string()) }
}

pub(super) async fn create(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<AppForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf, Section::Apps).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client = OidcClient {
        name: f.name.trim().to_string(),
        redirect_uris: lines(&f.redirect_uris),
        post_logout_redirect_uris: lines(&f.post_logout_redirect_uris),
        first_party: f.first_party.is_some(),
        ..OidcClient::default()
    };
    match s.oidc.create_client(&ctx.caller, &p, NewClient { client, public: f.public.is_some() }).await {
        Ok((client, secret)) => render(&s, &ctx, &p, (None, None), Some(shown(&client, secret)), StatusCode::CREATED).await,
        Err(e) => render(&s, &ctx, &p, (None, Some(ctx.t.error(&e))), None, status_of(&e)).await,
    }
}

pub(super) async fn rotate(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<ClientForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf, Section::Apps).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.oidc.rotate_client_secret(&ctx.caller, &p, &f.client_id).await {
        Ok(secret) => {
            let client = s.oidc.client(&f.client_id).await.ok().flatten();
            let name = client.map(|c| c.name).unwrap_or_default();
            let shown = Shown { client_id: f.client_id, name, secret: Some(secret.expose_secret().to_string()) };
            render(&s, &ctx, &p, (None, None), Some(shown), StatusCode::OK).await
        }
        Err(e) => render(&s, &ctx, &p, (None, Some(ctx.t.error(&e))), None, status_of(&e)).await,
    }
}

pub(super) async fn delete(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<ClientForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf, Section::Apps).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.oidc.delete_client(&ctx.caller, &p, &f.client_id).await {
        Ok(()) => ctx.redirect(&s, "/admin/apps?done=app_deleted"),
        Err(e) => render(&s, &ctx, &p, (None, Some(ctx.t.error(&e))), None, status_of(&e)).await,
    }
}
