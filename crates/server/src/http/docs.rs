//! `/openapi.json` and `/docs`: the API reference rendered on the server from the generated
//! OpenAPI document, so it works without any internet access (no CDN scripts).
use super::AppState;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use html_escape::encode_text;
use std::fmt::Write;
use std::sync::Arc;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{OpenApi, RefOr};

pub fn routes(spec: Arc<OpenApi>) -> Router<AppState> {
    let page = Arc::new(render(&spec));
    let json = Arc::new(serde_json::to_value(spec.as_ref()).unwrap_or_default());
    Router::new()
        .route("/openapi.json", get(move || std::future::ready(Json(json.as_ref().clone()))))
        .route("/docs", get(move || std::future::ready(Html(page.as_ref().clone()))))
}

fn render(spec: &OpenApi) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=en><meta charset=utf-8><title>phonegate API</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:60em}code{background:#f3f3f3;padding:0 .2em}\
         .op{border-left:4px solid #36c;padding:.2em 1em;margin:1em 0}.m{font-weight:bold;text-transform:uppercase}</style>",
    );
    let _ = write!(
        out,
        "<h1>{}</h1><p>{}</p><p>Authenticate with <code>Authorization: Bearer SECRET</code> or HTTP Basic \
         <code>id:secret</code>. Errors are <code>{{\"error\":{{\"code\",\"message\"}}}}</code>. \
         Machine-readable: <a href=/openapi.json>/openapi.json</a>.</p>",
        encode_text(&spec.info.title),
        encode_text(spec.info.description.as_deref().unwrap_or_default())
    );
    for (path, item) in &spec.paths.paths {
        let ops: [(&str, &Option<Operation>); 4] = [("get", &item.get), ("post", &item.post), ("put", &item.put), ("delete", &item.delete)];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let _ = write!(out, "<div class=op><p><span class=m>{method}</span> <code>{}</code></p>", encode_text(path));
            if let Some(summary) = &op.summary {
                let _ = write!(out, "<p>{}</p>", encode_text(summary));
            }
            if let Some(description) = &op.description {
                let _ = write!(out, "<p>{}</p>", encode_text(description));
            }
            if let Some(body) = &op.request_body {
                for (ct, content) in &body.content {
                    let _ = write!(out, "<p>Request body ({}): {}</p>", encode_text(ct), schema_name(&content.schema));
                }
            }
            out.push_str("<ul>");
            for (code, response) in &op.responses.responses {
                let text = match response {
                    RefOr::T(r) => {
                        let schema = r.content.values().next().map(|c| schema_name(&c.schema)).unwrap_or_default();
                        format!("{} {}", encode_text(&r.description), schema)
                    }
                    RefOr::Ref(r) => encode_text(&r.ref_location).to_string(),
                };
                let _ = write!(out, "<li><code>{}</code> {text}</li>", encode_text(code));
            }
            out.push_str("</ul></div>");
        }
    }
    if let Some(components) = &spec.components {
        out.push_str("<h2>Schemas</h2>");
        for (name, schema) in &components.schemas {
            let json = serde_json::to_string_pretty(schema).unwrap_or_default();
            let _ = write!(out, "<h3 id=\"{0}\">{0}</h3><pre>{1}</pre>", encode_text(name), encode_text(&json));
        }
    }
    out.push_str("</html>");
    out
}

fn schema_name(schema: &Option<RefOr<utoipa::openapi::schema::Schema>>) -> String {
    match schema {
        Some(RefOr::Ref(r)) => {
            let name = r.ref_location.rsplit('/').next().unwrap_or_default();
            format!("<a href=\"#{0}\">{0}</a>", encode_text(name))
        }
        _ => String::new(),
    }
}
