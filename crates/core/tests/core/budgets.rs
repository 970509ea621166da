//! Budgets: counted in the store across verifications and services, in fixed windows that roll
//! over with the clock.
use crate::harness::{Core, admin, for_user_at, fresh_number, request, wrong};
use chrono::Duration;
use phonegate_core::budget::{Budget, Rate};
use phonegate_core::service::ServiceSettings;
use phonegate_core::{CheckOutcome, Started, VerifyError};

fn rates(list: &[&str]) -> Vec<Rate> {
    list.iter().map(|r| r.parse().unwrap()).collect()
}

async fn service(core: &Core, name: &str) {
    core.services.catalog.create_service(&admin(), ServiceSettings { name: name.into(), ..Default::default() }).await.unwrap();
}

async fn start_in(core: &Core, service: &str, to: &str) -> Result<Started, VerifyError> {
    core.verifier.start(&admin(), phonegate_core::StartRequest { service: Some(service.into()), ..request(to) }).await
}

fn over(result: Result<impl std::fmt::Debug, VerifyError>, budget: Budget) -> i64 {
    match result {
        Err(VerifyError::OverBudget { budget: b, retry_after_secs }) if b == budget => retry_after_secs,
        other => panic!("expected {budget:?} to refuse: {other:?}"),
    }
}

#[tokio::test]
async fn sends_to_one_number_are_counted_across_services_until_the_window_rolls_over() {
    let core = Core::with(|s| s.budgets.sends_per_number = rates(&["3/1h"])).await;
    service(&core, "shop").await;
    service(&core, "bank").await;
    let to = fresh_number();
    start_in(&core, "phonegate", &to).await.unwrap();
    start_in(&core, "shop", &to).await.unwrap();
    start_in(&core, "bank", &to).await.unwrap();
    // A new verification or a resend of a pending one: a fourth code either way.
    assert_eq!(over(start_in(&core, "shop", &to).await, Budget::SendsPerNumber), 3600);
    core.advance(Duration::minutes(15));
    assert_eq!(over(start_in(&core, "bank", &to).await, Budget::SendsPerNumber), 2700);
    start_in(&core, "bank", &fresh_number()).await.expect("another number has its own budget");
    assert_eq!(core.sender.count(&to), 3);

    core.advance(Duration::minutes(45));
    start_in(&core, "shop", &to).await.expect("a new window");
}

#[tokio::test]
async fn checks_are_counted_per_end_user_address() {
    let core = Core::with(|s| s.budgets.checks_per_ip = rates(&["3/1h"])).await;
    let to = fresh_number();
    let v = core.start(&to).await.verification;
    let code = core.code_for(&to).await;
    let user = for_user_at("203.0.113.7");
    for _ in 0..3 {
        core.verifier.check(&user, &v.id, &wrong(&code), None).await.unwrap();
    }
    over(core.verifier.check(&user, &v.id, &code, None).await, Budget::ChecksPerIp);
    assert_eq!(core.verifier.get(&admin(), &v.id).await.unwrap().attempts, 3, "a refused check is not an attempt");
    let (_, outcome) = core.verifier.check(&for_user_at("203.0.113.8"), &v.id, &code, None).await.unwrap();
    assert_eq!(outcome, CheckOutcome::Approved);
}

#[tokio::test]
async fn wrong_codes_are_counted_per_number_across_its_verifications() {
    let core = Core::with(|s| s.budgets.failed_checks_per_number = rates(&["4/1h"])).await;
    service(&core, "shop").await;
    let (to, other) = (fresh_number(), fresh_number());
    let first = core.start(&to).await.verification;
    let code = core.code_for(&to).await;
    for _ in 0..3 {
        core.verifier.check(&admin(), &first.id, &wrong(&code), None).await.unwrap();
    }
    let second = start_in(&core, "shop", &to).await.unwrap().verification;
    let shop_code = core.code_after(&to, 1).await;
    let (_, outcome) = core.verifier.check(&admin(), &second.id, &wrong(&shop_code), None).await.unwrap();
    assert_eq!(outcome, CheckOutcome::Rejected { attempts_left: 4 }, "the second has its own attempts");
    // The number's budget is spent: every code is refused alike, the right ones too.
    over(core.verifier.check(&admin(), &second.id, &shop_code, None).await, Budget::FailedChecksPerNumber);
    over(core.verifier.check(&admin(), &first.id, &code, None).await, Budget::FailedChecksPerNumber);
    // Another number is not touched.
    let v = core.start(&other).await.verification;
    let other_code = core.code_for(&other).await;
    assert_eq!(core.verifier.check(&admin(), &v.id, &other_code, None).await.unwrap().1, CheckOutcome::Approved);

    core.advance(Duration::hours(1));
    let third = core.start(&to).await.verification;
    let code = core.code_after(&to, 2).await;
    assert_eq!(core.verifier.check(&admin(), &third.id, &code, None).await.unwrap().1, CheckOutcome::Approved);
}

#[tokio::test]
async fn a_right_code_does_not_spend_the_guess_budget() {
    let core = Core::with(|s| s.budgets.failed_checks_per_number = rates(&["1/1h"])).await;
    let to = fresh_number();
    for n in 0..3 {
        let v = core.start(&to).await.verification;
        let code = core.code_after(&to, n).await;
        assert_eq!(core.verifier.check(&admin(), &v.id, &code, None).await.unwrap().1, CheckOutcome::Approved);
    }
}
