//! The served `/openapi.json` against the real server: every documented operation is called for
//! every response it documents, and each answer must have the documented media type and match the
//! documented schema (JSON Schema 2020-12, `$ref`s resolved into the document's components), with
//! no field the schema does not declare. A response that is documented but never produced here,
//! or produced but not documented, fails the test.
use crate::helpers::{TestApp, fresh_number, providers, wrong};
use crate::schema::Schemas;
use phonegate::config::Config;
use phonegate_core::ports::Store;
use phonegate_store::PgStore;
use reqwest::RequestBuilder;
use reqwest::header::CONTENT_TYPE;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Every operation the document describes: exactly these, each exercised below.
const OPERATIONS: &[(&str, &str)] = &[
    ("put", "/api/keys/{id}/vonage-application"),
    ("get", "/api/keys/{id}/vonage-application"),
    ("get", "/api/admin/oidc/clients"),
    ("post", "/api/admin/oidc/clients"),
    ("post", "/api/admin/oidc/clients/{client_id}/secret"),
    ("delete", "/api/admin/oidc/clients/{client_id}"),
    ("get", "/api/me/apps"),
    ("delete", "/api/me/apps/{client_id}"),
    ("post", "/api/admin/invites"),
    ("get", "/api/admin/invites"),
    ("post", "/api/admin/invites/{id}/resend"),
    ("delete", "/api/admin/invites/{id}"),
    ("get", "/api/admin/members"),
    ("delete", "/api/admin/members/{id}"),
    ("put", "/api/admin/members/{id}/admin"),
    ("delete", "/api/admin/members/{id}/admin"),
    ("get", "/api/admin/members/{id}/sessions"),
    ("delete", "/api/admin/members/{id}/sessions/{session}"),
    ("get", "/api/admin/invite-code"),
    ("post", "/api/admin/invite-code/rotate"),
    ("get", "/api/admin/audit"),
    ("get", "/.well-known/jwks.json"),
    ("post", "/api/auth/signup"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/verify"),
    ("post", "/api/auth/resend"),
    ("post", "/api/auth/refresh"),
    ("post", "/api/auth/logout"),
    ("get", "/api/auth/forward"),
    ("get", "/api/me"),
    ("delete", "/api/me"),
    ("get", "/api/me/sessions"),
    ("delete", "/api/me/sessions/{id}"),
    ("post", "/api/me/phone"),
    ("post", "/api/me/phone/verify"),
    ("post", "/api/me/password"),
    ("post", "/api/me/email"),
    ("post", "/api/me/email/verify"),
    ("get", "/api/audit"),
    ("get", "/api/dev/outbox"),
    ("get", "/api/services"),
    ("post", "/api/services"),
    ("get", "/api/services/{id}"),
    ("patch", "/api/services/{id}"),
    ("delete", "/api/services/{id}"),
    ("post", "/api/verifications"),
    ("post", "/api/verifications/check"),
    ("get", "/api/verifications/{id}"),
    ("post", "/api/verifications/{id}/cancel"),
    ("post", "/api/verifications/{id}/next"),
    ("post", "/api/verifications/{id}/check"),
    ("post", "/api/verifications/{id}/fallback"),
    ("get", "/api/coverage"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/readyz"),
];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The served document, and the (method, path, status) answers checked against it so far.
struct Contract {
    doc: Value,
    seen: BTreeSet<(String, String, u16)>,
}

impl Contract {
    async fn fetch(app: &TestApp) -> Contract {
        let r = app.client.get(app.url("/openapi.json")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let doc: Value = r.json().await.unwrap();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "utoipa 5 writes OpenAPI 3.1: {}", doc["openapi"]);
        Contract { doc, seen: BTreeSet::new() }
    }

    fn operations(&self) -> BTreeSet<(String, String)> {
        let paths = self.doc["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, item)| METHODS.iter().filter(|m| item.get(**m).is_some()).map(move |m| (m.to_string(), path.clone())))
            .collect()
    }

    fn responses(&self) -> BTreeSet<(String, String, u16)> {
        let mut out = BTreeSet::new();
        for (method, path) in self.operations() {
            for status in self.doc["paths"][&path][&method]["responses"].as_object().expect("responses").keys() {
                out.insert((method.clone(), path.clone(), status.parse().unwrap_or_else(|_| panic!("{method} {path}: status {status}"))));
            }
        }
        out
    }

    /// Sends `request`, one call of the operation (`method`, `path` template), expects `status`
    /// and checks the answer against the document. Returns the JSON body (Null for other media).
    async fn call(&mut self, method: &str, path: &str, request: RequestBuilder, status: u16) -> Value {
        let what = format!("{} {path} → {status}", method.to_uppercase());
        let op = self.doc["paths"][path][method].clone();
        assert!(op.is_object(), "{what}: the operation is not documented");
        let response = request.send().await.expect("request sent");
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let actual = response.status().as_u16();
        let bytes = response.bytes().await.expect("body read");
        assert_eq!(actual, status, "{what}: got {actual}: {}", String::from_utf8_lossy(&bytes));
        let documented = &op["responses"][status.to_string()];
        assert!(documented.is_object(), "{what}: the server answers {status}, which is not documented");
        self.seen.insert((method.into(), path.into(), status));

        let Some(content) = documented["content"].as_object() else {
            assert!(bytes.is_empty(), "{what}: documented without a body, but one came: {content_type}");
            return Value::Null;
        };
        assert_eq!(content.len(), 1, "{what}: one media type per response");
        let (media_type, media) = content.iter().next().unwrap();
        assert_eq!(essence(&content_type), essence(media_type), "{what}: Content-Type `{content_type}`, documented `{media_type}`");
        let schema = media.get("schema").unwrap_or_else(|| panic!("{what}: no schema"));
        let (body, json) = if essence(media_type) == "application/json" {
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"));
            (body.clone(), body)
        } else {
            (Value::String(String::from_utf8(bytes.to_vec()).expect("a text body")), Value::Null)
        };
        self.validate(&what, schema, &body);
        json
    }

    /// Validates `body` against `schema` (a schema object of the document) and checks that every
    /// object member in it is declared.
    fn validate(&self, what: &str, schema: &Value, body: &Value) {
        let mut root = schema.as_object().cloned().unwrap_or_else(|| panic!("{what}: schema is not an object"));
        root.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        // `#/components/schemas/…` resolves in the document this schema is the root of.
        root.insert("components".into(), self.doc["components"].clone());
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("{what}: the documented schema does not compile: {e}"));
        let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at `{}`", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{what}: the body does not match its documented schema:\n{}\nbody: {body:#}", errors.join("\n"));
        let mut undeclared = Vec::new();
        Schemas { doc: &self.doc, open_objects: false }.undeclared(schema, body, "", &mut undeclared);
        assert!(undeclared.is_empty(), "{what}: fields the schema does not declare: {undeclared:?}\nbody: {body:#}");
    }
}

/// `type/subtype` of a media type, without parameters.
fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The same app's routes over a store whose database cannot be reached (PostgreSQL on a port
/// nobody listens on; the pool connects lazily): how the server answers during an outage.
async fn with_database_down(app: &TestApp) -> String {
    let mut state = app.state.clone();
    let unreachable: Arc<dyn Store> = Arc::new(PgStore::connect("postgres://phonegate@127.0.0.1:1/phonegate", 1).unwrap());
    let clock: Arc<dyn phonegate_core::Clock> = app.clock.clone();
    state.core = Arc::new(phonegate_core::Core::new(phonegate_core::CoreParts {
        store: unreachable,
        sender: Arc::new(phonegate_core::outbox::OutboxSender),
        clock,
        observer: Arc::new(phonegate_core::ports::NoObserver),
        keys: phonegate_core::code::ServerKeys::from_secret(b"outage"),
        phones: Default::default(),
        limits: Default::default(),
        budgets: Default::default(),
        test_numbers: Default::default(),
        delivery: Default::default(),
        silent: Default::default(),
        decoy_service: phonegate_core::accounts::SERVICE.into(),
    }));
    let router = phonegate::http::router(state, &Config::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test]
async fn every_documented_response_matches_what_the_server_sends() {
    // The expiry sweep runs once at start, then never during the test: a verification whose code
    // has expired stays pending until it is read or checked.
    // Every answer comes from one address: its start budget is raised for the many flows.
    let app = TestApp::spawn_with(|c| {
        c.retention.sweep_interval = std::time::Duration::from_secs(86_400);
        c.budgets.starts_per_ip = vec!["1000/1h".parse().unwrap()];
        // The dev outbox answers this machine without a key: a remote client is forwarded.
        c.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        // A configured OpenID client (the admin API cannot change it).
        let oidc: phonegate::config::Config = toml::from_str(
            "public_url = \"https://id.example\"\n[oidc_clients.rp]\nclient_secret = \"rp-secret-0123456789\"\nredirect_uris = [\"https://rp.example/cb\"]\n",
        )
        .unwrap();
        c.public_url = oidc.public_url;
        c.oidc_clients = oidc.oidc_clients;
    })
    .await;
    let mut api = Contract::fetch(&app).await;
    let listed: BTreeSet<(String, String)> = OPERATIONS.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(api.operations(), listed, "the documented operations changed: exercise each new one here and list it");

    let (client, url) = (&app.client, |path: &str| app.url(path));
    let get = |path: &str| client.get(url(path)).bearer_auth(&app.secret);
    let post = |path: &str, body: Value| client.post(url(path)).bearer_auth(&app.secret).json(&body);

    // Operations.
    api.call("get", "/healthz", client.get(url("/healthz")), 200).await;
    api.call("get", "/readyz", client.get(url("/readyz")), 200).await;
    let down = with_database_down(&app).await;
    let r = api.call("get", "/readyz", client.get(format!("{down}/readyz")), 503).await;
    assert_eq!(r["error"]["code"], "database_unavailable");

    // Without a key, every operation that documents 401 answers it (before reading the body).
    for (method, path) in OPERATIONS {
        // The account endpoints take a session or access token, not a key (tested below).
        // Coverage answers an end user's own page without a key (401 only for a bad key, below).
        let signed_in = ["/api/me", "/api/auth", "/api/admin", "/api/coverage"].iter().any(|p| path.starts_with(p));
        if api.doc["paths"][path][method]["responses"]["401"].is_null() || signed_in {
            continue;
        }
        let concrete = url(&path.replace("{id}", "VE0123456789abcdef0123456789abcdef"));
        let request = match *method {
            "get" => client.get(concrete),
            other => client.request(other.to_uppercase().parse().unwrap(), concrete).json(&json!({})),
        };
        let r = api.call(method, path, request.header("x-forwarded-for", "198.51.100.7"), 401).await;
        assert_eq!(r["error"]["code"], "unauthorized");
    }

    // Services.
    let shop = json!({ "name": "Shop", "code_length": 8, "templates": { "de": "Ihr {service}-Code lautet {code}" } });
    let service = api.call("post", "/api/services", post("/api/services", shop.clone()), 201).await;
    let r = api.call("post", "/api/services", post("/api/services", shop), 409).await;
    assert_eq!(r["error"]["code"], "service_name_taken");
    api.call("post", "/api/services", post("/api/services", json!({ "name": "Tiny", "code_length": 2 })), 400).await;
    let list = api.call("get", "/api/services", get("/api/services"), 200).await;
    assert_eq!(list["services"].as_array().map(Vec::len), Some(3), "the default service, accounts (login codes) and Shop");
    let service_id = service["id"].as_str().unwrap();

    // A service key may not create services nor read the audit log; an admin key may.
    let scope = phonegate_core::apikey::KeyScope::Services(vec!["Shop".into()]);
    let (_, shop_secret) = app.state.core.api_keys.create(&phonegate_core::Caller::system("tests"), "shop", scope).await.unwrap();
    let as_shop = |path: &str| client.get(url(path)).bearer_auth(shop_secret.expose_secret());
    let r = api
        .call(
            "post",
            "/api/services",
            client.post(url("/api/services")).bearer_auth(shop_secret.expose_secret()).json(&json!({ "name": "X" })),
            403,
        )
        .await;
    assert_eq!(r["error"]["code"], "forbidden");
    api.call("get", "/api/audit", as_shop("/api/audit"), 403).await;
    let audit = api.call("get", "/api/audit", get("/api/audit?kind=key_created&limit=5"), 200).await;
    assert!(audit["events"].as_array().is_some_and(|e| !e.is_empty()), "{audit}");
    api.call("get", "/api/audit", get("/api/audit?limit=many"), 400).await;
    // A key's Vonage application: set by an admin key, read back, refused to others.
    let keys_path = format!("/api/keys/{}/vonage-application", app.key_id);
    let application = json!({
        "public_key": crate::vonage_channels::PUBLIC_KEY,
        "status_url": "https://app.example/status",
        "signature_secret": "a-signature-secret-of-32-characters!!",
    });
    let put = |path: &str, body: Value| client.put(url(path)).bearer_auth(&app.secret).json(&body);
    let path = "/api/keys/{id}/vonage-application";
    let set = api.call("put", path, put(&keys_path, application.clone()), 200).await;
    assert_eq!(set["signed_callbacks"], true);
    let read = api.call("get", path, get(&keys_path), 200).await;
    assert_eq!(read["application_id"], set["application_id"]);
    api.call("put", path, put(&keys_path, json!({ "public_key": "not a key" })), 400).await;
    // The private half is refused (it would be stored and shown), as is an unsigned status URL.
    let private = json!({ "public_key": crate::vonage_channels::PRIVATE_KEY });
    api.call("put", path, put(&keys_path, private), 400).await;
    let unsigned = json!({ "public_key": crate::vonage_channels::PUBLIC_KEY, "status_url": "https://app.example/status" });
    api.call("put", path, put(&keys_path, unsigned), 400).await;
    api.call("put", path, put("/api/keys/SK0123456789abcdef0123456789abcdef/vonage-application", application.clone()), 404).await;
    api.call("get", path, get("/api/keys/SK0123456789abcdef0123456789abcdef/vonage-application"), 404).await;
    let shop_put = client.put(url(&keys_path)).bearer_auth(shop_secret.expose_secret()).json(&application);
    api.call("put", path, shop_put, 403).await;
    api.call("get", path, as_shop(&keys_path), 403).await;
    api.call("get", "/api/services/{id}", get(&format!("/api/services/{service_id}")), 200).await;
    api.call("get", "/api/services/{id}", get("/api/services/Shop"), 200).await;
    api.call("get", "/api/services/{id}", get("/api/services/VA0123456789abcdef0123456789abcdef"), 404).await;
    // Changed and deleted: each documented answer, by an admin key (a service key: 403).
    let (shop_key, admin_key) = (shop_secret.expose_secret(), app.secret.as_str());
    api.call("post", "/api/services", post("/api/services", json!({ "name": "Gone" })), 201).await;
    for (method, name, body, key, status) in [
        ("patch", "Shop", json!({ "code_ttl_secs": 900 }), admin_key, 200),
        ("patch", "Shop", json!({ "code_length": 2 }), admin_key, 400),
        ("patch", "Nowhere", json!({}), admin_key, 404),
        ("patch", "Shop", json!({ "name": "phonegate" }), admin_key, 409),
        ("patch", "Shop", json!({}), shop_key, 403),
        ("delete", "phonegate", json!({}), admin_key, 409),
        ("delete", "Shop", json!({}), shop_key, 403),
        ("delete", "Gone", json!({}), admin_key, 204),
        ("delete", "Gone", json!({}), admin_key, 404),
    ] {
        let request = client.request(method.to_uppercase().parse().unwrap(), url(&format!("/api/services/{name}"))).bearer_auth(key);
        api.call(method, "/api/services/{id}", if method == "patch" { request.json(&body) } else { request }, status).await;
    }

    // Start: a code, the same code re-sent up to five sends, then 429.
    let to = fresh_number();
    let started = api
        .call("post", "/api/verifications", post("/api/verifications", json!({ "to": to, "service": "Shop", "locale": "de" })), 201)
        .await;
    let id = started["id"].as_str().unwrap().to_string();
    for _ in 0..4 {
        let again = api.call("post", "/api/verifications", post("/api/verifications", json!({ "to": to, "service": "Shop" })), 201).await;
        assert_eq!((again["id"].as_str(), again["resent"].as_bool()), (Some(id.as_str()), Some(true)));
    }
    let r = api.call("post", "/api/verifications", post("/api/verifications", json!({ "to": to, "service": "Shop" })), 429).await;
    assert_eq!(r["error"]["code"], "max_sends_reached");
    api.call("post", "/api/verifications", post("/api/verifications", json!({ "to": "12" })), 400).await;
    api.call("post", "/api/verifications", post("/api/verifications", json!({ "to": fresh_number(), "service": "Nope" })), 404).await;
    let stopped = fresh_number();
    let sql = format!("INSERT INTO opt_outs (number, created_at) VALUES ('{stopped}', 0)");
    phonegate_store::testing::execute(&app.database_url, &sql).await.unwrap();
    let r = api.call("post", "/api/verifications", post("/api/verifications", json!({ "to": stopped })), 403).await;
    assert_eq!(r["error"]["code"], "recipient_opted_out");
    // A provider that refuses every connection: the verification fails, and the error names it.
    let failing = TestApp::spawn_with(|c| {
        c.providers.insert("gw".into(), providers::http("http://127.0.0.1:9/sms", 30_000));
    })
    .await;
    let request =
        failing.client.post(failing.url("/api/verifications")).bearer_auth(&failing.secret).json(&json!({ "to": fresh_number() }));
    let r = api.call("post", "/api/verifications", request, 502).await;
    assert_eq!(r["error"]["code"], "delivery_failed");
    assert!(r["error"]["verification_id"].as_str().is_some_and(|v| v.starts_with("VE")), "{r}");

    // Silent verification, on a server with the simulator: coverage, an auto verification
    // waiting for the device, and its fallback to SMS.
    let sim = TestApp::spawn_with(|c| c.silent.simulator = true).await;
    let sim_post = |path: &str, body: Value| sim.client.post(sim.url(path)).bearer_auth(&sim.secret).json(&body);
    let r = api.call("get", "/api/coverage", sim.client.get(sim.url("/api/coverage")), 200).await;
    assert_eq!(r["available"], true);
    let r = api.call("get", "/api/coverage", sim.client.get(sim.url("/api/coverage?sim=wifi")), 200).await;
    assert_eq!(r["reason"], "wifi");
    api.call("get", "/api/coverage", sim.client.get(sim.url("/api/coverage?sim=perhaps")), 400).await;
    api.call("get", "/api/coverage", sim.client.get(sim.url("/api/coverage")).bearer_auth("sk_nope"), 401).await;
    let auto = json!({ "to": fresh_number(), "channel": "auto" });
    let auto = api.call("post", "/api/verifications", sim_post("/api/verifications", auto), 201).await;
    assert!(auto["silent"]["check_url"].as_str().is_some_and(|u| u.contains("/silent/")), "{auto}");
    let path = format!("/api/verifications/{}", auto["id"].as_str().unwrap());
    let r = api.call("get", "/api/verifications/{id}", sim.client.get(sim.url(&path)).bearer_auth(&sim.secret), 200).await;
    assert_eq!(r["silent"]["status"], "created");
    let fallback = format!("{path}/fallback");
    let r = api.call("post", "/api/verifications/{id}/fallback", sim_post(&fallback, json!({})), 200).await;
    assert_eq!(r["code_sent"], true);
    let r = api.call("post", "/api/verifications/{id}/fallback", sim_post(&fallback, json!({})), 409).await;
    assert_eq!(r["error"]["code"], "no_silent_check");
    let unknown = "/api/verifications/VE0123456789abcdef0123456789abcdef/fallback";
    api.call("post", "/api/verifications/{id}/fallback", sim_post(unknown, json!({})), 404).await;

    // The dev outbox.
    let outbox = api.call("get", "/api/dev/outbox", get("/api/dev/outbox").query(&[("to", &to)]), 200).await;
    assert_eq!(outbox["messages"].as_array().map(Vec::len), Some(5), "{outbox}");
    api.call("get", "/api/dev/outbox", get("/api/dev/outbox?to=abc"), 400).await;

    // Reading a verification, with its five messages.
    let detail = api.call("get", "/api/verifications/{id}", get(&format!("/api/verifications/{id}")), 200).await;
    assert_eq!(detail["messages"].as_array().map(Vec::len), Some(5), "{detail}");
    api.call("get", "/api/verifications/{id}", get("/api/verifications/VE0123456789abcdef0123456789abcdef"), 404).await;

    // Checking by id: wrong, malformed, right, then no longer pending.
    let code = app.code_for(&to).await;
    assert_eq!(code.len(), 8, "Shop's codes have 8 digits");
    let check = format!("/api/verifications/{id}/check");
    let r = api.call("post", "/api/verifications/{id}/check", post(&check, json!({ "code": wrong(&code) })), 200).await;
    assert_eq!(r["valid"], false);
    api.call("post", "/api/verifications/{id}/check", post(&check, json!({ "code": "12" })), 400).await;
    let r = api.call("post", "/api/verifications/{id}/check", post(&check, json!({ "code": code })), 200).await;
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("approved"), Some(true)));
    let r = api.call("post", "/api/verifications/{id}/check", post(&check, json!({ "code": code })), 409).await;
    assert_eq!(r["error"]["code"], "verification_approved");
    let unknown = "/api/verifications/VE0123456789abcdef0123456789abcdef/check";
    api.call("post", "/api/verifications/{id}/check", post(unknown, json!({ "code": "123456" })), 404).await;

    // Cancelling.
    let other = api.call("post", "/api/verifications", post("/api/verifications", json!({ "to": fresh_number() })), 201).await;
    let cancel = format!("/api/verifications/{}/cancel", other["id"].as_str().unwrap());
    let r = api.call("post", "/api/verifications/{id}/cancel", post(&cancel, json!({})), 200).await;
    assert_eq!(r["status"], "canceled");
    api.call("post", "/api/verifications/{id}/cancel", post(&cancel, json!({})), 409).await;
    let unknown = "/api/verifications/VE0123456789abcdef0123456789abcdef/cancel";
    api.call("post", "/api/verifications/{id}/cancel", post(unknown, json!({})), 404).await;

    // A workflow's next step, until none is left; a number's fourth call in ten minutes is over
    // the voice budget.
    let steps = json!({ "to": fresh_number(), "workflow": [{ "channel": "sms", "timeout_secs": 900 }, { "channel": "voice" }, { "channel": "voice" }, { "channel": "voice" }, { "channel": "voice" }] });
    let flow = api.call("post", "/api/verifications", post("/api/verifications", steps), 201).await;
    let next = format!("/api/verifications/{}/next", flow["id"].as_str().unwrap());
    for step in 1..=3 {
        let r = api.call("post", "/api/verifications/{id}/next", post(&next, json!({})), 200).await;
        assert_eq!(r["step"], step, "{r}");
    }
    let r = api.call("post", "/api/verifications/{id}/next", post(&next, json!({})), 429).await;
    assert_eq!(r["error"]["code"], "send_budget_exceeded");
    let single = api.call("post", "/api/verifications", post("/api/verifications", json!({ "to": fresh_number() })), 201).await;
    let last = format!("/api/verifications/{}/next", single["id"].as_str().unwrap());
    let r = api.call("post", "/api/verifications/{id}/next", post(&last, json!({})), 409).await;
    assert_eq!(r["error"]["code"], "no_next_step");
    let unknown = "/api/verifications/VE0123456789abcdef0123456789abcdef/next";
    api.call("post", "/api/verifications/{id}/next", post(unknown, json!({})), 404).await;

    // Ten wrong codes for one number (the default guess budget per hour, across verifications)
    // lock its checks: 429 on both check endpoints, even for the right code.
    let locked = fresh_number();
    for round in 0..3 {
        app.advance(chrono::Duration::seconds(1));
        let v = api.call("post", "/api/verifications", post("/api/verifications", json!({ "to": locked })), 201).await;
        let path = format!("/api/verifications/{}/check", v["id"].as_str().unwrap());
        let code = app.code_for(&locked).await;
        if round < 2 {
            for _ in 0..5 {
                api.call("post", "/api/verifications/{id}/check", post(&path, json!({ "code": wrong(&code) })), 200).await;
            }
            continue;
        }
        let r = api.call("post", "/api/verifications/{id}/check", post(&path, json!({ "code": code })), 429).await;
        assert_eq!(r["error"]["code"], "checks_locked");
        let by_number = post("/api/verifications/check", json!({ "to": locked, "code": code }));
        api.call("post", "/api/verifications/check", by_number, 429).await;
    }

    // Checking by number; last, because it lets the codes expire.
    let to = fresh_number();
    api.call("post", "/api/verifications", post("/api/verifications", json!({ "to": to })), 201).await;
    let code = app.code_for(&to).await;
    let by_number = |to: &str, code: &str| post("/api/verifications/check", json!({ "to": to, "code": code }));
    let r = api.call("post", "/api/verifications/check", by_number(&to, &wrong(&code)), 200).await;
    assert_eq!(r["valid"], false);
    api.call("post", "/api/verifications/check", by_number("12", &code), 400).await;
    // Nothing pending, or nothing pending any more: answered as a wrong code.
    let r = api.call("post", "/api/verifications/check", by_number(&fresh_number(), &code), 200).await;
    assert_eq!(r["valid"], false);
    let unknown = post("/api/verifications/check", json!({ "to": to, "code": code, "service": "Nope" }));
    let r = api.call("post", "/api/verifications/check", unknown, 404).await;
    assert_eq!(r["error"]["code"], "service_not_found");
    app.advance(chrono::Duration::minutes(11));
    let r = api.call("post", "/api/verifications/check", by_number(&to, &code), 200).await;
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("pending"), Some(false)));

    accounts(&mut api, &app).await;
    password(&mut api, &app).await;
    email(&mut api, &app).await;
    admin(&mut api, &app).await;

    // Metrics last, so they have something to count.
    api.call("get", "/metrics", client.get(url("/metrics")), 200).await;

    let missing: Vec<_> = api.responses().difference(&api.seen).cloned().collect();
    assert!(missing.is_empty(), "documented responses this test never produced: {missing:?}");
}

/// Every documented answer of the account endpoints.
async fn accounts(api: &mut Contract, app: &TestApp) {
    let (client, url) = (&app.client, |path: &str| app.url(path));
    let anon = |path: &str, body: Value| client.post(url(path)).json(&body);
    api.call("get", "/.well-known/jwks.json", client.get(url("/.well-known/jwks.json")), 200).await;

    // Sign-up, and every refusal of it.
    let phone = fresh_number();
    let before = app.outbox(&phone).await;
    let flow = api.call("post", "/api/auth/signup", anon("/api/auth/signup", json!({ "username": "contract", "phone": phone })), 202).await;
    let code = app.code_after(&phone, &before).await;
    api.call("post", "/api/auth/signup", anon("/api/auth/signup", json!({ "username": "no way", "phone": phone })), 400).await;
    api.call("post", "/api/auth/resend", anon("/api/auth/resend", json!({ "flow_id": flow["flow_id"] })), 429).await;
    api.call("post", "/api/auth/resend", anon("/api/auth/resend", json!({ "flow_id": "fl0123456789abcdef0123456789abcdef" })), 404).await;
    app.advance(chrono::Duration::seconds(31));
    api.call("post", "/api/auth/resend", anon("/api/auth/resend", json!({ "flow_id": flow["flow_id"] })), 202).await;
    let verify = |flow: &Value, code: &str| anon("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code }));
    api.call("post", "/api/auth/verify", verify(&flow, &wrong(&code)), 400).await;
    // A code flow has no operator check to finish.
    let silently = anon("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "silent": true }));
    let r = api.call("post", "/api/auth/verify", silently, 409).await;
    assert_eq!(r["error"]["code"], "no_silent_check");
    let signed = api.call("post", "/api/auth/verify", verify(&flow, &code), 200).await;
    api.call("post", "/api/auth/verify", verify(&flow, &code), 404).await;
    api.call("post", "/api/auth/signup", anon("/api/auth/signup", json!({ "username": "CONTRACT", "phone": fresh_number() })), 409).await;
    // A number's sends are limited: the sixth sign-up within ten minutes is refused.
    let busy = fresh_number();
    for _ in 0..5 {
        api.call("post", "/api/auth/signup", anon("/api/auth/signup", json!({ "username": "busy", "phone": busy })), 202).await;
    }
    api.call("post", "/api/auth/signup", anon("/api/auth/signup", json!({ "username": "busy", "phone": busy })), 429).await;

    // Logins: 202 whatever the account; a throttled account 429; a body of neither kind 400.
    api.call("post", "/api/auth/login", anon("/api/auth/login", json!({ "phone": fresh_number() })), 202).await;
    // (A name nobody has: a wrong password for an account costs a code to its number.)
    for _ in 0..5 {
        let wrong_password = anon("/api/auth/login", json!({ "identifier": "nobody.here", "password": "not the password" }));
        api.call("post", "/api/auth/login", wrong_password, 202).await;
    }
    let throttled = anon("/api/auth/login", json!({ "identifier": "nobody.here", "password": "again wrong" }));
    api.call("post", "/api/auth/login", throttled, 429).await;
    api.call("post", "/api/auth/login", anon("/api/auth/login", json!({ "identifier": "contract" })), 400).await;

    // Locked and expired codes.
    let (lock, late) = (fresh_number(), fresh_number());
    let locked = api.call("post", "/api/auth/signup", anon("/api/auth/signup", json!({ "username": "locked", "phone": lock })), 202).await;
    let lock_code = app.code_after(&lock, &[]).await;
    for _ in 0..4 {
        api.call("post", "/api/auth/verify", verify(&locked, &wrong(&lock_code)), 400).await;
    }
    api.call("post", "/api/auth/verify", verify(&locked, &wrong(&lock_code)), 429).await;
    let expiring = api.call("post", "/api/auth/signup", anon("/api/auth/signup", json!({ "username": "late", "phone": late })), 202).await;
    let late_code = app.code_after(&late, &[]).await;
    app.advance(chrono::Duration::seconds(601));
    api.call("post", "/api/auth/verify", verify(&expiring, &late_code), 410).await;

    // The signed-in user.
    let token = signed["access_token"].as_str().unwrap().to_string();
    let refreshed =
        api.call("post", "/api/auth/refresh", anon("/api/auth/refresh", json!({ "refresh_token": signed["refresh_token"] })), 200).await;
    api.call("post", "/api/auth/refresh", anon("/api/auth/refresh", json!({ "refresh_token": "rt_nope" })), 401).await;
    let token = refreshed["access_token"].as_str().map(str::to_string).unwrap_or(token);
    let bearer = |r: RequestBuilder| r.bearer_auth(&token);
    api.call("get", "/api/me", bearer(client.get(url("/api/me"))), 200).await;
    api.call("get", "/api/me", client.get(url("/api/me")), 401).await;
    api.call("get", "/api/auth/forward", bearer(client.get(url("/api/auth/forward"))), 200).await;
    api.call("get", "/api/auth/forward", client.get(url("/api/auth/forward")), 401).await;
    let list = api.call("get", "/api/me/sessions", bearer(client.get(url("/api/me/sessions"))), 200).await;
    api.call("get", "/api/me/sessions", client.get(url("/api/me/sessions")), 401).await;
    let session = list["sessions"][0]["id"].as_str().unwrap().to_string();
    api.call("delete", "/api/me/sessions/{id}", bearer(client.delete(url("/api/me/sessions/ss0123456789abcdef0123456789abcdef"))), 404)
        .await;
    api.call("delete", "/api/me/sessions/{id}", client.delete(url(&format!("/api/me/sessions/{session}"))), 401).await;

    // Phone change: only after a recent login (403), then to a number another account has
    // (409), then to a free one.
    let stale = bearer(client.post(url("/api/me/phone"))).json(&json!({ "phone": fresh_number() }));
    api.call("post", "/api/me/phone", stale, 403).await;
    let token = app.log_in(&phone).await["access_token"].as_str().unwrap().to_string();
    let bearer = |r: RequestBuilder| r.bearer_auth(&token);
    let taken = fresh_number();
    app.sign_up("taken", &taken, None).await;
    let change = |phone: &str| bearer(client.post(url("/api/me/phone"))).json(&json!({ "phone": phone }));
    api.call("post", "/api/me/phone", change("12"), 400).await;
    api.call("post", "/api/me/phone", client.post(url("/api/me/phone")).json(&json!({ "phone": taken })), 401).await;
    let before = app.outbox(&taken).await;
    let to_taken = api.call("post", "/api/me/phone", change(&taken), 202).await;
    let taken_code = app.code_after(&taken, &before).await;
    let verify_phone = |flow: &Value, code: &str| {
        bearer(client.post(url("/api/me/phone/verify"))).json(&json!({ "flow_id": flow["flow_id"], "code": code }))
    };
    api.call("post", "/api/me/phone/verify", verify_phone(&to_taken, &wrong(&taken_code)), 400).await;
    api.call("post", "/api/me/phone/verify", verify_phone(&to_taken, &taken_code), 409).await;
    let new_phone = fresh_number();
    let to_new = api.call("post", "/api/me/phone", change(&new_phone), 202).await;
    let new_code = app.code_after(&new_phone, &[]).await;
    let anonymous = client.post(url("/api/me/phone/verify")).json(&json!({ "flow_id": to_new["flow_id"], "code": new_code }));
    api.call("post", "/api/me/phone/verify", anonymous, 401).await;
    api.call("post", "/api/me/phone/verify", verify_phone(&json!({ "flow_id": "fl0123456789abcdef0123456789abcdef" }), &new_code), 404)
        .await;
    let me = api.call("post", "/api/me/phone/verify", verify_phone(&to_new, &new_code), 200).await;
    assert_eq!(me["phone_number"], new_phone.as_str());

    // A change the session cookie would sign in, sent from another site.
    let victim = fresh_number();
    let (flow, code) = app.flow_code("/api/auth/signup", json!({ "username": "victim", "phone": victim }), &victim).await;
    let r = anon("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let forged = |r: RequestBuilder| r.header("cookie", &cookie).header("origin", "https://evil.example");
    for (method, path, request) in [
        ("post", "/api/auth/logout", client.post(url("/api/auth/logout"))),
        ("delete", "/api/me", client.delete(url("/api/me"))),
        ("delete", "/api/me/sessions/{id}", client.delete(url(&format!("/api/me/sessions/{session}")))),
        ("post", "/api/me/phone", client.post(url("/api/me/phone")).json(&json!({ "phone": fresh_number() }))),
        ("post", "/api/me/phone/verify", client.post(url("/api/me/phone/verify")).json(&json!({ "flow_id": "fl0", "code": "000000" }))),
    ] {
        let r = api.call(method, path, forged(request), 403).await;
        assert_eq!(r["error"]["code"], "csrf_failed");
    }

    // Ending it all.
    api.call("delete", "/api/me/sessions/{id}", bearer(client.delete(url(&format!("/api/me/sessions/{session}")))), 204).await;
    api.call("post", "/api/auth/logout", client.post(url("/api/auth/logout")), 401).await;
    api.call("post", "/api/auth/logout", bearer(client.post(url("/api/auth/logout"))), 204).await;
    api.call("delete", "/api/me", client.delete(url("/api/me")), 401).await;
    // The logged-out session's token no longer deletes the account; a fresh login does.
    api.call("delete", "/api/me", bearer(client.delete(url("/api/me"))), 401).await;
    // A session whose login is older than ten minutes must log in again, even with a new token.
    let refresh = app.log_in(&new_phone).await["refresh_token"].clone();
    app.advance(chrono::Duration::seconds(601));
    let renewed = app.anon_post("/api/auth/refresh", json!({ "refresh_token": refresh })).await.json::<Value>().await.unwrap();
    let stale = client.delete(url("/api/me")).bearer_auth(renewed["access_token"].as_str().unwrap());
    let r = api.call("delete", "/api/me", stale, 403).await;
    assert_eq!(r["error"]["code"], "reauthentication_required");
    let token = app.log_in(&new_phone).await["access_token"].as_str().unwrap().to_string();
    api.call("delete", "/api/me", client.delete(url("/api/me")).bearer_auth(&token), 204).await;
}

/// Every documented answer of `POST /api/me/password`.
async fn password(api: &mut Contract, app: &TestApp) {
    // New windows for the address's login budget, which the flows above used.
    app.advance(chrono::Duration::minutes(16));
    let signed = app.sign_up("passworded", &fresh_number(), None).await;
    let token = signed["access_token"].as_str().unwrap().to_string();
    let set = |body: Value| app.client.post(app.url("/api/me/password")).bearer_auth(&token).json(&body);
    let path = "/api/me/password";
    api.call("post", path, app.client.post(app.url(path)).json(&json!({ "new_password": "correct horse" })), 401).await;
    api.call("post", path, set(json!({ "new_password": "short" })), 400).await;
    let user = api.call("post", path, set(json!({ "new_password": "correct horse" })), 200).await;
    assert_eq!(user["has_password"], true);
    let wrong = json!({ "new_password": "battery staple", "current_password": "wrong horse" });
    for _ in 0..5 {
        let r = api.call("post", path, set(wrong.clone()), 400).await;
        assert_eq!(r["error"]["code"], "password_incorrect");
    }
    let r = api.call("post", path, set(wrong), 429).await;
    assert_eq!(r["error"]["code"], "login_throttled");
    // A first password needs a recent login.
    let stale = app.sign_up("stale.pass", &fresh_number(), None).await;
    app.advance(chrono::Duration::seconds(601));
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": stale["refresh_token"] })).await;
    let later = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let request = app.client.post(app.url(path)).bearer_auth(&later).json(&json!({ "new_password": "correct horse" }));
    let r = api.call("post", path, request, 403).await;
    assert_eq!(r["error"]["code"], "reauthentication_required");
}

/// Every documented answer of `POST /api/me/email` and `/api/me/email/verify`.
async fn email(api: &mut Contract, app: &TestApp) {
    app.advance(chrono::Duration::minutes(16));
    let signed = app.sign_up("mailbox", &fresh_number(), None).await;
    let token = signed["access_token"].as_str().unwrap().to_string();
    let (change, verify) = ("/api/me/email", "/api/me/email/verify");
    let post = |path: &str, body: Value| app.client.post(app.url(path)).bearer_auth(&token).json(&body);
    let address = |name: &str| format!("{name}.{}@example.com", &fresh_number()[6..]);
    let sql = |q: String| async move { phonegate_store::testing::execute(&app.database_url, &q).await.unwrap() };
    api.call("post", change, app.client.post(app.url(change)).json(&json!({ "email": address("anon") })), 401).await;
    api.call("post", change, post(change, json!({ "email": "not-an-address" })), 400).await;
    let first = address("box");
    api.call("post", change, post(change, json!({ "email": first })), 202).await;
    let code = app.code_after(&first, &[]).await;
    api.call("post", verify, post(verify, json!({ "code": wrong(&code) })), 400).await;
    api.call("post", verify, app.client.post(app.url(verify)).json(&json!({ "code": code })), 401).await;
    let missing = json!({ "code": code, "flow_id": "fl0123456789abcdef0123456789abcdef" });
    api.call("post", verify, post(verify, missing), 404).await;
    // Another account verified the address meanwhile: refused, and nothing of the check stays.
    app.sign_up("other.box", &fresh_number(), None).await;
    let lc = first.to_lowercase();
    sql(format!("UPDATE users SET email = '{first}', email_lc = '{lc}', email_verified = 1 WHERE username_lc = 'other.box'")).await;
    let r = api.call("post", verify, post(verify, json!({ "code": code })), 409).await;
    assert_eq!(r["error"]["code"], "email_taken");
    sql("UPDATE users SET email = NULL, email_lc = NULL, email_verified = 0 WHERE username_lc = 'other.box'".into()).await;
    let user = api.call("post", verify, post(verify, json!({ "code": code })), 200).await;
    assert_eq!((user["email"].as_str(), user["email_verified"].as_bool()), (Some(first.as_str()), Some(true)));
    // An address gets five codes in ten minutes; a flow five guesses.
    let second = address("busy");
    for _ in 0..5 {
        api.call("post", change, post(change, json!({ "email": second })), 202).await;
    }
    let r = api.call("post", change, post(change, json!({ "email": second })), 429).await;
    assert_eq!(r["error"]["code"], "send_budget_exceeded");
    for _ in 0..4 {
        api.call("post", verify, post(verify, json!({ "code": "00000000" })), 400).await;
    }
    let r = api.call("post", verify, post(verify, json!({ "code": "00000000" })), 429).await;
    assert_eq!(r["error"]["code"], "code_locked");
    // A change started late in the login's recent time: its code outlives the login's freshness
    // (403), then expires (410).
    app.advance(chrono::Duration::minutes(4));
    let late = api.call("post", change, post(change, json!({ "email": address("late") })), 202).await;
    app.advance(chrono::Duration::seconds(361));
    // (A new access token: the first one lived five minutes. The login stays as old as it was.)
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": signed["refresh_token"] })).await;
    let token = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let post = |path: &str, body: Value| app.client.post(app.url(path)).bearer_auth(&token).json(&body);
    let r = api.call("post", verify, post(verify, json!({ "code": "000000" })), 403).await;
    assert_eq!(r["error"]["code"], "reauthentication_required");
    let r = api.call("post", change, post(change, json!({ "email": address("stale") })), 403).await;
    assert_eq!(r["error"]["code"], "reauthentication_required");
    app.advance(chrono::Duration::seconds(240));
    let r = api.call("post", verify, post(verify, json!({ "code": "000000", "flow_id": late["flow_id"] })), 410).await;
    assert_eq!(r["error"]["code"], "code_expired");
}

/// Every documented answer of the admin endpoints.
async fn admin(api: &mut Contract, app: &TestApp) {
    let (client, url) = (&app.client, |path: &str| app.url(path));
    let admin_phone = fresh_number();
    app.state.accounts.create_admin(&phonegate_core::Caller::system("tests"), "chief", &admin_phone).await.unwrap();
    let admin = app.log_in(&admin_phone).await;
    let member = app.sign_up("someone", &fresh_number(), None).await;
    let (admin, member_token) = (admin["access_token"].as_str().unwrap().to_string(), member["access_token"].as_str().unwrap().to_string());
    let id = member["user"]["id"].as_str().unwrap().to_string();
    let chief = app.state.accounts.members(&app.state.accounts.authenticate_bearer(&admin.as_str().into()).await.unwrap()).await.unwrap();
    let chief = chief.iter().find(|m| m.user.username == "chief").unwrap().user.id.clone();
    let as_ = |token: &str, method: reqwest::Method, path: &str| client.request(method, url(path)).bearer_auth(token);
    let (get, put, delete) = (reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE);
    let missing = "/api/admin/members/us0123456789abcdef0123456789abcdef";

    api.call("get", "/api/admin/members", as_(&admin, get.clone(), "/api/admin/members"), 200).await;
    api.call("get", "/api/admin/members", client.get(url("/api/admin/members")), 401).await;
    api.call("get", "/api/admin/members", as_(&member_token, get.clone(), "/api/admin/members"), 403).await;

    let promote = format!("/api/admin/members/{id}/admin");
    api.call("put", "/api/admin/members/{id}/admin", as_(&admin, put.clone(), &promote), 200).await;
    api.call("put", "/api/admin/members/{id}/admin", client.put(url(&promote)), 401).await;
    api.call("delete", "/api/admin/members/{id}/admin", as_(&admin, delete.clone(), &promote), 200).await;
    api.call("put", "/api/admin/members/{id}/admin", as_(&member_token, put.clone(), &promote), 403).await;
    api.call("put", "/api/admin/members/{id}/admin", as_(&admin, put.clone(), &format!("{missing}/admin")), 404).await;
    api.call("delete", "/api/admin/members/{id}/admin", client.delete(url(&promote)), 401).await;
    api.call("delete", "/api/admin/members/{id}/admin", as_(&member_token, delete.clone(), &promote), 403).await;
    api.call("delete", "/api/admin/members/{id}/admin", as_(&admin, delete.clone(), &format!("{missing}/admin")), 404).await;
    let last = format!("/api/admin/members/{chief}/admin");
    api.call("delete", "/api/admin/members/{id}/admin", as_(&admin, delete.clone(), &last), 409).await;

    let sessions = format!("/api/admin/members/{id}/sessions");
    let list = api.call("get", "/api/admin/members/{id}/sessions", as_(&admin, get.clone(), &sessions), 200).await;
    api.call("get", "/api/admin/members/{id}/sessions", client.get(url(&sessions)), 401).await;
    api.call("get", "/api/admin/members/{id}/sessions", as_(&member_token, get.clone(), &sessions), 403).await;
    api.call("get", "/api/admin/members/{id}/sessions", as_(&admin, get.clone(), &format!("{missing}/sessions")), 404).await;
    let one = format!("{sessions}/{}", list["sessions"][0]["id"].as_str().unwrap());
    let path = "/api/admin/members/{id}/sessions/{session}";
    api.call("delete", path, client.delete(url(&one)), 401).await;
    api.call("delete", path, as_(&member_token, delete.clone(), &one), 403).await;
    api.call("delete", path, as_(&admin, delete.clone(), &one), 204).await;
    api.call("delete", path, as_(&admin, delete.clone(), &one), 404).await;

    let remove = format!("/api/admin/members/{id}");
    let other = app.sign_up("another", &fresh_number(), None).await;
    let other_token = other["access_token"].as_str().unwrap();
    api.call("delete", "/api/admin/members/{id}", client.delete(url(&remove)), 401).await;
    api.call("delete", "/api/admin/members/{id}", as_(other_token, delete.clone(), &remove), 403).await;
    api.call("delete", "/api/admin/members/{id}", as_(&admin, delete.clone(), &format!("/api/admin/members/{chief}")), 409).await;
    api.call("delete", "/api/admin/members/{id}", as_(&admin, delete.clone(), &remove), 204).await;
    api.call("delete", "/api/admin/members/{id}", as_(&admin, delete.clone(), &remove), 404).await;

    // Invites.
    let post = reqwest::Method::POST;
    let invite = |token: &str, body: Value| as_(token, post.clone(), "/api/admin/invites").json(&body);
    let created = api.call("post", "/api/admin/invites", invite(&admin, json!({ "phone": fresh_number() })), 201).await;
    api.call("post", "/api/admin/invites", invite(&admin, json!({ "phone": "12" })), 400).await;
    api.call("post", "/api/admin/invites", invite(&admin, json!({ "phone": fresh_number(), "username": "nobody" })), 404).await;
    api.call("post", "/api/admin/invites", client.post(url("/api/admin/invites")).json(&json!({ "phone": fresh_number() })), 401).await;
    api.call("post", "/api/admin/invites", invite(other_token, json!({ "phone": fresh_number() })), 403).await;
    api.call("get", "/api/admin/invites", as_(&admin, get.clone(), "/api/admin/invites"), 200).await;
    api.call("get", "/api/admin/invites", client.get(url("/api/admin/invites")), 401).await;
    api.call("get", "/api/admin/invites", as_(other_token, get.clone(), "/api/admin/invites"), 403).await;
    let one = format!("/api/admin/invites/{}", created["id"].as_str().unwrap());
    let resend = format!("{one}/resend");
    let missing = "/api/admin/invites/iv0123456789abcdef0123456789abcdef";
    api.call("post", "/api/admin/invites/{id}/resend", as_(&admin, post.clone(), &resend), 200).await;
    api.call("post", "/api/admin/invites/{id}/resend", client.post(url(&resend)), 401).await;
    api.call("post", "/api/admin/invites/{id}/resend", as_(other_token, post.clone(), &resend), 403).await;
    api.call("post", "/api/admin/invites/{id}/resend", as_(&admin, post.clone(), &format!("{missing}/resend")), 404).await;
    api.call("delete", "/api/admin/invites/{id}", client.delete(url(&one)), 401).await;
    api.call("delete", "/api/admin/invites/{id}", as_(other_token, delete.clone(), &one), 403).await;
    api.call("delete", "/api/admin/invites/{id}", as_(&admin, delete.clone(), &one), 204).await;
    api.call("delete", "/api/admin/invites/{id}", as_(&admin, delete.clone(), missing), 404).await;
    api.call("post", "/api/admin/invites/{id}/resend", as_(&admin, post.clone(), &resend), 409).await;
    // A used invite cannot be revoked.
    let used_phone = fresh_number();
    let used = api.call("post", "/api/admin/invites", invite(&admin, json!({ "phone": used_phone })), 201).await;
    let sql = format!("UPDATE invites SET used_at = 1 WHERE id = '{}'", used["id"].as_str().unwrap());
    phonegate_store::testing::execute(&app.database_url, &sql).await.unwrap();
    let used_path = format!("/api/admin/invites/{}", used["id"].as_str().unwrap());
    api.call("delete", "/api/admin/invites/{id}", as_(&admin, delete.clone(), &used_path), 409).await;

    // The invite code and the audit log.
    for (method, path) in [("get", "/api/admin/invite-code"), ("post", "/api/admin/invite-code/rotate"), ("get", "/api/admin/audit")] {
        let m: reqwest::Method = method.to_uppercase().parse().unwrap();
        api.call(method, path, as_(&admin, m.clone(), path), 200).await;
        api.call(method, path, client.request(m.clone(), url(path)), 401).await;
        api.call(method, path, as_(other_token, m, path), 403).await;
    }
    let filtered = "/api/admin/audit?kind=invite_created&since=2020-01-01T00:00:00Z&limit=5";
    let log = api.call("get", "/api/admin/audit", as_(&admin, get.clone(), filtered), 200).await;
    assert!(!log["events"].as_array().unwrap().is_empty());
    api.call("get", "/api/admin/audit", as_(&admin, get.clone(), "/api/admin/audit?since=yesterday"), 400).await;

    // OpenID clients, and a person's apps.
    let clients = "/api/admin/oidc/clients";
    let body = json!({ "name": "Wiki", "redirect_uris": ["https://wiki.example/cb"] });
    let made = api.call("post", clients, as_(&admin, post.clone(), clients).json(&body), 201).await;
    assert!(made["client_secret"].as_str().unwrap().starts_with("cs_"));
    api.call(
        "post",
        clients,
        as_(&admin, post.clone(), clients).json(&json!({ "name": "x", "redirect_uris": ["http://evil.example/cb"] })),
        400,
    )
    .await;
    api.call("post", clients, client.post(url(clients)).json(&body), 401).await;
    api.call("post", clients, as_(other_token, post.clone(), clients).json(&body), 403).await;
    api.call("get", clients, as_(&admin, get.clone(), clients), 200).await;
    api.call("get", clients, client.get(url(clients)), 401).await;
    api.call("get", clients, as_(other_token, get.clone(), clients), 403).await;
    let one = format!("{clients}/{}", made["client_id"].as_str().unwrap());
    let rekey = format!("{one}/secret");
    let path = "/api/admin/oidc/clients/{client_id}/secret";
    api.call("post", path, as_(&admin, post.clone(), &rekey), 200).await;
    api.call("post", path, as_(&admin, post.clone(), &format!("{clients}/oc_missing/secret")), 404).await;
    api.call("post", path, client.post(url(&rekey)), 401).await;
    api.call("post", path, as_(other_token, post.clone(), &rekey), 403).await;
    let path = "/api/admin/oidc/clients/{client_id}";
    api.call("delete", path, client.delete(url(&one)), 401).await;
    api.call("delete", path, as_(other_token, delete.clone(), &one), 403).await;
    api.call("delete", path, as_(&admin, delete.clone(), &one), 204).await;
    api.call("delete", path, as_(&admin, delete.clone(), &one), 404).await;
    api.call("delete", path, as_(&admin, delete.clone(), &format!("{clients}/a%2Fb")), 404).await;
    api.call("get", "/api/me/apps", as_(&admin, get.clone(), "/api/me/apps"), 200).await;
    api.call("get", "/api/me/apps", client.get(url("/api/me/apps")), 401).await;
    api.call("post", "/api/admin/oidc/clients/{client_id}/secret", as_(&admin, post.clone(), &format!("{clients}/rp/secret")), 400).await;
    api.call("delete", "/api/admin/oidc/clients/{client_id}", as_(&admin, delete.clone(), &format!("{clients}/rp")), 400).await;
    // The admin allows the configured client (as the consent page would), then takes it back.
    let me = app.state.accounts.authenticate_bearer(&secrecy::SecretString::from(admin.clone())).await.unwrap();
    let request = phonegate_core::oidc::AuthRequest {
        client_id: Some("rp".into()),
        redirect_uri: Some("https://rp.example/cb".into()),
        response_type: Some("code".into()),
        scope: Some("openid phone".into()),
        ..Default::default()
    };
    let caller = phonegate_core::Caller::system("tests");
    app.state.oidc.consent(&caller, app.state.oidc.pending(request), &me, true).await.unwrap();
    let listed = api.call("get", "/api/me/apps", as_(&admin, get.clone(), "/api/me/apps"), 200).await;
    assert_eq!(listed["apps"][0]["client_id"], "rp");
    api.call("delete", "/api/me/apps/{client_id}", as_(&admin, delete.clone(), "/api/me/apps/rp"), 204).await;
    api.call("delete", "/api/me/apps/{client_id}", as_(&admin, delete.clone(), "/api/me/apps/nobody"), 404).await;
    api.call("delete", "/api/me/apps/{client_id}", client.delete(url("/api/me/apps/nobody")), 401).await;
}
