//! Users: who an account is, and the rules for usernames, e-mail addresses and passwords.
use crate::model::invalid::{Field, Invalid};
use crate::model::phone::PhoneNumber;
use chrono::{DateTime, Utc};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// As the user typed it; unique ignoring case.
    pub username: String,
    pub email: Option<String>,
    /// The account proved it holds `email` (a code sent to it); an address given at sign-up is
    /// not, until then.
    pub email_verified: bool,
    /// Always verified: an account exists only once its number was proven.
    pub phone: PhoneNumber,
    /// Argon2id in PHC string form.
    pub password_hash: Option<String>,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

pub const USERNAME_RULE: &str = "must be 3 to 32 characters: letters a-z, digits, '.', '_' and '-', starting with a letter or digit";

/// A username as given, if it follows `USERNAME_RULE`.
pub fn username(raw: &str) -> Result<String, Invalid> {
    let ok = (3..=32).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && raw.as_bytes()[0].is_ascii_alphanumeric();
    if ok { Ok(raw.to_string()) } else { Err(Invalid::new(Field::Username, USERNAME_RULE)) }
}

/// An e-mail address: `local@domain`, at most 254 characters, no spaces or control characters.
pub fn email(raw: &str) -> Result<String, Invalid> {
    let ok = raw.len() <= 254
        && raw.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@')
        })
        && !raw.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"'".contains(c));
    if ok { Ok(raw.to_string()) } else { Err(Invalid::new(Field::Email, "must be an e-mail address like name@example.com")) }
}

/// A new password: 8 to 128 characters.
pub fn password(raw: &str) -> Result<(), Invalid> {
    let n = raw.chars().count();
    if (8..=128).contains(&n) { Ok(()) } else { Err(Invalid::new(Field::Password, "must be 8 to 128 characters")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rule() {
        for good in ["ada", "Ada.Lovelace", "x_1-2", "123"] {
            assert!(username(good).is_ok(), "{good}");
        }
        for bad in ["ab", "_ada", "ada lovelace", "ädä", "a/b", "<script>", &"a".repeat(33), ""] {
            let e = username(bad).unwrap_err().to_string();
            assert!(e.contains("letters a-z"), "{bad}: {e}");
        }
    }

    #[test]
    fn emails_and_passwords_are_checked() {
        assert!(email("a@example.com").is_ok());
        for bad in ["a", "@x.com", "a@x", "a b@x.com", "a@x.com\n", "a@.com"] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(password("12345678").is_ok());
        assert!(password("1234567").is_err());
        assert!(password(&"x".repeat(129)).is_err());
    }
}
