//! `POST /api/me/email` and `/api/me/email/verify`: the signed-in user proves an e-mail address,
//! which becomes the account's, verified (the rules are the core's, `accounts/me_email.rs`).
use super::AppState;
use super::accounts::{FlowView, UserView};
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::session::SignedIn;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change_email)).routes(routes!(verify_email))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    /// The address to prove (`name@example.com`; an internationalised domain is kept in its
    /// ASCII form).
    email: String,
    /// Language of the e-mail (`en`, `de`…).
    locale: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailCodeBody {
    /// The code from the e-mail.
    code: String,
    /// The flow `POST /api/me/email` answered; without it, the account's newest pending one.
    flow_id: Option<String>,
}

/// Starts the proof of an e-mail address: a code goes to it by e-mail. The answer is the same
/// whether or not another account has the address; for one another account has verified,
/// nothing is sent and no code is right.
#[utoipa::path(post, path = "/api/me/email", tag = "accounts", request_body = EmailBody,
    responses((status = 202, body = FlowView), (status = 400, body = ErrorBody, description = "invalid_parameter: `email` is not an address"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "reauthentication_required: the last login is older than `[accounts] reauth`; csrf_failed: signed in by the session cookie, but not sent from this server's own pages"),
        (status = 429, body = ErrorBody, description = "the address's, its domain's or the caller's e-mail budget is spent")))]
async fn change_email(State(s): State<AppState>, me: SignedIn, ApiJson(b): ApiJson<EmailBody>) -> Result<impl IntoResponse, ApiError> {
    let flow = s.accounts.change_email(&me.caller, &me.principal, &b.email, b.locale).await?;
    Ok((StatusCode::ACCEPTED, Json(FlowView::from(flow))))
}

/// Checks the code sent to the address: it becomes the account's e-mail address, verified
/// (`email_verified: true`).
#[utoipa::path(post, path = "/api/me/email/verify", tag = "accounts", request_body = EmailCodeBody,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody, description = "code_incorrect (with the attempts left), invalid_parameter"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "reauthentication_required; csrf_failed"),
        (status = 404, body = ErrorBody, description = "flow_not_found: no pending e-mail change of this account"),
        (status = 409, body = ErrorBody, description = "email_taken: another account verified the address meanwhile"),
        (status = 410, body = ErrorBody, description = "code_expired"), (status = 429, body = ErrorBody)))]
async fn verify_email(State(s): State<AppState>, me: SignedIn, ApiJson(b): ApiJson<EmailCodeBody>) -> Result<Json<UserView>, ApiError> {
    let user = s.accounts.verify_email(&me.caller, &me.principal, b.flow_id.as_deref(), &b.code).await?;
    Ok(Json(user.into()))
}
