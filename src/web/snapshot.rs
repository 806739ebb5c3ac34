//! `GET /snapshot.jpg[?width=N]`: a JPEG of the camera's current picture, for a dashboard.
//!
//! The media owner hands out a tap on the shared source's raw frames (starting the camera when
//! nobody watches, for as long as the tap is held); the frame is encoded here, once, on a
//! blocking thread, and the tap released whatever happened.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::AppState;
use crate::media::snapshot::{self, MAX_WIDTH, SnapshotError};
use crate::media_link::{MediaCommand, SnapshotRefused};

/// How long a frame may take: a camera that was off needs a moment to start.
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);
/// The narrowest snapshot that may be asked for.
const MIN_WIDTH: u32 = 16;

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
    let (reply, granted) = oneshot::channel();
    if state.media.send(MediaCommand::Frames { reply }).is_err() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the device's media is not answering".into(),
        );
    }
    let grant = match granted.await {
        Ok(Ok(grant)) => grant,
        Ok(Err(refused @ SnapshotRefused::PreEncoded)) => {
            return text(StatusCode::NOT_IMPLEMENTED, refused.to_string());
        }
        Ok(Err(refused)) => return text(StatusCode::SERVICE_UNAVAILABLE, refused.to_string()),
        Err(_) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the device's media is not answering".into(),
            );
        }
    };
    let tap = grant.tap;
    let frames = grant.frames;
    let encoded =
        tokio::task::spawn_blocking(move || snapshot::jpeg(&frames, width, FRAME_TIMEOUT)).await;
    let _ = state.media.send(MediaCommand::ReleaseFrames { tap });
    match encoded {
        Ok(Ok(jpeg)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg,
        )
            .into_response(),
        Ok(Err(e @ SnapshotError::NoFrame(_))) => {
            text(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the snapshot task failed: {e}"),
        ),
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
