//! Channels and workflows: the ways a code travels, and the ordered steps one verification's
//! single code takes (an SMS, then a call if the code was not checked within the step's time…).
use crate::model::invalid::{Field, Invalid};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    /// A phone call that speaks the code.
    Voice,
    /// A WhatsApp authentication template with a copy-code button.
    Whatsapp,
    /// An e-mail to an address (the verification's `to` is an address).
    Email,
    /// SIM-based: the operator confirms the device holds the number (`silent.rs`); no code.
    Silent,
    /// Silent where the device's operator is covered, else (or when it fails) the same
    /// verification continues with the first step of the service's workflow that fits the number.
    Auto,
}

impl Channel {
    pub const ALL: [Channel; 6] = [Self::Sms, Self::Voice, Self::Whatsapp, Self::Email, Self::Silent, Self::Auto];
    /// The channels a code travels by in a message (a workflow's steps).
    pub const MESSAGE: [Channel; 4] = [Self::Sms, Self::Voice, Self::Whatsapp, Self::Email];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Voice => "voice",
            Self::Whatsapp => "whatsapp",
            Self::Email => "email",
            Self::Silent => "silent",
            Self::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether a code travels by this channel in a message.
    pub fn carries_code(self) -> bool {
        Self::MESSAGE.contains(&self)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds of a step's time before the next step starts, in seconds.
pub const MIN_STEP_SECS: u32 = 15;
pub const MAX_STEP_SECS: u32 = 900;
/// A step's time when none is given.
pub const DEFAULT_STEP_SECS: u32 = 120;
/// Steps a workflow may have.
pub const MAX_STEPS: usize = 5;

/// One step: a channel, and how long the code may wait to be checked before the next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub channel: Channel,
    pub timeout_secs: u32,
}

impl Step {
    pub fn new(channel: Channel, timeout_secs: Option<u32>) -> Result<Self, Invalid> {
        if !channel.carries_code() {
            return Err(Invalid::new(Field::Workflow, format!("`{channel}` cannot be a step: use sms, voice, whatsapp or email")));
        }
        let timeout_secs = timeout_secs.unwrap_or(DEFAULT_STEP_SECS);
        if !(MIN_STEP_SECS..=MAX_STEP_SECS).contains(&timeout_secs) {
            return Err(Invalid::new(Field::TimeoutSecs, format!("must be between {MIN_STEP_SECS} and {MAX_STEP_SECS} seconds")));
        }
        Ok(Self { channel, timeout_secs })
    }
}

/// The ordered steps of a verification: at least one, at most `MAX_STEPS`; an address takes
/// only e-mail steps and a number no e-mail step. In configuration it is written
/// `"sms:60,voice:120"` (`encode`/`parse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Workflow(Vec<Step>);

impl TryFrom<String> for Workflow {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<Workflow> for String {
    fn from(w: Workflow) -> String {
        w.encode()
    }
}

impl Workflow {
    pub fn new(steps: Vec<Step>) -> Result<Self, Invalid> {
        if steps.is_empty() || steps.len() > MAX_STEPS {
            return Err(Invalid::new(Field::Workflow, format!("must have 1 to {MAX_STEPS} steps")));
        }
        let emails = steps.iter().filter(|s| s.channel == Channel::Email).count();
        if emails != 0 && emails != steps.len() {
            return Err(Invalid::new(Field::Workflow, "e-mail steps go to an address, the others to a number: do not mix them"));
        }
        Ok(Self(steps))
    }

    /// One step by `channel`.
    pub fn single(channel: Channel) -> Self {
        Self(vec![Step { channel, timeout_secs: DEFAULT_STEP_SECS }])
    }

    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    pub fn step(&self, i: u32) -> Option<&Step> {
        self.0.get(i as usize)
    }

    pub fn first(&self) -> Step {
        self.0[0]
    }

    /// Whether any step is by `channel`.
    pub fn uses(&self, channel: Channel) -> bool {
        self.0.iter().any(|s| s.channel == channel)
    }

    /// The steps a recipient can take, in order (`fits`: a landline keeps only its calls, see
    /// `PhonePolicy::accepts`); none when no step fits.
    pub fn fitting(&self, fits: impl Fn(Channel) -> bool) -> Option<Self> {
        let steps: Vec<Step> = self.0.iter().copied().filter(|s| fits(s.channel)).collect();
        (!steps.is_empty()).then_some(Self(steps))
    }

    /// The seconds from the first step's start to the last step's.
    pub fn lead_secs(&self) -> i64 {
        self.0.iter().rev().skip(1).map(|s| i64::from(s.timeout_secs)).sum()
    }

    /// Stored and configured as `sms:60,voice:120`.
    pub fn encode(&self) -> String {
        self.0.iter().map(|s| format!("{}:{}", s.channel, s.timeout_secs)).collect::<Vec<_>>().join(",")
    }

    /// Reads `encode`'s form; a step without `:secs` takes the default time.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let steps = s
            .split(',')
            .map(|part| {
                let (channel, secs) = match part.trim().split_once(':') {
                    Some((c, t)) => {
                        (c, Some(t.trim().parse::<u32>().map_err(|_| Invalid::new(Field::TimeoutSecs, "must be a number of seconds"))?))
                    }
                    None => (part.trim(), None),
                };
                let channel = Channel::parse(channel.trim())
                    .ok_or_else(|| Invalid::new(Field::Workflow, format!("`{}` is not a channel", channel.trim())))?;
                Step::new(channel, secs)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(steps)
    }
}

impl Default for Workflow {
    fn default() -> Self {
        Self::single(Channel::Sms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflows_parse_validate_and_encode() {
        let w = Workflow::parse("whatsapp:60, sms:60,voice").unwrap();
        assert_eq!(w.encode(), "whatsapp:60,sms:60,voice:120");
        assert_eq!(w.lead_secs(), 120);
        assert_eq!(Workflow::parse(&w.encode()).unwrap(), w);
        assert_eq!(Workflow::parse("sms:14").unwrap_err().field, Field::TimeoutSecs);
        assert_eq!(Workflow::parse("sms:901").unwrap_err().field, Field::TimeoutSecs);
        assert_eq!(Workflow::parse("silent").unwrap_err().field, Field::Workflow);
        assert_eq!(Workflow::parse("sms,email").unwrap_err().field, Field::Workflow);
        assert_eq!(Workflow::parse("sms,sms,sms,sms,sms,sms").unwrap_err().field, Field::Workflow);
        assert_eq!(Workflow::parse("fax").unwrap_err().field, Field::Workflow);
    }

    #[test]
    fn a_landline_keeps_only_its_calls() {
        use crate::model::phone::{NumberKind, PhonePolicy};
        let p = PhonePolicy::default();
        let w = Workflow::parse("sms:60,whatsapp:60,voice:60").unwrap();
        assert_eq!(w.fitting(|c| p.accepts(c, NumberKind::FixedLine)).unwrap().encode(), "voice:60");
        assert_eq!(w.fitting(|c| p.accepts(c, NumberKind::Mobile)).unwrap(), w);
        assert!(Workflow::single(Channel::Sms).fitting(|c| p.accepts(c, NumberKind::FixedLine)).is_none());
        for costly in [NumberKind::PremiumRate, NumberKind::SharedCost] {
            assert!(!p.accepts(Channel::Voice, costly));
        }
        let no_landlines = PhonePolicy { voice_landlines: false, ..PhonePolicy::default() };
        assert!(!no_landlines.accepts(Channel::Voice, NumberKind::FixedLine));
    }
}
