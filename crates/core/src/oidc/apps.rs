//! Which clients a person let in ("Apps with access", each revocable), and the clients an admin
//! makes, lists, re-keys and deletes (`/api/admin/oidc/clients`).
use super::{Oidc, OidcClient};
use crate::accounts::Principal;
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::error::{Field, VerifyError};
use crate::ports;
use base64::Engine;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

/// A client the person consented to.
#[derive(Clone, Debug)]
pub struct App {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub since: DateTime<Utc>,
}

/// What an admin gives to make a client.
#[derive(Clone, Debug)]
pub struct NewClient {
    pub client: OidcClient,
    pub public: bool,
}

fn new_secret() -> SecretString {
    SecretString::from(format!("cs_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())))
}

impl Oidc {
    /// The clients the person consented to.
    pub async fn apps(&self, p: &Principal) -> Result<Vec<App>, VerifyError> {
        let (uid, now, idle) = (p.user_id.clone(), self.now(), self.accounts.settings().idle());
        let (mut consents, grants) = ports::read(self.ctx.store.as_ref(), move |tx| {
            let grants: Vec<_> = tx.sessions_of(&uid)?.into_iter().filter(|s| s.client_id.is_some() && s.live(now, idle)).collect();
            Ok::<_, VerifyError>((tx.consents_of(&uid)?, grants))
        })
        .await?;
        // First-party clients ask no consent; their live grants are listed too.
        for g in grants {
            let cid = g.client_id.unwrap_or_default();
            if !consents.iter().any(|c| c.client_id == cid) {
                let scope = g.scope.unwrap_or_default();
                consents.push(crate::model::oidc::Consent { user_id: g.user_id, client_id: cid, scope, created_at: g.created_at });
            }
        }
        let mut apps = Vec::new();
        for c in consents {
            let name = self.client(&c.client_id).await?.map(|k| k.name).unwrap_or_else(|| c.client_id.clone());
            apps.push(App { client_id: c.client_id, name, scopes: c.scope.split(' ').map(str::to_string).collect(), since: c.created_at });
        }
        Ok(apps)
    }

    /// Forgets the consent and ends the client's grants (its refresh tokens stop at once).
    pub async fn revoke_app(&self, caller: &Caller, p: &Principal, client_id: &str) -> Result<(), VerifyError> {
        let (uid, cid) = (p.user_id.clone(), client_id.to_string());
        let had = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.revoke_client_access(&uid, &cid)?)).await?;
        if !had {
            return Err(VerifyError::OidcClientNotFound);
        }
        self.audit
            .record(&caller.as_user(&p.user_id), AuditKind::OidcRevoked, Some(client_id), "the person revoked the app's access")
            .await;
        Ok(())
    }

    async fn admin(&self, p: &Principal) -> Result<(), VerifyError> {
        if self.accounts.is_admin(p).await? { Ok(()) } else { Err(VerifyError::AdminRequired) }
    }

    /// Every client: the configuration's, then the admins'.
    pub async fn clients(&self, p: &Principal) -> Result<Vec<OidcClient>, VerifyError> {
        self.admin(p).await?;
        let stored = ports::read(self.ctx.store.as_ref(), |tx| Ok::<_, VerifyError>(tx.oidc_clients()?)).await?;
        Ok(self.configured.values().cloned().chain(stored).collect())
    }

    /// Makes a client; its secret (none for a public one) is shown this once.
    pub async fn create_client(
        &self,
        caller: &Caller,
        p: &Principal,
        new: NewClient,
    ) -> Result<(OidcClient, Option<SecretString>), VerifyError> {
        self.admin(p).await?;
        let mut client = new.client;
        if client.client_id.is_empty() {
            client.client_id = crate::model::ids::new_id("oc");
        }
        client.validate().map_err(|m| VerifyError::invalid(Field::OidcClient, m))?;
        if self.configured.contains_key(&client.client_id) || client.client_id == self.accounts.settings().jwt_audience {
            return Err(VerifyError::invalid(Field::OidcClient, "client_id is taken"));
        }
        let secret = (!new.public).then(new_secret);
        client.secret_hash = secret.as_ref().map(|s| super::secret_digest(secrecy::ExposeSecret::expose_secret(s)));
        client.created_at = Some(self.now());
        client.configured = false;
        self.accounts.ensure_key(client.id_token_alg).await?;
        let c = client.clone();
        match ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.insert_oidc_client(&c)?)).await {
            Ok(()) => {}
            Err(VerifyError::Store(ports::StoreError::Conflict)) => {
                return Err(VerifyError::invalid(Field::OidcClient, "client_id is taken"));
            }
            Err(e) => return Err(e),
        }
        self.forget(&client.client_id);
        self.audit.record(&caller.as_user(&p.user_id), AuditKind::OidcClientCreated, Some(&client.client_id), &client.name).await;
        Ok((client, secret))
    }

    /// A new secret for a confidential client made through the API; the old one stops at once.
    pub async fn rotate_client_secret(&self, caller: &Caller, p: &Principal, client_id: &str) -> Result<SecretString, VerifyError> {
        self.admin(p).await?;
        if self.configured.contains_key(client_id) {
            return Err(VerifyError::invalid(Field::OidcClient, "a configured client's secret is changed in the configuration"));
        }
        let secret = new_secret();
        let (cid, hash) = (client_id.to_string(), super::secret_digest(secrecy::ExposeSecret::expose_secret(&secret)));
        let done = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.set_oidc_client_secret(&cid, &hash)?)).await?;
        if !done {
            return Err(VerifyError::OidcClientNotFound);
        }
        self.forget(client_id);
        self.audit.record(&caller.as_user(&p.user_id), AuditKind::OidcClientSecretRotated, Some(client_id), "new client secret").await;
        Ok(secret)
    }

    /// Deletes a client made through the API, with its consents, codes and grants.
    pub async fn delete_client(&self, caller: &Caller, p: &Principal, client_id: &str) -> Result<(), VerifyError> {
        self.admin(p).await?;
        if self.configured.contains_key(client_id) {
            return Err(VerifyError::invalid(Field::OidcClient, "a configured client is removed from the configuration"));
        }
        let cid = client_id.to_string();
        let done = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.delete_oidc_client(&cid)?)).await?;
        if !done {
            return Err(VerifyError::OidcClientNotFound);
        }
        self.forget(client_id);
        self.audit.record(&caller.as_user(&p.user_id), AuditKind::OidcClientDeleted, Some(client_id), "client deleted").await;
        Ok(())
    }
}
