//! Checks: a code against a verification by id, or against a number's pending verification,
//! each one unit that counts the attempt, charges the check and guess budgets and records the
//! check (never the code).
use super::{Verifier, count, visible};
use crate::budget::Guesser;
use crate::caller::Caller;
use crate::code;
use crate::error::{Field, VerifyError};
use crate::model::psd2::Psd2;
use crate::model::verification::{CheckOutcome, Status, Verification};
use crate::ports::{self, Tx};

/// Who checks a code, and who counts the attempts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Guess {
    /// Whose guess budget a wrong code is charged to (`Guesser`).
    pub guesser: Guesser,
    /// The verification counts its own attempts (the APIs). False when one of several flows or
    /// steps sharing the verification's code counts its own: then nobody else's wrong codes use
    /// up another's attempts, and every wrong code still counts in the number's guess budget.
    pub own_attempts: bool,
}

impl Guess {
    pub const API: Guess = Guess { guesser: Guesser::Anyone, own_attempts: true };
}

fn plausible(code: &str) -> Result<(), VerifyError> {
    if code::is_plausible(code) { Ok(()) } else { Err(VerifyError::invalid(Field::Code, "must be 4 to 10 digits")) }
}

impl Verifier {
    /// Checks a code against verification `id`. A check naming a payment (`psd2`) approves only
    /// a verification made for that same amount and payee.
    #[tracing::instrument(name = "verifier.check", level = "debug", skip_all, fields(verification = %id))]
    pub async fn check(
        &self,
        caller: &Caller,
        id: &str,
        code: &str,
        psd2: Option<&Psd2>,
    ) -> Result<(Verification, CheckOutcome), VerifyError> {
        plausible(code)?;
        let result = self.check_unaudited(caller, id, code, psd2).await;
        self.audit.audited(caller, id, result).await
    }

    /// Like `check`, but any text up to 32 characters is an attempt: one that is not 4 to 10
    /// digits is a wrong code and costs an attempt (Vonage's rule).
    #[tracing::instrument(name = "verifier.check", level = "debug", skip_all, fields(verification = %id))]
    pub async fn check_any(&self, caller: &Caller, id: &str, code: &str) -> Result<(Verification, CheckOutcome), VerifyError> {
        if code.is_empty() || code.chars().count() > 32 {
            return Err(VerifyError::invalid(Field::Code, "must be 1 to 32 characters"));
        }
        let result = self.check_unaudited(caller, id, code, None).await;
        self.audit.audited(caller, id, result).await
    }

    async fn check_unaudited(
        &self,
        caller: &Caller,
        id: &str,
        code: &str,
        psd2: Option<&Psd2>,
    ) -> Result<(Verification, CheckOutcome), VerifyError> {
        let (this, id, code, ip, caller) = (self.clone(), id.to_string(), code.to_string(), caller.end_user_ip, caller.clone());
        let psd2 = psd2.cloned();
        let (v, outcome) = ports::write(self.ctx.store.as_ref(), move |tx| {
            let v = visible(&caller, tx.verification(&id)?)?;
            this.check_locked(tx, v, &code, ip, psd2.as_ref(), Guess::API)
        })
        .await?;
        Ok(self.checked(v, outcome))
    }

    /// Checks a code against the pending verification for a number (or an e-mail address). With
    /// none pending it answers `NoPendingVerification` after counting the check like a wrong code.
    #[tracing::instrument(name = "verifier.check_number", level = "debug", skip_all, fields(to = %crate::model::phone::mask(to)))]
    pub async fn check_number(
        &self,
        caller: &Caller,
        service: Option<&str>,
        to: &str,
        code: &str,
        psd2: Option<&Psd2>,
    ) -> Result<(Verification, CheckOutcome), VerifyError> {
        let result = self.check_number_unaudited(caller, service, to, code, psd2).await;
        self.audit.audited(caller, &to.chars().take(32).collect::<String>(), result).await
    }

    async fn check_number_unaudited(
        &self,
        caller: &Caller,
        service: Option<&str>,
        to: &str,
        code: &str,
        psd2: Option<&Psd2>,
    ) -> Result<(Verification, CheckOutcome), VerifyError> {
        plausible(code)?;
        let to = self.ctx.parse_recipient(to)?;
        let service = self.catalog.service(caller, service).await?;
        let (this, code, ip, psd2) = (self.clone(), code.to_string(), caller.end_user_ip, psd2.cloned());
        let (v, outcome) = ports::write(self.ctx.store.as_ref(), move |tx| {
            let now = this.ctx.clock.now();
            match tx.pending_verification(&service.id, &to)? {
                Some(v) if v.status_at(now) == Status::Pending => this.check_locked(tx, v, &code, ip, psd2.as_ref(), Guess::API).map(Ok),
                // None pending (or one whose deadline passed unswept): counted like a wrong
                // code, so not even the budgets tell whether one is pending.
                _ => {
                    let budgets = this.ctx.budgets.for_service(&service.name);
                    crate::budget::charge(tx, &budgets.for_check(ip), now)?;
                    crate::budget::charge(tx, &budgets.for_guess(to.as_str(), Guesser::Anyone), now)?;
                    // Locked by wrong codes (until its code would have expired): said as for
                    // a check by id; only whoever made the wrong guesses learns it.
                    if let Some(phone) = to.phone()
                        && tx.locked_verification(&service.id, phone, now)?.is_some()
                    {
                        return Ok(Err(VerifyError::NotPending(Status::MaxAttemptsReached)));
                    }
                    Ok(Err(VerifyError::NoPendingVerification))
                }
            }
        })
        .await??;
        Ok(self.checked(v, outcome))
    }

    /// After a committed check: a verification it ended is counted.
    fn checked(&self, v: Verification, outcome: CheckOutcome) -> (Verification, CheckOutcome) {
        if v.status != Status::Pending {
            self.ctx.observer.verification_entered(&v.service_id, v.channel, v.status);
            if v.test {
                let event = if v.status == Status::Approved { "approved" } else { v.status.as_str() };
                self.ctx.observer.test_number(&v.service_id, event);
            }
        }
        if v.status == Status::Approved && !v.test {
            self.ctx.observer.conversion(&v.to.region().unwrap_or_else(|| "unknown".into()), "approved");
        }
        (v, outcome)
    }

    /// One check inside a unit of work that holds `v`'s lock. A verification that is not pending
    /// is refused before anything else, the same way by every engine method. Over the number's
    /// guess budget every code is refused alike; within it, only wrong codes are counted. Without
    /// `own_attempts` a wrong code leaves the verification's attempts alone (the caller counts
    /// them) and answers `Rejected` with the verification's attempts left.
    pub(crate) fn check_locked(
        &self,
        tx: &mut dyn Tx,
        mut v: Verification,
        code: &str,
        ip: Option<std::net::IpAddr>,
        psd2: Option<&Psd2>,
        guess: Guess,
    ) -> Result<(Verification, CheckOutcome), VerifyError> {
        let now = self.ctx.clock.now();
        let status = v.status_at(now);
        if status != Status::Pending {
            return Err(VerifyError::NotPending(status));
        }
        // A service's own budgets, when it has any (its name is read in this same unit).
        let service_name = match self.ctx.budgets.services.is_empty() {
            true => None,
            false => tx.service(&v.service_id)?.map(|s| s.name),
        };
        let budgets =
            service_name.as_deref().map_or(std::borrow::Cow::Borrowed(self.ctx.budgets.as_ref()), |n| self.ctx.budgets.for_service(n));
        // A recognised device guesses only its own number, bounded by that number's recognised
        // budget: others at its address cannot lock it out.
        if guess.guesser == Guesser::Anyone {
            crate::budget::charge(tx, &budgets.for_check(ip), now)?;
        }
        // A code of another length is a wrong code like any other (and says nothing of the length).
        // A check naming another payment is a wrong code (the user was shown other figures).
        let matches = code::is_well_formed(code, v.code_length)
            && self.ctx.keys.matches(&v.id, code, &v.code_digest)
            && Psd2::allows(v.psd2.as_ref(), psd2);
        // A number over its guess budget is locked: the answer is the same whatever the code, and
        // a wrong one is counted (the budget's counters are locked until this unit ends).
        let charges = budgets.for_guess(v.to.as_str(), guess.guesser);
        if matches {
            for c in &charges {
                if !tx.budget_left(c, c.rate.window(now).0)? {
                    return Err(crate::budget::refusal(c, now));
                }
            }
        } else {
            crate::budget::charge(tx, &charges, now)?;
        }
        // A `silent` verification is proven by the operator only: no code approves it.
        let matches = matches && v.channel != crate::model::verification::Channel::Silent;
        let outcome = if matches || guess.own_attempts {
            v.check(matches, now)
        } else {
            CheckOutcome::Rejected { attempts_left: v.max_attempts.saturating_sub(v.attempts).max(1) }
        };
        if let CheckOutcome::NotPending(status) = outcome {
            return Err(VerifyError::NotPending(status));
        }
        let record =
            crate::model::verification::CheckRecord { at: now, valid: outcome == CheckOutcome::Approved, ip: ip.map(|i| i.to_string()) };
        tx.insert_check(&v.id, &record)?;
        // A test number was never counted as sent into its prefix: its approval is not counted either.
        if outcome == CheckOutcome::Approved
            && !v.test
            && let Some((_, approved)) = self.ctx.budgets.throttle_counters(&self.ctx.budgets.prefix(v.to.as_str(), &v.to.calling_code()))
        {
            count(tx, &approved, now)?;
        }
        ports::save_verification(tx, &mut v)?;
        Ok((v, outcome))
    }
}
