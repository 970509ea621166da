//! The account page's e-mail forms: send a code to an address (`/account/email`), then enter
//! it (`/account/email/verify`); the address becomes the account's, verified.
use super::account::{account_with, flow_id};
use super::{PageCtx, status_of};
use crate::http::AppState;
use axum::extract::{Form, State};
use axum::response::Response;
use phonegate_core::VerifyError;
use phonegate_core::error::Field;
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

#[derive(Deserialize)]
pub(super) struct EmailCodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    flow: String,
    #[serde(default)]
    code: String,
}

/// The refusal in the page's words (the e-mail section's own where the general one misleads).
fn message(ctx: &PageCtx, e: &VerifyError) -> String {
    match e {
        VerifyError::InvalidParameter { field: Field::Email, .. } => ctx.t.email_required.to_string(),
        VerifyError::ReauthenticationRequired => ctx.t.email_reauth.to_string(),
        VerifyError::CodeIncorrect { .. } => ctx.t.email_code_incorrect.to_string(),
        _ => ctx.t.error(e),
    }
}

pub(super) async fn submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<EmailForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let p = match ctx.signed_in(&s, "/login").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.accounts.change_email(&ctx.caller, &p, f.email.trim(), ctx.locale()).await {
        Ok(flow) => ctx.redirect(&s, &format!("/account?email_flow={}#email", flow.flow_id)),
        Err(e) => account_with(&s, &ctx, &p, (Some(message(&ctx, &e)), None), None, status_of(&e)).await,
    }
}

pub(super) async fn verify_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<EmailCodeForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let p = match ctx.signed_in(&s, "/login").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let code: String = f.code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let flow = flow_id(Some(f.flow));
    let result = match &flow {
        _ if code.is_empty() || !code.chars().all(|c| c.is_ascii_digit()) => Err(VerifyError::CodeIncorrect { attempts_left: 0 }),
        None => Err(VerifyError::FlowNotFound),
        Some(id) => s.accounts.verify_email(&ctx.caller, &p, Some(id), &code).await,
    };
    match result {
        Ok(_) => ctx.redirect(&s, "/account?done=email"),
        // Still waiting for the right code: the form stays.
        Err(e @ VerifyError::CodeIncorrect { .. }) => {
            account_with(&s, &ctx, &p, (Some(message(&ctx, &e)), None), flow, status_of(&e)).await
        }
        Err(e) => account_with(&s, &ctx, &p, (Some(message(&ctx, &e)), None), None, status_of(&e)).await,
    }
}
