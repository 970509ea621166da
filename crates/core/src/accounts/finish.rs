//! What a verified flow does: inside the verifying unit, create the account, open the session,
//! change the number or the e-mail address (`finish`; `me_email.rs`); after it commits, the
//! audit record, the tokens and the notice to a former number (`verified`).
use super::{Accounts, Flow, FlowKind, SessionKind, SignedIn, User, Verified};
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::model::ids::new_id;
use crate::model::phone::PhoneNumber;
use crate::ports;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

impl Accounts {
    /// The answer of a verified flow, once its unit has committed: the account event, and a
    /// login's tokens.
    pub(super) async fn verified(&self, caller: &Caller, (user, opened): (User, Opened)) -> Result<Verified, VerifyError> {
        match opened {
            Opened::PhoneChanged { old } => {
                self.audit.record(caller, AuditKind::PhoneChanged, Some(&user.id), "the account's phone number was changed").await;
                self.notify_old_number(caller, &old, &user.phone).await;
                Ok(Verified::PhoneChanged(user))
            }
            Opened::EmailChanged { released } => {
                self.email_verified(caller, &user, released.as_deref()).await;
                Ok(Verified::EmailChanged(user))
            }
            Opened::Session { session, secret, created } => {
                let kind_text = if created { AuditKind::Signup } else { AuditKind::Login };
                self.audit.record(caller, kind_text, Some(&user.id), if created { "account created" } else { "signed in" }).await;
                let access_token = self.access_token(&*self.ring().await?, &user, &session.id)?;
                let (refresh_token, cookie) = match session.kind {
                    SessionKind::App => (Some(secret), None),
                    SessionKind::Browser => (None, Some(secret)),
                };
                let expires_in = self.settings.access_token_secs;
                Ok(Verified::SignedIn(Box::new(SignedIn { user, session: *session, access_token, expires_in, refresh_token, cookie })))
            }
        }
    }

    /// Tells the account's former number that it no longer signs in, so its holder learns of a
    /// change they did not make. A notice that cannot be sent is logged; the change stands.
    async fn notify_old_number(&self, caller: &Caller, old: &PhoneNumber, new: &PhoneNumber) {
        let shown: String = new.as_str().chars().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect();
        let body = format!(
            "{}: the phone number of your account was changed to a number ending in {shown}. If you did not do this, contact the administrator.",
            self.settings.brand
        );
        let sent = match self.catalog.service(&Caller::system("accounts"), Some(super::SERVICE)).await {
            Ok(service) => self.delivery.send_text(&self.engine_caller(caller), &service, old, body).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "the notice of a phone change to the former number was not sent");
        }
    }

    /// What a verified flow does, inside the verifying unit.
    pub(super) fn finish(
        &self,
        tx: &mut dyn ports::Tx,
        flow: Flow,
        kind: SessionKind,
        (device, amr): (Option<String>, Vec<String>),
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(User, Opened), VerifyError> {
        let phone = || flow.phone.clone().ok_or(VerifyError::FlowNotFound);
        let (user, created) = match flow.kind {
            FlowKind::Signup => {
                let user = User {
                    id: new_id("us"),
                    username: flow.username.clone().unwrap_or_default(),
                    email: flow.email.clone(),
                    // Given, not proven: `POST /api/me/email` proves it.
                    email_verified: false,
                    phone: phone()?,
                    password_hash: flow.password_hash.clone(),
                    roles: Vec::new(),
                    created_at: now,
                    last_login_at: Some(now),
                };
                if let Some(invite) = &flow.invite_id
                    && !tx.use_invite(invite, now)?
                {
                    return Err(VerifyError::InviteNotPending);
                }
                match tx.insert_user(&user) {
                    Ok(()) => {
                        self.emit(tx, "user.created", &user, now)?;
                        (user, true)
                    }
                    Err(ports::StoreError::Conflict) => {
                        let lc = user.username.to_lowercase();
                        return Err(if tx.username_taken(&lc)? { VerifyError::UsernameTaken } else { VerifyError::EmailTaken });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            FlowKind::Login => {
                let id = flow.user_id.as_deref().ok_or(VerifyError::FlowNotFound)?;
                (tx.user(id)?.ok_or(VerifyError::FlowNotFound)?, false)
            }
            FlowKind::EmailChange => return self.finish_email(tx, &flow, now),
            FlowKind::PhoneChange => {
                let id = flow.user_id.as_deref().ok_or(VerifyError::FlowNotFound)?;
                let old = tx.user(id)?.ok_or(VerifyError::FlowNotFound)?.phone;
                match tx.set_user_phone(id, &phone()?) {
                    Ok(()) => {}
                    Err(ports::StoreError::Conflict) => return Err(VerifyError::PhoneTaken),
                    Err(e) => return Err(e.into()),
                }
                let user = tx.user(id)?.ok_or(VerifyError::FlowNotFound)?;
                self.emit(tx, "user.phone_changed", &user, now)?;
                return Ok((user, Opened::PhoneChanged { old }));
            }
        };
        let (session, secret) = self.open_session(tx, &user, kind, (device, amr), ip, now)?;
        Ok((user, Opened::Session { session: Box::new(session), secret, created }))
    }
}

/// How a verified flow proved its person (RFC 8176): the code's channel (`sms`, `tel` for a call,
/// `otp` for WhatsApp), after a password `pwd` and `mfa`; a silent SIM check (`channel` none) is
/// proof of the SIM, a hardware-secured key (`hwk`).
pub(super) fn amr(flow: &Flow, channel: Option<crate::workflow::Channel>) -> Vec<String> {
    use crate::workflow::Channel;
    let factor = match channel {
        None | Some(Channel::Silent) => return vec!["hwk".into()],
        Some(Channel::Voice) => "tel",
        Some(Channel::Whatsapp | Channel::Email) => "otp",
        Some(_) => "sms",
    };
    let password = flow.kind == FlowKind::Login && flow.login.as_deref() != flow.phone.as_ref().map(|p| p.as_str());
    if password { vec!["pwd".into(), factor.into(), "mfa".into()] } else { vec![factor.into()] }
}

/// What a verified flow opened: a session, or (a phone change) the number it replaced, or (an
/// e-mail change) the account whose unverified claim on the address it released.
pub(super) enum Opened {
    Session { session: Box<super::Session>, secret: SecretString, created: bool },
    PhoneChanged { old: PhoneNumber },
    EmailChanged { released: Option<String> },
}
