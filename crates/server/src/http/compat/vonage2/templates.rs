//! Vonage Verify v2 templates: `GET/POST /v2/verify/templates`,
//! `GET/PATCH/DELETE /v2/verify/templates/{template_id}` and their
//! `template_fragments`, paged as Vonage pages (`page`, `page_size`, `total_pages`,
//! `total_items`, `_embedded`, `_links`). A key's templates are its service's.
use super::{Problem, caller, json_body, text};
use crate::http::AppState;
use crate::http::auth::RequestMeta;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use phonegate_core::VerifyError;
use phonegate_core::vonage::{FragmentChange, TemplateChange};
use phonegate_core::vonage_model::{TemplateFragment, VonageTemplate};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/verify/templates", get(list).post(create))
        .route("/v2/verify/templates/{template_id}", get(one).patch(update).delete(remove))
        .route("/v2/verify/templates/{template_id}/template_fragments", get(list_fragments).post(create_fragment))
        .route(
            "/v2/verify/templates/{template_id}/template_fragments/{fragment_id}",
            get(one_fragment).patch(update_fragment).delete(remove_fragment),
        )
}

const BASE: &str = "/v2/verify/templates";

fn href(path: String) -> Value {
    json!({ "href": path })
}

/// The absolute URL of this server's `/v2/verify/templates` (links are absolute, as at Vonage).
fn base(s: &AppState, headers: &HeaderMap, uri: &Uri) -> String {
    format!("{}{BASE}", crate::http::compat::base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, headers, uri))
}

fn template_json(base: &str, t: &VonageTemplate) -> Value {
    json!({
        "template_id": t.id,
        "name": t.name,
        "is_default": t.is_default,
        "_links": {
            "self": href(format!("{base}/{}", t.id)),
            "fragments": href(format!("{base}/{}/template_fragments", t.id)),
        },
    })
}

fn fragment_json(base: &str, f: &TemplateFragment) -> Value {
    json!({
        "template_fragment_id": f.id,
        "channel": f.channel,
        "locale": f.locale,
        "text": f.text,
        "date_created": f.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "date_updated": f.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "_links": {
            "self": href(format!("{base}/{}/template_fragments/{}", f.template_id, f.id)),
            "template": href(format!("{base}/{}", f.template_id)),
        },
    })
}

/// One page of `items` as Vonage pages them, under `_embedded.{key}`.
fn page(q: &BTreeMap<String, String>, path: &str, key: &str, items: Vec<Value>) -> Result<Value, Problem> {
    let number = |name: &str, default: usize, max: usize| match q.get(name) {
        None => Ok(default),
        Some(v) => {
            v.parse::<usize>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| Problem::invalid(name, format!("must be 1 to {max}")))
        }
    };
    let size = number("page_size", 100, 1000)?;
    let total = items.len();
    let pages = total.div_ceil(size).max(1);
    let page = number("page", 1, usize::MAX)?;
    let link = |p: usize| href(format!("{path}?page_size={size}&page={p}"));
    let mut links = json!({ "self": link(page), "first": link(1), "last": link(pages) });
    if page > 1 {
        links["prev"] = link(page - 1);
    }
    if page < pages {
        links["next"] = link(page + 1);
    }
    let shown: Vec<Value> = items.into_iter().skip((page - 1).saturating_mul(size)).take(size).collect();
    Ok(json!({
        "page_size": size,
        "page": page,
        "total_pages": pages,
        "total_items": total,
        "_embedded": { key: shown },
        "_links": links,
    }))
}

fn failed(e: VerifyError) -> Problem {
    match e {
        VerifyError::TemplateNotFound => Problem::new(
            StatusCode::NOT_FOUND,
            "verify#template-not-found",
            "Not Found",
            "The template or template fragment was not found.",
        ),
        VerifyError::TemplateConflict => Problem::new(
            StatusCode::CONFLICT,
            "verify#template-exists",
            "Conflict",
            "A template with this name, a fragment for this channel and locale, or fragments of a template to delete exist already.",
        ),
        other => Problem::from_error(other, None),
    }
}

type Q = Query<BTreeMap<String, String>>;

async fn list(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let all = s.vonage.templates(&caller).await.map_err(failed)?;
    let base = base(&s, &headers, &uri);
    Ok(Json(page(&q, &base, "templates", all.iter().map(|t| template_json(&base, t)).collect())?).into_response())
}

fn is_default(m: &serde_json::Map<String, Value>) -> Result<Option<bool>, Problem> {
    match m.get("is_default") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Problem::invalid("is_default", "must be true or false")),
    }
}

async fn create(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let m = json_body(&body)?;
    let name = text(&m, "name")?.ok_or_else(|| Problem::invalid("name", "is required"))?;
    let t = s.vonage.create_template(&caller, name, is_default(&m)?.unwrap_or(false)).await.map_err(failed)?;
    Ok((StatusCode::CREATED, Json(template_json(&base(&s, &headers, &uri), &t))).into_response())
}

async fn one(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let t = s.vonage.template(&caller, &id).await.map_err(failed)?;
    Ok(Json(template_json(&base(&s, &headers, &uri), &t)).into_response())
}

async fn update(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let m = json_body(&body)?;
    let change = TemplateChange { name: text(&m, "name")?.map(str::to_string), is_default: is_default(&m)? };
    let t = s.vonage.update_template(&caller, &id, change).await.map_err(failed)?;
    Ok(Json(template_json(&base(&s, &headers, &uri), &t)).into_response())
}

async fn remove(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    s.vonage.delete_template(&caller, &id).await.map_err(failed)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_fragments(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let all = s.vonage.fragments(&caller, &id).await.map_err(failed)?;
    let base = base(&s, &headers, &uri);
    let path = format!("{base}/{}/template_fragments", id.to_ascii_lowercase());
    Ok(Json(page(&q, &path, "template_fragments", all.iter().map(|f| fragment_json(&base, f)).collect())?).into_response())
}

async fn create_fragment(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let m = json_body(&body)?;
    for name in ["channel", "locale", "text"] {
        text(&m, name)?.ok_or_else(|| Problem::invalid(name, "is required"))?;
    }
    let new = FragmentChange {
        channel: text(&m, "channel")?.map(str::to_string),
        locale: text(&m, "locale")?.map(str::to_string),
        text: text(&m, "text")?.map(str::to_string),
    };
    let f = s.vonage.create_fragment(&caller, &id, new).await.map_err(failed)?;
    Ok((StatusCode::CREATED, Json(fragment_json(&base(&s, &headers, &uri), &f))).into_response())
}

async fn one_fragment(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path((id, fragment)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let f = s.vonage.fragment(&caller, &id, &fragment).await.map_err(failed)?;
    Ok(Json(fragment_json(&base(&s, &headers, &uri), &f)).into_response())
}

async fn update_fragment(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path((id, fragment)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let m = json_body(&body)?;
    let new_text = text(&m, "text")?.ok_or_else(|| Problem::invalid("text", "is required"))?;
    let f = s.vonage.update_fragment(&caller, &id, &fragment, new_text).await.map_err(failed)?;
    Ok(Json(fragment_json(&base(&s, &headers, &uri), &f)).into_response())
}

async fn remove_fragment(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path((id, fragment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    s.vonage.delete_fragment(&caller, &id, &fragment).await.map_err(failed)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
