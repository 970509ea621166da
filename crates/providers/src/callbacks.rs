//! What the providers' status callbacks of calls and WhatsApp messages say, read from their JSON
//! (the signatures are checked before, see `signature`): Vonage's call events (Voice API webhook
//! reference) and Messages API statuses, and Meta's WhatsApp Cloud API `statuses`. Only the
//! statuses that change a message's delivery are kept; error texts are built from codes only.
use phonegate_core::message::DeliveryStatus;
use serde_json::Value;

/// One receipt: the provider's id of the message (a call's `uuid`, a `message_uuid`, a `wamid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub provider_message_id: String,
    pub status: DeliveryStatus,
    pub error: Option<String>,
}

/// A provider id as it may be stored: not empty, at most 200 characters.
fn id(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty() && s.len() <= 200).map(str::to_string)
}

/// What a Vonage call event means: `completed` is a call that was answered and ended; busy,
/// failed, rejected, timeout, unanswered and cancelled calls did not reach anyone. Progress
/// (`started`, `ringing`, `answered`) and other events change nothing.
pub fn vonage_call_event(event: &Value) -> Option<Receipt> {
    let uuid = id(&event["uuid"]).or_else(|| id(&event["call_uuid"]))?;
    let status = event["status"].as_str()?;
    let delivery = match status {
        "completed" => DeliveryStatus::Delivered,
        "busy" | "failed" | "rejected" | "timeout" | "unanswered" | "cancelled" => DeliveryStatus::Failed,
        _ => return None,
    };
    let error = (delivery == DeliveryStatus::Failed).then(|| format!("Vonage call {status}"));
    Some(Receipt { provider_message_id: uuid, status: delivery, error })
}

/// Whether a Vonage call event is the result of an `input` action (the key press of a call that
/// waits for one), and if so whether a key was pressed.
pub fn vonage_key_pressed(event: &Value) -> Option<bool> {
    let dtmf = event.get("dtmf").filter(|_| event.get("status").is_none())?;
    Some(dtmf["digits"].as_str().is_some_and(|d| !d.is_empty()))
}

/// What a Vonage Messages API status means (`submitted`, `delivered`, `read`, `rejected`,
/// `undeliverable`); a rejection's error code (1300: not on WhatsApp) is kept.
pub fn vonage_message_status(status: &Value) -> Option<Receipt> {
    let uuid = id(&status["message_uuid"])?;
    let delivery = match status["status"].as_str()? {
        "submitted" => DeliveryStatus::Sent,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "rejected" => DeliveryStatus::Failed,
        "undeliverable" => DeliveryStatus::Undelivered,
        _ => return None,
    };
    let error = match delivery {
        DeliveryStatus::Failed | DeliveryStatus::Undelivered => Some(match crate::vonage::error_code(&status["error"]) {
            Some(code) => format!("Vonage Messages error {code}"),
            None => "Vonage Messages: no error code".to_string(),
        }),
        _ => None,
    };
    Some(Receipt { provider_message_id: uuid, status: delivery, error })
}

/// The receipts in a WhatsApp Cloud API webhook (`entry[].changes[].value.statuses[]`): `sent`,
/// `delivered`, `read` and `failed` (with its first error's code, 131026 for a number without
/// WhatsApp). Inbound messages and other fields are passed over.
pub fn whatsapp_statuses(body: &Value) -> Vec<Receipt> {
    let statuses = body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
        .flat_map(|c| c["value"]["statuses"].as_array().into_iter().flatten());
    statuses
        .filter_map(|s| {
            let wamid = id(&s["id"])?;
            let status = match s["status"].as_str()? {
                "sent" => DeliveryStatus::Sent,
                "delivered" | "read" => DeliveryStatus::Delivered,
                "failed" => DeliveryStatus::Failed,
                _ => return None,
            };
            let error = (status == DeliveryStatus::Failed).then(|| match s["errors"][0]["code"].as_i64() {
                Some(code) => format!("WhatsApp error {code}"),
                None => "WhatsApp: no error code".to_string(),
            });
            Some(Receipt { provider_message_id: wamid, status, error })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UUID: &str = "63f61863-4a51-4f6b-86e1-46edebcf9356";

    #[test]
    fn call_events() {
        let event = |status: &str| json!({ "uuid": UUID, "conversation_uuid": "CON-1", "status": status, "direction": "outbound" });
        let r = vonage_call_event(&event("completed")).unwrap();
        assert_eq!((r.provider_message_id.as_str(), r.status, r.error), (UUID, DeliveryStatus::Delivered, None));
        for failed in ["busy", "failed", "rejected", "timeout", "unanswered", "cancelled"] {
            let r = vonage_call_event(&event(failed)).unwrap();
            assert_eq!((r.status, r.error.unwrap()), (DeliveryStatus::Failed, format!("Vonage call {failed}")));
        }
        for progress in ["started", "ringing", "answered", "human"] {
            assert_eq!(vonage_call_event(&event(progress)), None, "{progress}");
        }
        assert_eq!(vonage_call_event(&json!({ "status": "completed" })), None);
    }

    #[test]
    fn key_presses() {
        let input = |digits: Value| json!({ "dtmf": { "digits": digits, "timed_out": false }, "uuid": UUID, "speech": { "results": [] } });
        assert_eq!(vonage_key_pressed(&input(json!("5"))), Some(true));
        assert_eq!(vonage_key_pressed(&input(json!(null))), Some(false));
        assert_eq!(vonage_key_pressed(&input(json!(""))), Some(false));
        assert_eq!(vonage_key_pressed(&json!({ "uuid": UUID, "status": "completed" })), None);
    }

    #[test]
    fn messages_api_statuses() {
        let status = |s: &str, error: Value| json!({ "message_uuid": "aaaaaaaa-bbbb", "to": "4915123456789", "channel": "whatsapp", "status": s, "error": error });
        assert_eq!(vonage_message_status(&status("submitted", json!(null))).unwrap().status, DeliveryStatus::Sent);
        assert_eq!(vonage_message_status(&status("read", json!(null))).unwrap().status, DeliveryStatus::Delivered);
        let not_on_whatsapp = json!({ "type": "https://developer.vonage.com/api-errors/messages#1300", "title": 1300, "detail": "x" });
        let r = vonage_message_status(&status("rejected", not_on_whatsapp)).unwrap();
        assert_eq!((r.status, r.error.as_deref()), (DeliveryStatus::Failed, Some("Vonage Messages error 1300")));
        let r = vonage_message_status(&status("undeliverable", json!({ "code": 1330 }))).unwrap();
        assert_eq!((r.status, r.error.as_deref()), (DeliveryStatus::Undelivered, Some("Vonage Messages error 1330")));
        assert_eq!(vonage_message_status(&status("deleted", json!(null))), None);
    }

    #[test]
    fn whatsapp_cloud_statuses() {
        let body = json!({ "object": "whatsapp_business_account", "entry": [{ "id": "WABA", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001234", "phone_number_id": "106540352242922" },
            "statuses": [
                { "id": "wamid.A", "status": "delivered", "timestamp": "1700000000", "recipient_id": "4915123456789" },
                { "id": "wamid.B", "status": "failed", "timestamp": "1700000000", "recipient_id": "4915123456789",
                  "errors": [{ "code": 131026, "title": "Message undeliverable" }] },
                { "id": "wamid.C", "status": "deleted" },
            ],
        } }] }] });
        let r = whatsapp_statuses(&body);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].provider_message_id.as_str(), r[0].status), ("wamid.A", DeliveryStatus::Delivered));
        assert_eq!((r[1].status, r[1].error.as_deref()), (DeliveryStatus::Failed, Some("WhatsApp error 131026")));
        assert!(whatsapp_statuses(&json!({ "entry": [{ "changes": [{ "value": { "messages": [{ "text": {} }] } }] }] })).is_empty());
    }
}
