//! RP-Initiated Logout 1.0: a client sends the browser to `/oauth2/logout` with the ID token it
//! holds (`id_token_hint`); phonegate ends the browser's session and sends it back to one of the
//! client's registered `post_logout_redirect_uris` with its `state`. Without a hint that names
//! the signed-in person, the person confirms on a page first (a form with a CSRF token), so no
//! other site can sign anyone out.
use super::{OAuthError, Oidc};
use crate::accounts::Principal;
use crate::caller::Caller;
use crate::error::VerifyError;
use serde::Deserialize;

/// The parameters of `GET/POST /oauth2/logout`.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub ui_locales: Option<String>,
    pub logout_hint: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// Signed out; go to this registered URI (with the state), or to phonegate's own page.
    Done(Option<String>),
    /// Ask the person first (the page posts back with `confirmed`).
    Confirm,
}

impl Oidc {
    /// `GET/POST /oauth2/logout`. `confirmed`: the person pressed "Sign out" on phonegate's own
    /// page (the caller checked its CSRF token).
    #[tracing::instrument(name = "oidc.logout", level = "debug", skip_all)]
    pub async fn logout(
        &self,
        caller: &Caller,
        browser: Option<&Principal>,
        req: &LogoutRequest,
        confirmed: bool,
    ) -> Result<LogoutOutcome, OAuthError> {
        let bad = |d: &str| OAuthError::new("invalid_request", d);
        // The hint may have expired (that is how a logout usually comes): its signature and
        // issuer still say who it was for.
        let hint = match req.id_token_hint.as_deref() {
            Some(t) => Some(self.id_token_hint(t).await?.ok_or_else(|| bad("id_token_hint is not a valid ID token of this issuer"))?),
            None => None,
        };
        let client_id = match (&hint, req.client_id.as_deref()) {
            (Some(h), Some(c)) if h.aud != c => return Err(bad("client_id differs from the id_token_hint's audience")),
            (Some(h), _) => Some(h.aud.clone()),
            (None, c) => c.map(str::to_string),
        };
        let back = match req.post_logout_redirect_uri.as_deref() {
            None => None,
            Some(uri) => {
                let client = match &client_id {
                    Some(id) => self.client(id).await?,
                    None => return Err(bad("post_logout_redirect_uri needs an id_token_hint or client_id")),
                };
                let client = client.ok_or_else(|| bad("unknown client"))?;
                if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
                    return Err(bad("post_logout_redirect_uri is not registered for this client"));
                }
                let mut url = uri.to_string();
                if let Some(state) = req.state.as_deref().filter(|s| s.len() <= 2000) {
                    let mut q = form_urlencoded::Serializer::new(String::new());
                    q.append_pair("state", state);
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&q.finish());
                }
                Some(url)
            }
        };
        let Some(p) = browser else { return Ok(LogoutOutcome::Done(back)) };
        let vouched = hint.as_ref().is_some_and(|h| h.sub == p.user_id);
        if !vouched && !confirmed {
            return Ok(LogoutOutcome::Confirm);
        }
        match self.accounts.logout(caller, p, false).await {
            Ok(()) | Err(VerifyError::Unauthenticated) => Ok(LogoutOutcome::Done(back)),
            Err(e) => Err(e.into()),
        }
    }
}
