//! Test numbers on the core: the fixed code, nothing ever given to the sender (first send,
//! resend, `auto`, invitations), no send budget for real flows and decoys alike, and the
//! metrics' view of them.
use crate::harness::{Core, admin, end_user, fresh_number, request};
use phonegate_core::accounts::SessionKind;
use phonegate_core::accounts::flows::{LoginRequest, SignupRequest};
use phonegate_core::budget::Rate;
use phonegate_core::test_numbers::TestNumbers;
use phonegate_core::{Channel, CheckOutcome, Status, VerifyError};
use std::collections::BTreeMap;

const TEST: &str = "+15005550006";
const CODE: &str = "123456";

async fn core_with_test_number(configure: impl FnOnce(&mut crate::harness::Setup)) -> Core {
    Core::with(|s| {
        let global: BTreeMap<String, String> = [(TEST.to_string(), CODE.to_string())].into();
        s.test_numbers = TestNumbers::new(&global, &BTreeMap::new()).unwrap();
        s.silent_simulator = true;
        configure(s);
    })
    .await
}

#[tokio::test]
async fn a_test_number_gets_its_fixed_code_and_nothing_is_given_to_the_sender() {
    let core = core_with_test_number(|_| {}).await;
    let started = core.start(TEST).await;
    assert!(started.verification.test && started.message_id.is_some());
    assert_eq!(started.verification.code_length, 6);
    let again = core.start(TEST).await;
    assert!(again.resent && again.verification.id == started.verification.id);
    let (v, outcome) = core.verifier.check(&admin(), &started.verification.id, CODE, None).await.unwrap();
    assert_eq!((v.status, outcome), (Status::Approved, CheckOutcome::Approved));

    // `auto`: no silent provider is asked, the code goes on at once.
    let auto = core.verifier.start(&admin(), phonegate_core::StartRequest { channel: Some(Channel::Auto), ..request(TEST) }).await.unwrap();
    assert!(auto.verification.test && auto.check_url.is_none() && auto.message_id.is_some());
    assert_eq!(core.verifier.check(&admin(), &auto.verification.id, CODE, None).await.unwrap().1, CheckOutcome::Approved);
    // `silent` has nothing to check.
    let silent = core.verifier.start(&admin(), phonegate_core::StartRequest { channel: Some(Channel::Silent), ..request(TEST) }).await;
    assert!(matches!(&silent, Err(VerifyError::InvalidParameter { field, .. }) if field.as_str() == "channel"), "{silent:?}");

    assert_eq!(core.queued_for(TEST).await, 3, "three messages recorded");
    assert_eq!(core.sender.count(TEST), 0, "none given to a provider");
    assert_eq!(core.observer.test_numbers(), ["started", "resent", "approved", "started", "approved"]);
    assert!(core.observer.conversions().is_empty(), "test numbers are no conversions");

    // Any other number is sent to as ever.
    let real = fresh_number();
    let v = core.start(&real).await.verification;
    assert!(!v.test);
    core.code_for(&real).await;
}

#[tokio::test]
async fn a_test_numbers_logins_cost_no_send_budget_whether_the_account_exists_or_not() {
    let core = core_with_test_number(|s| s.budgets.sends_per_number = vec!["1/1h".parse::<Rate>().unwrap()]).await;
    let login = || LoginRequest::Phone { phone: TEST.into(), locale: None, silent: false };
    // No account: decoys, each costing what a real flow would.
    for _ in 0..3 {
        core.accounts.login(&end_user("198.51.100.7"), login()).await.expect("a decoy is no send");
    }
    // An account: real flows, the same.
    let signup = SignupRequest { username: "tester".into(), phone: TEST.into(), email: None, password: None, locale: None, silent: false };
    let flow = core.accounts.signup(&end_user("198.51.100.7"), signup).await.unwrap();
    core.accounts.verify(&end_user("198.51.100.7"), &flow.flow_id, CODE, SessionKind::App, None, None).await.unwrap();
    for _ in 0..3 {
        let flow = core.accounts.login(&end_user("198.51.100.7"), login()).await.expect("a test number's login is no send");
        core.accounts.verify(&end_user("198.51.100.7"), &flow.flow_id, CODE, SessionKind::App, None, None).await.unwrap();
    }
    let real = fresh_number();
    let real_login = || LoginRequest::Phone { phone: real.clone(), locale: None, silent: false };
    core.accounts.login(&end_user("198.51.100.7"), real_login()).await.unwrap();
    let refused = core.accounts.login(&end_user("198.51.100.7"), real_login()).await;
    assert!(matches!(refused, Err(VerifyError::OverBudget { .. })), "{refused:?}");
    assert_eq!(core.sender.count(TEST), 0);
}
