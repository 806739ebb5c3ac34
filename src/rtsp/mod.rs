//! The RTSP server (`[rtsp]`, off by default): `rtsp://<device>:8554/camera` for NVRs and home
//! systems (Frigate, Home Assistant's Generic camera, Blue Iris), GStreamer's RTSP server on
//! GLib's default main loop.
//!
//! The stream is the shared source's own H.264 and Opus (`media::feeds`): no second encoder for
//! RTSP. One media is shared by every client; while it exists it is one consumer of the
//! camera, which starts with it and stops after the last consumer of any kind. `digest` keeps
//! the Digest credentials (the owner, user `owner`, and each viewer token under its name);
//! `server` builds the server, its limits and the feed.

pub mod digest;
pub mod server;

pub use server::{RtspError, RtspServer};
