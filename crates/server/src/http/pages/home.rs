//! The home page at `/`: what this server is, and the way in (log in, sign up) or, signed in,
//! to the account and (for admins) the console; and the API reference.
use super::{PageCtx, texts::Texts};
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    t: &'a Texts,
    /// The signed-in user's name, if this browser is signed in.
    username: Option<String>,
    admin: bool,
}

pub async fn page(State(s): State<AppState>, ctx: PageCtx) -> Response {
    let (mut username, mut admin) = (None, false);
    if let Some(p) = ctx.principal(&s).await
        && let Ok(user) = s.accounts.me(&p).await
    {
        admin = user.is_admin();
        username = Some(user.username);
    }
    ctx.render(&s, StatusCode::OK, &HomePage { t: ctx.t, username, admin })
}
