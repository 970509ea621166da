/**
 * phonegate phone verification for Auth0: a post-login Action (Login flow).
 *
 * On login, a user whose phone number is not yet verified is sent to phonegate's hosted step
 * (https://YOUR-PHONEGATE/integrations/auth0/verify). phonegate sends an SMS code to the number
 * in the token (or asks for a number first), checks it, and sends the browser back to this
 * tenant's /continue endpoint with a signed token saying whether the number was proven. Auth0
 * then resumes this Action in onContinuePostLogin, which records the result in app_metadata or
 * refuses the login.
 *
 * Secrets (Action → Secrets in the dashboard):
 *   PHONEGATE_URL     phonegate's public URL, e.g. https://verify.example.com (no trailing slash)
 *   PHONEGATE_SECRET  the secret shared with phonegate (`[auth0] secret`): 32+ random characters
 *
 * Plain CommonJS, no dependencies. See README.md next to this file.
 */

// How long the token we hand to phonegate is valid. phonegate refuses it after that, and uses it
// only once: a user who comes back later simply logs in again.
const TOKEN_LIFETIME_SECONDS = 300;

/**
 * Runs on every login. Verified users pass untouched; everyone else is redirected to phonegate.
 *
 * @param {Event} event - details about the user and the login
 * @param {PostLoginAPI} api - methods that change the login
 */
exports.onExecutePostLogin = async (event, api) => {
    const metadata = event.user.app_metadata || {};
    if (metadata.phone_number_verified === true) {
        return; // proven before: nothing to do
    }

    // A short-lived token signed with the shared secret (HS256). Auth0 adds the standard claims
    // itself: `iss` (this tenant's domain, which phonegate checks), `sub` (the user id, which
    // phonegate copies into its answer), `iat` and `exp`. The payload adds the number Auth0
    // already knows, if any; without one phonegate asks the user for it.
    const payload = {};
    if (event.user.phone_number) {
        payload.phone_number = event.user.phone_number;
    }
    const sessionToken = api.redirect.encodeToken({
        secret: event.secrets.PHONEGATE_SECRET,
        expiresInSeconds: TOKEN_LIFETIME_SECONDS,
        payload,
    });

    // Auth0 appends its own `state` parameter to this URL; phonegate sends it back to
    // https://<this tenant>/continue, the only place it ever redirects to.
    api.redirect.sendUserTo(event.secrets.PHONEGATE_URL + '/integrations/auth0/verify', {
        query: { session_token: sessionToken },
    });
};

/**
 * Runs when phonegate sends the user back to /continue?state=…&session_token=….
 *
 * @param {Event} event - details about the user and the login
 * @param {PostLoginAPI} api - methods that change the login
 */
exports.onContinuePostLogin = async (event, api) => {
    let payload;
    try {
        // Auth0 checks the HS256 signature with our shared secret, the expiry, and that the
        // token's `state` is this login's state (so a token from another login is useless).
        // It throws when any of that fails.
        payload = api.redirect.validateToken({
            secret: event.secrets.PHONEGATE_SECRET,
            tokenParameterName: 'session_token',
        });
    } catch (err) {
        api.access.deny('Phone number not verified');
        return;
    }

    // phonegate answers for the user it was asked about (`sub`) and says whether the code was
    // right: `phone_number_verified: false` means the user gave up or was locked out after too
    // many wrong codes.
    if (payload.phone_number_verified === true && payload.sub === event.user.user_id) {
        api.user.setAppMetadata('phone_number_verified', true);
        api.user.setAppMetadata('phone_number', payload.phone_number);
        return;
    }
    api.access.deny('Phone number not verified');
};
