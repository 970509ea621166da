//! Silent checks through the simulator: a match approves, a mismatch fails a `silent` check and
//! sends the code of an `auto` one, a device that never finishes times out, links and callbacks
//! work once.
use crate::harness::{Core, admin, fresh_number, request};
use chrono::Duration;
use phonegate_core::accounts::flows::LoginRequest;
use phonegate_core::accounts::{SessionKind, Verified};
use phonegate_core::engine::SilentOutcome;
use phonegate_core::silent::{CallbackQuery, CheckState, Reason};
use phonegate_core::{Channel, CheckOutcome, Started, Status, VerifyError};

async fn simulator() -> Core {
    Core::with(|s| {
        s.silent_simulator = true;
        s.silent_timeout = Duration::seconds(60);
    })
    .await
}

async fn start(core: &Core, to: &str, channel: Channel) -> Started {
    core.verifier.start(&admin(), phonegate_core::StartRequest { channel: Some(channel), ..request(to) }).await.unwrap()
}

/// The device's way: it opens the check URL (phonegate's `/silent/{token}`), goes on to the
/// simulated operator, which sends it back with `outcome`.
async fn walk(core: &Core, check_url: &str, outcome: &str) -> Result<SilentOutcome, VerifyError> {
    let token = check_url.strip_prefix("/silent/").expect("a check URL");
    let operator = core.verifier.open_check_url(&admin(), token, None).await?;
    let reference = operator.strip_prefix("/silent/simulator/").expect("the simulator's page").to_string();
    core.verifier.silent_callback(&admin(), "simulator", &query(&reference, outcome)).await
}

fn query(reference: &str, outcome: &str) -> CallbackQuery {
    [("ref".to_string(), reference.to_string()), ("outcome".to_string(), outcome.to_string())].into()
}

#[tokio::test]
async fn a_match_approves_without_a_code() {
    let core = simulator().await;
    let to = fresh_number();
    let started = start(&core, &to, Channel::Silent).await;
    assert_eq!(started.silent.as_ref().map(|c| c.state), Some(CheckState::Created));
    assert!(started.message_id.is_none());
    let outcome = walk(&core, started.check_url.as_deref().unwrap(), "match").await.unwrap();
    assert_eq!((outcome.check.state, outcome.code_sent), (CheckState::Matched, false));
    assert!(outcome.proof.is_some());
    assert_eq!(core.verifier.get(&admin(), &started.verification.id).await.unwrap().status, Status::Approved);
    assert_eq!(core.queued_for(&to).await, 0, "no code was ever queued");
}

#[tokio::test]
async fn a_mismatch_fails_a_silent_verification() {
    let core = simulator().await;
    let to = fresh_number();
    let started = start(&core, &to, Channel::Silent).await;
    let outcome = walk(&core, started.check_url.as_deref().unwrap(), "mismatch").await.unwrap();
    assert_eq!((outcome.check.reason, outcome.code_sent, outcome.proof), (Some(Reason::Mismatch), false, None));
    let v = core.verifier.get(&admin(), &started.verification.id).await.unwrap();
    assert_eq!((v.status, v.failure_reason.as_deref()), (Status::Failed, Some("mismatch")));
}

#[tokio::test]
async fn a_mismatch_sends_the_code_of_an_auto_verification() {
    let core = simulator().await;
    let to = fresh_number();
    let started = start(&core, &to, Channel::Auto).await;
    assert_eq!(core.queued_for(&to).await, 0, "no code while the device is checked");
    let outcome = walk(&core, started.check_url.as_deref().unwrap(), "mismatch").await.unwrap();
    assert!(outcome.code_sent);
    let code = core.code_for(&to).await;
    let (_, checked) = core.verifier.check(&admin(), &started.verification.id, &code, None).await.unwrap();
    assert_eq!(checked, CheckOutcome::Approved);
}

#[tokio::test]
async fn a_check_link_and_a_callback_work_once() {
    let core = simulator().await;
    let started = start(&core, &fresh_number(), Channel::Silent).await;
    let token = started.check_url.as_deref().unwrap().strip_prefix("/silent/").unwrap().to_string();
    let operator = core.verifier.open_check_url(&admin(), &token, None).await.unwrap();
    let again = core.verifier.open_check_url(&admin(), &token, None).await;
    assert!(matches!(again, Err(VerifyError::CheckLinkUsed)), "{again:?}");
    let callback = query(operator.strip_prefix("/silent/simulator/").unwrap(), "match");
    core.verifier.silent_callback(&admin(), "simulator", &callback).await.unwrap();
    let replay = core.verifier.silent_callback(&admin(), "simulator", &callback).await;
    assert!(matches!(replay, Err(VerifyError::CheckLinkUsed)), "{replay:?}");
    let forged = core.verifier.silent_callback(&admin(), "simulator", &query("SR-none", "match")).await;
    assert!(matches!(forged, Err(VerifyError::SilentCallbackInvalid)), "{forged:?}");
}

#[tokio::test]
async fn a_link_opened_after_the_timeout_sends_the_code_of_an_auto_verification() {
    let core = simulator().await;
    let to = fresh_number();
    let started = start(&core, &to, Channel::Auto).await;
    core.advance(Duration::seconds(60));
    let late = walk(&core, started.check_url.as_deref().unwrap(), "match").await;
    assert!(matches!(late, Err(VerifyError::CheckLinkExpired)), "{late:?}");
    let code = core.code_for(&to).await;
    let (_, checked) = core.verifier.check(&admin(), &started.verification.id, &code, None).await.unwrap();
    assert_eq!(checked, CheckOutcome::Approved);
}

#[tokio::test]
async fn the_sweep_times_out_checks_the_device_never_finished() {
    let core = simulator().await;
    let (auto, silent) = (fresh_number(), fresh_number());
    let a = start(&core, &auto, Channel::Auto).await;
    let s = start(&core, &silent, Channel::Silent).await;
    assert_eq!(core.verifier.expire_silent_checks(10).await.unwrap(), 0, "nothing is due yet");
    core.advance(Duration::seconds(60));
    assert_eq!(core.verifier.expire_silent_checks(10).await.unwrap(), 2);
    // The `auto` one goes on by SMS, the `silent` one has failed.
    core.code_for(&auto).await;
    assert_eq!(core.verifier.get(&admin(), &a.verification.id).await.unwrap().status, Status::Pending);
    let failed = core.verifier.get(&admin(), &s.verification.id).await.unwrap();
    assert_eq!((failed.status, failed.failure_reason.as_deref()), (Status::Failed, Some("timeout")));
}

#[tokio::test]
async fn without_a_silent_provider_silent_is_refused_and_auto_is_sms() {
    let core = Core::new().await;
    let to = fresh_number();
    let silent = core.verifier.start(&admin(), phonegate_core::StartRequest { channel: Some(Channel::Silent), ..request(&to) }).await;
    assert!(matches!(silent, Err(VerifyError::SilentUnavailable)), "{silent:?}");
    let auto = start(&core, &to, Channel::Auto).await;
    assert!(auto.check_url.is_none());
    core.code_for(&to).await;
}

#[tokio::test]
async fn a_silent_login_completes_with_the_devices_proof_only() {
    let core = simulator().await;
    let phone = fresh_number();
    let user = phonegate_core::Caller::end_user(Some("198.51.100.1".parse().unwrap()), "tests");
    let signup = phonegate_core::accounts::flows::SignupRequest {
        username: "silent".into(),
        phone: phone.clone(),
        email: None,
        password: None,
        locale: None,
        silent: false,
    };
    let flow = core.accounts.signup(&user, signup).await.unwrap();
    let code = core.code_for(&phone).await;
    core.accounts.verify(&user, &flow.flow_id, &code, SessionKind::App, None, None).await.unwrap();

    let login = LoginRequest::Phone { phone: phone.clone(), locale: None, silent: true };
    let flow = core.accounts.login(&user, login).await.unwrap();
    let outcome = walk(&core, flow.check_url.as_deref().expect("a silent login"), "match").await.unwrap();
    let wrong = core.accounts.verify_silent(&user, &flow.flow_id, "not-the-proof", SessionKind::App, None, None).await;
    assert!(matches!(wrong, Err(VerifyError::NoSilentCheck)), "{wrong:?}");
    let proof = outcome.proof.unwrap();
    let done = core.accounts.verify_silent(&user, &flow.flow_id, &proof, SessionKind::App, None, None).await.unwrap();
    assert!(matches!(done, Verified::SignedIn(s) if s.user.phone.as_str() == phone));
    assert_eq!(core.queued_for(&phone).await, 1, "only the sign-up's code was ever queued");
}
