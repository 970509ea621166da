//! Decoys: the flows that answer a login for an unknown account, a wrong password or an
//! uninvited number exactly like a real one. A decoy sends nothing and takes no code, and costs
//! what a real flow costs: the same reads, a real start's unit of work rehearsed and rolled back,
//! and the same budgets for its start, resends and wrong codes.
use super::flows::Start;
use super::{Accounts, Flow, FlowKind, FlowStarted};
use crate::audit::AuditKind;
use crate::budget::Guesser;
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::model::phone::PhoneNumber;
use crate::ports;
use chrono::{DateTime, Utc};

impl Accounts {
    /// A flow that sends nothing and accepts no code, for a login that must not say why.
    pub(super) async fn decoy(
        &self,
        caller: &Caller,
        phone: Option<PhoneNumber>,
        login: String,
        wrong_password: Option<Guesser>,
        silent: bool,
    ) -> Result<FlowStarted, VerifyError> {
        let recognised = wrong_password == Some(Guesser::Recognised);
        let flow = Flow { recognised, ..self.new_flow(FlowKind::Login, phone.clone(), Some(login.clone())) };
        // A decoy does the work of a real flow's start (the reply-flow read, the verification's
        // unit of work, rolled back), so it takes as long as a real one.
        // What refuses a real start for the number alone (an opted-out number, a destination not
        // allowed, a paused prefix) refuses the decoy alike, or the answer would tell whether the
        // number has an account.
        let mut refused = None;
        if let Some(p) = phone.as_ref() {
            self.reply_pending(p).await?;
            let rehearsal = self.code_request(p, None, None, Start { rehearse: true, recognised, channel: None });
            // (A refusal of sends, such as the verification's own send limit, a real flow answers
            // as its send budget, which the decoy's charges below meet alike.)
            match self.verifier.start_unaudited(&self.engine_caller(caller), rehearsal, None).await {
                Err(e @ (VerifyError::OptedOut | VerifyError::Phone(_))) => refused = Some(e),
                Err(e @ VerifyError::OverBudget { budget: crate::budget::Budget::PrefixThrottled, .. }) => refused = Some(e),
                _ => {}
            }
        }
        // A decoy costs what a code would, so the budgets' refusals come at the same point for
        // numbers with and without an account.
        let refusing = self.decoy_send_charges(caller, &flow, None);
        let page = super::silent::flow_page(&flow.id);
        // A wrong password counts in its own unit: whatever refuses the flow later, it stays counted.
        if let Some(who) = wrong_password {
            let (counted, now) = (self.ctx.budgets.for_failed_login(&login, who), self.now());
            ports::write(self.ctx.store.as_ref(), move |tx| {
                for c in &counted {
                    let (start, end) = c.rate.window(now);
                    tx.take_budget(c, start, 0, end)?;
                }
                Ok::<_, VerifyError>(())
            })
            .await?;
        }
        if let Some(e) = refused {
            return self.audit.audited(caller, &login, Err(e)).await;
        }
        let event = self.audit.in_unit(caller, AuditKind::LoginFailed, Some(&login), "unknown account or wrong password");
        let started = self.save_flow(flow, refusing, event).await;
        let mut started = self.audit.audited(caller, &login, started).await?;
        // Where a real flow would get a silent check, so does a decoy (one that ends nothing),
        // once the budgets a real one costs are charged.
        if let Some(p) = phone.as_ref().filter(|_| silent && self.verifier.silent_enabled()) {
            started.check_url = self.verifier.decoy_silent_check(caller, p, page, self.settings.brand.clone()).await;
        }
        Ok(started)
    }

    /// What sending a decoy's code would cost: a number's send budgets, or for a decoy without a
    /// number (a wrong password) a send budget of the login tried.
    pub(super) fn decoy_send_charges(
        &self,
        caller: &Caller,
        flow: &Flow,
        channel: Option<crate::model::workflow::Channel>,
    ) -> Vec<crate::budget::Charge> {
        if let Some(p) = &flow.phone {
            return self.send_charges(caller, p, flow.recognised, channel);
        }
        if let Some(address) = flow.email.as_deref().filter(|_| flow.kind == FlowKind::EmailChange) {
            return self.email_send_charges(caller, address);
        }
        let budgets = self.ctx.budgets.for_service(super::SERVICE);
        let mut charges = budgets.for_start(caller.end_user_ip.or(caller.ip));
        let subject = decoy_subject(flow);
        let channel = channel.unwrap_or(self.settings.workflow.first().channel);
        let sends = budgets.for_send_on(channel, &subject, "", None, &self.service_id);
        charges.extend(sends.into_iter().filter(|c| c.budget == crate::budget::Budget::SendsPerNumber));
        charges
    }

    /// A decoy's wrong code costs what a real flow's would (the address's check budget and the
    /// number's guess budget, or the login's for a decoy without a number), so every budget
    /// refuses at the same point for both.
    pub(super) fn decoy_check(
        &self,
        tx: &mut dyn ports::Tx,
        flow: &Flow,
        ip: Option<std::net::IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let budgets = self.ctx.budgets.for_service(super::SERVICE);
        let who = flow.guesser();
        if who == Guesser::Anyone {
            crate::budget::charge(tx, &budgets.for_check(ip), now)?;
        }
        let number = match (&flow.phone, &flow.email) {
            (Some(p), _) => p.as_str().to_string(),
            // An e-mail change's guesses count against its address, as its verification's would.
            (None, Some(address)) if flow.kind == FlowKind::EmailChange => address.clone(),
            _ => decoy_subject(flow),
        };
        crate::budget::charge(tx, &budgets.for_guess(&number, who), now)
    }
}

/// The counters' subject for a decoy without a number (an unknown username or e-mail address).
/// It carries a space, which no number, username or address holds, so nobody can name it.
pub(super) fn decoy_subject(flow: &Flow) -> String {
    format!("login {}", flow.login.as_deref().unwrap_or_default())
}
