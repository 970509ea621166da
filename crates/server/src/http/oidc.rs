//! The OpenID provider's machine side: discovery, the token endpoint, userinfo, revocation
//! (RFC 7009), introspection (RFC 7662), and the admin API's clients. OAuth errors are
//! `{"error", "error_description"}` with the protocol's codes; a failure of the server is
//! `server_error` with a request id (the detail goes to the log only).
use super::AppState;
use super::error::{ApiError, ErrorBody, public_message};
use super::extract::ApiJson;
use super::session::SignedIn;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, Utc};
use phonegate_core::accounts::JwtAlgorithm;
use phonegate_core::oidc::{ClientAuth, NewClient, OAuthError, OidcClient, SCOPES, TokenRequest};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The machine endpoints. A browser app (a public client) calls them from its own origin: they
/// answer any origin, without credentials (none of them reads a cookie), as does the JWKS.
pub fn routes() -> Router<AppState> {
    use tower_http::cors::{Any, CorsLayer};
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(3600));
    // The preflight is answered by the CORS layer; the route only has to exist for OPTIONS.
    let preflight = || async { StatusCode::NO_CONTENT };
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery).options(preflight))
        .route("/oauth2/token", post(token).options(preflight))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo).options(preflight))
        .route("/oauth2/revoke", post(revoke).options(preflight))
        .route("/oauth2/introspect", post(introspect).options(preflight))
        .layer(cors)
}

/// The admin API's clients, and the signed-in person's apps (in the OpenAPI document).
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(delete_client))
        .routes(routes!(rotate_secret))
        .routes(routes!(apps))
        .routes(routes!(revoke_app))
}

/// The answer of an OAuth error.
fn oauth_error(e: OAuthError, basic: bool) -> Response {
    let (status, description) = match &e {
        OAuthError::Server(inner) => (StatusCode::INTERNAL_SERVER_ERROR, public_message(inner)),
        OAuthError::Protocol { error: "invalid_client", description } => (StatusCode::UNAUTHORIZED, description.clone()),
        OAuthError::Protocol { error: "invalid_token", description } => (StatusCode::UNAUTHORIZED, description.clone()),
        OAuthError::Protocol { description, .. } => (StatusCode::BAD_REQUEST, description.clone()),
    };
    let mut response = (status, Json(serde_json::json!({ "error": e.code(), "error_description": description }))).into_response();
    let h = response.headers_mut();
    no_store(h);
    if e.code() == "invalid_client" && basic {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"phonegate\""));
    }
    response
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A form body's parameters; a parameter given twice is refused (RFC 6749 3.1).
fn form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(OAuthError::new("invalid_request", format!("{k} is given more than once")));
        }
    }
    Ok(out)
}

/// The client's credentials: HTTP Basic (each part form-urlencoded, RFC 6749 2.3.1), or
/// `client_id` and `client_secret` in the body; never both.
fn client_auth(headers: &HeaderMap, f: &mut HashMap<String, String>) -> Result<ClientAuth, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, v)| v.trim().to_string());
    let (id, secret) = (f.remove("client_id"), f.remove("client_secret"));
    if let Some(b) = basic {
        let bad = || OAuthError::new("invalid_client", "malformed HTTP Basic credentials");
        let raw = base64::engine::general_purpose::STANDARD.decode(b).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (u, p) = raw.split_once(':').ok_or_else(bad)?;
        let (u, p) = (form_decode(u), form_decode(p));
        if secret.is_some() || id.as_deref().is_some_and(|i| i != u) {
            return Err(OAuthError::new("invalid_request", "client credentials both in the header and the body"));
        }
        return Ok(ClientAuth { client_id: u, secret: Some(SecretString::from(p)), basic: true });
    }
    let id = id.ok_or_else(|| OAuthError::new("invalid_client", "client authentication is required"))?;
    Ok(ClientAuth { client_id: id, secret: secret.map(SecretString::from), basic: false })
}

/// A Basic credential's part, form-urlencoded as RFC 6749 2.3.1 asks: `+` a space, `%XX` a
/// byte, anything else (`&` and `=` too) itself.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn discovery(State(s): State<AppState>) -> Response {
    let iss = s.oidc.issuer().to_string();
    if !iss.starts_with("http") {
        let body = serde_json::json!({"error": "not_configured", "error_description": "set public_url to serve OpenID Connect"});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let doc = serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "end_session_endpoint": format!("{iss}/oauth2/logout"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "azp", "sid",
            "preferred_username", "phone_number", "phone_number_verified", "email", "email_verified"],
        "acr_values_supported": ["1", "2"],
        "ui_locales_supported": ["en", "de"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    });
    let mut response = Json(doc).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

async fn token(State(s): State<AppState>, caller: super::session::EndUser, headers: HeaderMap, body: Bytes) -> Response {
    let mut f = match form(&body) {
        Ok(f) => f,
        Err(e) => return oauth_error(e, false),
    };
    let auth = match client_auth(&headers, &mut f) {
        Ok(a) => a,
        Err(e) => return oauth_error(e, false),
    };
    let client = match s.oidc.authenticate(&auth, true).await {
        Ok(c) => c,
        Err(e) => return oauth_error(e, auth.basic),
    };
    let req = TokenRequest {
        grant_type: f.remove("grant_type"),
        code: f.remove("code"),
        redirect_uri: f.remove("redirect_uri"),
        code_verifier: f.remove("code_verifier"),
        refresh_token: f.remove("refresh_token").map(SecretString::from),
        scope: f.remove("scope"),
    };
    let grant = req.grant_type.clone().unwrap_or_default();
    match s.oidc.token(&caller.0, &client, req).await {
        Ok(t) => {
            s.metrics.oidc_token(&client.client_id, if grant == "refresh_token" { "refresh_token" } else { "authorization_code" });
            let mut body = serde_json::json!({
                "access_token": t.access_token,
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "scope": t.scope,
            });
            if let Some(id) = t.id_token {
                body["id_token"] = id.into();
            }
            if let Some(rt) = t.refresh_token {
                body["refresh_token"] = rt.expose_secret().into();
            }
            let mut response = Json(body).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(e) => {
            s.metrics.oidc_token(&client.client_id, e.code());
            oauth_error(e, auth.basic)
        }
    }
}

/// The bearer token of a userinfo request: the header, or (POST) the form's `access_token`.
fn bearer(method: &Method, headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    if header.is_some() || method != Method::POST {
        return header;
    }
    form(body).ok()?.remove("access_token")
}

async fn userinfo(State(s): State<AppState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let refuse = |error: &str| {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        let challenge = if error.is_empty() {
            "Bearer realm=\"phonegate\"".to_string()
        } else {
            format!("Bearer realm=\"phonegate\", error=\"{error}\"")
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    };
    let Some(token) = bearer(&method, &headers, &body) else { return refuse("") };
    match s.oidc.userinfo(&SecretString::from(token)).await {
        Ok(Some(claims)) => {
            let mut response = Json(claims).into_response();
            no_store(response.headers_mut());
            response
        }
        Ok(None) => refuse("invalid_token"),
        Err(e) => oauth_error(OAuthError::Server(e), false),
    }
}

async fn revoke(State(s): State<AppState>, caller: super::session::EndUser, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let mut f = form(&body)?;
        let auth = client_auth(&headers, &mut f)?;
        let token = f.remove("token").ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
        s.oidc.revoke(&caller.0, &auth, &token).await.map_err(|e| (e, auth.basic)).map_err(|(e, _)| e)
    }
    .await;
    match result {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => oauth_error(e, headers.contains_key(header::AUTHORIZATION)),
    }
}

async fn introspect(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let mut f = form(&body)?;
        let auth = client_auth(&headers, &mut f)?;
        let token = f.remove("token").ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
        s.oidc.introspect(&auth, &token).await
    }
    .await;
    match result {
        Ok(i) => {
            let mut r = Json(i).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => oauth_error(e, headers.contains_key(header::AUTHORIZATION)),
    }
}

// --- the admin API's clients --------------------------------------------------------------------

/// An OpenID client as the admin API shows it (never its secret).
#[derive(Serialize, ToSchema)]
pub struct ClientView {
    client_id: String,
    name: String,
    /// No secret: PKCE only.
    public: bool,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    scopes: Vec<String>,
    require_roles: Vec<String>,
    first_party: bool,
    /// `RS256`, `ES256` or `EdDSA`.
    id_token_signed_response_alg: String,
    /// From the configuration: changed there, not here.
    configured: bool,
    created_at: Option<DateTime<Utc>>,
    /// Shown once, when made or re-keyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl ClientView {
    fn of(c: OidcClient, secret: Option<SecretString>) -> Self {
        Self {
            public: c.is_public(),
            client_id: c.client_id,
            name: c.name,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            scopes: c.scopes,
            require_roles: c.require_roles,
            first_party: c.first_party,
            id_token_signed_response_alg: c.id_token_alg.as_str().into(),
            configured: c.configured,
            created_at: c.created_at,
            client_secret: secret.map(|s| s.expose_secret().to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ClientList {
    clients: Vec<ClientView>,
}

/// A new client.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    name: String,
    /// Default: made up (`oc_…`).
    client_id: Option<String>,
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    /// Default: all of openid, profile, phone, email, offline_access.
    scopes: Option<Vec<String>>,
    #[serde(default)]
    require_roles: Vec<String>,
    #[serde(default)]
    first_party: bool,
    /// A public client (no secret, PKCE required).
    #[serde(default)]
    public: bool,
    /// `RS256` (default), `ES256` or `EdDSA`.
    id_token_signed_response_alg: Option<String>,
}

/// Every client: the configuration's and the admins'.
#[utoipa::path(get, path = "/api/admin/oidc/clients", tag = "admin",
    responses((status = 200, body = ClientList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_clients(State(s): State<AppState>, me: SignedIn) -> Result<Json<ClientList>, ApiError> {
    let clients = s.oidc.clients(&me.principal).await?;
    Ok(Json(ClientList { clients: clients.into_iter().map(|c| ClientView::of(c, None)).collect() }))
}

/// Makes a client; the answer carries its secret, this once.
#[utoipa::path(post, path = "/api/admin/oidc/clients", tag = "admin", request_body = ClientBody,
    responses((status = 201, body = ClientView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_client(
    State(s): State<AppState>,
    me: SignedIn,
    ApiJson(b): ApiJson<ClientBody>,
) -> Result<(StatusCode, Json<ClientView>), ApiError> {
    let alg = match b.id_token_signed_response_alg.as_deref() {
        None => JwtAlgorithm::RS256,
        Some(a) => JwtAlgorithm::parse(a).ok_or_else(|| {
            phonegate_core::VerifyError::invalid(
                phonegate_core::error::Field::OidcClient,
                "id_token_signed_response_alg: RS256, ES256 or EdDSA",
            )
        })?,
    };
    let defaults = OidcClient::default();
    let client = OidcClient {
        client_id: b.client_id.unwrap_or_default(),
        name: b.name,
        redirect_uris: b.redirect_uris,
        post_logout_redirect_uris: b.post_logout_redirect_uris,
        scopes: b.scopes.unwrap_or(defaults.scopes.clone()),
        require_roles: b.require_roles,
        first_party: b.first_party,
        id_token_alg: alg,
        ..defaults
    };
    let (client, secret) = s.oidc.create_client(&me.caller, &me.principal, NewClient { client, public: b.public }).await?;
    Ok((StatusCode::CREATED, Json(ClientView::of(client, secret))))
}

/// Deletes a client made through this API, with its consents and grants.
#[utoipa::path(delete, path = "/api/admin/oidc/clients/{client_id}", tag = "admin",
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_client(State(s): State<AppState>, me: SignedIn, Path(client_id): Path<String>) -> Result<StatusCode, ApiError> {
    s.oidc.delete_client(&me.caller, &me.principal, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct SecretView {
    client_id: String,
    client_secret: String,
}

/// A new secret for a confidential client; the old one stops working at once.
#[utoipa::path(post, path = "/api/admin/oidc/clients/{client_id}/secret", tag = "admin",
    responses((status = 200, body = SecretView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn rotate_secret(State(s): State<AppState>, me: SignedIn, Path(client_id): Path<String>) -> Result<Json<SecretView>, ApiError> {
    let secret = s.oidc.rotate_client_secret(&me.caller, &me.principal, &client_id).await?;
    Ok(Json(SecretView { client_id, client_secret: secret.expose_secret().to_string() }))
}

/// An app the signed-in person let in.
#[derive(Serialize, ToSchema)]
pub struct AppView {
    client_id: String,
    name: String,
    scopes: Vec<String>,
    since: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct AppList {
    apps: Vec<AppView>,
}

/// The apps (OpenID clients) the signed-in person consented to.
#[utoipa::path(get, path = "/api/me/apps", tag = "accounts",
    responses((status = 200, body = AppList), (status = 401, body = ErrorBody)))]
async fn apps(State(s): State<AppState>, me: SignedIn) -> Result<Json<AppList>, ApiError> {
    let apps = s.oidc.apps(&me.principal).await?;
    Ok(Json(AppList {
        apps: apps.into_iter().map(|a| AppView { client_id: a.client_id, name: a.name, scopes: a.scopes, since: a.since }).collect(),
    }))
}

/// Takes an app's access back: its consent is forgotten and its refresh tokens stop at once.
#[utoipa::path(delete, path = "/api/me/apps/{client_id}", tag = "accounts",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_app(State(s): State<AppState>, me: SignedIn, Path(client_id): Path<String>) -> Result<StatusCode, ApiError> {
    s.oidc.revoke_app(&me.caller, &me.principal, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(super::form_decode("a%2Bb+c%26d&e=f%"), "a+b c&d&e=f%");
        assert_eq!(super::form_decode("plain-secret_0123"), "plain-secret_0123");
    }
}
