//! The API reference at `/docs`, drawn from the OpenAPI document on the templates like every
//! other page (frame, languages, headers), so it works offline. The operations' own words come
//! from the document (English); the page around them speaks the reader's language.
use super::texts::{Texts, pick};
use askama::Template;
use axum::http::{HeaderMap, header};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};

/// The page's own words, by the frame's language.
struct DocsTexts {
    title: &'static str,
    intro: &'static str,
    operations: &'static str,
    request_body: &'static str,
    responses: &'static str,
    schemas: &'static str,
}

const EN: DocsTexts = DocsTexts {
    title: "API reference",
    intro: "Authenticate with an API key: <code>Authorization: Bearer SECRET</code>, or HTTP Basic with the key id as user name and the secret as password. Every error is <code>{\"error\":{\"code\":…,\"message\":…}}</code> with a stable code. The same, machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3).",
    operations: "Operations",
    request_body: "Request body",
    responses: "Responses",
    schemas: "Schemas",
};

const DE: DocsTexts = DocsTexts {
    title: "API-Referenz",
    intro: "Anmeldung mit einem API-Schlüssel: <code>Authorization: Bearer SECRET</code>, oder HTTP Basic mit der Schlüssel-ID als Benutzername und dem Secret als Passwort. Jeder Fehler ist <code>{\"error\":{\"code\":…,\"message\":…}}</code> mit einem festen Code. Dasselbe maschinenlesbar: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3).",
    operations: "Operationen",
    request_body: "Anfrage",
    responses: "Antworten",
    schemas: "Schemas",
};

/// One operation of the document, as the page shows it.
struct Op {
    method: &'static str,
    path: String,
    anchor: String,
    summary: Option<String>,
    description: Option<String>,
    /// Content type and schema name of each request body.
    bodies: Vec<(String, Option<String>)>,
    /// Status, description and schema name of each response.
    responses: Vec<(String, String, Option<String>)>,
}

#[derive(Template)]
#[template(path = "docs.html")]
struct DocsPage<'a> {
    t: &'a Texts,
    d: &'a DocsTexts,
    api_title: &'a str,
    api_description: &'a str,
    ops: &'a [Op],
    /// Each schema's name and its JSON.
    schemas: &'a [(String, String)],
}

/// The reference, rendered once per language when the server starts.
pub struct DocsPages {
    en: String,
    de: String,
}

impl DocsPages {
    pub fn new(spec: &OpenApi) -> Self {
        let ops = operations(spec);
        let schemas: Vec<(String, String)> = spec
            .components
            .iter()
            .flat_map(|c| &c.schemas)
            .map(|(name, schema)| (name.clone(), serde_json::to_string_pretty(schema).unwrap_or_default()))
            .collect();
        let render = |lang: &str, d: &DocsTexts| {
            let page = DocsPage {
                t: pick(Some(lang)),
                d,
                api_title: &spec.info.title,
                api_description: spec.info.description.as_deref().unwrap_or_default(),
                ops: &ops,
                schemas: &schemas,
            };
            page.render().unwrap_or_else(|e| {
                tracing::error!(error = %e, "the docs page did not render");
                String::from("<!doctype html><title>phonegate</title><p>Something went wrong.</p>")
            })
        };
        DocsPages { en: render("en", &EN), de: render("de", &DE) }
    }

    /// The page in the reader's language (`Accept-Language`).
    pub fn for_reader(&self, headers: &HeaderMap) -> &str {
        match pick(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok())).lang {
            "de" => &self.de,
            _ => &self.en,
        }
    }
}

fn operations(spec: &OpenApi) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in &spec.paths.paths {
        let methods: [(&'static str, &Option<Operation>); 8] = [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
            ("head", &item.head),
            ("options", &item.options),
            ("trace", &item.trace),
        ];
        for (method, op) in methods {
            let Some(op) = op else { continue };
            let bodies = op.request_body.iter().flat_map(|b| &b.content).map(|(ct, c)| (ct.clone(), schema_name(&c.schema))).collect();
            let responses = op
                .responses
                .responses
                .iter()
                .map(|(code, r)| match r {
                    RefOr::T(r) => (code.clone(), r.description.clone(), r.content.values().next().and_then(|c| schema_name(&c.schema))),
                    RefOr::Ref(r) => (code.clone(), String::new(), Some(r.ref_location.rsplit('/').next().unwrap_or_default().to_string())),
                })
                .collect();
            ops.push(Op {
                method,
                anchor: format!("{method}-{}", path.trim_matches('/').replace(['/', '{', '}'], "-")),
                path: path.clone(),
                summary: op.summary.clone(),
                description: op.description.clone(),
                bodies,
                responses,
            });
        }
    }
    ops
}

fn schema_name(schema: &Option<RefOr<Schema>>) -> Option<String> {
    match schema {
        Some(RefOr::Ref(r)) => r.ref_location.rsplit('/').next().map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, ObjectBuilder, OpenApiBuilder, ResponseBuilder};

    #[test]
    fn what_the_document_says_is_escaped_and_every_operation_is_listed() {
        let op = OperationBuilder::new()
            .summary(Some("<script>alert(1)</script>"))
            .description(Some("a \"quoted\" & <b>bold</b> claim"))
            .response("200", ResponseBuilder::new().description("<img src=x onerror=alert(1)>"))
            .build();
        let spec = OpenApiBuilder::new()
            .info(InfoBuilder::new().title("<i>API</i>").version("1").description(Some("Ü & <u>")))
            .paths(
                PathsBuilder::new()
                    .path("/a/{id}", PathItem::new(HttpMethod::Get, op.clone()))
                    .path("/b", PathItem::from_http_methods([HttpMethod::Post, HttpMethod::Delete], op)),
            )
            .components(Some(ComponentsBuilder::new().schema("<Evil>", ObjectBuilder::new().description(Some("</pre><script>"))).build()))
            .build();
        let pages = DocsPages::new(&spec);
        for html in [&pages.en, &pages.de] {
            for raw in ["<script>", "<b>bold", "<img", "<i>API", "<u>", "<Evil>", "</pre><script>"] {
                assert!(!html.contains(raw), "{raw} unescaped in {html}");
            }
            assert!(html.contains("alert(1)") && html.starts_with("<!doctype html>"), "{html}");
            for (method, path) in [("get", "/a/{id}"), ("post", "/b"), ("delete", "/b")] {
                assert!(html.contains(&format!("<span class=\"method\">{method}</span> <code>{path}</code>")), "{method} {path}");
            }
        }
        assert!(pages.en.contains(r#"lang="en""#) && pages.en.contains("API reference"));
        assert!(pages.de.contains(r#"lang="de""#) && pages.de.contains("API-Referenz"));
        let mut german = HeaderMap::new();
        german.insert(header::ACCEPT_LANGUAGE, "de-DE,de;q=0.9".parse().unwrap());
        assert_eq!(pages.for_reader(&german), pages.de);
        assert_eq!(pages.for_reader(&HeaderMap::new()), pages.en);
    }
}
