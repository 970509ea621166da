//! OpenID Connect: the clients (relying parties), the scopes they may ask for, an authorization
//! code as stored, and a remembered consent. The provider's rules live in the `oidc` use cases.
use super::jwt_key::JwtAlgorithm;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The scopes phonegate knows, each releasing its own claims.
pub const SCOPES: [&str; 5] = ["openid", "profile", "phone", "email", "offline_access"];

/// A relying party. Its secret is kept only as a SHA-256 digest (a generated secret has 256
/// random bits; a configured one is the operator's to choose well).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcClient {
    pub client_id: String,
    /// Shown on the consent page and under "Apps with access".
    pub name: String,
    /// SHA-256 of the client secret; none: a public client (PKCE, no secret).
    #[serde(skip)]
    pub secret_hash: Option<Vec<u8>>,
    /// Matched exactly, character for character.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes it may ask for.
    pub scopes: Vec<String>,
    /// Members need one of these roles to sign in to it (empty: every account).
    pub require_roles: Vec<String>,
    /// Trusted by the operator: no consent page.
    pub first_party: bool,
    pub id_token_alg: JwtAlgorithm,
    pub access_token_secs: i64,
    pub id_token_secs: i64,
    /// How long a refresh token's grant lasts at most from the login.
    pub refresh_token_secs: i64,
    /// From the configuration (the admin API cannot change or delete it).
    #[serde(skip)]
    pub configured: bool,
    #[serde(skip)]
    pub created_at: Option<DateTime<Utc>>,
}

impl OidcClient {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// Checks what the configuration or an admin gave; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = |s: &str| !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_graphic() && c != ':' && c != '%');
        if !id_ok(&self.client_id) {
            return Err("client_id: 1 to 100 printable ASCII characters, without ':' or '%'".into());
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            return Err("name: 1 to 100 characters".into());
        }
        if self.redirect_uris.is_empty() {
            return Err("redirect_uris: at least one".into());
        }
        for uri in self.redirect_uris.iter().chain(&self.post_logout_redirect_uris) {
            redirect_uri_ok(uri).map_err(|e| format!("redirect URI {uri:?}: {e}"))?;
        }
        if let Some(s) = self.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(format!("scopes: unknown scope {s:?} (known: {})", SCOPES.join(", ")));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err("scopes: must include openid".into());
        }
        if !(30..=86_400).contains(&self.access_token_secs) || !(30..=86_400).contains(&self.id_token_secs) {
            return Err("access_token_ttl and id_token_ttl: between 30s and 24h".into());
        }
        if !(3600..=400 * 86_400).contains(&self.refresh_token_secs) {
            return Err("refresh_token_ttl: between 1h and 400d".into());
        }
        Ok(())
    }

    /// The requested scopes this client may have, in phonegate's order, or the first unknown
    /// or unallowed one.
    pub fn grant_scopes(&self, requested: &str) -> Result<Vec<&'static str>, String> {
        let mut out = Vec::new();
        for s in requested.split(' ').filter(|s| !s.is_empty()) {
            match SCOPES.iter().find(|k| **k == s) {
                Some(k) if self.scopes.iter().any(|a| a == s) => out.push(*k),
                _ => return Err(s.to_string()),
            }
        }
        out.sort_by_key(|s| SCOPES.iter().position(|k| k == s));
        out.dedup();
        Ok(out)
    }
}

impl Default for OidcClient {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            name: String::new(),
            secret_hash: None,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
            require_roles: Vec::new(),
            first_party: false,
            id_token_alg: JwtAlgorithm::RS256,
            access_token_secs: 300,
            id_token_secs: 300,
            refresh_token_secs: 30 * 86_400,
            configured: false,
            created_at: None,
        }
    }
}

/// A redirect URI a client may register: absolute, `https` (or `http` on a loopback host, or an
/// app's own scheme), no fragment, no user info.
pub fn redirect_uri_ok(uri: &str) -> Result<(), &'static str> {
    if uri.len() > 2000 || uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("too long, or with spaces or control characters");
    }
    let (scheme, rest) = uri.split_once(':').ok_or("not an absolute URI")?;
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err("not an absolute URI");
    }
    if uri.contains('#') {
        return Err("has a fragment");
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" | "http" => {
            let authority = rest.strip_prefix("//").ok_or("no host")?;
            let authority = authority.split(['/', '?']).next().unwrap_or_default();
            if authority.is_empty() || authority.contains('@') {
                return Err("no host, or user info");
            }
            let host = authority.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())).map_or(authority, |(h, _)| h);
            let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
            if scheme.eq_ignore_ascii_case("http") && !loopback {
                return Err("http only on localhost, 127.0.0.1 or [::1]; use https");
            }
            Ok(())
        }
        "javascript" | "data" | "vbscript" | "file" => Err("not a scheme a browser may be sent to"),
        _ => Ok(()),
    }
}

/// An authorization code as stored (found by the SHA-256 of the code): single use, bound to its
/// client, redirect URI and PKCE challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCode {
    #[serde(skip)]
    pub hash: Vec<u8>,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    /// Space-separated granted scopes.
    pub scope: String,
    pub nonce: Option<String>,
    /// The PKCE S256 challenge.
    pub challenge: Option<String>,
    /// When the user signed in (the browser session's login).
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    /// The browser session that signed in (the ID token's `sid`).
    pub browser_session: String,
    #[serde(skip)]
    pub expires_at: DateTime<Utc>,
    #[serde(skip)]
    pub used_at: Option<DateTime<Utc>>,
    /// The grant (session) its exchange opened: a second exchange ends it.
    #[serde(skip)]
    pub session_id: Option<String>,
}

/// What a user allowed a client to learn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    /// Space-separated.
    pub scope: String,
    pub created_at: DateTime<Utc>,
}

impl Consent {
    /// Whether it covers every one of `scopes`.
    pub fn covers(&self, scopes: &[&str]) -> bool {
        scopes.iter().all(|s| self.scope.split(' ').any(|c| c == *s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_absolute_and_safe() {
        for ok in ["https://app.example/cb", "http://127.0.0.1:3000/callback", "http://localhost/cb?x=1", "com.example.app:/oauth"] {
            assert_eq!(redirect_uri_ok(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/cb",
            "https://app.example/cb#x",
            "http://app.example/cb",
            "https://user@app.example/cb",
            "javascript:alert(1)",
            "https:///cb",
            "https://app.example/c b",
        ] {
            assert!(redirect_uri_ok(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_are_only_those_allowed() {
        let c = OidcClient { scopes: vec!["openid".into(), "phone".into()], ..Default::default() };
        assert_eq!(c.grant_scopes("phone openid phone"), Ok(vec!["openid", "phone"]));
        assert_eq!(c.grant_scopes("openid email"), Err("email".into()));
        assert_eq!(c.grant_scopes("openid admin"), Err("admin".into()));
    }
}
