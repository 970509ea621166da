//! Prometheus metrics, held by the app (no global registry) and fed by the core's `Observer`.
use phonegate_core::message::DeliveryStatus;
use phonegate_core::ports::Observer;
use phonegate_core::{Channel, Status};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerificationLabels {
    service: String,
    channel: String,
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SmsLabels {
    provider: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiptLabels {
    provider: String,
    region: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConversionLabels {
    region: String,
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TestNumberLabels {
    service: String,
    event: String,
}

/// A known OpenID client (unknown ones are never counted: their ids are anyone's to make up).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OidcLabels {
    client: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabels {
    kind: String,
}

pub struct Metrics {
    registry: Registry,
    audit: Family<AuditLabels, Counter>,
    conversions: Family<ConversionLabels, Counter>,
    verifications: Family<VerificationLabels, Counter>,
    test_numbers: Family<TestNumberLabels, Counter>,
    sms: Family<SmsLabels, Counter>,
    receipts: Family<ReceiptLabels, Counter>,
    check_seconds: Histogram,
    password_checks_waiting: Gauge,
    oidc_authorizations: Family<OidcLabels, Counter>,
    oidc_tokens: Family<OidcLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("phonegate");
        let verifications = Family::<VerificationLabels, Counter>::default();
        let sms = Family::<SmsLabels, Counter>::default();
        let check_seconds = Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]);
        registry.register(
            "verifications",
            "Verification events (started, approved, expired, failed, canceled, max_attempts_reached) by service and channel",
            verifications.clone(),
        );
        let receipts = Family::<ReceiptLabels, Counter>::default();
        registry.register(
            "sms_attempts",
            "Attempts to hand an SMS to a provider, by provider and result (ok, unavailable, rejected)",
            sms.clone(),
        );
        registry.register(
            "sms_receipts",
            "Delivery receipts by provider, recipient region and status; delivery rate = delivered / all",
            receipts.clone(),
        );
        registry.register("check_duration_seconds", "Time to answer a code check", check_seconds.clone());
        let audit = Family::<AuditLabels, Counter>::default();
        registry.register(
            "audit_events",
            "Security events recorded in the audit log, by kind (budget_exceeded, checks_locked, destination_refused, webhook_forged, key_created, …)",
            audit.clone(),
        );
        let conversions = Family::<ConversionLabels, Counter>::default();
        registry.register(
            "conversions",
            "Verifications started and approved by the recipient's country (ISO 3166); approved / started is the conversion rate, which SMS pumping drives down",
            conversions.clone(),
        );
        let test_numbers = Family::<TestNumberLabels, Counter>::default();
        registry.register(
            "test_numbers",
            "Verifications of configured test numbers (fixed code, nothing sent; also counted in phonegate_verifications, not in phonegate_conversions) by service and event: started, resent, approved, max_attempts_reached",
            test_numbers.clone(),
        );
        let password_checks_waiting = Gauge::default();
        registry.register(
            "password_checks_waiting",
            "Password hashes and checks waiting for a free hashing slot (one per core) when the metrics were read",
            password_checks_waiting.clone(),
        );
        let oidc_authorizations = Family::<OidcLabels, Counter>::default();
        registry.register(
            "oidc_authorizations",
            "OpenID authorization requests by client and where they led: code, error (sent back to the client), login, consent",
            oidc_authorizations.clone(),
        );
        let oidc_tokens = Family::<OidcLabels, Counter>::default();
        registry.register(
            "oidc_tokens",
            "Token endpoint answers by client and outcome: the grant type (authorization_code, refresh_token) or the OAuth error",
            oidc_tokens.clone(),
        );
        Self {
            registry,
            audit,
            conversions,
            verifications,
            test_numbers,
            sms,
            receipts,
            check_seconds,
            password_checks_waiting,
            oidc_authorizations,
            oidc_tokens,
        }
    }
}

impl Metrics {
    pub fn observe_check(&self, seconds: f64) {
        self.check_seconds.observe(seconds);
    }

    /// Sets the waiting password checks, read from the accounts when the metrics are scraped.
    pub fn set_password_checks_waiting(&self, waiting: usize) {
        self.password_checks_waiting.set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    pub fn oidc_authorization(&self, client: &str, outcome: &str) {
        self.oidc_authorizations.get_or_create(&OidcLabels { client: client.into(), outcome: outcome.into() }).inc();
    }

    pub fn oidc_token(&self, client: &str, outcome: &str) {
        self.oidc_tokens.get_or_create(&OidcLabels { client: client.into(), outcome: outcome.into() }).inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Observer for Metrics {
    fn verification_entered(&self, service_id: &str, channel: Channel, status: Status) {
        let event = if status == Status::Pending { "started" } else { status.as_str() };
        let labels = VerificationLabels { service: service_id.into(), channel: channel.as_str().into(), event: event.into() };
        self.verifications.get_or_create(&labels).inc();
    }

    fn sms_attempt(&self, provider: &str, result: &str) {
        self.sms.get_or_create(&SmsLabels { provider: provider.into(), result: result.into() }).inc();
    }

    fn conversion(&self, region: &str, event: &str) {
        self.conversions.get_or_create(&ConversionLabels { region: region.into(), event: event.into() }).inc();
    }

    fn test_number(&self, service_id: &str, event: &str) {
        self.test_numbers.get_or_create(&TestNumberLabels { service: service_id.into(), event: event.into() }).inc();
    }

    fn audit_event(&self, kind: &str) {
        self.audit.get_or_create(&AuditLabels { kind: kind.into() }).inc();
    }

    fn sms_receipt(&self, provider: &str, region: &str, status: DeliveryStatus) {
        let labels = ReceiptLabels { provider: provider.into(), region: region.into(), status: status.as_str().into() };
        self.receipts.get_or_create(&labels).inc();
    }
}
