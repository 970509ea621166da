//! OpenID Connect clients in the configuration: `[oidc_clients.NAME]` (docs/oidc.md).
use super::Config;
use phonegate_core::accounts::JwtAlgorithm;
use phonegate_core::oidc::OidcClient;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcClientSettings {
    /// What the client sends as `client_id` (default: the table's NAME).
    pub client_id: Option<String>,
    /// Shown on the consent page and under "Apps with access" (default: NAME).
    pub name: Option<String>,
    /// The client's secret (`client_secret_basic` or `client_secret_post`)…
    pub client_secret: Option<phonegate_providers::Secret>,
    /// …or a file holding it (trailing whitespace ignored)…
    pub client_secret_file: Option<PathBuf>,
    /// …or none: a public client (a browser or mobile app), which must use PKCE.
    #[serde(default)]
    pub public: bool,
    /// Where the browser may be sent back, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send it, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes it may ask for (default: openid, profile, phone, email, offline_access).
    #[serde(default = "all_scopes")]
    pub scopes: Vec<String>,
    /// Only members with one of these roles may sign in to it (e.g. `["member"]`).
    #[serde(default)]
    pub require_roles: Vec<String>,
    /// The operator's own app: no consent page.
    #[serde(default)]
    pub first_party: bool,
    /// `RS256` (default), `ES256` or `EdDSA`.
    #[serde(default = "rs256")]
    pub id_token_signed_response_alg: JwtAlgorithm,
    #[serde(default = "five_minutes", with = "phonegate_core::duration::secs")]
    pub access_token_ttl: i64,
    #[serde(default = "five_minutes", with = "phonegate_core::duration::secs")]
    pub id_token_ttl: i64,
    /// How long a refresh token's grant lasts at most (`offline_access`).
    #[serde(default = "thirty_days", with = "phonegate_core::duration::secs")]
    pub refresh_token_ttl: i64,
}

fn all_scopes() -> Vec<String> {
    phonegate_core::oidc::SCOPES.iter().map(|s| s.to_string()).collect()
}
fn rs256() -> JwtAlgorithm {
    JwtAlgorithm::RS256
}
fn five_minutes() -> i64 {
    300
}
fn thirty_days() -> i64 {
    30 * 86_400
}

impl Config {
    /// The configured clients, their secrets read (a secret file that cannot be read, or a
    /// client with both or neither of a secret and `public`, is an error).
    pub fn oidc_clients(&self) -> Result<Vec<OidcClient>, String> {
        let mut out: Vec<OidcClient> = Vec::new();
        for (name, c) in &self.oidc_clients {
            let secret = match (&c.client_secret, &c.client_secret_file, c.public) {
                (Some(s), None, false) => Some(s.expose().to_string()),
                (None, Some(path), false) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("oidc_clients.{name}.client_secret_file: cannot read {}: {e}", path.display()))?
                        .trim_end()
                        .to_string(),
                ),
                (None, None, true) => None,
                _ => return Err(format!("oidc_clients.{name}: give exactly one of client_secret, client_secret_file or public = true")),
            };
            if secret.as_deref().is_some_and(|s| s.len() < 16) {
                return Err(format!("oidc_clients.{name}: the client secret must be at least 16 characters"));
            }
            let client = OidcClient {
                client_id: c.client_id.clone().unwrap_or_else(|| name.clone()),
                name: c.name.clone().unwrap_or_else(|| name.clone()),
                secret_hash: secret.map(|s| phonegate_core::oidc::secret_digest(&s)),
                redirect_uris: c.redirect_uris.clone(),
                post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
                scopes: c.scopes.clone(),
                require_roles: c.require_roles.clone(),
                first_party: c.first_party,
                id_token_alg: c.id_token_signed_response_alg,
                access_token_secs: c.access_token_ttl,
                id_token_secs: c.id_token_ttl,
                refresh_token_secs: c.refresh_token_ttl,
                configured: true,
                created_at: None,
            };
            client.validate().map_err(|m| format!("oidc_clients.{name}: {m}"))?;
            if out.iter().any(|o| o.client_id == client.client_id) {
                return Err(format!("oidc_clients.{name}: client_id {} is another table's too", client.client_id));
            }
            out.push(client);
        }
        Ok(out)
    }
}
