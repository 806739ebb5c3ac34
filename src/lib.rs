//! peercam: the firmware daemon of a camera appliance you call from a browser.
//!
//! # Layout
//! - `daemon`: the daemon itself: listeners bound, owners started, the web side wired to them,
//!   reload and an orderly stop; `run(config, listeners, state_dir, commands)`.
//! - `auth`: the owner's password or pairing code, sessions, the failed-login cap.
//! - `tokens`: viewer tokens for WHEP and snapshots, stored hashed.
//! - `config`: the TOML file, every field optional, errors that name field and line.
//! - `signaling`: the JSON wire protocol of `/ws` (mirrored by `web/signaling.js`) and what else
//!   goes on the wire: the browser's ICE configuration, the transport policy.
//! - `rooms`: the device's room as a pure state machine, and the task that owns it.
//! - `media_link`: the messages between the room owner, the web handlers and the media owner.
//! - `media`: the shared camera and encoder and one `webrtcbin` pipeline per peer, owned by
//!   one task.
//! - `web`: the page, the WebSocket sessions, WHEP, snapshots, the HTTPS and redirect listeners.
//! - `port_mapping`: the home router's forwards to the device (PCP, NAT-PMP, UPnP-IGD), asked
//!   for at start, renewed on short leases, deleted at stop (`[remote] port_mapping`).
//! - `reachability`: how the device is reached from outside (the public URL, or why not) and
//!   the candidate a call adds for a forwarded media port.
//! - `stun`: the STUN Binding responder (pure codec and rate limiter, thin UDP loop).
//! - `turn`: ICE servers handed to callers, with TURN credentials minted per call.
//! - `tls`: the certificate, configured or self-signed and kept in the state directory.
//! - `host`: the machine's name and addresses.
//! - `logging`: journald with structured fields under systemd, stderr otherwise.
//! - `metrics`: counters served at `/metrics`.
//! - `motion`: motion from the camera's frames (pure: a grid of brightness compared frame to frame).
//! - `mqtt`: motion to an MQTT broker, with Home Assistant's discovery.
//! - `recording`: MP4 segments of the camera on motion or continuously, and their retention.
//! - `descriptors`: the file-descriptor limit, the connections' share of it, and the reserve
//!   a new pipeline needs.
//! - `refusals`: refusals (wrong passwords, unknown tokens, capped connections) logged so that
//!   a flood cannot flood the journal.
//! - `state_file`: files in the state directory written whole, with their mode; where the
//!   state directory is by default.
//! - `swappable`: values a reload replaces as a whole (ICE plan, TLS configuration).
//! - `system`: systemd notifications (READY, STATUS, WATCHDOG, STOPPING) and the watchdog.
//! - `memory`: allocator settings that keep RSS flat across calls.
//! - `probe` (feature `probe`): `peercam probe`, an independent WebRTC caller for health checks
//!   and benchmarks.
//!
//! The binary (`main.rs`) is the command line: it binds the daemon's listeners, turns signals
//! into `daemon::Command`s and runs `daemon::run`, or runs one of the other commands. Which
//! module may import which: `docs/architecture.md`.

pub mod auth;
pub mod config;
pub mod daemon;
pub mod descriptors;
pub mod host;
pub mod logging;
pub mod media;
pub mod media_link;
pub mod memory;
pub mod metrics;
pub mod motion;
pub mod mqtt;
pub mod port_mapping;
#[cfg(feature = "probe")]
pub mod probe;
pub mod reachability;
pub mod recording;
pub mod refusals;
pub mod rooms;
pub mod rtsp;
pub mod signaling;
pub mod state_file;
pub mod stun;
pub mod swappable;
pub mod system;
pub mod tls;
pub mod tokens;
pub mod turn;
pub mod web;
