//! phonegate's Twilio Verify v2 and Vonage Verify v1 answers, validated against the vendors' own
//! published OpenAPI documents (vendored in `specs/`): every implemented endpoint, success and
//! error bodies, and no field the vendor's schema does not declare.
use crate::helpers::{TestApp, eventually, fresh_number, wrong};
use crate::schema::Schemas;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

/// A vendor's OpenAPI 3.0 document, its schemas read as JSON Schema.
struct Spec {
    name: &'static str,
    doc: Value,
}

/// OpenAPI 3.0 schema → JSON Schema: `nullable` becomes a `null` alternative. The vendors'
/// `oneOf` alternatives overlap (Vonage's success and error bodies both accept status "0"), so
/// they are read as `anyOf`.
fn json_schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut out: Map<String, Value> = o
                .iter()
                .filter(|(k, _)| k.as_str() != "nullable" && k.as_str() != "example" && k.as_str() != "examples")
                .map(|(k, v)| (if k == "oneOf" { "anyOf".to_string() } else { k.clone() }, json_schema(v)))
                .collect();
            if o.get("nullable") == Some(&Value::Bool(true)) {
                let inner = Value::Object(std::mem::take(&mut out));
                out.insert("anyOf".into(), json!([inner, { "type": "null" }]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

impl Spec {
    fn load(name: &'static str, text: &str) -> Spec {
        Spec { name, doc: serde_json::from_str(text).expect("a vendored document") }
    }

    fn twilio() -> Spec {
        Spec::load("Twilio", include_str!("specs/twilio_verify_v2.json"))
    }

    fn vonage() -> Spec {
        Spec::load("Vonage", include_str!("specs/vonage_verify.json"))
    }

    fn vonage_v2() -> Spec {
        Spec::load("Vonage v2", include_str!("specs/vonage_verify_v2.json"))
    }

    /// A Vonage Verify v2 answer (its paths are relative to `/v2/verify`): JSON for a success,
    /// a problem body for an error; `extra` as in `check_content`.
    async fn check_v2(&self, method: &str, path: &str, r: reqwest::Response, status: u16, extra: &[&str]) -> Value {
        let what = format!("{} {} {path} → {status}", self.name, method.to_uppercase());
        assert_eq!(r.status().as_u16(), status, "{what}");
        let media_type = if status >= 400 { "application/problem+json" } else { "application/json" };
        assert_eq!(r.headers()["content-type"], media_type, "{what}");
        let body: Value = r.json().await.unwrap();
        let response = self.doc["paths"][path][method]["responses"].get(status.to_string()).cloned();
        let response = response.unwrap_or_else(|| panic!("{what}: status not documented"));
        self.check_content(&what, &response, media_type, &body, extra);
        body
    }

    /// A callback body against the document's `x-webhooks` entry `name`.
    fn check_callback(&self, name: &str, body: &Value, extra: &[&str]) {
        let hook = self.doc["x-webhooks"][name].as_object().and_then(|o| o.values().next()).expect("a documented callback");
        self.check_content(&format!("{} callback {name}", self.name), &hook["post"]["requestBody"], "application/json", body, extra);
    }

    /// Checks `body`, answered with `status` by (`method`, `path` as the document writes it),
    /// against the documented schema, and that every member it has is declared there.
    fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let responses = &self.doc["paths"][path][method]["responses"];
        let what = format!("{} {} {path} → {status}", self.name, method.to_uppercase());
        let response = responses.get(status.to_string()).unwrap_or_else(|| panic!("{what}: status not documented"));
        self.check_content(&what, response, "application/json", body, &[]);
    }

    /// Checks `body` against `response`'s (or a callback's request body's) schema for
    /// `media_type`, following a `$ref` to a shared response; `extra` lists the members phonegate
    /// adds on purpose (where Vonage's own answers have them beyond its document).
    fn check_content(&self, what: &str, response: &Value, media_type: &str, body: &Value, extra: &[&str]) {
        let response = match response["$ref"].as_str() {
            Some(r) => self.doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("{what}: {r} not found")),
            None => response,
        };
        let schema = response["content"][media_type]["schema"].clone();
        assert!(schema.is_object(), "{what}: no {media_type} schema documented");
        let mut root = json_schema(&schema).as_object().cloned().unwrap();
        root.insert("components".into(), json_schema(&self.doc["components"]));
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("{what}: the vendor's schema does not compile: {e}"));
        let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{e} at `{}`", e.instance_path())).collect();
        assert!(errors.is_empty(), "{what}: the body does not match the vendor's schema:\n{}\nbody: {body:#}", errors.join("\n"));
        let mut undeclared = Vec::new();
        Schemas { doc: &self.doc, open_objects: true }.undeclared(&schema, body, "", &mut undeclared);
        undeclared.retain(|at| !extra.contains(&at.as_str()));
        assert!(undeclared.is_empty(), "{what}: fields the vendor's schema does not declare: {undeclared:?}\nbody: {body:#}");
    }
}

#[tokio::test]
async fn twilio_answers_match_twilios_published_spec() {
    let app = TestApp::spawn().await;
    let spec = Spec::twilio();
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(&app.key_id, Some(&app.secret));
    let call = |method: &str, path: &str, form: &[(&str, &str)]| {
        let req = app.client.request(method.parse().unwrap(), app.url(path));
        auth(req).form(form).send()
    };
    async fn body(r: reqwest::Response, status: u16) -> Value {
        assert_eq!(r.status().as_u16(), status);
        r.json().await.unwrap()
    }

    let created = body(call("POST", "/v2/Services", &[("FriendlyName", "Spec App")]).await.unwrap(), 201).await;
    spec.check("post", "/v2/Services", 201, &created);
    let sid = created["sid"].as_str().unwrap().to_string();
    spec.check("get", "/v2/Services/{Sid}", 200, &body(call("GET", &format!("/v2/Services/{sid}"), &[]).await.unwrap(), 200).await);
    spec.check("get", "/v2/Services", 200, &body(call("GET", "/v2/Services", &[]).await.unwrap(), 200).await);
    let updated =
        body(call("POST", &format!("/v2/Services/{sid}"), &[("FriendlyName", "Spec App 2"), ("CodeLength", "7")]).await.unwrap(), 200)
            .await;
    spec.check("post", "/v2/Services/{Sid}", 200, &updated);
    let doomed = body(call("POST", "/v2/Services", &[("FriendlyName", "Doomed")]).await.unwrap(), 201).await;
    let deleted = call("DELETE", &format!("/v2/Services/{}", doomed["sid"].as_str().unwrap()), &[]).await.unwrap();
    assert!(spec.doc["paths"]["/v2/Services/{Sid}"]["delete"]["responses"].get("204").is_some());
    assert_eq!(deleted.status(), 204);
    assert!(deleted.bytes().await.unwrap().is_empty());

    let to = fresh_number();
    let started =
        body(call("POST", &format!("/v2/Services/{sid}/Verifications"), &[("To", &to), ("Channel", "sms")]).await.unwrap(), 201).await;
    spec.check("post", "/v2/Services/{ServiceSid}/Verifications", 201, &started);
    let vsid = started["sid"].as_str().unwrap().to_string();
    let fetched = body(call("GET", &format!("/v2/Services/{sid}/Verifications/{vsid}"), &[]).await.unwrap(), 200).await;
    spec.check("get", "/v2/Services/{ServiceSid}/Verifications/{Sid}", 200, &fetched);
    let code = app.code_for(&to).await;
    let check = format!("/v2/Services/{sid}/VerificationCheck");
    let rejected = body(call("POST", &check, &[("To", &to), ("Code", &wrong(&code))]).await.unwrap(), 200).await;
    spec.check("post", "/v2/Services/{ServiceSid}/VerificationCheck", 200, &rejected);
    let approved = body(call("POST", &check, &[("VerificationSid", &vsid), ("Code", &code)]).await.unwrap(), 200).await;
    assert_eq!(approved["status"], "approved");
    spec.check("post", "/v2/Services/{ServiceSid}/VerificationCheck", 200, &approved);

    let other = fresh_number();
    body(call("POST", &format!("/v2/Services/{sid}/Verifications"), &[("To", &other), ("Channel", "sms")]).await.unwrap(), 201).await;
    let canceled =
        body(call("POST", &format!("/v2/Services/{sid}/Verifications/{other}"), &[("Status", "canceled")]).await.unwrap(), 200).await;
    assert_eq!(canceled["status"], "canceled");
    spec.check("post", "/v2/Services/{ServiceSid}/Verifications/{Sid}", 200, &canceled);
}

#[tokio::test]
async fn vonage_answers_match_vonages_published_spec() {
    let app = TestApp::spawn().await;
    let spec = Spec::vonage();
    let call = |path: &str, params: &[(&str, &str)]| {
        let mut all = vec![("api_key".to_string(), app.key_id.clone()), ("api_secret".to_string(), app.secret.clone())];
        all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let url = app.url(path);
        let client = app.client.clone();
        async move {
            let r = client.post(url).form(&all).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let to = fresh_number();
    let number = to.trim_start_matches('+').to_string();
    let started = call("/verify/json", &[("number", &number), ("brand", "Acme")]).await;
    spec.check("post", "/{format}", 200, &started);
    let again = call("/verify/json", &[("number", &number), ("brand", "Acme")]).await;
    assert_eq!(again["status"], "10");
    spec.check("post", "/{format}", 200, &again);
    spec.check("post", "/{format}", 200, &call("/verify/json", &[("brand", "Acme")]).await);
    let rid = started["request_id"].as_str().unwrap().to_string();

    let search = call("/verify/search/json", &[("request_id", &rid)]).await;
    spec.check("get", "/search/{format}", 200, &search);
    let code = app.code_for(&to).await;
    let wrong_code = call("/verify/check/json", &[("request_id", &rid), ("code", &wrong(&code))]).await;
    spec.check("post", "/check/{format}", 200, &wrong_code);
    let right = call("/verify/check/json", &[("request_id", &rid), ("code", &code)]).await;
    assert_eq!(right["status"], "0");
    spec.check("post", "/check/{format}", 200, &right);
    let done = call("/verify/search/json", &[("request_id", &rid)]).await;
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["checks"].as_array().map(Vec::len), Some(2), "{done}");
    spec.check("get", "/search/{format}", 200, &done);
    spec.check("get", "/search/{format}", 200, &call("/verify/search/json", &[("request_id", "0123456789abcdef0123456789abcdef")]).await);

    let other = fresh_number();
    let second = call("/verify/json", &[("number", other.trim_start_matches('+')), ("brand", "Acme")]).await;
    let rid2 = second["request_id"].as_str().unwrap().to_string();
    let early = call("/verify/control/json", &[("request_id", &rid2), ("cmd", "cancel")]).await;
    assert_eq!(early["status"], "19", "too early to cancel: {early}");
    spec.check("post", "/control/{format}", 200, &early);
    spec.check("post", "/control/{format}", 200, &call("/verify/control/json", &[("request_id", &rid2), ("cmd", "jump")]).await);
    // The next event (workflow 1: a text-to-speech call), and the search naming it `tts`.
    let next = call("/verify/control/json", &[("request_id", &rid2), ("cmd", "trigger_next_event")]).await;
    assert_eq!(next["status"], "0", "{next}");
    spec.check("post", "/control/{format}", 200, &next);
    let events = call("/verify/search/json", &[("request_id", &rid2)]).await;
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["type"] == "tts"), "{events}");
    spec.check("get", "/search/{format}", 200, &events);

    // PSD2: refused on a service without it (status 20), started on one with it.
    let psd2 = [("number", other.trim_start_matches('+')), ("payee", "Shop"), ("amount", "9.99")];
    let refused = call("/verify/psd2/json", &psd2).await;
    assert_eq!(refused["status"], "20");
    spec.check("post", "/psd2/{format}", 200, &refused);
    let r = app.post("/api/services", json!({ "name": "pay", "psd2": true })).await;
    let pay: Value = r.json().await.unwrap();
    let scope = phonegate_core::apikey::KeyScope::Services(vec![pay["id"].as_str().unwrap().to_string()]);
    let (key, secret) = app.state.core.api_keys.create(&phonegate_core::Caller::system("tests"), "pay", scope).await.unwrap();
    let third = fresh_number();
    let params = [
        ("api_key", key.id.as_str()),
        ("api_secret", secret.expose_secret()),
        ("number", third.trim_start_matches('+')),
        ("payee", "Shop"),
        ("amount", "9.99"),
    ];
    let started: Value = app.client.post(app.url("/verify/psd2/json")).form(&params).send().await.unwrap().json().await.unwrap();
    assert_eq!(started["status"], "0", "{started}");
    spec.check("post", "/psd2/{format}", 200, &started);
}

/// The checks can fail: a wrong type, a missing pattern match and an undeclared member are found.
#[test]
fn the_checker_finds_wrong_types_patterns_and_undeclared_fields() {
    let spec = Spec::twilio();
    let path = "/v2/Services/{ServiceSid}/VerificationCheck";
    let fails = |body: Value| std::panic::catch_unwind(|| spec.check("post", path, 200, &body)).is_err();
    assert!(!fails(json!({ "sid": "VE0123456789abcdef0123456789abcdef", "valid": false })));
    assert!(fails(json!({ "sid": "VE0123456789abcdef0123456789abcdef", "valid": "no" })));
    assert!(fails(json!({ "sid": "SM0123456789abcdef0123456789abcdef" })));
    assert!(fails(json!({ "sid": "VE0123456789abcdef0123456789abcdef", "surprise": 1 })));
    let vonage = Spec::vonage();
    let fails = |body: Value| std::panic::catch_unwind(|| vonage.check("get", "/search/{format}", 200, &body)).is_err();
    assert!(fails(json!({ "status": "MAYBE" })));
    assert!(fails(json!({ "status": "SUCCESS", "checks": "none" })));
}

#[tokio::test]
async fn vonage_v2_answers_match_vonages_published_spec() {
    use crate::compat_vonage_v2::{basic, receiver};
    let app = TestApp::spawn_with(|c| c.silent.simulator = true).await;
    let spec = Spec::vonage_v2();
    let send = |method: &str, path: &str, body: Option<Value>| {
        let r = basic(&app, app.client.request(method.parse().unwrap(), app.url(&format!("/v2/verify{path}"))));
        let r = match body {
            Some(b) => r.json(&b),
            None => r,
        };
        async move { r.send().await.unwrap() }
    };
    // The status webhook of the admin key's application.
    let (url, got) = receiver().await;
    let new = phonegate_core::vonage::NewApp {
        public_key: crate::vonage_channels::PUBLIC_KEY.into(),
        status_url: Some(url),
        signature_secret: Some(secrecy::SecretString::from("a-signature-secret-of-32-characters!!")),
    };
    app.state.vonage.set_app(&phonegate_core::Caller::system("tests"), &app.key_id, new).await.unwrap();

    let to = fresh_number();
    let n = to.trim_start_matches('+').to_string();
    let sms = json!([{ "channel": "sms", "to": n }, { "channel": "voice", "to": n }]);
    let started = spec.check_v2("post", "/", send("POST", "", Some(json!({ "brand": "Acme", "workflow": sms }))).await, 202, &[]).await;
    let rid = started["request_id"].as_str().unwrap().to_string();
    let again = send("POST", "", Some(json!({ "brand": "Acme", "workflow": sms }))).await;
    spec.check_v2("post", "/", again, 409, &["/request_id"]).await;
    let invalid = send("POST", "", Some(json!({ "brand": "Acme", "workflow": [], "code_length": 3 }))).await;
    spec.check_v2("post", "/", invalid, 422, &[]).await;
    let r = app.client.post(app.url("/v2/verify")).basic_auth(&app.key_id, Some("wrong")).json(&json!({})).send().await.unwrap();
    spec.check_v2("post", "/", r, 401, &[]).await;

    let code = app.code_for(&to).await;
    let path = format!("/{rid}");
    spec.check_v2("post", "/{request_id}", send("POST", &path, Some(json!({ "code": wrong(&code) }))).await, 400, &[]).await;
    let next = send("POST", &format!("{path}/next_workflow"), None).await;
    assert_eq!(next.status(), 200);
    assert!(spec.doc["paths"]["/{request_id}/next_workflow"]["post"]["responses"]["200"].get("content").is_none());
    assert!(next.bytes().await.unwrap().is_empty(), "no body, as documented");
    let none_left = send("POST", &format!("{path}/next_workflow"), None).await;
    spec.check_v2("post", "/{request_id}/next_workflow", none_left, 409, &[]).await;
    let ok = spec.check_v2("post", "/{request_id}", send("POST", &path, Some(json!({ "code": code }))).await, 200, &[]).await;
    assert_eq!(ok["status"], "completed");
    spec.check_v2("post", "/{request_id}", send("POST", &path, Some(json!({ "code": code }))).await, 404, &[]).await;
    spec.check_v2("delete", "/{request_id}", send("DELETE", &path, None).await, 404, &[]).await;

    // Too many wrong codes: 410.
    let to = fresh_number();
    let one = json!([{ "channel": "sms", "to": to.trim_start_matches('+') }]);
    let started = send("POST", "", Some(json!({ "brand": "Acme", "workflow": one }))).await.json::<Value>().await.unwrap();
    let path = format!("/{}", started["request_id"].as_str().unwrap());
    let code = app.code_for(&to).await;
    let mut last = None;
    for _ in 0..6 {
        let r = send("POST", &path, Some(json!({ "code": wrong(&code) }))).await;
        if r.status() == 410 {
            last = Some(spec.check_v2("post", "/{request_id}", r, 410, &[]).await);
            break;
        }
    }
    assert!(last.is_some(), "wrong codes end in 410");

    // The summary of the first request, as its application received it.
    let summary = eventually(|| {
        let got = got.clone();
        let rid = rid.clone();
        async move {
            let bodies: Vec<Value> = got.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
            bodies.into_iter().find(|b| b["request_id"] == rid.as_str())
        }
    })
    .await;
    spec.check_callback("request-status-update", &summary, &["/triggered_at", "/finalized_at"]);

    // Silent authentication: the event callback and the device's answer.
    let to = fresh_number();
    let n = to.trim_start_matches('+').to_string();
    let silent = json!([{ "channel": "silent_auth", "to": n }, { "channel": "sms", "to": n }]);
    let started = spec.check_v2("post", "/", send("POST", "", Some(json!({ "brand": "Acme", "workflow": silent }))).await, 202, &[]).await;
    let srid = started["request_id"].as_str().unwrap().to_string();
    let waiting = send("POST", &format!("/{srid}"), Some(json!({ "code": "1234" }))).await;
    spec.check_v2("post", "/{request_id}", waiting, 409, &[]).await;
    let event = eventually(|| {
        let got = got.clone();
        let srid = srid.clone();
        async move {
            let bodies: Vec<Value> = got.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
            bodies.into_iter().find(|b| b["request_id"] == srid.as_str())
        }
    })
    .await;
    spec.check_callback("silent-auth-callback", &event, &[]);
    let device = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let operator =
        device.get(started["check_url"].as_str().unwrap()).send().await.unwrap().headers()["location"].to_str().unwrap().to_string();
    let r = device.get(app.url(&format!("{operator}?sim=match"))).send().await.unwrap();
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    let answer = device.get(app.url(&callback)).send().await.unwrap();
    spec.check_v2("get", "/{request_id}/silent-auth/redirect", answer, 200, &[]).await;

    // Templates and fragments.
    let t = spec.check_v2("post", "/templates", send("POST", "/templates", Some(json!({ "name": "spec" }))).await, 201, &[]).await;
    let tid = t["template_id"].as_str().unwrap().to_string();
    spec.check_v2("post", "/templates", send("POST", "/templates", Some(json!({ "name": "spec" }))).await, 409, &[]).await;
    spec.check_v2("post", "/templates", send("POST", "/templates", Some(json!({ "name": "a b" }))).await, 422, &[]).await;
    spec.check_v2("get", "/templates", send("GET", "/templates?page_size=1", None).await, 200, &[]).await;
    let tpath = format!("/templates/{tid}");
    spec.check_v2("get", "/templates/{template_id}", send("GET", &tpath, None).await, 200, &[]).await;
    let patched = send("PATCH", &tpath, Some(json!({ "name": "spec2", "is_default": false }))).await;
    spec.check_v2("patch", "/templates/{template_id}", patched, 200, &[]).await;
    let missing = send("GET", "/templates/8f35a1a7-1c52-4c3b-9b9f-2a1e4c5d6e7f", None).await;
    spec.check_v2("get", "/templates/{template_id}", missing, 404, &[]).await;
    let fpath = format!("{tpath}/template_fragments");
    let fragment = json!({ "channel": "sms", "locale": "en-us", "text": "Your ${brand} code: ${code}" });
    let f = spec
        .check_v2("post", "/templates/{template_id}/template_fragments", send("POST", &fpath, Some(fragment.clone())).await, 201, &[])
        .await;
    let again = send("POST", &fpath, Some(fragment)).await;
    spec.check_v2("post", "/templates/{template_id}/template_fragments", again, 409, &[]).await;
    let voice = send("POST", &fpath, Some(json!({ "channel": "voice", "locale": "en-us", "text": "${code}" }))).await;
    spec.check_v2("post", "/templates/{template_id}/template_fragments", voice, 422, &[]).await;
    spec.check_v2("get", "/templates/{template_id}/template_fragments", send("GET", &fpath, None).await, 200, &[]).await;
    let one = format!("{fpath}/{}", f["template_fragment_id"].as_str().unwrap());
    let item = "/templates/{template_id}/template_fragments/{template_fragment_id}";
    spec.check_v2("get", item, send("GET", &one, None).await, 200, &[]).await;
    spec.check_v2("patch", item, send("PATCH", &one, Some(json!({ "text": "${code}" }))).await, 200, &[]).await;
    spec.check_v2("delete", "/templates/{template_id}", send("DELETE", &tpath, None).await, 409, &[]).await;
    assert_eq!(send("DELETE", &one, None).await.status(), 204);
    spec.check_v2("get", item, send("GET", &one, None).await, 404, &[]).await;
    assert_eq!(send("DELETE", &tpath, None).await.status(), 204);
}
