//! The flows: sign-up, login (by number, or password then code), phone change, resend and the
//! verification that ends each one.
use super::{Accounts, Flow, FlowKind, FlowStarted, SessionKind, Verified, user};
use crate::budget::Guesser;
use crate::caller::Caller;
use crate::engine::Guess;
use crate::engine::{StartOptions, StartRequest};
use crate::error::{Field, VerifyError};
use crate::model::ids::new_id;
use crate::model::phone::PhoneNumber;
use crate::model::verification::{Channel, CheckOutcome, Status};
use crate::ports;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

pub struct SignupRequest {
    pub username: String,
    pub phone: String,
    pub email: Option<String>,
    /// Never logged or printed: exposed only to check its length and to hash it.
    pub password: Option<SecretString>,
    pub locale: Option<String>,
    /// Check the number by the device's operator where possible (`silent.rs`): the client then
    /// opens the answer's `check_url` on the device.
    pub silent: bool,
}

pub enum LoginRequest {
    /// Passwordless: a code to the number (or, with `silent`, the device's operator first).
    Phone { phone: String, locale: Option<String>, silent: bool },
    /// Username or e-mail and password, then a code to the account's number.
    Password { identifier: String, password: SecretString, locale: Option<String> },
}

/// The unused flow `id`, locked for the verifying unit: a phone or e-mail change only for its
/// own user (`owner`), and not past its deadline.
pub(super) fn open_flow(tx: &mut dyn ports::Tx, id: &str, owner: Option<&str>, now: DateTime<Utc>) -> Result<Flow, VerifyError> {
    let flow = tx
        .flow(id)?
        .filter(|f| f.used_at.is_none() && (!f.kind.is_change() || f.user_id.as_deref() == owner))
        .ok_or(VerifyError::FlowNotFound)?;
    if now >= flow.expires_at {
        return Err(VerifyError::CodeExpired);
    }
    Ok(flow)
}

/// Wrong codes a flow takes before it answers "locked". Each flow counts its own, so a stranger's
/// flow for the same number cannot use up the holder's; every wrong code of every flow also
/// counts in the number's guess budget, which bounds guessing across all of them.
const FLOW_ATTEMPTS: u32 = 5;

impl Accounts {
    /// Starts a sign-up: a code to the number. A number that already has an account gets a
    /// login flow instead (only its holder, who receives the code, learns that). A taken username
    /// is refused whatever the number, so the answer says nothing of whose number it is.
    #[tracing::instrument(name = "accounts.signup", level = "debug", skip_all)]
    pub async fn signup(&self, caller: &Caller, req: SignupRequest) -> Result<FlowStarted, VerifyError> {
        let username = user::username(&req.username)?;
        let email = req.email.filter(|e| !e.is_empty()).map(|e| user::email(&e)).transpose()?;
        if let Some(p) = &req.password {
            user::password(p.expose_secret())?;
        }
        let phone = self.ctx.parse_phone(&req.phone)?;
        let (name_lc, p) = (username.to_lowercase(), phone.clone());
        let (taken, existing) =
            ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>((tx.username_taken(&name_lc)?, tx.user_by_phone(&p)?)))
                .await?;
        // Wrong codes of a sign-up count against the number like a login's.
        let login = phone.as_str().to_string();
        let who = self.guesser(caller, existing.as_ref().map(|u| (u.id.as_str(), &u.phone)));
        self.admit(caller, Some((&login, who))).await?;
        if taken {
            return Err(VerifyError::UsernameTaken);
        }
        // Hashed whether or not the number has an account: the same work either way.
        let password_hash = match &req.password {
            Some(p) => Some(self.passwords.hash(p).await).filter(|_| existing.is_none()),
            None => None,
        };
        let (kind, user_id) = match &existing {
            Some(u) => (FlowKind::Login, Some(u.id.clone())),
            None => (FlowKind::Signup, None),
        };
        // In an invite-only group a new number needs a live invite; without one the answer is
        // the same as with one, and nothing is sent.
        let mut invite_id = None;
        if existing.is_none() && self.settings.registration == super::invites::Registration::InviteOnly {
            let (p, now) = (phone.clone(), self.now());
            let invite = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.live_invite(&p, now)?)).await?;
            match invite {
                Some(i) => invite_id = Some(i.id),
                None => return self.decoy(caller, Some(phone.clone()), login, None, req.silent).await,
            }
        }
        let flow = Flow {
            user_id,
            username: Some(username),
            email,
            password_hash,
            invite_id,
            recognised: who == Guesser::Recognised,
            ..self.new_flow(kind, Some(phone.clone()), Some(login))
        };
        self.start_flow(caller, flow, req.locale, req.silent).await
    }

    /// Starts a login. Whatever the account's existence or the password, the answer looks the
    /// same; only a real account with the right password (or the number's holder) gets a code.
    #[tracing::instrument(name = "accounts.login", level = "debug", skip_all)]
    pub async fn login(&self, caller: &Caller, req: LoginRequest) -> Result<FlowStarted, VerifyError> {
        match req {
            LoginRequest::Phone { phone, locale, silent } => {
                let phone = self.ctx.parse_phone(&phone)?;
                let login = phone.as_str().to_string();
                let p = phone.clone();
                let user = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.user_by_phone(&p)?)).await?;
                let who = self.guesser(caller, user.as_ref().map(|u| (u.id.as_str(), &u.phone)));
                self.admit(caller, Some((&login, who))).await?;
                match user {
                    Some(u) => {
                        let flow = Flow {
                            user_id: Some(u.id),
                            recognised: who == Guesser::Recognised,
                            ..self.new_flow(FlowKind::Login, Some(phone), Some(login))
                        };
                        self.start_flow(caller, flow, locale, silent).await
                    }
                    None => self.decoy(caller, Some(phone), login, None, silent).await,
                }
            }
            LoginRequest::Password { identifier, password, locale } => {
                let login = identifier.trim().to_lowercase();
                // A username or an e-mail address, nothing else: the login is also the subject of
                // budget counters, which no other text may name.
                let named = user::username(&login).is_ok() || user::email(&login).is_ok();
                if !named || password.expose_secret().is_empty() || password.expose_secret().chars().count() > 128 {
                    return Err(VerifyError::invalid(Field::Identifier, "a username or e-mail address and a password are required"));
                }
                let l = login.clone();
                let user = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.user_by_login(&l)?)).await?;
                // The account's own devices have their own wrong-password budget.
                let who = self.guesser(caller, user.as_ref().map(|u| (u.id.as_str(), &u.phone)));
                self.admit(caller, Some((&login, who))).await?;
                let right = self.passwords.verify(&password, user.as_ref().and_then(|u| u.password_hash.as_deref())).await;
                match user {
                    Some(u) if right => {
                        // A code, never a silent check: its link would tell a password guesser
                        // that the password was right (a decoy has no number to check).
                        let flow = Flow {
                            user_id: Some(u.id),
                            recognised: who == Guesser::Recognised,
                            ..self.new_flow(FlowKind::Login, Some(u.phone), Some(login))
                        };
                        self.start_flow(caller, flow, locale, false).await
                    }
                    // A wrong password for an account costs what its code would: the account's
                    // number's budgets, as for the right password.
                    _ => self.decoy(caller, user.map(|u| u.phone), login, Some(who), false).await,
                }
            }
        }
    }

    /// Starts a change of the signed-in user's number: a code to the new number.
    #[tracing::instrument(name = "accounts.change_phone", level = "debug", skip_all)]
    pub async fn change_phone(
        &self,
        caller: &Caller,
        p: &super::Principal,
        phone: &str,
        locale: Option<String>,
    ) -> Result<FlowStarted, VerifyError> {
        let phone = self.ctx.parse_phone(phone)?;
        self.require_fresh(p).await?;
        self.admit(caller, None).await?;
        let flow = Flow { user_id: Some(p.user_id.clone()), ..self.new_flow(FlowKind::PhoneChange, Some(phone), None) };
        self.start_flow(caller, flow, locale, false).await
    }

    pub(super) fn new_flow(&self, kind: FlowKind, phone: Option<PhoneNumber>, login: Option<String>) -> Flow {
        let now = self.now();
        Flow {
            id: new_id("fl"),
            kind,
            user_id: None,
            phone,
            username: None,
            email: None,
            password_hash: None,
            verification_id: None,
            login,
            invite_id: None,
            by_reply: false,
            recognised: false,
            attempts: 0,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(self.settings.code_ttl_secs),
            last_sent_at: now,
            used_at: None,
        }
    }

    /// Logins from one end-user address, and whether the account tried (`login`, by `who`) is
    /// throttled.
    pub(super) async fn admit(&self, caller: &Caller, login: Option<(&str, Guesser)>) -> Result<(), VerifyError> {
        let budgets = &self.ctx.budgets;
        let per_ip = budgets.for_login(caller.end_user_ip.or(caller.ip));
        let per_account = login.map(|(l, who)| budgets.for_failed_login(l, who)).unwrap_or_default();
        let now = self.now();
        let result = ports::write(self.ctx.store.as_ref(), move |tx| {
            crate::budget::charge(tx, &per_ip, now)?;
            for c in &per_account {
                if !tx.budget_left(c, c.rate.window(now).0)? {
                    return Err(crate::budget::refusal(c, now));
                }
            }
            Ok(())
        })
        .await;
        self.audit.audited(caller, login.map_or("login", |(l, _)| l), result).await
    }

    /// Sends a flow's code; with `silent_return` (a new flow whose device may be checked
    /// silently) it is an `auto` verification whose device comes back to that page.
    async fn send_code(
        &self,
        caller: &Caller,
        phone: &PhoneNumber,
        locale: Option<String>,
        silent_return: Option<String>,
        who: Start,
        also: Option<crate::engine::AlsoInUnit>,
    ) -> Result<crate::engine::Started, VerifyError> {
        let req = self.code_request(phone, locale, silent_return, who);
        match self.verifier.start_with(&self.engine_caller(caller), req, also).await {
            // A number's pending code was sent too often: answered like the number's send budget,
            // which is all a decoy for a number without an account can say.
            Err(VerifyError::MaxSendsReached) => Err(self
                .send_charges(caller, phone, who.recognised, who.channel)
                .into_iter()
                .find(|c| c.budget == crate::budget::Budget::SendsPerNumber)
                .map_or(VerifyError::MaxSendsReached, |c| crate::budget::refusal(&c, self.now()))),
            other => other,
        }
    }

    /// The start of a flow's verification; `rehearse`: run and rolled back (a decoy's).
    pub(super) fn code_request(
        &self,
        phone: &PhoneNumber,
        locale: Option<String>,
        silent_return: Option<String>,
        who: Start,
    ) -> StartRequest {
        StartRequest {
            service: Some(self.service_id.to_string()),
            to: phone.as_str().to_string(),
            channel: if silent_return.is_some() { Some(Channel::Auto) } else { who.channel },
            locale,
            options: StartOptions {
                ttl_secs: Some(self.settings.code_ttl_secs),
                workflow: Some(self.settings.workflow.clone()),
                // Its other channels on request only ("Call me instead"): a decoy, which sends
                // nothing, must cost what a real flow does.
                manual_steps: true,
                brand: Some(self.settings.brand.clone()),
                // The answer must not wait for the provider: it would tell real flows from decoys.
                background: true,
                silent_return,
                rehearse: who.rehearse,
                recognised: who.recognised,
                ..Default::default()
            },
        }
    }

    /// What sending a login code to `phone` costs in the engine's budgets (the accounts service's):
    /// for a test number, which is never sent anything, only the start.
    pub(super) fn send_charges(
        &self,
        caller: &Caller,
        phone: &PhoneNumber,
        recognised: bool,
        channel: Option<Channel>,
    ) -> Vec<crate::budget::Charge> {
        let channel = channel.unwrap_or(self.settings.workflow.first().channel);
        let budgets = self.ctx.budgets.for_service(super::SERVICE);
        let mut charges = budgets.for_start(caller.end_user_ip.or(caller.ip));
        if self.ctx.test_numbers.code_in(super::SERVICE, &self.service_id, phone).is_some() {
            return charges;
        }
        let (to, country) = (phone.as_str(), phone.calling_code());
        charges.extend(match recognised && channel == Channel::Sms {
            true => budgets.for_recognised_send(to, &country, None, &self.service_id),
            false => budgets.for_send_on(channel, to, &country, None, &self.service_id),
        });
        charges
    }

    /// Starts a flow's verification; `silent`: by the device's operator where it can (see
    /// `silent.rs`), else by a code.
    pub(super) async fn start_flow(
        &self,
        caller: &Caller,
        mut flow: Flow,
        locale: Option<String>,
        silent: bool,
    ) -> Result<FlowStarted, VerifyError> {
        let phone = flow.phone.clone().ok_or_else(|| VerifyError::invalid(Field::Phone, "a phone number is required"))?;
        if let Some(taken_over) = self.take_reply_flow(caller, &flow).await? {
            return Ok(taken_over);
        }
        let silent_return = (silent && self.verifier.silent_enabled()).then(|| super::silent::flow_page(&flow.id));
        // The flow is written in the start's own unit: no code is queued without its flow.
        let written = flow.clone();
        let also: crate::engine::AlsoInUnit = Box::new(move |tx, v| {
            let mut flow = written;
            flow.verification_id = Some(v.id.clone());
            flow.expires_at = flow.expires_at.min(v.expires_at);
            Ok(tx.insert_flow(&flow)?)
        });
        let who = Start { rehearse: false, recognised: flow.recognised, channel: None };
        let started = self.send_code(caller, &phone, locale, silent_return.clone(), who, Some(also)).await?;
        flow.expires_at = flow.expires_at.min(started.verification.expires_at);
        let mut answer = FlowStarted {
            flow_id: flow.id.clone(),
            expires_at: flow.expires_at,
            resend_after: self.settings.resend_cooldown_secs,
            check_url: None,
        };
        answer.check_url = match (started.check_url, silent_return) {
            (Some(url), _) => Some(url),
            // The number had a flow pending, whose code was sent again: this flow gets a check
            // that ends nothing (like a decoy's), so its answer has the same shape as a first one.
            (None, Some(page)) if started.resent => {
                self.verifier.decoy_silent_check(caller, &phone, page, self.settings.brand.clone()).await
            }
            _ => None,
        };
        Ok(answer)
    }

    /// Writes a flow (and a decoy's audit event), taking `refusing` (or refusing it over any of
    /// them).
    pub(super) async fn save_flow(
        &self,
        flow: Flow,
        refusing: Vec<crate::budget::Charge>,
        event: Option<crate::audit::AuditEvent>,
    ) -> Result<FlowStarted, VerifyError> {
        let now = self.now();
        let answer = FlowStarted {
            flow_id: flow.id.clone(),
            expires_at: flow.expires_at,
            resend_after: self.settings.resend_cooldown_secs,
            check_url: None,
        };
        ports::write(self.ctx.store.as_ref(), move |tx| {
            crate::budget::charge(tx, &refusing, now)?;
            tx.insert_flow(&flow)?;
            if let Some(e) = &event {
                tx.insert_audit_event(e)?;
            }
            Ok::<_, VerifyError>(())
        })
        .await?;
        Ok(answer)
    }

    /// Sends a flow's code again, once the cooldown has passed.
    #[tracing::instrument(name = "accounts.resend", level = "debug", skip_all, fields(flow = %flow_id))]
    /// Sends a flow's code again, by `channel` when given (a channel of `[accounts] workflow`:
    /// "Call me instead"), else by its running step's.
    pub async fn resend(
        &self,
        caller: &Caller,
        flow_id: &str,
        locale: Option<String>,
        channel: Option<Channel>,
    ) -> Result<FlowStarted, VerifyError> {
        if channel.is_some_and(|c| !self.settings.workflow.uses(c)) {
            return Err(VerifyError::invalid(Field::Channel, "this channel is not offered for login codes"));
        }
        self.admit(caller, None).await?;
        // Another channel ("Call me instead") is not held back by the cooldown of a resend: its
        // own send budgets (a call's are the lowest) bound it.
        let other_channel = channel.is_some_and(|c| c != self.settings.workflow.first().channel);
        let cooldown = chrono::Duration::seconds(if other_channel { 0 } else { self.settings.resend_cooldown_secs });
        let (id, now) = (flow_id.to_string(), self.now());
        let flow = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut flow = tx.flow(&id)?.filter(|f| f.used_at.is_none()).ok_or(VerifyError::FlowNotFound)?;
            if now >= flow.expires_at {
                return Err(VerifyError::CodeExpired);
            }
            let wait = (flow.last_sent_at + cooldown - now).num_seconds();
            if wait > 0 {
                return Err(VerifyError::ResendTooSoon { retry_after_secs: wait });
            }
            flow.last_sent_at = now;
            tx.update_flow(&flow)?;
            Ok(flow)
        })
        .await?;
        let mut flow = flow;
        if flow.verification_id.is_none() {
            // A decoy's resend costs what a real one would, and is refused where it would be.
            let (charges, now) = (self.decoy_send_charges(caller, &flow, channel), self.now());
            ports::write(self.ctx.store.as_ref(), move |tx| crate::budget::charge(tx, &charges, now)).await?;
        }
        if let (Some(current), Some(to)) = (flow.verification_id.clone(), flow.phone.clone().map(Ok).or(flow.email.clone().map(Err))) {
            let started = match to {
                Ok(phone) => {
                    let who = Start { rehearse: false, recognised: flow.recognised, channel };
                    self.send_code(caller, &phone, locale, None, who, None).await?
                }
                // An e-mail change's code goes to its address again, by e-mail.
                Err(address) => self.send_email_code(caller, &address, locale, None).await?,
            };
            // The verification behind the flow ended (another flow for the number used it): the
            // flow goes on with the new one.
            if started.verification.id != current {
                flow.verification_id = Some(started.verification.id.clone());
                flow.expires_at = self.now() + chrono::Duration::seconds(self.settings.code_ttl_secs);
                flow.expires_at = flow.expires_at.min(started.verification.expires_at);
                let f = flow.clone();
                ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.update_flow(&f)?)).await?;
            }
        }
        Ok(FlowStarted { flow_id: flow.id, expires_at: flow.expires_at, resend_after: self.settings.resend_cooldown_secs, check_url: None })
    }

    /// Checks a flow's code. Right: the flow is used, and a sign-up creates the account, a login
    /// opens a session (`kind`), a phone change changes the number — in the same transaction as
    /// the check. Wrong, expired and locked codes get distinct errors. A phone change is
    /// completed only by its own signed-in user (`signed_in`: that user's id).
    #[tracing::instrument(name = "accounts.verify", level = "debug", skip_all, fields(flow = %flow_id))]
    pub async fn verify(
        &self,
        caller: &Caller,
        flow_id: &str,
        code: &str,
        kind: SessionKind,
        device: Option<String>,
        signed_in: Option<&super::Principal>,
    ) -> Result<Verified, VerifyError> {
        if !crate::code::is_plausible(code) {
            return Err(VerifyError::invalid(Field::Code, "must be 4 to 10 digits"));
        }
        let (this, id, code, now) = (self.clone(), flow_id.to_string(), code.to_string(), self.now());
        let ip = caller.end_user_ip.or(caller.ip);
        let signed_in = signed_in.cloned();
        let done = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut flow = open_flow(tx, &id, signed_in.as_ref().map(|p| p.user_id.as_str()), now)?;
            if flow.kind.is_change() {
                this.fresh_session(tx, signed_in.as_ref(), now)?;
            }
            if flow.attempts >= FLOW_ATTEMPTS {
                return Err(VerifyError::CodeLocked);
            }
            let who = flow.guesser();
            let failed = flow.login.as_deref().map(|l| this.ctx.budgets.for_failed_login(l, who)).unwrap_or_default();
            for c in &failed {
                if !tx.budget_left(c, c.rate.window(now).0)? {
                    return Err(crate::budget::refusal(c, now));
                }
            }
            let mut channel = None;
            let right = match &flow.verification_id {
                None => {
                    this.decoy_check(tx, &flow, ip, now)?;
                    false
                }
                Some(vid) => {
                    let v = tx.verification(vid)?.ok_or(VerifyError::FlowNotFound)?;
                    channel = Some(v.step_channel());
                    let guess = Guess { guesser: who, own_attempts: false };
                    match this.verifier.check_locked(tx, v, &code, ip, None, guess) {
                        Ok((_, CheckOutcome::Approved)) => true,
                        Ok((_, CheckOutcome::Rejected { .. } | CheckOutcome::LockedOut)) => false,
                        Ok((_, CheckOutcome::NotPending(s))) | Err(VerifyError::NotPending(s)) => return Err(not_pending(s)),
                        Err(e) => return Err(e),
                    }
                }
            };
            if !right {
                flow.attempts += 1;
                tx.update_flow(&flow)?;
                for c in &failed {
                    let (start, end) = c.rate.window(now);
                    tx.take_budget(c, start, 0, end)?;
                }
                // Committed: the attempt counts.
                return Ok(Err(match FLOW_ATTEMPTS - flow.attempts {
                    0 => VerifyError::CodeLocked,
                    attempts_left => VerifyError::CodeIncorrect { attempts_left },
                }));
            }
            flow.used_at = Some(now);
            tx.update_flow(&flow)?;
            let amr = super::finish::amr(&flow, channel);
            this.finish(tx, flow, kind, (device, amr), ip.map(|i| i.to_string()), now).map(Ok)
        })
        .await??;
        self.verified(caller, done).await
    }
}

/// How a flow's verification is started.
#[derive(Clone, Copy)]
pub(super) struct Start {
    /// Run and rolled back (a decoy's).
    pub rehearse: bool,
    /// For a recognised device (its own send budget).
    pub recognised: bool,
    /// The channel asked for (a resend by call: "Call me instead"); none: the workflow's.
    pub channel: Option<Channel>,
}

fn not_pending(s: Status) -> VerifyError {
    match s {
        Status::Expired => VerifyError::CodeExpired,
        Status::MaxAttemptsReached => VerifyError::CodeLocked,
        _ => VerifyError::FlowNotFound,
    }
}
