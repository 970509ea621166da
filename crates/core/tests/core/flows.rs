//! Account flows: sign-up, passwordless login, password then code, resends, wrong codes per flow,
//! and decoys that answer like real flows and send nothing.
use crate::harness::{Core, end_user, fresh_number, wrong};
use chrono::Duration;
use phonegate_core::VerifyError;
use phonegate_core::accounts::flows::{LoginRequest, SignupRequest};
use phonegate_core::accounts::{FlowStarted, SessionKind, SignedIn, Verified};
use phonegate_core::budget::Rate;
use secrecy::ExposeSecret;

const PASSWORD: &str = "correct horse battery";

fn signup(username: &str, phone: &str, password: Option<&str>) -> SignupRequest {
    SignupRequest {
        username: username.into(),
        phone: phone.into(),
        email: None,
        password: password.map(Into::into),
        locale: None,
        silent: false,
    }
}

fn by_phone(phone: &str) -> LoginRequest {
    LoginRequest::Phone { phone: phone.into(), locale: None, silent: false }
}

fn by_password(identifier: &str, password: &str) -> LoginRequest {
    LoginRequest::Password { identifier: identifier.into(), password: password.into(), locale: None }
}

impl Core {
    async fn verify(&self, flow: &FlowStarted, code: &str) -> Result<Verified, VerifyError> {
        self.accounts.verify(&end_user("198.51.100.1"), &flow.flow_id, code, SessionKind::App, None, None).await
    }

    async fn signed_in(&self, flow: &FlowStarted, code: &str) -> SignedIn {
        match self.verify(flow, code).await {
            Ok(Verified::SignedIn(s)) => *s,
            other => panic!("not signed in: {other:?}"),
        }
    }

    /// Signs `username` up at `phone`.
    async fn sign_up(&self, username: &str, phone: &str, password: Option<&str>) -> SignedIn {
        let before = self.sender.count(phone);
        let flow = self.accounts.signup(&end_user("198.51.100.1"), signup(username, phone, password)).await.unwrap();
        let code = self.code_after(phone, before).await;
        self.signed_in(&flow, &code).await
    }

    async fn log_in(&self, req: LoginRequest) -> Result<FlowStarted, VerifyError> {
        self.accounts.login(&end_user("198.51.100.1"), req).await
    }
}

#[tokio::test]
async fn a_sign_up_creates_the_account_once_its_code_is_right() {
    let core = Core::new().await;
    let phone = fresh_number();
    let flow = core.accounts.signup(&end_user("198.51.100.1"), signup("Ada.L", &phone, None)).await.unwrap();
    assert!(flow.flow_id.starts_with("fl") && flow.check_url.is_none());
    assert_eq!(flow.resend_after, 30);
    let code = core.code_for(&phone).await;
    let s = core.signed_in(&flow, &code).await;
    assert_eq!((s.user.username.as_str(), s.user.phone.as_str()), ("Ada.L", phone.as_str()));
    assert!(s.refresh_token.is_some_and(|t| t.expose_secret().starts_with("rt_")) && !s.access_token.is_empty());
    // A flow is used once.
    assert!(matches!(core.verify(&flow, &code).await, Err(VerifyError::FlowNotFound)));
    // The username is taken, in any case.
    let taken = core.accounts.signup(&end_user("198.51.100.1"), signup("ADA.l", &fresh_number(), None)).await;
    assert!(matches!(taken, Err(VerifyError::UsernameTaken)), "{taken:?}");
}

#[tokio::test]
async fn a_passwordless_login_sends_a_code_to_the_accounts_number() {
    let core = Core::new().await;
    let phone = fresh_number();
    let account = core.sign_up("grace", &phone, None).await;
    let flow = core.log_in(by_phone(&phone)).await.unwrap();
    let code = core.code_after(&phone, 1).await;
    let s = core.signed_in(&flow, &code).await;
    assert_eq!(s.user.id, account.user.id);
    assert_ne!(s.session.id, account.session.id, "each login opens its own session");
}

#[tokio::test]
async fn a_password_login_sends_the_code_after_the_right_password() {
    let core = Core::new().await;
    let phone = fresh_number();
    let account = core.sign_up("hopper", &phone, Some(PASSWORD)).await;
    let flow = core.log_in(by_password("HOPPER", PASSWORD)).await.unwrap();
    let code = core.code_after(&phone, 1).await;
    assert_eq!(core.signed_in(&flow, &code).await.user.id, account.user.id);
}

#[tokio::test]
async fn decoy_logins_answer_like_a_real_one_and_send_nothing() {
    let core = Core::new().await;
    let (phone, stranger) = (fresh_number(), fresh_number());
    core.sign_up("lovelace", &phone, Some(PASSWORD)).await;
    let queued = core.queued_for(&phone).await;
    let decoys = [
        core.log_in(by_phone(&stranger)).await.unwrap(),
        core.log_in(by_password("nobody", PASSWORD)).await.unwrap(),
        core.log_in(by_password("lovelace", "wrong horse battery")).await.unwrap(),
    ];
    // Written in the unit that queues them: none was.
    assert_eq!((core.queued_for(&stranger).await, core.queued_for(&phone).await), (0, queued));
    let real = core.log_in(by_password("lovelace", PASSWORD)).await.unwrap();
    let code = core.code_after(&phone, 1).await;
    let shape = |f: &FlowStarted| (f.flow_id.len(), f.flow_id[..2].to_string(), f.expires_at, f.resend_after, f.check_url.clone());
    for decoy in &decoys {
        assert_eq!(shape(decoy), shape(&real));
        // No code opens a decoy, not even the real one; it counts attempts like a real flow.
        assert!(matches!(core.verify(decoy, &code).await, Err(VerifyError::CodeIncorrect { attempts_left: 4 })));
    }
    core.signed_in(&real, &code).await;
}

#[tokio::test]
async fn each_flow_counts_its_own_wrong_codes() {
    let core = Core::with(|s| s.budgets.failed_logins_per_account = vec![Rate { limit: 50, secs: 900 }]).await;
    let phone = fresh_number();
    core.sign_up("turing", &phone, None).await;
    let flow = core.log_in(by_phone(&phone)).await.unwrap();
    let code = core.code_after(&phone, 1).await;
    for attempts_left in (1..=4).rev() {
        let r = core.verify(&flow, &wrong(&code)).await;
        assert!(matches!(r, Err(VerifyError::CodeIncorrect { attempts_left: l }) if l == attempts_left), "{r:?}");
    }
    assert!(matches!(core.verify(&flow, &wrong(&code)).await, Err(VerifyError::CodeLocked)));
    assert!(matches!(core.verify(&flow, &code).await, Err(VerifyError::CodeLocked)), "locked even against the right code");
    // Another flow for the number (the same pending code, sent again) is not locked.
    let other = core.log_in(by_phone(&phone)).await.unwrap();
    assert_eq!(core.code_after(&phone, 2).await, code);
    core.signed_in(&other, &code).await;
}

#[tokio::test]
async fn a_resend_waits_for_the_cooldown_and_sends_the_same_code() {
    let core = Core::new().await;
    let phone = fresh_number();
    let flow = core.accounts.signup(&end_user("198.51.100.1"), signup("knuth", &phone, None)).await.unwrap();
    let code = core.code_for(&phone).await;
    let soon = core.accounts.resend(&end_user("198.51.100.1"), &flow.flow_id, None, None).await;
    assert!(matches!(soon, Err(VerifyError::ResendTooSoon { retry_after_secs: 30 })), "{soon:?}");
    core.advance(Duration::seconds(30));
    core.accounts.resend(&end_user("198.51.100.1"), &flow.flow_id, None, None).await.unwrap();
    assert_eq!(core.code_after(&phone, 1).await, code);
    core.signed_in(&flow, &code).await;
}

#[tokio::test]
async fn a_flow_past_its_deadline_is_expired() {
    let core = Core::new().await;
    let phone = fresh_number();
    let flow = core.accounts.signup(&end_user("198.51.100.1"), signup("hamilton", &phone, None)).await.unwrap();
    let code = core.code_for(&phone).await;
    core.advance(Duration::seconds(600));
    assert!(matches!(core.verify(&flow, &code).await, Err(VerifyError::CodeExpired)));
}

#[tokio::test]
async fn a_number_that_opted_out_is_refused_alike_with_and_without_an_account() {
    let core = Core::new().await;
    let (member, stranger) = (fresh_number(), fresh_number());
    core.sign_up("noether", &member, None).await;
    for (n, number) in [&member, &stranger].into_iter().enumerate() {
        let id = format!("SMstop{n}");
        core.services.delivery.receive(&end_user("192.0.2.7"), "outbox", &id, number, "+4930123456", "STOP").await.unwrap();
    }
    let real = core.log_in(by_phone(&member)).await.unwrap_err();
    let decoy = core.log_in(by_phone(&stranger)).await.unwrap_err();
    assert!(matches!(real, VerifyError::OptedOut), "{real:?}");
    assert!(matches!(decoy, VerifyError::OptedOut), "{decoy:?}");
}
