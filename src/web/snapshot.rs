//! `GET /snapshot.jpg[?width=N]`: a JPEG of the camera's current picture, for a dashboard.
//!
//! The media owner takes the picture (`MediaCommand::Snapshot`: the camera started when nobody
//! watches, one frame made a JPEG on a blocking thread) and answers with its bytes; nothing
//! here touches GStreamer. Requests of one width at once share one picture (`pictures`).

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::pictures::WIDTHS_AT_ONCE;
use super::state::AppState;
use crate::media_link::SNAPSHOT_WIDTHS;

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
        Ok(w) if SNAPSHOT_WIDTHS.contains(&w) => Ok(Some(w)),
        _ => Err(format!(
            "width must be a whole number of pixels from {} to {}, not `{width}`",
            SNAPSHOT_WIDTHS.start(),
            SNAPSHOT_WIDTHS.end()
        )),
    }
}

pub async fn jpeg(State(state): State<AppState>, Query(query): Query<SnapshotQuery>) -> Response {
    let width = match parse_width(query.width.as_deref()) {
        Ok(width) => width,
        Err(reason) => return text(StatusCode::BAD_REQUEST, reason),
    };
    let Some(picture) = state.snapshots.join_or_start(width, &state.media) else {
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
