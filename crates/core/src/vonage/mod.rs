//! The Vonage Verify v2 drop-in's own concerns (the adapter in the server translates the wire
//! format and calls the engine for the verifications themselves): applications, whose RS256 JWTs
//! authenticate as their API key (`apps.rs`); the status callbacks owed to them, queued and
//! delivered with retries (`callbacks.rs`); and templates with their fragments (`templates.rs`).
mod apps;
mod callbacks;
mod silent;
mod templates;

pub use apps::{NewApp, is_callback_url};
pub use callbacks::{CallbackSink, Watch};
pub use templates::{FragmentChange, TemplateChange, TemplateTexts};

use crate::audit::Audit;
use crate::catalog::Catalog;
use crate::context::Context;
use std::sync::Arc;

/// A key's application (or none) and when it was read.
type KnownApp = (Option<crate::model::vonage::VonageApp>, std::time::Instant);

/// Applications, callbacks and templates. Cheap to clone.
#[derive(Clone)]
pub struct VonageV2 {
    ctx: Context,
    audit: Audit,
    catalog: Catalog,
    verifier: crate::Verifier,
    sink: Option<Arc<dyn CallbackSink>>,
    /// Parsed public keys by application id, with the PEM they were parsed from.
    parsed: Arc<std::sync::Mutex<std::collections::HashMap<String, (String, jsonwebtoken::DecodingKey)>>>,
    /// Each key's application as last read, and when: a start reads it from here for 2 s.
    apps_of_keys: Arc<std::sync::Mutex<std::collections::HashMap<String, KnownApp>>>,
    /// Woken when a request may have ended (a check, a cancel): the callback worker looks at once.
    wake: Arc<tokio::sync::Notify>,
}

impl VonageV2 {
    pub fn new(core: &crate::Core, sink: Option<Arc<dyn CallbackSink>>) -> Self {
        Self {
            ctx: core.ctx.clone(),
            audit: core.audit.clone(),
            catalog: core.catalog.clone(),
            verifier: core.verifier.clone(),
            sink,
            parsed: Default::default(),
            apps_of_keys: Default::default(),
            wake: Default::default(),
        }
    }

    /// Tells the callback worker a request may have ended.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What the callback worker waits on between its rounds.
    pub fn woken(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }
}
