//! Starting a verification: the one unit that inserts it (or re-sends the pending one), takes
//! its budgets and queues its first message or stores its silent check; then the first send, or
//! the provider's silent check.
use super::{StartRequest, Started, Verifier};
use crate::caller::Caller;
use crate::code::{self, Code};
use crate::delivery::DispatchOutcome;
use crate::error::{Field, VerifyError};
use crate::model::ids::new_id;
use crate::model::phone::mask;
use crate::model::recipient::Recipient;
use crate::model::service;
use crate::model::verification::{Channel, SendRefusal, Status, Verification};
use crate::ports;
use tracing::Instrument;

/// More to write in a start's unit of work, given the verification it started or re-sent.
pub(crate) type AlsoInUnit = Box<dyn FnOnce(&mut dyn ports::Tx, &Verification) -> Result<(), VerifyError> + Send>;

/// What a start's unit of work did.
struct StartDone {
    verification: Verification,
    resent: bool,
    /// The code's message, unless a silent check waits for the device (with its claim, unless it
    /// is a test number's).
    sending: Option<crate::delivery::Queued>,
    /// The start's silent check was stored.
    silent: bool,
    /// A pending verification found expired on the way (recorded in the same transaction).
    expired: Option<Verification>,
}

/// How often a start retries when the pending verification it collided with ended before it
/// could lock it (PostgreSQL, another instance).
const START_ROUNDS: usize = 4;

/// What a start costs: its budget charges, the send limits its verification keeps and the prefix
/// throttle's counters.
type Costs = (Vec<crate::budget::Charge>, crate::model::verification::Limits, Option<(crate::budget::Charge, crate::budget::Charge)>);

impl Verifier {
    /// What a start for `to` in `service` costs. A test number is sent nothing: no send budget,
    /// send limit or prefix throttle applies, but its start still costs its end user's address a
    /// start (so nobody writes rows without end through a public page).
    fn costs(&self, caller: &Caller, service: &service::Service, to: &Recipient, channel: Channel, recognised: bool, test: bool) -> Costs {
        let country = to.calling_code();
        let budgets = self.ctx.budgets.for_service(&service.name);
        let mut charges = budgets.for_start(caller.end_user_ip);
        charges.extend(match (test, recognised) {
            (true, _) => Vec::new(),
            (false, true) if channel == Channel::Sms => {
                budgets.for_recognised_send(to.as_str(), &country, caller.key_id.as_deref(), &service.id)
            }
            (false, _) => budgets.for_send_on(channel, to.as_str(), &country, caller.key_id.as_deref(), &service.id),
        });
        // Strangers' resends of a pending code do not use up a recognised device's sends (its own
        // send budget bounds them); a test number's are never sent.
        let limits = match recognised || test {
            true => crate::model::verification::Limits { max_sends: u32::MAX, ..self.limits },
            false => self.limits,
        };
        // The prefix throttle watches numbers (an address has no prefix).
        let throttle = match test || to.phone().is_none() {
            true => None,
            false => self.ctx.budgets.throttle_counters(&self.ctx.budgets.prefix(to.as_str(), &country)),
        };
        (charges, limits, throttle)
    }

    /// Starts a verification, or re-sends the pending one for the same service and number
    /// (same id, same code) within the send limit. The verification (or its new send count) and
    /// its message are written in one transaction; the message is then sent at once.
    pub async fn start(&self, caller: &Caller, req: StartRequest) -> Result<Started, VerifyError> {
        self.start_with(caller, req, None).await
    }

    /// `start`, with `also` written in the same unit of work once the verification and its
    /// message are (a login's flow: if it cannot be written, no code is queued either).
    #[tracing::instrument(name = "verifier.start", level = "debug", skip_all, fields(to = %mask(&req.to), channel = ?req.channel))]
    pub(crate) async fn start_with(&self, caller: &Caller, req: StartRequest, also: Option<AlsoInUnit>) -> Result<Started, VerifyError> {
        let subject: String = req.to.chars().take(32).collect();
        let result = self.start_unaudited(caller, req, also).await;
        self.audit.audited(caller, &subject, result).await
    }

    pub(crate) async fn start_unaudited(
        &self,
        caller: &Caller,
        req: StartRequest,
        also: Option<AlsoInUnit>,
    ) -> Result<Started, VerifyError> {
        let (to, kind) = self.recipient(&req)?;
        let opts = req.options;
        if opts.code_length.is_some_and(|l| !(code::MIN_LENGTH..=code::MAX_LENGTH).contains(&l)) {
            return Err(VerifyError::invalid(Field::CodeLength, "must be between 4 and 10"));
        }
        if opts.ttl_secs.is_some_and(|t| !(service::MIN_TTL_SECS..=service::MAX_TTL_SECS).contains(&t)) {
            return Err(VerifyError::invalid(Field::Ttl, "must be between 60 and 86400 seconds"));
        }
        if opts.max_attempts.is_some_and(|m| m == 0 || m > self.limits.max_attempts) {
            return Err(VerifyError::invalid(Field::MaxAttempts, format!("must be between 1 and {}", self.limits.max_attempts)));
        }
        if opts
            .brand
            .as_deref()
            .is_some_and(|b| b.trim().is_empty() || b.chars().count() > 64 || b.chars().any(service::is_unsafe) || b.contains('\n'))
        {
            return Err(VerifyError::invalid(Field::Brand, "must be 1 to 64 printable characters"));
        }
        if opts.email_from.as_deref().is_some_and(|f| !service::is_mailbox(f)) {
            return Err(VerifyError::invalid(Field::EmailFrom, "must be an address like Shop <codes@example.com>"));
        }
        if opts.send_digits.as_deref().is_some_and(|d| d.is_empty() || d.len() > 32 || !d.chars().all(|c| "0123456789#*wW".contains(c))) {
            return Err(VerifyError::invalid(Field::SendDigits, "must be 1 to 32 of 0-9, #, * and w (a half-second pause)"));
        }
        if let Some(h) = &opts.app_hash
            && (h.len() != 11 || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'))
        {
            return Err(VerifyError::invalid(Field::AppHash, "must be the app's 11-character SMS Retriever hash"));
        }
        let locale = req.locale.as_deref().map(service::normalize_locale).transpose()?;
        let service = self.catalog.service(caller, req.service.as_deref()).await?;
        // A test number's code is its configured one; nothing is sent to it, so it costs no send
        // budget (its start and its checks count like any other).
        let fixed = to.phone().and_then(|p| self.ctx.test_numbers.code_for(&service, p)).and_then(Code::custom);
        let test = fixed.is_some();
        if test && req.channel == Some(Channel::Silent) {
            return Err(VerifyError::invalid(Field::Channel, "a test number is verified by its fixed code: use sms or auto"));
        }
        if let Some(phone) = to.phone().filter(|_| !test)
            && !self.ctx.budgets.destination_allowed(&service.name, phone)
        {
            return Err(crate::model::phone::PhoneError::DestinationNotAllowed.into());
        }
        if opts.psd2.is_some() && !service.psd2 {
            return Err(VerifyError::Psd2NotEnabled);
        }
        let workflow = self.workflow_for(req.channel, opts.workflow.as_ref(), &service, &to, kind)?;
        // A payment code must show its amount and payee: a call or a WhatsApp template does not,
        // so its workflow keeps only its texts and e-mails (Vonage's workflow 1 is its SMS).
        let workflow = match opts.psd2.is_some() {
            true => workflow
                .fitting(|c| matches!(c, Channel::Sms | Channel::Email))
                .ok_or_else(|| VerifyError::invalid(Field::Channel, "payment codes go by sms or email, which show the amount and payee"))?,
            false => workflow,
        };
        let channel = match req.channel {
            Some(Channel::Auto) if to.email().is_some() => Channel::Email,
            // A workflow's first step sends first.
            Some(c) if c.carries_code() && opts.workflow.is_some() => workflow.first().channel,
            Some(c) => c,
            None => workflow.first().channel,
        };
        let send_channel = if channel.carries_code() { channel } else { workflow.first().channel };
        let now = self.ctx.clock.now();
        if opts.psd2.is_some() && !service.psd2 {
            return Err(VerifyError::Psd2NotEnabled);
        }
        let custom = match &opts.custom_code {
            None => None,
            Some(_) if !service.custom_codes => return Err(VerifyError::CustomCodeNotEnabled),
            Some(c) if opts.letters_in_code => Some(
                Code::custom_alphanumeric(c)
                    .ok_or_else(|| VerifyError::invalid(Field::CustomCode, "must be 4 to 10 letters and digits"))?,
            ),
            Some(c) => Some(Code::custom(c).ok_or_else(|| VerifyError::invalid(Field::CustomCode, "must be 4 to 10 digits"))?),
        };
        // A test number's fixed code wins over one the app brings.
        let custom = fixed.or(custom);
        let code_length = custom.as_ref().map_or(opts.code_length.unwrap_or(service.code_length), |c| c.expose().len() as u8);
        let code = custom.clone().unwrap_or_else(|| Code::generate(code_length));
        let id = new_id("VE");
        let fresh = Verification {
            code_digest: self.ctx.keys.digest(&id, code.expose()),
            code_sealed: self.ctx.keys.seal(&id, &code),
            id,
            service_id: service.id.clone(),
            to: to.clone(),
            channel,
            step: 0,
            // A silent check runs first: the steps start when it falls back.
            step_due_at: match channel.carries_code() && !opts.manual_steps {
                true => Verification::due_after(&workflow, 0, now),
                false => None,
            },
            locale: locale.clone().unwrap_or_else(|| crate::model::locales::for_region(to.region().as_deref()).to_string()),
            status: Status::Pending,
            code_length,
            attempts: 0,
            max_attempts: opts.max_attempts.unwrap_or(self.limits.max_attempts),
            brand: opts.brand.clone(),
            app_hash: opts.app_hash.clone(),
            psd2: opts.psd2.clone(),
            email_from: opts.email_from.clone(),
            send_digits: opts.send_digits.clone(),
            sends: 1,
            send_window_started_at: now,
            created_at: now,
            updated_at: now,
            // A verification lives at least until its last step has had its time.
            expires_at: now
                + opts.ttl_secs.map(chrono::Duration::seconds).unwrap_or_else(|| service.code_ttl()).max(chrono::Duration::seconds(
                    workflow.lead_secs() + i64::from(workflow.steps()[workflow.steps().len() - 1].timeout_secs),
                )),
            workflow,
            approved_at: None,
            canceled_at: None,
            expired_at: None,
            max_attempts_reached_at: None,
            failed_at: None,
            failure_reason: None,
            test,
            texts: Some({
                let mut texts = crate::model::verification::StartTexts::of(&service);
                texts.templates.extend(opts.templates.clone().unwrap_or_default());
                texts
            }),
            manual_steps: opts.manual_steps,
            key_id: caller.key_id.clone(),
            version: 0,
        };
        let plan = match channel {
            c if c.carries_code() => None,
            // No silent provider is asked about a test number: an `auto` one goes on by its code
            // at once, as for a device no operator covers.
            _ if test => Some(super::silent::uncovered_plan(&fresh, opts.silent_return.clone(), now)),
            _ => Some(self.plan_silent(caller, &fresh, opts.silent_return.clone(), now).await?),
        };
        let silent_check = plan.as_ref().map(|p| p.check.clone());
        let this = self.clone();
        let (refuse_if_pending, background, rehearse) = (opts.refuse_if_pending, opts.background, opts.rehearse);
        // A rehearsal does everything, then rolls it all back.
        let done_unit = move |d: StartDone| if rehearse { Err(VerifyError::Rehearsed) } else { Ok(d) };
        let service_name = service.shown_name().to_string();
        let (charges, limits, throttle) = self.costs(caller, &service, &to, send_channel, opts.recognised, test);
        let (who, recognised) = (caller.clone(), opts.recognised);
        // (Checked by `workflow_for`: it reaches the recipient.)
        let explicit = req.channel.filter(|c| c.carries_code());
        let (email_from, send_digits) = (opts.email_from.clone(), opts.send_digits.clone());
        let done = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut also = also;
            // Read from a cache, the service may have been deleted since: held until the commit,
            // a delete waits for this unit or this unit sees it.
            if !tx.hold_service(&fresh.service_id)? {
                return Err(VerifyError::ServiceNotFound);
            }
            if let Some(phone) = fresh.to.phone()
                && tx.is_opted_out(phone)?
            {
                return Err(VerifyError::OptedOut);
            }

            let mut expired = None;
            for _ in 0..START_ROUNDS {
                // Most starts are for a number with nothing pending: the insert comes first and
                // the unique index on pending verifications says when there is one.
                if tx.insert_verification(&fresh)? {
                    // Whatever the start turns into, it sends a code: a refusal rolls the
                    // whole unit back.
                    if !rehearse {
                        crate::budget::charge(tx, &charges, now)?;
                    }
                    // Only a `silent` verification never sends a code; an `auto` one may, so
                    // the prefix throttle counts it at its start.
                    if let Some(counters) = throttle.as_ref().filter(|_| channel != Channel::Silent) {
                        this.throttle(tx, counters, now)?;
                    }
                    if let Some(check) = &silent_check {
                        tx.insert_silent_check(check)?;
                        if check.state.is_live() {
                            if let Some(f) = also.take() {
                                f(tx, &fresh)?;
                            }
                            return done_unit(StartDone { verification: fresh, resent: false, sending: None, silent: true, expired });
                        }
                    }
                    let sending = this.delivery.queue(tx, &service, &fresh, &code, (send_channel, false), now)?;
                    if let Some(f) = also.take() {
                        f(tx, &fresh)?;
                    }
                    let silent = silent_check.is_some();
                    return done_unit(StartDone { verification: fresh, resent: false, sending: Some(sending), silent, expired });
                }
                let Some(mut pending) = tx.pending_verification(&fresh.service_id, &fresh.to)? else { continue };
                // A second silent check for a number would race the first on the device.
                // A `silent` one must never get a code by SMS either.
                let silent = channel == Channel::Silent || pending.channel == Channel::Silent;
                if (refuse_if_pending || silent) && pending.status_at(now) == Status::Pending {
                    return Err(VerifyError::AlreadyPending { verification_id: pending.id });
                }
                match pending.register_send(now, &limits) {
                    Ok(()) => {}
                    Err(SendRefusal::TooManySends) => return Err(VerifyError::MaxSendsReached),
                    Err(SendRefusal::NotPending(_)) => {
                        // Its deadline passed unswept: record that, then start afresh.
                        ports::save_verification(tx, &mut pending)?;
                        expired = Some(pending);
                        continue;
                    }
                }
                if let Some(l) = &locale {
                    pending.locale.clone_from(l);
                }
                // This start's sender and digits serve its send and the later ones.
                if email_from.is_some() {
                    pending.email_from.clone_from(&email_from);
                }
                if send_digits.is_some() {
                    pending.send_digits.clone_from(&send_digits);
                }
                ports::save_verification(tx, &mut pending)?;
                // Sent again by the channel asked for (Twilio: another channel adds an attempt to
                // the same verification), else by its running step's.
                let resend_channel = explicit.unwrap_or_else(|| pending.step_channel());
                if !rehearse {
                    let charges = match resend_channel == send_channel {
                        true => charges.clone(),
                        false => this.costs(&who, &service, &pending.to, resend_channel, recognised, test).0,
                    };
                    crate::budget::charge(tx, &charges, now)?;
                }
                let code = this
                    .ctx
                    .keys
                    .open(&pending.id, &pending.code_sealed)
                    .ok_or_else(|| VerifyError::Crypto("sealed code does not open with the server secret".into()))?;
                // Another custom code while one is pending: the app must not believe its
                // new code was sent.
                if custom.as_ref().is_some_and(|c| *c != code) {
                    return Err(VerifyError::AlreadyPending { verification_id: pending.id });
                }
                let sending = this.delivery.queue(tx, &service, &pending, &code, (resend_channel, true), now)?;
                if let Some(f) = also.take() {
                    f(tx, &pending)?;
                }
                return done_unit(StartDone { verification: pending, resent: true, sending: Some(sending), silent: false, expired });
            }
            Err(VerifyError::Busy)
        })
        .await?;
        let mut done = done;
        if let Some(v) = &done.expired {
            self.ctx.observer.verification_entered(&v.service_id, v.channel, v.status);
        }
        let v = &done.verification;
        if !done.resent {
            self.ctx.observer.verification_entered(&v.service_id, v.channel, Status::Pending);
        }
        if v.test {
            // Not a conversion: the pumping signals count only numbers that were sent a code.
            self.ctx.observer.test_number(&v.service_id, if done.resent { "resent" } else { "started" });
            let detail = format!("test number: fixed code, nothing sent ({})", v.id);
            self.audit.record_once(caller, crate::audit::AuditKind::TestNumberUsed, Some(v.to.as_str()), &detail).await;
        } else if !done.resent {
            self.ctx.observer.conversion(&v.to.region().unwrap_or_else(|| "unknown".into()), "started");
        }
        tracing::debug!(request = %caller.request_id, verification = %done.verification.id, resent = done.resent, "verification started");
        let queued_at = done.sending.as_ref().map_or(now, |(m, _)| m.created_at);
        let message_id = done.sending.as_ref().map(|(m, _)| m.id.clone());
        let (mut silent, mut check_url) = (None, None);
        if let Some(plan) = plan.filter(|_| done.silent) {
            let mut check = plan.check;
            if let (Some(provider), Some(to)) = (plan.provider, done.verification.to.phone().cloned()) {
                let brand = done.verification.brand.clone().unwrap_or_else(|| service_name.clone());
                check = self.create_silent(caller, provider, &check, &to, brand).await?;
            }
            if check.state.is_live() {
                check_url = Some(self.check_url(&plan.token));
            } else if !check.fallback {
                // The provider refused: the silent verification has failed.
                done.verification = self.get(caller, &done.verification.id).await?;
            }
            silent = Some(check);
        }
        let started = |verification| Started { verification, resent: done.resent, message_id, queued_at, silent, check_url };
        // A test number's message was recorded, and is never sent.
        let Some((message, Some(lease))) = done.sending else { return Ok(started(done.verification)) };
        let this = self.clone();
        let sending = tokio::spawn(async move { this.delivery.send_claimed(message, &lease.token).await }.in_current_span());
        if background {
            return Ok(started(done.verification));
        }
        // Wait (boundedly) for the first provider answer. A first send that every provider
        // refuses marks the verification failed; a failed resend leaves it pending (the earlier
        // message may still arrive).
        match tokio::time::timeout(self.delivery.times.send_wait, sending).await {
            // A first step that failed hands over to the next one, if any.
            Ok(Ok(Ok(DispatchOutcome::Failed(reason)))) if done.verification.workflow.steps().len() == 1 => {
                Err(VerifyError::DeliveryFailed { verification_id: done.verification.id, reason })
            }
            Ok(Ok(Err(e))) => Err(e),
            // Sent, or still sending in the background.
            _ => Ok(started(done.verification)),
        }
    }
}
