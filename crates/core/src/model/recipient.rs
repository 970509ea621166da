//! Whom a code goes to: a phone number, or an e-mail address (the `email` channel).
use crate::model::invalid::{Field, Invalid};
use crate::model::phone::{PhoneNumber, mask};
use serde::Serialize;

/// A valid e-mail address: an RFC 5322 dot-atom local part (UTF-8 letters allowed), the domain in
/// its ASCII (IDNA) form, all in lower case (the form budgets count).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

/// RFC 5321's limits: 64 octets of local part, 254 in all.
const MAX_LOCAL: usize = 64;
const MAX_ADDRESS: usize = 254;

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new(Field::To, "must be an e-mail address like name@example.com");
        // One canonical form, so that spellings of one mailbox share its budgets: lower case
        // (every mail provider of note treats the local part so).
        let raw = raw.trim().to_lowercase();
        let (local, domain) = raw.rsplit_once('@').ok_or_else(bad)?;
        // A dot-atom (RFC 5322, with RFC 6531's UTF-8): no quoted local parts, no specials.
        let atom = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        let dots_ok = !local.starts_with('.') && !local.ends_with('.') && !local.contains("..");
        if local.is_empty() || local.len() > MAX_LOCAL || !dots_ok || !local.chars().all(|c| atom(c) || c == '.') {
            return Err(bad());
        }
        let domain = idna::domain_to_ascii(domain.trim_end_matches('.')).map_err(|_| bad())?;
        // A domain of its own on the Internet: at least one dot, labels of letters, digits and hyphens.
        let labels_ok = domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !domain.contains('.') || !labels_ok {
            return Err(bad());
        }
        let address = format!("{local}@{domain}");
        if address.len() > MAX_ADDRESS || !email_address::EmailAddress::is_valid(&address) {
            return Err(bad());
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain (`example.com`): what the per-domain budget counts.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// What a log or trace may show: the local part's first letter and the domain.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or((&self.0, ""));
        format!("{}•••@{domain}", local.chars().next().unwrap_or('•'))
    }
}

/// A verification's or message's recipient.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Recipient {
    Phone(PhoneNumber),
    Email(EmailAddress),
}

impl Recipient {
    /// For values read back from our own storage, which only holds parsed recipients: an
    /// address holds an `@`, a number never does.
    pub fn from_trusted(s: String) -> Self {
        match s.contains('@') {
            true => Self::Email(EmailAddress(s)),
            false => Self::Phone(PhoneNumber::from_trusted(s)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Phone(p) => p.as_str(),
            Self::Email(e) => e.as_str(),
        }
    }

    pub fn phone(&self) -> Option<&PhoneNumber> {
        match self {
            Self::Phone(p) => Some(p),
            Self::Email(_) => None,
        }
    }

    pub fn email(&self) -> Option<&EmailAddress> {
        match self {
            Self::Phone(_) => None,
            Self::Email(e) => Some(e),
        }
    }

    pub fn masked(&self) -> String {
        match self {
            Self::Phone(p) => mask(p.as_str()),
            Self::Email(e) => e.masked(),
        }
    }

    /// A number's ISO 3166 region; none for an address.
    pub fn region(&self) -> Option<String> {
        self.phone().and_then(PhoneNumber::region)
    }

    /// What the per-country budget counts: a number's calling code (`+49`), an address's
    /// domain (`@example.com`).
    pub fn calling_code(&self) -> String {
        match self {
            Self::Phone(p) => p.calling_code(),
            Self::Email(e) => format!("@{}", e.domain()),
        }
    }
}

impl From<PhoneNumber> for Recipient {
    fn from(p: PhoneNumber) -> Self {
        Self::Phone(p)
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_their_domains_made_ascii() {
        assert_eq!(EmailAddress::parse(" Ann.Lee+2fa@Example.COM ").unwrap().as_str(), "ann.lee+2fa@example.com");
        for quoted in ["\"a,b@evil.com\"@example.com", "\"<script>\"@example.com", "a(b)@example.com", ".a@example.com", "a..b@example.com"]
        {
            assert!(EmailAddress::parse(quoted).is_err(), "{quoted}");
        }
        assert_eq!(EmailAddress::parse("jörg@müller.de").unwrap().as_str(), "jörg@xn--mller-kva.de");
        for bad in ["", "no-at", "@example.com", "a@", "a@localhost", "a b@example.com", "a@exa mple.com", "a@-x.com", "a@x..com"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn recipients_round_trip_and_mask() {
        let e = Recipient::from_trusted("ann@example.com".into());
        assert_eq!(e.masked(), "a•••@example.com");
        assert_eq!(e.calling_code(), "@example.com");
        assert!(e.phone().is_none());
        let p = Recipient::from_trusted("+4915123456789".into());
        assert_eq!(p.calling_code(), "+49");
        assert_eq!(p.region().as_deref(), Some("DE"));
    }
}
