//! Names of older releases. Each is refused, from a file or the environment, with an error that
//! names its new place (and, for a duration, its value in the new format).
use figment::value::{Dict, Value};
use std::time::Duration;

const MS: Option<u64> = Some(1);
const SECS: Option<u64> = Some(1000);
const HOURS: Option<u64> = Some(3_600_000);
const DAYS: Option<u64> = Some(86_400_000);

/// Old path, new path, and for a duration the milliseconds its old number counted (`*` stands
/// for any name, the same in both).
const MOVED: &[(&str, &str, Option<u64>)] = &[
    ("tls_cert", "tls.cert", None),
    ("tls_key", "tls.key", None),
    ("log_format", "log.format", None),
    ("log_level", "log.level", None),
    ("api_key_cache_ms", "api_key_cache", MS),
    ("default_region", "phones.default_region", None),
    ("allowed_number_types", "phones.allowed_number_types", None),
    ("denied_prefixes", "phones.denied_prefixes", None),
    ("allowed_countries", "phones.allowed_countries", None),
    ("denied_countries", "phones.denied_countries", None),
    ("send_wait_ms", "delivery.send_wait", MS),
    ("dispatch_interval_ms", "delivery.dispatch_interval", MS),
    ("send_lease_secs", "delivery.lease", SECS),
    ("expiry_sweep_secs", "retention.sweep_interval", SECS),
    ("retention_days", "retention.keep", DAYS),
    ("vonage_min_cancel_secs", "compat.vonage_min_cancel", SECS),
    ("max_body_bytes", "http.max_body_bytes", None),
    ("trusted_proxies", "http.trusted_proxies", None),
    ("client_ip_header", "http.client_ip_header", None),
    ("silent_simulator", "silent.simulator", None),
    ("silent_timeout_secs", "silent.timeout", SECS),
    ("silent_providers", "silent.providers", None),
    ("silent_routing", "silent.routing", None),
    ("providers.*.timeout_ms", "providers.*.timeout", MS),
    ("silent.providers.*.timeout_ms", "silent.providers.*.timeout", MS),
    ("connections.tls_handshake_secs", "connections.tls_handshake", SECS),
    ("connections.header_read_secs", "connections.header_read", SECS),
    ("connections.idle_secs", "connections.idle", SECS),
    ("accounts.code_ttl_secs", "accounts.code_ttl", SECS),
    ("accounts.resend_cooldown_secs", "accounts.resend_cooldown", SECS),
    ("accounts.session_idle_days", "accounts.session_idle", DAYS),
    ("accounts.session_max_days", "accounts.session_max", DAYS),
    ("accounts.access_token_secs", "accounts.access_token_ttl", SECS),
    ("accounts.refresh_reuse_secs", "accounts.refresh_reuse", SECS),
    ("accounts.invite_ttl_hours", "accounts.invite_ttl", HOURS),
    ("accounts.reauth_secs", "accounts.reauth", SECS),
    ("accounts.revocation_check_secs", "accounts.revocation_check", SECS),
];

/// Every old name in `tree`, each as a sentence naming its new place; empty when there is none.
pub(super) fn find(tree: &Value) -> Vec<String> {
    let Value::Dict(_, root) = tree else { return Vec::new() };
    let mut found = Vec::new();
    for (old, new, unit) in MOVED {
        let segments: Vec<&str> = old.split('.').collect();
        let mut hits = Vec::new();
        walk(root, &segments, &mut Vec::new(), &mut hits);
        for (names, value) in hits {
            found.push(sentence(&fill(old, &names), &fill(new, &names), value, *unit));
        }
    }
    found
}

fn walk<'a>(dict: &'a Dict, segments: &[&str], names: &mut Vec<String>, hits: &mut Vec<(Vec<String>, &'a Value)>) {
    let Some((first, rest)) = segments.split_first() else { return };
    let children: Vec<(&String, &Value)> =
        if *first == "*" { dict.iter().collect() } else { dict.get_key_value(*first).into_iter().collect() };
    for (key, value) in children {
        if *first == "*" {
            names.push(key.clone());
        }
        match (rest.is_empty(), value) {
            (true, _) => hits.push((names.clone(), value)),
            (false, Value::Dict(_, inner)) => walk(inner, rest, names, hits),
            _ => {}
        }
        if *first == "*" {
            names.pop();
        }
    }
}

fn fill(path: &str, names: &[String]) -> String {
    let mut names = names.iter();
    path.split('.').map(|s| if s == "*" { names.next().map_or(s, |n| n.as_str()) } else { s }).collect::<Vec<_>>().join(".")
}

/// "`silent_timeout_secs` has moved: use `[silent] timeout = "2m"` (environment:
/// PHONEGATE_SILENT__TIMEOUT)". Only a duration's number is repeated, never another value.
fn sentence(old: &str, new: &str, value: &Value, unit: Option<u64>) -> String {
    let env = format!("PHONEGATE_{}", new.to_ascii_uppercase().replace('.', "__"));
    if matches!(value, Value::Dict(..)) {
        return format!("`[{old}]` has moved: use `[{new}]` (environment: {env}__…)");
    }
    let example = unit
        .zip(value.to_num().and_then(|n| n.to_u128_lossy()).and_then(|n| u64::try_from(n).ok()))
        .and_then(|(ms, n)| n.checked_mul(ms))
        .map(|ms| format!(" = \"{}\"", phonegate_core::duration::format(Duration::from_millis(ms))))
        .unwrap_or_default();
    let place = match new.rsplit_once('.') {
        Some((table, key)) => format!("[{table}] {key}{example}"),
        None => format!("{new}{example}"),
    };
    format!("`{old}` has moved: use `{place}` (environment: {env})")
}
