//! WhatsApp through Twilio's Messages API: `whatsapp:` addresses and a Content template of type
//! authentication (`ContentSid`), whose variable `1` is the code (WhatsApp shows it with a
//! copy-code button). Status callbacks come to the SMS status webhook (`read` counts as
//! delivered); a number without WhatsApp is refused there (or at once, 63003/63024).
use super::{STATUS_PATH, Twilio};
use phonegate_core::ports::{Accepted, Outgoing, SendError};

/// `whatsapp:+1…` for a number given with or without the prefix.
fn address(number: &str) -> String {
    format!("whatsapp:{}", number.strip_prefix("whatsapp:").unwrap_or(number))
}

impl Twilio {
    pub(super) async fn whatsapp(&self, message: &Outgoing) -> Result<Accepted, SendError> {
        let s = &self.settings;
        let (Some(template), Some(from)) = (s.whatsapp_content_sid.as_deref(), message.from.as_deref().or(s.whatsapp_from.as_deref()))
        else {
            // Another provider may have a WhatsApp sender: fail over rather than refuse the number.
            return Err(SendError::unavailable(format!("{}: WhatsApp needs `whatsapp_from` and `whatsapp_content_sid`", self.name)));
        };
        let Some(code) = message.code.as_deref() else {
            return Err(SendError::Rejected(format!("{}: a WhatsApp template carries a code, and this message has none", self.name)));
        };
        let (to, from) = (address(message.to.as_str()), address(from));
        let variables = serde_json::json!({ "1": code }).to_string();
        let mut form =
            vec![("To", to.as_str()), ("From", from.as_str()), ("ContentSid", template), ("ContentVariables", variables.as_str())];
        let callback = self.callback(STATUS_PATH);
        if let Some(callback) = &callback {
            form.push(("StatusCallback", callback));
        }
        self.create("Messages", &form).await
    }
}
