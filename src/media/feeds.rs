//! Consumers of the encoded stream outside WebRTC (the RTSP server's media, the recorder):
//! pads the shared source pushes into, like a peer's, opened and closed through the media
//! owner so the camera runs while any consumer of any kind needs it. `bridge` makes such a
//! pad for an `appsrc`.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::oneshot;

use super::outlets::KeyframeRequester;

/// What the RTSP server and the recorder ask of the media owner, on a channel of their own.
#[derive(Debug)]
pub enum FeedCommand {
    /// Push H.264 RTP (payload type 96) into `video` and Opus RTP (111) into `audio`, from
    /// now on; the reply has the way to ask for a keyframe, or why not.
    Open {
        id: u64,
        /// Who it is for, for the log (`RTSP`, `recording`).
        consumer: &'static str,
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
    pub consumer: &'static str,
    pub video: gst::Pad,
    pub audio: Option<gst::Pad>,
}

/// A source pad with no element behind it whose packets go into `appsrc` (the shared source
/// pushes into it as into a peer's), each first passed to `adjust` with the appsrc's running
/// time, and the sink pad it is linked to, which the caller keeps (a pad let go unlinks
/// itself). Events are taken and dropped: the appsrc has its own caps and time, and a refused
/// caps event would fail every push after it.
pub fn bridge(
    appsrc: gst_app::AppSrc,
    adjust: impl Fn(&mut gst::BufferRef, Option<gst::ClockTime>) + Send + Sync + 'static,
) -> (gst::Pad, gst::Pad) {
    let adjust = std::sync::Arc::new(adjust);
    let list_adjust = std::sync::Arc::clone(&adjust);
    let list_target = appsrc.clone();
    let sink = gst::Pad::builder(gst::PadDirection::Sink)
        .event_function(|_, _, _| true)
        .chain_function(move |_, _, mut buffer| {
            adjust(buffer.make_mut(), appsrc.current_running_time());
            appsrc.push_buffer(buffer)
        })
        .chain_list_function(move |_, _, mut list| {
            let now = list_target.current_running_time();
            list.make_mut().foreach_mut(|mut buffer, _| {
                list_adjust(buffer.make_mut(), now);
                std::ops::ControlFlow::Continue(Some(buffer))
            });
            list_target.push_buffer_list(list)
        })
        .build();
    let src = gst::Pad::builder(gst::PadDirection::Src).build();
    let _ = src.link(&sink);
    let _ = sink.set_active(true);
    let _ = src.set_active(true);
    (src, sink)
}
