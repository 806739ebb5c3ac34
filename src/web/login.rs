//! Logging in and out: the login page, the form that checks the password, the pairing link,
//! `POST /logout`, and the guard that sends everyone without a session to the login page (401
//! for the WebSocket and the API; WHEP and the snapshot also take a viewer token).
//!
//! A login or logout from another site (its `Origin` or `Sec-Fetch-Site` says so) is refused
//! before the password is looked at, so a page elsewhere cannot lock the owner out by sending
//! wrong passwords from the owner's own browser. The argon2 check runs on a blocking thread, at
//! most `state::CONCURRENT_LOGIN_CHECKS` at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::state::{AppState, check_origin};
use super::{access, whep};
use crate::auth::{LoginError, SessionId, Via};
use crate::media_link::{Grant, Withdrawn};
use crate::refusals::{self, Kind};

const PAGE: &str = include_str!("../../web/login.html");

/// Paths anyone may load: the login page and what it needs, and logging out.
const PUBLIC: [&str; 4] = ["/login", "/logout", "/style.css", "/favicon.svg"];
/// How long a password check waits for its turn (`AppState::login_checks`).
const CHECK_WAIT: Duration = Duration::from_secs(5);

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

/// Why a request that changes the login state came from another site, if it did. Browsers
/// say where a request comes from in `Sec-Fetch-Site` (all current ones): it must be
/// `same-origin` or `none`. Without it, an `Origin` must name this device; `Origin: null`
/// (what a sandboxed page sends) is refused. The page's own form sends `Origin: null` too
/// (its `Referrer-Policy` is `no-referrer`), which is why `Sec-Fetch-Site` decides first.
/// Clients that are not browsers send neither and pass.
fn cross_site(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    match headers.get("sec-fetch-site").map(|v| v.to_str()) {
        Some(Ok("same-origin" | "none")) => None,
        Some(site) => Some(format!(
            "Sec-Fetch-Site is `{}`",
            site.unwrap_or("unreadable")
        )),
        None => check_origin(headers, uri).err(),
    }
}

fn forbidden_cross_site(peer: SocketAddr, why: &str) -> Response {
    let address = peer.ip().to_canonical();
    refusals::note(
        Kind::CrossSite,
        address,
        format_args!("refused a cross-site login from {address}: {why}"),
    );
    page(
        StatusCode::FORBIDDEN,
        "This form only works from the device's own page.",
    )
}

async fn attempt(state: &AppState, peer: SocketAddr, secret: String, via: Via) -> Response {
    let Some(auth) = &state.auth else {
        return Redirect::to("/").into_response();
    };
    let address = peer.ip().to_canonical();
    // Refused at once, before waiting for a password check.
    let checked = match auth.check_lockout(address, Instant::now()) {
        Err(locked) => Err(locked),
        Ok(()) => {
            let Ok(Ok(permit)) =
                tokio::time::timeout(CHECK_WAIT, Arc::clone(&state.login_checks).acquire_owned())
                    .await
            else {
                return page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The device is busy checking passwords. Try again in a moment.",
                );
            };
            let auth = Arc::clone(auth);
            let checked = tokio::task::spawn_blocking(move || {
                let checked = auth.log_in(address, &secret, via, Instant::now());
                drop(permit);
                checked
            })
            .await;
            match checked {
                Ok(checked) => checked,
                Err(_) => Err(LoginError::Wrong),
            }
        }
    };
    match checked {
        Ok(token) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, auth.cookie(&token)),
                (header::LOCATION, "/".to_owned()),
            ],
        )
            .into_response(),
        Err(LoginError::Wrong) => page(
            StatusCode::UNAUTHORIZED,
            match via {
                Via::Form => "Wrong password.",
                Via::PairingLink => {
                    "This pairing link does not work (any more): it works once, for a limited \
                     time after the device starts. Log in with the password, or restart the \
                     device for a new link."
                }
            },
        ),
        Err(LoginError::TooMany { retry_after }) => {
            refusals::note(
                Kind::LockedOut,
                address,
                format_args!(
                    "too many failed logins from {address}; refusing for {} s",
                    retry_after.as_secs()
                ),
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
        Some(code) => attempt(&state, peer, code, Via::PairingLink).await,
        None => page(StatusCode::OK, ""),
    }
}

/// POST /login
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Some(why) = cross_site(&headers, &uri) {
        return forbidden_cross_site(peer, &why);
    }
    attempt(&state, peer, form.password, Via::Form).await
}

/// POST /logout: ends this browser's session on the device, and with it the session's calls,
/// WebSockets and viewers.
pub async fn log_out(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Some(why) = cross_site(&headers, &uri) {
        return forbidden_cross_site(peer, &why);
    }
    let Some(auth) = &state.auth else {
        return Redirect::to("/").into_response();
    };
    let cookies = headers.get(header::COOKIE).and_then(|c| c.to_str().ok());
    if let Some(session) = auth.log_out(cookies) {
        log::info!(
            "session {session} logged out from {}; its calls and viewers end",
            peer.ip().to_canonical()
        );
        access::withdraw(&state, Withdrawn::Session(session), "you logged out").await;
    }
    let mut response = page(StatusCode::OK, "Logged out.");
    if let Ok(value) = auth.expired_cookie().parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The live session this request carries, if any.
pub fn session_of(state: &AppState, headers: &HeaderMap) -> Option<SessionId> {
    let cookies = headers.get(header::COOKIE).and_then(|c| c.to_str().ok());
    state.auth.as_ref()?.session(cookies, Instant::now())
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

/// Paths a viewer token opens (besides a session): WHEP, the snapshot and the events.
fn takes_tokens(path: &str) -> bool {
    whep::is_whep(path) || path == "/snapshot.jpg" || path == "/events"
}

/// Who is asking, when they may: a session, a viewer token, or anyone with `auth = "none"`.
fn identify(state: &AppState, request: &Request) -> Option<whep::Viewer> {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::IpAddr::from([0u8; 4]), |c| {
            c.0.ip().to_canonical()
        });
    let from = address.to_string();
    let Some(auth) = &state.auth else {
        return Some(whep::Viewer {
            who: format!("{from} (auth = \"none\")"),
            address,
            grant: Grant::Open,
        });
    };
    let cookies = request
        .headers()
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok());
    if let Some(session) = auth.session(cookies, Instant::now()) {
        return Some(whep::Viewer {
            who: format!("session {session} from {from}"),
            address,
            grant: Grant::Session(session),
        });
    }
    if !takes_tokens(request.uri().path()) {
        return None;
    }
    let token = presented_token(request.headers(), request.uri().query())?;
    let name = state.tokens.as_ref()?.check(token);
    match name {
        Some(name) => {
            refusals::note(
                Kind::TokenUsed,
                address,
                format_args!(
                    "viewer token `{name}` used from {from}: {} {}",
                    request.method(),
                    request.uri().path()
                ),
            );
            Some(whep::Viewer {
                who: format!("token `{name}` from {from}"),
                address,
                grant: Grant::Token(name),
            })
        }
        None => {
            refusals::note(
                Kind::UnknownToken,
                address,
                format_args!(
                    "refused an unknown or revoked viewer token from {from}: {} {}",
                    request.method(),
                    request.uri().path()
                ),
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
    // Signaling checks its own login (a browser without a session may use open rooms).
    let signaling = path == "/ws" || path == "/signal" || path.starts_with("/signal/");
    if PUBLIC.contains(&path) || signaling || preflight {
        return next.run(request).await;
    }
    if let Some(viewer) = identify(&state, &request) {
        request.extensions_mut().insert(viewer);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&'static str, &'static str)]) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "cam.local:8443".parse().unwrap());
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        cross_site(&headers, &axum::http::Uri::from_static("/login"))
    }

    #[test]
    fn only_the_devices_own_pages_may_log_in_or_out() {
        // The page's own form: Origin null (no-referrer), but the browser says same-origin.
        assert_eq!(
            from(&[("sec-fetch-site", "same-origin"), ("origin", "null")]),
            None
        );
        assert_eq!(from(&[("sec-fetch-site", "none")]), None);
        assert_eq!(from(&[]), None, "not a browser");
        assert_eq!(from(&[("origin", "https://cam.local:8443")]), None);
        for refused in [
            from(&[("sec-fetch-site", "cross-site")]),
            from(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://cam.local:8443"),
            ]),
            from(&[("origin", "https://evil.example")]),
            from(&[("origin", "null")]),
        ] {
            assert!(refused.is_some());
        }
    }
}
