//! A verification's life in the engine: start (the code sealed, the message text), resend,
//! check, expiry, cancel and a send that fails.
use crate::harness::{Core, SendMode, admin, code_in, fresh_number, request, wrong};
use chrono::Duration;
use phonegate_core::{CheckOutcome, StartOptions, Status, VerifyError};

#[tokio::test]
async fn a_start_sends_the_code_and_stores_it_only_sealed() {
    let core = Core::new().await;
    let to = fresh_number();
    let started = core.start(&to).await;
    let v = &started.verification;
    assert_eq!((v.status, v.sends, v.attempts, v.code_length), (Status::Pending, 1, 0, 6));
    assert!(!started.resent);
    let sms = core.sender.wait_for(&to, 1).await;
    // A German number gets the German text, naming the default service.
    assert_eq!(sms.body, format!("Ihr phonegate Bestätigungscode lautet: {}", code_in(&sms.body)));
    assert_eq!(sms.verification_id.as_deref(), Some(v.id.as_str()));
    assert_eq!(Some(sms.message_id), started.message_id);

    let code = code_in(&core.sender.to(&to)[0].body);
    let contains = |bytes: &[u8]| bytes.windows(code.len()).any(|w| w == code.as_bytes());
    let stored = core.verifier.detail(&admin(), &v.id).await.unwrap();
    assert!(!contains(&stored.verification.code_sealed) && !contains(&stored.verification.code_digest));
    assert_eq!(stored.messages.len(), 1);
    assert!(!contains(&stored.messages[0].body_sealed), "the message body is sealed too");
}

#[tokio::test]
async fn the_message_takes_the_requested_language_brand_and_app_hash() {
    let core = Core::new().await;
    let to = fresh_number();
    let mut req = request(&to);
    req.locale = Some("en".into());
    req.options = StartOptions { brand: Some("Acme".into()), app_hash: Some("FA+9qCX9VSu".into()), ..Default::default() };
    core.verifier.start(&admin(), req).await.unwrap();
    let body = core.sender.wait_for(&to, 1).await.body;
    assert_eq!(body, format!("Your Acme verification code is: {}\n\nFA+9qCX9VSu", code_in(body.lines().next().unwrap())));
}

#[tokio::test]
async fn starting_again_resends_the_same_code_up_to_the_send_limit() {
    let core = Core::new().await;
    let to = fresh_number();
    let mut req = request(&to);
    req.options.ttl_secs = Some(3600);
    let first = core.verifier.start(&admin(), req).await.unwrap();
    let code = core.code_for(&to).await;
    for sends in 2..=5 {
        let again = core.start(&to).await;
        assert!(again.resent);
        assert_eq!((again.verification.id.as_str(), again.verification.sends), (first.verification.id.as_str(), sends));
        assert_eq!(core.code_after(&to, sends as usize - 1).await, code, "a resend carries the same code");
    }
    let refused = core.verifier.start(&admin(), request(&to)).await;
    assert!(matches!(refused, Err(VerifyError::MaxSendsReached)), "{refused:?}");
    assert_eq!(core.sender.count(&to), 5);

    // The send window reopens after ten minutes.
    core.advance(Duration::minutes(10));
    let again = core.start(&to).await;
    assert_eq!((again.verification.id, again.verification.sends), (first.verification.id, 1));
}

#[tokio::test]
async fn the_right_code_approves_once_and_approved_is_final() {
    let core = Core::new().await;
    let to = fresh_number();
    let v = core.start(&to).await.verification;
    let code = core.code_for(&to).await;
    let (checked, outcome) = core.verifier.check(&admin(), &v.id, &code, None).await.unwrap();
    assert_eq!((outcome, checked.status, checked.attempts), (CheckOutcome::Approved, Status::Approved, 1));
    let again = core.verifier.check(&admin(), &v.id, &code, None).await;
    assert!(matches!(again, Err(VerifyError::NotPending(Status::Approved))), "{again:?}");
    let cancel = core.verifier.cancel(&admin(), &v.id).await;
    assert!(matches!(cancel, Err(VerifyError::NotPending(Status::Approved))), "{cancel:?}");
    // The number is free for a new verification, with a new code.
    assert_ne!(core.start(&to).await.verification.id, v.id);
}

#[tokio::test]
async fn wrong_codes_count_down_and_lock_the_verification_even_against_the_right_code() {
    let core = Core::new().await;
    let to = fresh_number();
    let v = core.start(&to).await.verification;
    let code = core.code_for(&to).await;
    for left in (1..=4).rev() {
        let (_, outcome) = core.verifier.check(&admin(), &v.id, &wrong(&code), None).await.unwrap();
        assert_eq!(outcome, CheckOutcome::Rejected { attempts_left: left });
    }
    let (locked, outcome) = core.verifier.check(&admin(), &v.id, &wrong(&code), None).await.unwrap();
    assert_eq!((outcome, locked.status), (CheckOutcome::LockedOut, Status::MaxAttemptsReached));
    let right = core.verifier.check(&admin(), &v.id, &code, None).await;
    assert!(matches!(right, Err(VerifyError::NotPending(Status::MaxAttemptsReached))), "{right:?}");
}

#[tokio::test]
async fn a_code_of_another_length_is_a_wrong_code_and_text_is_refused_uncounted() {
    let core = Core::new().await;
    let to = fresh_number();
    let v = core.start(&to).await.verification;
    let code = core.code_for(&to).await;
    let (_, outcome) = core.verifier.check(&admin(), &v.id, &format!("{code}0"), None).await.unwrap();
    assert_eq!(outcome, CheckOutcome::Rejected { attempts_left: 4 });
    let text = core.verifier.check(&admin(), &v.id, "12ab56", None).await;
    assert!(matches!(text, Err(VerifyError::InvalidParameter { field: phonegate_core::error::Field::Code, .. })), "{text:?}");
    assert_eq!(core.verifier.get(&admin(), &v.id).await.unwrap().attempts, 1);
}

#[tokio::test]
async fn the_code_of_another_verification_is_refused() {
    let core = Core::new().await;
    let a = fresh_number();
    let va = core.start(&a).await.verification;
    let code_a = core.code_for(&a).await;
    // Another number's code (a new one until the two differ: they are random).
    let mut code_b = code_a.clone();
    while code_b == code_a {
        let other = fresh_number();
        core.start(&other).await;
        code_b = core.code_for(&other).await;
    }
    let (_, outcome) = core.verifier.check(&admin(), &va.id, &code_b, None).await.unwrap();
    assert_eq!(outcome, CheckOutcome::Rejected { attempts_left: 4 });
    let (_, outcome) = core.verifier.check(&admin(), &va.id, &code_a, None).await.unwrap();
    assert_eq!(outcome, CheckOutcome::Approved);
}

#[tokio::test]
async fn a_check_after_the_deadline_is_refused_as_expired() {
    let core = Core::new().await;
    let to = fresh_number();
    let v = core.start(&to).await.verification;
    let code = core.code_for(&to).await;
    core.advance(Duration::seconds(599));
    assert_eq!(core.verifier.get(&admin(), &v.id).await.unwrap().status, Status::Pending);
    core.advance(Duration::seconds(1));
    assert_eq!(core.verifier.get(&admin(), &v.id).await.unwrap().status, Status::Expired);
    let check = core.verifier.check(&admin(), &v.id, &code, None).await;
    assert!(matches!(check, Err(VerifyError::NotPending(Status::Expired))), "{check:?}");
    // A start for the number begins afresh.
    assert_ne!(core.start(&to).await.verification.id, v.id);
}

#[tokio::test]
async fn the_sweep_marks_overdue_verifications_expired() {
    let core = Core::new().await;
    let (due, later) = (fresh_number(), fresh_number());
    let v = core.start(&due).await.verification;
    core.advance(Duration::minutes(5));
    let w = core.start(&later).await.verification;
    assert_eq!(core.verifier.expire_due(100).await.unwrap(), 0, "nothing is due yet");
    core.advance(Duration::minutes(5));
    assert_eq!(core.verifier.expire_due(100).await.unwrap(), 1);
    assert_eq!(core.observer.entered(Status::Expired), 1);
    let swept = core.verifier.detail(&admin(), &v.id).await.unwrap().verification;
    assert_eq!((swept.status, swept.expired_at), (Status::Expired, Some(v.expires_at)));
    assert_eq!(core.verifier.get(&admin(), &w.id).await.unwrap().status, Status::Pending);
}

#[tokio::test]
async fn cancel_ends_a_pending_verification_once() {
    let core = Core::new().await;
    let to = fresh_number();
    let v = core.start(&to).await.verification;
    let code = core.code_for(&to).await;
    let canceled = core.verifier.cancel(&admin(), &v.id).await.unwrap();
    assert_eq!(canceled.status, Status::Canceled);
    let again = core.verifier.cancel(&admin(), &v.id).await;
    assert!(matches!(again, Err(VerifyError::NotPending(Status::Canceled))), "{again:?}");
    let check = core.verifier.check(&admin(), &v.id, &code, None).await;
    assert!(matches!(check, Err(VerifyError::NotPending(Status::Canceled))), "{check:?}");
    let missing = core.verifier.cancel(&admin(), "VE00000000000000000000000000000000").await;
    assert!(matches!(missing, Err(VerifyError::VerificationNotFound)), "{missing:?}");
}

#[tokio::test]
async fn a_first_send_that_no_provider_takes_fails_the_verification() {
    let core = Core::new().await;
    for mode in [SendMode::Fail, SendMode::Reject] {
        core.sender.set_mode(mode);
        let to = fresh_number();
        let failed = core.verifier.start(&admin(), request(&to)).await;
        let Err(VerifyError::DeliveryFailed { verification_id, .. }) = failed else { panic!("{mode:?}: {failed:?}") };
        assert_eq!(core.sender.count(&to), 1, "the provider was asked");
        assert_eq!(core.verifier.get(&admin(), &verification_id).await.unwrap().status, Status::Failed);
    }
}

#[tokio::test]
async fn check_by_number_uses_the_pending_verification_and_tells_nothing_without_one() {
    let core = Core::new().await;
    let to = fresh_number();
    let none = core.verifier.check_number(&admin(), None, &to, "123456", None).await;
    assert!(matches!(none, Err(VerifyError::NoPendingVerification)), "{none:?}");
    let v = core.start(&to).await.verification;
    let code = core.code_for(&to).await;
    let (checked, outcome) = core.verifier.check_number(&admin(), None, &to, &code, None).await.unwrap();
    assert_eq!((checked.id, outcome), (v.id, CheckOutcome::Approved));
}
