//! Vonage Verify v1's workflows, as its "Workflows and Events" guide gives them, and the timing
//! parameters of its "Change the Event Timings" guide, translated into a core `Workflow` and code
//! lifetime. TTS (a text-to-speech call) is phonegate's `voice`.
//!
//! | `workflow_id` | events and the wait after each (s) |
//! |---|---|
//! | 1 (default) | SMS 125, TTS 180, TTS 300 |
//! | 2 | SMS 125, SMS 180, TTS 300 |
//! | 3 | TTS 150, TTS 150 |
//! | 4 | SMS 120, SMS 180 |
//! | 5 | SMS 125, TTS 300 |
//! | 6 | SMS 300 |
//! | 7 | TTS 300 |
//!
//! `next_event_wait` (60–900 s), when given, is every wait. The request ends when the last
//! event's wait is over. `pin_expiry` (60–3600 s, default 300) is the PIN's life; given with
//! `next_event_wait`, it must be a multiple of it, or Vonage takes `next_event_wait` instead.
//!
//! Vonage generates a new PIN for an event that comes after the PIN expired (with the default
//! timings, the third event of workflows 1 and 2). phonegate keeps one code per verification: the
//! later events send the same code again, and it stays valid until the request would end on
//! Vonage (the core makes a verification live until its last step's time is over). So a code may
//! be accepted longer than `pin_expiry` — never longer than the request Vonage would have kept
//! open — and every message the user gets carries a code that works.
use phonegate_core::workflow::{Channel, Step, Workflow};

/// Vonage's default PIN lifetime.
pub const DEFAULT_PIN_EXPIRY: i64 = 300;

/// The events of a workflow and Vonage's default wait after each.
fn events(workflow_id: i64) -> &'static [(Channel, u32)] {
    use Channel::{Sms, Voice};
    match workflow_id {
        2 => &[(Sms, 125), (Sms, 180), (Voice, 300)],
        3 => &[(Voice, 150), (Voice, 150)],
        4 => &[(Sms, 120), (Sms, 180)],
        5 => &[(Sms, 125), (Voice, 300)],
        6 => &[(Sms, 300)],
        7 => &[(Voice, 300)],
        _ => &[(Sms, 125), (Voice, 180), (Voice, 300)],
    }
}

/// The core workflow of `workflow_id` (1–7, default 1), every wait `next_event_wait` when given
/// (both already checked against Vonage's ranges).
pub fn workflow(workflow_id: Option<i64>, next_event_wait: Option<i64>) -> Workflow {
    let wait = next_event_wait.and_then(|w| u32::try_from(w).ok());
    let steps = events(workflow_id.unwrap_or(1))
        .iter()
        .map(|&(channel, default)| Step::new(channel, Some(wait.unwrap_or(default))).expect("Vonage's waits are valid step times"))
        .collect();
    Workflow::new(steps).expect("Vonage's workflows are valid")
}

/// The PIN's lifetime: `pin_expiry` (default 300 s), or `next_event_wait` when both are given
/// and `pin_expiry` is not a multiple of it.
pub fn pin_expiry(pin_expiry: Option<i64>, next_event_wait: Option<i64>) -> i64 {
    match (pin_expiry, next_event_wait) {
        (Some(pin), Some(wait)) if wait > 0 && pin % wait != 0 => wait,
        (Some(pin), _) => pin,
        (None, _) => DEFAULT_PIN_EXPIRY,
    }
}

/// How Vonage's search names an event's channel (`sms` and `tts`, phonegate's own names for the
/// channels Verify v1 lacks).
pub fn event_type(channel: Channel) -> &'static str {
    match channel {
        Channel::Voice => "tts",
        other => other.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seven_workflows_with_vonages_timings() {
        let cases = [
            (None, "sms:125,voice:180,voice:300"),
            (Some(1), "sms:125,voice:180,voice:300"),
            (Some(2), "sms:125,sms:180,voice:300"),
            (Some(3), "voice:150,voice:150"),
            (Some(4), "sms:120,sms:180"),
            (Some(5), "sms:125,voice:300"),
            (Some(6), "sms:300"),
            (Some(7), "voice:300"),
        ];
        for (id, expected) in cases {
            assert_eq!(workflow(id, None).encode(), expected, "{id:?}");
        }
        assert_eq!(workflow(Some(2), Some(60)).encode(), "sms:60,sms:60,voice:60");
        assert_eq!(workflow(Some(7), Some(900)).encode(), "voice:900");
    }

    #[test]
    fn pin_expiry_as_vonage_states_it() {
        assert_eq!(pin_expiry(None, None), 300);
        assert_eq!(pin_expiry(None, Some(120)), 300);
        assert_eq!(pin_expiry(Some(360), Some(120)), 360, "a multiple: kept");
        assert_eq!(pin_expiry(Some(200), Some(120)), 120, "not a multiple: next_event_wait");
        assert_eq!(pin_expiry(Some(90), None), 90);
    }

    #[test]
    fn events_are_named_as_vonage_names_them() {
        assert_eq!((event_type(Channel::Sms), event_type(Channel::Voice)), ("sms", "tts"));
    }
}
