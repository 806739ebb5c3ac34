//! `GET /snapshot.jpg[?width=N]`: a JPEG of the camera's current picture, for a dashboard.
//!
//! The media owner hands out a tap on the shared source's raw frames (starting the camera when
//! nobody watches, for as long as the tap is held); the frame is encoded here, once, on a
//! blocking thread, and the tap released whatever happened.
//!
//! Requests that arrive while a picture of the same width is being taken wait for that one
//! (`Snapshots`): fifty dashboards asking at once cost one frame and one JPEG encode, not fifty
//! pulls on the one appsink (where each frame woke a single request and the rest timed out).
//! The work runs in a task of its own, so a client that goes away does not cancel it for the
//! others; at most `WIDTHS_AT_ONCE` pictures are in the making at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::AppState;
use crate::media::snapshot::{self, MAX_WIDTH, SnapshotError};
use crate::media_link::{MediaCommand, SnapshotRefused};

/// How long a frame may take: a camera that was off needs a moment to start.
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);
/// The narrowest snapshot that may be asked for.
const MIN_WIDTH: u32 = 16;
/// Pictures of different widths in the making at once; more are told to try again.
const WIDTHS_AT_ONCE: usize = 4;

/// A picture (shared by reference with every request that waited for it), or the status and
/// message that say why there is none.
type Outcome = Result<Bytes, (StatusCode, String)>;

/// The pictures being taken now, by width, each shared by every request that asked for it.
#[derive(Default)]
pub struct Snapshots {
    // Held only to look up, insert or remove an entry; never across an `.await`.
    in_making: Mutex<HashMap<Option<u32>, Shared<BoxFuture<'static, Outcome>>>>,
}

impl Snapshots {
    /// The picture being taken at `width`, or a new one started; `None` when too many widths
    /// are in the making.
    fn join_or_start(
        state: &AppState,
        width: Option<u32>,
    ) -> Option<Shared<BoxFuture<'static, Outcome>>> {
        let mut in_making = state
            .snapshots
            .in_making
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(picture) = in_making.get(&width) {
            return Some(picture.clone());
        }
        if in_making.len() >= WIDTHS_AT_ONCE {
            return None;
        }
        let owner = state.clone();
        // The task removes its entry when done; it cannot before this insert (the lock).
        let task = tokio::spawn(async move {
            let outcome = take(&owner, width).await;
            owner
                .snapshots
                .in_making
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&width);
            outcome
        });
        let picture = async move {
            task.await.unwrap_or_else(|e| {
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the snapshot task failed: {e}"),
                ))
            })
        }
        .boxed()
        .shared();
        in_making.insert(width, picture.clone());
        Some(picture)
    }
}

#[derive(Deserialize)]
pub struct SnapshotQuery {
    width: Option<String>,
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{message}\n"),
    )
        .into_response()
}

/// The `width` asked for, if any, within bounds.
fn parse_width(width: Option<&str>) -> Result<Option<u32>, String> {
    let Some(width) = width else {
        return Ok(None);
    };
    match width.parse::<u32>() {
        Ok(w) if (MIN_WIDTH..=MAX_WIDTH).contains(&w) => Ok(Some(w)),
        _ => Err(format!(
            "width must be a whole number of pixels from {MIN_WIDTH} to {MAX_WIDTH}, not `{width}`"
        )),
    }
}

pub async fn jpeg(State(state): State<AppState>, Query(query): Query<SnapshotQuery>) -> Response {
    let width = match parse_width(query.width.as_deref()) {
        Ok(width) => width,
        Err(reason) => return text(StatusCode::BAD_REQUEST, reason),
    };
    let Some(picture) = Snapshots::join_or_start(&state, width) else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{WIDTHS_AT_ONCE} snapshots of other widths are being taken; try again"),
        );
    };
    match picture.await {
        Ok(jpeg) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg,
        )
            .into_response(),
        Err((status, message)) => text(status, message),
    }
}

/// Takes one picture: a tap from the media owner, one frame, one encode, the tap released.
async fn take(state: &AppState, width: Option<u32>) -> Outcome {
    let not_answering = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the device's media is not answering".to_owned(),
        )
    };
    let (reply, granted) = oneshot::channel();
    state
        .media
        .send(MediaCommand::Frames { reply })
        .map_err(|_| not_answering())?;
    let grant = match granted.await {
        Ok(Ok(grant)) => grant,
        Ok(Err(refused @ SnapshotRefused::PreEncoded)) => {
            return Err((StatusCode::NOT_IMPLEMENTED, refused.to_string()));
        }
        Ok(Err(refused)) => return Err((StatusCode::SERVICE_UNAVAILABLE, refused.to_string())),
        Err(_) => return Err(not_answering()),
    };
    let tap = grant.tap;
    let frames = grant.frames;
    let encoded =
        tokio::task::spawn_blocking(move || snapshot::jpeg(&frames, width, FRAME_TIMEOUT)).await;
    let _ = state.media.send(MediaCommand::ReleaseFrames { tap });
    match encoded {
        Ok(Ok(jpeg)) => Ok(Bytes::from(jpeg)),
        Ok(Err(e @ SnapshotError::NoFrame(_))) => {
            Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
        Ok(Err(e)) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the snapshot task failed: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_checked() {
        assert_eq!(parse_width(None), Ok(None));
        assert_eq!(parse_width(Some("320")), Ok(Some(320)));
        for bad in ["0", "15", "3841", "-5", "wide", ""] {
            let error = parse_width(Some(bad)).unwrap_err();
            assert!(error.contains("width must be"), "{error}");
        }
    }
}
