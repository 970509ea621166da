//! The hosted phone step of a signed redirect (`/integrations/{client}/verify`; Auth0 is the
//! client `auth0`): the provider's token in, a number and a code, then back to the client's
//! configured return URL only. Parameters the request adds (`redirect_uri`, `return_to`…) are
//! never read. The sealed step in the form is the only state, and it cannot be forged, so it also
//! stands in for an anti-forgery token.
use super::{PageCtx, texts::Texts};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use phonegate_core::VerifyError;
use phonegate_core::integrations::Step;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Template)]
#[template(path = "step.html")]
struct StepPage<'a> {
    t: &'a Texts,
    client: String,
    step: String,
    phone: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct Refused<'a> {
    t: &'a Texts,
    title: &'a str,
    message: &'a str,
    link: &'a str,
    link_text: &'a str,
}

#[derive(Deserialize)]
pub(super) struct StepForm {
    #[serde(default)]
    step: String,
    phone: Option<String>,
    code: Option<String>,
}

fn page(s: &AppState, ctx: &PageCtx, client: &str, step: Step, error: Option<String>) -> Response {
    let page = StepPage { t: ctx.t, client: client.to_string(), step: step.token, phone: step.phone.map(|p| p.to_string()), error };
    let status = if page.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    ctx.render(s, status, &page)
}

/// An error page: never a redirect.
fn refused(s: &AppState, ctx: &PageCtx, e: &VerifyError) -> Response {
    let message = ctx.t.error(e);
    let page = Refused { t: ctx.t, title: ctx.t.step_refused_title, message: &message, link: "/", link_text: ctx.t.back };
    ctx.render(s, super::status_of(e), &page)
}

pub(super) async fn start(
    State(s): State<AppState>,
    ctx: PageCtx,
    Path(client): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str);
    let result = s
        .integrations
        .begin(
            &ctx.caller,
            &client,
            get("state").unwrap_or_default(),
            get("session_token").unwrap_or_default(),
            get("return_url"),
            ctx.locale(),
        )
        .await;
    match result {
        Ok(step) => page(&s, &ctx, &client, step, None),
        Err(e) => refused(&s, &ctx, &e),
    }
}

pub(super) async fn submit(State(s): State<AppState>, ctx: PageCtx, Path(client): Path<String>, Form(f): Form<StepForm>) -> Response {
    match (f.phone.as_deref(), f.code.as_deref()) {
        (Some(phone), _) => match s.integrations.set_phone(&ctx.caller, &client, &f.step, phone, ctx.locale()).await {
            Ok(step) => page(&s, &ctx, &client, step, None),
            Err(e @ VerifyError::Phone(_)) => page(&s, &ctx, &client, Step { token: f.step, phone: None }, Some(ctx.t.error(&e))),
            Err(e) => refused(&s, &ctx, &e),
        },
        (None, Some(code)) => {
            let code: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
            match s.integrations.check(&ctx.caller, &client, &f.step, &code).await {
                Ok(url) => ctx.redirect(&s, &url),
                Err(e @ (VerifyError::CodeIncorrect { .. } | VerifyError::InvalidParameter { .. })) => {
                    let phone = s.integrations.step_phone(&client, &f.step);
                    page(&s, &ctx, &client, Step { token: f.step, phone }, Some(ctx.t.error(&e)))
                }
                Err(e) => refused(&s, &ctx, &e),
            }
        }
        (None, None) => refused(&s, &ctx, &VerifyError::StepInvalid),
    }
}
