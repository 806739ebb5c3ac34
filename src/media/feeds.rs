//! Consumers of the encoded stream outside WebRTC (the RTSP server's media): pads the shared
//! source pushes into, like a peer's, opened and closed through the media owner so the camera
//! runs while any consumer of any kind needs it.

use gstreamer as gst;
use tokio::sync::oneshot;

use super::outlets::KeyframeRequester;

/// What the RTSP server asks of the media owner, on a channel of its own.
#[derive(Debug)]
pub enum FeedCommand {
    /// Push H.264 RTP (payload type 96) into `video` and Opus RTP (111) into `audio`, from
    /// now on; the reply has the way to ask for a keyframe, or why not.
    Open {
        id: u64,
        video: gst::Pad,
        audio: Option<gst::Pad>,
        reply: oneshot::Sender<Result<FeedHandle, String>>,
    },
    Close {
        id: u64,
    },
}

/// An open feed's way back to the encoder.
#[derive(Debug, Clone)]
pub struct FeedHandle {
    pub(super) keyframes: KeyframeRequester,
}

impl FeedHandle {
    /// Asks the shared encoder for a keyframe now (a new RTSP client starts at one).
    pub fn request_keyframe(&self) {
        self.keyframes.request();
    }
}

/// An open feed, as the owner keeps it.
pub(super) struct Feed {
    pub id: u64,
    pub video: gst::Pad,
    pub audio: Option<gst::Pad>,
}
