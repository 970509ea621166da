//! Native verification API: start (or re-send), check, read, cancel.
use super::error::{ApiError, ErrorBody};
use super::{AppState, auth::Authenticated, extract::ApiJson};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use phonegate_core::error::Field;
use phonegate_core::ids::is_id;
use phonegate_core::message::DeliveryStatus;
use phonegate_core::psd2::Psd2;
use phonegate_core::workflow::{Step, Workflow};
use phonegate_core::{Caller, Channel, CheckOutcome, StartOptions, StartRequest, Status, Verification, VerifyError};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(get))
        .routes(routes!(check))
        .routes(routes!(check_number))
        .routes(routes!(cancel))
        .routes(routes!(next))
}

/// One step of a workflow a start asks for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    /// `sms`, `voice`, `whatsapp` or `email`.
    channel: String,
    /// Seconds the code may wait to be checked before the next step starts: 15 to 900 (default
    /// 120). Ignored on the last step.
    timeout_secs: Option<u32>,
}

/// One step of a workflow as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct WorkflowStep {
    #[schema(value_type = String, example = "sms")]
    channel: Channel,
    timeout_secs: u32,
}

/// A workflow's steps as the API shows them.
pub(super) fn workflow_view(w: &Workflow) -> Vec<WorkflowStep> {
    w.steps().iter().map(|s| WorkflowStep { channel: s.channel, timeout_secs: s.timeout_secs }).collect()
}

/// A request's workflow in the core's terms.
pub(super) fn workflow(steps: Vec<StepBody>) -> Result<Workflow, ApiError> {
    let steps = steps
        .into_iter()
        .map(|s| {
            let channel = parse_channel(&s.channel)?;
            Ok(Step::new(channel, s.timeout_secs).map_err(VerifyError::from)?)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Workflow::new(steps).map_err(VerifyError::from)?)
}

fn parse_channel(c: &str) -> Result<Channel, ApiError> {
    Channel::parse(c).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "channel_not_supported",
            format!("channel `{c}` is not supported; use sms, voice, whatsapp, email, silent or auto"),
        )
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// Phone number, E.164 (`+4915123456789`) or national format with the configured default
    /// region; for the `email` channel, an e-mail address.
    to: String,
    /// `sms`, `voice` (a call speaks the code), `whatsapp`, `email`; `silent`: the operator
    /// confirms the number when the device opens the answer's `silent.check_url` over mobile
    /// data (no code); `auto`: silent where the device's operator is covered, else (or when it
    /// fails) the service's workflow, keeping the steps that fit the number (a landline gets a
    /// call). Omitted: the service's workflow (one SMS unless the service sets another).
    channel: Option<String>,
    /// The steps the one code takes, in order, e.g. `[{"channel": "whatsapp", "timeout_secs": 60},
    /// {"channel": "sms", "timeout_secs": 60}, {"channel": "voice"}]`: the next step starts when
    /// a step's time passes, when its message fails, or on `POST /api/verifications/{id}/next`.
    workflow: Option<Vec<StepBody>>,
    /// Service id (`VA…`) or name; the default service when omitted.
    service: Option<String>,
    /// Language of the message: any of the 38 locales Twilio Verify lists (`en`, `de`, `pt-BR`,
    /// `zh-HK`…); else the number's country's language; else English.
    locale: Option<String>,
    /// The end user's IP address, from an app's backend: the per-IP budgets count it.
    client_ip: Option<String>,
    /// Android SMS Retriever: the app's 11-character hash, put on the message's last line.
    app_hash: Option<String>,
    /// The code to send, 4 to 10 digits, where the service has `custom_codes` (else 403
    /// `custom_code_not_enabled`). Stored only as a digest, like generated codes.
    custom_code: Option<String>,
    /// PSD2 payment code (a service with `psd2`, else 403 `psd2_not_enabled`): the amount as it
    /// should read (`€39.99`), with `payee`; both go in the message.
    amount: Option<String>,
    /// The payee of a PSD2 payment code, with `amount`.
    payee: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    code: String,
    /// The end user's IP address, from an app's backend: the per-IP budgets count it.
    client_ip: Option<String>,
    /// A PSD2 check: the payment's amount and payee, which must be the verification's.
    amount: Option<String>,
    payee: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckNumberBody {
    /// The number (or, for an e-mail verification, the address) the code was sent to.
    to: String,
    code: String,
    service: Option<String>,
    /// The end user's IP address, from an app's backend: the per-IP budgets count it.
    client_ip: Option<String>,
    /// A PSD2 check: the payment's amount and payee, which must be the verification's.
    amount: Option<String>,
    payee: Option<String>,
}

/// A verification as the API shows it. The code itself is never shown.
#[derive(Serialize, ToSchema)]
pub struct VerificationView {
    id: String,
    service_id: String,
    to: String,
    #[schema(value_type = String, example = "sms")]
    channel: Channel,
    #[schema(value_type = String, example = "pending")]
    status: Status,
    locale: String,
    /// Check attempts used so far.
    attempts: u32,
    /// Codes sent in the current send window.
    sends: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    approved_at: Option<DateTime<Utc>>,
    canceled_at: Option<DateTime<Utc>>,
    expired_at: Option<DateTime<Utc>>,
    max_attempts_reached_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    failure_reason: Option<String>,
    /// For a configured test number: its code is the fixed one, and nothing was sent to it.
    test: bool,
    /// The steps of its workflow (channel and `timeout_secs`), and the index of the running one.
    workflow: Vec<WorkflowStep>,
    step: u32,
    /// When the next step starts unless the code is checked first (none on the last step).
    next_step_at: Option<DateTime<Utc>>,
}

impl From<Verification> for VerificationView {
    fn from(v: Verification) -> Self {
        Self {
            id: v.id,
            service_id: v.service_id,
            to: v.to.to_string(),
            channel: v.channel,
            status: v.status,
            locale: v.locale,
            attempts: v.attempts,
            sends: v.sends,
            created_at: v.created_at,
            updated_at: v.updated_at,
            expires_at: v.expires_at,
            approved_at: v.approved_at,
            canceled_at: v.canceled_at,
            expired_at: v.expired_at,
            max_attempts_reached_at: v.max_attempts_reached_at,
            failed_at: v.failed_at,
            failure_reason: v.failure_reason,
            test: v.test,
            workflow: workflow_view(&v.workflow),
            step: v.step,
            next_step_at: v.step_due_at.filter(|_| v.status == Status::Pending),
        }
    }
}

/// One SMS sent (or being sent) for a verification. The body is never shown.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    id: String,
    /// sms, voice, whatsapp or email
    #[schema(value_type = String, example = "sms")]
    channel: Channel,
    /// queued, sending, sent, delivered, undelivered, failed
    #[schema(value_type = String, example = "delivered")]
    status: DeliveryStatus,
    /// The configured provider that accepted it.
    provider: Option<String>,
    provider_message_id: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A verification with the messages sent for it.
#[derive(Serialize, ToSchema)]
pub struct VerificationDetail {
    #[serde(flatten)]
    verification: VerificationView,
    messages: Vec<DeliveryView>,
    /// The workflow's steps as they stand: each with its channel, `timeout_secs`, `status`
    /// (`waiting` until it starts, then its message's delivery status), `started_at` and
    /// `message_id`.
    steps: Vec<StepView>,
    /// The silent check of a `silent` or `auto` verification.
    silent: Option<super::silent::SilentView>,
    /// Which channel approved it (`sms` or `silent`), once approved.
    approved_channel: Option<String>,
}

/// One workflow step as it stands.
#[derive(Serialize, ToSchema)]
pub struct StepView {
    #[schema(value_type = String, example = "sms")]
    channel: Channel,
    timeout_secs: u32,
    /// `waiting`, or queued, sending, sent, delivered, undelivered, failed.
    status: String,
    started_at: Option<DateTime<Utc>>,
    message_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StartedView {
    #[serde(flatten)]
    verification: VerificationView,
    /// True when a pending verification for this number was sent again (same id, same code).
    resent: bool,
    /// A `silent` or `auto` verification's check: `check_url` is what the device must open.
    #[serde(skip_serializing_if = "Option::is_none")]
    silent: Option<super::silent::SilentView>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckView {
    id: String,
    #[schema(value_type = String, example = "approved")]
    status: Status,
    /// True only for the one check that approved the verification.
    valid: bool,
}

/// Start a verification: send a code to the number. Starting again while one is pending re-sends
/// the same code (at most 5 sends per 10 minutes).
#[utoipa::path(post, path = "/api/verifications", tag = "verifications", request_body = StartBody,
    responses((status = 201, body = StartedView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "recipient_opted_out: the number sent STOP"),
        (status = 404, body = ErrorBody, description = "unknown service"), (status = 429, body = ErrorBody, description = "max_sends_reached (this verification), send_budget_exceeded (the number's, key's, service's, country's or prefix's budget), rate_limited (the end user's IP); `Retry-After` says when to retry"),
        (status = 502, body = ErrorBody, description = "delivery_failed: no provider accepted the message; `verification_id` names the failed verification")))]
async fn start(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    ApiJson(b): ApiJson<StartBody>,
) -> Result<(StatusCode, Json<StartedView>), ApiError> {
    let channel = b.channel.as_deref().map(parse_channel).transpose()?;
    let workflow = b.workflow.map(workflow).transpose()?;
    let caller = for_end_user(caller, b.client_ip.as_deref())?;
    let started = s
        .core
        .verifier
        .start(
            &caller,
            StartRequest {
                service: b.service,
                to: b.to,
                channel,
                locale: b.locale,
                options: StartOptions {
                    workflow,
                    app_hash: b.app_hash,
                    custom_code: b.custom_code,
                    psd2: Psd2::from_parts(b.amount.as_deref(), b.payee.as_deref()).map_err(phonegate_core::VerifyError::from)?,
                    ..Default::default()
                },
            },
        )
        .await?;
    let base = super::compat::base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri);
    let silent =
        started.silent.as_ref().map(|c| super::silent::SilentView::new(c, started.check_url.as_ref().map(|p| format!("{base}{p}"))));
    Ok((StatusCode::CREATED, Json(StartedView { verification: started.verification.into(), resent: started.resent, silent })))
}

/// The caller acting for the end user at `client_ip`, when the app's backend says who that is.
fn for_end_user(caller: Caller, client_ip: Option<&str>) -> Result<Caller, ApiError> {
    let ip = client_ip
        .map(|ip| ip.trim().parse::<std::net::IpAddr>())
        .transpose()
        .map_err(|_| VerifyError::invalid(Field::ClientIp, "must be an IPv4 or IPv6 address"))?;
    Ok(caller.for_end_user(ip))
}

pub(super) fn known_id(id: &str) -> Result<(), ApiError> {
    if is_id("VE", id) { Ok(()) } else { Err(VerifyError::VerificationNotFound.into()) }
}

/// Read a verification, with its messages and their delivery status.
#[utoipa::path(get, path = "/api/verifications/{id}", tag = "verifications", params(("id" = String, Path)),
    responses((status = 200, body = VerificationDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<VerificationDetail>, ApiError> {
    known_id(&id)?;
    let detail = s.core.verifier.detail(&caller, &id).await?;
    let approved_channel = detail.approved_channel().map(|c| c.as_str().to_string());
    let silent = detail.silent.as_ref().map(|c| super::silent::SilentView::new(c, None));
    let steps = detail
        .steps()
        .into_iter()
        .map(|st| StepView {
            channel: st.channel,
            timeout_secs: st.timeout_secs,
            status: st.status.map_or("waiting", |d| d.as_str()).to_string(),
            started_at: st.started_at,
            message_id: st.message_id,
        })
        .collect();
    let (verification, messages) = (detail.verification, detail.messages);
    let messages = messages
        .into_iter()
        .map(|m| DeliveryView {
            id: m.id,
            channel: m.channel,
            status: m.status,
            provider: m.provider,
            provider_message_id: m.provider_message_id,
            error: m.error,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
        .collect();
    Ok(Json(VerificationDetail { verification: verification.into(), messages, steps, silent, approved_channel }))
}

fn check_view(
    s: &AppState,
    started: Instant,
    result: Result<(Verification, CheckOutcome), VerifyError>,
) -> Result<Json<CheckView>, ApiError> {
    s.metrics.observe_check(started.elapsed().as_secs_f64());
    let (v, outcome) = result?;
    Ok(Json(CheckView { id: v.id, status: v.status, valid: outcome == CheckOutcome::Approved }))
}

/// Check a code. Every check of a pending verification uses one of its 5 attempts; the fifth
/// wrong code locks it. A verification that is no longer pending answers 409.
#[utoipa::path(post, path = "/api/verifications/{id}/check", tag = "verifications", params(("id" = String, Path)), request_body = CheckBody,
    responses((status = 200, body = CheckView), (status = 400, body = ErrorBody, description = "the code is not 4 to 10 digits (a code of another length than this verification's is a wrong code)"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not pending: verification_approved, verification_expired, …"),
        (status = 429, body = ErrorBody, description = "checks_locked: too many wrong codes for this number (across verifications and services); rate_limited: the end user's IP; `Retry-After` says when to retry")))]
async fn check(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CheckBody>,
) -> Result<Json<CheckView>, ApiError> {
    known_id(&id)?;
    let caller = for_end_user(caller, b.client_ip.as_deref())?;
    let t = Instant::now();
    let psd2 = Psd2::from_parts(b.amount.as_deref(), b.payee.as_deref()).map_err(phonegate_core::VerifyError::from)?;
    let result = s.core.verifier.check(&caller, &id, &b.code, psd2.as_ref()).await;
    check_view(&s, t, result)
}

/// Check a code against the pending verification for a number. With none pending, the answer
/// is the one for a wrong code (`pending`, `valid: false`, an id that names nothing): this
/// endpoint never tells whether a number has a verification pending.
#[utoipa::path(post, path = "/api/verifications/check", tag = "verifications", request_body = CheckNumberBody,
    responses((status = 200, body = CheckView), (status = 400, body = ErrorBody, description = "invalid number or code"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "service_not_found"),
        (status = 429, body = ErrorBody, description = "checks_locked or rate_limited; `Retry-After` says when to retry")))]
async fn check_number(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(b): ApiJson<CheckNumberBody>,
) -> Result<Json<CheckView>, ApiError> {
    let caller = for_end_user(caller, b.client_ip.as_deref())?;
    let t = Instant::now();
    let psd2 = Psd2::from_parts(b.amount.as_deref(), b.payee.as_deref()).map_err(phonegate_core::VerifyError::from)?;
    let result = s.core.verifier.check_number(&caller, b.service.as_deref(), &b.to, &b.code, psd2.as_ref()).await;
    if let Err(VerifyError::NoPendingVerification) = result {
        // Answered as a wrong code (with an id that names nothing), so this endpoint never tells
        // whether a number has a verification pending.
        s.metrics.observe_check(t.elapsed().as_secs_f64());
        return Ok(Json(CheckView { id: phonegate_core::ids::new_id("VE"), status: Status::Pending, valid: false }));
    }
    check_view(&s, t, result)
}

/// Cancel a pending verification.
#[utoipa::path(post, path = "/api/verifications/{id}/cancel", tag = "verifications", params(("id" = String, Path)),
    responses((status = 200, body = VerificationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<VerificationView>, ApiError> {
    known_id(&id)?;
    Ok(Json(s.core.verifier.cancel(&caller, &id).await?.into()))
}

/// Start the next step of a verification's workflow now (the same code, by the step's channel),
/// without waiting for the running step's time to pass.
#[utoipa::path(post, path = "/api/verifications/{id}/next", tag = "verifications", params(("id" = String, Path)),
    responses((status = 200, body = VerificationView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "no_next_step: on the last step; or not pending (verification_approved, …)"),
        (status = 429, body = ErrorBody, description = "send_budget_exceeded: the step's channel budget; `Retry-After` says when to retry")))]
async fn next(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<VerificationView>, ApiError> {
    known_id(&id)?;
    Ok(Json(s.core.verifier.next(&caller, &id).await?.into()))
}
