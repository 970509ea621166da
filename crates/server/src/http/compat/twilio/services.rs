//! Twilio's Service resource: create, list, fetch, update, delete.
use super::{Params, TwilioAuth, TwilioError, channels, time};
use crate::http::AppState;
use crate::http::compat::base_url;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use phonegate_core::Service;
use phonegate_core::catalog::ServiceChanges;
use phonegate_core::service::ServiceSettings;
use serde_json::{Value, json};

/// Service flags for features this server does not offer: `false` is what it does anyway; `true`
/// is refused by name rather than dropped.
const UNSUPPORTED_FLAGS: [&str; 2] = ["DoNotShareWarningEnabled", "LookupEnabled"];

/// A boolean service flag; absent is false.
fn flag(p: &Params, name: &str) -> Result<bool, TwilioError> {
    Ok(given_flag(p, name)?.unwrap_or(false))
}

/// A boolean service flag, if given.
fn given_flag(p: &Params, name: &str) -> Result<Option<bool>, TwilioError> {
    match p.get(name) {
        None => Ok(None),
        Some("false" | "False") => Ok(Some(false)),
        Some("true" | "True") => Ok(Some(true)),
        Some(_) => Err(TwilioError::invalid(format!("Invalid parameter `{name}`: must be true or false"))),
    }
}

fn code_length(p: &Params) -> Result<Option<u8>, TwilioError> {
    p.get("CodeLength")
        .map(|l| l.parse::<u8>().map_err(|_| TwilioError::invalid("Invalid parameter `CodeLength`: must be a number between 4 and 10")))
        .transpose()
}

fn refuse_unsupported_flags(p: &Params) -> Result<(), TwilioError> {
    for flag in UNSUPPORTED_FLAGS {
        match p.get(flag) {
            None | Some("false") | Some("False") => {}
            Some("true") | Some("True") => {
                return Err(TwilioError::invalid(format!("Invalid parameter `{flag}`: this feature is not available on this server")));
            }
            Some(_) => return Err(TwilioError::invalid(format!("Invalid parameter `{flag}`: must be true or false"))),
        }
    }
    Ok(())
}

fn service_json(s: &Service, auth: &TwilioAuth, base: &str) -> Value {
    let url = format!("{base}/v2/Services/{}", s.id);
    json!({
        "sid": s.id,
        "account_sid": auth.account_sid(),
        "friendly_name": s.shown_name(),
        "code_length": s.code_length,
        "lookup_enabled": false,
        "psd2_enabled": s.psd2,
        // No SMS ever goes to a landline here (60205), which is what this flag asks for.
        "skip_sms_to_landlines": true,
        "dtmf_input_required": s.channels.voice_key_press,
        "tts_name": s.channels.voice_name,
        "do_not_share_warning_enabled": false,
        "custom_code_enabled": s.custom_codes,
        "push": { "include_date": false, "apn_credential_sid": null, "fcm_credential_sid": null },
        "totp": { "issuer": s.shown_name(), "time_step": 30, "code_length": 6, "skew": 1 },
        "whatsapp": { "msg_service_sid": null, "from": s.channels.whatsapp_from },
        "passkeys": {
            "relying_party": { "id": null, "name": null, "origins": [] },
            "authenticator_attachment": "platform",
            "discoverable_credentials": null,
            "user_verification": "preferred",
        },
        "verify_event_subscription_enabled": false,
        "default_template_sid": null,
        "date_created": time(s.created_at),
        "date_updated": time(s.updated_at),
        "url": url,
        "links": {
            "verification_checks": format!("{url}/VerificationCheck"),
            "verifications": format!("{url}/Verifications"),
            "rate_limits": format!("{url}/RateLimits"),
            "messaging_configurations": format!("{url}/MessagingConfigurations"),
            "entities": format!("{url}/Entities"),
            "webhooks": format!("{url}/Webhooks"),
            "access_tokens": format!("{url}/AccessTokens"),
        },
    })
}

pub(super) async fn create(
    State(s): State<AppState>,
    auth: TwilioAuth,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), TwilioError> {
    let p = Params::parse(&body)?;
    let name = p.get("FriendlyName").ok_or_else(|| TwilioError::invalid("Missing required parameter FriendlyName in the post body"))?;
    let code_length = code_length(&p)?;
    refuse_unsupported_flags(&p)?;
    let (custom_codes, psd2) = (flag(&p, "CustomCodeEnabled")?, flag(&p, "Psd2Enabled")?);
    let channels = channels::service_settings(&p, flag(&p, "DtmfInputRequired")?)?;
    let settings = ServiceSettings { name: name.into(), code_length, custom_codes, psd2, channels, ..Default::default() };
    let service = s.core.catalog.create_or_reuse_service(&auth.0, settings).await?;
    Ok((
        StatusCode::CREATED,
        Json(service_json(&service, &auth, &base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri))),
    ))
}

/// The services the key may see, a page at a time (`PageSize` 1 to 1000, default 50; `Page`
/// from 0), with Twilio's paging `meta`.
pub(super) async fn list(State(s): State<AppState>, auth: TwilioAuth, headers: HeaderMap, uri: Uri) -> Result<Json<Value>, TwilioError> {
    let q: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let number = |name: &str, default: usize| match q.iter().find(|(k, _)| k == name) {
        None => Ok(default),
        Some((_, v)) => v.parse::<usize>().map_err(|_| TwilioError::invalid(format!("Invalid parameter `{name}`: must be a number"))),
    };
    let (size, page) = (number("PageSize", 50)?.clamp(1, 1000), number("Page", 0)?);
    let base = base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri);
    let all = s.core.catalog.services(&auth.0).await?;
    let services: Vec<Value> = all.iter().skip(page.saturating_mul(size)).take(size).map(|x| service_json(x, &auth, &base)).collect();
    let page_url = |p: usize| format!("{base}/v2/Services?PageSize={size}&Page={p}");
    let more = all.len() > (page + 1).saturating_mul(size);
    Ok(Json(json!({
        "services": services,
        "meta": {
            "page": page,
            "page_size": size,
            "first_page_url": page_url(0),
            "previous_page_url": (page > 0).then(|| page_url(page - 1)),
            "url": page_url(page),
            "next_page_url": more.then(|| page_url(page + 1)),
            "key": "services",
        },
    })))
}

pub(super) async fn fetch(
    State(s): State<AppState>,
    auth: TwilioAuth,
    headers: HeaderMap,
    uri: Uri,
    Path(sid): Path<String>,
) -> Result<Json<Value>, TwilioError> {
    let service = s.core.catalog.service(&auth.0, Some(&sid)).await?;
    Ok(Json(service_json(&service, &auth, &base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri))))
}

/// Twilio's update: the form fields create takes, each changing only when given; a FriendlyName
/// another service has is shown by this one too (it keeps or takes a distinct unique name).
/// Answers the service as fetch does.
pub(super) async fn update(
    State(s): State<AppState>,
    auth: TwilioAuth,
    headers: HeaderMap,
    uri: Uri,
    Path(sid): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, TwilioError> {
    let p = Params::parse(&body)?;
    refuse_unsupported_flags(&p)?;
    // The channel fields as on create, each changing only when given.
    let given = channels::service_settings(&p, false)?;
    let changes = ServiceChanges {
        name: p.get("FriendlyName").map(str::to_string),
        code_length: code_length(&p)?,
        custom_codes: given_flag(&p, "CustomCodeEnabled")?,
        psd2: given_flag(&p, "Psd2Enabled")?,
        voice_key_press: given_flag(&p, "DtmfInputRequired")?,
        voice_name: given.voice_name,
        whatsapp_from: given.whatsapp_from,
        name_may_be_shared: true,
        ..Default::default()
    };
    let service = s.core.catalog.update_service(&auth.0, &sid, changes).await?;
    Ok(Json(service_json(&service, &auth, &base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri))))
}

/// Twilio's delete: 204 with no body.
pub(super) async fn delete(State(s): State<AppState>, auth: TwilioAuth, Path(sid): Path<String>) -> Result<StatusCode, TwilioError> {
    s.core.catalog.delete_service(&auth.0, &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}
