//! Admins: members of a group with the `admin` role. The first is made by the operator
//! (`phonegate admin create`); admins see and remove members, end their sessions, and promote
//! and demote each other, but the last admin can be neither removed nor demoted.
use super::{Accounts, Principal, User, user};
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::model::ids::new_id;
use crate::ports;
use chrono::{DateTime, Utc};

pub const ADMIN: &str = "admin";

impl User {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN)
    }
}

/// A member as admins see them.
#[derive(Clone, Debug)]
pub struct Member {
    pub user: User,
    /// Live sessions (signed-in devices).
    pub sessions: u32,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// A phone number as admins see it: the calling code's first digits and the last three.
pub fn mask_phone(e164: &str) -> String {
    crate::model::phone::mask(e164)
}

impl Accounts {
    /// Creates an admin account for `phone` (the operator's command; the admin then signs in by
    /// code like anyone). A number or username that is taken is refused.
    pub async fn create_admin(&self, caller: &Caller, username: &str, phone: &str) -> Result<User, VerifyError> {
        let username = user::username(username)?;
        let phone = self.ctx.parse_phone(phone)?;
        let now = self.now();
        let admin = User {
            id: new_id("us"),
            username,
            email: None,
            email_verified: false,
            phone,
            password_hash: None,
            roles: vec![ADMIN.to_string()],
            created_at: now,
            last_login_at: None,
        };
        let (this, u) = (self.clone(), admin.clone());
        ports::write(self.ctx.store.as_ref(), move |tx| {
            if tx.username_taken(&u.username.to_lowercase())? {
                return Err(VerifyError::UsernameTaken);
            }
            if tx.user_by_phone(&u.phone)?.is_some() {
                return Err(VerifyError::PhoneTaken);
            }
            tx.insert_user(&u)?;
            this.emit(tx, "user.created", &u, now)
        })
        .await?;
        self.audit.record(caller, AuditKind::AdminCreated, Some(&admin.id), "an admin account was created by the operator").await;
        Ok(admin)
    }

    /// The signed-in admin, or `AdminRequired`.
    pub(super) async fn admin(&self, p: &Principal) -> Result<User, VerifyError> {
        let me = self.me(p).await?;
        if me.is_admin() { Ok(me) } else { Err(VerifyError::AdminRequired) }
    }

    /// Every member, by username, with their devices.
    pub async fn members(&self, p: &Principal) -> Result<Vec<Member>, VerifyError> {
        self.admin(p).await?;
        let (now, idle) = (self.now(), self.settings.idle());
        ports::read(self.ctx.store.as_ref(), move |tx| {
            let mut out = Vec::new();
            for user in tx.users()? {
                let live: Vec<_> = tx.sessions_of(&user.id)?.into_iter().filter(|s| s.live(now, idle)).collect();
                let last_seen_at = live.iter().map(|s| s.last_seen_at).max();
                out.push(Member { user, sessions: live.len() as u32, last_seen_at });
            }
            Ok::<_, VerifyError>(out)
        })
        .await
    }

    /// Removes a member: their sessions and refresh tokens stop working at once (access tokens
    /// at their expiry). The last admin cannot be removed.
    pub async fn remove_member(&self, caller: &Caller, p: &Principal, user_id: &str) -> Result<(), VerifyError> {
        self.admin(p).await?;
        let (this, id, now) = (self.clone(), user_id.to_string(), self.now());
        ports::write(self.ctx.store.as_ref(), move |tx| {
            let user = tx.user(&id)?.ok_or(VerifyError::MemberNotFound)?;
            if user.is_admin() && tx.admin_count()? <= 1 {
                return Err(VerifyError::LastAdmin);
            }
            this.emit(tx, "user.deleted", &user, now)?;
            tx.delete_user(&id)?;
            Ok(())
        })
        .await?;
        self.audit.record(&caller.as_user(&p.user_id), AuditKind::MemberRemoved, Some(user_id), "an admin removed a member").await;
        Ok(())
    }

    /// Gives or takes the admin role; the last admin keeps it.
    pub async fn set_admin(&self, caller: &Caller, p: &Principal, user_id: &str, admin: bool) -> Result<User, VerifyError> {
        self.admin(p).await?;
        let id = user_id.to_string();
        let user = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut user = tx.user(&id)?.ok_or(VerifyError::MemberNotFound)?;
            if !admin && user.is_admin() && tx.admin_count()? <= 1 {
                return Err(VerifyError::LastAdmin);
            }
            user.roles.retain(|r| r != ADMIN);
            if admin {
                user.roles.push(ADMIN.to_string());
            }
            tx.set_roles(&id, &user.roles)?;
            Ok(user)
        })
        .await?;
        let (kind, detail) = if admin {
            (AuditKind::AdminPromoted, "a member was made admin")
        } else {
            (AuditKind::AdminDemoted, "an admin was made a member")
        };
        self.audit.record(&caller.as_user(&p.user_id), kind, Some(user_id), detail).await;
        Ok(user)
    }

    /// A member's live sessions, newest first.
    pub async fn member_sessions(&self, p: &Principal, user_id: &str) -> Result<Vec<super::Session>, VerifyError> {
        self.admin(p).await?;
        let (id, now, idle) = (user_id.to_string(), self.now(), self.settings.idle());
        ports::read(self.ctx.store.as_ref(), move |tx| {
            tx.user(&id)?.ok_or(VerifyError::MemberNotFound)?;
            Ok(tx.sessions_of(&id)?.into_iter().filter(|s| s.live(now, idle)).collect())
        })
        .await
    }

    /// Ends one session of a member.
    pub async fn revoke_member_session(&self, caller: &Caller, p: &Principal, user_id: &str, session_id: &str) -> Result<(), VerifyError> {
        self.admin(p).await?;
        let (user, id) = (user_id.to_string(), session_id.to_string());
        let gone = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.delete_session(&user, &id)?)).await?;
        if !gone {
            return Err(VerifyError::SessionNotFound);
        }
        self.audit.record(&caller.as_user(&p.user_id), AuditKind::SessionRevoked, Some(user_id), "an admin ended a member's session").await;
        Ok(())
    }
}

impl Accounts {
    /// The audit log for an admin's console, newest first.
    pub async fn audit_log(&self, p: &Principal, query: crate::audit::AuditQuery) -> Result<Vec<crate::audit::AuditEvent>, VerifyError> {
        self.admin(p).await?;
        self.audit.events(&Caller::system("admin-console"), query).await
    }

    /// A page of the audit log for an admin's console (see `Audit::page`).
    pub async fn audit_page(&self, p: &Principal, query: crate::audit::AuditQuery) -> Result<crate::audit::AuditPage, VerifyError> {
        self.admin(p).await?;
        self.audit.page(&Caller::system("admin-console"), query).await
    }

    /// The dashboard's figures (the last 24 hours).
    pub async fn dashboard(&self, p: &Principal) -> Result<crate::traffic::Traffic, VerifyError> {
        self.admin(p).await?;
        self.traffic.last_day().await
    }

    /// Whether the signed-in user is an admin (for showing the console link).
    pub async fn is_admin(&self, p: &Principal) -> Result<bool, VerifyError> {
        Ok(self.me(p).await?.is_admin())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn phones_are_masked_but_for_the_last_digits() {
        assert_eq!(super::mask_phone("+4915123456789"), "+49••••••••789");
        assert_eq!(super::mask_phone("+1234"), "•••••");
    }
}
