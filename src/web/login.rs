//! Logging in: the login page, the form that checks the password, the pairing link, and the
//! guard that sends everyone without a session to the login page (401 for the WebSocket and
//! the API; WHEP and the snapshot also take a viewer token).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{AppState, whep};
use crate::auth::LoginError;

const PAGE: &str = include_str!("../../web/login.html");

/// Paths anyone may load: the login page and what it needs.
const PUBLIC: [&str; 3] = ["/login", "/style.css", "/favicon.svg"];

#[derive(Deserialize)]
pub struct LoginForm {
    password: String,
}

#[derive(Deserialize)]
pub struct Pairing {
    code: Option<String>,
}

fn page(status: StatusCode, message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let html = PAGE.replace("<!--MESSAGE-->", &escaped);
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

fn attempt(state: &AppState, peer: SocketAddr, secret: &str) -> Response {
    let Some(auth) = &state.auth else {
        return Redirect::to("/").into_response();
    };
    match auth.log_in(peer.ip().to_canonical(), secret, Instant::now()) {
        Ok(token) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, auth.cookie(&token)),
                (header::LOCATION, "/".to_owned()),
            ],
        )
            .into_response(),
        Err(LoginError::Wrong) => page(StatusCode::UNAUTHORIZED, "Wrong password."),
        Err(LoginError::TooMany { retry_after }) => {
            log::warn!(
                "too many failed logins from {peer}; refusing for {} s",
                retry_after.as_secs()
            );
            let mut response = page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many wrong passwords. Try again in {} s.",
                    retry_after.as_secs()
                ),
            );
            if let Ok(value) = retry_after.as_secs().to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

/// GET /login: the form, or with `?code=` (the pairing link) a login with that code.
pub async fn show(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(pairing): Query<Pairing>,
) -> Response {
    match pairing.code {
        Some(code) => attempt(&state, peer, &code),
        None => page(StatusCode::OK, ""),
    }
}

/// POST /login
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    attempt(&state, peer, &form.password)
}

/// Whether this request carries a live session (always, with `auth = "none"`).
pub fn has_session(state: &AppState, headers: &HeaderMap) -> bool {
    state.auth.as_ref().is_none_or(|auth| {
        let cookies = headers.get(header::COOKIE).and_then(|c| c.to_str().ok());
        auth.session_valid(cookies, Instant::now())
    })
}

/// The viewer token a request carries: `Authorization: Bearer …`, or `?token=…` for clients
/// that cannot set a header (go2rtc's WHEP source).
fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .or_else(|| {
            query?
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
        })
}

/// Paths a viewer token opens (besides a session): WHEP and the snapshot.
fn takes_tokens(path: &str) -> bool {
    whep::is_whep(path) || path == "/snapshot.jpg"
}

/// Who is asking, when they may: a session, a viewer token, or anyone with `auth = "none"`.
fn identify(state: &AppState, request: &Request) -> Option<String> {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(
            || "an unknown address".to_owned(),
            |c| c.0.ip().to_canonical().to_string(),
        );
    if state.auth.is_none() {
        return Some(format!("{address} (auth = \"none\")"));
    }
    if has_session(state, request.headers()) {
        return Some(format!("a session from {address}"));
    }
    if !takes_tokens(request.uri().path()) {
        return None;
    }
    let token = presented_token(request.headers(), request.uri().query())?;
    let name = state.tokens.as_ref()?.check(token);
    match name {
        Some(name) => {
            log::info!(
                "viewer token `{name}` used from {address}: {} {}",
                request.method(),
                request.uri().path()
            );
            Some(format!("token `{name}` from {address}"))
        }
        None => {
            log::warn!(
                "refused an unknown or revoked viewer token from {address}: {} {}",
                request.method(),
                request.uri().path()
            );
            None
        }
    }
}

/// Middleware: pages redirect to the login page, everything else answers 401, unless the
/// request has a session (or, for WHEP and the snapshot, a viewer token) or is for a public
/// path. The WebSocket decides for itself (rooms may be open to everyone); CORS preflights
/// carry no credentials and pass. Who was let in goes with the request as a `whep::Viewer`.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let path = path.as_str();
    let preflight = request.method() == Method::OPTIONS && whep::is_whep(path);
    if PUBLIC.contains(&path) || path == "/ws" || preflight {
        return next.run(request).await;
    }
    if let Some(who) = identify(&state, &request) {
        request.extensions_mut().insert(whep::Viewer(who));
        return next.run(request).await;
    }
    let wants_page = matches!(path, "/" | "/index.html" | "/check");
    if wants_page {
        Redirect::to("/login").into_response()
    } else if takes_tokens(path) {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"peercam\"")],
            "log in first, or give a viewer token (peercam token create NAME) as \
             Authorization: Bearer\n",
        )
            .into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "log in first\n").into_response()
    }
}
