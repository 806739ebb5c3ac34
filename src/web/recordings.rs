//! `GET /recordings` (the owner's session only): the recorder's status and its segments by
//! day, as JSON; `GET /recordings/<day>/<time>.mp4` (and `.jpg`, its thumbnail): one segment,
//! with `Range` requests
//! (`206 Partial Content`) so a player can seek and a download can resume. Only names the
//! recorder makes are served (`recording::store::is_segment_name`); `404` with `[recording]`
//! off.

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::state::AppState;
use crate::recording::store::{self, Segment};

#[derive(Serialize)]
struct Listing {
    status: String,
    writing: Option<String>,
    free_bytes: Option<u64>,
    days: Vec<Day>,
}

#[derive(Serialize)]
struct Day {
    day: String,
    segments: Vec<Segment>,
}

fn off() -> Response {
    (
        StatusCode::NOT_FOUND,
        "recording is off ([recording] enabled = false)\n",
    )
        .into_response()
}

pub async fn list(State(state): State<AppState>) -> Response {
    let Some(recordings) = state.recordings.as_ref() else {
        return off();
    };
    let root = recordings.root.clone();
    let segments = tokio::task::spawn_blocking(move || store::list(&root))
        .await
        .unwrap_or_default();
    let mut days: Vec<Day> = Vec::new();
    // Newest day first, each day's segments in order.
    for segment in segments.into_iter().rev() {
        let day = segment
            .name
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        match days.last_mut() {
            Some(last) if last.day == day => last.segments.insert(0, segment),
            _ => days.push(Day {
                day,
                segments: vec![segment],
            }),
        }
    }
    axum::Json(Listing {
        status: recordings.status.state(),
        writing: recordings.status.writing(),
        free_bytes: store::free_bytes(&recordings.root),
        days,
    })
    .into_response()
}

pub async fn segment(
    State(state): State<AppState>,
    Path((day, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(recordings) = state.recordings.as_ref() else {
        return off();
    };
    let name = format!("{day}/{file}");
    let content_type = if store::is_segment_name(&name) {
        "video/mp4"
    } else if store::is_thumbnail_name(&name) {
        "image/jpeg"
    } else {
        return (StatusCode::NOT_FOUND, "no such recording\n").into_response();
    };
    let Ok(mut opened) = tokio::fs::File::open(recordings.root.join(&name)).await else {
        return (StatusCode::NOT_FOUND, "no such recording\n").into_response();
    };
    let Ok(length) = opened.metadata().await.map(|m| m.len()) else {
        return (StatusCode::NOT_FOUND, "no such recording\n").into_response();
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| byte_range(v, length));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, length),
        Some(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(None) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{length}"))],
            )
                .into_response();
        }
    };
    if opened.seek(SeekFrom::Start(start)).await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let body = Body::from_stream(file_chunks::chunks(opened.take(end - start)));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{length}", end - 1))
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    response
}

/// The bytes `start..end` a `Range` header asks for of a `length`-byte file (one range:
/// `bytes=a-b`, `bytes=a-` or `bytes=-n`); `None` when it cannot be served.
fn byte_range(header: &str, length: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (length.saturating_sub(n), length)
        }
        (first, "") => (first.parse().ok()?, length),
        (first, last) => {
            let last: u64 = last.parse().ok()?;
            (first.parse().ok()?, last.saturating_add(1).min(length))
        }
    };
    (start < end && start < length).then_some((start, end))
}

/// A file read as a stream of chunks, for a response body.
mod file_chunks {
    use futures_util::stream::{self, Stream};
    use tokio::io::{AsyncRead, AsyncReadExt};

    const CHUNK: usize = 64 * 1024;

    pub fn chunks<R: AsyncRead + Unpin + Send + 'static>(
        reader: R,
    ) -> impl Stream<Item = std::io::Result<Vec<u8>>> + Send {
        stream::unfold(reader, |mut reader| async move {
            let mut chunk = vec![0; CHUNK];
            match reader.read(&mut chunk).await {
                Ok(0) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    Some((Ok(chunk), reader))
                }
                Err(e) => Some((Err(e), reader)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(byte_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 1000)));
        assert_eq!(byte_range("bytes=990-2000", 1000), Some((990, 1000)));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=5-1", 1000), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
    }
}
