//! `GET /events`: the camera's motion as server-sent events (owner's session or a viewer
//! token, like `/snapshot.jpg`), for a home system or a script: first the state now
//! (`{"event":"state","motion":false}`), then each `motion_started` and `motion_ended` as the
//! media owner sees them, and a comment every 15 s so proxies keep the stream open. `404` when
//! `[motion]` is off. A listener too slow for the events is told how many it missed.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::{self, error::RecvError};

use super::state::AppState;
use crate::motion::MotionEvent;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn stream(State(state): State<AppState>) -> Response {
    let Some(events) = state.motion.as_ref() else {
        return (
            StatusCode::NOT_FOUND,
            "motion events are off ([motion] enabled = false)\n",
        )
            .into_response();
    };
    let moving = state.metrics.motion.load(Ordering::Relaxed) == 1;
    let now = Event::default().data(format!(r#"{{"event":"state","motion":{moving}}}"#));
    Sse::new(stream::once(async move { Ok(now) }).chain(as_they_come(events.subscribe())))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// Each motion event from `receiver`, as JSON in a `data:` line, until the daemon stops.
fn as_they_come(
    receiver: broadcast::Receiver<MotionEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(event) => serde_json::to_string(&event).unwrap_or_default(),
            Err(RecvError::Lagged(missed)) => format!(r#"{{"event":"missed","count":{missed}}}"#),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().data(event)), receiver))
    })
}
