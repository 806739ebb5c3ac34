//! WHEP (draft-ietf-wish-whep): receive-only viewers that make the offer, such as go2rtc's
//! `webrtc:` source, Home Assistant through it, or any WHEP player.
//!
//! - `POST /whep` with an SDP offer → `201 Created`, the device's answer (its candidates in
//!   it), `Location: /whep/{session}` and the ICE servers as `Link` headers.
//! - `PATCH /whep/{session}` with trickled candidates (`application/trickle-ice-sdpfrag`) and
//!   `If-Match` naming the session's entity tag (its `ETag`) → 204; another tag → 412, none →
//!   428. With new ICE credentials or `If-Match: *` (an ICE restart, which the device does not
//!   do) → 422, as RFC 9725 and the WHEP draft say for a session that takes trickled
//!   candidates but not restarts; the session goes on as it was.
//! - `DELETE /whep/{session}` ends the session → 200; the device says goodbye with an RTCP BYE.
//!
//! Who may watch is the login guard's business (a session, or a viewer token as
//! `Authorization: Bearer` or `?token=`); the session id in the `Location` is unguessable and
//! only its holder can end it. CORS lets a player on another origin use all of it.

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::state::AppState;
use crate::media_link::{Grant, MAX_OFFER_BYTES, MediaCommand, Trickled, WatchRefused};
use crate::signaling::BrowserIce;
use crate::signaling::IceCandidate;

/// The longest a viewer waits for the device's answer: building its peer and gathering
/// candidates takes well under two seconds, even on a Pi Zero.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// What an over-the-limit viewer is told to wait before it tries again.
const RETRY_AFTER_SECONDS: &str = "10";
const SDP: &str = "application/sdp";
const SDP_FRAGMENT: &str = "application/trickle-ice-sdpfrag";

/// Who the login guard let in: for the log ("token `name` from address", say), and what let
/// them in, so that taking it back ends their session.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub who: String,
    /// Where the request came from, for the refusal log.
    pub address: std::net::IpAddr,
    pub grant: Grant,
}

/// Whether `path` is part of WHEP.
pub fn is_whep(path: &str) -> bool {
    path == "/whep" || path.starts_with("/whep/")
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut body = message.into();
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn content_type_is(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
}

/// Asks the media owner and waits for its reply; `None` when it is gone or too slow.
async fn ask<T>(
    state: &AppState,
    command: impl FnOnce(oneshot::Sender<T>) -> MediaCommand,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    state.media.send(command(reply)).ok()?;
    tokio::time::timeout(ANSWER_TIMEOUT, answer)
        .await
        .ok()?
        .ok()
}

/// `POST /whep`: a viewer's offer.
pub async fn offer(
    State(state): State<AppState>,
    Extension(Viewer {
        who: viewer,
        address,
        grant,
    }): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(refused) = wrong_content_type(&headers, SDP, "a WHEP offer") {
        return refused;
    }
    if body.len() > MAX_OFFER_BYTES {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the offer is longer than {MAX_OFFER_BYTES} bytes"),
        );
    }
    let Ok(offer) = String::from_utf8(body.to_vec()) else {
        return text(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text");
    };
    let now = SystemTime::now();
    let plan = state.ice.current();
    let label = format!(
        "whep-{}",
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let ice = plan.for_device(now, &label);
    let links = link_headers(&plan.for_browser(
        super::state::request_host(&headers, &uri).as_deref(),
        now,
        &label,
    ));
    let reply = ask(&state, |reply| MediaCommand::Watch {
        offer,
        ice,
        viewer: viewer.clone(),
        grant,
        reply,
    })
    .await;
    let answer = match reply {
        Some(Ok(answer)) => answer,
        Some(Err(refused)) => {
            crate::refusals::note(
                crate::refusals::Kind::WhepRefused,
                address,
                format_args!("WHEP: refused {viewer}: {refused}"),
            );
            return refusal(&refused);
        }
        None => return not_answering(),
    };
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, SDP.to_owned()),
            (header::LOCATION, format!("/whep/{}", answer.session)),
            (header::ETAG, answer.etag),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        answer.sdp,
    )
        .into_response();
    for link in links {
        response.headers_mut().append(header::LINK, link);
    }
    response
}

fn refusal(refused: &WatchRefused) -> Response {
    let status = match refused {
        WatchRefused::Full { .. } | WatchRefused::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        WatchRefused::BadOffer(_) | WatchRefused::NoCommonCodec(_) => StatusCode::BAD_REQUEST,
        WatchRefused::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = text(status, refused.to_string());
    if matches!(refused, WatchRefused::Full { .. } | WatchRefused::Busy(_)) {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// The ICE servers a viewer would get in a call, as WHEP's `Link` headers.
fn link_headers(ice: &BrowserIce) -> Vec<HeaderValue> {
    let quoted = |value: &str| value.replace(['"', '\\'], "");
    ice.ice_servers
        .iter()
        .flat_map(|server| {
            server.urls.iter().map(move |url| {
                let mut link = format!("<{url}>; rel=\"ice-server\"");
                if let (Some(user), Some(credential)) = (&server.username, &server.credential) {
                    link.push_str(&format!(
                        "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                        quoted(user),
                        quoted(credential)
                    ));
                }
                link
            })
        })
        .filter_map(|link| HeaderValue::from_str(&link).ok())
        .collect()
}

/// `PATCH /whep/{session}`: candidates the viewer trickles after its offer.
pub async fn trickle(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = wrong_content_type(&headers, SDP_FRAGMENT, "trickled candidates") {
        return refused;
    }
    let (fragment, candidates) = match std::str::from_utf8(&body)
        .map_err(|_| "the fragment is not UTF-8 text".to_owned())
        .and_then(|fragment| Ok((fragment, parse_fragment(fragment)?)))
    {
        Ok(parsed) => parsed,
        Err(reason) => return text(StatusCode::BAD_REQUEST, reason),
    };
    let ufrag = crate::signaling::ice_ufrag(fragment);
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());
    let trickled = ask(&state, |reply| MediaCommand::WatchCandidates {
        session,
        if_match,
        ufrag,
        candidates,
        reply,
    })
    .await;
    match trickled {
        Some(Trickled::Added) => StatusCode::NO_CONTENT.into_response(),
        Some(Trickled::RestartRefused) => restart_refused(),
        Some(Trickled::NoSuchSession) => no_such_session(),
        Some(Trickled::StaleTag) => text(
            StatusCode::PRECONDITION_FAILED,
            "If-Match does not name this session's entity tag (its ETag): the fragment is \
             for another ICE session",
        ),
        Some(Trickled::TagMissing) => text(
            StatusCode::PRECONDITION_REQUIRED,
            "send trickled candidates with If-Match: the session's entity tag (its ETag)",
        ),
        None => not_answering(),
    }
}

/// The answer to an ICE restart (new `ice-ufrag` and `ice-pwd`, or `If-Match: *`, in a
/// PATCH): the device takes trickled candidates but does not restart ICE within a session,
/// which RFC 9725 (section 4.3.1) and the WHEP draft answer with 422. The client starts a new
/// session.
fn restart_refused() -> Response {
    text(
        StatusCode::UNPROCESSABLE_ENTITY,
        "this device does not restart ICE within a session (new ice-ufrag and ice-pwd); \
         end it with DELETE and post a new offer to /whep",
    )
}

/// `DELETE /whep/{session}`: the viewer leaves.
pub async fn end(State(state): State<AppState>, Path(session): Path<String>) -> Response {
    let found = ask(&state, |reply| MediaCommand::Unwatch { session, reply }).await;
    session_reply(found, text(StatusCode::OK, "session ended"))
}

/// What a request on a session gets: `done` when the media owner found it, else 404 (or 503
/// when the media owner did not answer).
fn session_reply(found: Option<bool>, done: Response) -> Response {
    match found {
        Some(true) => done,
        Some(false) => no_such_session(),
        None => not_answering(),
    }
}

fn no_such_session() -> Response {
    text(StatusCode::NOT_FOUND, "no such WHEP session")
}

fn not_answering() -> Response {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the device's media is not answering",
    )
}

/// A 415 refusal unless the request's Content-Type is `wanted`.
fn wrong_content_type(headers: &HeaderMap, wanted: &str, what: &str) -> Option<Response> {
    (!content_type_is(headers, wanted)).then(|| {
        text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{what} is sent as Content-Type: {wanted}"),
        )
    })
}

/// The most candidates one fragment may carry.
const MAX_FRAGMENT_CANDIDATES: usize = 64;

/// The candidates of a trickle-ice-sdpfrag (RFC 8840), each with the `mid` and m-line it is
/// under. `a=end-of-candidates`, ufrag and pwd lines are accepted and need nothing done.
pub fn parse_fragment(fragment: &str) -> Result<Vec<IceCandidate>, String> {
    if fragment.len() > MAX_OFFER_BYTES {
        return Err(format!(
            "the fragment is longer than {MAX_OFFER_BYTES} bytes"
        ));
    }
    if let Some(reason) = crate::signaling::control_character(fragment) {
        return Err(format!("the fragment is refused: {reason}"));
    }
    let mut candidates = Vec::new();
    let mut m_line: Option<u32> = None;
    let mut mid: Option<String> = None;
    let mut ufrag: Option<String> = None;
    for (index, line) in fragment.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let at = |what: &str| format!("line {}: {what}", index + 1);
        if line.starts_with("m=") {
            m_line = Some(m_line.map_or(0, |n| n + 1));
            mid = None;
        } else if let Some(value) = line.strip_prefix("a=mid:") {
            mid = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = Some(value.trim().to_owned());
        } else if let Some(candidate) = line.strip_prefix("a=") {
            if !candidate.starts_with("candidate:") {
                continue;
            }
            let Some(index) = m_line else {
                return Err(at("a candidate before any m= line"));
            };
            if candidate.split_whitespace().count() < 8 || candidate.contains(['\0', '\n']) {
                return Err(at("not a candidate line (`a=candidate:` needs 8 fields)"));
            }
            if candidates.len() == MAX_FRAGMENT_CANDIDATES {
                return Err(format!(
                    "more than {MAX_FRAGMENT_CANDIDATES} candidates in one fragment"
                ));
            }
            candidates.push(IceCandidate {
                candidate: candidate.to_owned(),
                sdp_m_line_index: index,
                sdp_mid: mid.clone(),
                username_fragment: ufrag.clone(),
            });
        } else if !line.is_empty() && !line.contains('=') {
            return Err(at("not an SDP line"));
        }
    }
    Ok(candidates)
}

/// `OPTIONS` on the WHEP paths: CORS preflight (answered by `cors`) and what may be posted.
pub async fn options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(HeaderName::from_static("accept-post"), SDP)],
    )
        .into_response()
}

/// CORS headers on every WHEP answer.
const CORS: [(HeaderName, &str); 2] = [
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        "Location, Link, Retry-After, ETag",
    ),
];

/// And on the answer to a preflight.
const CORS_PREFLIGHT: [(HeaderName, &str); 3] = [
    (
        header::ACCESS_CONTROL_ALLOW_METHODS,
        "POST, PATCH, DELETE, OPTIONS",
    ),
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "Authorization, Content-Type, If-Match",
    ),
    (header::ACCESS_CONTROL_MAX_AGE, "600"),
];

/// Middleware: CORS on the WHEP paths, so a player on another origin may post its offer with a
/// token and read the `Location` and `Link` headers. No cookies are involved (`*`).
pub async fn cors(request: Request, next: Next) -> Response {
    let whep = is_whep(request.uri().path());
    let preflight = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if whep {
        let extra: &[(HeaderName, &str)] = if preflight { &CORS_PREFLIGHT } else { &[] };
        let headers = response.headers_mut();
        for (name, value) in CORS.iter().chain(extra) {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::IceServer;
    use crate::signaling::TransportPolicy;

    #[test]
    fn fragments_give_candidates_under_their_mid() {
        let fragment = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
             a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\n\
             a=candidate:3 1 udp 1686052607 198.51.100.7 50000 typ srflx raddr 10.0.0.2 rport 9\r\n\
             a=end-of-candidates\r\n";
        let candidates = parse_fragment(fragment).unwrap();
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[0].sdp_mid.as_deref(), Some("0"));
        assert_eq!(candidates[0].sdp_m_line_index, 0);
        assert!(
            candidates[0]
                .candidate
                .starts_with("candidate:1387637174 1 udp")
        );
        assert_eq!(candidates[0].username_fragment.as_deref(), Some("EsAw"));
        assert_eq!(candidates[1].sdp_mid.as_deref(), Some("1"));
        assert_eq!(candidates[1].sdp_m_line_index, 1);
        assert!(
            parse_fragment("a=end-of-candidates\r\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_fragments_name_the_line() {
        let early = parse_fragment("a=candidate:1 1 udp 1 192.0.2.1 5 typ host\r\n").unwrap_err();
        assert!(
            early.contains("line 1") && early.contains("before any m="),
            "{early}"
        );
        let short = parse_fragment("m=video 9 X 0\r\na=candidate:1 1 udp\r\n").unwrap_err();
        assert!(
            short.contains("line 2") && short.contains("8 fields"),
            "{short}"
        );
        let junk = parse_fragment("m=video 9 X 0\r\nhello there\r\n").unwrap_err();
        assert!(junk.contains("line 2"), "{junk}");
    }

    #[test]
    fn ice_servers_become_link_headers() {
        let links = link_headers(&BrowserIce {
            ice_servers: vec![
                IceServer {
                    urls: vec!["stun:cam.local:3478".into()],
                    username: None,
                    credential: None,
                },
                IceServer {
                    urls: vec!["turn:relay.example:3478?transport=udp".into()],
                    username: Some("1700000000:whep".into()),
                    credential: Some("c2VjcmV0\"".into()),
                },
            ],
            transport_policy: TransportPolicy::All,
        });
        assert_eq!(links[0], "<stun:cam.local:3478>; rel=\"ice-server\"");
        assert_eq!(
            links[1],
            "<turn:relay.example:3478?transport=udp>; rel=\"ice-server\"; \
             username=\"1700000000:whep\"; credential=\"c2VjcmV0\"; credential-type=\"password\""
        );
    }
}
