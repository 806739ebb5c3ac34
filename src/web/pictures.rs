//! Pictures being taken, shared: requests that arrive while a picture of the same width is
//! being taken wait for that one. Fifty dashboards asking at once cost one frame and one JPEG
//! encode, not fifty pulls on the one appsink (where each frame woke a single request and the
//! rest timed out). The work runs in a task of its own, so a client that goes away does not
//! cancel it for the others; at most `WIDTHS_AT_ONCE` pictures are in the making at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::{mpsc, oneshot};

use crate::media_link::{MediaCommand, SnapshotRefused};

/// Pictures of different widths in the making at once; more are told to try again.
pub const WIDTHS_AT_ONCE: usize = 4;

/// A picture (shared by reference with every request that waited for it), or the status and
/// message that say why there is none.
pub type Outcome = Result<Bytes, (StatusCode, String)>;

/// The pictures being taken now, by width, each shared by every request that asked for it.
#[derive(Default)]
pub struct Snapshots {
    // Held only to look up, insert or remove an entry; never across an `.await`.
    in_making: Mutex<HashMap<Option<u32>, Shared<BoxFuture<'static, Outcome>>>>,
}

impl Snapshots {
    /// The picture being taken at `width`, or a new one started; `None` when too many widths
    /// are in the making.
    pub fn join_or_start(
        self: &Arc<Self>,
        width: Option<u32>,
        media: &mpsc::UnboundedSender<MediaCommand>,
    ) -> Option<Shared<BoxFuture<'static, Outcome>>> {
        let mut in_making = self.in_making.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(picture) = in_making.get(&width) {
            return Some(picture.clone());
        }
        if in_making.len() >= WIDTHS_AT_ONCE {
            return None;
        }
        let (snapshots, media) = (Arc::clone(self), media.clone());
        // The task removes its entry when done; it cannot before this insert (the lock).
        let task = tokio::spawn(async move {
            let outcome = take(&media, width).await;
            snapshots
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

/// Takes one picture: the media owner starts the camera if need be, pulls a frame and makes
/// it a JPEG.
async fn take(media: &mpsc::UnboundedSender<MediaCommand>, width: Option<u32>) -> Outcome {
    let not_answering = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the device's media is not answering".to_owned(),
        )
    };
    let (reply, taken) = oneshot::channel();
    media
        .send(MediaCommand::Snapshot { width, reply })
        .map_err(|_| not_answering())?;
    match taken.await {
        Ok(Ok(jpeg)) => Ok(Bytes::from(jpeg)),
        Ok(Err(refused)) => {
            let status = match refused {
                SnapshotRefused::PreEncoded => StatusCode::NOT_IMPLEMENTED,
                SnapshotRefused::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
                SnapshotRefused::SourceFailed(_)
                | SnapshotRefused::Busy(_)
                | SnapshotRefused::NoPicture(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            Err((status, refused.to_string()))
        }
        Err(_) => Err(not_answering()),
    }
}
