//! `POST /api/me/password`: the signed-in user sets a first password or changes it (the rules
//! are the core's, `accounts/me_password.rs`).
use super::AppState;
use super::accounts::UserView;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::session::SignedIn;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_password))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// 8–128 characters (as at sign-up).
    #[schema(value_type = String)]
    new_password: SecretString,
    /// The account's password; required when it has one, ignored when it has none.
    #[schema(value_type = Option<String>)]
    current_password: Option<SecretString>,
}

/// Sets the account's password, or changes it (with `current_password`): afterwards logins can be
/// password + code. Setting a first password needs a login within `[accounts] reauth`. Every
/// other session of the account ends; this one stays.
#[utoipa::path(post, path = "/api/me/password", tag = "accounts", request_body = PasswordBody,
    responses((status = 200, body = UserView),
        (status = 400, body = ErrorBody, description = "password_incorrect: `current_password` is not the account's password (counted as a failed login); invalid_parameter: `new_password` breaks the rule, or `current_password` is missing"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "reauthentication_required: the account has no password yet and the last login is older than `[accounts] reauth`; csrf_failed: signed in by the session cookie, but not sent from this server's own pages"),
        (status = 429, body = ErrorBody, description = "login_throttled: too many failed logins for this account, or logins from this address")))]
async fn set_password(State(s): State<AppState>, me: SignedIn, ApiJson(b): ApiJson<PasswordBody>) -> Result<Response, ApiError> {
    let user = s.accounts.set_password(&me.caller, &me.principal, &b.new_password, b.current_password.as_ref()).await?;
    let mut response = Json(UserView::from(user)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
