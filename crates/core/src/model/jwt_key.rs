//! An access-token signing key as stored, and the algorithms phonegate signs with.
use chrono::{DateTime, Utc};
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

/// The algorithms phonegate signs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    #[default]
    EdDSA,
    ES256,
    /// RSA with SHA-256: what every OpenID Connect relying party can verify (ID tokens).
    RS256,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    pub const ALL: [Self; 3] = [Self::RS256, Self::ES256, Self::EdDSA];

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EdDSA" => Some(Self::EdDSA),
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            _ => None,
        }
    }
}

/// A signing key as stored: the private key (PKCS#8 DER) sealed, the public one as a JWK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtKey {
    pub kid: String,
    pub alg: JwtAlgorithm,
    pub private_sealed: Vec<u8>,
    pub public_jwk: String,
    pub created_at: DateTime<Utc>,
}
