//! Media: the device's side of a call, one GStreamer pipeline ending in `webrtcbin`.
//!
//! One owner task (`owner::run`) holds the shared source and every peer and is the only code
//! that changes them. The room owner and the web handlers talk to it with `media_link`'s
//! `MediaCommand`s; it reports the caller's peer to the room owner with `PeerReport`s.
//!
//! Submodules: `plan` (pure: codec and encoder choice, launch descriptions), `devices` (what
//! `auto` means on this machine), `launch_check` (the config's launch lines), `shared_source`
//! (one camera and encoder fanned out to every peer; `encoder_branch` adds a second encoder
//! in another codec to it while the owner's browser needs one), `peer` (one peer's pipeline, an
//! `owned_pipeline` that stops when dropped),
//! `viewer_offer` (pure: a viewer's offer and what to answer), `snapshot` (a JPEG of the
//! latest frame), `bitrate` (pure: the adaptive bitrate controller), `link_stats` (receiver
//! reports out of webrtcbin's statistics), `encoder_control` (bitrate changes and keyframe
//! requests for a running encoder), `retransmission` (a budget for answering NACKs),
//! `srtp_encoder` (the `srtpenc` webrtcbin uses), `talkback` (the caller's voice to the
//! speaker), `speaker` (one talker at a time on it: the caller, or an NVR's ONVIF backchannel), `motion_watch` (the latest frame to the motion detector, a
//! few times a second), `send_latency` (encoder-to-socket time of video frames, for `/metrics`).

pub mod bitrate;
mod devices;
mod encoder_branch;
mod encoder_control;
mod error;
pub mod feeds;
mod frame_feed;
mod goodbye;
mod health;
mod launch_check;
mod link_stats;
pub mod motion_watch;
mod outlets;
mod owned_pipeline;
mod owner;
mod payload_types;
mod peer;
mod peer_events;
pub mod plan;
mod retransmission;
mod sdp_tidy;
pub mod send_latency;
mod settings;
mod shared_source;
pub mod snapshot;
pub mod speaker;
pub mod srtp_encoder;
mod start_up;
mod talkback;
#[cfg(test)]
mod test_pads;
pub mod viewer_offer;
mod webrtc_setup;

pub use error::MediaError;
pub use health::MediaHealth;
pub use launch_check::{Strictness, validate_launch_lines};
pub use owner::{Channels, run};
pub use settings::MediaSettings;
pub use speaker::Speaker;
pub use start_up::{init, init_gstreamer, warm_up};
