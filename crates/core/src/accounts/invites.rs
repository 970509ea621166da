//! Invite-only groups: with `registration = "invite_only"`, only a number an admin invited can
//! sign up; any other sign-up gets the same answer and nothing is sent. An invite expires, can be
//! re-sent and revoked, and is consumed once, by the sign-up that verifies its code.
use super::{Accounts, Principal};
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::error::{Field, VerifyError};
use crate::model::ids::new_id;
pub use crate::model::invite::{Invite, Registration};
use crate::ports;

impl Accounts {
    /// Invites a number (optionally for an existing member's username, whose number it must be)
    /// and texts it the sign-up link.
    #[tracing::instrument(name = "accounts.invite", level = "debug", skip_all)]
    pub async fn invite(&self, caller: &Caller, p: &Principal, phone: &str, username: Option<&str>) -> Result<Invite, VerifyError> {
        let admin = self.admin(p).await?;
        let phone = self.ctx.parse_phone(phone)?;
        let now = self.now();
        let invite = Invite {
            id: new_id("iv"),
            phone,
            username: username.map(str::to_string),
            created_by: admin.id,
            created_at: now,
            expires_at: now + chrono::Duration::hours(self.settings.invite_ttl_hours),
            last_sent_at: now,
            used_at: None,
            revoked_at: None,
        };
        let i = invite.clone();
        ports::write(self.ctx.store.as_ref(), move |tx| {
            if let Some(name) = &i.username {
                let member = tx.user_by_login(&name.to_lowercase())?.ok_or(VerifyError::MemberNotFound)?;
                if member.phone != i.phone {
                    return Err(VerifyError::invalid(Field::Phone, "must be the number of the member named by `username`"));
                }
            }
            tx.insert_invite(&i)?;
            Ok(())
        })
        .await?;
        self.send_invite(caller, &invite).await?;
        self.audit.record(&caller.as_user(&p.user_id), AuditKind::InviteCreated, Some(&invite.id), "an admin invited a number").await;
        Ok(invite)
    }

    async fn send_invite(&self, caller: &Caller, invite: &Invite) -> Result<(), VerifyError> {
        let service = self.catalog.service(&Caller::system("invites"), Some(super::SERVICE)).await?;
        let code = self.current_invite_code().await?.code;
        let body = format!(
            "{}: you are invited. Sign up with this number at {}/signup?invite={} or reply {code} to this message.",
            self.settings.brand, self.site, invite.id
        );
        self.delivery.send_text(&self.engine_caller(caller), &service, &invite.phone, body).await?;
        Ok(())
    }

    /// The invite an invite link names (to fill in the sign-up page, or to say that it ended),
    /// with its status now; `None` when there is no such invite.
    pub async fn invite_by_link(&self, id: &str) -> Result<Option<(Invite, &'static str)>, VerifyError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        let (id, now) = (id.to_string(), self.now());
        let invite = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.invite(&id)?));
        Ok(invite.await?.map(|i| {
            let status = i.status(now);
            (i, status)
        }))
    }

    /// Every invite, newest first.
    pub async fn invites(&self, p: &Principal) -> Result<Vec<Invite>, VerifyError> {
        self.admin(p).await?;
        ports::read(self.ctx.store.as_ref(), |tx| Ok::<_, VerifyError>(tx.invites()?)).await
    }

    /// Texts a pending invite again.
    pub async fn resend_invite(&self, caller: &Caller, p: &Principal, id: &str) -> Result<Invite, VerifyError> {
        self.admin(p).await?;
        let (id, now) = (id.to_string(), self.now());
        let invite = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut invite = tx.invite(&id)?.ok_or(VerifyError::InviteNotFound)?;
            if invite.status(now) != "pending" {
                return Err(VerifyError::InviteNotPending);
            }
            invite.last_sent_at = now;
            tx.update_invite(&invite)?;
            Ok(invite)
        })
        .await?;
        self.send_invite(caller, &invite).await?;
        Ok(invite)
    }

    /// Revokes an invite that was not used yet.
    pub async fn revoke_invite(&self, caller: &Caller, p: &Principal, id: &str) -> Result<(), VerifyError> {
        self.admin(p).await?;
        let (iid, now) = (id.to_string(), self.now());
        ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut invite = tx.invite(&iid)?.ok_or(VerifyError::InviteNotFound)?;
            if invite.used_at.is_some() {
                return Err(VerifyError::InviteNotPending);
            }
            invite.revoked_at.get_or_insert(now);
            tx.update_invite(&invite)?;
            Ok(())
        })
        .await?;
        self.audit.record(&caller.as_user(&p.user_id), AuditKind::InviteRevoked, Some(id), "an admin revoked an invite").await;
        Ok(())
    }
}
