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
    let signed_in = match ctx.principal(&s).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(p) = signed_in {
        match s.accounts.me(&p).await {
            Ok(user) => {
                admin = user.is_admin();
                username = Some(user.username);
            }
            Err(e) if e.detail().is_some() => return ctx.failed(&s, &e),
            Err(_) => {}
        }
    }
    ctx.render(&s, StatusCode::OK, &HomePage { t: ctx.t, username, admin })
}
