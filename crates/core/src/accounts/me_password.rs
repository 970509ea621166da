//! A signed-in user sets or changes the account's password, so that a passwordless account can
//! log in with password + code too. Changing a password needs the current one, checked within
//! the budgets of a password login (a wrong one counts as a failed login of the account, so this
//! is no way around them); setting the first one needs a login within `reauth`, as changing the
//! number does. Either ends every other session of the account, and keeps the caller's.
use super::{Accounts, Principal, User, user};
use crate::audit::AuditKind;
use crate::budget::Charge;
use crate::caller::Caller;
use crate::error::{Field, VerifyError};
use crate::ports;
use secrecy::{ExposeSecret, SecretString};

impl Accounts {
    /// Sets the signed-in user's password to `new` (the sign-up's rule), given the `current`
    /// one when the account has a password, or a recent login when it has none. The password
    /// is never logged: it is exposed only to check its length and to hash or verify it.
    #[tracing::instrument(name = "accounts.set_password", level = "debug", skip_all)]
    pub async fn set_password(
        &self,
        caller: &Caller,
        p: &Principal,
        new: &SecretString,
        current: Option<&SecretString>,
    ) -> Result<User, VerifyError> {
        user::password(new.expose_secret()).map_err(|e| VerifyError::invalid(Field::NewPassword, e.message))?;
        let (this, pr, now) = (self.clone(), p.clone(), self.now());
        let found = ports::read(self.ctx.store.as_ref(), move |tx| {
            this.live_in(tx, Some(&pr), now)?;
            let found = tx.user(&pr.user_id)?.ok_or(VerifyError::Unauthenticated)?;
            // Without a password, the session's own login is the proof: it must be recent.
            if found.password_hash.is_none() {
                this.fresh_session(tx, Some(&pr), now)?;
            }
            Ok::<_, VerifyError>(found)
        })
        .await?;
        let before = found.password_hash.clone();
        if let Some(stored) = &before {
            self.check_current(caller, &found, stored, current).await?;
        }
        let hash = self.passwords.hash(new).await;
        let (this, pr, now) = (self.clone(), p.clone(), self.now());
        let expected = before.clone();
        let changed = ports::write(self.ctx.store.as_ref(), move |tx| {
            // The user's row first (the conditional update locks it): two changes at once take
            // turns there, before either locks a session the other would end (no deadlock).
            if !tx.set_password_hash(&pr.user_id, &hash, expected.as_deref())? {
                return Err(VerifyError::invalid(Field::CurrentPassword, "the password was changed meanwhile: give the new one"));
            }
            let session = this.live_in(tx, Some(&pr), now)?;
            tx.delete_other_sessions(&pr.user_id, &session.id)?;
            let changed = tx.user(&pr.user_id)?.ok_or(VerifyError::Unauthenticated)?;
            this.emit(tx, "user.password_changed", &changed, now)?;
            Ok(changed)
        })
        .await?;
        let detail = match before {
            None => "a first password was set; other sessions ended",
            Some(_) => "the password was changed; other sessions ended",
        };
        self.audit.record(&caller.as_user(&p.user_id), AuditKind::PasswordChanged, Some(&p.user_id), detail).await;
        Ok(changed)
    }

    /// Checks the account's current password as a password login would: refused while the
    /// account's failed-login budgets (of its username and of its e-mail address) are spent, a
    /// check from the caller's address costs a login, and a wrong password counts in each of them
    /// in its own unit, so no later refusal undoes it.
    async fn check_current(&self, caller: &Caller, found: &User, stored: &str, current: Option<&SecretString>) -> Result<(), VerifyError> {
        let Some(current) = current.filter(|c| !c.expose_secret().is_empty()) else {
            return Err(VerifyError::invalid(Field::CurrentPassword, "the account has a password: give it as current_password"));
        };
        // No password is that long (the rule is the sign-up's): wrong, and no guess worth counting.
        if current.expose_secret().chars().count() > 128 {
            return Err(VerifyError::PasswordIncorrect);
        }
        let budgets = &self.ctx.budgets;
        let who = self.guesser(caller, Some((found.id.as_str(), &found.phone)));
        let failed: Vec<Charge> = logins(found).iter().flat_map(|l| budgets.for_failed_login(l, who)).collect();
        let per_ip = budgets.for_login(caller.end_user_ip.or(caller.ip));
        let (counted, now) = (failed.clone(), self.now());
        let admitted = ports::write(self.ctx.store.as_ref(), move |tx| {
            crate::budget::charge(tx, &per_ip, now)?;
            for c in &counted {
                if !tx.budget_left(c, c.rate.window(now).0)? {
                    return Err(crate::budget::refusal(c, now));
                }
            }
            Ok(())
        })
        .await;
        self.audit.audited(caller, &found.username.to_lowercase(), admitted).await?;
        if self.passwords.verify(current, Some(stored)).await {
            return Ok(());
        }
        let now = self.now();
        ports::write(self.ctx.store.as_ref(), move |tx| {
            for c in &failed {
                let (start, end) = c.rate.window(now);
                tx.take_budget(c, start, 0, end)?;
            }
            Ok::<_, VerifyError>(())
        })
        .await?;
        let by = caller.as_user(&found.id);
        self.audit.record(&by, AuditKind::PasswordChangeFailed, Some(&found.id), "a wrong current password was given").await;
        Err(VerifyError::PasswordIncorrect)
    }
}

/// The logins a password login of the account may name (its username and its e-mail address,
/// lower-cased), whose failed-login budgets a wrong current password counts in.
fn logins(u: &User) -> Vec<String> {
    std::iter::once(u.username.to_lowercase()).chain(u.email.as_ref().map(|e| e.to_lowercase())).collect()
}
