//! PSD2 dynamic linking: a payment code names the amount and the payee in its message (in every
//! built-in language, `psd2_messages.tsv`), and a check that names them must name the same ones,
//! so a code approves only the payment the user was shown.
use crate::model::invalid::{Field, Invalid};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Psd2 {
    /// As the app writes it (`€39.99`, `39.99 EUR`).
    pub amount: String,
    pub payee: String,
}

impl Psd2 {
    /// Both or neither; each printable, the amount at most 32 characters, the payee 64.
    pub fn from_parts(amount: Option<&str>, payee: Option<&str>) -> Result<Option<Self>, Invalid> {
        let printable = |s: &str, max: usize| {
            !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(crate::model::service::is_unsafe) && !s.contains('\n')
        };
        match (amount, payee) {
            (None, None) => Ok(None),
            (Some(a), Some(p)) if printable(a, 32) && printable(p, 64) => {
                Ok(Some(Self { amount: a.trim().into(), payee: p.trim().into() }))
            }
            (Some(_), Some(_)) => {
                Err(Invalid::new(Field::Amount, "amount (at most 32 characters) and payee (at most 64) must be printable text"))
            }
            _ => Err(Invalid::new(Field::Payee, "amount and payee go together")),
        }
    }

    /// Whether a check naming `given` (or nothing) may approve a verification made for `own`.
    pub fn allows(own: Option<&Psd2>, given: Option<&Psd2>) -> bool {
        given.is_none_or(|g| own == Some(g))
    }
}
