//! The verification engine: starts, resends, checks, cancels and expires verifications. Each use
//! case is one unit of work: it loads the record (locked until commit), applies the state machine
//! and writes the record and its message in the same transaction.
use crate::audit::Audit;
use crate::budget::Charge;
use crate::caller::Caller;
use crate::catalog::Catalog;
use crate::context::Context;
use crate::delivery::Delivery;
use crate::error::VerifyError;
use crate::model::message::Message;
use crate::model::verification::{CancelRefusal, Channel, Status, Verification};
use crate::ports::{self, Tx};
use chrono::{DateTime, Utc};
use std::sync::Arc;

mod check;
pub(crate) use check::Guess;
pub(crate) use start::AlsoInUnit;
mod channels;
mod silent;
mod start;
mod steps;

pub use silent::{CoverageAnswer, SilentOutcome};

pub use crate::model::verification::Limits;

/// The verifications: start, resend, check, cancel, expire, silent checks. Cheap to clone: every
/// part is shared, so a send can continue in the background.
#[derive(Clone)]
pub struct Verifier {
    pub(crate) ctx: Context,
    pub(crate) audit: Audit,
    pub(crate) catalog: Catalog,
    pub(crate) delivery: Delivery,
    limits: Limits,
    /// Silent providers and their routing (none: `silent` is refused, `auto` is SMS).
    pub(crate) silent: Arc<crate::silent::SilentRoutes>,
    /// The service whose budgets a decoy's silent check charges (see `CoreParts`).
    decoy_service: Arc<str>,
}

#[derive(Debug, Clone)]
pub struct StartRequest {
    /// Service id or name; the default service when absent.
    pub service: Option<String>,
    /// A phone number, or an e-mail address for the `email` channel.
    pub to: String,
    /// The channel asked for; `None`: the service's workflow (`auto` keeps its steps that fit
    /// the number, after a silent check where one is covered).
    pub channel: Option<Channel>,
    pub locale: Option<String>,
    /// Options for a new verification (ignored when a pending one is re-sent); each is
    /// validated against the same bounds as service settings.
    pub options: StartOptions,
}

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The steps the code takes, overriding the channel's single step or the service's
    /// workflow; the steps that do not fit the number are left out (a landline keeps its calls).
    pub workflow: Option<crate::model::workflow::Workflow>,
    /// Digits in the code, 4 to 10 (default: the service's).
    pub code_length: Option<u8>,
    /// Code lifetime in seconds, 60 to 86400 (default: the service's).
    pub ttl_secs: Option<i64>,
    /// Check attempts, 1 to the server's limit (default: that limit).
    pub max_attempts: Option<u32>,
    /// Name shown in the message instead of the service's name.
    pub brand: Option<String>,
    /// Android SMS Retriever app hash: 11 characters of base64 (`A-Z a-z 0-9 + /`).
    pub app_hash: Option<String>,
    /// The code itself, 4 to 10 digits, where the service allows custom codes.
    pub custom_code: Option<String>,
    /// A payment code's amount and payee, where the service sends PSD2 codes.
    pub psd2: Option<crate::model::psd2::Psd2>,
    /// The `From` of its e-mails (`Name <address>` or an address), instead of the service's.
    /// A later start for the pending verification that names one replaces it.
    pub email_from: Option<String>,
    /// Keys its calls dial once answered (`0`-`9`, `#`, `*`, `w` for a half-second pause; up to
    /// 32). A later start for the pending verification that names some replaces them.
    pub send_digits: Option<String>,
    /// ISO 3166 region for a number written in national format.
    pub region: Option<String>,
    /// When a verification is already pending for the number: report it as
    /// `VerifyError::AlreadyPending` instead of re-sending its code (Vonage's behaviour).
    pub refuse_if_pending: bool,
    /// phonegate's own page a silent check's device returns to (a login flow's page).
    pub silent_return: Option<String>,
    /// Answer as soon as the message is queued, without waiting for the provider (the send
    /// goes on in the background).
    pub background: bool,
    /// Runs the start's unit of work and rolls it back: nothing is stored or sent. What a decoy
    /// does, so that it costs the same work and time as a real start (the answer is
    /// `VerifyError::Rehearsed`). The budgets are left out: the decoy takes them in its own unit,
    /// as a real flow's start does in this one.
    pub rehearse: bool,
    /// The workflow's later steps start only when asked for (`next`, or a resend by another
    /// channel), never by time: a login flow's, so that an account's existence never shows in
    /// its number's budgets (a decoy has no steps to run).
    pub manual_steps: bool,
    /// Asked by a recognised device of the number's holder (`accounts::device`): the number's
    /// send budget is its own (`budget::Guesser`), and strangers' resends of the pending code do
    /// not use up its sends.
    pub recognised: bool,
    /// SMS texts by locale that take the place of the service's own templates for this
    /// verification (a Vonage template named by the start).
    pub templates: Option<std::collections::BTreeMap<String, String>>,
    /// `custom_code` may have letters too (Vonage Verify v2's `code`); it is checked as typed.
    pub letters_in_code: bool,
}

#[derive(Debug, Clone)]
pub struct Started {
    pub verification: Verification,
    /// True when an already pending verification was sent again instead of a new one.
    pub resent: bool,
    /// The message this start queued (`SM…`; none while a silent check waits for the device)
    /// and when.
    pub message_id: Option<String>,
    pub queued_at: DateTime<Utc>,
    /// The silent check of a `silent` or `auto` verification, and the path of the device's
    /// `check_url` (given out only here, and only while the check waits for the device).
    pub silent: Option<crate::silent::SilentCheck>,
    pub check_url: Option<String>,
}

/// A verification the caller may see; another tenant's does not exist for it.
pub(crate) fn visible(caller: &Caller, v: Option<Verification>) -> Result<Verification, VerifyError> {
    v.filter(|v| caller.may_see(&v.service_id)).ok_or(VerifyError::VerificationNotFound)
}

impl Verifier {
    /// The automatic prefix throttle, for a code to a new number: refused while the current or
    /// the previous window sent many codes into the prefix and few were used; else counted.
    fn throttle(&self, tx: &mut dyn Tx, (new, approved): &(Charge, Charge), now: DateTime<Utc>) -> Result<(), VerifyError> {
        let (start, end) = new.rate.window(now);
        let windows = [start, start - new.rate.secs];
        let [sent, used] = tx.budgets_used(new, approved, windows)?;
        for (i, window) in windows.into_iter().enumerate() {
            if self.ctx.budgets.trips_throttle(sent[i], used[i]) {
                let until = if window == start { end + chrono::Duration::seconds(new.rate.secs) } else { end };
                tracing::warn!(prefix = %new.subject, sent = sent[i], "prefix throttled: many codes, few used");
                return Err(VerifyError::OverBudget {
                    budget: crate::budget::Budget::PrefixThrottled,
                    retry_after_secs: (until - now).num_seconds().max(1),
                });
            }
        }
        count(tx, new, now)
    }
}

/// Adds one to a limitless counter the throttle reads, kept for two windows (it looks back one).
fn count(tx: &mut dyn Tx, c: &Charge, now: DateTime<Utc>) -> Result<(), VerifyError> {
    let (start, end) = c.rate.window(now);
    tx.take_budget(c, start, rand::random::<u32>() % crate::budget::SHARDS, end + chrono::Duration::seconds(c.rate.secs))?;
    Ok(())
}

impl Verifier {
    pub fn new(
        ctx: Context,
        audit: Audit,
        catalog: Catalog,
        delivery: Delivery,
        limits: Limits,
        silent: crate::silent::SilentRoutes,
        decoy_service: &str,
    ) -> Self {
        Self { ctx, audit, catalog, delivery, limits, silent: Arc::new(silent), decoy_service: decoy_service.into() }
    }

    /// The pending verification for a number (or an e-mail address) in a service.
    #[tracing::instrument(name = "verifier.pending", level = "debug", skip_all, fields(to = %crate::model::phone::mask(to)))]
    pub async fn pending(&self, caller: &Caller, service: Option<&str>, to: &str) -> Result<Verification, VerifyError> {
        let to = self.ctx.parse_recipient(to)?;
        let service = self.catalog.service(caller, service).await?;
        let now = self.ctx.clock.now();
        ports::read(self.ctx.store.as_ref(), move |tx| {
            let v = tx.pending_verification(&service.id, &to)?;
            v.filter(|v| v.status_at(now) == Status::Pending).ok_or(VerifyError::NoPendingVerification)
        })
        .await
    }

    /// The newest `silent` verification of a number in a service, whatever its status.
    pub async fn latest_silent(&self, caller: &Caller, service: Option<&str>, to: &str) -> Result<Verification, VerifyError> {
        let to = self.ctx.parse_phone(to)?;
        let service = self.catalog.service(caller, service).await?;
        let now = self.ctx.clock.now();
        let mut v = ports::read(self.ctx.store.as_ref(), move |tx| {
            tx.latest_silent_verification(&service.id, &to)?.ok_or(VerifyError::NoPendingVerification)
        })
        .await?;
        v.expire_if_due(now);
        Ok(v)
    }

    /// Reads a verification. One whose deadline has passed is reported expired (the sweep
    /// records it); reading never writes.
    #[tracing::instrument(name = "verifier.get", level = "debug", skip_all, fields(verification = %id))]
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Verification, VerifyError> {
        let (id, caller) = (id.to_string(), caller.clone());
        let mut v = ports::read(self.ctx.store.as_ref(), move |tx| visible(&caller, tx.verification(&id)?)).await?;
        v.expire_if_due(self.ctx.clock.now());
        Ok(v)
    }

    #[tracing::instrument(name = "verifier.cancel", level = "debug", skip_all, fields(verification = %id))]
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<Verification, VerifyError> {
        self.transition(caller, id, |v, now| v.cancel(now).map_err(VerifyError::NotPending)).await
    }

    /// Cancels a verification only once it is at least `min_age` old (Vonage's rule).
    #[tracing::instrument(name = "verifier.cancel", level = "debug", skip_all, fields(verification = %id))]
    pub async fn cancel_once_older_than(&self, caller: &Caller, id: &str, min_age: chrono::Duration) -> Result<Verification, VerifyError> {
        self.transition(caller, id, move |v, now| {
            v.cancel_once_older_than(now, min_age).map_err(|refusal| match refusal {
                CancelRefusal::NotPending(status) => VerifyError::NotPending(status),
                CancelRefusal::TooEarly => VerifyError::TooEarlyToCancel { min_age_secs: min_age.num_seconds() },
            })
        })
        .await
    }

    /// Approves a pending verification without a code (an administrator's decision).
    #[tracing::instrument(name = "verifier.approve", level = "debug", skip_all, fields(verification = %id))]
    pub async fn approve(&self, caller: &Caller, id: &str) -> Result<Verification, VerifyError> {
        self.transition(caller, id, |v, now| v.approve_out_of_band(now).map_err(VerifyError::NotPending)).await
    }

    /// Loads, applies `apply` and writes back, in one unit of work. A refusal writes nothing.
    async fn transition(
        &self,
        caller: &Caller,
        id: &str,
        apply: impl FnOnce(&mut Verification, DateTime<Utc>) -> Result<(), VerifyError> + Send + 'static,
    ) -> Result<Verification, VerifyError> {
        let (id, now, caller) = (id.to_string(), self.ctx.clock.now(), caller.clone());
        let v = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut v = visible(&caller, tx.verification(&id)?)?;
            apply(&mut v, now)?;
            ports::save_verification(tx, &mut v)?;
            Ok::<_, VerifyError>(v)
        })
        .await?;
        self.ctx.observer.verification_entered(&v.service_id, v.channel, v.status);
        Ok(v)
    }

    /// Deletes ended verifications (and their messages) last changed more than `retention` ago.
    pub async fn purge_old(&self, retention: chrono::Duration, batch: u32) -> Result<u64, VerifyError> {
        let cutoff = self.ctx.clock.now() - retention;
        ports::write(self.ctx.store.as_ref(), move |tx| Ok(tx.purge_before(cutoff, batch)?)).await
    }

    /// Expires every overdue pending verification (the background sweep).
    pub async fn expire_due(&self, batch: u32) -> Result<usize, VerifyError> {
        let now = self.ctx.clock.now();
        let expired: Vec<(String, Channel)> =
            ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.expire_due_verifications(now, batch)?)).await?;
        for (service_id, channel) in &expired {
            self.ctx.observer.verification_entered(service_id, *channel, Status::Expired);
        }
        Ok(expired.len())
    }

    /// A verification (reported expired once its deadline passed, as `get` does) with what
    /// belongs to it, in one read: its messages, its counted checks (when it has any) and its
    /// silent check (when it is `silent` or `auto`).
    #[tracing::instrument(name = "verifier.detail", level = "debug", skip_all, fields(verification = %id))]
    pub async fn detail(&self, caller: &Caller, id: &str) -> Result<Detail, VerifyError> {
        let (id, caller) = (id.to_string(), caller.clone());
        let mut d = ports::read(self.ctx.store.as_ref(), move |tx| {
            let verification = crate::engine::visible(&caller, tx.verification(&id)?)?;
            let messages = tx.messages_for_verification(&id)?;
            let checks = if verification.attempts > 0 { tx.checks(&id)? } else { Vec::new() };
            let silent = match verification.channel {
                Channel::Silent | Channel::Auto => tx.silent_check_of(&id)?,
                _ => None,
            };
            Ok::<_, VerifyError>(Detail { verification, messages, checks, silent })
        })
        .await?;
        d.verification.expire_if_due(self.ctx.clock.now());
        Ok(d)
    }

    /// The messages sent for a verification, oldest first.
    pub async fn messages_for(&self, caller: &Caller, verification_id: &str) -> Result<Vec<Message>, VerifyError> {
        Ok(self.detail(caller, verification_id).await?.messages)
    }
}

/// A verification with what belongs to it (`Verifier::detail`).
#[derive(Clone, Debug)]
pub struct Detail {
    pub verification: Verification,
    /// Its messages, oldest first.
    pub messages: Vec<Message>,
    /// Its counted checks, oldest first.
    pub checks: Vec<crate::model::verification::CheckRecord>,
    pub silent: Option<crate::silent::SilentCheck>,
}

/// One step of a verification's workflow as it stands (`Detail::steps`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepState {
    pub channel: Channel,
    pub timeout_secs: u32,
    /// Its latest message's delivery status; none while the step has not started.
    pub status: Option<crate::model::message::DeliveryStatus>,
    /// When its first message was queued.
    pub started_at: Option<DateTime<Utc>>,
    pub message_id: Option<String>,
}

impl Detail {
    /// The workflow's steps: the started ones with their message's delivery, the rest waiting.
    pub fn steps(&self) -> Vec<StepState> {
        let v = &self.verification;
        (0u32..)
            .zip(v.workflow.steps())
            .map(|(i, step)| {
                let sent = || self.messages.iter().filter(move |m| m.step == Some(i) && m.channel == step.channel);
                StepState {
                    channel: step.channel,
                    timeout_secs: step.timeout_secs,
                    status: sent().next_back().map(|m| m.status),
                    started_at: sent().next().map(|m| m.created_at),
                    message_id: sent().next_back().map(|m| m.id.clone()),
                }
            })
            .collect()
    }

    /// Which channel approved it, once approved: `Silent` when the operator confirmed the
    /// number, else the channel of the latest message that carried the code.
    pub fn approved_channel(&self) -> Option<Channel> {
        let by_operator = self.silent.as_ref().is_some_and(|c| c.state == crate::silent::CheckState::Matched);
        let by_code = self.messages.last().map_or(self.verification.step_channel(), |m| m.channel);
        (self.verification.status == Status::Approved).then_some(if by_operator { Channel::Silent } else { by_code })
    }
}
