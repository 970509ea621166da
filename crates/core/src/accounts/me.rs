//! What a signed-in user does with their account: read it, list and end sessions, renew the
//! browser session, delete the account.
use super::{Accounts, Principal, Session, SessionKind, User, session};
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::ports;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

impl Accounts {
    /// Inside a unit: the signed-in principal's session, as the store has it, when still live.
    pub(super) fn live_in(&self, tx: &mut dyn ports::ReadTx, p: Option<&Principal>, now: DateTime<Utc>) -> Result<Session, VerifyError> {
        let p = p.ok_or(VerifyError::Unauthenticated)?;
        let s = tx.session(&p.session_id)?.filter(|s| s.user_id == p.user_id && s.live(now, self.settings.idle()));
        s.ok_or(VerifyError::Unauthenticated)
    }

    /// Inside a unit: the signed-in session is live in the store and its login recent (see
    /// `require_fresh`).
    pub(super) fn fresh_session(&self, tx: &mut dyn ports::ReadTx, p: Option<&Principal>, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let s = self.live_in(tx, p, now)?;
        if now - s.created_at > chrono::Duration::seconds(self.settings.reauth_secs) {
            return Err(VerifyError::ReauthenticationRequired);
        }
        Ok(())
    }

    /// The principal's session as the store has it, when it is still live.
    async fn live_session(&self, p: &Principal) -> Result<Session, VerifyError> {
        let (this, p, now) = (self.clone(), p.clone(), self.now());
        ports::read(self.ctx.store.as_ref(), move |tx| this.live_in(tx, Some(&p), now)).await
    }

    /// What changing the number or deleting the account needs: a session still live in the store
    /// (an access token outlives "log out everywhere" by its lifetime, its session does not) and
    /// a login within `reauth_secs`.
    pub async fn require_fresh(&self, p: &Principal) -> Result<(), VerifyError> {
        let (this, p, now) = (self.clone(), p.clone(), self.now());
        ports::read(self.ctx.store.as_ref(), move |tx| this.fresh_session(tx, Some(&p), now)).await
    }

    /// Whether an access token's session is still live, read from the store at most every
    /// `revocation_check_secs` per session (forward auth): a revoked session stops passing within
    /// that time on every instance.
    pub async fn require_live(&self, p: &Principal) -> Result<(), VerifyError> {
        let fresh = std::time::Duration::from_secs(self.settings.revocation_check_secs.max(0) as u64);
        let known = self.live.read().ok().and_then(|m| m.get(&p.session_id).copied());
        if known.is_some_and(|at| at.elapsed() < fresh) {
            return Ok(());
        }
        let result = self.live_session(p).await;
        if let Ok(mut m) = self.live.write() {
            if m.len() >= super::VERIFIED_TOKENS {
                m.clear();
            }
            match result {
                Ok(_) => m.insert(p.session_id.clone(), std::time::Instant::now()),
                Err(_) => m.remove(&p.session_id),
            };
        }
        result.map(|_| ())
    }

    pub async fn me(&self, p: &Principal) -> Result<User, VerifyError> {
        let id = p.user_id.clone();
        ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.user(&id)?)).await?.ok_or(VerifyError::Unauthenticated)
    }

    /// The user's live sessions (browsers and apps), newest first.
    pub async fn sessions(&self, p: &Principal) -> Result<Vec<Session>, VerifyError> {
        let (id, now, idle) = (p.user_id.clone(), self.now(), self.settings.idle());
        let all = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.sessions_of(&id)?)).await?;
        // An OpenID client's grants are listed as "Apps with access", not as devices.
        Ok(all.into_iter().filter(|s| s.live(now, idle) && s.client_id.is_none()).collect())
    }

    /// Ends one of the user's sessions (its refresh tokens die with it).
    pub async fn revoke_session(&self, caller: &Caller, p: &Principal, session_id: &str) -> Result<(), VerifyError> {
        let (user, id) = (p.user_id.clone(), session_id.to_string());
        let gone = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.delete_session(&user, &id)?)).await?;
        if !gone {
            return Err(VerifyError::SessionNotFound);
        }
        self.audit
            .record(&caller.as_user(&p.user_id), AuditKind::SessionRevoked, Some(&p.user_id), "a session was ended by its user")
            .await;
        Ok(())
    }

    /// Ends the caller's session, or every session of the user.
    #[tracing::instrument(name = "accounts.logout", level = "debug", skip_all)]
    pub async fn logout(&self, caller: &Caller, p: &Principal, all: bool) -> Result<(), VerifyError> {
        let (user, id) = (p.user_id.clone(), p.session_id.clone());
        ports::write(self.ctx.store.as_ref(), move |tx| {
            if all {
                tx.delete_sessions_of(&user)?;
            } else {
                tx.delete_session(&user, &id)?;
            }
            Ok::<_, VerifyError>(())
        })
        .await?;
        self.audit
            .record(
                &caller.as_user(&p.user_id),
                AuditKind::Logout,
                Some(&p.user_id),
                if all { "signed out everywhere" } else { "signed out" },
            )
            .await;
        Ok(())
    }

    /// A new cookie value for the caller's browser session, whose idle deadline starts again.
    #[tracing::instrument(name = "accounts.renew", level = "debug", skip_all)]
    pub async fn renew(&self, p: &Principal) -> Result<SecretString, VerifyError> {
        let (secret, hash) = session::new_secret("");
        let (user, id, now) = (p.user_id.clone(), p.session_id.clone(), self.now());
        ports::write(self.ctx.store.as_ref(), move |tx| {
            let s = tx.session(&id)?.filter(|s| s.user_id == user && s.kind == SessionKind::Browser);
            if s.is_none() {
                return Err(VerifyError::Unauthenticated);
            }
            tx.set_session_secret(&id, &hash, now)?;
            Ok(())
        })
        .await?;
        Ok(secret)
    }

    /// Deletes the account with all its sessions and refresh tokens.
    #[tracing::instrument(name = "accounts.delete_account", level = "debug", skip_all)]
    pub async fn delete_account(&self, caller: &Caller, p: &Principal) -> Result<(), VerifyError> {
        self.require_fresh(p).await?;
        let (this, id, now) = (self.clone(), p.user_id.clone(), self.now());
        let gone = ports::write(self.ctx.store.as_ref(), move |tx| {
            let Some(user) = tx.user(&id)? else { return Ok::<_, VerifyError>(false) };
            this.emit(tx, "user.deleted", &user, now)?;
            Ok(tx.delete_user(&id)?)
        })
        .await?;
        if !gone {
            return Err(VerifyError::Unauthenticated);
        }
        self.audit
            .record(&caller.as_user(&p.user_id), AuditKind::AccountDeleted, Some(&p.user_id), "the account was deleted by its user")
            .await;
        Ok(())
    }
}

impl Accounts {
    /// Deletes flows and delivered events a day after they expired or were delivered, and ended
    /// sessions with their refresh tokens: the background sweep.
    pub async fn purge(&self) -> Result<u64, VerifyError> {
        let now = self.now();
        let (before, idle_since) = (now - chrono::Duration::days(1), now - self.settings.idle());
        ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.purge_accounts(now, before, idle_since)?)).await
    }

    /// The dev outbox's copy of the message a flow sent (for the code page in development);
    /// `None` for a decoy or when nothing was stored. Only for servers whose provider is the
    /// outbox: the caller checks that.
    pub async fn dev_message(&self, flow_id: &str) -> Result<Option<crate::outbox::OutboxMessage>, VerifyError> {
        let id = flow_id.to_string();
        let flow = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.flow(&id)?)).await?;
        let Some((vid, phone)) = flow.and_then(|f| f.verification_id.zip(f.phone)) else { return Ok(None) };
        let messages = self.outbox.messages(&Caller::system("dev-outbox"), Some(phone.as_str()), 20).await?;
        Ok(messages.into_iter().find(|m| m.verification_id.as_deref() == Some(vid.as_str())))
    }
}
