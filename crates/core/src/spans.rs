//! Helpers for the core's trace spans (exported by the server when OpenTelemetry is configured;
//! nothing here costs more than a branch when no subscriber records the spans). A leaf: it
//! imports nothing of the core.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

/// A store unit's span (`store.write` or `store.read`, at debug level: only traces record it)
/// with where its time went: `wait_us` until it began (queued for SQLite's writer or a reader
/// thread, or for a PostgreSQL connection), `run_us` running its statements, `commit_us` after
/// them (the commit, a group commit's other units, the answer). Nothing is timed when the span
/// is off.
pub(crate) struct UnitTrace {
    span: tracing::Span,
    clock: Option<Arc<UnitClock>>,
}

pub(crate) struct UnitClock {
    start: Instant,
    /// Microseconds from `start` to the unit's beginning and end (0: not yet).
    began: AtomicU64,
    ended: AtomicU64,
}

impl UnitClock {
    fn since(&self) -> u64 {
        (self.start.elapsed().as_micros() as u64).max(1)
    }
}

impl UnitTrace {
    pub(crate) fn new(span: tracing::Span) -> Self {
        let clock = (!span.is_disabled())
            .then(|| Arc::new(UnitClock { start: Instant::now(), began: AtomicU64::new(0), ended: AtomicU64::new(0) }));
        Self { span, clock }
    }

    /// The clock the unit's body notes its beginning and end on (`None` when not traced).
    pub(crate) fn clock(&self) -> Option<Arc<UnitClock>> {
        self.clock.clone()
    }

    /// Runs the unit's body (on the store's thread), noting when it began and ended.
    pub(crate) fn running<R>(clock: Option<Arc<UnitClock>>, body: impl FnOnce() -> R) -> R {
        if let Some(c) = &clock {
            c.began.store(c.since(), Ordering::Relaxed);
        }
        let result = body();
        if let Some(c) = &clock {
            c.ended.store(c.since(), Ordering::Relaxed);
        }
        result
    }

    /// Records the times on the span; `failed`: the store failed (not the use case refusing).
    pub(crate) fn finish(self, failed: bool) {
        let Some(c) = self.clock else { return };
        let total = c.start.elapsed().as_micros() as u64;
        let (began, ended) = (c.began.load(Ordering::Relaxed), c.ended.load(Ordering::Relaxed));
        if began > 0 && ended >= began {
            self.span.record("wait_us", began);
            self.span.record("run_us", ended - began);
            self.span.record("commit_us", total.saturating_sub(ended));
        } else {
            self.span.record("wait_us", total);
        }
        if failed {
            self.span.record("otel.status_code", "ERROR");
        }
    }
}

/// The use case a unit belongs to, from its closure's type:
/// `engine::check::Verifier::check_unaudited`. Worked out once per closure type (a fixed set).
pub(crate) fn unit_name<F>() -> &'static str {
    static NAMES: OnceLock<RwLock<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let full = std::any::type_name::<F>();
    if let Some(name) = names.read().ok().and_then(|n| n.get(full).copied()) {
        return name;
    }
    let name: &'static str = Box::leak(clean_type_name(full).into_boxed_str());
    names.write().map_or(name, |mut n| *n.entry(full).or_insert(name))
}

fn clean_type_name(full: &str) -> String {
    let full = full.replace("::{{closure}}", "");
    let mut name = String::with_capacity(full.len());
    let mut rest = full.as_str();
    // `<impl a::b::Verifier>` (or `<impl Trait for a::Type>`) as the type's own name.
    while let Some(open) = rest.find("<impl ") {
        name.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else { break };
        let inner = &rest[open + "<impl ".len()..open + close];
        let ty = inner.rsplit(" for ").next().unwrap_or(inner);
        name.push_str(ty.rsplit("::").next().unwrap_or(ty));
        rest = &rest[open + close + 1..];
    }
    name.push_str(rest);
    name.trim_start_matches("phonegate_core::").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn unit_names_are_the_use_cases_path() {
        let name = super::clean_type_name(
            "phonegate_core::engine::check::<impl phonegate_core::engine::Verifier>::check_unaudited::{{closure}}::{{closure}}",
        );
        assert_eq!(name, "engine::check::Verifier::check_unaudited");
        assert_eq!(super::clean_type_name("phonegate_core::audit::Audit::record::{{closure}}"), "audit::Audit::record");
        let traced = super::clean_type_name("phonegate_core::x::<impl core::fmt::Debug for phonegate_core::y::Z>::f::{{closure}}");
        assert_eq!(traced, "x::Z::f");
    }
}
