//! The silent use cases: coverage, the silent part of a start, the device opening its
//! `check_url`, the provider's callback, falling back to SMS, and the sweep of overdue checks.
//! A check ends once (`SilentCheck::finish`); ending it applies to its verification in the same
//! unit: a match approves it, a failure fails a `silent` one and sends the code of an `auto` one.
use super::Verifier;
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::delivery::Queued;
use crate::error::{Field, VerifyError};
use crate::model::ids::new_id;
use crate::model::phone::PhoneNumber;
use crate::model::verification::{Channel, Status, Verification};
use crate::ports::{self, Tx};
use crate::silent::{
    CallbackQuery, CheckState, Coverage, Reason, SIMULATOR, SilentCheck, SilentProvider, SilentResult, SilentSession, SilentStart,
    SimOutcome, token_digest,
};
use chrono::{DateTime, Utc};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How long a coverage lookup may take before it counts as `unknown`.
const COVERAGE_WAIT: Duration = Duration::from_secs(3);

/// What `GET /api/coverage` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoverageAnswer {
    pub available: bool,
    pub reason: Option<Reason>,
    /// The provider that would check the device.
    pub provider: Option<String>,
    pub operator: Option<String>,
}

/// The silent check a start makes, with its `check_url` token (given out once, kept as a digest).
pub(crate) struct SilentPlan {
    pub check: SilentCheck,
    pub token: String,
    pub provider: Option<Arc<dyn SilentProvider>>,
}

/// What a finished device step did.
#[derive(Clone, Debug)]
pub struct SilentOutcome {
    /// The check as it ended (its verification, state, reason and the page to go back to).
    pub check: SilentCheck,
    /// An `auto` verification continued by SMS.
    pub code_sent: bool,
    /// After a match: what the device brings back to prove it was the one checked (a login flow
    /// completes only with it).
    pub proof: Option<String>,
}

fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Verifier {
    /// The proof a device gets for a matched check: an HMAC of the check's id with the server
    /// secret, so only the device that came back from the operator holds it.
    pub fn silent_proof(&self, check_id: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.ctx.keys.digest(check_id, "silent-proof"))
    }

    fn outcome(&self, check: SilentCheck, code_sent: bool) -> SilentOutcome {
        let proof = (check.state == CheckState::Matched).then(|| self.silent_proof(&check.id));
        SilentOutcome { check, code_sent, proof }
    }

    /// Whether any silent provider (or the simulator) is configured.
    pub fn silent_enabled(&self) -> bool {
        self.silent.enabled()
    }

    /// The path of a token's `check_url` (the HTTP adapter puts the server's base URL before it).
    pub(crate) fn check_url(&self, token: &str) -> String {
        format!("/silent/{token}")
    }

    /// Whether a device at `ip` (for the number `to`, when given) can be verified silently.
    /// Only a caller with an API key may ask about another address than its own (an end user's
    /// question costs its address a check); `sim` is the simulator's answer, for tests.
    #[tracing::instrument(name = "verifier.silent_coverage", level = "debug", skip_all)]
    pub async fn coverage(
        &self,
        caller: &Caller,
        ip: Option<IpAddr>,
        to: Option<&str>,
        sim: Option<SimOutcome>,
    ) -> Result<CoverageAnswer, VerifyError> {
        if ip.is_some() && caller.key_id.is_none() {
            return Err(VerifyError::invalid(Field::Ip, "only a backend with an API key may ask about another address"));
        }
        let to = to.map(|t| self.ctx.parse_phone(t)).transpose()?;
        if let Some(sim) = sim {
            if self.silent.provider(SIMULATOR).is_none() {
                return Err(VerifyError::invalid(Field::Sim, "only the silent simulator ([silent] simulator = true) takes sim"));
            }
            return Ok(answer(SIMULATOR, sim.coverage()));
        }
        let ip = ip.or(caller.end_user_ip).or(caller.ip);
        // A page's own question asks the provider on the public's behalf: it costs the address a
        // check, so nobody can spend the provider's quota from one place.
        if caller.key_id.is_none() {
            let charges = self.ctx.budgets.for_check(ip);
            let now = self.ctx.clock.now();
            ports::write(self.ctx.store.as_ref(), move |tx| crate::budget::charge(tx, &charges, now)).await?;
        }
        Ok(self
            .covering(ip, to.as_ref())
            .await
            .map_or_else(|reason| answer("", Coverage::Unavailable(reason)), |(p, c)| answer(p.name(), c)))
    }

    /// The first routed provider that covers the device at `ip` (any, when the address is
    /// unknown), or why none does.
    async fn covering(&self, ip: Option<IpAddr>, to: Option<&PhoneNumber>) -> Result<(Arc<dyn SilentProvider>, Coverage), Reason> {
        let plan = self.silent.plan(to);
        let mut why = Reason::OperatorNotCovered;
        for p in plan {
            let Some(ip) = ip else { return Ok((p.clone(), Coverage::Available { operator: None })) };
            let asked = p.coverage(ip, to).instrument(provider_span(p.name(), "coverage"));
            match tokio::time::timeout(COVERAGE_WAIT, asked).await.unwrap_or(Coverage::Unavailable(Reason::Unknown)) {
                c @ Coverage::Available { .. } => return Ok((p.clone(), c)),
                // WiFi is the device's state, whoever is asked: the most useful answer.
                Coverage::Unavailable(Reason::Wifi) => why = Reason::Wifi,
                Coverage::Unavailable(Reason::Unknown) if why != Reason::Wifi => why = Reason::Unknown,
                Coverage::Unavailable(_) => {}
            }
        }
        Err(why)
    }

    /// The silent check of a new `silent` or `auto` verification: a `silent` one goes to the
    /// first routed provider covering the device (or the first routed at all: the user may turn
    /// WiFi off); an `auto` one without coverage is a check already failed, and its code goes by
    /// SMS at once.
    pub(crate) async fn plan_silent(
        &self,
        caller: &Caller,
        v: &Verification,
        return_path: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<SilentPlan, VerifyError> {
        let fallback = v.channel == Channel::Auto;
        if !self.silent.enabled() && !fallback {
            return Err(VerifyError::SilentUnavailable);
        }
        let provider = match self.covering(caller.end_user_ip, v.to.phone()).await {
            Ok((p, _)) => p,
            Err(reason) if fallback => return Ok(failed_plan(v, reason, return_path, now)),
            Err(_) => self.silent.plan(v.to.phone()).first().map(|p| (*p).clone()).ok_or(VerifyError::SilentUnavailable)?,
        };
        let (mut check, token) = new_check(&v.id, provider.name(), fallback, return_path, now);
        check.expires_at = (now + self.silent.timeout).min(v.expires_at);
        Ok(SilentPlan { check, token, provider: Some(provider) })
    }

    /// After the start's commit: asks the provider for the check, and stores its device URL, or
    /// ends the check as failed (an `auto` verification then continues by SMS).
    pub(crate) async fn create_silent(
        &self,
        caller: &Caller,
        provider: Arc<dyn SilentProvider>,
        check: &SilentCheck,
        to: &PhoneNumber,
        brand: String,
    ) -> Result<SilentCheck, VerifyError> {
        let start = SilentStart {
            check_id: check.id.clone(),
            to: to.clone(),
            callback_url: format!("{}/silent/callback/{}", self.silent.public_url, provider.name()),
            brand,
        };
        let created = provider.create(&start).instrument(provider_span(provider.name(), "create")).await;
        let now = self.ctx.clock.now();
        let (id, keys) = (check.verification_id.clone(), self.ctx.keys.clone());
        let this = self.clone();
        let (check, sending) = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut c = tx.silent_check_of(&id)?.ok_or(VerifyError::NoSilentCheck)?;
            match created {
                Ok(session) => {
                    c.device_url_sealed = Some(keys.seal_text(&c.id, &session.device_url));
                    c.provider_ref = Some(session.provider_ref);
                    tx.update_silent_check(&c)?;
                    Ok((c, None))
                }
                Err(e) => {
                    tracing::warn!(provider = %c.provider, error = %e, "silent check not created");
                    let reason = match e {
                        crate::silent::SilentError::NotCovered(_) => Reason::OperatorNotCovered,
                        crate::silent::SilentError::Unavailable(_) => Reason::ProviderError,
                    };
                    let sending = this.conclude(tx, &mut c, SilentResult::Failed(reason), now)?;
                    Ok::<_, VerifyError>((c, sending))
                }
            }
        })
        .await?;
        if !check.state.is_live() {
            self.after_conclusion(caller, &check, sending).await;
        }
        Ok(check)
    }

    /// A silent check for a decoy login flow (no account, no invite): made as a real flow's
    /// (coverage, then the provider) so its link leads where a real one would, but for a
    /// verification that does not exist, so whatever the operator says ends nothing. Returns the
    /// path of its `check_url` where a real flow would get one.
    pub async fn decoy_silent_check(&self, caller: &Caller, to: &PhoneNumber, return_path: String, brand: String) -> Option<String> {
        let now = self.ctx.clock.now();
        let (provider, _) = self.covering(caller.end_user_ip, Some(to)).await.ok()?;
        let (mut check, token) = new_check(&new_id("VE"), provider.name(), true, Some(return_path), now);
        check.expires_at = now + self.silent.timeout;
        let c = check.clone();
        let stored = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.insert_silent_check(&c)?)).await;
        if let Err(e) = stored {
            tracing::warn!(error = %e, "decoy silent check not stored");
            return None;
        }
        let check = self.create_silent(caller, provider, &check, to, brand).await.ok()?;
        check.state.is_live().then(|| self.check_url(&token))
    }

    /// The device opened its `check_url`: the link is spent, and the device goes on to the
    /// provider's URL (the simulator's page takes `sim` along). An expired link ends its check.
    #[tracing::instrument(name = "verifier.open_check_url", level = "debug", skip_all)]
    pub async fn open_check_url(&self, caller: &Caller, token: &str, sim: Option<SimOutcome>) -> Result<String, VerifyError> {
        let digest = token_digest(token);
        let now = self.ctx.clock.now();
        let (this, keys) = (self.clone(), self.ctx.keys.clone());
        let (opened, check, sending) = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut c = tx.silent_check_by_token(&digest)?.ok_or(VerifyError::CheckLinkNotFound)?;
            if c.state != CheckState::Created {
                return Err(VerifyError::CheckLinkUsed);
            }
            if now >= c.expires_at || c.device_url_sealed.is_none() {
                let sending = this.conclude(tx, &mut c, SilentResult::Failed(Reason::Timeout), now)?;
                return Ok((None, c, sending));
            }
            // A decoy's check has no verification: its link works like any other.
            let v = tx.verification(&c.verification_id)?;
            if v.is_some_and(|v| v.status_at(now) != Status::Pending) {
                return Err(VerifyError::CheckLinkUsed);
            }
            c.state = CheckState::Opened;
            c.opened_at = Some(now);
            tx.update_silent_check(&c)?;
            let url = c.device_url_sealed.as_deref().and_then(|s| keys.open_text(&c.id, s));
            Ok::<_, VerifyError>((url, c, None))
        })
        .await?;
        let Some(url) = opened else {
            self.after_conclusion(caller, &check, sending).await;
            return Err(VerifyError::CheckLinkExpired);
        };
        Ok(match sim {
            Some(sim) if check.provider == SIMULATOR => format!("{url}?sim={}", sim.as_str()),
            _ => url,
        })
    }

    /// The device came back from the provider to `/silent/callback/{provider}`: the provider
    /// decides the check from the callback's query, once; a second callback (a replay) or one
    /// naming no open check is refused. Each callback costs the device's IP a check.
    #[tracing::instrument(name = "verifier.silent_callback", level = "debug", skip_all, fields(provider = %provider))]
    pub async fn silent_callback(&self, caller: &Caller, provider: &str, query: &CallbackQuery) -> Result<SilentOutcome, VerifyError> {
        let p = self.silent.provider(provider).ok_or(VerifyError::SilentCallbackInvalid)?.clone();
        let provider_ref = p.callback_ref(query).ok_or(VerifyError::SilentCallbackInvalid)?;
        let (name, r) = (provider.to_string(), provider_ref.clone());
        let (check, v) = ports::read(self.ctx.store.as_ref(), move |tx| {
            let c = tx.silent_check_by_ref(&name, &r)?.ok_or(VerifyError::SilentCallbackInvalid)?;
            // A decoy's check has no verification.
            let v = tx.verification(&c.verification_id)?;
            Ok::<_, VerifyError>((c, v))
        })
        .await?;
        if check.state != CheckState::Opened {
            self.audit
                .record_once(
                    caller,
                    AuditKind::SilentCallbackRefused,
                    Some(&check.verification_id),
                    "callback for a check not open (replay)",
                )
                .await;
            return Err(VerifyError::CheckLinkUsed);
        }
        let device_url = check.device_url_sealed.as_deref().and_then(|s| self.ctx.keys.open_text(&check.id, s)).unwrap_or_default();
        let session = SilentSession { device_url, provider_ref };
        let result = match &v {
            // Past its deadline the check has timed out, whatever the operator says now.
            _ if self.ctx.clock.now() >= check.expires_at => SilentResult::Failed(Reason::Timeout),
            // A decoy ends nothing; it answers like a real check of another SIM.
            None => SilentResult::Failed(Reason::Mismatch),
            Some(v) => match v.to.phone() {
                Some(to) => p.result(&session, to, query).instrument(provider_span(p.name(), "result")).await.unwrap_or_else(|e| {
                    tracing::warn!(provider = %check.provider, error = %e, "silent check could not be decided");
                    SilentResult::Failed(Reason::ProviderError)
                }),
                None => SilentResult::Failed(Reason::Mismatch),
            },
        };
        let now = self.ctx.clock.now();
        let this = self.clone();
        let service_name = match &v {
            Some(v) => self.catalog.service(&Caller::system("silent-callback"), Some(&v.service_id)).await?.name,
            None => self.decoy_service.to_string(),
        };
        let charges = self.ctx.budgets.for_service(&service_name).for_check(caller.end_user_ip);
        let id = check.verification_id.clone();
        let (check, sending) = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut c = tx.silent_check_of(&id)?.ok_or(VerifyError::SilentCallbackInvalid)?;
            if c.state != CheckState::Opened {
                return Err(VerifyError::CheckLinkUsed);
            }
            crate::budget::charge(tx, &charges, now)?;
            let sending = this.conclude(tx, &mut c, result, now)?;
            Ok::<_, VerifyError>((c, sending))
        })
        .await?;
        let code_sent = sending.is_some();
        self.after_conclusion(caller, &check, sending).await;
        Ok(self.outcome(check, code_sent))
    }

    /// Gives up the silent check of a pending verification now (the user asked for a code, or
    /// the page stopped waiting): an `auto` verification's code goes by SMS.
    #[tracing::instrument(name = "verifier.silent_fall_back", level = "debug", skip_all)]
    pub async fn fall_back(&self, caller: &Caller, id: &str) -> Result<SilentOutcome, VerifyError> {
        let (id, now, c2) = (id.to_string(), self.ctx.clock.now(), caller.clone());
        let this = self.clone();
        let (check, sending) = ports::write(self.ctx.store.as_ref(), move |tx| {
            let v = super::visible(&c2, tx.verification(&id)?)?;
            if v.status_at(now) != Status::Pending {
                return Err(VerifyError::NotPending(v.status_at(now)));
            }
            let mut c = tx.silent_check_of(&id)?.ok_or(VerifyError::NoSilentCheck)?;
            if !c.state.is_live() || !c.fallback {
                return Err(VerifyError::NoSilentCheck);
            }
            let sending = this.conclude(tx, &mut c, SilentResult::Failed(Reason::Timeout), now)?;
            Ok::<_, VerifyError>((c, sending))
        })
        .await?;
        let code_sent = sending.is_some();
        self.after_conclusion(caller, &check, sending).await;
        Ok(self.outcome(check, code_sent))
    }

    /// Ends every overdue silent check as timed out (the background sweep).
    pub async fn expire_silent_checks(&self, batch: u32) -> Result<usize, VerifyError> {
        let now = self.ctx.clock.now();
        let due = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.due_silent_checks(now, batch)?)).await?;
        let caller = Caller::system("silent-sweep");
        let mut ended = 0;
        // One unit per check: a check that cannot be concluded (its verification's code no
        // longer opens) is ended alone, without holding up the others.
        for due in due {
            let (this, vid) = (self.clone(), due.verification_id.clone());
            let result = ports::write(self.ctx.store.as_ref(), move |tx| {
                let Some(mut c) = tx.silent_check_of(&vid)?.filter(|c| c.state.is_live() && c.expires_at <= now) else {
                    return Ok::<_, VerifyError>(None);
                };
                let sending = this.conclude(tx, &mut c, SilentResult::Failed(Reason::Timeout), now)?;
                Ok(Some((c, sending)))
            })
            .await;
            match result {
                Ok(Some((c, sending))) => {
                    ended += 1;
                    self.after_conclusion(&caller, &c, sending).await;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, verification = %due.verification_id, "an overdue silent check could not be concluded; ending it alone");
                    let vid = due.verification_id.clone();
                    ports::write(self.ctx.store.as_ref(), move |tx| {
                        if let Some(mut c) = tx.silent_check_of(&vid)?
                            && c.finish(SilentResult::Failed(Reason::Timeout), now)
                        {
                            tx.update_silent_check(&c)?;
                        }
                        Ok::<_, VerifyError>(())
                    })
                    .await?;
                }
            }
        }
        Ok(ended)
    }

    /// Ends a live check with `result` and applies it to its (pending) verification, in the
    /// caller's unit. Returns the SMS to send after the commit when an `auto` one falls back.
    pub(crate) fn conclude(
        &self,
        tx: &mut dyn Tx,
        c: &mut SilentCheck,
        result: SilentResult,
        now: DateTime<Utc>,
    ) -> Result<Option<Queued>, VerifyError> {
        if !c.finish(result, now) {
            return Err(VerifyError::CheckLinkUsed);
        }
        tx.update_silent_check(c)?;
        let Some(mut v) = tx.verification(&c.verification_id)? else { return Ok(None) };
        if v.status_at(now) != Status::Pending {
            return Ok(None);
        }
        match result {
            SilentResult::Match => {
                v.approve_out_of_band(now).map_err(VerifyError::NotPending)?;
                ports::save_verification(tx, &mut v)?;
                // An `auto` start counted for the prefix throttle; its approval counts as used.
                if v.channel == Channel::Auto
                    && let Some((_, approved)) =
                        self.ctx.budgets.throttle_counters(&self.ctx.budgets.prefix(v.to.as_str(), &v.to.calling_code()))
                {
                    super::count(tx, &approved, now)?;
                }
                Ok(None)
            }
            SilentResult::Failed(_) if c.fallback => {
                let service = tx.service(&v.service_id)?.ok_or(VerifyError::ServiceNotFound)?;
                let code = self
                    .ctx
                    .keys
                    .open(&v.id, &v.code_sealed)
                    .ok_or_else(|| VerifyError::Crypto("sealed code does not open with the server secret".into()))?;
                // The workflow's steps start now.
                v.step_due_at = Verification::due_after(&v.workflow, v.step, now).filter(|_| !v.manual_steps);
                ports::save_verification(tx, &mut v)?;
                Ok(Some(self.delivery.queue(tx, &service, &v, &code, (v.step_channel(), false), now)?))
            }
            SilentResult::Failed(reason) => {
                v.fail(now, reason.as_str().to_string());
                ports::save_verification(tx, &mut v)?;
                Ok(None)
            }
        }
    }

    /// After a conclusion's commit: the audit event, the metrics, and the fallback SMS.
    async fn after_conclusion(&self, caller: &Caller, c: &SilentCheck, sending: Option<Queued>) {
        let (kind, detail) = match (c.state, c.reason) {
            (CheckState::Matched, _) => (AuditKind::SilentApproved, format!("the operator confirmed the number ({})", c.provider)),
            (_, Some(r)) if sending.is_some() => {
                (AuditKind::SilentFellBack, format!("silent check ended ({}); code sent by SMS", r.as_str()))
            }
            (_, r) => (AuditKind::SilentFailed, format!("silent check ended ({})", r.map_or("unknown", |r| r.as_str()))),
        };
        self.audit.record_once(caller, kind, Some(&c.verification_id), &detail).await;
        if let Some((message, Some(lease))) = sending {
            let this = self.clone();
            tokio::spawn(async move { this.delivery.send_claimed(message, &lease.token).await }.in_current_span());
        }
    }
}

/// The span of one call to a silent provider (the operator's API).
fn provider_span(provider: &str, call: &'static str) -> tracing::Span {
    tracing::debug_span!("silent.provider", otel.kind = "client", provider = %provider, call)
}

/// A new check waiting for the device (expiring now: the caller sets its deadline), and its
/// `check_url` token.
fn new_check(
    verification_id: &str,
    provider: &str,
    fallback: bool,
    return_path: Option<String>,
    now: DateTime<Utc>,
) -> (SilentCheck, String) {
    let token = random_token();
    let check = SilentCheck {
        id: new_id("SC"),
        verification_id: verification_id.to_string(),
        provider: provider.to_string(),
        provider_ref: None,
        device_url_sealed: None,
        token_digest: token_digest(&token),
        state: CheckState::Created,
        reason: None,
        fallback,
        return_path,
        created_at: now,
        expires_at: now,
        opened_at: None,
        finished_at: None,
    };
    (check, token)
}

/// The check of an `auto` verification for a test number: no provider is asked, and its code
/// goes on at once, as for a device no operator covers.
pub(super) fn uncovered_plan(v: &Verification, return_path: Option<String>, now: DateTime<Utc>) -> SilentPlan {
    failed_plan(v, Reason::OperatorNotCovered, return_path, now)
}

/// An `auto` verification's check that cannot start: its code goes by SMS at once.
fn failed_plan(v: &Verification, reason: Reason, return_path: Option<String>, now: DateTime<Utc>) -> SilentPlan {
    let (mut check, token) = new_check(&v.id, "", true, return_path, now);
    check.finish(SilentResult::Failed(reason), now);
    SilentPlan { check, token, provider: None }
}

fn answer(provider: &str, c: Coverage) -> CoverageAnswer {
    match c {
        Coverage::Available { operator } => {
            CoverageAnswer { available: true, reason: None, provider: Some(provider.to_string()), operator }
        }
        Coverage::Unavailable(reason) => CoverageAnswer { available: false, reason: Some(reason), provider: None, operator: None },
    }
}
