//! The account page's password form: set a first password or change it (`/account/password`).
use super::{PageCtx, account, status_of};
use crate::http::AppState;
use axum::extract::{Form, State};
use axum::response::Response;
use phonegate_core::VerifyError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    /// Only on the form of an account that has a password.
    #[serde(default)]
    current_password: SecretString,
    #[serde(default)]
    new_password: SecretString,
}

pub(super) async fn submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<PasswordForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let p = match ctx.signed_in(&s, "/login").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let current = Some(&f.current_password).filter(|c| !c.expose_secret().is_empty());
    match s.accounts.set_password(&ctx.caller, &p, &f.new_password, current).await {
        Ok(_) => ctx.redirect(&s, "/account?done=password"),
        Err(e) => {
            // The number's reauthentication text speaks of changing the number.
            let message = match e {
                VerifyError::ReauthenticationRequired => ctx.t.password_reauth.to_string(),
                _ => ctx.t.error(&e),
            };
            account(&s, &ctx, &p, Some(message), None, status_of(&e)).await
        }
    }
}
