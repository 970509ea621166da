//! Password hashing: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), run on
//! blocking threads behind a bound of one hash per core, so a flood of logins queues instead of
//! starving every other request. Unknown users are checked against a dummy hash, so a wrong
//! username takes as long as a wrong password. Checks reuse their 19 MiB of working memory (one
//! buffer per permit), so a flood of logins neither allocates nor zeroes memory per attempt.
//! How many checks are waiting for a slot is counted, for the metrics.
use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
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
    /// Working memory of finished checks, for the next ones (at most one per permit).
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Hashes and checks waiting for a slot, every slot being busy.
    waiting: Arc<AtomicUsize>,
}

/// One hash waiting for a slot, counted until it has one (or its request is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Passwords {
    /// At most `parallel` hashes at once.
    pub fn new(parallel: usize) -> Self {
        let dummy = hash_now(&format!("dummy-{}", rand::random::<u64>()), &mut Vec::new());
        Self {
            bound: Arc::new(Semaphore::new(parallel.max(1))),
            dummy: Arc::new(dummy),
            memory: Default::default(),
            waiting: Default::default(),
        }
    }

    /// How many hashes and checks are waiting for a slot right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Runs `f` (one hash) when a slot is free. Its span (`argon2`, debug: traces only) tells
    /// how long it waited for the slot (`wait_us`) and hashed (`run_us`).
    async fn bounded<T: Send + 'static>(&self, op: &'static str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let span = tracing::debug_span!("argon2", op, wait_us = tracing::field::Empty, run_us = tracing::field::Empty);
        let started = (!span.is_disabled()).then(std::time::Instant::now);
        let _permit = match self.bound.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                let _waiting = Waiting::new(&self.waiting);
                self.bound.acquire().await.expect("the semaphore is never closed")
            }
        };
        let slot = started.map(|s| (s.elapsed(), std::time::Instant::now()));
        let result = tokio::task::spawn_blocking(f).await.expect("hashing does not panic");
        if let Some((waited, hashing)) = slot {
            span.record("wait_us", waited.as_micros() as u64);
            span.record("run_us", hashing.elapsed().as_micros() as u64);
        }
        result
    }

    /// The PHC string of a new hash of `password`.
    pub async fn hash(&self, password: &SecretString) -> String {
        let (password, memory) = (password.clone(), self.memory.clone());
        self.bounded("hash", move || with_memory(&memory, |blocks| hash_now(password.expose_secret(), blocks))).await
    }

    /// Whether `password` matches `stored`; with no stored hash, it is checked against the
    /// dummy (and never matches), taking the same time.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> bool {
        let (password, real) = (password.clone(), stored.is_some());
        let stored = stored.map_or_else(|| self.dummy.as_ref().clone(), str::to_string);
        let memory = self.memory.clone();
        let matched =
            self.bounded("verify", move || with_memory(&memory, |blocks| verify_now(password.expose_secret(), &stored, blocks))).await;
        matched && real
    }
}

/// Checks `password` against a PHC string. A hash with phonegate's own parameters is recomputed
/// in `blocks` (grown to size once, then reused); any other is checked the library's way.
fn verify_now(password: &str, stored: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else { return false };
    let ours = hash.algorithm == argon2::ARGON2ID_IDENT
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(&hash).is_ok_and(|p| (p.m_cost(), p.t_cost(), p.p_cost()) == (MEMORY_KIB, PASSES, LANES));
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else { return false };
    if !ours {
        return argon2().verify_password(password.as_bytes(), &hash).is_ok();
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let argon = argon2();
    blocks.resize(argon.params().block_count(), Block::default());
    let mut out = vec![0u8; expected.len()];
    argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks.as_mut_slice()).is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// Runs `f` with a working-memory buffer from the pool (or a new one), and returns it to the pool.
fn with_memory<T>(pool: &Mutex<Vec<Vec<Block>>>, f: impl FnOnce(&mut Vec<Block>) -> T) -> T {
    let mut blocks = pool.lock().ok().and_then(|mut m| m.pop()).unwrap_or_default();
    let result = f(&mut blocks);
    if let Ok(mut m) = pool.lock() {
        m.push(blocks);
    }
    result
}

/// A new hash of `password` in PHC string form, computed in `blocks`.
fn hash_now(password: &str, blocks: &mut Vec<Block>) -> String {
    let salt = rand::random::<[u8; 16]>();
    let salt_text = SaltString::encode_b64(&salt).expect("16 bytes make a salt");
    let argon = argon2();
    blocks.resize(argon.params().block_count(), Block::default());
    let mut out = [0u8; 32];
    argon.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks.as_mut_slice()).expect("Argon2 hashes any password");
    let output = argon2::password_hash::Output::new(&out).expect("32 bytes are a valid output");
    format!("${}$v=19$m={MEMORY_KIB},t={PASSES},p={LANES}${}${output}", argon2::ARGON2ID_IDENT, salt_text.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_never_matches() {
        let p = Passwords::new(2);
        let h = p.hash(&"correct horse".into()).await;
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify(&"correct horse".into(), Some(&h)).await);
        assert!(!p.verify(&"wrong horse".into(), Some(&h)).await);
        // A standard PHC hash: the library itself verifies it.
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(argon2().verify_password(b"correct horse", &parsed).is_ok());
        assert!(!p.verify(&"correct horse".into(), None).await);
        assert!(!p.verify(&"x".into(), Some("not a hash")).await);
        // Other parameters (an older hash) still verify, the library's way.
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap());
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let old = other.hash_password(b"old horse", &salt).unwrap().to_string();
        assert!(p.verify(&"old horse".into(), Some(&old)).await);
        assert!(!p.verify(&"new horse".into(), Some(&old)).await);
        // Many checks reuse at most one buffer per permit.
        for _ in 0..4 {
            assert!(p.verify(&"correct horse".into(), Some(&h)).await);
        }
        assert!(p.memory.lock().unwrap().len() <= 2);
    }

    #[tokio::test]
    async fn checks_waiting_for_a_slot_are_counted_until_they_have_one_or_are_dropped() {
        let p = Passwords::new(1);
        let h = p.hash(&"correct horse".into()).await;
        assert_eq!(p.waiting(), 0, "a free slot is taken without waiting");
        let checks: Vec<_> = (0..3)
            .map(|_| {
                tokio::spawn({
                    let (p, h) = (p.clone(), h.clone());
                    async move { p.verify(&"correct horse".into(), Some(&h)).await }
                })
            })
            .collect();
        while p.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        // One runs, two wait; a waiting one whose request goes away is no longer counted.
        checks[2].abort();
        for check in checks {
            let _ = check.await;
        }
        assert_eq!(p.waiting(), 0);
    }
}
