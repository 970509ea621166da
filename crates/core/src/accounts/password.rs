//! Password hashing: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), run on
//! blocking threads behind a bound of one hash per core, so a flood of logins queues instead of
//! starving every other request. Unknown users are checked against a dummy hash, so a wrong
//! username takes as long as a wrong password.
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// OWASP's minimum for Argon2id: m=19456 KiB, t=2, p=1.
pub const MEMORY_KIB: u32 = 19_456;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid Argon2 parameters"))
}

#[derive(Clone)]
pub struct Passwords {
    bound: Arc<Semaphore>,
    dummy: Arc<String>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Passwords {
    /// At most `parallel` hashes at once.
    pub fn new(parallel: usize) -> Self {
        let dummy = hash_now(&format!("dummy-{}", rand::random::<u64>()));
        Self { bound: Arc::new(Semaphore::new(parallel.max(1))), dummy: Arc::new(dummy) }
    }

    async fn bounded<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let _permit = self.bound.acquire().await.expect("the semaphore is never closed");
        tokio::task::spawn_blocking(f).await.expect("hashing does not panic")
    }

    /// The PHC string of a new hash of `password`.
    pub async fn hash(&self, password: &str) -> String {
        let password = password.to_string();
        self.bounded(move || hash_now(&password)).await
    }

    /// Whether `password` matches `stored`; with no stored hash, it is checked against the
    /// dummy (and never matches), taking the same time.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let (password, real) = (password.to_string(), stored.is_some());
        let stored = stored.map_or_else(|| self.dummy.as_ref().clone(), str::to_string);
        let matched =
            self.bounded(move || PasswordHash::new(&stored).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())).await;
        matched && real
    }
}

fn hash_now(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes make a salt");
    argon2().hash_password(password.as_bytes(), &salt).expect("Argon2 hashes any password").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_never_matches() {
        let p = Passwords::new(2);
        let h = p.hash("correct horse").await;
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse", Some(&h)).await);
        assert!(!p.verify("wrong horse", Some(&h)).await);
        assert!(!p.verify("correct horse", None).await);
        assert!(!p.verify("x", Some("not a hash")).await);
    }
}
