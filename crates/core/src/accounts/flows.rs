//! The flows: sign-up, login (by number, or password then code), phone change, resend and the
//! verification that ends each one.
use super::{Accounts, Flow, FlowKind, FlowStarted, SessionKind, SignedIn, User, Verified, user};
use crate::budget::Guesser;
use crate::caller::Caller;
use crate::engine::Guess;
use crate::engine::{StartOptions, StartRequest};
use crate::error::VerifyError;
use crate::ids::new_id;
use crate::phone::PhoneNumber;
use crate::ports;
use crate::verification::{Channel, CheckOutcome, Status};
use chrono::{DateTime, Utc};

pub struct SignupRequest {
    pub username: String,
    pub phone: String,
    pub email: Option<String>,
    pub password: Option<String>,
    pub locale: Option<String>,
    /// Check the number by the device's operator where possible (`silent.rs`): the client then
    /// opens the answer's `check_url` on the device.
    pub silent: bool,
}

pub enum LoginRequest {
    /// Passwordless: a code to the number (or, with `silent`, the device's operator first).
    Phone { phone: String, locale: Option<String>, silent: bool },
    /// Username or e-mail and password, then a code to the account's number.
    Password { identifier: String, password: String, locale: Option<String> },
}

/// The unused flow `id`, locked for the verifying unit: a phone change only for its own user
/// (`owner`), and not past its deadline.
pub(super) async fn open_flow(tx: &mut dyn ports::Tx, id: &str, owner: Option<&str>, now: DateTime<Utc>) -> Result<Flow, VerifyError> {
    let flow = tx
        .flow(id)
        .await?
        .filter(|f| f.used_at.is_none() && (f.kind != FlowKind::PhoneChange || f.user_id.as_deref() == owner))
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
    pub async fn signup(&self, caller: &Caller, req: SignupRequest) -> Result<FlowStarted, VerifyError> {
        let username = user::username(&req.username)?;
        let email = req.email.filter(|e| !e.is_empty()).map(|e| user::email(&e)).transpose()?;
        if let Some(p) = &req.password {
            user::password(p)?;
        }
        let phone = self.verifier.parse_phone(&req.phone)?;
        let (name_lc, p) = (username.to_lowercase(), phone.clone());
        let (taken, existing) = ports::read(self.verifier.store.as_ref(), move |tx| {
            Box::pin(async move { Ok::<_, VerifyError>((tx.username_taken(&name_lc).await?, tx.user_by_phone(&p).await?)) })
        })
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
            let invite = ports::read(self.verifier.store.as_ref(), move |tx| {
                Box::pin(async move { Ok::<_, VerifyError>(tx.live_invite(&p, now).await?) })
            })
            .await?;
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
    pub async fn login(&self, caller: &Caller, req: LoginRequest) -> Result<FlowStarted, VerifyError> {
        match req {
            LoginRequest::Phone { phone, locale, silent } => {
                let phone = self.verifier.parse_phone(&phone)?;
                let login = phone.as_str().to_string();
                let p = phone.clone();
                let user = ports::read(self.verifier.store.as_ref(), move |tx| {
                    Box::pin(async move { Ok::<_, VerifyError>(tx.user_by_phone(&p).await?) })
                })
                .await?;
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
                if !named || password.is_empty() || password.chars().count() > 128 {
                    return Err(VerifyError::invalid("identifier", "a username or e-mail address and a password are required"));
                }
                let l = login.clone();
                let user = ports::read(self.verifier.store.as_ref(), move |tx| {
                    Box::pin(async move { Ok::<_, VerifyError>(tx.user_by_login(&l).await?) })
                })
                .await?;
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
    pub async fn change_phone(
        &self,
        caller: &Caller,
        p: &super::Principal,
        phone: &str,
        locale: Option<String>,
    ) -> Result<FlowStarted, VerifyError> {
        let phone = self.verifier.parse_phone(phone)?;
        self.require_fresh(p).await?;
        self.admit(caller, None).await?;
        let flow = Flow { user_id: Some(p.user_id.clone()), ..self.new_flow(FlowKind::PhoneChange, Some(phone), None) };
        self.start_flow(caller, flow, locale, false).await
    }

    /// Inside a unit: the signed-in session is live in the store and its login recent (see
    /// `require_fresh`).
    pub(super) async fn fresh_session(
        &self,
        tx: &mut dyn ports::Tx,
        session_id: Option<&str>,
        user_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let Some(id) = session_id else { return Err(VerifyError::Unauthenticated) };
        let s = tx.session(id).await?.filter(|s| Some(s.user_id.as_str()) == user_id && s.live(now, self.settings.idle()));
        let s = s.ok_or(VerifyError::Unauthenticated)?;
        if now - s.created_at > chrono::Duration::seconds(self.settings.reauth_secs) {
            return Err(VerifyError::ReauthenticationRequired);
        }
        Ok(())
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
    async fn admit(&self, caller: &Caller, login: Option<(&str, Guesser)>) -> Result<(), VerifyError> {
        let budgets = &self.verifier.budgets;
        let per_ip = budgets.for_login(caller.end_user_ip.or(caller.ip));
        let per_account = login.map(|(l, who)| budgets.for_failed_login(l, who)).unwrap_or_default();
        let now = self.now();
        let result = ports::write(self.verifier.store.as_ref(), move |tx| {
            Box::pin(async move {
                crate::engine::charge(tx, &per_ip, now).await?;
                for c in &per_account {
                    if !tx.budget_left(c, c.rate.window(now).0).await? {
                        return Err(c.refusal(now));
                    }
                }
                Ok(())
            })
        })
        .await;
        self.verifier.audited(caller, login.map_or("login", |(l, _)| l), result).await
    }

    /// Sends a flow's code; with `silent_return` (a new flow whose device may be checked
    /// silently) it is an `auto` verification whose device comes back to that page.
    async fn send_code(
        &self,
        caller: &Caller,
        phone: &PhoneNumber,
        locale: Option<String>,
        silent_return: Option<String>,
        recognised: bool,
        also: Option<crate::engine::AlsoInUnit>,
    ) -> Result<crate::engine::Started, VerifyError> {
        let req = self.code_request(phone, locale, silent_return, Start { rehearse: false, recognised });
        match self.verifier.start_with(&self.engine_caller(caller), req, also).await {
            // A number's pending code was sent too often: answered like the number's send budget,
            // which is all a decoy for a number without an account can say.
            Err(VerifyError::MaxSendsReached) => Err(self
                .send_charges(caller, phone, recognised)
                .into_iter()
                .find(|c| c.budget == crate::budget::Budget::SendsPerNumber)
                .map_or(VerifyError::MaxSendsReached, |c| c.refusal(self.now()))),
            other => other,
        }
    }

    /// The start of a flow's verification; `rehearse`: run and rolled back (a decoy's).
    fn code_request(&self, phone: &PhoneNumber, locale: Option<String>, silent_return: Option<String>, who: Start) -> StartRequest {
        StartRequest {
            service: Some(self.service_id.to_string()),
            to: phone.as_str().to_string(),
            channel: if silent_return.is_some() { Channel::Auto } else { Channel::Sms },
            locale,
            options: StartOptions {
                ttl_secs: Some(self.settings.code_ttl_secs),
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

    /// What sending a login code to `phone` costs in the engine's budgets (the accounts service's).
    pub(super) fn send_charges(&self, caller: &Caller, phone: &PhoneNumber, recognised: bool) -> Vec<crate::budget::Charge> {
        let budgets = self.verifier.budgets.for_service(super::SERVICE);
        let mut charges = budgets.for_start(caller.end_user_ip.or(caller.ip));
        let (to, country) = (phone.as_str(), phone.calling_code());
        charges.extend(match recognised {
            true => budgets.for_recognised_send(to, &country, None, &self.service_id),
            false => budgets.for_send(to, &country, None, &self.service_id),
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
        let phone = flow.phone.clone().ok_or_else(|| VerifyError::invalid("phone", "a phone number is required"))?;
        if let Some(taken_over) = self.take_reply_flow(caller, &flow).await? {
            return Ok(taken_over);
        }
        let silent_return = (silent && self.verifier.silent_enabled()).then(|| super::silent::flow_page(&flow.id));
        // The flow is written in the start's own unit: no code is queued without its flow.
        let written = flow.clone();
        let also: crate::engine::AlsoInUnit = Box::new(move |tx, v| {
            Box::pin(async move {
                let mut flow = written;
                flow.verification_id = Some(v.id.clone());
                flow.expires_at = flow.expires_at.min(v.expires_at);
                Ok(tx.insert_flow(&flow).await?)
            })
        });
        let started = self.send_code(caller, &phone, locale, silent_return.clone(), flow.recognised, Some(also)).await?;
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

    /// A flow that sends nothing and accepts no code, for a login that must not say why.
    async fn decoy(
        &self,
        caller: &Caller,
        phone: Option<PhoneNumber>,
        login: String,
        wrong_password: Option<Guesser>,
        silent: bool,
    ) -> Result<FlowStarted, VerifyError> {
        let recognised = wrong_password == Some(Guesser::Recognised);
        let flow = Flow { recognised, ..self.new_flow(FlowKind::Login, phone.clone(), Some(login.clone())) };
        // A decoy does the work of a real flow's start (the reply-flow read, the verification's
        // unit of work, rolled back), so it takes as long as a real one.
        if let Some(p) = phone.as_ref() {
            self.reply_pending(p).await?;
            let rehearsal = self.code_request(p, None, None, Start { rehearse: true, recognised });
            let _ = self.verifier.start_unaudited(&self.engine_caller(caller), rehearsal, None).await;
        }
        // A decoy costs what a code would, so the budgets' refusals come at the same point for
        // numbers with and without an account.
        let refusing = self.decoy_send_charges(caller, &flow);
        let page = super::silent::flow_page(&flow.id);
        // A wrong password counts in its own unit: whatever refuses the flow later, it stays counted.
        if let Some(who) = wrong_password {
            let (counted, now) = (self.verifier.budgets.for_failed_login(&login, who), self.now());
            ports::write(self.verifier.store.as_ref(), move |tx| {
                Box::pin(async move {
                    for c in &counted {
                        let (start, end) = c.rate.window(now);
                        tx.take_budget(c, start, 0, end).await?;
                    }
                    Ok::<_, VerifyError>(())
                })
            })
            .await?;
        }
        let event = self.verifier.audit_in_unit(caller, "login_failed", Some(&login), "unknown account or wrong password");
        let started = self.save_flow(flow, refusing, event).await;
        let mut started = self.verifier.audited(caller, &login, started).await?;
        // Where a real flow would get a silent check, so does a decoy (one that ends nothing),
        // once the budgets a real one costs are charged.
        if let Some(p) = phone.as_ref().filter(|_| silent && self.verifier.silent_enabled()) {
            started.check_url = self.verifier.decoy_silent_check(caller, p, page, self.settings.brand.clone()).await;
        }
        Ok(started)
    }

    /// What sending a decoy's code would cost: a number's send budgets, or for a decoy without a
    /// number (a wrong password) a send budget of the login tried.
    fn decoy_send_charges(&self, caller: &Caller, flow: &Flow) -> Vec<crate::budget::Charge> {
        if let Some(p) = &flow.phone {
            return self.send_charges(caller, p, flow.recognised);
        }
        let budgets = self.verifier.budgets.for_service(super::SERVICE);
        let mut charges = budgets.for_start(caller.end_user_ip.or(caller.ip));
        let subject = decoy_subject(flow);
        let sends = budgets.for_send(&subject, "", None, &self.service_id);
        charges.extend(sends.into_iter().filter(|c| c.budget == crate::budget::Budget::SendsPerNumber));
        charges
    }

    /// Writes a flow (and a decoy's audit event), taking `refusing` (or refusing it over any of
    /// them).
    async fn save_flow(
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
        ports::write(self.verifier.store.as_ref(), move |tx| {
            Box::pin(async move {
                crate::engine::charge(tx, &refusing, now).await?;
                tx.insert_flow(&flow).await?;
                if let Some(e) = &event {
                    tx.insert_audit_event(e).await?;
                }
                Ok::<_, VerifyError>(())
            })
        })
        .await?;
        Ok(answer)
    }

    /// Sends a flow's code again, once the cooldown has passed.
    pub async fn resend(&self, caller: &Caller, flow_id: &str, locale: Option<String>) -> Result<FlowStarted, VerifyError> {
        self.admit(caller, None).await?;
        let (id, now, cooldown) = (flow_id.to_string(), self.now(), chrono::Duration::seconds(self.settings.resend_cooldown_secs));
        let flow = ports::write(self.verifier.store.as_ref(), move |tx| {
            Box::pin(async move {
                let mut flow = tx.flow(&id).await?.filter(|f| f.used_at.is_none()).ok_or(VerifyError::FlowNotFound)?;
                if now >= flow.expires_at {
                    return Err(VerifyError::CodeExpired);
                }
                let wait = (flow.last_sent_at + cooldown - now).num_seconds();
                if wait > 0 {
                    return Err(VerifyError::ResendTooSoon { retry_after_secs: wait });
                }
                flow.last_sent_at = now;
                tx.update_flow(&flow).await?;
                Ok(flow)
            })
        })
        .await?;
        let mut flow = flow;
        if flow.verification_id.is_none() {
            // A decoy's resend costs what a real one would, and is refused where it would be.
            let (charges, now) = (self.decoy_send_charges(caller, &flow), self.now());
            ports::write(self.verifier.store.as_ref(), move |tx| Box::pin(async move { crate::engine::charge(tx, &charges, now).await }))
                .await?;
        }
        if let (Some(current), Some(phone)) = (flow.verification_id.clone(), flow.phone.clone()) {
            let started = self.send_code(caller, &phone, locale, None, flow.recognised, None).await?;
            // The verification behind the flow ended (another flow for the number used it): the
            // flow goes on with the new one.
            if started.verification.id != current {
                flow.verification_id = Some(started.verification.id.clone());
                flow.expires_at = self.now() + chrono::Duration::seconds(self.settings.code_ttl_secs);
                flow.expires_at = flow.expires_at.min(started.verification.expires_at);
                let f = flow.clone();
                ports::write(self.verifier.store.as_ref(), move |tx| {
                    Box::pin(async move { Ok::<_, VerifyError>(tx.update_flow(&f).await?) })
                })
                .await?;
            }
        }
        Ok(FlowStarted { flow_id: flow.id, expires_at: flow.expires_at, resend_after: self.settings.resend_cooldown_secs, check_url: None })
    }

    /// Checks a flow's code. Right: the flow is used, and a sign-up creates the account, a login
    /// opens a session (`kind`), a phone change changes the number — in the same transaction as
    /// the check. Wrong, expired and locked codes get distinct errors. A phone change is
    /// completed only by its own signed-in user (`signed_in`: that user's id).
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
            return Err(VerifyError::invalid("code", "must be 4 to 10 digits"));
        }
        let (this, id, code, now) = (self.clone(), flow_id.to_string(), code.to_string(), self.now());
        let ip = caller.end_user_ip.or(caller.ip);
        let owner = signed_in.map(|p| p.user_id.clone());
        let session_id = signed_in.map(|p| p.session_id.clone());
        let done = ports::write(self.verifier.store.as_ref(), move |tx| {
            Box::pin(async move {
                let mut flow = open_flow(tx, &id, owner.as_deref(), now).await?;
                if flow.kind == FlowKind::PhoneChange {
                    this.fresh_session(tx, session_id.as_deref(), owner.as_deref(), now).await?;
                }
                if flow.attempts >= FLOW_ATTEMPTS {
                    return Err(VerifyError::CodeLocked);
                }
                let who = if flow.recognised { Guesser::Recognised } else { Guesser::Anyone };
                let failed = flow.login.as_deref().map(|l| this.verifier.budgets.for_failed_login(l, who)).unwrap_or_default();
                for c in &failed {
                    if !tx.budget_left(c, c.rate.window(now).0).await? {
                        return Err(c.refusal(now));
                    }
                }
                let right = match &flow.verification_id {
                    None => {
                        this.decoy_check(tx, &flow, ip, now).await?;
                        false
                    }
                    Some(vid) => {
                        let v = tx.verification(vid).await?.ok_or(VerifyError::FlowNotFound)?;
                        let guess = Guess { guesser: who, own_attempts: false };
                        match this.verifier.check_locked(tx, v, &code, ip, None, guess).await {
                            Ok((_, CheckOutcome::Approved)) => true,
                            Ok((_, CheckOutcome::Rejected { .. } | CheckOutcome::LockedOut)) => false,
                            Ok((_, CheckOutcome::NotPending(s))) | Err(VerifyError::NotPending(s)) => return Err(not_pending(s)),
                            Err(e) => return Err(e),
                        }
                    }
                };
                if !right {
                    flow.attempts += 1;
                    tx.update_flow(&flow).await?;
                    for c in &failed {
                        let (start, end) = c.rate.window(now);
                        tx.take_budget(c, start, 0, end).await?;
                    }
                    // Committed: the attempt counts.
                    return Ok(Err(match FLOW_ATTEMPTS - flow.attempts {
                        0 => VerifyError::CodeLocked,
                        attempts_left => VerifyError::CodeIncorrect { attempts_left },
                    }));
                }
                flow.used_at = Some(now);
                tx.update_flow(&flow).await?;
                this.finish(tx, flow, kind, device, ip.map(|i| i.to_string()), now).await.map(Ok)
            })
        })
        .await??;
        self.verified(caller, done).await
    }

    /// A decoy's wrong code costs what a real flow's would (the address's check budget and the
    /// number's guess budget, or the login's for a decoy without a number), so every budget
    /// refuses at the same point for both.
    async fn decoy_check(
        &self,
        tx: &mut dyn ports::Tx,
        flow: &Flow,
        ip: Option<std::net::IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let budgets = self.verifier.budgets.for_service(super::SERVICE);
        let who = if flow.recognised { Guesser::Recognised } else { Guesser::Anyone };
        if who == Guesser::Anyone {
            crate::engine::charge(tx, &budgets.for_check(ip), now).await?;
        }
        let number = flow.phone.as_ref().map_or_else(|| decoy_subject(flow), |p| p.as_str().to_string());
        crate::engine::charge(tx, &budgets.for_guess(&number, who), now).await
    }

    /// The answer of a verified flow, once its unit has committed: the account event, and a
    /// login's tokens.
    pub(super) async fn verified(&self, caller: &Caller, (user, opened): (User, Opened)) -> Result<Verified, VerifyError> {
        match opened {
            Opened::PhoneChanged { old } => {
                self.verifier.record(caller, "phone_changed", Some(&user.id), "the account's phone number was changed").await;
                self.notify_old_number(caller, &old, &user.phone).await;
                Ok(Verified::PhoneChanged(user))
            }
            Opened::Session { session, secret, created } => {
                let kind_text = if created { "signup" } else { "login" };
                self.verifier.record(caller, kind_text, Some(&user.id), if created { "account created" } else { "signed in" }).await;
                let access_token = self.access_token(&*self.ring().await?, &user, &session.id)?;
                let (refresh_token, cookie) = match session.kind {
                    SessionKind::App => (Some(secret), None),
                    SessionKind::Browser => (None, Some(secret)),
                };
                let expires_in = self.settings.access_token_secs;
                Ok(Verified::SignedIn(Box::new(SignedIn { user, session, access_token, expires_in, refresh_token, cookie })))
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
        let sent = match self.verifier.service(&Caller::system("accounts"), Some(super::SERVICE)).await {
            Ok(service) => self.verifier.send_text(&self.engine_caller(caller), &service, old, body).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "the notice of a phone change to the former number was not sent");
        }
    }

    /// What a verified flow does, inside the verifying unit.
    pub(super) async fn finish(
        &self,
        tx: &mut dyn ports::Tx,
        flow: Flow,
        kind: SessionKind,
        device: Option<String>,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(User, Opened), VerifyError> {
        let phone = flow.phone.clone().ok_or(VerifyError::FlowNotFound)?;
        let (user, created) = match flow.kind {
            FlowKind::Signup => {
                let user = User {
                    id: new_id("us"),
                    username: flow.username.clone().unwrap_or_default(),
                    email: flow.email.clone(),
                    phone,
                    password_hash: flow.password_hash.clone(),
                    roles: Vec::new(),
                    created_at: now,
                    last_login_at: Some(now),
                };
                if let Some(invite) = &flow.invite_id
                    && !tx.use_invite(invite, now).await?
                {
                    return Err(VerifyError::InviteNotPending);
                }
                match tx.insert_user(&user).await {
                    Ok(()) => {
                        self.emit(tx, "user.created", &user, now).await?;
                        (user, true)
                    }
                    Err(ports::StoreError::Conflict) => {
                        let lc = user.username.to_lowercase();
                        return Err(if tx.username_taken(&lc).await? { VerifyError::UsernameTaken } else { VerifyError::EmailTaken });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            FlowKind::Login => {
                let id = flow.user_id.as_deref().ok_or(VerifyError::FlowNotFound)?;
                (tx.user(id).await?.ok_or(VerifyError::FlowNotFound)?, false)
            }
            FlowKind::PhoneChange => {
                let id = flow.user_id.as_deref().ok_or(VerifyError::FlowNotFound)?;
                let old = tx.user(id).await?.ok_or(VerifyError::FlowNotFound)?.phone;
                match tx.set_user_phone(id, &phone).await {
                    Ok(()) => {}
                    Err(ports::StoreError::Conflict) => return Err(VerifyError::PhoneTaken),
                    Err(e) => return Err(e.into()),
                }
                let user = tx.user(id).await?.ok_or(VerifyError::FlowNotFound)?;
                self.emit(tx, "user.phone_changed", &user, now).await?;
                return Ok((user, Opened::PhoneChanged { old }));
            }
        };
        let (session, secret) = self.open_session(tx, &user, kind, device, ip, now).await?;
        Ok((user, Opened::Session { session, secret, created }))
    }
}

/// How a flow's verification is started.
#[derive(Clone, Copy)]
struct Start {
    /// Run and rolled back (a decoy's).
    rehearse: bool,
    /// For a recognised device (its own send budget).
    recognised: bool,
}

/// The counters' subject for a decoy without a number (an unknown username or e-mail address).
/// It carries a space, which no number, username or address holds, so nobody can name it.
fn decoy_subject(flow: &Flow) -> String {
    format!("login {}", flow.login.as_deref().unwrap_or_default())
}

/// What a verified flow opened: a session, or (a phone change) the number it replaced.
pub(super) enum Opened {
    Session { session: super::Session, secret: String, created: bool },
    PhoneChanged { old: PhoneNumber },
}

fn not_pending(s: Status) -> VerifyError {
    match s {
        Status::Expired => VerifyError::CodeExpired,
        Status::MaxAttemptsReached => VerifyError::CodeLocked,
        _ => VerifyError::FlowNotFound,
    }
}
