//! The verification state machine. Pure: every rule about statuses, expiry, check attempts and
//! resends lives here; the engine loads a record inside a unit of work (which locks it), applies
//! one of these methods and writes it back in the same transaction, so the rules hold across
//! threads and instances.
use crate::model::recipient::Recipient;
use crate::model::service::Service;
use crate::model::workflow::{Step, Workflow};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Canceled,
    Expired,
    MaxAttemptsReached,
    Failed,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Status::Pending, Status::Approved, Status::Canceled, Status::Expired, Status::MaxAttemptsReached, Status::Failed];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::MaxAttemptsReached => "max_attempts_reached",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

pub use crate::model::workflow::Channel;

/// The rules every verification obeys, whatever API created it.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_attempts: u32,
    pub max_sends: u32,
    pub send_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_attempts: 5, max_sends: 5, send_window: Duration::minutes(10) }
    }
}

/// One counted check of a verification: when, whether the code was right, from where. The code
/// typed is never kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRecord {
    pub at: DateTime<Utc>,
    pub valid: bool,
    pub ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub id: String,
    pub service_id: String,
    /// A phone number, or an e-mail address for the `email` channel.
    pub to: Recipient,
    /// The channel asked for (`auto`, `silent`, or the first step's).
    pub channel: Channel,
    /// The steps its code travels by, in order, with one code for all (kept as it was at the
    /// start: changing the service later does not change a running verification).
    pub workflow: Workflow,
    /// The step now running (0 for the first).
    pub step: u32,
    /// When the next step starts unless the code is checked first; none on the last step.
    pub step_due_at: Option<DateTime<Utc>>,
    /// Later steps start only when asked for (a login flow's: "Call me instead"), never by time.
    pub manual_steps: bool,
    /// The API key that started it: every later step is charged to its budgets too.
    pub key_id: Option<String>,
    pub locale: String,
    pub status: Status,
    pub code_length: u8,
    pub code_digest: Vec<u8>,
    pub code_sealed: Vec<u8>,
    pub attempts: u32,
    /// Check attempts allowed for this verification (at most `Limits::max_attempts`).
    pub max_attempts: u32,
    /// Name shown in the message instead of the service's (Twilio `CustomFriendlyName`,
    /// Vonage `brand`).
    pub brand: Option<String>,
    /// The Android app's SMS Retriever hash (Twilio `AppHash`), put on the message's last line so
    /// the app reads the code without a permission.
    pub app_hash: Option<String>,
    /// A payment code's amount and payee (PSD2), shown in its message and bound to its check.
    pub psd2: Option<crate::model::psd2::Psd2>,
    /// The `From` of its e-mails (`Name <address>`), instead of its service's (Twilio
    /// `ChannelConfiguration` `from` and `from_name`).
    pub email_from: Option<String>,
    /// Keys its calls dial once answered, before they speak (an extension; Twilio `SendDigits`).
    pub send_digits: Option<String>,
    pub sends: u32,
    pub send_window_started_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub approved_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub expired_at: Option<DateTime<Utc>>,
    pub max_attempts_reached_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
    /// Made for a test number (`model::test_numbers`): its code is the configured one, and its
    /// messages were recorded, never sent.
    pub test: bool,
    /// Its service's texts as they were when it started, which every message of it is written
    /// from (a resend, an `auto` check's fallback): a later change of the service does not change
    /// it. `None` for verifications stored before they were kept (their service's current texts).
    pub texts: Option<StartTexts>,
    /// Optimistic-concurrency token: bumped by every write.
    pub version: i64,
}

/// What a verification's messages are written from, as its service had it at the start: the name
/// `{service}` renders to, the service's own templates and the name its calls say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StartTexts {
    pub name: String,
    pub templates: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_name: Option<String>,
}

impl StartTexts {
    pub fn of(service: &Service) -> Self {
        Self {
            name: service.shown_name().to_string(),
            templates: service.templates.clone(),
            voice_name: service.channels.voice_name.clone(),
        }
    }
}

/// What a check did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    Approved,
    /// Wrong code; the verification stays pending.
    Rejected {
        attempts_left: u32,
    },
    /// Wrong code, and it was the last allowed attempt.
    LockedOut,
    /// The verification was not pending (or expired just now); nothing was consumed.
    NotPending(Status),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelRefusal {
    NotPending(Status),
    TooEarly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextRefusal {
    NotPending(Status),
    /// The verification is on its last step.
    NoStepLeft,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendRefusal {
    NotPending(Status),
    TooManySends,
}

impl Verification {
    pub fn status_at(&self, now: DateTime<Utc>) -> Status {
        if self.status == Status::Pending && now >= self.expires_at { Status::Expired } else { self.status }
    }

    /// Marks a pending verification whose deadline has passed as expired, stamped with the
    /// deadline itself. Returns whether anything changed.
    pub fn expire_if_due(&mut self, now: DateTime<Utc>) -> bool {
        if self.status_at(now) == Status::Expired && self.status == Status::Pending {
            self.status = Status::Expired;
            self.expired_at = Some(self.expires_at);
            self.updated_at = now;
            true
        } else {
            false
        }
    }

    /// Consumes one attempt. A matching code approves only while pending, unexpired and within
    /// the attempt limit; the attempt that reaches the limit with a wrong code locks it.
    pub fn check(&mut self, code_matches: bool, now: DateTime<Utc>) -> CheckOutcome {
        self.expire_if_due(now);
        if self.status != Status::Pending {
            return CheckOutcome::NotPending(self.status);
        }
        if self.attempts >= self.max_attempts {
            // Only reachable if limits were lowered after the record was written.
            self.lock(now);
            return CheckOutcome::LockedOut;
        }
        self.attempts += 1;
        self.updated_at = now;
        if code_matches {
            self.status = Status::Approved;
            self.approved_at = Some(now);
            CheckOutcome::Approved
        } else if self.attempts >= self.max_attempts {
            self.lock(now);
            CheckOutcome::LockedOut
        } else {
            CheckOutcome::Rejected { attempts_left: self.max_attempts - self.attempts }
        }
    }

    /// The channel of the step now running.
    pub fn step_channel(&self) -> Channel {
        self.workflow.step(self.step).map_or(self.workflow.first().channel, |s| s.channel)
    }

    /// When the step `step` of a verification started at `now` hands over to the next one.
    pub fn due_after(workflow: &Workflow, step: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let current = workflow.step(step)?;
        workflow.step(step + 1).map(|_| now + Duration::seconds(i64::from(current.timeout_secs)))
    }

    /// Starts the next step of the workflow (the same code, by its channel), or refuses when the
    /// verification ended or is on its last step.
    pub fn next_step(&mut self, now: DateTime<Utc>) -> Result<Step, NextRefusal> {
        if self.expire_if_due(now) || self.status != Status::Pending {
            return Err(NextRefusal::NotPending(self.status));
        }
        let next = *self.workflow.step(self.step + 1).ok_or(NextRefusal::NoStepLeft)?;
        self.step += 1;
        self.step_due_at = Self::due_after(&self.workflow, self.step, now);
        self.updated_at = now;
        Ok(next)
    }

    /// Cancels, but only a verification at least `min_age` old (Vonage refuses earlier cancels).
    pub fn cancel_once_older_than(&mut self, now: DateTime<Utc>, min_age: Duration) -> Result<(), CancelRefusal> {
        if self.status_at(now) == Status::Pending && now - self.created_at < min_age {
            return Err(CancelRefusal::TooEarly);
        }
        self.cancel(now).map_err(CancelRefusal::NotPending)
    }

    /// Approves without a code, as an administrator confirming the number some other way
    /// (Twilio's `Status=approved`). Only a pending verification can be approved.
    pub fn approve_out_of_band(&mut self, now: DateTime<Utc>) -> Result<(), Status> {
        self.expire_if_due(now);
        if self.status != Status::Pending {
            return Err(self.status);
        }
        self.status = Status::Approved;
        self.approved_at = Some(now);
        self.updated_at = now;
        Ok(())
    }

    fn lock(&mut self, now: DateTime<Utc>) {
        self.status = Status::MaxAttemptsReached;
        self.max_attempts_reached_at = Some(now);
        self.updated_at = now;
    }

    /// Counts one more send of the same code, at most `max_sends` per `send_window`.
    pub fn register_send(&mut self, now: DateTime<Utc>, limits: &Limits) -> Result<(), SendRefusal> {
        if self.expire_if_due(now) || self.status != Status::Pending {
            return Err(SendRefusal::NotPending(self.status));
        }
        if now - self.send_window_started_at >= limits.send_window {
            self.send_window_started_at = now;
            self.sends = 0;
        }
        if self.sends >= limits.max_sends {
            return Err(SendRefusal::TooManySends);
        }
        self.sends += 1;
        self.updated_at = now;
        Ok(())
    }

    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<(), Status> {
        self.expire_if_due(now);
        if self.status != Status::Pending {
            return Err(self.status);
        }
        self.status = Status::Canceled;
        self.canceled_at = Some(now);
        self.updated_at = now;
        Ok(())
    }

    /// Every provider refused the message.
    pub fn fail(&mut self, now: DateTime<Utc>, reason: String) {
        self.expire_if_due(now);
        if self.status == Status::Pending {
            self.status = Status::Failed;
            self.failed_at = Some(now);
            self.failure_reason = Some(reason);
            self.updated_at = now;
        }
    }

    /// `service` as this verification started with it: its texts then (see `texts`), the rest as
    /// it is now.
    pub fn service_as_started<'s>(&self, service: &'s Service) -> std::borrow::Cow<'s, Service> {
        match &self.texts {
            Some(t) => std::borrow::Cow::Owned(Service {
                name: t.name.clone(),
                friendly_name: None,
                templates: t.templates.clone(),
                channels: crate::model::service::ChannelSettings { voice_name: t.voice_name.clone(), ..service.channels.clone() },
                ..service.clone()
            }),
            None => std::borrow::Cow::Borrowed(service),
        }
    }

    /// When the current status was entered.
    pub fn status_changed_at(&self) -> DateTime<Utc> {
        match self.status {
            Status::Pending => Some(self.created_at),
            Status::Approved => self.approved_at,
            Status::Canceled => self.canceled_at,
            Status::Expired => self.expired_at,
            Status::MaxAttemptsReached => self.max_attempts_reached_at,
            Status::Failed => self.failed_at,
        }
        .unwrap_or(self.updated_at)
    }
}

#[cfg(test)]
mod tests;
