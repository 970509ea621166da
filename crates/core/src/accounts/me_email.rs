//! A signed-in user proves an e-mail address, which becomes the account's, verified: a code goes
//! to the address (an e-mail verification of the accounts service, so its budgets per address
//! and per domain apply), and the flow's verification sets it (`finish_email`).
//!
//! Nothing here tells whether another account has the address. An address another account has
//! *verified* gets a decoy flow: the same answer, the same budgets charged, nothing sent, and
//! no code is ever right (the holder of the mailbox would learn nothing they could not know, and
//! anyone else cannot get a code). An address another account only *gave* at sign-up (never
//! proven) does not block its holder: the account that proves it takes it, and the other
//! account's unproven claim is removed (audited, and `user.email_changed` for the app).
use super::{Accounts, Flow, FlowKind, FlowStarted, Principal, User};
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::engine::{AlsoInUnit, StartOptions, StartRequest, Started};
use crate::error::{Field, VerifyError};
use crate::model::recipient::EmailAddress;
use crate::model::verification::Channel;
use crate::ports;
use chrono::{DateTime, Utc};

impl Accounts {
    /// Starts the proof of `email` for the signed-in user (a login within `reauth`, as a phone
    /// change needs): a code goes to the address. Answered alike whether or not another
    /// account has the address (see the module's note).
    #[tracing::instrument(name = "accounts.change_email", level = "debug", skip_all)]
    pub async fn change_email(
        &self,
        caller: &Caller,
        p: &Principal,
        email: &str,
        locale: Option<String>,
    ) -> Result<FlowStarted, VerifyError> {
        let address = EmailAddress::parse(email)
            .map_err(|_| VerifyError::invalid(Field::Email, "must be an e-mail address like name@example.com"))?;
        self.require_fresh(p).await?;
        self.admit(caller, None).await?;
        let (lc, me) = (address.as_str().to_lowercase(), p.user_id.clone());
        let holder = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.user_by_email(&lc)?)).await?;
        let taken = holder.is_some_and(|u| u.id != me && u.email_verified);
        let flow = Flow {
            user_id: Some(p.user_id.clone()),
            email: Some(address.as_str().to_string()),
            ..self.new_flow(FlowKind::EmailChange, None, None)
        };
        if taken {
            return self.email_decoy(caller, p, flow, locale).await;
        }
        // The flow is written in the start's own unit: no code is queued without its flow.
        let written = flow.clone();
        let also: AlsoInUnit = Box::new(move |tx, v| {
            let mut flow = written;
            flow.verification_id = Some(v.id.clone());
            flow.expires_at = flow.expires_at.min(v.expires_at);
            Ok(tx.insert_flow(&flow)?)
        });
        let started = self.send_email_code(caller, address.as_str(), locale, Some(also)).await?;
        Ok(FlowStarted {
            flow_id: flow.id,
            expires_at: flow.expires_at.min(started.verification.expires_at),
            resend_after: self.settings.resend_cooldown_secs,
            check_url: None,
        })
    }

    /// Checks the code of the user's e-mail change (`flow_id`, or their newest pending one):
    /// the address becomes the account's, verified.
    #[tracing::instrument(name = "accounts.verify_email", level = "debug", skip_all)]
    pub async fn verify_email(&self, caller: &Caller, p: &Principal, flow_id: Option<&str>, code: &str) -> Result<User, VerifyError> {
        let id = match flow_id {
            Some(id) => id.to_string(),
            None => {
                let (me, now) = (p.user_id.clone(), self.now());
                let flow = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.email_flow(&me, now)?)).await?;
                flow.ok_or(VerifyError::FlowNotFound)?.id
            }
        };
        match self.verify(caller, &id, code, super::SessionKind::App, None, Some(p)).await? {
            super::Verified::EmailChanged(user) => Ok(user),
            _ => Err(VerifyError::FlowNotFound),
        }
    }

    /// Sends a code to `address` by e-mail (the accounts service's verification of it; a pending
    /// one is sent again, same code); `also` is written in the start's unit.
    pub(super) async fn send_email_code(
        &self,
        caller: &Caller,
        address: &str,
        locale: Option<String>,
        also: Option<AlsoInUnit>,
    ) -> Result<Started, VerifyError> {
        match self.verifier.start_with(&self.engine_caller(caller), self.email_request(address, locale, false), also).await {
            // The address's pending code was sent too often: answered like the address's send
            // budget, which is all a decoy can say.
            Err(VerifyError::MaxSendsReached) => Err(self
                .email_send_charges(caller, address)
                .into_iter()
                .find(|c| c.budget == crate::budget::Budget::SendsPerNumber)
                .map_or(VerifyError::MaxSendsReached, |c| crate::budget::refusal(&c, self.now()))),
            other => other,
        }
    }

    fn email_request(&self, address: &str, locale: Option<String>, rehearse: bool) -> StartRequest {
        StartRequest {
            service: Some(self.service_id.to_string()),
            to: address.to_string(),
            channel: Some(Channel::Email),
            locale,
            options: StartOptions {
                ttl_secs: Some(self.settings.code_ttl_secs),
                brand: Some(self.settings.brand.clone()),
                // The answer must not wait for the provider: it would tell real flows from decoys.
                background: true,
                rehearse,
                ..Default::default()
            },
        }
    }

    /// What sending a code to `address` costs in the engine's budgets (the accounts service's
    /// e-mail budgets: per address, per domain, per service).
    pub(super) fn email_send_charges(&self, caller: &Caller, address: &str) -> Vec<crate::budget::Charge> {
        let budgets = self.ctx.budgets.for_service(super::SERVICE);
        let mut charges = budgets.for_start(caller.end_user_ip.or(caller.ip));
        let domain = format!("@{}", address.rsplit_once('@').map_or("", |(_, d)| d));
        charges.extend(budgets.for_send_on(Channel::Email, address, &domain, None, &self.service_id));
        charges
    }

    /// An e-mail change for an address another account verified: the work and the budgets of a
    /// real one (its start rehearsed and rolled back), no code sent.
    async fn email_decoy(&self, caller: &Caller, p: &Principal, flow: Flow, locale: Option<String>) -> Result<FlowStarted, VerifyError> {
        let address = flow.email.clone().unwrap_or_default();
        let rehearsal = self.email_request(&address, locale, true);
        let _ = self.verifier.start_unaudited(&self.engine_caller(caller), rehearsal, None).await;
        let refusing = self.email_send_charges(caller, &address);
        let by = caller.as_user(&p.user_id);
        let detail = "an e-mail change named an address another account verified: nothing was sent";
        let event = self.audit.in_unit(&by, AuditKind::EmailInUse, Some(&p.user_id), detail);
        let started = self.save_flow(flow, refusing, event).await;
        self.audit.audited(caller, &address, started).await
    }

    /// Inside the verifying unit of an e-mail change: the address becomes the user's, verified;
    /// another account's unverified claim on it is removed, a verified one refuses.
    pub(super) fn finish_email(
        &self,
        tx: &mut dyn ports::Tx,
        flow: &Flow,
        now: DateTime<Utc>,
    ) -> Result<(User, super::finish::Opened), VerifyError> {
        let id = flow.user_id.as_deref().ok_or(VerifyError::FlowNotFound)?;
        let address = flow.email.as_deref().ok_or(VerifyError::FlowNotFound)?;
        let lc = address.to_lowercase();
        let mut released = None;
        if let Some(holder) = tx.user_by_email(&lc)?.filter(|u| u.id != id) {
            // Verified meanwhile (or before: then this flow was a decoy and never got here).
            if holder.email_verified || !tx.release_unverified_email(&holder.id, &lc)? {
                return Err(VerifyError::EmailTaken);
            }
            if let Some(holder) = tx.user(&holder.id)? {
                self.emit(tx, "user.email_changed", &holder, now)?;
                released = Some(holder.id);
            }
        }
        match tx.set_user_email(id, Some(address), true) {
            Ok(()) => {}
            Err(ports::StoreError::Conflict) => return Err(VerifyError::EmailTaken),
            Err(e) => return Err(e.into()),
        }
        let user = tx.user(id)?.ok_or(VerifyError::FlowNotFound)?;
        self.emit(tx, "user.email_changed", &user, now)?;
        Ok((user, super::finish::Opened::EmailChanged { released }))
    }

    /// After an e-mail change committed: its audit events.
    pub(super) async fn email_verified(&self, caller: &Caller, user: &User, released: Option<&str>) {
        let by = caller.as_user(&user.id);
        self.audit.record(&by, AuditKind::EmailChanged, Some(&user.id), "the account's e-mail address was verified").await;
        if let Some(other) = released {
            let detail = "another account verified this account's unverified e-mail address, which was removed";
            self.audit.record(&by, AuditKind::EmailReleased, Some(other), detail).await;
        }
    }
}
