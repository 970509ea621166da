//! The admin JSON API: members, their devices and the admin role. Only a signed-in admin
//! (session cookie or access token) gets past `403 forbidden`; a cookie's request that changes
//! something must also come from this server's own pages (`403 csrf_failed`, `session.rs`).
use super::AppState;
use super::accounts::{SessionView, session_view};
use super::audit::{AuditList, AuditParams};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::session::SignedIn;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use phonegate_core::accounts::admin::{Member, mask_phone};
use phonegate_core::accounts::invites::Invite;
use phonegate_core::accounts::reply::InviteCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(members))
        .routes(routes!(remove_member))
        .routes(routes!(promote, demote))
        .routes(routes!(member_sessions))
        .routes(routes!(revoke_member_session))
        .routes(routes!(create_invite, invites))
        .routes(routes!(resend_invite))
        .routes(routes!(revoke_invite))
        .routes(routes!(invite_code))
        .routes(routes!(rotate_invite_code))
        .routes(routes!(audit_log))
}

/// The group's invite code: invite messages carry it, and an invitee who texts it back to the
/// service's number is sent a verification code.
#[derive(Serialize, ToSchema)]
pub struct InviteCodeView {
    code: String,
    /// When it replaced the previous code (absent: never rotated).
    rotated_at: Option<DateTime<Utc>>,
}

impl From<InviteCode> for InviteCodeView {
    fn from(c: InviteCode) -> Self {
        Self { code: c.code, rotated_at: c.since }
    }
}

/// The current invite code.
#[utoipa::path(get, path = "/api/admin/invite-code", tag = "admin",
    responses((status = 200, body = InviteCodeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn invite_code(State(s): State<AppState>, me: SignedIn) -> Result<Json<InviteCodeView>, ApiError> {
    Ok(Json(s.accounts.invite_code(&me.principal).await?.into()))
}

/// Replaces the invite code; the old one no longer starts a join.
#[utoipa::path(post, path = "/api/admin/invite-code/rotate", tag = "admin",
    responses((status = 200, body = InviteCodeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn rotate_invite_code(State(s): State<AppState>, me: SignedIn) -> Result<Json<InviteCodeView>, ApiError> {
    Ok(Json(s.accounts.rotate_invite_code(&me.caller, &me.principal).await?.into()))
}

/// The audit log, newest first, filtered by what (`kind`), who, where from (`ip`) and when.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(AuditParams),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody, description = "invalid_query"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit_log(State(s): State<AppState>, me: SignedIn, ApiQuery(p): ApiQuery<AuditParams>) -> Result<Json<AuditList>, ApiError> {
    Ok(Json(s.accounts.audit_log(&me.principal, p.query()).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// The number to invite (E.164, or national with the default region).
    phone: String,
    /// An existing member's username, to let their number sign in on another device.
    username: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct InviteView {
    id: String,
    phone: String,
    username: Option<String>,
    /// `pending`, `used`, `expired` or `revoked`.
    status: &'static str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    last_sent_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct InvitesView {
    invites: Vec<InviteView>,
}

fn invite_view(i: Invite, now: DateTime<Utc>) -> InviteView {
    InviteView {
        status: i.status(now),
        id: i.id,
        phone: i.phone.as_str().to_string(),
        username: i.username,
        created_at: i.created_at,
        expires_at: i.expires_at,
        last_sent_at: i.last_sent_at,
        used_at: i.used_at,
        revoked_at: i.revoked_at,
    }
}

/// Invites a number: it gets an SMS with the sign-up link.
#[utoipa::path(post, path = "/api/admin/invites", tag = "admin", request_body = InviteBody,
    responses((status = 201, body = InviteView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_invite(
    State(s): State<AppState>,
    me: SignedIn,
    ApiJson(b): ApiJson<InviteBody>,
) -> Result<(StatusCode, Json<InviteView>), ApiError> {
    let invite = s.accounts.invite(&me.caller, &me.principal, &b.phone, b.username.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(invite_view(invite, s.clock.now()))))
}

/// Every invite, newest first, with its status.
#[utoipa::path(get, path = "/api/admin/invites", tag = "admin",
    responses((status = 200, body = InvitesView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn invites(State(s): State<AppState>, me: SignedIn) -> Result<Json<InvitesView>, ApiError> {
    let now = s.clock.now();
    let list = s.accounts.invites(&me.principal).await?;
    Ok(Json(InvitesView { invites: list.into_iter().map(|i| invite_view(i, now)).collect() }))
}

/// Texts a pending invite again.
#[utoipa::path(post, path = "/api/admin/invites/{id}/resend", tag = "admin",
    responses((status = 200, body = InviteView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resend_invite(State(s): State<AppState>, me: SignedIn, Path(id): Path<String>) -> Result<Json<InviteView>, ApiError> {
    let invite = s.accounts.resend_invite(&me.caller, &me.principal, &id).await?;
    Ok(Json(invite_view(invite, s.clock.now())))
}

/// Revokes an invite that was not used.
#[utoipa::path(delete, path = "/api/admin/invites/{id}", tag = "admin",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn revoke_invite(State(s): State<AppState>, me: SignedIn, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.accounts.revoke_invite(&me.caller, &me.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member as admins see them: the number masked but for its last digits.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    id: String,
    username: String,
    /// E.g. `+49••••••••789`.
    phone_number: String,
    roles: Vec<String>,
    /// Signed-in devices.
    sessions: u32,
    last_seen_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            phone_number: mask_phone(m.user.phone.as_str()),
            id: m.user.id,
            username: m.user.username,
            roles: m.user.roles,
            sessions: m.sessions,
            last_seen_at: m.last_seen_at,
            created_at: m.user.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MembersView {
    members: Vec<MemberView>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberSessionsView {
    sessions: Vec<SessionView>,
}

/// Every member, by username.
#[utoipa::path(get, path = "/api/admin/members", tag = "admin",
    responses((status = 200, body = MembersView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn members(State(s): State<AppState>, me: SignedIn) -> Result<Json<MembersView>, ApiError> {
    let list = s.accounts.members(&me.principal).await?;
    Ok(Json(MembersView { members: list.into_iter().map(MemberView::from).collect() }))
}

/// Removes a member: their sessions and refresh tokens stop working at once.
#[utoipa::path(delete, path = "/api/admin/members/{id}", tag = "admin",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn remove_member(State(s): State<AppState>, me: SignedIn, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.accounts.remove_member(&me.caller, &me.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_admin(s: AppState, me: SignedIn, id: String, admin: bool) -> Result<Json<MemberView>, ApiError> {
    let user = s.accounts.set_admin(&me.caller, &me.principal, &id, admin).await?;
    let member = s.accounts.members(&me.principal).await?.into_iter().find(|m| m.user.id == user.id);
    let member = member.unwrap_or(Member { user, sessions: 0, last_seen_at: None });
    Ok(Json(member.into()))
}

/// Makes a member an admin.
#[utoipa::path(put, path = "/api/admin/members/{id}/admin", tag = "admin",
    responses((status = 200, body = MemberView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn promote(State(s): State<AppState>, me: SignedIn, Path(id): Path<String>) -> Result<Json<MemberView>, ApiError> {
    set_admin(s, me, id, true).await
}

/// Takes the admin role from a member (never from the last admin).
#[utoipa::path(delete, path = "/api/admin/members/{id}/admin", tag = "admin",
    responses((status = 200, body = MemberView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn demote(State(s): State<AppState>, me: SignedIn, Path(id): Path<String>) -> Result<Json<MemberView>, ApiError> {
    set_admin(s, me, id, false).await
}

/// A member's signed-in devices.
#[utoipa::path(get, path = "/api/admin/members/{id}/sessions", tag = "admin",
    responses((status = 200, body = MemberSessionsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn member_sessions(State(s): State<AppState>, me: SignedIn, Path(id): Path<String>) -> Result<Json<MemberSessionsView>, ApiError> {
    let list = s.accounts.member_sessions(&me.principal, &id).await?;
    Ok(Json(MemberSessionsView { sessions: list.into_iter().map(|x| session_view(x, &me.principal.session_id)).collect() }))
}

/// Ends one session of a member.
#[utoipa::path(delete, path = "/api/admin/members/{id}/sessions/{session}", tag = "admin",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_member_session(
    State(s): State<AppState>,
    me: SignedIn,
    Path((id, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.accounts.revoke_member_session(&me.caller, &me.principal, &id, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}
