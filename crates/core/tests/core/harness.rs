//! The core on a real store, without HTTP: a temporary database (a SQLite file, or a fresh
//! PostgreSQL schema when `TEST_POSTGRES_URL` is set), a clock the test moves, a sender that
//! records every message and an observer that records what metrics would count. The core's
//! objects are built here, and only here, the way the server builds them at start-up.
use chrono::{Duration, TimeZone, Utc};
use phonegate_core::accounts::{AccountSettings, Accounts};
use phonegate_core::budget::Budgets;
use phonegate_core::integrations::{Integrations, RedirectClient};
use phonegate_core::message::DeliveryStatus;
use phonegate_core::ports::{Accepted, MessageSender, Observer, Outgoing, SendError};
use phonegate_core::silent::{SilentRoutes, SilentRouting, Simulator};
use phonegate_core::{Caller, Channel, CoreParts, DeliveryTimes, Limits, ManualClock, PhonePolicy, Status, Verifier};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a test may change before the core is built.
pub struct Setup {
    pub budgets: Budgets,
    pub limits: Limits,
    pub accounts: AccountSettings,
    /// The local silent simulator as the one silent provider.
    pub silent_simulator: bool,
    /// How long a silent check's device step may take.
    pub silent_timeout: Duration,
    /// Redirect-step clients (integrations).
    pub clients: Vec<RedirectClient>,
    /// Numbers with a fixed code that nothing is sent to.
    pub test_numbers: phonegate_core::test_numbers::TestNumbers,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            budgets: Budgets::default(),
            limits: Limits::default(),
            accounts: AccountSettings::default(),
            silent_simulator: false,
            silent_timeout: Duration::seconds(120),
            clients: Vec::new(),
            test_numbers: Default::default(),
        }
    }
}

/// The core of one test, on its own database.
pub struct Core {
    pub clock: Arc<ManualClock>,
    pub sender: Arc<RecordingSender>,
    pub observer: Arc<RecordingObserver>,
    pub verifier: Verifier,
    /// Every service of the core (catalog, delivery, audit…), as the server holds them.
    pub services: phonegate_core::Core,
    pub accounts: Arc<Accounts>,
    pub integrations: Arc<Integrations>,
    pub database_url: String,
    _dir: tempfile::TempDir,
}

impl Core {
    pub async fn new() -> Core {
        Self::with(|_| {}).await
    }

    pub async fn with(configure: impl FnOnce(&mut Setup)) -> Core {
        let mut setup = Setup::default();
        configure(&mut setup);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let database_url = phonegate_store::testing::fresh_database_url(dir.path()).await.expect("a test database");
        let store = phonegate_store::connect(&database_url, 4).await.expect("the store opens");
        // A whole hour: budget windows start with the test.
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()));
        let sender = Arc::new(RecordingSender::default());
        let observer = Arc::new(RecordingObserver::default());
        let keys = phonegate_core::startup::register(store.as_ref(), vec![rand::random::<[u8; 32]>()]).await.expect("server keys");
        let silent: Vec<Arc<dyn phonegate_core::silent::SilentProvider>> =
            if setup.silent_simulator { vec![Arc::new(Simulator)] } else { Vec::new() };
        let silent =
            SilentRoutes::new(silent, SilentRouting::default(), "http://127.0.0.1:8080", setup.silent_timeout).expect("silent routes");
        let core = phonegate_core::Core::new(CoreParts {
            store,
            sender: sender.clone(),
            clock: clock.clone(),
            observer: observer.clone(),
            keys,
            phones: PhonePolicy::default(),
            limits: setup.limits,
            budgets: setup.budgets,
            test_numbers: setup.test_numbers,
            // A start waits for its send however slow the machine: what a test sees never depends on it.
            delivery: DeliveryTimes { send_wait: std::time::Duration::from_secs(60), ..DeliveryTimes::default() },
            silent,
            decoy_service: phonegate_core::accounts::SERVICE.into(),
        });
        core.catalog.ensure_default_service().await.expect("the default service");
        let accounts = Arc::new(Accounts::new(&core, setup.accounts, None, None).await.expect("accounts"));
        let integrations = Arc::new(Integrations::new(&core, setup.clients, None).await.expect("integrations"));
        Core { clock, sender, observer, verifier: core.verifier.clone(), services: core, accounts, integrations, database_url, _dir: dir }
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Starts an SMS verification to `to` in the default service, as an admin.
    pub async fn start(&self, to: &str) -> phonegate_core::Started {
        self.verifier.start(&admin(), request(to)).await.expect("the verification starts")
    }

    /// The code of the newest message sent to `to`, once one was sent.
    pub async fn code_for(&self, to: &str) -> String {
        code_in(&self.sender.wait_for(to, 1).await.body)
    }

    /// The code of the message sent to `to` after the first `before` (see `RecordingSender::count`).
    pub async fn code_after(&self, to: &str, before: usize) -> String {
        code_in(&self.sender.wait_for(to, before + 1).await.body)
    }

    /// Messages queued for `to` in the store, sent or not (written in the unit that queued them).
    pub async fn queued_for(&self, to: &str) -> i64 {
        assert!(to.starts_with('+') && to[1..].bytes().all(|b| b.is_ascii_digit()), "{to}");
        let sql = format!("SELECT COUNT(*) FROM messages WHERE to_number = '{to}'");
        phonegate_store::testing::count(&self.database_url, &sql).await.expect("a count")
    }
}

/// An SMS start to `to` in the default service.
pub fn request(to: &str) -> phonegate_core::StartRequest {
    phonegate_core::StartRequest { service: None, to: to.into(), channel: Some(Channel::Sms), locale: None, options: Default::default() }
}

/// The server itself (every service, no end-user address, so no IP budget).
pub fn admin() -> Caller {
    Caller::system("tests")
}

/// An admin key's backend acting for an end user at `ip` (IP budgets apply).
pub fn for_user_at(ip: &str) -> Caller {
    admin().for_end_user(Some(ip.parse::<IpAddr>().expect("an address")))
}

/// An end user's own request (the account endpoints) from `ip`.
pub fn end_user(ip: &str) -> Caller {
    Caller::end_user(Some(ip.parse::<IpAddr>().expect("an address")), "tests")
}

/// A fresh, valid German mobile number per call.
pub fn fresh_number() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("+49151{:08}", 10_000_000 + NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A wrong code of the same length.
pub fn wrong(code: &str) -> String {
    code.chars().map(|c| if c == '0' { '1' } else { '0' }).collect()
}

/// The code in a message's text: its last run of four or more digits.
pub fn code_in(body: &str) -> String {
    let mut runs = body.split(|c: char| !c.is_ascii_digit()).filter(|r| r.len() >= 4);
    runs.next_back().unwrap_or_else(|| panic!("no code in the message")).to_string()
}

/// What the recording sender does with the next messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendMode {
    Accept,
    /// Every provider unavailable.
    Fail,
    /// The message refused for its recipient.
    Reject,
}

/// An `MessageSender` that keeps every message it was given, sent or not.
pub struct RecordingSender {
    sent: Mutex<Vec<Outgoing>>,
    mode: Mutex<SendMode>,
    arrived: tokio::sync::Notify,
}

impl Default for RecordingSender {
    fn default() -> Self {
        Self { sent: Mutex::new(Vec::new()), mode: Mutex::new(SendMode::Accept), arrived: tokio::sync::Notify::new() }
    }
}

impl RecordingSender {
    pub fn set_mode(&self, mode: SendMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Every message given to `to`, oldest first.
    pub fn to(&self, to: &str) -> Vec<Outgoing> {
        self.sent.lock().unwrap().iter().filter(|s| s.to.as_str() == to).cloned().collect()
    }

    /// How many messages `to` was given so far.
    pub fn count(&self, to: &str) -> usize {
        self.to(to).len()
    }

    /// Waits until `to` was given at least `n` messages and returns the `n`th. Sends may go on in
    /// the background (login codes): this waits for them. The 30 s bound only stops a broken test
    /// from hanging.
    pub async fn wait_for(&self, to: &str, n: usize) -> Outgoing {
        let wait = async {
            loop {
                let arrived = self.arrived.notified();
                if let Some(sms) = self.to(to).into_iter().nth(n - 1) {
                    return sms;
                }
                arrived.await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait).await.unwrap_or_else(|_| panic!("no message {n} to {to}"))
    }
}

#[async_trait::async_trait]
impl MessageSender for RecordingSender {
    async fn send(&self, sms: &Outgoing) -> Result<Accepted, SendError> {
        let mode = *self.mode.lock().unwrap();
        self.sent.lock().unwrap().push(sms.clone());
        self.arrived.notify_waiters();
        match mode {
            SendMode::Accept => Ok(Accepted { provider: "recorder".into(), provider_message_id: Some(format!("rec-{}", sms.message_id)) }),
            SendMode::Fail => Err(SendError::unavailable("the test's provider is down")),
            SendMode::Reject => Err(SendError::Rejected("the test's provider refused the recipient".into())),
        }
    }
}

/// An `Observer` that keeps the statuses verifications entered (what metrics count).
#[derive(Default)]
pub struct RecordingObserver {
    entered: Mutex<Vec<(String, Status)>>,
    test_numbers: Mutex<Vec<String>>,
    conversions: Mutex<Vec<String>>,
}

impl RecordingObserver {
    /// How many verifications entered `status`.
    pub fn entered(&self, status: Status) -> usize {
        self.entered.lock().unwrap().iter().filter(|(_, s)| *s == status).count()
    }

    /// The events of test numbers' verifications, in order (`started`, `approved`…).
    pub fn test_numbers(&self) -> Vec<String> {
        self.test_numbers.lock().unwrap().clone()
    }

    /// The conversion events (`started`, `approved`), in order.
    pub fn conversions(&self) -> Vec<String> {
        self.conversions.lock().unwrap().clone()
    }
}

impl Observer for RecordingObserver {
    fn verification_entered(&self, service_id: &str, _: Channel, status: Status) {
        self.entered.lock().unwrap().push((service_id.to_string(), status));
    }
    fn sms_attempt(&self, _: &str, _: &str) {}
    fn sms_receipt(&self, _: &str, _: &str, _: DeliveryStatus) {}
    fn test_number(&self, _: &str, event: &str) {
        self.test_numbers.lock().unwrap().push(event.to_string());
    }
    fn conversion(&self, _: &str, event: &str) {
        self.conversions.lock().unwrap().push(event.to_string());
    }
}
