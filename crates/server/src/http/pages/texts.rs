//! The pages' words, in English and German, chosen by `Accept-Language`.
use phonegate_core::VerifyError;
use phonegate_core::budget::Budget;

pub struct Texts {
    pub lang: &'static str,
    pub signup_title: &'static str,
    pub login_title: &'static str,
    pub code_title: &'static str,
    pub account_title: &'static str,
    pub username: &'static str,
    pub username_hint: &'static str,
    pub phone: &'static str,
    pub phone_hint: &'static str,
    pub email_optional: &'static str,
    pub password_optional: &'static str,
    pub password_hint: &'static str,
    pub password: &'static str,
    pub identifier: &'static str,
    pub signup_button: &'static str,
    pub login_button: &'static str,
    pub send_code: &'static str,
    pub with_password: &'static str,
    pub have_account: &'static str,
    pub no_account: &'static str,
    pub code: &'static str,
    pub code_intro: &'static str,
    pub verify_button: &'static str,
    pub resend_button: &'static str,
    pub resent: &'static str,
    pub dev_outbox: &'static str,
    pub dev_outbox_link: &'static str,
    pub start_again: &'static str,
    pub signed_in_as: &'static str,
    pub change_phone: &'static str,
    pub new_phone: &'static str,
    pub phone_changed: &'static str,
    pub sessions_title: &'static str,
    pub this_device: &'static str,
    pub ip: &'static str,
    pub created: &'static str,
    pub last_seen: &'static str,
    pub revoke: &'static str,
    pub revoked: &'static str,
    pub renew: &'static str,
    pub renewed: &'static str,
    pub logout: &'static str,
    pub logout_all: &'static str,
    pub session_note: &'static str,
    pub unknown_device: &'static str,
    pub form_expired_title: &'static str,
    pub form_expired: &'static str,
    pub back: &'static str,
    // Errors.
    pub code_incorrect: &'static str,
    pub code_expired: &'static str,
    pub code_locked: &'static str,
    pub flow_not_found: &'static str,
    pub username_taken: &'static str,
    pub email_taken: &'static str,
    pub phone_taken: &'static str,
    pub phone_invalid: &'static str,
    pub throttled: &'static str,
    pub resend_too_soon: &'static str,
    pub email_invalid: &'static str,
    pub password_invalid: &'static str,
    pub login_fields: &'static str,
    pub invited: &'static str,
    pub invite_ended: &'static str,
}

pub const EN: Texts = Texts {
    lang: "en",
    signup_title: "Sign up",
    login_title: "Log in",
    code_title: "Enter your code",
    account_title: "Your account",
    username: "Username",
    username_hint: "3 to 32 characters: letters a–z, digits, dot, underscore and hyphen.",
    phone: "Phone number",
    phone_hint: "In international format, e.g. +49 151 23456789. We text you a code.",
    email_optional: "E-mail (optional)",
    password_optional: "Password (optional)",
    password_hint: "8 to 128 characters. With a password you can log in with it plus a code.",
    password: "Password",
    identifier: "Username or e-mail",
    signup_button: "Sign up",
    login_button: "Log in",
    send_code: "Send code",
    with_password: "Or log in with a password",
    have_account: "Already have an account?",
    no_account: "No account yet?",
    code: "Code",
    code_intro: "We sent a code by SMS. Enter it below.",
    verify_button: "Verify",
    resend_button: "Send the code again",
    resent: "If the number can receive codes, a new message is on its way.",
    dev_outbox: "Development mode: no SMS leaves this server.",
    dev_outbox_link: "Show the message in the outbox",
    start_again: "Start again",
    signed_in_as: "Signed in as",
    change_phone: "Change your phone number",
    new_phone: "New phone number",
    phone_changed: "Your phone number was changed.",
    sessions_title: "Signed-in devices",
    this_device: "this device",
    ip: "IP",
    created: "since",
    last_seen: "last seen",
    revoke: "Sign out this device",
    revoked: "The device was signed out.",
    renew: "Renew this session",
    renewed: "Your session was renewed.",
    logout: "Log out",
    logout_all: "Log out everywhere",
    session_note: "This device stays signed in while you use it (30 days without use end the session).",
    unknown_device: "Unknown device",
    form_expired_title: "Please try again",
    form_expired: "This form expired or came from another site. Reload the page and send it again.",
    back: "Back",
    code_incorrect: "That code is not right. Check the SMS and try again.",
    code_expired: "The code has expired. Start again to get a new one.",
    code_locked: "Too many wrong codes. Start again later to get a new one.",
    flow_not_found: "This login has ended or was already used. Start again.",
    username_taken: "This username is taken. Choose another one.",
    email_taken: "This e-mail address belongs to another account.",
    phone_taken: "This phone number belongs to another account.",
    phone_invalid: "This does not look like a mobile phone number. Use the international format, e.g. +49 151 23456789.",
    throttled: "Too many attempts. Please wait a while and try again.",
    resend_too_soon: "A code was sent moments ago. Please wait a little before asking again.",
    email_invalid: "Enter an e-mail address like name@example.com, or leave the field empty.",
    password_invalid: "The password must be 8 to 128 characters.",
    login_fields: "Enter your username or e-mail and your password.",
    invited: "You are invited. Pick a username and confirm your number with the code we text you. Already texted the invite code? Sign up with the same number and enter the code you received: no new code is sent.",
    invite_ended: "This invite has expired, was used or was withdrawn. Ask the person who invited you for a new one.",
};

pub const DE: Texts = Texts {
    lang: "de",
    signup_title: "Registrieren",
    login_title: "Anmelden",
    code_title: "Code eingeben",
    account_title: "Ihr Konto",
    username: "Benutzername",
    username_hint: "3 bis 32 Zeichen: Buchstaben a–z, Ziffern, Punkt, Unterstrich und Bindestrich.",
    phone: "Telefonnummer",
    phone_hint: "Im internationalen Format, z. B. +49 151 23456789. Wir schicken Ihnen einen Code per SMS.",
    email_optional: "E-Mail (optional)",
    password_optional: "Passwort (optional)",
    password_hint: "8 bis 128 Zeichen. Mit Passwort können Sie sich mit Passwort und Code anmelden.",
    password: "Passwort",
    identifier: "Benutzername oder E-Mail",
    signup_button: "Registrieren",
    login_button: "Anmelden",
    send_code: "Code senden",
    with_password: "Oder mit Passwort anmelden",
    have_account: "Schon ein Konto?",
    no_account: "Noch kein Konto?",
    code: "Code",
    code_intro: "Wir haben Ihnen einen Code per SMS geschickt. Geben Sie ihn hier ein.",
    verify_button: "Bestätigen",
    resend_button: "Code erneut senden",
    resent: "Wenn die Nummer Codes empfangen kann, ist eine neue Nachricht unterwegs.",
    dev_outbox: "Entwicklungsmodus: Keine SMS verlässt diesen Server.",
    dev_outbox_link: "Nachricht im Postausgang ansehen",
    start_again: "Neu beginnen",
    signed_in_as: "Angemeldet als",
    change_phone: "Telefonnummer ändern",
    new_phone: "Neue Telefonnummer",
    phone_changed: "Ihre Telefonnummer wurde geändert.",
    sessions_title: "Angemeldete Geräte",
    this_device: "dieses Gerät",
    ip: "IP",
    created: "seit",
    last_seen: "zuletzt",
    revoke: "Dieses Gerät abmelden",
    revoked: "Das Gerät wurde abgemeldet.",
    renew: "Sitzung erneuern",
    renewed: "Ihre Sitzung wurde erneuert.",
    logout: "Abmelden",
    logout_all: "Überall abmelden",
    session_note: "Dieses Gerät bleibt angemeldet, solange Sie es nutzen (30 Tage ohne Nutzung beenden die Sitzung).",
    unknown_device: "Unbekanntes Gerät",
    form_expired_title: "Bitte erneut versuchen",
    form_expired: "Dieses Formular ist abgelaufen oder kam von einer anderen Seite. Laden Sie die Seite neu und senden Sie es erneut.",
    back: "Zurück",
    code_incorrect: "Dieser Code stimmt nicht. Prüfen Sie die SMS und versuchen Sie es erneut.",
    code_expired: "Der Code ist abgelaufen. Beginnen Sie neu, um einen neuen zu erhalten.",
    code_locked: "Zu viele falsche Codes. Beginnen Sie später neu, um einen neuen zu erhalten.",
    flow_not_found: "Diese Anmeldung ist beendet oder wurde schon verwendet. Beginnen Sie neu.",
    username_taken: "Dieser Benutzername ist vergeben. Wählen Sie einen anderen.",
    email_taken: "Diese E-Mail-Adresse gehört zu einem anderen Konto.",
    phone_taken: "Diese Telefonnummer gehört zu einem anderen Konto.",
    phone_invalid: "Das sieht nicht nach einer Mobilnummer aus. Nutzen Sie das internationale Format, z. B. +49 151 23456789.",
    throttled: "Zu viele Versuche. Bitte warten Sie eine Weile und versuchen Sie es erneut.",
    resend_too_soon: "Gerade wurde ein Code gesendet. Bitte warten Sie kurz, bevor Sie einen neuen anfordern.",
    email_invalid: "Geben Sie eine E-Mail-Adresse wie name@example.com ein oder lassen Sie das Feld leer.",
    password_invalid: "Das Passwort muss 8 bis 128 Zeichen lang sein.",
    login_fields: "Geben Sie Benutzername oder E-Mail und Ihr Passwort ein.",
    invited: "Sie sind eingeladen. Wählen Sie einen Benutzernamen und bestätigen Sie Ihre Nummer mit dem Code, den wir Ihnen senden. Schon den Einladungscode per SMS geschickt? Registrieren Sie sich mit derselben Nummer und geben Sie den erhaltenen Code ein: es wird kein neuer gesendet.",
    invite_ended: "Diese Einladung ist abgelaufen, wurde schon verwendet oder zurückgezogen. Bitten Sie um eine neue.",
};

/// The language the browser prefers most among English and German (English by default).
pub fn pick(accept_language: Option<&str>) -> &'static Texts {
    let mut best: (f32, &'static Texts) = (-1.0, &EN);
    for part in accept_language.unwrap_or("").split(',') {
        let mut it = part.trim().split(';');
        let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
        let texts = match tag.split('-').next() {
            Some("de") => &DE,
            Some("en") => &EN,
            _ => continue,
        };
        if q > best.0 {
            best = (q, texts);
        }
    }
    best.1
}

impl Texts {
    /// What to tell the person about an error, in their language.
    pub fn error(&self, e: &VerifyError) -> String {
        match e {
            VerifyError::CodeIncorrect { .. } => self.code_incorrect.into(),
            VerifyError::CodeExpired => self.code_expired.into(),
            VerifyError::CodeLocked | VerifyError::OverBudget { budget: Budget::FailedChecksPerNumber, .. } => self.code_locked.into(),
            VerifyError::FlowNotFound | VerifyError::NotPending(_) => self.flow_not_found.into(),
            VerifyError::UsernameTaken => self.username_taken.into(),
            VerifyError::EmailTaken => self.email_taken.into(),
            VerifyError::PhoneTaken => self.phone_taken.into(),
            VerifyError::Phone(_) => self.phone_invalid.into(),
            VerifyError::InvalidParameter { field: "username", .. } => format!("{}: {}", self.username, self.username_hint),
            VerifyError::InvalidParameter { field: "email", .. } => self.email_invalid.into(),
            VerifyError::InvalidParameter { field: "password", .. } => self.password_invalid.into(),
            VerifyError::InvalidParameter { field: "identifier", .. } => self.login_fields.into(),
            VerifyError::ResendTooSoon { .. } | VerifyError::MaxSendsReached => self.resend_too_soon.into(),
            VerifyError::OverBudget { .. } => self.throttled.into(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_supported_language() {
        assert_eq!(pick(Some("de-DE,de;q=0.9,en;q=0.8")).lang, "de");
        assert_eq!(pick(Some("fr-FR,en;q=0.5,de;q=0.7")).lang, "de");
        assert_eq!(pick(Some("en-US,de;q=0.5")).lang, "en");
        assert_eq!(pick(Some("fr")).lang, "en");
        assert_eq!(pick(None).lang, "en");
    }
}
