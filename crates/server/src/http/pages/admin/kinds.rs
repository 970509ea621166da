//! The audit log's kinds (`AuditKind` names) in words, and the German of the fixed details the
//! core records with them. A detail that carries a value (a budget's or provider's name, a
//! key's scope) is shown as recorded.

/// Every kind: its name, in English, in German.
pub const KINDS: [(&str, &str, &str); 49] = [
    ("budget_exceeded", "Budget exceeded", "Budget überschritten"),
    ("checks_locked", "Too many wrong codes", "Zu viele falsche Codes"),
    ("prefix_throttled", "Prefix throttled", "Vorwahl gedrosselt"),
    ("destination_refused", "Destination refused", "Ziel abgelehnt"),
    ("webhook_forged", "Forged webhook", "Gefälschter Webhook"),
    ("silent_callback_refused", "Silent check callback refused", "Rückruf der stillen Prüfung abgelehnt"),
    ("integration_token_refused", "Sign-in link refused", "Anmeldelink abgelehnt"),
    ("key_created", "API key created", "API-Schlüssel erstellt"),
    ("key_revoked", "API key revoked", "API-Schlüssel widerrufen"),
    ("vonage_application_set", "Vonage application set", "Vonage-Anwendung gesetzt"),
    ("service_created", "Service created", "Dienst angelegt"),
    ("service_updated", "Service changed", "Dienst geändert"),
    ("service_deleted", "Service deleted", "Dienst gelöscht"),
    ("jwt_key_rotated", "Token signing key replaced", "Signaturschlüssel ersetzt"),
    ("silent_approved", "Silent check approved", "Stille Prüfung bestätigt"),
    ("silent_fell_back", "Silent check fell back to SMS", "Stille Prüfung auf SMS umgestellt"),
    ("silent_failed", "Silent check failed", "Stille Prüfung fehlgeschlagen"),
    ("integration_verified", "Sign-in step verified", "Anmeldeschritt bestätigt"),
    ("integration_denied", "Sign-in step denied", "Anmeldeschritt verweigert"),
    ("signup", "Sign-up", "Registrierung"),
    ("login", "Login", "Anmeldung"),
    ("login_failed", "Login failed", "Anmeldung fehlgeschlagen"),
    ("logout", "Logout", "Abmeldung"),
    ("phone_changed", "Phone number changed", "Telefonnummer geändert"),
    ("email_changed", "E-mail address verified", "E-Mail-Adresse bestätigt"),
    ("email_in_use", "E-mail address of another account", "E-Mail-Adresse eines anderen Kontos"),
    ("email_released", "Unverified e-mail address released", "Unbestätigte E-Mail-Adresse freigegeben"),
    ("password_changed", "Password set or changed", "Passwort gesetzt oder geändert"),
    ("password_change_failed", "Password change refused", "Passwortänderung abgelehnt"),
    ("session_revoked", "Session ended", "Sitzung beendet"),
    ("refresh_reuse", "Refresh token used twice", "Refresh-Token doppelt verwendet"),
    ("account_deleted", "Account deleted", "Konto gelöscht"),
    ("admin_created", "Admin created", "Administrator angelegt"),
    ("admin_promoted", "Made admin", "Zum Admin gemacht"),
    ("admin_demoted", "Admin role removed", "Admin-Rolle entzogen"),
    ("member_removed", "Member removed", "Mitglied entfernt"),
    ("invite_created", "Invite sent", "Einladung gesendet"),
    ("invite_revoked", "Invite revoked", "Einladung zurückgezogen"),
    ("invite_replied", "Invite answered by SMS", "Einladung per SMS beantwortet"),
    ("invite_code_rotated", "Invite code replaced", "Einladungscode ersetzt"),
    ("test_number_used", "Test number used", "Testnummer verwendet"),
    ("oidc_authorized", "App sign-in (OpenID)", "App-Anmeldung (OpenID)"),
    ("oidc_consented", "App allowed", "App erlaubt"),
    ("oidc_denied", "App sign-in refused", "App-Anmeldung abgelehnt"),
    ("oidc_code_reuse", "Authorization code used twice", "Autorisierungscode doppelt verwendet"),
    ("oidc_revoked", "App access revoked", "App-Zugriff widerrufen"),
    ("oidc_client_created", "OpenID client created", "OpenID-Client angelegt"),
    ("oidc_client_secret_rotated", "OpenID client secret replaced", "OpenID-Client-Geheimnis ersetzt"),
    ("oidc_client_deleted", "OpenID client deleted", "OpenID-Client gelöscht"),
];

/// The fixed details, in English as recorded and in German.
const DETAILS_DE: [(&str, &str); 31] = [
    ("service created", "Dienst angelegt"),
    ("service updated", "Dienst geändert"),
    ("service deleted", "Dienst gelöscht"),
    ("key revoked", "Schlüssel widerrufen"),
    ("too many wrong codes for this number", "zu viele falsche Codes für diese Nummer"),
    ("many codes sent into this prefix, few used", "viele Codes an diese Vorwahl gesendet, wenige verwendet"),
    ("denied range or country", "gesperrter Bereich oder gesperrtes Land"),
    ("the account's phone number was changed", "die Telefonnummer des Kontos wurde geändert"),
    ("the account's e-mail address was verified", "die E-Mail-Adresse des Kontos wurde bestätigt"),
    (
        "an e-mail change named an address another account verified: nothing was sent",
        "eine E-Mail-Änderung nannte eine Adresse, die ein anderes Konto bestätigt hat: nichts wurde gesendet",
    ),
    (
        "another account verified this account's unverified e-mail address, which was removed",
        "ein anderes Konto hat die unbestätigte E-Mail-Adresse dieses Kontos bestätigt; sie wurde entfernt",
    ),
    ("a first password was set; other sessions ended", "ein erstes Passwort wurde gesetzt; andere Sitzungen wurden beendet"),
    ("the password was changed; other sessions ended", "das Passwort wurde geändert; andere Sitzungen wurden beendet"),
    ("a wrong current password was given", "ein falsches aktuelles Passwort wurde angegeben"),
    ("account created", "Konto angelegt"),
    ("signed in", "angemeldet"),
    ("unknown account or wrong password", "unbekanntes Konto oder falsches Passwort"),
    ("a session was ended by its user", "eine Sitzung wurde von ihrem Benutzer beendet"),
    ("signed out", "abgemeldet"),
    ("signed out everywhere", "überall abgemeldet"),
    ("the account was deleted by its user", "das Konto wurde von seinem Benutzer gelöscht"),
    ("an admin invited a number", "ein Administrator hat eine Nummer eingeladen"),
    ("an admin revoked an invite", "ein Administrator hat eine Einladung zurückgezogen"),
    ("new access-token signing key", "neuer Schlüssel zum Signieren der Zugriffstoken"),
    (
        "a spent refresh token was used again: its session ended",
        "ein verbrauchtes Refresh-Token wurde erneut verwendet: seine Sitzung wurde beendet",
    ),
    ("an admin rotated the invite code", "ein Administrator hat den Einladungscode ersetzt"),
    (
        "an invitee texted the invite code; a code was sent",
        "eine eingeladene Nummer hat den Einladungscode geschickt; ein Code wurde gesendet",
    ),
    ("an admin account was created by the operator", "der Betreiber hat ein Administratorkonto angelegt"),
    ("an admin removed a member", "ein Administrator hat ein Mitglied entfernt"),
    ("a member was made admin", "ein Mitglied wurde zum Administrator gemacht"),
    ("an admin ended a member's session", "ein Administrator hat die Sitzung eines Mitglieds beendet"),
];

/// A kind in words (its name when it has none).
pub fn label<'a>(lang: &str, kind: &'a str) -> &'a str {
    match KINDS.iter().find(|(name, ..)| *name == kind) {
        Some((_, _, de)) if lang == "de" => de,
        Some((_, en, _)) => en,
        None => kind,
    }
}

/// A recorded detail in the page's language (as recorded when it has no translation).
pub fn detail<'a>(lang: &str, detail: &'a str) -> &'a str {
    if lang != "de" {
        return detail;
    }
    DETAILS_DE.iter().find(|(en, _)| *en == detail).map_or(detail, |(_, de)| de)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonegate_core::audit::AuditKind;

    #[test]
    fn every_kind_has_words_in_both_languages() {
        use AuditKind::*;
        let all = [
            BudgetExceeded,
            ChecksLocked,
            PrefixThrottled,
            DestinationRefused,
            WebhookForged,
            SilentCallbackRefused,
            IntegrationTokenRefused,
            KeyCreated,
            KeyRevoked,
            VonageApplicationSet,
            ServiceCreated,
            ServiceUpdated,
            ServiceDeleted,
            JwtKeyRotated,
            SilentApproved,
            SilentFellBack,
            SilentFailed,
            IntegrationVerified,
            IntegrationDenied,
            Signup,
            Login,
            LoginFailed,
            Logout,
            PhoneChanged,
            EmailChanged,
            EmailInUse,
            EmailReleased,
            PasswordChanged,
            PasswordChangeFailed,
            SessionRevoked,
            RefreshReuse,
            AccountDeleted,
            AdminCreated,
            AdminPromoted,
            AdminDemoted,
            MemberRemoved,
            InviteCreated,
            InviteRevoked,
            InviteReplied,
            InviteCodeRotated,
            TestNumberUsed,
            OidcAuthorized,
            OidcConsented,
            OidcDenied,
            OidcCodeReuse,
            OidcRevoked,
            OidcClientCreated,
            OidcClientSecretRotated,
            OidcClientDeleted,
        ];
        // A new kind breaks this match: add it to the list above and to `KINDS`.
        let _listed = |k: AuditKind| match k {
            BudgetExceeded
            | ChecksLocked
            | PrefixThrottled
            | DestinationRefused
            | WebhookForged
            | SilentCallbackRefused
            | IntegrationTokenRefused
            | KeyCreated
            | KeyRevoked
            | VonageApplicationSet
            | ServiceCreated
            | ServiceUpdated
            | ServiceDeleted
            | JwtKeyRotated
            | SilentApproved
            | SilentFellBack
            | SilentFailed
            | IntegrationVerified
            | IntegrationDenied
            | Signup
            | Login
            | LoginFailed
            | Logout
            | PhoneChanged
            | EmailChanged
            | EmailInUse
            | EmailReleased
            | PasswordChanged
            | PasswordChangeFailed
            | SessionRevoked
            | RefreshReuse
            | AccountDeleted
            | AdminCreated
            | AdminPromoted
            | AdminDemoted
            | MemberRemoved
            | InviteCreated
            | InviteRevoked
            | InviteReplied
            | InviteCodeRotated
            | TestNumberUsed
            | OidcAuthorized
            | OidcConsented
            | OidcDenied
            | OidcCodeReuse
            | OidcRevoked
            | OidcClientCreated
            | OidcClientSecretRotated
            | OidcClientDeleted => (),
        };
        assert_eq!(all.len(), KINDS.len());
        for kind in all {
            assert_ne!(label("en", kind.as_str()), kind.as_str(), "{kind:?}");
            assert_ne!(label("de", kind.as_str()), label("en", kind.as_str()), "{kind:?}");
        }
        assert_eq!(detail("de", "an admin ended a member's session"), "ein Administrator hat die Sitzung eines Mitglieds beendet");
        assert_eq!(detail("en", "signed in"), "signed in");
        assert_eq!(detail("de", "sends_per_number"), "sends_per_number");
    }
}
