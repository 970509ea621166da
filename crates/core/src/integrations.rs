//! Signed-redirect steps: an identity provider (an Auth0 Login Action) or an app sends a user to
//! phonegate with a signed token; phonegate verifies the user's phone number by code and sends
//! them back — only to a return URL from configuration — with a signed token saying so.
//!
//! The incoming token must be HS256 with the client's secret, from the client's issuer (one
//! string), name a subject, be valid now (`nbf`, `exp`) for at most a step's length, and be
//! unused (its SHA-256 is kept until it could no longer be accepted). The step's own state (the
//! provider's `state`, the subject, the number, the verification) travels sealed with the server
//! secret in the page's form, so no step table exists and a step cannot be forged or moved to
//! another client. The code is an ordinary verification of the `integrations` service: every
//! budget, attempt limit and audit rule applies.
use crate::audit::Audit;
use crate::audit::AuditKind;
use crate::budget::{Budget, Charge, Guesser, Rate};
use crate::caller::{Caller, Scope};
use crate::context::Context;
use crate::engine::{Guess, StartOptions, StartRequest, Verifier};
use crate::error::{Field, VerifyError};
use crate::model::phone::PhoneNumber;
use crate::model::service::ServiceSettings;
use crate::model::verification::{Channel, CheckOutcome, Status};
use crate::ports;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The service whose verifications carry the steps' codes.
pub const SERVICE: &str = "integrations";
/// How long a returned token is valid (the bound: at most 5 minutes).
const RETURN_TOKEN_SECS: i64 = 300;
/// How long a step may take, from the incoming token to the right code; also the longest an
/// incoming token may be valid for.
const STEP_SECS: i64 = 15 * 60;
/// Wrong codes one step takes before it answers "not verified".
const STEP_ATTEMPTS: u32 = 5;
/// Clock skew allowed between the client and phonegate, for `exp` and `nbf`.
const LEEWAY_SECS: i64 = 5;

/// A configured client: Auth0 (`[auth0]`) or any app (`[redirect_clients.NAME]`).
#[derive(Clone)]
pub struct RedirectClient {
    /// The path segment: `/integrations/{name}/verify`.
    pub name: String,
    pub secret: Vec<u8>,
    /// The accepted `iss` values of incoming tokens.
    pub issuers: Vec<String>,
    /// Where users go back, exactly; with several, the request names one of them exactly.
    pub return_urls: Vec<String>,
    /// The incoming token's claim holding the phone number.
    pub phone_claim: String,
}

impl std::fmt::Debug for RedirectClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedirectClient").field("name", &self.name).field("return_urls", &self.return_urls).finish_non_exhaustive()
    }
}

/// A step in progress, sealed into the page.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StepState {
    /// Spent when a number is given, so one step sends codes to one number only.
    id: String,
    client: String,
    state: String,
    sub: String,
    return_url: String,
    phone: Option<String>,
    verification_id: Option<String>,
    exp: i64,
}

/// What the page shows next.
#[derive(Clone, Debug)]
pub struct Step {
    /// The sealed step, for the page's form.
    pub token: String,
    /// The number the code went to (none yet: the page asks for one).
    pub phone: Option<PhoneNumber>,
}

pub struct Integrations {
    verifier: Verifier,
    ctx: Context,
    audit: Audit,
    clients: BTreeMap<String, RedirectClient>,
    service_id: String,
    issuer: String,
}

#[derive(Deserialize)]
struct Incoming {
    sub: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
    /// The validated `exp` (set by `validate`, never read from the token by serde).
    #[serde(skip)]
    exp: i64,
}

impl Integrations {
    /// Makes sure the `integrations` service exists (when any client is configured).
    pub async fn new(core: &crate::Core, clients: Vec<RedirectClient>, public_url: Option<&str>) -> Result<Self, VerifyError> {
        let system = Caller::system("start-up");
        let service_id = if clients.is_empty() {
            String::new()
        } else {
            match core.catalog.create_service(&system, ServiceSettings { name: SERVICE.into(), ..Default::default() }).await {
                Ok(s) => s.id,
                Err(VerifyError::ServiceNameTaken) => core.catalog.service(&system, Some(SERVICE)).await?.id,
                Err(e) => return Err(e),
            }
        };
        let issuer = public_url.map_or_else(|| "phonegate".to_string(), |u| u.trim_end_matches('/').to_string());
        let clients = clients.into_iter().map(|c| (c.name.clone(), c)).collect();
        Ok(Self { verifier: core.verifier.clone(), ctx: core.ctx.clone(), audit: core.audit.clone(), clients, service_id, issuer })
    }

    pub fn has(&self, client: &str) -> bool {
        self.clients.contains_key(client)
    }

    fn client(&self, name: &str) -> Result<&RedirectClient, VerifyError> {
        self.clients.get(name).ok_or(VerifyError::RedirectClientNotFound)
    }

    fn engine_caller(&self, caller: &Caller) -> Caller {
        Caller { scope: Scope::Services(vec![self.service_id.clone()]), ..caller.clone() }.for_end_user(caller.ip)
    }

    /// The user arrives with the provider's `state` and its signed `token`. The return URL is the
    /// client's only one, or the one of its list that `return_url` names exactly.
    #[tracing::instrument(name = "integrations.begin", level = "debug", skip_all)]
    pub async fn begin(
        &self,
        caller: &Caller,
        client: &str,
        state: &str,
        token: &str,
        return_url: Option<&str>,
        locale: Option<String>,
    ) -> Result<Step, VerifyError> {
        let c = self.client(client)?;
        let return_url = match (c.return_urls.as_slice(), return_url) {
            ([only], _) => only.clone(),
            (list, Some(wanted)) => list.iter().find(|u| *u == wanted).cloned().ok_or(VerifyError::ReturnUrlNotAllowed)?,
            (list, None) => list.first().cloned().ok_or(VerifyError::ReturnUrlNotAllowed)?,
        };
        if state.is_empty() || state.len() > 2048 {
            return Err(VerifyError::RedirectTokenInvalid("the state parameter is missing or too long"));
        }
        let incoming = match self.validate(c, token, state) {
            Ok(i) => i,
            Err(e) => {
                self.audit.record_once(caller, AuditKind::IntegrationTokenRefused, Some(client), &e.to_string()).await;
                return Err(e);
            }
        };
        // Accepted while `exp + LEEWAY_SECS` is not yet past in whole seconds: remembered for the
        // whole of that last second too.
        if let Err(e) = self.spend(token, incoming.exp + LEEWAY_SECS + 1).await {
            if matches!(e, VerifyError::RedirectTokenUsed) {
                self.audit.record_once(caller, AuditKind::IntegrationTokenRefused, Some(client), &e.to_string()).await;
            }
            return Err(e);
        }
        let phone = incoming.rest.get(&c.phone_claim).and_then(|p| p.as_str()).map(str::to_string);
        let step = StepState {
            id: crate::model::ids::new_id("st"),
            client: client.to_string(),
            state: state.to_string(),
            sub: incoming.sub,
            return_url,
            phone: None,
            verification_id: None,
            exp: self.ctx.clock.now().timestamp() + STEP_SECS,
        };
        match phone {
            Some(p) => self.send(caller, step, &p, locale).await,
            None => Ok(Step { token: self.seal(&step), phone: None }),
        }
    }

    /// The user gives a number (the token had none): a code goes to it.
    #[tracing::instrument(name = "integrations.set_phone", level = "debug", skip_all)]
    pub async fn set_phone(
        &self,
        caller: &Caller,
        client: &str,
        step: &str,
        phone: &str,
        locale: Option<String>,
    ) -> Result<Step, VerifyError> {
        let s = self.open(client, step)?;
        if s.phone.is_some() {
            return Err(VerifyError::StepInvalid);
        }
        // Validate first, so a mistyped or refused number can be corrected with the same step.
        let to = self.ctx.parse_phone(phone)?;
        if !self.ctx.budgets.destination_allowed(SERVICE, &to) {
            return Err(crate::model::phone::PhoneError::DestinationNotAllowed.into());
        }
        self.spend(&s.id, s.exp).await.map_err(|_| VerifyError::StepInvalid)?;
        self.send(caller, s, phone, locale).await
    }

    async fn send(&self, caller: &Caller, mut s: StepState, phone: &str, locale: Option<String>) -> Result<Step, VerifyError> {
        let req = StartRequest {
            service: Some(self.service_id.clone()),
            to: phone.to_string(),
            channel: Some(Channel::Sms),
            locale,
            options: StartOptions::default(),
        };
        let started = self.verifier.start(&self.engine_caller(caller), req).await?;
        s.phone = Some(started.verification.to.as_str().to_string());
        s.verification_id = Some(started.verification.id.clone());
        Ok(Step { token: self.seal(&s), phone: started.verification.to.phone().cloned() })
    }

    /// Checks the code. Right: the return URL with a token saying the number is verified. Wrong:
    /// `CodeIncorrect`. The last wrong code (or a locked verification): the return URL with a token
    /// saying it is not, so the provider can deny the login.
    #[tracing::instrument(name = "integrations.check", level = "debug", skip_all)]
    pub async fn check(&self, caller: &Caller, client: &str, step: &str, code: &str) -> Result<String, VerifyError> {
        let c = self.client(client)?;
        let s = self.open(client, step)?;
        let vid = s.verification_id.clone().ok_or(VerifyError::StepInvalid)?;
        if !crate::code::is_plausible(code) {
            return Err(VerifyError::invalid(Field::Code, "must be 4 to 10 digits"));
        }
        let checked = self.check_step(&s.id, &vid, code, caller.end_user_ip.or(caller.ip)).await;
        let verified = match self.audit.audited(&self.engine_caller(caller), &vid, checked).await {
            Ok(CheckOutcome::Approved) => true,
            Ok(CheckOutcome::Rejected { attempts_left }) => return Err(VerifyError::CodeIncorrect { attempts_left }),
            Ok(CheckOutcome::LockedOut) | Err(VerifyError::NotPending(Status::MaxAttemptsReached)) => false,
            Ok(CheckOutcome::NotPending(Status::MaxAttemptsReached)) => false,
            Ok(CheckOutcome::NotPending(_)) | Err(VerifyError::NotPending(_)) => return Err(VerifyError::CodeExpired),
            Err(e) => return Err(e),
        };
        let kind = if verified { AuditKind::IntegrationVerified } else { AuditKind::IntegrationDenied };
        self.audit
            .record_once(
                caller,
                kind,
                Some(&s.sub),
                &format!("{client}: phone number {}", if verified { "verified" } else { "not verified" }),
            )
            .await;
        self.return_to(c, &s, verified)
    }

    /// One code against a step's verification, in one unit. Every step has its own attempts
    /// (`STEP_ATTEMPTS`, a counter of its own) even where several steps share the number's pending
    /// code: a stranger's step for the same number cannot use up the holder's. Every wrong code
    /// still counts in the number's guess budget.
    async fn check_step(&self, step_id: &str, vid: &str, code: &str, ip: Option<std::net::IpAddr>) -> Result<CheckOutcome, VerifyError> {
        let (verifier, service, vid, code) = (self.verifier.clone(), self.service_id.clone(), vid.to_string(), code.to_string());
        let attempts = Charge {
            budget: Budget::FailedChecksPerNumber,
            subject: format!("step:{step_id}"),
            // A day's window holds a whole step (one that spans midnight UTC may get twice as many).
            rate: Rate { limit: STEP_ATTEMPTS, secs: 86_400 },
        };
        let now = self.ctx.clock.now();
        ports::write(self.ctx.store.as_ref(), move |tx| {
            let v = tx.verification(&vid)?.filter(|v| v.service_id == service).ok_or(VerifyError::StepInvalid)?;
            let (start, end) = attempts.rate.window(now);
            if !tx.budget_left(&attempts, start)? {
                return Ok(CheckOutcome::LockedOut);
            }
            let guess = Guess { guesser: Guesser::Anyone, own_attempts: false };
            let (_, outcome) = verifier.check_locked(tx, v, &code, ip, None, guess)?;
            if outcome == CheckOutcome::Approved {
                return Ok(outcome);
            }
            tx.take_budget(&attempts, start, 0, end)?;
            let used = tx.budget_used(&attempts, start)?;
            Ok(match STEP_ATTEMPTS.saturating_sub(u32::try_from(used).unwrap_or(u32::MAX)) {
                0 => CheckOutcome::LockedOut,
                attempts_left => CheckOutcome::Rejected { attempts_left },
            })
        })
        .await
    }

    /// The client's return URL with the provider's `state` and phonegate's signed answer.
    fn return_to(&self, c: &RedirectClient, s: &StepState, verified: bool) -> Result<String, VerifyError> {
        let now = self.ctx.clock.now().timestamp();
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": c.name,
            "sub": s.sub,
            "state": s.state,
            "phone_number": s.phone,
            "phone_number_verified": verified,
            "iat": now,
            "exp": now + RETURN_TOKEN_SECS,
            "jti": crate::model::ids::new_id("jt"),
        });
        let failed = |e: jsonwebtoken::errors::Error| VerifyError::Crypto(format!("cannot sign the return token: {e}"));
        let key = EncodingKey::from_secret(&c.secret).map_err(failed)?;
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(failed)?;
        let query: String =
            form_urlencoded::Serializer::new(String::new()).append_pair("state", &s.state).append_pair("session_token", &token).finish();
        let sep = if s.return_url.contains('?') { '&' } else { '?' };
        Ok(format!("{}{sep}{query}", s.return_url))
    }

    /// Signature (HS256 only), issuer (one string), subject (not empty), times (`nbf` reached,
    /// `exp` not passed and at most a step's length ahead, both with a few seconds' leeway), and
    /// the state when the token names one.
    fn validate(&self, c: &RedirectClient, token: &str, state: &str) -> Result<Incoming, VerifyError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&c.issuers);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.validate_aud = false;
        // Times against the engine's clock (below), not the library's.
        v.validate_exp = false;
        v.validate_nbf = false;
        let key =
            DecodingKey::from_secret(&c.secret).map_err(|_| VerifyError::RedirectTokenInvalid("the integration has no usable secret"))?;
        let data = jsonwebtoken::decode::<Incoming>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            VerifyError::RedirectTokenInvalid(match e.kind() {
                K::ExpiredSignature => "the session token has expired",
                K::InvalidIssuer => "the session token is from another issuer",
                K::InvalidAlgorithm => "the session token must be signed with HS256",
                K::InvalidSignature => "the session token's signature is wrong",
                K::MissingRequiredClaim(_) => "the session token lacks exp, iss or sub",
                _ => "the session token is not a valid token",
            })
        })?;
        let mut incoming = data.claims;
        // The library also takes a list of issuers of which one matches: only one string is.
        if !incoming.rest.get("iss").is_some_and(|i| i.is_string()) {
            return Err(VerifyError::RedirectTokenInvalid("the session token's iss must be one string"));
        }
        if incoming.sub.trim().is_empty() {
            return Err(VerifyError::RedirectTokenInvalid("the session token's sub is empty"));
        }
        incoming.exp = self.times(&incoming.rest)?;
        if incoming.rest.get("state").and_then(|s| s.as_str()).is_some_and(|s| s != state) {
            return Err(VerifyError::RedirectTokenInvalid("the session token belongs to another login"));
        }
        Ok(incoming)
    }

    /// The token's `exp` once `exp` and `nbf` hold now: `nbf` (if any) reached, `exp` not passed
    /// and no further ahead than a step lasts, each give or take the leeway.
    fn times(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Result<i64, VerifyError> {
        let now = self.ctx.clock.now().timestamp();
        let date =
            |name: &str| claims.get(name).map(|v| v.as_i64().ok_or(VerifyError::RedirectTokenInvalid("exp and nbf must be whole seconds")));
        let exp = date("exp").unwrap_or(Err(VerifyError::RedirectTokenInvalid("the session token lacks exp, iss or sub")))?;
        if exp.saturating_add(LEEWAY_SECS) < now {
            return Err(VerifyError::RedirectTokenInvalid("the session token has expired"));
        }
        if exp > now + STEP_SECS + LEEWAY_SECS {
            return Err(VerifyError::RedirectTokenInvalid("the session token is valid for longer than a step (15 minutes)"));
        }
        if date("nbf").transpose()?.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
            return Err(VerifyError::RedirectTokenInvalid("the session token is not valid yet"));
        }
        Ok(exp)
    }

    /// Records `key` (a token, or a step's id) as used until `until` (Unix seconds), when it can
    /// no longer be accepted anyway; retention deletes the record only after that. A second use
    /// is `RedirectTokenUsed`.
    async fn spend(&self, key: &str, until: i64) -> Result<(), VerifyError> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.as_bytes()).to_vec();
        let until = chrono::DateTime::from_timestamp(until, 0).ok_or(VerifyError::StepInvalid)?;
        let fresh = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.use_once(&digest, until)?)).await?;
        if fresh { Ok(()) } else { Err(VerifyError::RedirectTokenUsed) }
    }

    fn seal(&self, s: &StepState) -> String {
        let json = serde_json::to_string(s).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(self.ctx.keys.seal_text(&format!("step:{}", s.client), &json))
    }

    fn open(&self, client: &str, step: &str) -> Result<StepState, VerifyError> {
        let sealed = URL_SAFE_NO_PAD.decode(step).map_err(|_| VerifyError::StepInvalid)?;
        let json = self.ctx.keys.open_text(&format!("step:{client}"), &sealed).ok_or(VerifyError::StepInvalid)?;
        let s: StepState = serde_json::from_str(&json).map_err(|_| VerifyError::StepInvalid)?;
        if s.client != client || self.ctx.clock.now().timestamp() >= s.exp {
            return Err(VerifyError::StepInvalid);
        }
        Ok(s)
    }
}

impl Integrations {
    /// The number a step's code went to (for showing the code form again).
    pub fn step_phone(&self, client: &str, step: &str) -> Option<PhoneNumber> {
        self.open(client, step).ok()?.phone.map(PhoneNumber::from_trusted)
    }
}
