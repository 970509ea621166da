//! The signed-redirect step's clients: `[auth0]` and `[redirect_clients.NAME]`.
use super::Config;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Auth0Settings {
    /// The tenant's domain (`acme.eu.auth0.com`, or its custom domain): tokens must come from it,
    /// and users go back only to `https://{domain}/continue`.
    pub domain: String,
    /// The secret the Login Action signs with (HS256), also signing phonegate's answer.
    pub secret: phonegate_providers::Secret,
    /// The claim of the Action's token that holds the phone number (default `phone_number`).
    #[serde(default = "default_phone_claim")]
    pub phone_claim: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedirectClientSettings {
    /// The shared HS256 secret.
    pub secret: phonegate_providers::Secret,
    /// The `iss` the client's tokens carry.
    pub issuer: String,
    /// Where users may go back, exactly (https; http only for localhost). With several, the
    /// request's `return_url` names one of them exactly.
    pub return_urls: Vec<String>,
    #[serde(default = "default_phone_claim")]
    pub phone_claim: String,
}

fn default_phone_claim() -> String {
    "phone_number".into()
}

impl Config {
    pub(super) fn validate_integrations(&self) -> Result<(), String> {
        if let Some(a) = &self.auth0 {
            let host_ok = !a.domain.is_empty()
                && a.domain.len() <= 253
                && a.domain.split('.').all(|l| {
                    !l.is_empty() && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !host_ok {
                return Err(format!("auth0.domain `{}` must be the tenant's host name, like acme.eu.auth0.com", a.domain));
            }
            if a.secret.expose().is_empty() {
                return Err("auth0.secret must not be empty".into());
            }
        }
        for (name, c) in &self.redirect_clients {
            if name == "auth0"
                || name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(format!("redirect_clients.{name}: names are a-z, 0-9, - and _ (and `auth0` is the [auth0] table's)"));
            }
            if c.secret.expose().is_empty() || c.issuer.is_empty() || c.return_urls.is_empty() {
                return Err(format!("redirect_clients.{name} needs a secret, an issuer and at least one return URL"));
            }
            for u in &c.return_urls {
                let ok = url::Url::parse(u).ok().is_some_and(|p| {
                    let local = matches!(p.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                    (p.scheme() == "https" || (p.scheme() == "http" && local))
                        && p.host_str().is_some()
                        && p.username().is_empty()
                        && p.password().is_none()
                        && p.fragment().is_none()
                });
                if !ok {
                    return Err(format!("redirect_clients.{name}.return_urls: `{u}` must be an https URL without user info or fragment"));
                }
            }
        }
        Ok(())
    }

    /// The configured signed-redirect clients, Auth0's first.
    pub fn redirect_clients(&self) -> Vec<phonegate_core::integrations::RedirectClient> {
        let auth0 = self.auth0.iter().map(|a| {
            let domain = a.domain.to_ascii_lowercase();
            phonegate_core::integrations::RedirectClient {
                name: "auth0".into(),
                secret: a.secret.expose().as_bytes().to_vec(),
                issuers: vec![domain.clone(), format!("https://{domain}/"), format!("https://{domain}")],
                return_urls: vec![format!("https://{domain}/continue")],
                phone_claim: a.phone_claim.clone(),
            }
        });
        let others = self.redirect_clients.iter().map(|(name, c)| phonegate_core::integrations::RedirectClient {
            name: name.clone(),
            secret: c.secret.expose().as_bytes().to_vec(),
            issuers: vec![c.issuer.clone()],
            return_urls: c.return_urls.clone(),
            phone_claim: c.phone_claim.clone(),
        });
        auth0.chain(others).collect()
    }
}
