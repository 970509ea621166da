//! E.164 phone numbers: parsed, validated and classified once at the edge (libphonenumber
//! metadata via the `phonenumber` crate), then carried as a trusted newtype.
use phonenumber::{Mode, Type, country, metadata::DATABASE};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// A valid phone number in E.164 form (`+4915123456789`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// For values read back from our own storage, which only ever holds parsed numbers.
    pub fn from_trusted(e164: String) -> Self {
        Self(e164)
    }

    /// A sender's number as gateways report it (E.164, with or without `+`), checked for shape
    /// only: inbound senders are whatever the network says, kind and range rules do not apply.
    pub fn parse_e164_lenient(raw: &str) -> Result<Self, PhoneError> {
        let digits = raw.trim().trim_start_matches('+');
        let n = phonenumber::parse(None, format!("+{digits}")).map_err(|_| PhoneError::NotANumber)?;
        Ok(Self(n.format().mode(Mode::E164).to_string()))
    }

    /// The country calling code with its `+` (`+49`).
    /// Looked up in the numbering-plan metadata by prefix (calling codes are prefix-free), with
    /// no parse: starts and checks ask for it on the hot path.
    pub fn calling_code(&self) -> String {
        let digits = self.0.trim_start_matches('+');
        (1..=3)
            .filter_map(|n| digits.get(..n))
            .find(|p| p.parse::<u16>().ok().and_then(|c| DATABASE.by_code(&c)).is_some())
            .map_or_else(|| self.0.chars().take(2).collect(), |p| format!("+{p}"))
    }

    /// The number masked (`mask`): what a trace or log may show.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }

    /// The ISO 3166 region of the number, when its country code maps to one.
    pub fn region(&self) -> Option<String> {
        let n = phonenumber::parse(None, &self.0).ok()?;
        n.country().id().map(|id| id.as_ref().to_string())
    }
}

/// A number as people other than its holder, logs and traces may see it: the first three
/// characters (the calling code's first digits) and the last three (`+49•••••••789`). Works on
/// any text (a number as typed, not yet parsed).
pub fn mask(number: &str) -> String {
    let n = number.chars().count();
    if n <= 6 {
        return "•".repeat(n);
    }
    let head: String = number.chars().take(3).collect();
    let tail: String = number.chars().skip(n - 3).collect();
    format!("{head}{}{tail}", "•".repeat(n - 6))
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a number is for, as far as its numbering plan tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    Mobile,
    FixedLineOrMobile,
    FixedLine,
    TollFree,
    PremiumRate,
    SharedCost,
    PersonalNumber,
    Voip,
    Pager,
    Uan,
    Voicemail,
    Other,
}

impl NumberKind {
    /// Kinds that can receive a text message: what `PhonePolicy::default` accepts.
    pub const SMS_CAPABLE: [NumberKind; 4] =
        [NumberKind::Mobile, NumberKind::FixedLineOrMobile, NumberKind::PersonalNumber, NumberKind::Voip];

    fn from_type(t: Type) -> Self {
        match t {
            Type::Mobile => Self::Mobile,
            Type::FixedLineOrMobile => Self::FixedLineOrMobile,
            Type::FixedLine => Self::FixedLine,
            Type::TollFree => Self::TollFree,
            Type::PremiumRate => Self::PremiumRate,
            Type::SharedCost => Self::SharedCost,
            Type::PersonalNumber => Self::PersonalNumber,
            Type::Voip => Self::Voip,
            Type::Pager => Self::Pager,
            Type::Uan => Self::Uan,
            Type::Voicemail => Self::Voicemail,
            _ => Self::Other,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::FixedLineOrMobile => "fixed_line_or_mobile",
            Self::FixedLine => "fixed_line",
            Self::TollFree => "toll_free",
            Self::PremiumRate => "premium_rate",
            Self::SharedCost => "shared_cost",
            Self::PersonalNumber => "personal_number",
            Self::Voip => "voip",
            Self::Pager => "pager",
            Self::Uan => "uan",
            Self::Voicemail => "voicemail",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("this is not a phone number")]
    NotANumber,
    #[error("the number has no valid country code; use the international format (+49…) or set a default region")]
    InvalidCountryCode,
    #[error("the number is too short")]
    TooShort,
    #[error("the number is too long")]
    TooLong,
    #[error("the number is not in an assigned range of its country's numbering plan")]
    Unassigned,
    #[error("{} numbers cannot receive verification messages", .0.as_str())]
    KindNotAllowed(NumberKind),
    /// A costly or abused range (satellite, international networks) or a country not allowed.
    #[error("numbers in this range or country cannot receive verification messages")]
    DestinationNotAllowed,
}

impl PhoneError {
    /// Stable machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotANumber => "phone_number_invalid",
            Self::InvalidCountryCode => "phone_number_country_invalid",
            Self::TooShort => "phone_number_too_short",
            Self::TooLong => "phone_number_too_long",
            Self::Unassigned => "phone_number_unassigned",
            Self::KindNotAllowed(_) => "phone_number_type_not_allowed",
            Self::DestinationNotAllowed => "phone_number_destination_not_allowed",
        }
    }
}

/// How raw input becomes a `PhoneNumber`: the region assumed for national formats and the
/// number kinds accepted.
#[derive(Debug, Clone)]
pub struct PhonePolicy {
    pub default_region: Option<country::Id>,
    pub allowed_kinds: Vec<NumberKind>,
    /// E.164 prefixes no message goes to (`+881`…).
    pub denied_prefixes: Vec<String>,
    /// ISO 3166 regions messages may go to; empty: every region not denied.
    pub allowed_regions: Vec<String>,
    pub denied_regions: Vec<String>,
    /// Landlines may be called with a code (never texted): on by default.
    pub voice_landlines: bool,
}

/// Ranges refused by default: satellite (Inmarsat +870, Global Mobile Satellite +881) and
/// international networks (+882, +883), favourites of SMS pumping and billed at premium rates.
pub const DENIED_PREFIXES: [&str; 4] = ["+870", "+881", "+882", "+883"];

impl Default for PhonePolicy {
    fn default() -> Self {
        Self {
            default_region: None,
            allowed_kinds: NumberKind::SMS_CAPABLE.to_vec(),
            denied_prefixes: DENIED_PREFIXES.iter().map(|p| p.to_string()).collect(),
            allowed_regions: Vec::new(),
            denied_regions: Vec::new(),
            voice_landlines: true,
        }
    }
}

/// Parses an ISO 3166-1 alpha-2 region code ("DE", "us").
pub fn parse_region(code: &str) -> Option<country::Id> {
    country::Id::from_str(&code.to_ascii_uppercase()).ok()
}

impl PhonePolicy {
    pub fn parse(&self, raw: &str) -> Result<PhoneNumber, PhoneError> {
        let (number, kind) = self.classify(raw)?;
        if !self.allowed_kinds.contains(&kind) {
            return Err(PhoneError::KindNotAllowed(kind));
        }
        Ok(number)
    }

    /// Whether a code may go to a number of `kind` by `channel`: a call also to a landline
    /// (unless `voice_landlines` is off), anything else only to the kinds allowed.
    pub fn accepts(&self, channel: crate::model::workflow::Channel, kind: NumberKind) -> bool {
        use crate::model::workflow::Channel;
        match channel {
            Channel::Email => false,
            Channel::Voice => self.allowed_kinds.contains(&kind) || (self.voice_landlines && kind == NumberKind::FixedLine),
            _ => self.allowed_kinds.contains(&kind),
        }
    }

    /// `parse`'s checks but the kind's, and the kind: which channels may reach it is the caller's
    /// rule (`accepts`).
    pub fn classify(&self, raw: &str) -> Result<(PhoneNumber, NumberKind), PhoneError> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 64 || raw.chars().any(|c| c.is_alphabetic()) {
            return Err(PhoneError::NotANumber);
        }
        let number = phonenumber::parse(self.default_region, raw).map_err(|e| match e {
            phonenumber::ParseError::InvalidCountryCode => PhoneError::InvalidCountryCode,
            phonenumber::ParseError::TooShortAfterIdd | phonenumber::ParseError::TooShortNsn => PhoneError::TooShort,
            phonenumber::ParseError::TooLong => PhoneError::TooLong,
            _ => PhoneError::NotANumber,
        })?;
        if !number.is_valid() {
            return Err(length_error(&number).unwrap_or(PhoneError::Unassigned));
        }
        let e164 = number.format().mode(Mode::E164).to_string();
        if self.denied_prefixes.iter().any(|p| e164.starts_with(p.as_str())) {
            return Err(PhoneError::DestinationNotAllowed);
        }
        let region = number.country().id().map(|id| id.as_ref().to_string()).unwrap_or_default();
        let listed = |list: &[String]| list.iter().any(|r| r.eq_ignore_ascii_case(&region));
        if listed(&self.denied_regions) || (!self.allowed_regions.is_empty() && !listed(&self.allowed_regions)) {
            return Err(PhoneError::DestinationNotAllowed);
        }
        let kind = NumberKind::from_type(number.number_type(&DATABASE));
        Ok((PhoneNumber(e164), kind))
    }

    /// `raw` in E.164 as this policy reads it (the default region for a national format), by its
    /// shape alone: no validity, kind or range rule. Only for matching configured test numbers,
    /// which need not be assigned numbers.
    pub fn normalize(&self, raw: &str) -> Option<PhoneNumber> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 64 || raw.chars().any(|c| c.is_alphabetic()) {
            return None;
        }
        let number = phonenumber::parse(self.default_region, raw).ok()?;
        Some(PhoneNumber(number.format().mode(Mode::E164).to_string()))
    }
}

/// Distinguishes "too short"/"too long" from "unassigned" for a number that failed validation.
fn length_error(number: &phonenumber::PhoneNumber) -> Option<PhoneError> {
    let metas = DATABASE.by_code(&number.code().value())?;
    // The crate leaves the general descriptor's lengths empty; take those of the concrete types.
    let lengths: Vec<u16> = metas
        .iter()
        .flat_map(|m| [m.descriptors().mobile(), m.descriptors().fixed_line()])
        .flatten()
        .flat_map(|d| d.possible_length().iter().copied())
        .collect();
    let national = number.national();
    let len = (national.value().checked_ilog10().unwrap_or(0) + 1) as u16 + national.zeros() as u16;
    let (min, max) = (lengths.iter().min()?, lengths.iter().max()?);
    if len < *min {
        Some(PhoneError::TooShort)
    } else if len > *max {
        Some(PhoneError::TooLong)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(region: Option<&str>) -> PhonePolicy {
        PhonePolicy { default_region: region.and_then(parse_region), ..Default::default() }
    }

    #[test]
    fn international_and_national_formats_normalize_to_e164() {
        assert_eq!(policy(None).parse("+49 151 23456789").unwrap().as_str(), "+4915123456789");
        assert_eq!(policy(Some("DE")).parse("0151 2345 6789").unwrap().as_str(), "+4915123456789");
        assert_eq!(policy(Some("US")).parse("(201) 555-0123").unwrap().as_str(), "+12015550123");
    }

    #[test]
    fn national_format_without_region_is_refused() {
        assert_eq!(policy(None).parse("0151 23456789"), Err(PhoneError::InvalidCountryCode));
    }

    #[test]
    fn bad_numbers_get_specific_errors() {
        let p = policy(None);
        assert_eq!(p.parse("hello"), Err(PhoneError::NotANumber));
        assert_eq!(p.parse(""), Err(PhoneError::NotANumber));
        assert_eq!(p.parse("+1 201 555"), Err(PhoneError::TooShort));
        assert_eq!(p.parse("+49 151 2345678901234567"), Err(PhoneError::TooLong));
        assert!(matches!(p.parse("+1 201 055 0123"), Err(PhoneError::Unassigned)));
    }

    #[test]
    fn satellite_and_international_network_ranges_are_refused_by_default() {
        let p = policy(None);
        for n in ["+881 6 12345678", "+882 16 12345678", "+883 5100 12345678", "+870 772 123456"] {
            // Each is refused, as out of range if not as a denied destination.
            assert!(p.parse(n).is_err(), "{n}");
            if phonenumber::parse(None, n).is_ok_and(|parsed| parsed.is_valid()) {
                assert_eq!(p.parse(n), Err(PhoneError::DestinationNotAllowed), "{n}");
            }
        }
        assert_eq!(p.parse("+8816 12345678").map_err(|e| e.code()).err().unwrap_or("accepted"), "phone_number_destination_not_allowed");
    }

    #[test]
    fn calling_codes_come_from_the_numbering_plan() {
        for (n, code) in [("+4915123456789", "+49"), ("+12015550123", "+1"), ("+33612345678", "+33"), ("+3584573975000", "+358")] {
            assert_eq!(PhoneNumber::from_trusted(n.into()).calling_code(), code, "{n}");
        }
    }

    #[test]
    fn countries_can_be_allowed_or_denied() {
        let only_de = PhonePolicy { allowed_regions: vec!["de".into()], ..Default::default() };
        assert!(only_de.parse("+4915123456789").is_ok());
        assert_eq!(only_de.parse("+33612345678"), Err(PhoneError::DestinationNotAllowed));
        let no_fr = PhonePolicy { denied_regions: vec!["FR".into()], ..Default::default() };
        assert_eq!(no_fr.parse("+33612345678"), Err(PhoneError::DestinationNotAllowed));
        assert!(no_fr.parse("+4915123456789").is_ok());
    }

    #[test]
    fn premium_rate_is_refused_by_default_and_allowed_by_policy() {
        let p = policy(None);
        assert_eq!(p.parse("+49 900 1234567"), Err(PhoneError::KindNotAllowed(NumberKind::PremiumRate)));
        let open = PhonePolicy { allowed_kinds: vec![NumberKind::PremiumRate], ..Default::default() };
        assert_eq!(open.parse("+49 900 1234567").unwrap().as_str(), "+499001234567");
    }
}
