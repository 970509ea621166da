//! Unit and property tests of the state machine.
use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn pending() -> Verification {
    Verification {
        id: "VE1".into(),
        service_id: "VA1".into(),
        to: Recipient::from_trusted("+4915123456789".into()),
        channel: Channel::Sms,
        workflow: Workflow::default(),
        step: 0,
        step_due_at: None,
        locale: "en".into(),
        status: Status::Pending,
        code_length: 6,
        code_digest: vec![],
        code_sealed: vec![],
        attempts: 0,
        max_attempts: 5,
        brand: None,
        app_hash: None,
        psd2: None,
        email_from: None,
        send_digits: None,
        sends: 1,
        send_window_started_at: t0(),
        created_at: t0(),
        updated_at: t0(),
        expires_at: t0() + Duration::minutes(10),
        approved_at: None,
        canceled_at: None,
        expired_at: None,
        max_attempts_reached_at: None,
        failed_at: None,
        failure_reason: None,
        test: false,
        manual_steps: false,
        key_id: None,
        texts: None,
        version: 0,
    }
}

const L: Limits = Limits { max_attempts: 5, max_sends: 5, send_window: Duration::minutes(10) };

#[test]
fn a_workflow_moves_step_by_step_and_refuses_past_its_last() {
    let mut v = pending();
    v.workflow = Workflow::parse("sms:60,voice:30,voice:90").unwrap();
    v.step_due_at = Verification::due_after(&v.workflow, 0, t0());
    assert_eq!(v.step_due_at, Some(t0() + Duration::seconds(60)));
    let at = t0() + Duration::seconds(61);
    assert_eq!(v.next_step(at).map(|s| s.channel), Ok(Channel::Voice));
    assert_eq!((v.step, v.step_due_at), (1, Some(at + Duration::seconds(30))));
    assert_eq!(v.next_step(at).map(|s| s.timeout_secs), Ok(90));
    assert_eq!((v.step, v.step_due_at, v.step_channel()), (2, None, Channel::Voice));
    assert_eq!(v.next_step(at), Err(NextRefusal::NoStepLeft));
    v.cancel(at).unwrap();
    assert_eq!(v.next_step(at), Err(NextRefusal::NotPending(Status::Canceled)));
}

#[test]
fn right_code_approves_once() {
    let mut v = pending();
    let at = t0() + Duration::seconds(5);
    assert_eq!(v.check(true, at), CheckOutcome::Approved);
    assert_eq!((v.status, v.approved_at, v.status_changed_at()), (Status::Approved, Some(at), at));
    assert_eq!(v.check(true, at), CheckOutcome::NotPending(Status::Approved));
    assert_eq!(v.attempts, 1);
}

#[test]
fn five_wrong_codes_lock_and_then_the_right_code_is_refused() {
    let mut v = pending();
    for left in (1..5).rev() {
        assert_eq!(v.check(false, t0()), CheckOutcome::Rejected { attempts_left: left });
    }
    assert_eq!(v.check(false, t0()), CheckOutcome::LockedOut);
    assert_eq!(v.status, Status::MaxAttemptsReached);
    assert!(v.max_attempts_reached_at.is_some());
    assert_eq!(v.check(true, t0()), CheckOutcome::NotPending(Status::MaxAttemptsReached));
    assert_eq!(v.attempts, 5);
}

#[test]
fn expiry_is_reached_at_the_deadline_and_stamped_with_it() {
    let mut v = pending();
    let deadline = v.expires_at;
    assert_eq!(v.status_at(deadline - Duration::milliseconds(1)), Status::Pending);
    assert_eq!(v.check(true, deadline), CheckOutcome::NotPending(Status::Expired));
    assert_eq!((v.status, v.expired_at, v.attempts), (Status::Expired, Some(deadline), 0));
}

#[test]
fn a_lower_per_verification_limit_locks_sooner() {
    let mut v = Verification { max_attempts: 3, ..pending() };
    assert_eq!(v.check(false, t0()), CheckOutcome::Rejected { attempts_left: 2 });
    assert_eq!(v.check(false, t0()), CheckOutcome::Rejected { attempts_left: 1 });
    assert_eq!(v.check(false, t0()), CheckOutcome::LockedOut);
}

#[test]
fn out_of_band_approval_only_from_pending() {
    let mut v = pending();
    assert_eq!(v.approve_out_of_band(t0()), Ok(()));
    assert_eq!((v.status, v.attempts), (Status::Approved, 0));
    assert_eq!(v.approve_out_of_band(t0()), Err(Status::Approved));
    let mut late = pending();
    assert_eq!(late.approve_out_of_band(late.expires_at), Err(Status::Expired));
}

#[test]
fn cancel_only_from_pending() {
    let mut v = pending();
    assert_eq!(v.cancel(t0()), Ok(()));
    assert_eq!(v.canceled_at, Some(t0()));
    assert_eq!(v.cancel(t0()), Err(Status::Canceled));
    assert_eq!(v.check(true, t0()), CheckOutcome::NotPending(Status::Canceled));
}

#[test]
fn a_minimum_age_holds_back_a_cancel() {
    let mut v = pending();
    let min = Duration::seconds(30);
    assert_eq!(v.cancel_once_older_than(t0() + Duration::seconds(29), min), Err(CancelRefusal::TooEarly));
    assert_eq!(v.status, Status::Pending);
    assert_eq!(v.cancel_once_older_than(t0() + min, min), Ok(()));
    assert_eq!(v.cancel_once_older_than(t0() + min, min), Err(CancelRefusal::NotPending(Status::Canceled)));
}

#[test]
fn fail_records_reason_only_from_pending() {
    let mut v = pending();
    v.fail(t0(), "all providers refused".into());
    assert_eq!((v.status, v.failure_reason.as_deref()), (Status::Failed, Some("all providers refused")));
    let mut approved = pending();
    approved.check(true, t0());
    approved.fail(t0(), "late".into());
    assert_eq!(approved.status, Status::Approved);
}

#[test]
fn sends_are_limited_per_window_and_the_window_slides() {
    let mut v = pending();
    for _ in 1..5 {
        assert_eq!(v.register_send(t0(), &L), Ok(()));
    }
    assert_eq!(v.register_send(t0(), &L), Err(SendRefusal::TooManySends));
    v.expires_at = t0() + Duration::hours(1);
    assert_eq!(v.register_send(t0() + Duration::minutes(10), &L), Ok(()));
    assert_eq!(v.sends, 1);
}

#[test]
fn no_send_after_expiry() {
    let mut v = pending();
    assert_eq!(v.register_send(v.expires_at, &L), Err(SendRefusal::NotPending(Status::Expired)));
}

#[derive(Debug, Clone)]
enum Op {
    Check(bool),
    Send,
    Cancel,
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![any::<bool>().prop_map(Op::Check), Just(Op::Send), Just(Op::Cancel), (0i64..400).prop_map(Op::Advance),]
}

proptest! {
    /// Whatever happens: attempts never exceed the limit, at most one approval, a final status
    /// never changes again, and the status matches its timestamp.
    #[test]
    fn invariants_hold_for_any_sequence(ops in proptest::collection::vec(op(), 0..40)) {
        let mut v = pending();
        let mut now = t0();
        let mut approvals = 0;
        for op in ops {
            let before = v.status;
            match op {
                Op::Check(right) => if v.check(right, now) == CheckOutcome::Approved { approvals += 1 },
                Op::Send => { let _ = v.register_send(now, &L); }
                Op::Cancel => { let _ = v.cancel(now); }
                Op::Advance(s) => now += Duration::seconds(s),
            }
            prop_assert!(v.attempts <= L.max_attempts);
            prop_assert!(v.sends <= L.max_sends);
            prop_assert!(approvals <= 1);
            if before != Status::Pending { prop_assert_eq!(v.status, before); }
            let stamped = match v.status {
                Status::Pending => true,
                Status::Approved => v.approved_at.is_some(),
                Status::Canceled => v.canceled_at.is_some(),
                Status::Expired => v.expired_at == Some(v.expires_at),
                Status::MaxAttemptsReached => v.max_attempts_reached_at.is_some(),
                Status::Failed => v.failed_at.is_some(),
            };
            prop_assert!(stamped);
        }
    }
}
