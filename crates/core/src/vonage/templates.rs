//! Templates: named sets of SMS texts of a service, each text (a fragment) for one locale, with
//! Vonage's placeholders `${code}`, `${brand}`, `${time-limit}` and `${time-limit-unit}`. A start
//! naming a template writes its messages from it; without one, from the service's own templates.
//! The service's default template is mapped onto those: its fragments are written into the
//! service's templates (one per locale, the time limit as the service's code lifetime), so every
//! API (native, Twilio, Vonage v1 and v2) sends the same texts.
//! Only `sms` fragments are taken (an e-mail step's text part is written from them too):
//! phonegate's calls speak their own texts.
use super::VonageV2;
use crate::caller::Caller;
use crate::error::{Field, VerifyError};
use crate::model::ids::{is_uuid, new_uuid};
use crate::model::service::{MAX_TEMPLATE_LEN, is_unsafe, normalize_locale};
use crate::model::vonage::{TemplateFragment, VonageTemplate};
use crate::ports;
use std::collections::BTreeMap;

/// A template's new name and default flag (`None`: unchanged).
#[derive(Clone, Debug, Default)]
pub struct TemplateChange {
    pub name: Option<String>,
    pub is_default: Option<bool>,
}

/// A fragment's channel, locale and text (channel and locale only when it is made).
#[derive(Clone, Debug, Default)]
pub struct FragmentChange {
    pub channel: Option<String>,
    pub locale: Option<String>,
    pub text: Option<String>,
}

/// SMS texts by phonegate locale, in phonegate's placeholders, for a start.
pub type TemplateTexts = BTreeMap<String, String>;

fn check_name(name: &str) -> Result<String, VerifyError> {
    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| name.to_string()).ok_or_else(|| VerifyError::invalid(Field::Name, "must be 1 to 64 of A-Z, a-z, 0-9, _ and -"))
}

fn check_text(text: &str) -> Result<String, VerifyError> {
    // Counted as sent: a brand of up to 18 characters, a code of up to 10, a lifetime's words.
    let sent = text.chars().count()
        + 18 * text.matches("${brand}").count()
        + 10 * text.matches("${code}").count()
        + 10 * text.matches("${time-limit").count();
    let ok = text.contains("${code}") && sent <= MAX_TEMPLATE_LEN && !text.chars().any(is_unsafe);
    ok.then(|| text.to_string()).ok_or_else(|| {
        VerifyError::invalid(
            Field::Templates,
            format!("a text must contain ${{code}}, be at most {MAX_TEMPLATE_LEN} characters and hold no control characters"),
        )
    })
}

/// A fragment's text in phonegate's placeholders, for a code that lives `ttl_secs`.
fn render(text: &str, ttl_secs: i64) -> String {
    let (n, unit) = if ttl_secs % 3600 == 0 && ttl_secs >= 3600 {
        (ttl_secs / 3600, if ttl_secs == 3600 { "hour" } else { "hours" })
    } else if ttl_secs >= 60 {
        (ttl_secs / 60, if ttl_secs / 60 == 1 { "minute" } else { "minutes" })
    } else {
        (ttl_secs, "seconds")
    };
    text.replace("${code}", "{code}")
        .replace("${brand}", "{service}")
        .replace("${time-limit-unit}", unit)
        .replace("${time-limit}", &n.to_string())
}

impl VonageV2 {
    async fn service_id(&self, caller: &Caller) -> Result<String, VerifyError> {
        Ok(self.catalog.service(caller, None).await?.id)
    }

    /// The templates of the caller's service, oldest first.
    pub async fn templates(&self, caller: &Caller) -> Result<Vec<VonageTemplate>, VerifyError> {
        let service = self.service_id(caller).await?;
        ports::read(self.ctx.store.as_ref(), move |tx| Ok(tx.vonage_templates(&service)?)).await
    }

    pub async fn template(&self, caller: &Caller, id: &str) -> Result<VonageTemplate, VerifyError> {
        let (service, id) = (self.service_id(caller).await?, id.to_ascii_lowercase());
        if !is_uuid(&id) {
            return Err(VerifyError::TemplateNotFound);
        }
        ports::read(self.ctx.store.as_ref(), move |tx| tx.vonage_template(&service, &id)?.ok_or(VerifyError::TemplateNotFound)).await
    }

    pub async fn create_template(&self, caller: &Caller, name: &str, is_default: bool) -> Result<VonageTemplate, VerifyError> {
        let t = self.insert_template(caller, name, is_default).await?;
        self.sync_default(&t, None).await?;
        Ok(t)
    }

    async fn insert_template(&self, caller: &Caller, name: &str, is_default: bool) -> Result<VonageTemplate, VerifyError> {
        let t = VonageTemplate {
            id: new_uuid(),
            service_id: self.service_id(caller).await?,
            name: check_name(name)?,
            is_default,
            created_at: self.ctx.now(),
        };
        let t2 = t.clone();
        ports::write(self.ctx.store.as_ref(), move |tx| {
            if !tx.insert_vonage_template(&t2)? {
                return Err(VerifyError::TemplateConflict);
            }
            if t2.is_default {
                tx.clear_default_template(&t2.service_id, &t2.id)?;
            }
            Ok(())
        })
        .await?;
        Ok(t)
    }

    /// Writes the default template's fragments into its service's templates (and takes the text
    /// of `removed`, a locale whose fragment went, out of them).
    async fn sync_default(&self, t: &VonageTemplate, removed: Option<&str>) -> Result<(), VerifyError> {
        if !t.is_default {
            return Ok(());
        }
        let id = t.id.clone();
        let fragments = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.template_fragments(&id)?)).await?;
        let system = Caller::system("vonage-default-template");
        let service = self.catalog.service(&system, Some(&t.service_id)).await?;
        let mut texts = service.templates.clone();
        if let Some(locale) = removed.and_then(|l| normalize_locale(l).ok()) {
            texts.remove(&locale);
        }
        for f in fragments.iter().filter(|f| f.channel == "sms") {
            if let Ok(locale) = normalize_locale(&f.locale) {
                texts.insert(locale, render(&f.text, service.code_ttl_secs));
            }
        }
        if texts != service.templates {
            let changes = crate::catalog::ServiceChanges { templates: Some(texts), ..Default::default() };
            self.catalog.update_service(&system, &service.id, changes).await?;
        }
        Ok(())
    }

    pub async fn update_template(&self, caller: &Caller, id: &str, change: TemplateChange) -> Result<VonageTemplate, VerifyError> {
        let mut t = self.template(caller, id).await?;
        if let Some(name) = &change.name {
            t.name = check_name(name)?;
        }
        if let Some(d) = change.is_default {
            t.is_default = d;
        }
        let t2 = t.clone();
        ports::write(self.ctx.store.as_ref(), move |tx| {
            if !tx.update_vonage_template(&t2)? {
                return Err(match tx.vonage_template(&t2.service_id, &t2.id)? {
                    Some(_) => VerifyError::TemplateConflict,
                    None => VerifyError::TemplateNotFound,
                });
            }
            if t2.is_default {
                tx.clear_default_template(&t2.service_id, &t2.id)?;
            }
            Ok(())
        })
        .await?;
        self.sync_default(&t, None).await?;
        Ok(t)
    }

    pub async fn delete_template(&self, caller: &Caller, id: &str) -> Result<(), VerifyError> {
        let t = self.template(caller, id).await?;
        // As at Vonage, only a template without fragments can go.
        let deleted = ports::write(self.ctx.store.as_ref(), move |tx| {
            if !tx.template_fragments(&t.id)?.is_empty() {
                return Err(VerifyError::TemplateConflict);
            }
            Ok(tx.delete_vonage_template(&t.service_id, &t.id)?)
        })
        .await?;
        deleted.then_some(()).ok_or(VerifyError::TemplateNotFound)
    }

    /// A template's fragments, oldest first.
    pub async fn fragments(&self, caller: &Caller, template_id: &str) -> Result<Vec<TemplateFragment>, VerifyError> {
        let t = self.template(caller, template_id).await?;
        ports::read(self.ctx.store.as_ref(), move |tx| Ok(tx.template_fragments(&t.id)?)).await
    }

    pub async fn fragment(&self, caller: &Caller, template_id: &str, id: &str) -> Result<TemplateFragment, VerifyError> {
        let id = id.to_ascii_lowercase();
        self.fragments(caller, template_id).await?.into_iter().find(|f| f.id == id).ok_or(VerifyError::TemplateNotFound)
    }

    pub async fn create_fragment(&self, caller: &Caller, template_id: &str, new: FragmentChange) -> Result<TemplateFragment, VerifyError> {
        let t = self.template(caller, template_id).await?;
        let channel = new.channel.unwrap_or_default();
        if channel != "sms" {
            return Err(VerifyError::invalid(
                Field::Channel,
                "phonegate takes sms fragments only: its calls and e-mails speak its own texts",
            ));
        }
        let locale = new.locale.unwrap_or_default();
        normalize_locale(&locale).map_err(|_| VerifyError::invalid(Field::Locale, "must be a locale like en-us"))?;
        let now = self.ctx.now();
        let f = TemplateFragment {
            id: new_uuid(),
            template_id: t.id.clone(),
            channel,
            locale: locale.to_ascii_lowercase(),
            text: check_text(new.text.as_deref().unwrap_or_default())?,
            created_at: now,
            updated_at: now,
        };
        let f2 = f.clone();
        let made = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.insert_template_fragment(&f2)?)).await?;
        if !made {
            return Err(VerifyError::TemplateConflict);
        }
        self.sync_default(&t, None).await?;
        Ok(f)
    }

    pub async fn update_fragment(&self, caller: &Caller, template_id: &str, id: &str, text: &str) -> Result<TemplateFragment, VerifyError> {
        let mut f = self.fragment(caller, template_id, id).await?;
        f.text = check_text(text)?;
        f.updated_at = self.ctx.now();
        let f2 = f.clone();
        let done = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.update_template_fragment(&f2)?)).await?;
        if !done {
            return Err(VerifyError::TemplateNotFound);
        }
        self.sync_default(&self.template(caller, template_id).await?, None).await?;
        Ok(f)
    }

    pub async fn delete_fragment(&self, caller: &Caller, template_id: &str, id: &str) -> Result<(), VerifyError> {
        let f = self.fragment(caller, template_id, id).await?;
        let (tid, fid) = (f.template_id.clone(), f.id.clone());
        let done = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.delete_template_fragment(&tid, &fid)?)).await?;
        if !done {
            return Err(VerifyError::TemplateNotFound);
        }
        self.sync_default(&self.template(caller, template_id).await?, Some(&f.locale)).await
    }

    /// The SMS texts a start naming `template_id` uses, for a code that lives `ttl_secs` (`None`:
    /// the service's own templates, which hold its default template's texts).
    pub async fn texts_for(&self, caller: &Caller, template_id: Option<&str>, ttl_secs: i64) -> Result<Option<TemplateTexts>, VerifyError> {
        let Some(id) = template_id else { return Ok(None) };
        let t = self.template(caller, id).await?;
        let fragments = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.template_fragments(&t.id)?)).await?;
        let texts: TemplateTexts = fragments
            .iter()
            .filter(|f| f.channel == "sms")
            .filter_map(|f| Some((normalize_locale(&f.locale).ok()?, render(&f.text, ttl_secs))))
            .collect();
        Ok((!texts.is_empty()).then_some(texts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vonage_placeholders_become_phonegate_ones() {
        assert_eq!(render("${brand}: ${code}, valid ${time-limit} ${time-limit-unit}", 300), "{service}: {code}, valid 5 minutes");
        assert_eq!(render("${code} ${time-limit} ${time-limit-unit}", 3600), "{code} 1 hour");
        assert!(check_text("no code here").is_err());
        assert!(check_text("code ${code}").is_ok());
    }
}
