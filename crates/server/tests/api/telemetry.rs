//! OpenTelemetry traces: the real binary exports to an OTLP/HTTP receiver started here, which
//! decodes the protobuf spans. One trace holds the request, its use case, the store units, the
//! provider call and (for accounts) the Argon2 hash; a trusted proxy's `traceparent` is
//! continued and an untrusted peer's is not; providers and the app's webhook receive the trace
//! context; no code and no full phone number is in any span.
use crate::helpers::{Server, cli_key, eventually, fresh_number};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An OTLP/HTTP receiver on a free port: every batch POSTed to `/v1/traces`, as received.
async fn receiver() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let batches: Arc<Mutex<Vec<Vec<u8>>>> = Default::default();
    let kept = batches.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body.to_vec());
                ([("content-type", "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, batches)
}

/// A decoded span: ids in hex, attributes as text.
#[derive(Debug, Clone)]
struct Seen {
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: i32,
    attrs: BTreeMap<String, String>,
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

/// Every span of every batch, and every string in them (names, keys, values, events).
fn decode(batches: &[Vec<u8>]) -> (Vec<Seen>, Vec<String>, Vec<String>) {
    let (mut spans, mut strings, mut services) = (Vec::new(), Vec::new(), Vec::new());
    for batch in batches {
        let request = ExportTraceServiceRequest::decode(batch.as_slice()).expect("an OTLP protobuf body");
        for rs in request.resource_spans {
            let resource = attrs(&rs.resource.map(|r| r.attributes).unwrap_or_default());
            services.extend(resource.get("service.name").cloned());
            strings.extend(resource.into_iter().flat_map(|(k, v)| [k, v]));
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                for event in &span.events {
                    strings.push(event.name.clone());
                    strings.extend(attrs(&event.attributes).into_iter().flat_map(|(k, v)| [k, v]));
                }
                let seen = Seen {
                    trace: hex::encode(&span.trace_id),
                    id: hex::encode(&span.span_id),
                    parent: hex::encode(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span.kind,
                    attrs: attrs(&span.attributes),
                };
                strings.push(seen.name.clone());
                strings.extend(seen.attrs.iter().flat_map(|(k, v)| [k.clone(), v.clone()]));
                spans.push(seen);
            }
        }
    }
    (spans, strings, services)
}

/// The span named `name` in trace `trace`.
fn find<'a>(spans: &'a [Seen], trace: &str, name: &str) -> &'a Seen {
    spans.iter().find(|s| s.trace == trace && s.name == name).unwrap_or_else(|| panic!("no span `{name}` in trace {trace}"))
}

/// Whether `span` descends from `ancestor` (parent links within its trace).
fn descends(spans: &[Seen], span: &Seen, ancestor: &Seen) -> bool {
    let mut at = span;
    while !at.parent.is_empty() {
        if at.parent == ancestor.id {
            return true;
        }
        match spans.iter().find(|s| s.trace == at.trace && s.id == at.parent) {
            Some(parent) => at = parent,
            None => return false,
        }
    }
    false
}

/// The code in a message text: its last run of 4 or more digits.
fn code_in(text: &str) -> String {
    let runs: Vec<&str> = text.split(|c: char| !c.is_ascii_digit()).filter(|r| r.len() >= 4).collect();
    runs.last().expect("a code in the message").to_string()
}

/// The gateway's requests for `to`: their bodies (JSON) and `traceparent` headers.
async fn sent_to(gateway: &MockServer, to: &str) -> Vec<(Value, Option<String>)> {
    let requests = gateway.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == "/send")
        .map(|r| (serde_json::from_slice::<Value>(&r.body).unwrap(), r.headers.get("traceparent").map(|v| v.to_str().unwrap().to_string())))
        .filter(|(body, _)| body["to"] == to)
        .collect()
}

/// The `n`th message's code for `to` (waiting for it), with its `traceparent`.
async fn nth_code(gateway: &MockServer, to: &str, n: usize) -> (String, Option<String>) {
    eventually(|| async {
        sent_to(gateway, to).await.get(n).map(|(body, traceparent)| (code_in(body["body"].as_str().unwrap()), traceparent.clone()))
    })
    .await
}

#[tokio::test]
async fn traces_reach_an_otlp_receiver_linked_masked_and_without_codes() {
    let (otlp, batches) = receiver().await;
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "gw-1" })))
        .mount(&gateway)
        .await;
    let app_hook = MockServer::start().await;
    Mock::given(method("POST")).and(path("/events")).respond_with(ResponseTemplate::new(200)).mount(&app_hook).await;

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let config = dir.path().join("phonegate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[http]
trusted_proxies = ["127.0.0.1/32"]

[providers.gateway]
kind = "http"
url = "{gateway}/send"
secret = "whsec-test"

[account_webhook]
url = "{hook}/events"
secret = "whsec-app"

[telemetry]
otlp_endpoint = "{otlp}"
service_name = "phonegate-test"
"#,
            gateway = gateway.uri(),
            hook = app_hook.uri(),
        ),
    )
    .unwrap();
    let (db2, config2) = (db.clone(), config.display().to_string());
    let (secret, mut server) = tokio::task::spawn_blocking(move || {
        let secret = cli_key(&db2, "traces");
        // A long export delay: the spans arrive with the flush at shutdown.
        let server = Server::spawn(&db2, &[("PHONEGATE_CONFIG", config2.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "60000")]);
        (secret, server)
    })
    .await
    .unwrap();
    assert!(server.logs.contains("exporting traces"), "{}", server.logs);
    let client = reqwest::Client::new();
    let base = server.base.clone();

    // A verification through a trusted proxy that sends its trace context.
    let (proxy_trace, proxy_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let to = fresh_number();
    let r = client
        .post(format!("{base}/api/verifications"))
        .bearer_auth(&secret)
        .header("traceparent", format!("00-{proxy_trace}-{proxy_parent}-01"))
        .json(&json!({ "to": to }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let (code, provider_traceparent) = nth_code(&gateway, &to, 0).await;
    let r = client
        .post(format!("{base}/api/verifications/{id}/check"))
        .bearer_auth(&secret)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "approved");

    // From a peer that is not a trusted proxy, a trace context is ignored.
    let untrusted = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let stranger_trace = "0af7651916cd43dd8448eb211c80319c";
    let r = untrusted
        .get(format!("{base}/api/verifications/{id}"))
        .bearer_auth(&secret)
        .header("traceparent", format!("00-{stranger_trace}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A path no route matches, holding a number: the span names no path.
    let lost = fresh_number();
    assert_eq!(client.get(format!("{base}/nowhere/{lost}")).send().await.unwrap().status(), 404);

    // Sign up with a password (a hash), then log in with it (a check of the hash).
    let phone = fresh_number();
    let password = "correct horse battery";
    let r = client
        .post(format!("{base}/api/auth/signup"))
        .json(&json!({ "username": "tracy", "phone": phone, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let flow = r.json::<Value>().await.unwrap()["flow_id"].as_str().unwrap().to_string();
    let (signup_code, _) = nth_code(&gateway, &phone, 0).await;
    let r = client.post(format!("{base}/api/auth/verify")).json(&json!({ "flow_id": flow, "code": signup_code })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r =
        client.post(format!("{base}/api/auth/login")).json(&json!({ "identifier": "tracy", "password": password })).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let flow = r.json::<Value>().await.unwrap()["flow_id"].as_str().unwrap().to_string();
    let (login_code, _) = nth_code(&gateway, &phone, 1).await;
    let r = client.post(format!("{base}/api/auth/verify")).json(&json!({ "flow_id": flow, "code": login_code })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The app hears of the new user (the queue worker's delivery).
    let hook_traceparent = eventually(|| async {
        let requests = app_hook.received_requests().await.unwrap_or_default();
        requests.first().map(|r| r.headers.get("traceparent").map(|v| v.to_str().unwrap().to_string()))
    })
    .await;

    // SIGTERM: the server flushes its spans before it exits.
    let (clean, logs) = tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
    assert!(clean, "graceful exit: {logs}");
    let batches = batches.lock().unwrap().clone();
    let (spans, strings, services) = decode(&batches);
    assert!(!spans.is_empty(), "no spans arrived; logs: {logs}");
    assert!(services.iter().all(|s| s == "phonegate-test") && !services.is_empty(), "{services:?}");

    // The proxy's trace goes on: request → use case → store unit, and the provider call.
    let request = find(&spans, proxy_trace, "POST /api/verifications");
    assert_eq!(request.parent, proxy_parent, "the request continues the proxy's span");
    assert_eq!(request.kind, 2, "a server span");
    assert_eq!(request.attrs.get("http.route").map(String::as_str), Some("/api/verifications"));
    assert_eq!(request.attrs.get("http.response.status_code").map(String::as_str), Some("201"));
    let start = find(&spans, proxy_trace, "verifier.start");
    assert!(descends(&spans, start, request));
    let unit =
        spans.iter().find(|s| s.trace == proxy_trace && s.name == "store.write" && descends(&spans, s, start)).expect("the start's unit");
    for time in ["wait_us", "run_us", "commit_us"] {
        assert!(unit.attrs.get(time).is_some_and(|t| t.parse::<u64>().is_ok()), "{time}: {unit:?}");
    }
    assert!(unit.attrs["unit"].contains("start"), "{unit:?}");
    let send = find(&spans, proxy_trace, "provider.send");
    assert!(descends(&spans, send, request));
    assert_eq!((send.kind, send.attrs["provider"].as_str(), send.attrs["outcome"].as_str()), (3, "gateway", "ok"));
    assert!(send.attrs["to"].contains('•') && send.attrs["to"].ends_with(&to[to.len() - 3..]), "masked: {send:?}");
    let sent = provider_traceparent.expect("the provider got a traceparent");
    assert_eq!(sent, format!("00-{proxy_trace}-{}-01", send.id), "the provider's request carries the call's span");

    // A check is its own trace, with its use case and unit.
    let check = spans.iter().find(|s| s.name == "POST /api/verifications/{id}/check").expect("the check's request");
    assert!(check.parent.is_empty(), "no traceparent sent: a new trace");
    let checked = find(&spans, &check.trace, "verifier.check");
    assert!(descends(&spans, checked, check));
    assert!(spans.iter().any(|s| s.name == "store.write" && descends(&spans, s, checked)));

    // The untrusted peer's trace context was ignored: a new trace.
    let fetched = spans.iter().find(|s| s.name == "GET /api/verifications/{id}").expect("the untrusted request's span");
    assert!(fetched.parent.is_empty() && fetched.trace != stranger_trace);
    assert!(spans.iter().all(|s| s.trace != stranger_trace), "a stranger's trace id was taken over");
    assert!(spans.iter().any(|s| s.name == "GET unmatched"), "the 404's span");

    // Argon2: hashed within the sign-up, checked within the login.
    for (route, op) in [("POST /api/auth/signup", "hash"), ("POST /api/auth/login", "verify")] {
        let request = spans.iter().find(|s| s.name == route).unwrap_or_else(|| panic!("{route}"));
        let hash = spans
            .iter()
            .find(|s| s.name == "argon2" && s.attrs.get("op").map(String::as_str) == Some(op) && descends(&spans, s, request))
            .unwrap_or_else(|| panic!("no argon2 {op} under {route}"));
        assert!(hash.attrs.contains_key("wait_us") && hash.attrs.contains_key("run_us"), "{hash:?}");
        let use_case = find(&spans, &request.trace, if op == "hash" { "accounts.signup" } else { "accounts.login" });
        assert!(descends(&spans, hash, use_case));
    }

    // The webhook delivery: its span, and the app received its trace context.
    let delivery = spans.iter().find(|s| s.name == "webhook.deliver").expect("the webhook's span");
    assert_eq!(delivery.attrs.get("kind").map(String::as_str), Some("user.created"));
    assert!(descends(&spans, delivery, find(&spans, &delivery.trace, "accounts.deliver_event")));
    assert_eq!(hook_traceparent.expect("the app got a traceparent"), format!("00-{}-{}-01", delivery.trace, delivery.id));

    // Background polls start no trace of their own.
    assert!(spans.iter().all(|s| !(s.parent.is_empty() && s.name.starts_with("store."))), "a poll's unit was exported");

    // Nothing secret: no code, no full number, in any string or anywhere in the raw bytes.
    let mut secrets = vec![code, signup_code, login_code];
    for n in [&to, &phone, &lost] {
        secrets.push(n.clone());
        secrets.push(n.trim_start_matches('+').to_string());
    }
    for secret in &secrets {
        assert!(!strings.iter().any(|s| s.contains(secret.as_str())), "`{secret}` is in a span");
        let raw = secret.as_bytes();
        assert!(!batches.iter().any(|b| b.windows(raw.len()).any(|w| w == raw)), "`{secret}` is in an export");
    }
}
